/// What a `TapeModule` keeps from its last forward for its backward: the input it recorded from and the output.
public final class TapeRecord {
    var input: Tensor?
    var output: Tensor?
    /// The last forward read a dataset's rows in place (`compute(rows:)`): there is no input to differentiate.
    var readRows = false
    /// The last forward input's shape (kept after backward): the shape the reference forward gives its flat rows.
    var inputShape: [Int]?
    /// The last forward input's device: where the reference forward runs (a module without parameters has no
    /// other, and may read tensors it captured there).
    var inputDevice: DeviceTag?
    /// The module's forwards (`Sequential.checkBackward`: a child that ran another since the model's).
    let forwards = CallCount()
    /// The last forward, shared with its output's tape node: the tape or a hand-called backward goes through it.
    var last: ForwardState<Void>?
    /// An empty record (a module's stored property: `let tape = TapeRecord()`).
    public init() {}

    /// Forgets the last forward (a backward went through it, or it recorded nothing).
    func forget() { (input, output, readRows, last) = (nil, nil, false, nil) }

    /// One forward's backward: `y`'s tape from `dy`, to `input` (nil after a forward that read rows in place) when
    /// `needsInputGradient`. Keeps the graph when the `backward()` running it keeps its own (`keepGraph`).
    static func backward(through y: Tensor, from input: Tensor?, _ dy: Tensor, needsInputGradient: Bool,
                         module: String) throws -> Tensor? {
        try backward(through: y, from: input, dy, needsInputGradient: needsInputGradient, stoppingAt: [],
                     capturedNeeds: [], module: module).0
    }

    /// The same going no further than `captured` (the tape's own `backward()` carries on from there), whose
    /// gradients are returned beside the input's (nil where `capturedNeeds` says none is needed).
    static func backward(through y: Tensor, from input: Tensor?, _ dy: Tensor, needsInputGradient: Bool,
                         stoppingAt captured: [Tensor], capturedNeeds: [Bool],
                         module: String) throws -> (Tensor?, [Tensor?]) {
        if input == nil && needsInputGradient {
            throw DeviceError.invalidArgument(op: "\(module).backward", "the input gradient was asked for, but "
                + "forward read a dataset's rows in place (compute(rows:)), which records none: pass forward the "
                + "rows as a tensor (rows.gathered()) to differentiate with respect to them")
        }
        // (An input that needs no gradient is one product fewer on the way back.)
        input?.grad = nil
        // Each parameter's gradient goes straight into the parameter's gradient buffer (added, or written after
        // zeroGrad), not into its value's `grad` (Parameter.init): a product's rule writes it there itself.
        let capturedGradients = try y.backward(seed: dy, keepGraph: Tensor.isKeepingGraph,
                                               toModuleInput: needsInputGradient ? input : nil,
                                               stoppingAt: captured, stopsNeed: capturedNeeds)
        guard needsInputGradient, let input else { return (nil, capturedGradients) }
        return (try input.grad ?? Tensor.zeros(input.shape, on: input.device), capturedGradients)
    }
}

/// A module whose forward is written with tensor ops (`matmul`, `+`, `exp`, `clamped`, `logSoftmax`, …) and whose
/// backward is the tape's: no hand-written backward, no kernel of its own. It trains with `Trainer`, `SGD` and `Adam`
/// and saves into checkpoints by its parameters' names and shapes, like any custom module.
///
/// Conform with `parameters`, `tape` (a stored `TapeRecord()`) and `compute(_:)`:
///
/// ```swift
/// final class Dense: TapeModule {
///     let weight: Parameter, bias: Parameter
///     let tape = TapeRecord()
///     var parameters: [Parameter] { [weight, bias] }
///     init(_ inputs: Int, _ outputs: Int, seed: UInt64, on device: DeviceTag) throws {
///         weight = try Parameter(name: "weight", value: try Initializer.kaimingNormal().tensor(
///             [inputs, outputs], fanIn: inputs, fanOut: outputs, seed: seed, on: device))
///         bias = try Parameter(name: "bias", value: try Tensor.zeros([outputs], on: device))
///     }
///     func compute(_ x: Tensor) throws -> Tensor { try (x.matmul(weight.value) + bias.value).clamped(min: 0) }
/// }
/// ```
///
/// `forward` records `compute` on the tape (inside `Tensor.withoutGradients`, as when evaluating, it records
/// nothing); `backward` replays the tape from the output's gradient, adds each parameter's gradient to the
/// parameter's (`Parameter.grad`, as the built-in layers do) and returns the input's. The built-in fused layers stay
/// the fast path; a tape module pays a launch and a buffer per op.
public protocol TapeModule: Module {
    /// Holds the last forward's input and output until backward.
    var tape: TapeRecord { get }
    /// The forward pass, in tensor ops on `parameters`' values: x: [batch, in] → [batch, out].
    func compute(_ x: Tensor) throws -> Tensor
    /// The same forward on a minibatch of a resident dataset, read in place where the first op can (`Rows.matmul`),
    /// or nil — the default — to have the rows gathered into a tensor and passed to `compute(_:)`. A module that
    /// reads the rows in place gives no input gradient for that forward (the rows are data).
    func compute(rows: Rows) throws -> Tensor?
}

extension TapeModule {
    public func compute(rows: Rows) throws -> Tensor? { nil }

    public func forward(_ x: Tensor) throws -> Tensor {
        (tape.inputShape, tape.inputDevice) = (x.shape, x.device)
        tape.forwards.next()
        guard Tensor.isRecordingGradients else {
            tape.forget()
            return try compute(x)
        }
        let input = x.moduleInput()
        let start = Tensor.tapeClock
        // (Its backward is the tape's: the modules `compute` calls are recorded even inside a Sequential.)
        let y = try ModuleTape.callerRunsBackward(false) { try compute(input) }
        return kept(y, input: input, readRows: false, from: x, since: start)
    }

    /// The forward that made `y` from `input` (nil after one that read rows in place), kept for a hand-called
    /// backward, and `y` on the tape with its own: whichever goes back first takes it (`ForwardState`). The tape's
    /// refuses a forward a hand-called backward went back through, and a graph already released.
    /// (`start`: the tape's clock when the forward began, before which the tensors it read and did not compute were
    /// made.)
    private func kept(_ y: Tensor, input: Tensor?, readRows: Bool, from x: Tensor?, since start: UInt64) -> Tensor {
        let state = ForwardState(())
        (tape.input, tape.output, tape.readRows, tape.last) = (input, Tensor.isRecordingGradients ? y : nil, readRows,
                                                               state)
        return onTape(y, from: x, captured: y.capturedHistories(since: start), check: { captured in
            try state.checkTape("\(Self.self).backward")
            try y.checkRecordedGraph(stoppingAt: captured)
        }, backward: { dy, needsInputGradient, captured, capturedNeeds in
            // (The module forgets the forward: a hand-called backward would add its gradients again.)
            if self.tape.last === state { self.tape.forget() }
            return try TapeRecord.backward(through: y, from: input, dy, needsInputGradient: needsInputGradient,
                                           stoppingAt: captured, capturedNeeds: capturedNeeds, module: "\(Self.self)")
        })
    }

    /// Reads the rows in place when `compute(rows:)` does (and their source needs no gradient); otherwise gathers
    /// them and calls `forward(_:)`.
    public func forward(_ rows: Rows) throws -> Tensor {
        if rows.order != nil && !rows.source.requiresGrad {
            let start = Tensor.tapeClock
            if let y = try ModuleTape.callerRunsBackward(false, { try compute(rows: rows) }) {
                tape.forwards.next()
                (tape.inputShape, tape.inputDevice) = (rows.shape, rows.source.device)
                return kept(y, input: nil, readRows: true, from: nil, since: start)
            }
        }
        return try forward(rows.order == nil ? rows.source : try rows.gathered())
    }

    public func checkBackward() throws {
        guard let y = tape.output, tape.input != nil || tape.readRows else {
            throw DeviceError.invalidArgument(op: "\(Self.self).backward", "no forward to go back through: called "
                + "before forward, twice after one, after loss.backward() went back through it, or after a forward "
                + "inside Tensor.withoutGradients, which records nothing")
        }
        try y.checkRecordedGraph()
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        guard let y = tape.output, tape.input != nil || tape.readRows else {
            try checkBackward()  // throws: there is no forward to go back through
            return nil
        }
        let input = tape.input  // nil after a forward that read rows in place
        tape.last?.wentBackByHand = true  // (not the tape's too)
        tape.forget()
        return try TapeRecord.backward(through: y, from: input, dy, needsInputGradient: needsInputGradient,
                                       module: "\(Self.self)")
    }

    /// The default reference: `compute` in fp32 on the last forward input's device (else the parameters') with
    /// `params` loaded into the parameters (and put back after). A gradient check against it needs fp32's tolerances
    /// (`hasDoubleReference` is false); give a Double forward of your own for a tight check. The rows take the shape
    /// of the last forward's input ([N, C, H, W] for a convolution); the output's rows are flattened. On an error, a
    /// matrix of no columns.
    public func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix {
        let failed = DoubleMatrix(rows: x.rows, cols: 0, values: [])
        return (try? Tensor.withoutGradients { () throws -> DoubleMatrix in
            let saved = try parameters.map { try $0.value.toArray() }
            defer { for (p, v) in zip(parameters, saved) { try? p.value.upload(v) } }
            for (p, v) in zip(parameters, params) { try p.value.upload(v.map(Float.init)) }
            let device = tape.inputDevice ?? parameters.first?.device ?? .cpu
            var shape = [x.rows, x.cols]
            if let last = tape.inputShape, last.count > 2, last.dropFirst().reduce(1, *) == x.cols {
                shape = [x.rows] + last.dropFirst()
            }
            let y = try compute(try Tensor(x.values.map(Float.init), shape: shape, on: device))
            guard let rows = y.shape.first, rows == x.rows, rows > 0 else { return failed }
            return DoubleMatrix(rows: rows, cols: y.count / rows, values: try y.toArray().map(Double.init))
        }) ?? failed
    }

    public var hasDoubleReference: Bool { false }
}
