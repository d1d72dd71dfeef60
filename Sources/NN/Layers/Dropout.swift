/// PyTorch's `nn.Dropout(p)`: in training mode each element is zeroed with probability `p` and the others scaled
/// by 1/(1 − p); in evaluation mode the input passes unchanged. The masks come from a seeded stream (one draw per
/// training forward, placed by `setRandomStream`), so a run is the same on every device and every time,
/// and a resumed run draws what the run never stopped would have.
public final class Dropout: TapeModule {
    /// The probability of zeroing an element.
    public let p: Float
    public private(set) var isTraining = true
    private var seed: UInt64
    /// The training forwards drawn so far, or where `setRandomStream` put the stream: the next mask is this draw.
    public private(set) var draws: UInt64 = 0
    public let tape = TapeRecord()

    /// A dropout of probability `p` drawing from the stream of `seed` (until `setRandomStream` places it elsewhere,
    /// as `Trainer` does before each step).
    /// - Throws: `DeviceError.invalidArgument` naming Dropout for `p` outside 0...1.
    public init(_ p: Float = 0.5, seed: UInt64) throws {
        guard (0...1).contains(p) else {
            throw DeviceError.invalidArgument(op: "Dropout", "p is a probability in 0...1, got \(p)")
        }
        self.p = p
        self.seed = seed
    }

    public var parameters: [Parameter] { [] }
    public var layerSpecs: [LayerSpec]? { [.dropout(p: p)] }
    public func setTraining(_ training: Bool) { isTraining = training }
    /// Its masks from here on: the stream of `seed`, at its `draw`-th mask (`Trainer` places it before each step).
    public func setRandomStream(seed: UInt64, draw: UInt64) { (self.seed, draws) = (seed, draw) }

    /// x → x · mask / (1 − p) in training mode (mask: 1 with probability 1 − p), x in evaluation mode.
    public func compute(_ x: Tensor) throws -> Tensor {
        guard isTraining else { return x }
        let draw = draws
        draws &+= 1
        guard p > 0 else { return x }
        guard p < 1 else { return try x * 0 }
        var generator = SeededGenerator(seed: seed, after: draw)
        let keep = try Tensor.withoutGradients {
            try (Tensor.rand(x.shape, seed: generator.next(), on: x.device) .>= p) * (1 / (1 - p))
        }
        return try x * keep
    }
}
