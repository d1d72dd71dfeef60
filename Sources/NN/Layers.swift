/// A fully connected layer, y = x·w + b, with w stored [in, out] as in the seeds.
public final class Linear: Module {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter
    private var input: Tensor?

    /// A layer whose weights are drawn from `initializer` with `seed` on the host, then placed on `device`,
    /// so the same seed gives the same layer on every device. The bias starts at zero.
    public init(_ inFeatures: Int, _ outFeatures: Int, initializer: Initializer = .kaimingNormal(),
                seed: UInt64, on device: DeviceTag = .cpu) throws {
        guard inFeatures > 0, outFeatures > 0 else {
            throw DeviceError.invalidArgument(op: "Linear", "sizes must be positive, got \(inFeatures)→\(outFeatures)")
        }
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = try Parameter(name: "weight", value: try initializer.tensor(
            [inFeatures, outFeatures], fanIn: inFeatures, fanOut: outFeatures, seed: seed, on: device))
        bias = try Parameter(name: "bias", value: try Tensor.zeros([outFeatures], on: device))
    }

    public var parameters: [Parameter] { [weight, bias] }

    /// x: [batch, in] → [batch, out]
    public func forward(_ x: Tensor) throws -> Tensor {
        input = x
        return try x.matmul(weight.value).addingBias(bias.value)
    }

    /// dw += xᵀ·dy, db += Σ_rows dy, dx = dy·wᵀ.
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        guard let x = input else { throw DeviceError.invalidArgument(op: "Linear.backward", "called before forward") }
        try Tensor.gemm(x, dy, into: weight.grad, transA: true, accumulate: true)
        try Tensor.biasBackward(dy, into: bias.grad, accumulate: true)
        return needsInputGradient ? try dy.matmul(weight.value, transposeOther: true) : nil
    }

    public func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix {
        let (w, b) = (params[0], params[1])
        var y = DoubleMatrix(rows: x.rows, cols: outFeatures, values: .init(repeating: 0, count: x.rows * outFeatures))
        for i in 0..<x.rows {
            for j in 0..<outFeatures {
                var acc = b[j]
                for p in 0..<inFeatures { acc += x[i, p] * w[p * outFeatures + j] }
                y[i, j] = acc
            }
        }
        return y
    }
}

/// max(x, 0), elementwise.
public final class ReLU: Module {
    private var input: Tensor?
    public init() {}
    public var parameters: [Parameter] { [] }

    public func forward(_ x: Tensor) throws -> Tensor {
        input = x
        return try x.relu()
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        guard let x = input else { throw DeviceError.invalidArgument(op: "ReLU.backward", "called before forward") }
        return needsInputGradient ? try x.reluBackward(dy) : nil
    }

    public func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix {
        DoubleMatrix(rows: x.rows, cols: x.cols, values: x.values.map { max($0, 0) })
    }
}

/// Layers applied in order; backward runs them in reverse.
public final class Sequential: Module {
    public let layers: [any Module]
    public init(_ layers: [any Module]) { self.layers = layers }

    public var parameters: [Parameter] { layers.flatMap(\.parameters) }

    /// Parameters with PyTorch `nn.Sequential` state-dict names: `0.weight`, `0.bias`, `2.weight`, ...
    public var namedParameters: [(name: String, parameter: Parameter)] {
        layers.enumerated().flatMap { index, layer in layer.parameters.map { ("\(index).\($0.name)", $0) } }
    }

    public func forward(_ x: Tensor) throws -> Tensor {
        try layers.reduce(x) { try $1.forward($0) }
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        var grad = dy
        for (index, layer) in layers.enumerated().reversed() {
            // NOTE: the first layer's input gradient is only needed when our caller asks for it.
            guard let next = try layer.backward(grad, needsInputGradient: index > 0 || needsInputGradient) else {
                return nil
            }
            grad = next
        }
        return grad
    }

    public func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix {
        var rest = params[...]
        return layers.reduce(x) { x, layer in
            let n = layer.parameters.count
            defer { rest = rest.dropFirst(n) }
            return layer.referenceForward(x, Array(rest.prefix(n)))
        }
    }
}
