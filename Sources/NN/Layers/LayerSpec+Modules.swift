extension LayerSpec {
    /// The modules for `specs`: each linear entry followed by an activation becomes one `Linear` with that activation
    /// fused (the same two indices, as PyTorch counts them); any other activation becomes an `ActivationLayer`.
    /// Weights come from `seed + i` for the i-th linear layer, as `MLP.make` draws them.
    public static func modules(_ specs: [LayerSpec], initializer: Initializer = .kaimingNormal(), seed: UInt64,
                               on device: DeviceTag) throws -> Sequential {
        var layers: [any Module] = []
        var index = 0, linears = 0
        while index < specs.count {
            switch specs[index] {
            case let .linear(i, o):
                var fused: Activation?
                if index + 1 < specs.count, case let .activation(f) = specs[index + 1] { fused = f }
                layers.append(try Linear(i, o, activation: fused, initializer: initializer,
                                         seed: seed &+ UInt64(linears), on: device))
                linears += 1
                index += fused == nil ? 1 : 2
            case let .activation(f):
                layers.append(ActivationLayer(f))
                index += 1
            }
        }
        return Sequential(layers)
    }
}
