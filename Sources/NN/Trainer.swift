import Foundation

/// Hyper-parameters of a training run.
public struct TrainingOptions: Sendable {
    public var epochs = 5
    public var batchSize = 64
    public var lr: Float = 0.1
    public var momentum: Float = 0
    public var weightDecay: Float = 0
    public var seed: UInt64 = 42
    public var schedule: LearningRateSchedule = .cosine
    public init() {}
}

/// How the learning rate moves over a run.
public enum LearningRateSchedule: String, Sendable, CaseIterable {
    /// The same rate throughout.
    case constant
    /// Cosine decay from the base rate at the first step to 0 after the last: lr·½(1 + cos(π·t/T)).
    case cosine

    /// The rate at `step` (0-based) of `totalSteps`.
    public func rate(base: Float, step: Int, totalSteps: Int) -> Float {
        rate(base: base, progress: Double(step) / Double(max(totalSteps, 1)))
    }

    /// The rate at `progress` (0 at the first step, 1 after the last) of the run.
    public func rate(base: Float, progress t: Double) -> Float {
        switch self {
        case .constant: return base
        case .cosine:
            return Float(Double(base) * 0.5 * (1 + cos(Double.pi * t)))
        }
    }
}

/// Where training stands, handed to the progress callback every few steps.
public struct StepReport: Sendable {
    public let epoch: Int
    public let step: Int
    public let steps: Int
    /// Mean loss of the batches since the previous report.
    public let runningLoss: Float
    public let itemsPerSecond: Double
    public let elapsed: Double
    public var eta: Double { step > 0 ? elapsed / Double(step) * Double(steps - step) : 0 }
}

/// Why training stopped early.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    /// The loss of the batch at `step` (1-based, the first such step of the epoch) was `value`. `hint` names the
    /// likely cause.
    case nonFiniteLoss(epoch: Int, step: Int, value: Float, hint: String)
    /// The update at `step` (the epoch's last, after which no loss was computed) made `parameter` non-finite.
    case nonFiniteParameters(epoch: Int, step: Int, parameter: String, hint: String)
    /// The weights are finite but evaluating them after `epoch` gave a loss of `value` (the forward pass overflows).
    case nonFiniteEvaluation(epoch: Int, value: Double, hint: String)
    /// `shouldStop` asked to stop (e.g. Ctrl-C or SIGTERM) after `step`.
    case interrupted(epoch: Int, step: Int)

    public var description: String {
        switch self {
        case let .nonFiniteLoss(epoch, step, value, hint):
            return "loss became \(value) at epoch \(epoch), step \(step); stopped: \(hint)"
        case let .nonFiniteParameters(epoch, step, parameter, hint):
            return "the update at epoch \(epoch), step \(step) (the epoch's last) made \(parameter) non-finite; stopped: \(hint)"
        case let .nonFiniteEvaluation(epoch, value, hint):
            return "the test loss after epoch \(epoch) is \(value): the weights are so large that the forward pass "
                + "overflows; stopped: \(hint)"
        case let .interrupted(epoch, step):
            return "interrupted at epoch \(epoch), step \(step)"
        }
    }
}

/// Trains a model with minibatch SGD: batch → forward → loss → backward → step.
public final class Trainer {
    public let model: Sequential
    public let loss: any Loss
    public let optimizer: SGD
    public let device: DeviceTag
    public let classes: Int
    public let options: TrainingOptions

    /// The loss's buffers, reused across steps.
    private enum Buffer: Int, CaseIterable { case stepLosses, grad, evaluationLoss }
    private let workspace = Workspace<Buffer>()

    public init(model: Sequential, loss: any Loss, classes: Int, options: TrainingOptions, device: DeviceTag) throws {
        self.model = model
        self.loss = loss
        self.classes = classes
        self.options = options
        self.device = device
        optimizer = try SGD(model.parameters, lr: options.lr, momentum: options.momentum, weightDecay: options.weightDecay)
    }

    /// Checks that every label of `data` is a class the model can predict.
    public func validateLabels(_ data: RawDataset, source: String) throws {
        try validateLabels(Dataset(images: [], labels: data.labels, features: 0), source: source)
    }

    /// Checks that every label of `data` is a class the model can predict.
    public func validateLabels(_ data: Dataset, source: String) throws {
        try validateLabels(data.labels, source: source)
    }

    private func validateLabels(_ labels: [Float], source: String) throws {
        if let bad = labels.firstIndex(where: { !($0 >= 0 && $0 < Float(classes)) || $0 != $0.rounded() }) {
            throw DataError(source, "label \(labels[bad]) of example \(bad) is out of range for a model of \(classes) classes")
        }
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
        try validateLabels(data.hostLabels, source: "training data")
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

    /// The mean loss and the accuracy of the model on `data`, in chunks of `chunk` examples.
    /// Rows per forward pass in `evaluate`.
    public static let evaluationChunk = 1000

    public func evaluate(_ data: DeviceDataset, chunk: Int = Trainer.evaluationChunk) throws -> (loss: Double, accuracy: Double) {
        try requireDevice(data)
        try validateLabels(data.hostLabels, source: "evaluation data")
        let identity = try Tensor((0..<data.count).map(Float.init), shape: [data.count], on: device)
        var lossSum = 0.0
        var correct = 0
        for start in stride(from: 0, to: data.count, by: chunk) {
            let range = start..<min(start + chunk, data.count)
            let x = try Rows(data.images, order: identity, offset: range.lowerBound, count: range.count)
            let y = try Rows(data.labels, order: identity, offset: range.lowerBound, count: range.count)
            let pred = try model.forward(x)
            let meanLoss = try workspace.tensor(.evaluationLoss, [1], on: device)
            try loss.mean(pred, y, grad: nil, into: meanLoss, at: 0)
            lossSum += Double(try meanLoss.item()) * Double(range.count)
            let predicted = try loss.predictedClasses(pred, classes: classes)
            correct += zip(predicted, data.hostLabels[range]).filter { $0 == Int($1) }.count
        }
        let n = Double(max(data.count, 1))
        return (lossSum / n, Double(correct) / n)
    }

    public func evaluate(_ data: Dataset, chunk: Int = Trainer.evaluationChunk) throws -> (loss: Double, accuracy: Double) {
        try evaluate(try DeviceDataset(data, on: device), chunk: chunk)
    }

    private func requireDevice(_ data: DeviceDataset) throws {
        guard data.images.device == device else {
            throw DeviceError.deviceMismatch(op: "Trainer", device, data.images.device)
        }
    }
}
