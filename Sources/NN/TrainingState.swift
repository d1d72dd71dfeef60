import Foundation

/// What a resumed run needs beyond the model's weights: the run's options, the epochs completed, the optimiser's
/// step count and its per-parameter state (`0.weight.exp_avg`, `0.weight.momentum_buffer`, ... in PyTorch layout).
/// It lives in a file of its own beside the checkpoint (`TrainingState.path(besides:)`), so the checkpoint stays a
/// plain state dict that PyTorch's `load_state_dict` takes.
public struct TrainingState: Sendable {
    /// The run’s options, as it started.
    public var options: TrainingOptions
    /// Epochs completed; the run continues at `epoch + 1`.
    public var epoch: Int
    /// The optimiser's step count (Adam's bias correction).
    public var optimizerSteps: Int
    /// The optimiser state tensors by name, PyTorch layout.
    var tensors: [String: SafeTensors.Entry]

    /// The training state's file for checkpoint `path`: `m.safetensors` → `m.state.safetensors`.
    public static func path(besides checkpoint: String) -> String {
        let base = checkpoint.hasSuffix(".safetensors") ? String(checkpoint.dropLast(".safetensors".count)) : checkpoint
        return base + ".state.safetensors"
    }

    /// Writes the state of `trainer` after `epoch` completed epochs, atomically.
    public static func save(_ trainer: Trainer, epoch: Int, to path: String) throws {
        let optimizer = trainer.optimizer
        var tensors: [String: SafeTensors.Entry] = [:]
        for (index, (name, p)) in trainer.model.namedParameters.enumerated() {
            for (stateName, tensor) in zip(optimizer.stateNames, try optimizer.stateTensors(of: index)) {
                tensors["\(name).\(stateName)"] = SafeTensors.Entry(pyTorchLayoutOf: try tensor.toArray(), shape: p.value.shape)
            }
        }
        let o = trainer.options
        let metadata = ["clnn.state": "1", "clnn.optimizer": optimizer.name, "clnn.epoch": String(epoch),
                        "clnn.optimizer-steps": String(optimizer.stepCount), "clnn.epochs": String(o.epochs),
                        "clnn.batch-size": String(o.batchSize), "clnn.lr": String(o.lr), "clnn.momentum": String(o.momentum),
                        "clnn.weight-decay": String(o.weightDecay), "clnn.seed": String(o.seed),
                        "clnn.schedule": o.schedule.rawValue]
        try AtomicFile.write(try SafeTensors.encode(tensors, metadata: metadata), to: path)
    }

    /// Reads a training state file.
    /// - Throws: `DataError` naming the file and the field that is missing or out of range.
    public static func load(_ path: String) throws -> TrainingState {
        let (tensors, metadata) = try SafeTensors.decode(try readFileBytes(path, what: "training state file"), path: path)
        func field(_ key: String) throws -> String {
            guard let value = metadata[key] else {
                throw DataError(path, "metadata lacks '\(key)': not a clnn training state (written beside a checkpoint by clnn train --save)")
            }
            return value
        }
        func number<T: LosslessStringConvertible & Comparable>(_ key: String, _ range: ClosedRange<T>) throws -> T {
            let text = try field(key)
            guard let value = T(text), range.contains(value) else {
                throw DataError(path, "metadata '\(key)' is '\(text.prefix(40))', not in \(range.lowerBound)...\(range.upperBound)")
            }
            return value
        }
        _ = try field("clnn.state")
        var options = TrainingOptions()
        let name = try field("clnn.optimizer")
        guard let kind = OptimizerKind(rawValue: name) else {
            throw DataError(path, "metadata names an unknown optimizer '\(name.prefix(40))' (known: sgd, adam)")
        }
        options.optimizer = kind
        options.epochs = try number("clnn.epochs", 1...1_000_000)
        options.batchSize = try number("clnn.batch-size", 1...(1 << 24))
        options.lr = try number("clnn.lr", 0...Float.greatestFiniteMagnitude)
        options.momentum = try number("clnn.momentum", 0...0.9999999)
        options.weightDecay = try number("clnn.weight-decay", 0...Float.greatestFiniteMagnitude)
        options.seed = try number("clnn.seed", 0...UInt64.max)
        let schedule = try field("clnn.schedule")
        guard let parsed = LearningRateSchedule(rawValue: schedule) else {
            throw DataError(path, "metadata names an unknown schedule '\(schedule.prefix(40))'")
        }
        options.schedule = parsed
        let epoch: Int = try number("clnn.epoch", 1...options.epochs)
        let steps: Int = try number("clnn.optimizer-steps", 0...Int(Int32.max) * 1024)
        return TrainingState(options: options, epoch: epoch, optimizerSteps: steps, tensors: tensors)
    }

    /// Puts the optimiser state and step count into `trainer`, whose model holds the checkpoint's weights.
    /// - Throws: `DataError` when the trainer's optimiser differs from the saved one, or a state tensor is missing,
    ///   extra or of another shape; nothing is changed then.
    public func restore(into trainer: Trainer, path: String) throws {
        let optimizer = trainer.optimizer
        guard optimizer.name == options.optimizer.rawValue else {
            throw DataError(path, "the run was trained with \(options.optimizer.rawValue), not \(optimizer.name)")
        }
        let named = trainer.model.namedParameters
        var expected: [String: [Int]] = [:]
        for (name, p) in named {
            for stateName in optimizer.stateNames {
                expected["\(name).\(stateName)"] = SafeTensors.Entry.pyTorchShape(p.value.shape)
            }
        }
        if let extra = Set(tensors.keys).subtracting(expected.keys).sorted().first {
            throw DataError(path, "unexpected tensor '\(extra.prefix(80))' for this model and optimizer")
        }
        for (name, shape) in expected.sorted(by: { $0.key < $1.key }) {
            guard let entry = tensors[name] else { throw DataError(path, "missing tensor '\(name)'") }
            guard entry.shape == shape else { throw DataError(path, "tensor '\(name)' has shape \(entry.shape), not \(shape)") }
        }
        for (index, (name, _)) in named.enumerated() {
            for (stateName, tensor) in zip(optimizer.stateNames, try optimizer.stateTensors(of: index)) {
                let entry = tensors["\(name).\(stateName)"]!
                try tensor.copy(from: try Tensor(entry.clnnLayout, shape: tensor.shape))
            }
        }
        optimizer.stepCount = optimizerSteps
    }
}
