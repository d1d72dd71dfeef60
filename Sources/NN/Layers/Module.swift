/// A layer in the fast.ai lessons' pattern: `forward` keeps what `backward` needs; `backward` accumulates the
/// parameters' gradients and returns the input's. Gradients accumulate across calls until `zeroGrad()`.
///
/// Modules hold mutable state (the last input, gradients), so they are not `Sendable`: a model belongs to one task at
/// a time — build it inside the `Task` that trains it, or keep it in an actor. Models in different tasks may run at
/// once, on the same device or different ones.
public protocol Module: AnyObject {
    /// x: [batch, in] → [batch, out]
    ///
    /// The built-in modules' output is on the tape when you call `forward` (a `Sequential`'s as its children's,
    /// each one op; not when the caller runs `backward` itself — the trainer, a `Sequential`'s own `backward`): a
    /// loss computed from it with tensor ops or a `Loss`, then `loss.backward()`, runs each layer's `backward` for
    /// the forward that made the output — the parameters' gradients go where `backward` puts them
    /// (`Parameter.grad`, what the optimisers read) and `x.grad` gets the input's when `x.requiresGrad` — as
    /// PyTorch's `loss_fn(model(x), y).backward()`. The state each output goes back through is kept with it, so a
    /// siamese `f(m(a), m(b))` or a layer applied at every step of a loop gets PyTorch's gradients. A module of your
    /// own is recorded so inside a `Sequential`, or called as `m(x)` (`callAsFunction`), with its `backward`, which
    /// reads its last forward (going back through an earlier one is refused); its `forward` alone records only the
    /// tensor ops it runs.
    func forward(_ x: Tensor) throws -> Tensor
    /// The same for a minibatch of a resident dataset, its rows read in place through the batch's index list where
    /// the module can (`Linear` can, and a `TapeModule` whose `compute(rows:)` does; the default gathers them into a
    /// new tensor first, then calls `forward`).
    func forward(_ rows: Rows) throws -> Tensor
    /// dy: [batch, out] → dx: [batch, in] (nil when `needsInputGradient` is false). Uses the last forward's input,
    /// once: a second backward needs a forward of its own, and the built-in modules refuse it (as PyTorch refuses a
    /// second backward through one graph) and refuse an input modified in place since the forward (`checkBackward`).
    func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor?
    /// Throws what `backward` would refuse — no forward to go back through, an input modified in place since —
    /// before anything changes: a container checks every child before the first child's backward writes a gradient.
    /// Nothing by default.
    func checkBackward() throws
    /// The trainable parameters, in a fixed order.
    var parameters: [Parameter] { get }
    /// The same forward computed in Double on the host, with `params` in `parameters` order: the reference the
    /// gradient check differentiates numerically.
    func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix
    /// Whether `referenceForward` computes in Double (the default), or in fp32 (a `TapeModule`'s default reference,
    /// or a container holding one): `GradientCheck` then takes a step fp32 can resolve.
    var hasDoubleReference: Bool { get }
    /// How many entries of a PyTorch `nn.Sequential` this module stands for, for state-dict names (by default the
    /// count of `layerSpecs`, or 1).
    var sequentialWidth: Int { get }
    /// The module as checkpoint entries (one per `nn.Sequential` index), or nil for a module a checkpoint cannot
    /// describe (the default: a custom module still saves and loads by parameter names and shapes).
    var layerSpecs: [LayerSpec]? { get }
    /// The width of the output when the module fixes it (a `Linear`'s `outFeatures`); nil when it keeps its input's
    /// width or cannot say (the default).
    var outputFeatures: Int? { get }
    /// Opt-in buffer reuse: while enabled, `forward` and `backward` write their results into buffers the module
    /// keeps, valid only until its next call of the same kind (a training step then allocates nothing). Off by
    /// default — results belong to the caller. `Trainer` enables it for the length of its steps and restores it.
    /// Modules without such buffers ignore it (the default).
    func setBufferReuse(_ enabled: Bool)
    /// Whether buffer reuse is on (see `setBufferReuse`).
    var reusesBuffers: Bool { get }
    /// Moves every parameter to `device` (a `Sequential` lays them out there in one block again).
    func to(_ device: DeviceTag) throws
    /// The parameters with their state-dict names (`weight`, `bias`; a `Sequential`'s `0.weight`, ...).
    var namedParameters: [(name: String, parameter: Parameter)] { get }
    /// State that is not trained but belongs to the model, with its state-dict names: a batch norm's
    /// `running_mean`, `running_var` and `num_batches_tracked` (a count, as a one-element tensor of shape []) — what
    /// PyTorch's `state_dict()` holds beside the parameters. None by default.
    var namedBuffers: [(name: String, value: Tensor)] { get }
    /// Sets the buffers from `values`, keyed by `namedBuffers`' names (each present, of its shape: the caller
    /// checks).
    /// - Throws: `DeviceError` when a value does not fit its buffer.
    func loadBuffers(_ values: [String: Tensor]) throws
    /// Whether the module computes as in training (the default) or as in evaluation: `BatchNorm2d` normalises with
    /// the batch's statistics or its running ones, `Dropout` drops or passes everything. Modules without such a
    /// difference are always "training" (the default).
    var isTraining: Bool { get }
    /// Sets training (true) or evaluation (false) mode, on a container's children too: what `train()` and `eval()`
    /// call. Modules without modes ignore it (the default); a container of your own must pass it on to its children.
    /// As in PyTorch, it sets every child: a layer kept in evaluation mode inside a training model (a frozen batch
    /// norm) is set again after `train()` — and after `Trainer` starts an epoch or `Evaluator` restores the mode.
    func setTraining(_ training: Bool)
    /// Places the module's random stream: a module that draws (`Dropout`: one mask per training forward) takes the
    /// stream of `seed` at its `draw`-th draw (from 0), whatever came before; a container passes each child
    /// `Sequential.streamSeed(seed, child:)` of a different index. Modules without randomness ignore it (the
    /// default); a container of your own must pass it on, or its dropouts keep drawing from where they were built
    /// (a resumed run then drops other elements):
    ///
    /// ```swift
    /// func setRandomStream(seed: UInt64, draw: UInt64) {    // in a Residual holding `body`, a Sequential
    ///     body.setRandomStream(seed: Sequential.streamSeed(seed, child: 0), draw: draw)
    /// }
    /// ```
    ///
    /// `Trainer` places the run's stream (`Sequential.streamSeed(run:worker:)`) at the
    /// optimiser's step count before each step, so a resumed run (its model rebuilt from the checkpoint) and a
    /// replica that sat a step out draw the masks of a run never stopped.
    func setRandomStream(seed: UInt64, draw: UInt64)
}

extension Module {
    public func checkBackward() throws {}
    public var hasDoubleReference: Bool { true }
    public var sequentialWidth: Int { layerSpecs?.count ?? 1 }
    public var layerSpecs: [LayerSpec]? { nil }
    public var outputFeatures: Int? { nil }
    public func setBufferReuse(_ enabled: Bool) {}
    public var reusesBuffers: Bool { false }
    public var isTraining: Bool { true }
    public func setTraining(_ training: Bool) {}
    public func setRandomStream(seed: UInt64, draw: UInt64) {}

    /// Training mode, as PyTorch's `model.train()`: batch statistics, dropout on. `Trainer` puts a model in it for
    /// each epoch.
    public func train() { setTraining(true) }

    /// Evaluation mode, as PyTorch's `model.eval()`: running statistics, no dropout. `Evaluator` (and `clnn eval`)
    /// put a model in it while they measure.
    public func eval() { setTraining(false) }
    public var namedParameters: [(name: String, parameter: Parameter)] { parameters.map { ($0.name, $0) } }
    public var namedBuffers: [(name: String, value: Tensor)] { [] }
    public func loadBuffers(_ values: [String: Tensor]) throws {}

    public func forward(_ rows: Rows) throws -> Tensor {
        try forward(rows.order == nil ? rows.source : try rows.gathered())
    }

    /// dy → dx.
    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let dx = try backward(dy, needsInputGradient: true) else {
            throw DeviceError.invalidArgument(op: "\(Self.self).backward", "returned no input gradient although one "
                + "was asked for (needsInputGradient: true)")
        }
        return dx
    }

    /// Sets every parameter's gradient to zero.
    public func zeroGrad() throws {
        for p in parameters { p.zeroGrad() }
    }

    /// Moves every parameter to `device`.
    public func to(_ device: DeviceTag) throws {
        for p in parameters { try p.to(device) }
    }
}

/// A row-major matrix of Doubles, for reference computations.
public struct DoubleMatrix: Equatable, Sendable {
    /// Rows.
    public var rows: Int
    /// Columns.
    public var cols: Int
    /// rows × cols values, row-major.
    public var values: [Double]

    /// A matrix of `values` (rows × cols of them).
    public init(rows: Int, cols: Int, values: [Double]) {
        precondition(values.count == rows * cols, "DoubleMatrix: \(values.count) values for \(rows)x\(cols)")
        self.rows = rows
        self.cols = cols
        self.values = values
    }

    /// `values` as `rows` rows of equal length (a tensor's values flattened after its first axis).
    init(flat values: [Double], rows: Int) {
        let rows = Swift.max(rows, 1)
        self.init(rows: rows, cols: values.count / rows, values: values)
    }

    /// A matrix tensor’s values, read from its device.
    public init(_ tensor: Tensor) throws {
        guard tensor.shape.count == 2 else {
            throw DeviceError.invalidArgument(op: "DoubleMatrix", "expects a matrix, got shape \(tensor.shape)")
        }
        self.init(rows: tensor.shape[0], cols: tensor.shape[1], values: try tensor.toArray().map(Double.init))
    }

    /// Element (i, j).
    public subscript(i: Int, j: Int) -> Double {
        get { values[i * cols + j] }
        set { values[i * cols + j] = newValue }
    }
}
