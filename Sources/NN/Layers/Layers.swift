/// A fully connected layer, y = f(x·w + b), with w stored [in, out] as in the fast.ai lessons, and an optional
/// activation f fused into it. Forward is one kernel: the product with the bias and f as its epilogue, reading the
/// first layer's rows in place through the batch's index list. Backward is one kernel for the weight and bias
/// gradients (plus one that applies f′ and sums the bias gradient, with an activation), and the input gradient's
/// product.
public final class Linear: Module, CountsForwards, ChecksBackwardByNeed {
    /// Input width.
    public let inFeatures: Int
    /// Output width.
    public let outFeatures: Int
    /// The activation applied after the bias, or nil for a plain affine layer.
    public let activation: Activation?
    /// w: [in, out].
    public let weight: Parameter
    /// b: [out].
    public let bias: Parameter
    /// What a forward keeps for its backward: the rows (their source and order, with their versions then), x·w + b
    /// (with an activation, for f′ on the way back) and the weight's version (dx = dz·wᵀ reads it).
    private struct Saved {
        let rows: Rows, source: SavedTensor, order: SavedTensor?, preActivation: SavedTensor, weight: SavedVersion
        /// Which parameters took a gradient at the forward (as the tape, which fixes it when an op is recorded: one
        /// unfrozen since gets none from this forward).
        let trains: (weight: Bool, bias: Bool)

        /// The rows and the pre-activation, or an error when one changed since the forward (or the weight, when the
        /// input's gradient is asked for: PyTorch's product saves the weight only then).
        func checked(needsInputGradient: Bool) throws -> (rows: Rows, preActivation: Tensor) {
            _ = try source.checked("Linear.backward")
            _ = try order?.checked("Linear.backward", "its batch's index list")
            if needsInputGradient {
                try weight.check("Linear.backward", "its weight, which dx = dz·wᵀ reads,")
            }
            return (rows, try preActivation.checked("Linear.backward", "its pre-activation x·w + b (a buffer of "
                + "the layer's, written again by a later forward while buffer reuse is on)"))
        }
    }
    /// The last forward's, until a backward goes through it (the tape keeps each output's own: `Module.onTape`).
    private var last: ForwardState<Saved>?
    private enum Buffer: Int, CaseIterable { case z, y, dz, db, dx }
    private let workspace = Workspace<Buffer>(reuse: false)
    let forwards = CallCount()

    /// A layer whose weights are drawn from `initializer` with `seed` on the host, then placed on `device`,
    /// so the same seed gives the same layer on every device. The bias starts at zero.
    public init(_ inFeatures: Int, _ outFeatures: Int, activation: Activation? = nil,
                initializer: Initializer = .kaimingNormal(), seed: UInt64, on device: DeviceTag = .cpu) throws {
        guard inFeatures > 0, outFeatures > 0 else {
            throw DeviceError.invalidArgument(op: "Linear", "sizes must be positive, "
                + "got \(inFeatures)→\(outFeatures)")
        }
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.activation = activation
        weight = try Parameter(name: "weight", value: try initializer.tensor(
            [inFeatures, outFeatures], fanIn: inFeatures, fanOut: outFeatures, seed: seed, on: device))
        bias = try Parameter(name: "bias", value: try Tensor.zeros([outFeatures], on: device))
    }

    public var parameters: [Parameter] { [weight, bias] }

    /// `linear(in,out)`, then the activation when there is one: in PyTorch's `nn.Sequential` the activation is a
    /// module of its own.
    public var layerSpecs: [LayerSpec]? {
        [.linear(inFeatures: inFeatures, outFeatures: outFeatures)] + (activation.map { [.activation($0)] } ?? [])
    }
    public var outputFeatures: Int? { outFeatures }
    public func setBufferReuse(_ enabled: Bool) { workspace.reuse = enabled }
    public var reusesBuffers: Bool { workspace.reuse }

    /// x: [batch, in] → [batch, out]. A view (a row slice, a transpose) is read through a dense copy.
    public func forward(_ x: Tensor) throws -> Tensor {
        // (Kept detached: the input may be an output whose tape node holds this layer — see SavedTensor.)
        try recorded(try compute(Rows(try Tensor.withoutGradients { try x.detached().contiguous() })), from: x)
    }

    /// The rows x (read in place): [batch, in] → [batch, out]
    public func forward(_ x: Rows) throws -> Tensor { try recorded(try compute(x), from: nil) }

    private func compute(_ x: Rows) throws -> (Tensor, ForwardState<Saved>) {
        forwards.next()
        // z is the pre-activation x·w + b (kept for backward); y = f(z).
        let z = try workspace.tensor(.z, [x.count, outFeatures], on: x.device)
        let y = try activation.map { _ in try workspace.tensor(.y, z.shape, on: x.device) }
        try Tensor.linear(x, weight: weight.value, bias: bias.value, activation: activation, preActivation: z,
                          output: y)
        let saved = ForwardState(Saved(rows: x, source: SavedTensor(x.source), order: x.order.map(SavedTensor.init),
                                       preActivation: SavedTensor(z), weight: SavedVersion(weight.value),
                                       trains: (!weight.isFrozen, !bias.isFrozen)))
        last = saved
        return (y ?? z, saved)
    }

    /// The output on the tape, going back through its own forward's state.
    private func recorded(_ forward: (Tensor, ForwardState<Saved>), from x: Tensor?) -> Tensor {
        let (y, state) = forward
        // (The input's gradient is asked for when x takes one.)
        let needsInput = x?.requiresGrad ?? false
        return onTape(y, from: x, check: {
            try state.checkTape("Linear.backward")
            _ = try state.saved.checked(needsInputGradient: needsInput)
        }, backward: { dy, needsInputGradient in
            if self.last === state { self.last = nil }  // (a hand-called backward would go through it again)
            return try self.backward(dy, needsInputGradient: needsInputGradient,
                                     through: state.saved.checked(needsInputGradient: needsInputGradient),
                                     trains: state.saved.trains)
        })
    }

    public func checkBackward() throws { try checkBackward(needsInputGradient: true) }

    func checkBackward(needsInputGradient: Bool) throws { _ = try lastChecked(needsInputGradient: needsInputGradient) }

    /// The last forward and what it kept, or what `backward` refuses: no forward, or something it kept changed.
    private func lastChecked(needsInputGradient: Bool) throws
        -> (state: ForwardState<Saved>, saved: (rows: Rows, preActivation: Tensor)) {
        guard let last else {
            throw DeviceError.invalidArgument(op: "Linear.backward", "no forward to go back through: called before "
                + "forward, twice after one, or after loss.backward() went back through it")
        }
        return (last, try last.saved.checked(needsInputGradient: needsInputGradient))
    }

    /// dz = dy·f′(z); dw += xᵀ·dz, db += Σ_rows dz, dx = dz·wᵀ.
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        let (state, saved) = try lastChecked(needsInputGradient: needsInputGradient)
        // One backward per forward (a second would add the same gradients again), and not the tape's too.
        (last, state.wentBackByHand) = (nil, true)
        return try backward(dy, needsInputGradient: needsInputGradient, through: saved, trains: state.saved.trains)
    }

    private func backward(_ dy: Tensor, needsInputGradient: Bool, through saved: (rows: Rows, preActivation: Tensor),
                          trains: (weight: Bool, bias: Bool)) throws -> Tensor? {
        // (The weight is a leaf on the tape: its product with dy is not an op to record.)
        try Tensor.withoutGradients {
            try backwardPass(dy, needsInputGradient: needsInputGradient, x: saved.rows, z: saved.preActivation,
                             trains: trains)
        }
    }

    private func backwardPass(_ dy: Tensor, needsInputGradient: Bool, x: Rows, z: Tensor,
                              trains: (weight: Bool, bias: Bool)) throws -> Tensor? {
        // A frozen parameter (`Parameter.isFrozen`), now or at the forward, gets no gradient: its buffer is not
        // touched, so it reads as none and the optimisers leave it as it is.
        let dw = weight.isFrozen || !trains.weight ? nil : weight.gradientForBackward()
        let db = bias.isFrozen || !trains.bias ? nil : bias.gradientForBackward()
        guard dw != nil || db != nil || needsInputGradient else { return nil }
        var dz = dy
        if let activation {
            // (With a frozen bias its sums go to a scratch buffer: the kernel computes them with dz.)
            dz = try Tensor.biasActivationBackward(activation, preActivation: z, dy,
                                                   db: try db?.tensor ?? workspace.tensor(.db, [outFeatures],
                                                                                           on: dy.device),
                                                   accumulate: db?.accumulate ?? false,
                                                   into: try workspace.tensor(.dz, dy.shape, on: dy.device))
        }
        // Without an activation the bias gradient comes from the weight gradient's kernel (dy's column sums).
        let fusedBias = activation == nil && dw != nil && db?.accumulate == dw?.accumulate
        if activation == nil, let db, !fusedBias {
            try Tensor.addBiasBackward(dy, into: db.tensor, accumulate: db.accumulate)
        }
        if let dw {
            try Tensor.linearBackward(x, dz, weightGradient: dw.tensor, biasGradient: fusedBias ? db?.tensor : nil,
                                      accumulate: dw.accumulate)
        }
        guard needsInputGradient else { return nil }
        return try dz.matmul(weight.value, transposeOther: true,
                             into: try workspace.tensor(.dx, [x.count, inFeatures], on: dy.device))
    }

    public func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix {
        guard x.cols == inFeatures, params.count == 2, params[0].count == inFeatures * outFeatures,
              params[1].count == outFeatures else {
            return DoubleMatrix(rows: x.rows, cols: 0, values: [])  // does not fit: GradientCheck names it
        }
        let (w, b) = (params[0], params[1])
        var y = DoubleMatrix(rows: x.rows, cols: outFeatures, values: .init(repeating: 0, count: x.rows * outFeatures))
        for i in 0..<x.rows {
            for j in 0..<outFeatures {
                var acc = b[j]
                for p in 0..<inFeatures { acc += x[i, p] * w[p * outFeatures + j] }
                y[i, j] = activation.map { $0(acc) } ?? acc
            }
        }
        return y
    }
}

/// An activation on its own, as a layer: y = f(x), elementwise.
public final class ActivationLayer: Module, CountsForwards {
    /// The activation applied.
    public let function: Activation
    /// The last forward's input, until a backward goes through it (the tape keeps each output's own).
    private var input: ForwardState<SavedTensor>?
    private enum Buffer: Int, CaseIterable { case y, dx }
    private let workspace = Workspace<Buffer>(reuse: false)
    let forwards = CallCount()

    /// A layer applying `function`.
    public init(_ function: Activation) { self.function = function }
    public var parameters: [Parameter] { [] }
    public var layerSpecs: [LayerSpec]? { [.activation(function)] }
    public func setBufferReuse(_ enabled: Bool) { workspace.reuse = enabled }
    public var reusesBuffers: Bool { workspace.reuse }

    public func forward(_ x: Tensor) throws -> Tensor {
        forwards.next()
        let state = ForwardState(SavedTensor(x))
        input = state
        // (The module is the op on the tape, not the activation: computed from the detached input.)
        let y = try state.saved.tensor.activation(function, into: try workspace.tensor(.y, x.shape, on: x.device))
        return onTape(y, from: x, check: {
            try state.checkTape("ActivationLayer.backward")
            _ = try state.saved.checked("ActivationLayer.backward")
        }, backward: { dy, needsInputGradient in
            if self.input === state { self.input = nil }  // (a hand-called backward would go through it again)
            return try self.backward(dy, needsInputGradient: needsInputGradient,
                                     at: state.saved.checked("ActivationLayer.backward"))
        })
    }

    public func checkBackward() throws {
        guard let state = input else {
            throw DeviceError.invalidArgument(op: "ActivationLayer.backward", "no forward to go back through: called "
                + "before forward, twice after one, or after loss.backward() went back through it")
        }
        _ = try state.saved.checked("ActivationLayer.backward")
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        try checkBackward()
        guard let state = input else { return nil }
        // One backward per forward, and not the tape's too.
        (input, state.wentBackByHand) = (nil, true)
        return try backward(dy, needsInputGradient: needsInputGradient, at: state.saved.tensor)
    }

    private func backward(_ dy: Tensor, needsInputGradient: Bool, at x: Tensor) throws -> Tensor? {
        guard needsInputGradient else { return nil }
        return try Tensor.withoutGradients {
            try x.activationBackward(function, dy, into: try workspace.tensor(.dx, x.shape, on: x.device))
        }
    }

    public func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix {
        DoubleMatrix(rows: x.rows, cols: x.cols, values: x.values.map { function($0) })
    }
}
