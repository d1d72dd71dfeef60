/// Updates a model's parameters from their gradients. ``SGD`` and ``Adam`` follow PyTorch's update rules.
///
/// An optimiser owns per-parameter state (named as PyTorch names it: `momentum_buffer`, `exp_avg`, `exp_avg_sq`),
/// which a training checkpoint saves so that a resumed run continues exactly (see ``TrainingState``).
public protocol Optimizer: AnyObject {
    /// The parameters it updates, in a fixed order.
    var parameters: [Parameter] { get }
    /// The learning rate of the next step (a schedule sets it before each step): finite and ≥ 0 (SGD's and Adam's
    /// `step()` throw otherwise).
    var lr: Float { get set }
    /// The rate the first `Trainer` over this optimiser took as its schedule's base (PyTorch's `initial_lr`, which
    /// its schedulers set once): a later trainer's schedule starts there too, not at the rate the last one left.
    /// Nil until a trainer sets it (and always, for an optimiser of your own that does not keep it).
    var initialLR: Float? { get set }
    /// The name `--optimizer` and checkpoints use: `sgd` or `adam`.
    var name: String { get }
    /// The names of the state tensors each parameter carries (empty for plain SGD).
    var stateNames: [String] { get }
    /// Steps taken so far (a training run's position: its dropout draws follow it).
    var stepCount: Int { get set }
    /// The steps each parameter has taken, in ``parameters`` order: PyTorch's per-parameter `step`, which Adam's bias
    /// correction uses (SGD's rule does not). A step that leaves a parameter as it is (no gradient computed, or
    /// frozen) does not count for it. A training state saves and restores them; setting them is for such a restore.
    var parameterSteps: [Int] { get set }
    /// Updates every parameter in place, on its own device — each whose gradient a backward computed since its
    /// `zeroGrad()`, unless frozen; the others stay as they are (PyTorch skips a parameter whose `grad` is None).
    func step() throws
    /// Parameter `index`'s state tensors, in `stateNames` order (zero before the first step): the live state, laid
    /// out as the parameters are now.
    func stateTensors(of index: Int) throws -> [Tensor]
}

extension Optimizer {
    /// Not kept (an optimiser of your own: each trainer over it starts from its `lr`); SGD and Adam keep it.
    public var initialLR: Float? {
        get { nil }
        set {}  // (nothing kept)
    }

    /// The optimiser's state of `parameter` by name (`exp_avg`, `exp_avg_sq`; `momentum_buffer`), zero before the
    /// first step. The tensors are the live state: writing them changes the next step.
    /// - Throws: `DeviceError.invalidArgument` when `parameter` is not one this optimiser updates.
    public func state(of parameter: Parameter) throws -> [String: Tensor] {
        guard let index = parameters.firstIndex(where: { $0 === parameter }) else {
            throw DeviceError.invalidArgument(op: name, "parameter '\(parameter.name)' "
                + "is not one this optimizer updates")
        }
        return Dictionary(uniqueKeysWithValues: zip(stateNames, try stateTensors(of: index)))
    }
}

/// An optimiser's own state: `slots` tensors per parameter, laid out like the parameters' `ParameterBlock` when they
/// are exactly one (so one launch steps them all), else a tensor each on the parameter's device. Rebuilt, contents
/// kept, when the parameters move to another block or device.
struct OptimizerState {
    let slots: Int
    private(set) var flats: [Tensor] = []
    private(set) var views: [[Tensor]] = []
    private weak var block: ParameterBlock?

    init(slots: Int) { self.slots = slots }

    /// Parameters stepped in one launch: their values, gradients and state (`slots` tensors), each one tensor — a
    /// parameter's own, a block's flat buffers, or a region of them covering a run of its parameters.
    struct Run {
        let range: Range<Int>
        let values: Tensor, grads: Tensor, state: [Tensor]
    }
    /// The regions of runs of the block's parameters, made once for each run met (`runs`).
    private var regions: [Range<Int>: Run] = [:]

    /// The parameters to step, as runs that step in one launch each. A parameter without a gradient computed since
    /// its `zeroGrad`, or frozen, is left out — no weight decay, no momentum or moment step, no step counted in its
    /// `parameterSteps` — as PyTorch's optimisers skip a parameter whose `grad` is None (what `zero_grad()` leaves; a
    /// frozen one's always is): `Parameter.gradientToStep`. Laid out in one block, each maximal run of consecutive
    /// parameters to step for which `together(first, i)` holds (Adam: the same step count) is one launch over its
    /// stretch of the flat buffers — the whole block when that is every parameter, the common case; a model with
    /// its first layers frozen steps the rest in one launch. Otherwise each parameter is a run of its own.
    mutating func runs(_ parameters: [Parameter], together: (Int, Int) -> Bool) throws -> [Run] {
        let block = try current(parameters)
        var runs: [Run] = []
        var i = 0
        while i < parameters.count {
            guard parameters[i].gradientToStep != nil else {
                i += 1
                continue
            }
            var end = i + 1
            if block != nil {
                while end < parameters.count, parameters[end].gradientToStep != nil, together(i, end) { end += 1 }
            }
            runs += try run(i..<end, of: parameters, in: block)
            i = end
        }
        return runs
    }

    /// Parameters `range` (each with a gradient to step) as one run when they share a block, else one each.
    private mutating func run(_ range: Range<Int>, of parameters: [Parameter], in block: ParameterBlock?) throws
        -> [Run] {
        guard let block, range.count > 1, !block.isEmpty(range) else {
            return range.map { i in
                Run(range: i..<i + 1, values: parameters[i].value, grads: parameters[i].gradientToStep!,
                    state: views[i])
            }
        }
        if range.count == parameters.count { return [Run(range: range, values: block.values, grads: block.grads,
                                                         state: flats)] }
        if let known = regions[range] { return [known] }
        let made = Run(range: range, values: try block.region(of: range, in: block.values),
                       grads: try block.region(of: range, in: block.grads),
                       state: try flats.map { try block.region(of: range, in: $0) })
        regions[range] = made
        return [made]
    }

    /// Refuses step counts that are not one per parameter, each ≥ 0 (`parameterSteps` is settable).
    static func requireStepCounts(_ steps: [Int], _ parameters: [Parameter], op: String) throws {
        guard steps.count == parameters.count else {
            throw DeviceError.invalidArgument(op: op, "parameterSteps has \(steps.count) counts for "
                + "\(parameters.count) parameters")
        }
        if let i = steps.firstIndex(where: { $0 < 0 }) {
            throw DeviceError.invalidArgument(op: op, "parameterSteps[\(i)] is \(steps[i]), not ≥ 0")
        }
    }

    /// Refuses a learning rate that is negative or not finite, set since the optimiser was made (`lr` is settable:
    /// a schedule of the caller's own may compute NaN), before anything is stepped: such a step would ruin every
    /// parameter (NaN) or climb the loss.
    static func requireLearningRate(_ lr: Float, op: String) throws {
        guard lr.isFinite, lr >= 0 else {
            throw DeviceError.invalidArgument(op: op, "lr must be a finite number ≥ 0, got \(lr); no parameter "
                + "was stepped")
        }
    }

    /// Refuses a parameter listed twice: it would be stepped twice per step (PyTorch refuses it too).
    static func requireDistinct(_ parameters: [Parameter], op: String) throws {
        var seen = Set<ObjectIdentifier>()
        for (i, p) in parameters.enumerated() where !seen.insert(ObjectIdentifier(p)).inserted {
            let first = parameters.firstIndex { $0 === p } ?? i
            throw DeviceError.invalidArgument(op: op, "parameter '\(p.name)' is listed twice (at \(first) and \(i)): "
                + "each step would update it twice")
        }
    }

    /// The state for `parameters` as they are laid out now, and their block when they are one.
    mutating func current(_ parameters: [Parameter]) throws -> ParameterBlock? {
        let now = ParameterBlock.of(parameters)
        if let now, now === block { return now }  // the common case, every step: nothing moved
        let placed = views.count == parameters.count
            && zip(parameters, views).allSatisfy { p, v in v.allSatisfy { $0.device == p.device } }
        if placed && now === block && (now != nil || flats.isEmpty) { return now }
        var fresh: (flats: [Tensor], views: [[Tensor]])
        if let now {
            fresh = try now.stateArena(slots: slots)
        } else {
            fresh = ([], try parameters.map { p in
                try (0..<slots).map { _ in try Tensor.zeros(p.value.shape, on: p.device) }
            })
        }
        for (new, old) in zip(fresh.views, views) {
            for (n, o) in zip(new, old) { try n.copy(from: o) }
        }
        (flats, views, block, regions) = (fresh.flats, fresh.views, now, [:])
        return now
    }

    /// The state tensors of parameter `index` of `parameters` (laid out as they are now), by `op`'s name in errors.
    /// - Throws: `DeviceError.invalidArgument` for an index outside the parameters.
    mutating func tensors(of index: Int, _ parameters: [Parameter], op: String) throws -> [Tensor] {
        guard parameters.indices.contains(index) else {
            throw DeviceError.invalidArgument(op: op, "parameter index \(index) is outside 0..<\(parameters.count)")
        }
        _ = try current(parameters)
        return views[index]
    }
}
