import Foundation

/// A multi-layer perceptron: Linear + activation, ..., Linear. Each hidden layer's activation is fused into its
/// Linear; the state-dict names are those of PyTorch's `nn.Sequential(Linear, ReLU, Linear, ...)`.
public enum MLP {
    /// sizes = [inputs, hidden..., outputs]; layer i's weights come from `seed + i`, so the same seed gives the
    /// same model on every device.
    public static func make(sizes: [Int], activation: Activation = .relu, initializer: Initializer = .kaimingNormal(),
                            seed: UInt64, on device: DeviceTag) throws -> Sequential {
        guard sizes.count >= 2, sizes.allSatisfy({ $0 > 0 }) else {
            throw DeviceError.invalidArgument(op: "MLP", "layer sizes must be ≥ 2 positive numbers, got \(sizes)")
        }
        let last = sizes.count - 2
        return Sequential(try (0...last).map { i in
            try Linear(sizes[i], sizes[i + 1], activation: i < last ? activation : nil, initializer: initializer,
                       seed: seed &+ UInt64(i), on: device)
        })
    }
}

extension MLP {
    /// Checks, before anything is allocated, that a model of `sizes` fits `device` when run on batches of up to
    /// `rows` rows: every weight matrix and activation fits one tensor (at most 2³¹ − 1 elements and the device's
    /// largest buffer), and parameters, gradients, optimiser state and activations fit its memory.
    /// - Throws: `DeviceError.invalidArgument` naming the layer and the sizes.
    /// With `training` false, only the values and a forward pass's activations are counted (evaluation).
    public static func checkFits(sizes: [Int], rows: Int, on device: DeviceTag, training: Bool = true) throws {
        guard sizes.count >= 2, sizes.allSatisfy({ $0 > 0 }) else {
            throw DeviceError.invalidArgument(op: "MLP", "layer sizes must be ≥ 2 positive numbers, got \(sizes)")
        }
        let limits = device.memoryLimits
        let maxElements = min(Int(Int32.max), limits.maxBuffer / 4)
        let memory = Double(limits.total)
        var bytes = 0.0
        for i in 0..<(sizes.count - 1) {
            let weights = Double(sizes[i]) * Double(sizes[i + 1])
            let activations = Double(rows) * Double(max(sizes[i], sizes[i + 1]))
            for (what, count) in [("a weight matrix", weights), ("an activation of \(rows) rows", activations)]
                where count > Double(maxElements) {
                throw DeviceError.invalidArgument(op: "MLP", "layer \(i + 1) (\(sizes[i])→\(sizes[i + 1])) "
                    + "needs \(what) of "
                    + String(format: "%.0f", count) + " elements; \(device) allows at most \(maxElements) per tensor")
            }
            // Training: value, grad, velocity; y, dy, dx. Evaluation: the value; input and output.
            bytes += training ? 4 * (3 * (weights + Double(sizes[i + 1])) + 3 * activations)
                              : 4 * (weights + Double(sizes[i + 1]) + 2 * activations)
        }
        let hostSide = device.isOpenCL && !(OpenCLRuntime.shared.devices.indices.contains(device.index)
                                            && OpenCLRuntime.shared.devices[device.index].isCPU)
        if bytes > memory {
            let limit = hostSide ? "\(device) has \(HostMemory.gib(memory))"
                : "this process can get \(HostMemory.gib(memory)) more on \(device) "
                    + "(limited by \(HostMemory.available().limit))"
            throw DeviceError.invalidArgument(op: "MLP", "a model of sizes \(sizes) needs about "
                + "\(HostMemory.gib(bytes)) for "
                + "\(training ? "training" : "evaluation") on batches of \(rows) rows but \(limit)")
        }
        if hostSide {
            // Saving and reading back go through host copies of the parameters (values, PyTorch layout, file bytes).
            let parameters = (0..<(sizes.count - 1)).reduce(0.0) { $0 + Double(sizes[$1] + 1) * Double(sizes[$1 + 1]) }
            try HostMemory.require(3 * 4 * parameters, for: "the host copies of a model of sizes \(sizes)")
        }
    }
}
