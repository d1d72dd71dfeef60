/// A fully connected layer, y = x·w + b, with w stored [in, out] as in the seeds.
public final class Linear: Module {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter
    private var input: Tensor?
    private let workspace = Workspace()

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
        let y = try product(x)
        try y.addingBias(bias.value, into: y)
        return y
    }

    /// x·w into this layer's output buffer.
    private func product(_ x: Tensor) throws -> Tensor {
        input = x
        let y = try workspace.tensor("y", [x.shape.first ?? 0, outFeatures], on: x.device)
        try Tensor.gemm(x, weight.value, into: y)
        return y
    }

    /// dw += xᵀ·dy, db += Σ_rows dy, dx = dy·wᵀ.
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        guard let x = input else { throw DeviceError.invalidArgument(op: "Linear.backward", "called before forward") }
        let db = bias.gradForBackward()
        try Tensor.biasBackward(dy, into: db.tensor, accumulate: db.accumulate)
        return try finishBackward(x, dy, needsInputGradient: needsInputGradient)
    }

    /// This layer followed by `relu`, in one pass for the bias and the ReLU: y = max(x·w + b, 0).
    func forward(_ x: Tensor, fusedWith relu: ReLU) throws -> Tensor {
        let y = try product(x)
        try y.addingBiasReLU(bias.value, into: y)
        relu.output = y
        return y
    }

    /// The backward of `forward(_:fusedWith:)`: dy is the gradient at the ReLU's output; the mask and the bias
    /// gradient come from one kernel.
    func backward(_ dy: Tensor, fusedWith relu: ReLU, needsInputGradient: Bool) throws -> Tensor? {
        guard let x = input, let y = relu.output else {
            throw DeviceError.invalidArgument(op: "Linear.backward", "called before forward")
        }
        let db = bias.gradForBackward()
        let dpre = try workspace.tensor("dpre", y.shape, on: y.device)
        try Tensor.biasReluBackward(output: y, dy, dx: dpre, db: db.tensor, accumulate: db.accumulate)
        return try finishBackward(x, dpre, needsInputGradient: needsInputGradient)
    }

    /// dw += xᵀ·dpre, and dx = dpre·wᵀ when asked for.
    private func finishBackward(_ x: Tensor, _ dpre: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        let dw = weight.gradForBackward()
        try Tensor.gemm(x, dpre, into: dw.tensor, transA: true, accumulate: dw.accumulate)
        guard needsInputGradient else { return nil }
        let dx = try workspace.tensor("dx", x.shape, on: x.device)
        try Tensor.gemm(dpre, weight.value, into: dx, transB: true)
        return dx
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

/// max(x, 0), elementwise. It keeps its output for backward: y > 0 exactly where x > 0.
public final class ReLU: Module {
    var output: Tensor?
    private let workspace = Workspace()
    public init() {}
    public var parameters: [Parameter] { [] }

    public func forward(_ x: Tensor) throws -> Tensor {
        let y = try workspace.tensor("y", x.shape, on: x.device)
        try x.relu(into: y)
        output = y
        return y
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        guard let y = output else { throw DeviceError.invalidArgument(op: "ReLU.backward", "called before forward") }
        guard needsInputGradient else { return nil }
        let dx = try workspace.tensor("dx", y.shape, on: y.device)
        try y.reluBackward(dy, into: dx)
        return dx
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

    /// Whether layer `index` is a Linear whose ReLU follows it: the two then run fused.
    private func fusedPair(at index: Int) -> (Linear, ReLU)? {
        guard index + 1 < layers.count, let linear = layers[index] as? Linear, let relu = layers[index + 1] as? ReLU
        else { return nil }
        return (linear, relu)
    }

    public func forward(_ x: Tensor) throws -> Tensor {
        var x = x
        var index = 0
        while index < layers.count {
            if let (linear, relu) = fusedPair(at: index) {
                x = try linear.forward(x, fusedWith: relu)
                index += 2
            } else {
                x = try layers[index].forward(x)
                index += 1
            }
        }
        return x
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        var grad = dy
        var index = layers.count - 1
        while index >= 0 {
            let fused = index > 0 ? fusedPair(at: index - 1) : nil
            let first = fused == nil ? index : index - 1
            // NOTE: the first layer's input gradient is only needed when our caller asks for it.
            let wanted = first > 0 || needsInputGradient
            let next = try fused.map { try $0.0.backward(grad, fusedWith: $0.1, needsInputGradient: wanted) }
                ?? layers[index].backward(grad, needsInputGradient: wanted)
            guard let next else { return nil }
            grad = next
            index = first - 1
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
