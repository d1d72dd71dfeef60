/// `Linear` written with tensor ops, y = f(x·w + b), its gradients from the tape: the same layer as `Linear` (same
/// initialisation from the same seed, same checkpoint entries, so a checkpoint of it loads as `Linear`), computed
/// op by op instead of by the fused kernels. The reference the fused layer is checked against, and the template for
/// a layer of your own (see `TapeModule`).
public final class TapeLinear: TapeModule {
    /// Input and output widths.
    public let inFeatures: Int, outFeatures: Int
    /// The activation applied after the bias, or nil.
    public let activation: Activation?
    /// w: [in, out], b: [out].
    public let weight: Parameter, bias: Parameter
    public let tape = TapeRecord()

    /// Weights drawn as `Linear(inFeatures, outFeatures, activation:, initializer:, seed:, on:)` draws them.
    public init(_ inFeatures: Int, _ outFeatures: Int, activation: Activation? = nil,
                initializer: Initializer = .kaimingNormal(), seed: UInt64, on device: DeviceTag = .cpu) throws {
        let twin = try Linear(inFeatures, outFeatures, activation: activation, initializer: initializer, seed: seed,
                              on: device)
        (self.inFeatures, self.outFeatures, self.activation) = (inFeatures, outFeatures, activation)
        weight = try Parameter(name: "weight", value: twin.weight.value)
        bias = try Parameter(name: "bias", value: twin.bias.value)
    }

    public var parameters: [Parameter] { [weight, bias] }
    public var layerSpecs: [LayerSpec]? {
        [.linear(inFeatures: inFeatures, outFeatures: outFeatures)] + (activation.map { [.activation($0)] } ?? [])
    }
    public var outputFeatures: Int? { outFeatures }

    /// x: [batch, in] → [batch, out]
    public func compute(_ x: Tensor) throws -> Tensor { try addBiasAndActivate(try x.matmul(weight.value)) }

    /// The same on a dataset's minibatch, its rows read in place by the product (no gathered copy).
    public func compute(rows: Rows) throws -> Tensor? { try addBiasAndActivate(try rows.matmul(weight.value)) }

    private func addBiasAndActivate(_ product: Tensor) throws -> Tensor {
        let z = try product + bias.value
        return try activation.map { try z.activation($0) } ?? z
    }
}
