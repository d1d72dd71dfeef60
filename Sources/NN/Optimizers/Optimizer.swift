/// Updates a model's parameters from their gradients. ``SGD`` and ``Adam`` follow PyTorch's update rules.
///
/// An optimiser owns per-parameter state (named as PyTorch names it: `momentum_buffer`, `exp_avg`, `exp_avg_sq`),
/// which a training checkpoint saves so that a resumed run continues exactly (see ``TrainingState``).
public protocol Optimizer: AnyObject {
    /// The parameters it updates, in a fixed order.
    var parameters: [Parameter] { get }
    /// The learning rate of the next step (a schedule sets it before each step).
    var lr: Float { get set }
    /// The name `--optimizer` and checkpoints use: `sgd` or `adam`.
    var name: String { get }
    /// The names of the state tensors each parameter carries (empty for plain SGD).
    var stateNames: [String] { get }
    /// Steps taken so far (a training run's position: its dropout draws follow it).
    var stepCount: Int { get set }
    /// The steps each parameter has taken, in ``parameters`` order: PyTorch's per-parameter `step`, which Adam's bias
    /// correction uses (SGD's rule does not). A step that leaves a parameter as it is (no gradient computed) does not
    /// count for it. A training state saves and restores them; setting them is for such a restore.
    var parameterSteps: [Int] { get set }
    /// Updates every parameter in place, on its own device — each whose gradient a backward computed since its
    /// `zeroGrad()`; the others stay as they are (PyTorch skips a parameter whose `grad` is None).
    func step() throws
    /// Parameter `index`'s state tensors, in `stateNames` order (zero before the first step): the live state, laid
    /// out as the parameters are now.
    func stateTensors(of index: Int) throws -> [Tensor]
}

extension Optimizer {
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

    /// Whether every parameter's gradient was computed since its `zeroGrad` (the one-launch step's case). A
    /// parameter without one, or frozen, is left as it is — no weight decay, no momentum or moment step, no step
    /// counted in its `parameterSteps` — as PyTorch's optimisers skip a parameter whose `grad` is None (what
    /// `zero_grad()` leaves; a frozen one's always is): `Parameter.gradientToStep`.
    static func everyGradientComputed(_ parameters: [Parameter]) -> Bool {
        parameters.allSatisfy { $0.gradientToStep != nil }
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
        (flats, views, block) = (fresh.flats, fresh.views, now)
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
