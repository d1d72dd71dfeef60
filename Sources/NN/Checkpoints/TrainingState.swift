import Foundation

/// What a resumed run needs beyond the model's weights: the run's options, where it stands (epochs completed, and
/// steps into the next one when it stopped mid-epoch), the optimiser's step count and its per-parameter state
/// (`0.weight.exp_avg`, `0.weight.momentum_buffer`, ... in PyTorch layout). It lives in a file of its own beside the
/// checkpoint (`TrainingState.path(besides:)`), so the checkpoint stays a plain state dict that PyTorch's
/// `load_state_dict` takes; the two are bound to each other by digests and written as one (`SavedRun`).
public struct TrainingState: Sendable {
    /// The run’s options, as it started.
    public var options: TrainingOptions
    /// Where the run stands: epochs completed, and steps taken into the next one.
    public var position: RunPosition
    /// Epochs completed; the run continues in epoch `epoch + 1` (at step `position.step`).
    public var epoch: Int { position.epoch }
    /// The optimiser's step count.
    public var optimizerSteps: Int
    /// The steps each parameter has taken (``Optimizer/parameterSteps``, Adam's bias correction), in the optimiser's
    /// parameter order (some or all of the model's); nil in a state written before they were recorded (each took
    /// every step then).
    public var parameterSteps: [Int]?
    /// The digest (`SafeTensors.digest`) of the weights this state was saved with; nil in a state written before
    /// states were bound to their models.
    public var modelDigest: UInt64?
    /// For a position inside an epoch: the epoch's step count when it was saved (a resume on other data must not
    /// continue that epoch's order), when recorded.
    public var stepsPerEpoch: Int?
    /// The model copies the run split each step over (`Trainer.modelCopies`), when recorded.
    public var modelCopies: Int?
    /// Adam's [beta1, beta2, eps], when recorded (`clnn.adam`): `restore` refuses an Adam of others.
    var adamSettings: [Float]?
    /// The optimiser state tensors by name, PyTorch layout.
    var tensors: [String: SafeTensors.Entry]

    /// The training state's file for checkpoint `path`: `m.safetensors` → `m.state.safetensors`. (`SavedRun` puts it
    /// beside the real file when `path` is a symbolic link.)
    public static func path(besides checkpoint: String) -> String {
        let base = checkpoint.hasSuffix(".safetensors") ? String(checkpoint.dropLast(".safetensors".count)) : checkpoint
        return base + ".state.safetensors"
    }

    /// Throws unless a training state can record `trainer`'s optimiser (SGD or Adam, which `decode` reads back):
    /// what `TrainingRun` checks before training, so that no epoch is trained for a save that cannot be made.
    static func checkRecordable(_ trainer: Trainer, path: String) throws {
        guard OptimizerKind(rawValue: trainer.optimizer.name) != nil else {
            throw DataError(path, "a training state records SGD or Adam; the trainer's optimizer is "
                + "'\(trainer.optimizer.name.prefix(40))'")
        }
    }

    /// Adam's [beta1, beta2, eps], which a training state records (`clnn.adam`, "0.9,0.999,1e-08"): the moments
    /// mean nothing under others.
    static func settings(of adam: Adam) -> [Float] {
        [adam.hyperparameters.beta1, adam.hyperparameters.beta2, adam.hyperparameters.eps]
    }

    /// Settings as `clnn.adam` writes them: "0.9,0.999,1e-08" (each reads back as itself).
    static func text(_ settings: [Float]) -> String { settings.map { "\($0)" }.joined(separator: ",") }

    /// The model's parameters that `trainer`'s optimiser steps, by the model's names, each with its index among the
    /// optimiser's parameters (a `Trainer` holds an optimiser over some or all of its model's parameters).
    static func stepped(by trainer: Trainer) -> [(name: String, parameter: Parameter, index: Int)] {
        let named = trainer.model.namedParameters
        return trainer.optimizer.parameters.enumerated().compactMap { index, p in
            named.first { $0.parameter === p }.map { ($0.name, p, index) }
        }
    }

    /// The file's bytes for the state of `trainer` at `position`, bound to the weights of digest `modelDigest`.
    static func encode(_ trainer: Trainer, at position: RunPosition, stepsPerEpoch: Int?,
                       modelDigest: UInt64) throws -> [UInt8] {
        try checkRecordable(trainer, path: "the training state")
        let optimizer = trainer.optimizer
        var tensors: [String: SafeTensors.Entry] = [:]
        for (name, p, index) in stepped(by: trainer) {
            for (stateName, tensor) in zip(optimizer.stateNames, try optimizer.stateTensors(of: index)) {
                tensors["\(name).\(stateName)"] = SafeTensors.Entry(pyTorchLayoutOf: try tensor.toArray(),
                                                                    shape: p.value.shape)
            }
        }
        let o = trainer.options
        var metadata = ["clnn.state": "2", "clnn.optimizer": optimizer.name, "clnn.epoch": String(position.epoch),
                        "clnn.optimizer-steps": String(optimizer.stepCount), "clnn.epochs": String(o.epochs),
                        "clnn.batch-size": String(o.batchSize), "clnn.lr": String(o.lr),
                        "clnn.momentum": String(o.momentum),
                        "clnn.weight-decay": String(o.weightDecay), "clnn.seed": String(o.seed),
                        "clnn.schedule": o.schedule.rawValue, "clnn.model": String(modelDigest, radix: 16),
                        "clnn.model-copies": String(trainer.modelCopies),
                        "clnn.parameter-steps": optimizer.parameterSteps.map(String.init).joined(separator: ",")]
        if let adam = optimizer as? Adam { metadata["clnn.adam"] = text(settings(of: adam)) }
        if position.step > 0 {
            metadata["clnn.step"] = String(position.step)
            // NOTE: Double's description reads back to the same value: the epoch's mean loss comes out as a run
            // never stopped would print it.
            metadata["clnn.epoch-loss-sum"] = String(position.lossSum)
            if let stepsPerEpoch { metadata["clnn.steps-per-epoch"] = String(stepsPerEpoch) }
        }
        return try SafeTensors.encode(tensors, metadata: metadata)
    }

    /// Reads a training state file.
    /// - Throws: `DataError` naming the file and the field that is missing or out of range.
    public static func load(_ path: String) throws -> TrainingState {
        try decode(try readFileBytes(path, what: "training state file"), path: path)
    }

    /// Parses a training state file's bytes; `path` names it in errors.
    static func decode(_ bytes: [UInt8], path: String) throws -> TrainingState {
        let (tensors, metadata) = try SafeTensors.decode(bytes, path: path)
        func field(_ key: String) throws -> String {
            guard let value = metadata[key] else {
                throw DataError(path, "metadata lacks '\(key)': not a clnn training state "
                    + "(written beside a checkpoint by clnn train --save)")
            }
            return value
        }
        func number<T: LosslessStringConvertible & Comparable>(_ key: String, _ range: ClosedRange<T>) throws -> T {
            let text = try field(key)
            guard let value = T(text), range.contains(value) else {
                throw DataError(path, "metadata '\(key)' is '\(text.prefix(40))', "
                    + "not in \(range.lowerBound)...\(range.upperBound)")
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
        options.epochs = try number("clnn.epochs", 1...TrainingOptions.maxEpochs)
        options.batchSize = try number("clnn.batch-size", 1...TrainingOptions.maxBatchSize)
        options.lr = try number("clnn.lr", 0...Float.greatestFiniteMagnitude)
        // (Any momentum SGD takes: what a trainer saved reads back.)
        options.momentum = try number("clnn.momentum", 0...Float.greatestFiniteMagnitude)
        options.weightDecay = try number("clnn.weight-decay", 0...Float.greatestFiniteMagnitude)
        options.seed = try number("clnn.seed", 0...UInt64.max)
        let schedule = try field("clnn.schedule")
        guard let parsed = LearningRateSchedule(rawValue: schedule) else {
            throw DataError(path, "metadata names an unknown schedule '\(schedule.prefix(40))'")
        }
        options.schedule = parsed
        let step: Int = metadata["clnn.step"] == nil ? 0 : try number("clnn.step", 1...(1 << 40))
        let epoch: Int = try number("clnn.epoch", (step > 0 ? 0 : 1)...options.epochs)
        if step > 0 && epoch == options.epochs {
            throw DataError(path, "metadata 'clnn.step' \(step) is a step into epoch \(epoch + 1) "
                + "of a run of \(options.epochs)")
        }
        let lossSum: Double = step > 0 ? try number("clnn.epoch-loss-sum", 0...Double.greatestFiniteMagnitude) : 0
        let steps: Int = try number("clnn.optimizer-steps", 0...Int(Int32.max) * 1024)
        var modelDigest: UInt64?
        if let text = metadata["clnn.model"] {
            guard let value = UInt64(text, radix: 16) else {
                throw DataError(path, "metadata 'clnn.model' is '\(text.prefix(40))', not a digest")
            }
            modelDigest = value
        }
        let stepsPerEpoch: Int? = step > 0 && metadata["clnn.steps-per-epoch"] != nil
            ? try number("clnn.steps-per-epoch", (step + 1)...(1 << 40)) : nil
        let copies: Int? = metadata["clnn.model-copies"] == nil ? nil : try number("clnn.model-copies", 1...(1 << 20))
        var parameterSteps: [Int]?
        if let text = metadata["clnn.parameter-steps"] {
            // (A model of no parameters writes no counts.)
            let counts = text.isEmpty ? [] : text.split(separator: ",", omittingEmptySubsequences: false)
            parameterSteps = try counts.map { count in
                guard let value = Int(count), (0...steps).contains(value) else {
                    throw DataError(path, "metadata 'clnn.parameter-steps' holds '\(count.prefix(40))', "
                        + "not a count in 0...\(steps) (the optimizer's steps)")
                }
                return value
            }
        }
        var adam: [Float]?
        if let text = metadata["clnn.adam"] {
            let fields = text.split(separator: ",", omittingEmptySubsequences: false)
            let parts = fields.compactMap { Float($0) }
            guard kind == .adam, fields.count == 3, parts.count == 3,
                  (try? Adam([], beta1: parts[0], beta2: parts[1], eps: parts[2])) != nil else {
                throw DataError(path, "metadata 'clnn.adam' is '\(text.prefix(60))', not Adam's beta1,beta2,eps")
            }
            adam = parts
        }
        try SafeTensors.requireFinite(tensors, path: path, what: "an optimizer state")
        return TrainingState(options: options, position: RunPosition(epoch: epoch, step: step, lossSum: lossSum),
                             optimizerSteps: steps, parameterSteps: parameterSteps, modelDigest: modelDigest,
                             stepsPerEpoch: stepsPerEpoch, modelCopies: copies, adamSettings: adam, tensors: tensors)
    }

    /// Puts the optimiser state and step counts into `trainer`, whose model holds the checkpoint's weights.
    /// - Throws: `DataError` when the trainer's optimiser differs from the saved one (its kind, momentum, weight
    ///   decay, Adam's betas and eps), a state tensor is missing, extra or of another shape (it steps other
    ///   parameters), or the step counts are not one per parameter it steps; nothing is changed then.
    public func restore(into trainer: Trainer, path: String) throws {
        let optimizer = trainer.optimizer
        guard optimizer.name == options.optimizer.rawValue else {
            throw DataError(path, "the run was trained with \(options.optimizer.rawValue), not \(optimizer.name)")
        }
        // The optimiser's own settings: its state means nothing under others (PyTorch's load_state_dict would set
        // them; CLNN's optimisers keep theirs, so another is an error).
        if let adamSettings, let adam = optimizer as? Adam, adamSettings != Self.settings(of: adam) {
            throw DataError(path, "the run was trained with Adam's beta1,beta2,eps \(Self.text(adamSettings)), not "
                + "\(Self.text(Self.settings(of: adam))): its moments belong to those")
        }
        for (what, saved, given) in [("momentum", options.momentum, trainer.options.momentum),
                                     ("weight decay", options.weightDecay, trainer.options.weightDecay)]
        where saved != given {
            throw DataError(path, "the run was trained with \(what) \(saved), not \(given)")
        }
        let stepped = Self.stepped(by: trainer)
        var expected: [String: [Int]] = [:]
        for (name, p, _) in stepped {
            for stateName in optimizer.stateNames {
                expected["\(name).\(stateName)"] = SafeTensors.Entry.pyTorchShape(p.value.shape)
            }
        }
        if let parameterSteps, parameterSteps.count != optimizer.parameters.count {
            throw DataError(path, "metadata 'clnn.parameter-steps' has \(parameterSteps.count) counts for an "
                + "optimizer of \(optimizer.parameters.count) parameters")
        }
        if let extra = Set(tensors.keys).subtracting(expected.keys).sorted().first {
            throw DataError(path, "unexpected tensor '\(extra.prefix(80))' for this model and optimizer")
        }
        for (name, shape) in expected.sorted(by: { $0.key < $1.key }) {
            guard let entry = tensors[name] else { throw DataError(path, "missing tensor '\(name)'") }
            guard entry.shape == shape else {
                throw DataError(path, "tensor '\(name)' has shape \(entry.shape), not \(shape)")
            }
        }
        for (name, _, index) in stepped {
            for (stateName, tensor) in zip(optimizer.stateNames, try optimizer.stateTensors(of: index)) {
                let entry = tensors["\(name).\(stateName)"]!
                try tensor.copy(from: try Tensor(entry.clnnLayout, shape: tensor.shape))
            }
        }
        optimizer.stepCount = optimizerSteps
        optimizer.parameterSteps = parameterSteps ?? Array(repeating: optimizerSteps, count: optimizer.parameters.count)
    }
}
