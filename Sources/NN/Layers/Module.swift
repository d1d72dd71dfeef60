import Foundation

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
            preconditionFailure("backward returned no input gradient although one was asked for")
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

    /// `forward(x)`: `model(x)`. A module of your own is recorded on the tape here as one op with its own
    /// `backward` (its `forward` runs as a container's children do, on `x` detached: kept by the module, the input as
    /// recorded would hold the module's tape node, which holds the module); a built-in module records itself in
    /// `forward`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard let own = OwnModuleCalls.of(self) else { return try forward(x) }
        own.forwards.next()
        return recordedWithOwnBackward(try ModuleTape.callerRunsBackward { try forward(x.detached()) }, from: x,
                                       calls: own)
    }

    /// `forward(rows)` as `callAsFunction` runs `forward(x)`.
    func callAsFunction(_ rows: Rows) throws -> Tensor {
        guard let own = OwnModuleCalls.of(self) else { return try forward(rows) }
        own.forwards.next()
        return recordedWithOwnBackward(try ModuleTape.callerRunsBackward { try forward(rows) }, from: nil, calls: own)
    }

    /// `forward(x)` for a caller that runs the backward itself (a `Sequential`'s children for its `backward`): a
    /// module of your own's forward is counted, so that a backward through an earlier one is refused.
    func countedForward(_ x: Tensor) throws -> Tensor {
        OwnModuleCalls.of(self)?.forwards.next()
        return try forward(x)
    }

    /// `forward(rows)` as `countedForward(x)` runs `forward(x)`.
    func countedForward(_ rows: Rows) throws -> Tensor {
        OwnModuleCalls.of(self)?.forwards.next()
        return try forward(rows)
    }

    /// `backward` for a container running its children's (a `Sequential`'s): a module of your own's is counted, so
    /// that the tape does not go back through the same forward again.
    func countedBackward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        OwnModuleCalls.of(self)?.backwards.next()
        return try backward(dy, needsInputGradient: needsInputGradient)
    }

    /// A module of your own's output, going back through its `backward`, which reads its last forward's state: once
    /// (by the tape or a `Sequential`'s backward, counted in `calls`), and only while no later forward (counted where
    /// CLNN calls it) replaced that state — a module of your own keeps one forward's, so a siamese `f(m(a), m(b))`
    /// or an output from before a later forward is refused, not given another forward's gradients.
    private func recordedWithOwnBackward(_ y: Tensor, from x: Tensor?, calls: OwnModuleCalls) -> Tensor {
        let (forwardsAt, backwardsAt) = (calls.forwards.value, calls.backwards.value)
        return onTape(y, from: x, check: {
            guard calls.forwards.value == forwardsAt else {
                throw DeviceError.invalidArgument(op: "\(Self.self).backward", "this module ran another forward "
                    + "since the one that made this output, and its backward reads its last forward's state: a "
                    + "module of your own goes back through its last forward only (write it as a TapeModule to go "
                    + "back through each, or give each use an instance of its own)")
            }
            guard calls.backwards.value == backwardsAt else {
                throw DeviceError.invalidArgument(op: "\(Self.self).backward", "went back through the forward that "
                    + "made this output already (the tape, or its Sequential's backward): a module of your own goes "
                    + "back through its last forward once, so keepGraph does not reach into it (forward again)")
            }
            try self.checkBackward()
        }, backward: { dy, needsInputGradient in
            calls.backwards.next()
            return try self.backward(dy, needsInputGradient: needsInputGradient)
        })
    }

    /// `y`, this module's forward output from `x` (nil: a dataset's rows, which take no gradient), as one op on the
    /// tape whose rule is `backward` — unless the caller runs the backward itself (a `Sequential` running its
    /// children for its own `backward`, the trainer). A built-in module's `backward` and `check` go through the
    /// state of the forward that made `y`, kept with them (so each output goes back through its own forward, as
    /// often as `keepGraph` allows); `check` is what `backward` would refuse.
    func onTape(_ y: Tensor, from x: Tensor?, check: @escaping () throws -> Void,
                backward: @escaping (_ dy: Tensor, _ needsInputGradient: Bool) throws -> Tensor?) -> Tensor {
        guard !ModuleTape.backwardByCaller else { return y }
        return y.recordedAsModule("\(Self.self)", input: x,
                                  updatesParameters: parameters.contains { $0.value.requiresGrad },
                                  check: check, backward: backward)
    }
}

/// A count of calls: a module's forwards (`Module.onTape`, `Sequential.checkBackward`), a module of your own's
/// backwards.
final class CallCount {
    private(set) var value = 0
    func next() { value += 1 }

    /// The forwards a module has run: a built-in module's own count (a `TapeModule`'s is in its `tape`), or the one
    /// CLNN keeps for a module of your own (`OwnModuleCalls`).
    static func forwards(of module: any Module) -> CallCount {
        builtIn(module) ?? OwnModuleCalls.table.calls(of: module).forwards
    }

    /// A built-in module's own forward count; nil for a module of your own.
    fileprivate static func builtIn(_ module: any Module) -> CallCount? {
        if let taped = module as? any TapeModule { return taped.tape.forwards }
        return (module as? any CountsForwards)?.forwards
    }
}

/// What CLNN counts of a module of your own, which keeps one forward's state and counts nothing itself: its forwards
/// and backwards where CLNN calls them (`m(x)`, a `Sequential`'s children, its output's tape node). A forward or
/// backward you call yourself is not seen. (A built-in module counts its forwards and keeps each one's state.)
final class OwnModuleCalls {
    let forwards = CallCount(), backwards = CallCount()

    /// The counts of `module`; nil for a built-in module.
    static func of(_ module: any Module) -> OwnModuleCalls? {
        CallCount.builtIn(module) == nil ? table.calls(of: module) : nil
    }

    fileprivate static let table = Table()

    /// The counts by object, each while its module lives. (Modules of different tasks may run at once: the table is
    /// locked; each entry is its module's, used by the task that holds the module.)
    fileprivate final class Table: @unchecked Sendable {
        private let lock = NSLock()
        private struct Entry {
            weak var module: AnyObject?
            let calls: OwnModuleCalls
        }
        private var entries: [ObjectIdentifier: Entry] = [:]
        private var pruneAt = 64

        func calls(of module: AnyObject) -> OwnModuleCalls {
            lock.lock()
            defer { lock.unlock() }
            let id = ObjectIdentifier(module)
            if let entry = entries[id], entry.module === module { return entry.calls }
            if entries.count >= pruneAt {  // (the entries of modules that are gone)
                entries = entries.filter { $0.value.module != nil }
                pruneAt = Swift.max(64, 2 * entries.count)
            }
            let calls = OwnModuleCalls()
            entries[id] = Entry(module: module, calls: calls)
            return calls
        }
    }
}

/// A module whose backward refuses more when it is asked for its input's gradient (`Linear`: the weight it then
/// reads may not have changed since the forward): a container checks it with what it will ask.
protocol ChecksBackwardByNeed: Module {
    func checkBackward(needsInputGradient: Bool) throws
}

/// A built-in module with a hand-written backward, which counts its forwards.
protocol CountsForwards: Module {
    var forwards: CallCount { get }
}

/// What one forward of a built-in module with a hand-written backward keeps for it, shared by the output's tape node
/// and the module's hand-called `backward` (which reads its last forward's): either may go back through it, not both
/// — the other would add the same gradients again. A hand-called backward goes once and the module forgets the
/// forward; the tape goes as often as `keepGraph` allows, and the module forgets the forward too.
final class ForwardState<Saved> {
    let saved: Saved
    /// A hand-called backward went back through this forward.
    var wentBackByHand = false
    init(_ saved: Saved) { self.saved = saved }

    /// For the tape node's check: refuses a forward a hand-called backward went back through.
    func checkTape(_ op: String) throws {
        guard !wentBackByHand else {
            throw DeviceError.invalidArgument(op: op, "a hand-called backward (module.backward(dy)) went back "
                + "through the forward that made this output already: forward again to go back through the tape")
        }
    }
}

/// Whether the forward in progress is one whose caller goes back through the modules' `backward` itself — the
/// trainer running its model, a custom module's forward called by `m(x)`: the module outputs it makes are not
/// recorded on the tape (`Module.onTape`). A `Sequential` sets it for its children when its own caller runs the
/// backward (else each child's output is recorded); a `TapeModule`'s `compute` clears it: its backward is the tape's,
/// through whatever modules it calls.
enum ModuleTape {
    @TaskLocal static var backwardByCaller = false

    /// `body`, a forward whose caller runs the backward itself (`true`), or one whose backward is the tape's.
    static func callerRunsBackward<R>(_ runs: Bool = true, _ body: () throws -> R) rethrows -> R {
        try $backwardByCaller.withValue(runs, operation: body)
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
