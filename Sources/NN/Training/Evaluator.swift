/// Measures a model's mean loss and accuracy on a dataset — no optimiser, no gradients.
///
/// ```swift
/// let (loss, accuracy) = try Evaluator(model: model, loss: CrossEntropyLoss()).evaluate(test)
/// ```
public final class Evaluator {
    /// The model evaluated.
    public let model: Sequential
    /// The loss it reports, and how it reads predictions as classes.
    public let loss: any Loss
    /// The classes the model predicts.
    public let classes: Int
    /// Where the model's parameters live; data must be there too.
    public let device: DeviceTag
    private enum Buffer: Int, CaseIterable { case meanLoss }
    private let workspace = Workspace<Buffer>()

    /// Rows per forward pass in `evaluate` for an MLP, and the most for any model (`chunk(for:)`).
    public static let defaultChunk = 1000

    /// Rows per forward pass in `evaluate` by default: `defaultChunk` for an MLP (its activations are a few KB per
    /// example); for a model of images (a CNN, whose convolutions unfold their input: ~300 KB per example for
    /// `cnn.py`'s), as many as keep one layer's input, output and unfolded input within 64 MiB, from 16 to
    /// `defaultChunk` — a chunk's buffers stay pooled for the next one, so this bounds evaluation's memory.
    public static func chunk(for model: Sequential) -> Int {
        model.layerSpecs.map { chunk(for: $0) } ?? defaultChunk
    }

    /// The same for a model of `specs`.
    public static func chunk(for specs: [LayerSpec]) -> Int {
        guard !LayerSpec.isMLP(specs), let shapes = try? LayerSpec.shapes(specs),
              var input = LayerSpec.inputShape(specs)?.reduce(1, *) else { return defaultChunk }
        var perExample = 1
        for (spec, shape) in zip(specs, shapes) {
            let output = shape.reduce(1, *)
            var unfolded = 0
            if case let .conv2d(c, _, window, _) = spec {
                unfolded = c * window.kernelHeight * window.kernelWidth * shape[1] * shape[2]
            }
            perExample = max(perExample, input + output + unfolded)
            input = output
        }
        return min(max((64 << 20) / (4 * perExample), 16), defaultChunk)
    }

    /// - Parameters:
    ///   - model: the model to measure.
    ///   - loss: the loss to report (it also reads predictions as classes).
    ///   - classes: the class count; by default taken from the model's output width (`loss.classes(outputs:)`),
    ///     which a single-output regression (`MSELoss`) cannot give.
    ///   - device: where to run; by default the model's device.
    /// - Throws: `DeviceError.deviceMismatch` when the model's parameters are not all on `device`;
    ///   `DeviceError.invalidArgument` when the class count is unknown or disagrees with the model's output width.
    public init(model: Sequential, loss: any Loss, classes: Int? = nil, device: DeviceTag? = nil) throws {
        self.model = model
        self.loss = loss
        self.device = try Self.device(of: model, expected: device, op: "Evaluator")
        self.classes = try Self.classes(of: model, loss: loss, explicit: classes, op: "Evaluator")
    }

    /// The mean loss and the accuracy of the model on `data`, in chunks of `chunk` examples (by default
    /// `chunk(for:)` of the model), in evaluation mode (`eval()`; the model's mode is restored after). Records
    /// nothing for gradients (a `TapeModule` computes without its tape).
    /// - Throws: `DeviceError.deviceMismatch` when `data` lives elsewhere; `DataError` for a label out of range;
    ///   `DeviceError.invalidArgument` for data of no examples or a chunk below 1.
    public func evaluate(_ data: DeviceDataset,
                         chunk: Int? = nil) throws -> (loss: Double, accuracy: Double) {
        if let chunk, chunk < 1 {
            throw DeviceError.invalidArgument(op: "Evaluator.evaluate", "chunk must be at least 1, got \(chunk)")
        }
        guard data.count > 0 else {
            throw DeviceError.invalidArgument(op: "Evaluator.evaluate", "the data holds no examples: its loss and "
                + "accuracy are undefined")
        }
        return try Tensor.withoutGradients {
            try evaluateRecordingNothing(data, chunk: chunk ?? Self.chunk(for: model))
        }
    }

    private func evaluateRecordingNothing(_ data: DeviceDataset, chunk: Int) throws -> (loss: Double, accuracy: Double) {
        guard data.images.device == device else {
            throw DeviceError.deviceMismatch(op: "Evaluator.evaluate", device, data.images.device)
        }
        try Self.validateLabels(data.hostLabels, classes: classes, source: "evaluation data")
        let reused = model.reusesBuffers, training = model.isTraining
        model.setBufferReuse(true)
        model.eval()
        defer { model.setBufferReuse(reused); model.setTraining(training) }
        let identity = try Tensor((0..<data.count).map(Float.init), shape: [data.count], on: device)
        var lossSum = 0.0
        var correct = 0
        for start in stride(from: 0, to: data.count, by: max(chunk, 1)) {
            let range = start..<min(start + max(chunk, 1), data.count)
            func rows(_ t: Tensor) throws -> Rows {
                try Rows(t, order: identity, offset: range.lowerBound, count: range.count, checkingIndices: false)
            }
            let (x, y) = (try rows(data.images), try rows(data.labels))
            let pred = try model.forward(x)
            try Self.checkOutputs(pred, loss: loss, classes: classes, op: "Evaluator.evaluate")
            let meanLoss = try workspace.tensor(.meanLoss, [1], on: device)
            try loss.mean(pred, y, grad: nil, into: meanLoss, at: 0)
            lossSum += Double(try meanLoss.item()) * Double(range.count)
            let predicted = try loss.predictedClasses(pred, classes: classes)
            correct += zip(predicted, data.hostLabels[range]).filter { $0 == Int($1) }.count
        }
        let n = Double(max(data.count, 1))
        return (lossSum / n, Double(correct) / n)
    }

    /// The same for a host dataset (uploaded first).
    public func evaluate(_ data: Dataset,
                         chunk: Int? = nil) throws -> (loss: Double, accuracy: Double) {
        try evaluate(try DeviceDataset(data, on: device), chunk: chunk)
    }

    // MARK: checks shared with Trainer

    /// The one device all of `model`'s parameters live on (or `expected`, which they must live on).
    static func device(of model: Sequential, expected: DeviceTag?, op: String) throws -> DeviceTag {
        let devices = model.parameters.map(\.device)
        let device = expected ?? devices.first ?? .cpu
        if let other = devices.first(where: { $0 != device }) {
            let name = model.namedParameters.first { $0.parameter.device == other }?.name ?? "a parameter"
            throw DeviceError.invalidArgument(op: op, "the model's parameter \(name) is on \(other), not \(device): "
                + "move the model with model.to(\(device)) first")
        }
        return device
    }

    /// The class count: `explicit`, checked against the model's output width when known, or taken from it.
    static func classes(of model: Sequential, loss: any Loss, explicit: Int?, op: String) throws -> Int {
        let outputs = model.outputFeatures
        if let explicit {
            guard explicit > 0 else {
                throw DeviceError.invalidArgument(op: op, "classes must be ≥ 1, got \(explicit)")
            }
            if let outputs, loss.outputs(classes: explicit) != outputs {
                throw DeviceError.invalidArgument(op: op, "a model with \(outputs) outputs "
                    + "cannot predict \(explicit) classes "
                    + "with \(loss.name) (it needs \(loss.outputs(classes: explicit)) outputs)")
            }
            return explicit
        }
        guard let outputs, let classes = loss.classes(outputs: outputs) else {
            throw DeviceError.invalidArgument(op: op, "the class count cannot be read from the model"
                + (outputs.map { " (\($0) output with \(loss.name))" } ?? "") + ": pass classes:")
        }
        return classes
    }

    /// Checks that every label is a class in 0..<classes.
    static func validateLabels(_ labels: some Collection<Float>, classes: Int, source: String) throws {
        if let bad = labels.enumerated().first(where: {
            !($0.1 >= 0 && $0.1 < Float(classes)) || $0.1 != $0.1.rounded()
        }) {
            throw DataError(source, "label \(labelText(bad.1)) of example \(bad.0) is out of range "
                + "for a model of \(classes) classes")
        }
    }

    /// Checks the predictions' width against what the loss needs for `classes`.
    static func checkOutputs(_ pred: Tensor, loss: any Loss, classes: Int, op: String) throws {
        let needed = loss.outputs(classes: classes)
        guard pred.shape.count == 2, pred.shape[1] == needed else {
            throw DeviceError.invalidArgument(op: op, "the model gives outputs of shape \(pred.shape), "
                + "but \(loss.name) "
                + "over \(classes) classes needs [batch, \(needed)]")
        }
    }
}
