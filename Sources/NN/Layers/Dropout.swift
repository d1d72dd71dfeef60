/// PyTorch's `nn.Dropout(p)`: in training mode each element is zeroed with probability `p` and the others scaled
/// by 1/(1 − p); in evaluation mode the input passes unchanged. The masks come from a seeded generator (one draw per
/// forward), so a run is the same on every device and every time.
public final class Dropout: TapeModule {
    /// The probability of zeroing an element.
    public let p: Float
    public private(set) var isTraining = true
    private var generator: SeededGenerator
    public let tape = TapeRecord()

    /// - Throws: `DeviceError.invalidArgument` naming Dropout for `p` outside 0...1.
    public init(_ p: Float = 0.5, seed: UInt64) throws {
        guard (0...1).contains(p) else {
            throw DeviceError.invalidArgument(op: "Dropout", "p is a probability in 0...1, got \(p)")
        }
        self.p = p
        generator = SeededGenerator(seed: seed)
    }

    public var parameters: [Parameter] { [] }
    public var layerSpecs: [LayerSpec]? { [.dropout(p: p)] }
    public func setTraining(_ training: Bool) { isTraining = training }

    /// x → x · mask / (1 − p) in training mode (mask: 1 with probability 1 − p), x in evaluation mode.
    public func compute(_ x: Tensor) throws -> Tensor {
        guard isTraining, p > 0 else { return x }
        guard p < 1 else { return try x * 0 }
        let keep = try Tensor.withoutGradients {
            try (Tensor.rand(x.shape, seed: generator.next(), on: x.device) .>= p) * (1 / (1 - p))
        }
        return try x * keep
    }
}
