import Foundation

/// Trains a model: batch → forward → loss → backward → step, with an `Optimizer` (SGD or Adam).
///
/// A `Trainer` and its model belong to one task at a time (they hold mutable state and device buffers, so they are
/// not `Sendable`): create and use them inside one `Task`, or keep them in an actor of your own. Different trainers
/// may run in different tasks at once; the OpenCL runtime under them is shared safely.
public final class Trainer {
    /// The model trained.
    public let model: Sequential
    /// The loss minimised.
    public let loss: any Loss
    /// The optimiser that steps the model’s parameters.
    public let optimizer: any Optimizer
    /// Where the model lives; data must be there too.
    public let device: DeviceTag
    /// The classes the model predicts.
    public let classes: Int
    /// The run’s settings.
    public let options: TrainingOptions
    private let evaluator: Evaluator

    /// The loss's buffers, reused across steps.
    private enum Buffer: Int, CaseIterable { case stepLosses, grad, evaluationLoss }
    private let workspace = Workspace<Buffer>()

    /// - Parameters:
    ///   - model: the model to train, on one device.
    ///   - loss: the loss to minimise.
    ///   - options: epochs, batch size, optimiser and rates.
    ///   - classes: by default the model's output width says it (`loss.classes(outputs:)`); a single-output
    ///     regression (`MSELoss`) needs it stated.
    ///   - device: by default the model's device; when given, the model must already be there.
    ///   - optimizer: by default the one `options` describe (`options.makeOptimizer`).
    /// - Throws: `DeviceError.invalidArgument` when the model's parameters are not all on `device`, or the class
    ///   count is unknown or disagrees with the model's outputs — here, not at the first step.
    public init(model: Sequential, loss: any Loss, classes: Int? = nil, options: TrainingOptions,
                device: DeviceTag? = nil, optimizer: (any Optimizer)? = nil) throws {
        self.model = model
        self.loss = loss
        self.options = options
        self.device = try Evaluator.device(of: model, expected: device, op: "Trainer")
        self.classes = try Evaluator.classes(of: model, loss: loss, explicit: classes, op: "Trainer")
        self.optimizer = try optimizer ?? options.makeOptimizer(model.parameters)
        evaluator = try Evaluator(model: model, loss: loss, classes: self.classes, device: self.device)
    }

    /// Checks that every label of `data` is a class the model can predict.
    public func validateLabels(_ data: RawDataset, source: String) throws {
        try Evaluator.validateLabels(data.labels, classes: classes, source: source)
    }

    /// Checks that every label of `data` is a class the model can predict.
    public func validateLabels(_ data: Dataset, source: String) throws {
        try Evaluator.validateLabels(data.labels, classes: classes, source: source)
    }

    /// One pass over `data` in the order `sampler` gives for `epoch`, which counts from 1 to `options.epochs` (the
    /// learning-rate schedule is placed by it: `for e in 1...options.epochs`). Returns the mean training loss.
    /// `progress` — the trailing closure — is called every `reportEvery` steps and at the end; `shouldStop` is polled
    /// at each report.
    ///
    /// ```swift
    /// for epoch in 1...options.epochs {
    ///     let loss = try trainer.trainEpoch(data, epoch: epoch) { report in print(report.step, report.runningLoss) }
    /// }
    /// ```
    /// - Throws: `TrainingError.nonFiniteLoss` naming the first step whose loss was NaN or infinite, and
    ///   `.nonFiniteParameters` when the epoch's last update made the weights so; the parameters are then not to be
    ///   saved. `DataError` for a label the model cannot predict.
    public func trainEpoch(_ data: DeviceDataset, epoch: Int, reportEvery: Int = 50,
                           shouldStop: () -> Bool = { false },
                           progress: (StepReport) -> Void) throws -> Float {
        guard (1...max(options.epochs, 1)).contains(epoch) else {
            throw DeviceError.invalidArgument(op: "Trainer.trainEpoch", "epoch counts from 1 to options.epochs "
                + "(\(options.epochs)), got \(epoch): the learning-rate schedule is placed by it")
        }
        try requireDevice(data)
        try Evaluator.validateLabels(data.hostLabels, classes: classes, source: "training data")
        let reused = model.reusesBuffers
        model.setBufferReuse(true)
        defer { model.setBufferReuse(reused) }
        let reportEvery = max(reportEvery, 1)
        let sampler = BatchSampler(count: data.count, batchSize: options.batchSize, seed: options.seed)
        // The epoch's order goes to the device once; each step gathers its rows there.
        let order = try Tensor(sampler.order(epoch: epoch).map(Float.init), shape: [data.count], on: device)
        let ranges = sampler.batchRanges
        // NOTE: in Double, so that no epoch count can overflow the step arithmetic.
        let totalSteps = Double(options.epochs) * Double(ranges.count)
        let start = Date()
        // Each step's mean loss goes to its own element; a report reads them back at once (and finds the first bad one).
        let stepLosses = try workspace.tensor(.stepLosses, [reportEvery], on: device)
        var pendingSteps = 0
        var total = 0.0
        for (step, range) in ranges.enumerated() {
            let progressSoFar = (Double(epoch - 1) * Double(ranges.count) + Double(step)) / max(totalSteps, 1)
            optimizer.lr = options.schedule.rate(base: options.lr, progress: progressSoFar)
            // The batch's rows and labels are read in place through the epoch's order: no gather, no copy.
            let x = try Rows(data.images, order: order, offset: range.lowerBound, count: range.count)
            let y = try Rows(data.labels, order: order, offset: range.lowerBound, count: range.count)
            try forwardBackward(x, y, lossInto: stepLosses, at: pendingSteps)
            try optimizer.step()

            pendingSteps += 1
            if pendingSteps == reportEvery || step + 1 == ranges.count {
                // The only host synchronisation inside an epoch: one read of the losses per report.
                let losses = try stepLosses.toArray().prefix(pendingSteps)
                if let bad = losses.firstIndex(where: { !$0.isFinite }) {
                    throw TrainingError.nonFiniteLoss(epoch: epoch, step: step + 2 - pendingSteps + bad, value: losses[bad],
                                                      hint: divergenceHint)
                }
                let sum = losses.reduce(0.0) { $0 + Double($1) }
                let mean = Float(sum / Double(pendingSteps))
                guard mean.isFinite else {
                    throw TrainingError.nonFiniteLoss(epoch: epoch, step: step + 1, value: mean, hint: divergenceHint)
                }
                total += sum
                let elapsed = Date().timeIntervalSince(start)
                progress(StepReport(epoch: epoch, step: step + 1, steps: ranges.count, runningLoss: mean,
                                    itemsPerSecond: Double(range.upperBound) / max(elapsed, 1e-9), elapsed: elapsed))
                pendingSteps = 0
                if shouldStop() { throw TrainingError.interrupted(epoch: epoch, step: step + 1) }
            }
        }
        // The last update has no loss after it: check the weights themselves (one read per epoch).
        if let bad = try firstNonFiniteParameter() {
            throw TrainingError.nonFiniteParameters(epoch: epoch, step: ranges.count, parameter: bad, hint: divergenceHint)
        }
        return Float(total / Double(max(ranges.count, 1)))
    }

    /// Builds every kernel a training step of this model uses on the device — one forward, loss and backward on the
    /// first batch of `data`, after which the gradients are zeroed and the parameters are as they were — so that the
    /// first epoch's time is training, not kernel compilation.
    public func prepare(_ data: DeviceDataset) throws {
        try requireDevice(data)
        let n = min(options.batchSize, data.count)
        guard n > 0 else { return }
        let reused = model.reusesBuffers
        model.setBufferReuse(true)
        defer { model.setBufferReuse(reused) }
        let order = try Tensor((0..<n).map(Float.init), shape: [n], on: device)
        try forwardBackward(try Rows(data.images, order: order, offset: 0, count: n),
                            try Rows(data.labels, order: order, offset: 0, count: n),
                            lossInto: try workspace.tensor(.evaluationLoss, [1], on: device), at: 0)
        try model.zeroGrad()
        try device.synchronize()
    }

    /// A step without the update: forward, the mean loss into `out[slot]` with its gradient, zeroGrad, backward.
    private func forwardBackward(_ x: Rows, _ y: Rows, lossInto out: Tensor, at slot: Int) throws {
        let pred = try model.forward(x)
        try Evaluator.checkOutputs(pred, loss: loss, classes: classes, op: "Trainer")
        let grad = try workspace.tensor(.grad, pred.shape, on: device)
        try loss.mean(pred, y, grad: grad, into: out, at: slot)
        try model.zeroGrad()
        _ = try model.backward(grad, needsInputGradient: false)
    }

    /// The name of the first parameter holding a NaN or an infinity, or nil when all are finite.
    public func firstNonFiniteParameter() throws -> String? {
        for (name, p) in model.namedParameters where try !p.value.toArray().allSatisfy(\.isFinite) { return name }
        return nil
    }

    /// The likely cause of a diverging run, from the options.
    public var divergenceHint: String {
        // NOTE: weight decay alone scales a weight by (1 − lr·wd) per step (heavy-ball with momentum m: stable
        // only while lr·wd < 2(1 + m)); beyond that no learning rate schedule saves the run.
        let decay = Double(options.lr) * Double(options.weightDecay)
        if decay >= 2 * (1 + Double(options.momentum)) {
            return "the weight decay \(options.weightDecay) is too large for learning rate \(options.lr) "
                + "(lr × weight decay = \(decay) makes every update overshoot); lower --weight-decay"
        }
        return "the learning rate \(options.lr) is too large for this model and data; try a smaller --lr"
    }

    /// The same, uploading a host dataset first (for one-off use; keep a `DeviceDataset` across epochs).
    public func trainEpoch(_ data: Dataset, epoch: Int, reportEvery: Int = 50,
                           shouldStop: () -> Bool = { false },
                           progress: (StepReport) -> Void) throws -> Float {
        try trainEpoch(try DeviceDataset(data, on: device), epoch: epoch, reportEvery: reportEvery,
                       shouldStop: shouldStop, progress: progress)
    }

    /// `trainEpoch` without a progress callback.
    public func trainEpoch(_ data: DeviceDataset, epoch: Int, reportEvery: Int = 50,
                           shouldStop: () -> Bool = { false }) throws -> Float {
        try trainEpoch(data, epoch: epoch, reportEvery: reportEvery, shouldStop: shouldStop, progress: { _ in })
    }

    /// `trainEpoch` of a host dataset without a progress callback.
    public func trainEpoch(_ data: Dataset, epoch: Int, reportEvery: Int = 50,
                           shouldStop: () -> Bool = { false }) throws -> Float {
        try trainEpoch(data, epoch: epoch, reportEvery: reportEvery, shouldStop: shouldStop, progress: { _ in })
    }

    /// Rows per forward pass in `evaluate`.
    public static let evaluationChunk = Evaluator.defaultChunk

    /// The mean loss and the accuracy of the model on `data` (see `Evaluator`, which needs no optimiser).
    public func evaluate(_ data: DeviceDataset, chunk: Int = Trainer.evaluationChunk) throws -> (loss: Double, accuracy: Double) {
        try evaluator.evaluate(data, chunk: chunk)
    }

    /// The same for a host dataset (uploaded first).
    public func evaluate(_ data: Dataset, chunk: Int = Trainer.evaluationChunk) throws -> (loss: Double, accuracy: Double) {
        try evaluator.evaluate(data, chunk: chunk)
    }

    private func requireDevice(_ data: DeviceDataset) throws {
        guard data.images.device == device else {
            throw DeviceError.deviceMismatch(op: "Trainer", device, data.images.device)
        }
    }
}
