/// Batch normalisation, what `BatchNorm1d` ([N, C] or [N, C, L]) and `BatchNorm2d` ([N, C, H, W]) share, as PyTorch's:
/// each channel normalised to mean 0 and variance 1, then scaled by `weight` (γ, ones at first) and shifted by `bias`
/// (β, zeros). In training mode with the batch's statistics (the biased variance), which also move the running
/// statistics: r ← (1 − momentum)·r + momentum·batch, the variance unbiased (n / (n − 1)); in evaluation mode with
/// the running statistics. Written in tensor ops, its gradients from the tape.
///
/// Under data-parallel training each replica normalises with its own share of the batch and keeps its own running
/// statistics, as PyTorch's `DistributedDataParallel` does without `SyncBatchNorm`; a checkpoint keeps the first
/// replica's.
public class BatchNorm: TapeModule {
    /// The input's rank: 2 or 3 for `BatchNorm1d`, 4 for `BatchNorm2d`.
    public enum Kind: Sendable {
        /// [N, C] or [N, C, L].
        case oneD
        /// [N, C, H, W].
        case twoD
    }

    /// Which inputs it takes.
    public let kind: Kind
    /// C.
    public let features: Int
    /// Added to the variance before its square root.
    public let eps: Float
    /// The weight of a batch's statistics in the running ones.
    public let momentum: Float
    /// γ [C] and β [C].
    public let weight: Parameter, bias: Parameter
    /// The running mean [C] (zeros at first) and the running unbiased variance [C] (ones at first).
    public private(set) var runningMean: Tensor, runningVar: Tensor
    /// Batches that moved the running statistics (PyTorch's `num_batches_tracked`).
    public private(set) var batchesTracked = 0
    public private(set) var isTraining = true
    public let tape = TapeRecord()

    /// - Throws: `DeviceError.invalidArgument` naming the layer for fewer than one feature, a negative or non-finite
    ///   eps, or a momentum outside 0...1.
    init(_ kind: Kind, features: Int, eps: Float, momentum: Float, on device: DeviceTag) throws {
        let name = kind == .oneD ? "BatchNorm1d" : "BatchNorm2d"
        guard features >= 1, eps >= 0, eps.isFinite, (0...1).contains(momentum) else {
            throw DeviceError.invalidArgument(op: name, "needs features ≥ 1, eps ≥ 0 and momentum in 0...1, got "
                + "\(features), \(eps), \(momentum)")
        }
        (self.kind, self.features, self.eps, self.momentum) = (kind, features, eps, momentum)
        weight = try Parameter(name: "weight", value: try Tensor.ones([features], on: device))
        bias = try Parameter(name: "bias", value: try Tensor.zeros([features], on: device))
        runningMean = try Tensor.zeros([features], on: device)
        runningVar = try Tensor.ones([features], on: device)
    }

    private var name: String { kind == .oneD ? "BatchNorm1d" : "BatchNorm2d" }
    public var parameters: [Parameter] { [weight, bias] }
    public func setTraining(_ training: Bool) { isTraining = training }

    /// Sets the running statistics (from a checkpoint): `mean` and `variance` of [C] on this layer's device.
    /// - Throws: `DeviceError.invalidArgument` naming the layer when a shape or the count is wrong.
    public func setRunningStatistics(mean: Tensor, variance: Tensor, batchesTracked: Int) throws {
        for (what, t) in [("running_mean", mean), ("running_var", variance)] where t.shape != [features] {
            throw DeviceError.invalidArgument(op: name, "\(what) has shape \(t.shape), the layer's \(features) "
                + "features need [\(features)]")
        }
        guard batchesTracked >= 0 else {
            throw DeviceError.invalidArgument(op: name, "num_batches_tracked is negative (\(batchesTracked))")
        }
        try Tensor.withoutGradients {
            try runningMean.copy(from: mean)
            try runningVar.copy(from: variance)
        }
        self.batchesTracked = batchesTracked
    }

    public var layerSpecs: [LayerSpec]? {
        [.batchNorm(features: features, twoD: kind == .twoD, eps: eps, momentum: momentum)]
    }

    /// `running_mean`, `running_var` and `num_batches_tracked` (shape [], on cpu).
    public var namedBuffers: [(name: String, value: Tensor)] {
        [("running_mean", runningMean), ("running_var", runningVar),
         ("num_batches_tracked", (try? Tensor([Float(batchesTracked)], shape: [], on: .cpu)) ?? runningMean)]
    }

    /// Sets the running statistics from `running_mean`, `running_var` and `num_batches_tracked` (each optional).
    public func loadBuffers(_ values: [String: Tensor]) throws {
        var count = batchesTracked
        if let tracked = values["num_batches_tracked"] {
            let value = try tracked.toArray()
            guard value.count == 1, let n = Int(exactly: value[0].rounded()), n >= 0 else {
                throw DeviceError.invalidArgument(op: name, "num_batches_tracked must be one count ≥ 0, got "
                    + "\(value.prefix(3))")
            }
            count = n
        }
        try setRunningStatistics(mean: values["running_mean"] ?? runningMean,
                                 variance: values["running_var"] ?? runningVar, batchesTracked: count)
    }

    public func to(_ device: DeviceTag) throws {
        for p in parameters { try p.to(device) }
        (runningMean, runningVar) = (try runningMean.to(device), try runningVar.to(device))
    }

    /// x: [N, C] or [N, C, L] (1d), [N, C, H, W] (2d) → the same shape.
    public func compute(_ x: Tensor) throws -> Tensor {
        let ranks = kind == .oneD ? [2, 3] : [4]
        guard ranks.contains(x.shape.count), x.shape[1] == features else {
            throw DeviceError.invalidArgument(op: name, "expects input of shape "
                + (kind == .oneD ? "[N, \(features)] or [N, \(features), L]" : "[N, \(features), H, W]")
                + ", got \(x.shape)")
        }
        let (n, c) = (x.shape[0], features), l = x.shape.dropFirst(2).reduce(1, *)
        let v = try x.reshaped([n, c, l])
        // An empty batch has no statistics: its (empty) output leaves the running ones as they are (PyTorch's would
        // turn NaN).
        if isTraining && x.count > 0 {
            guard n * l > 1 else {
                throw DeviceError.invalidArgument(op: name, "needs more than one value per channel in training "
                    + "mode, got input of shape \(x.shape)")
            }
            let (y, mean, variance) = try v.batchNorm(weight: weight.value, bias: bias.value, eps: eps)
            try Tensor.withoutGradients {
                let count = Float(n * l)
                try runningMean.copy(from: try runningMean * (1 - momentum) + mean * momentum)
                try runningVar.copy(from: try runningVar * (1 - momentum) + variance * (momentum * count / (count - 1)))
            }
            batchesTracked = batchesTracked.countedOnce
            return try y.reshaped(x.shape)
        }
        return try v.batchNorm(weight: weight.value, bias: bias.value, eps: eps,
                               statistics: (runningMean, runningVar)).y.reshaped(x.shape)
    }
}

/// PyTorch's `nn.BatchNorm1d(features)`: input [N, C] or [N, C, L].
public final class BatchNorm1d: BatchNorm {
    /// C features; PyTorch's defaults for eps and momentum.
    /// - Throws: `DeviceError.invalidArgument` as `BatchNorm`.
    public init(_ features: Int, eps: Float = 1e-5, momentum: Float = 0.1, on device: DeviceTag = .cpu) throws {
        try super.init(.oneD, features: features, eps: eps, momentum: momentum, on: device)
    }
}

/// PyTorch's `nn.BatchNorm2d(features)`: input [N, C, H, W].
public final class BatchNorm2d: BatchNorm {
    /// C channels; PyTorch's defaults for eps and momentum.
    /// - Throws: `DeviceError.invalidArgument` as `BatchNorm`.
    public init(_ features: Int, eps: Float = 1e-5, momentum: Float = 0.1, on device: DeviceTag = .cpu) throws {
        try super.init(.twoD, features: features, eps: eps, momentum: momentum, on: device)
    }
}
