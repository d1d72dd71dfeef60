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
        switch self {
        case .constant: return base
        case .cosine:
            let t = Double(step) / Double(max(totalSteps, 1))
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
    case nonFiniteLoss(epoch: Int, step: Int, value: Float)
    case interrupted(epoch: Int, step: Int)

    public var description: String {
        switch self {
        case let .nonFiniteLoss(epoch, step, value):
            return "loss became \(value) at epoch \(epoch), step \(step); stopped (try a smaller --lr)"
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

    /// Input and label tensors reused across steps, one pair per batch size seen.
    private var batchTensors: [Int: (x: Tensor, y: Tensor)] = [:]
    /// The loss's buffers, reused across steps.
    private let workspace = Workspace()

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
        if let bad = data.labels.firstIndex(where: { $0 < 0 || $0 >= Float(classes) || $0 != $0.rounded() }) {
            throw DataError(source, "label \(data.labels[bad]) of example \(bad) is out of range for a model of \(classes) classes")
        }
    }

    /// One pass over `data` in the order `sampler` gives for `epoch`. Returns the mean training loss.
    /// `progress` is called every `reportEvery` steps and at the end; `shouldStop` is polled at each report.
    public func trainEpoch(_ data: DeviceDataset, epoch: Int, reportEvery: Int = 50,
                           shouldStop: () -> Bool = { false },
                           progress: (StepReport) -> Void = { _ in }) throws -> Float {
        try requireDevice(data)
        let sampler = BatchSampler(count: data.count, batchSize: options.batchSize, seed: options.seed)
        // The epoch's order goes to the device once; each step gathers its rows there.
        let order = try Tensor(sampler.order(epoch: epoch).map(Float.init), shape: [data.count], on: device)
        let ranges = sampler.batchRanges
        let start = Date()
        let pending = try workspace.tensor("pending", [1], on: device)  // device-side loss sum since the last report
        try pending.fill(0)
        var pendingSteps = 0
        var total = 0.0
        for (step, range) in ranges.enumerated() {
            optimizer.lr = options.schedule.rate(base: options.lr, step: (epoch - 1) * ranges.count + step,
                                                 totalSteps: options.epochs * ranges.count)
            let (x, y) = try batch(data, order: order, range)
            let pred = try model.forward(x)
            let grad = try workspace.tensor("grad", pred.shape, on: device)
            let batchLoss = try workspace.tensor("loss", [1], on: device)
            try loss.compute(pred, y, grad: grad, losses: try workspace.tensor("losses", [range.count], on: device),
                             into: batchLoss)
            try model.zeroGrad()
            _ = try model.backward(grad, needsInputGradient: false)
            try optimizer.step()

            try pending.elementwise(.add, batchLoss, into: pending)
            pendingSteps += 1
            if (step + 1) % reportEvery == 0 || step + 1 == ranges.count {
                // The only host synchronisation inside an epoch: one loss read per report.
                let mean = try pending.item() / Float(pendingSteps)
                guard mean.isFinite else { throw TrainingError.nonFiniteLoss(epoch: epoch, step: step + 1, value: mean) }
                total += Double(mean) * Double(pendingSteps)
                let elapsed = Date().timeIntervalSince(start)
                progress(StepReport(epoch: epoch, step: step + 1, steps: ranges.count, runningLoss: mean,
                                    itemsPerSecond: Double(range.upperBound) / max(elapsed, 1e-9), elapsed: elapsed))
                try pending.fill(0)
                pendingSteps = 0
                if shouldStop() { throw TrainingError.interrupted(epoch: epoch, step: step + 1) }
            }
        }
        return Float(total / Double(max(ranges.count, 1)))
    }

    /// The same, uploading a host dataset first (for one-off use; keep a `DeviceDataset` across epochs).
    public func trainEpoch(_ data: Dataset, epoch: Int, reportEvery: Int = 50,
                           shouldStop: () -> Bool = { false },
                           progress: (StepReport) -> Void = { _ in }) throws -> Float {
        try trainEpoch(try DeviceDataset(data, on: device), epoch: epoch, reportEvery: reportEvery,
                       shouldStop: shouldStop, progress: progress)
    }

    /// The mean loss and the accuracy of the model on `data`, in chunks of `chunk` examples.
    public func evaluate(_ data: DeviceDataset, chunk: Int = 1000) throws -> (loss: Double, accuracy: Double) {
        try requireDevice(data)
        let identity = try Tensor((0..<data.count).map(Float.init), shape: [data.count], on: device)
        var lossSum = 0.0
        var correct = 0
        for start in stride(from: 0, to: data.count, by: chunk) {
            let range = start..<min(start + chunk, data.count)
            let (x, y) = try batch(data, order: identity, range)
            let pred = try model.forward(x)
            lossSum += Double(try loss(pred, y).item()) * Double(range.count)
            let predicted = try loss.predictedClasses(pred, classes: classes)
            correct += zip(predicted, data.hostLabels[range]).filter { $0 == Int($1) }.count
        }
        let n = Double(max(data.count, 1))
        return (lossSum / n, Double(correct) / n)
    }

    public func evaluate(_ data: Dataset, chunk: Int = 1000) throws -> (loss: Double, accuracy: Double) {
        try evaluate(try DeviceDataset(data, on: device), chunk: chunk)
    }

    private func requireDevice(_ data: DeviceDataset) throws {
        guard data.images.device == device else {
            throw DeviceError.deviceMismatch(op: "Trainer", device, data.images.device)
        }
    }

    /// The rows `order[range]` of `data`, gathered on the device into input and label tensors reused across steps.
    private func batch(_ data: DeviceDataset, order: Tensor, _ range: Range<Int>) throws -> (Tensor, Tensor) {
        let n = range.count
        if batchTensors[n] == nil {
            batchTensors[n] = (try Tensor.empty([n, data.features], on: device), try Tensor.empty([n], on: device))
        }
        let (x, y) = batchTensors[n]!
        try x.gatherRows(from: data.images, order: order, offset: range.lowerBound)
        try y.gatherRows(from: data.labels, order: order, offset: range.lowerBound)
        return (x, y)
    }
}

/// A dataset resident on one device: uploaded once, so that training gathers its minibatches there.
public final class DeviceDataset {
    /// [count, features]
    public let images: Tensor
    /// [count]
    public let labels: Tensor
    /// The labels on the host, for accuracy.
    public let hostLabels: [Float]
    public let count: Int
    public let features: Int

    public init(_ data: Dataset, on device: DeviceTag) throws {
        images = try Tensor(data.images, shape: [data.count, data.features], on: device)
        labels = try Tensor(data.labels, shape: [data.count], on: device)
        hostLabels = data.labels
        count = data.count
        features = data.features
    }

    /// Uploads byte images normalised with `normalization`, converting a chunk at a time, so the host never holds
    /// the float copy.
    public init(_ data: RawDataset, normalization: Normalization, on device: DeviceTag) throws {
        let images = try Tensor.empty([data.count, data.features], on: device)
        self.images = images
        let table = RawDataset.table(normalization)
        var chunk = [Float](repeating: 0, count: 1 << 20)
        var start = 0
        while start < data.pixels.count {
            let n = min(chunk.count, data.pixels.count - start)
            for i in 0..<n { chunk[i] = table[Int(data.pixels[start + i])] }
            try chunk.withUnsafeBufferPointer { try images.upload(UnsafeBufferPointer(rebasing: $0[0..<n]), at: start) }
            start += n
        }
        labels = try Tensor(data.labels, shape: [data.count], on: device)
        hostLabels = data.labels
        count = data.count
        features = data.features
    }
}
