/// A multi-layer perceptron: Linear, ReLU, Linear, ReLU, ..., Linear, in PyTorch `nn.Sequential` order.
public enum MLP {
    /// sizes = [inputs, hidden..., outputs]; layer i's weights come from `seed + i`, so the same seed gives the
    /// same model on every device.
    public static func make(sizes: [Int], initializer: Initializer = .kaimingNormal(), seed: UInt64,
                            on device: DeviceTag) throws -> Sequential {
        guard sizes.count >= 2, sizes.allSatisfy({ $0 > 0 }) else {
            throw DeviceError.invalidArgument(op: "MLP", "layer sizes must be ≥ 2 positive numbers, got \(sizes)")
        }
        var layers: [any Module] = []
        for i in 0..<(sizes.count - 1) {
            if i > 0 { layers.append(ReLU()) }
            layers.append(try Linear(sizes[i], sizes[i + 1], initializer: initializer, seed: seed &+ UInt64(i), on: device))
        }
        return Sequential(layers)
    }
}
