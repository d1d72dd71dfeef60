/// Adam (PyTorch's `torch.optim.Adam` with its defaults: betas (0.9, 0.999), eps 1e-8, L2 weight decay added to the
/// gradient, no amsgrad):
/// g = grad + weightDecay·param; m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²;
/// param −= lr·m̂ / (√v̂ + eps), with the
/// bias-corrected m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ) at the parameter's step t (``parameterSteps``: as PyTorch's
/// per-parameter `step`, a step that skips a parameter — no gradient computed, or frozen — does not count for it).
///
/// Like ``SGD``, it steps the whole model in one kernel when the parameters are a model's `ParameterBlock` (one per
/// run of consecutive parameters it steps at the same count, when some are skipped or their counts differ).
public final class Adam: Optimizer {
    public let parameters: [Parameter]
    public var lr: Float
    public var initialLR: Float?
    /// The betas, eps and weight decay.
    public let hyperparameters: AdamHyperparameters
    public var stepCount = 0
    public var parameterSteps: [Int]
    public var name: String { "adam" }
    /// The moments, by PyTorch's names.
    public var stateNames: [String] { ["exp_avg", "exp_avg_sq"] }
    private var state = OptimizerState(slots: 2)

    /// - Throws: `DeviceError.invalidArgument` for a rate outside PyTorch's accepted ranges
    ///   (lr ≥ 0, 0 ≤ β < 1, eps ≥ 0, weight decay ≥ 0), or a parameter listed twice.
    public init(_ parameters: [Parameter], lr: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                eps: Float = 1e-8, weightDecay: Float = 0) throws {
        for (name, value, limit) in [("lr", lr, Float.infinity), ("beta1", beta1, 1), ("beta2", beta2, 1),
                                     ("eps", eps, .infinity), ("weight decay", weightDecay, .infinity)]
        where !value.isFinite || value < 0 || value >= limit {
            throw DeviceError.invalidArgument(op: "Adam", "\(name) must be a finite number ≥ 0"
                + (limit < .infinity ? " and < \(limit)" : "") + ", got \(value)")
        }
        try OptimizerState.requireDistinct(parameters, op: "Adam")
        self.parameters = parameters
        self.lr = lr
        hyperparameters = AdamHyperparameters(beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay)
        parameterSteps = Array(repeating: 0, count: parameters.count)
    }

    public func step() throws {
        try OptimizerState.requireStepCounts(parameterSteps, parameters, op: name)
        try OptimizerState.requireLearningRate(lr, op: name)
        // (Parameters step together when their bias corrections agree: the same step count.)
        let steps = parameterSteps
        for run in try state.runs(parameters, together: { steps[$0] == steps[$1] }) {
            try run.values.adamStep(grad: run.grads, m: run.state[0], v: run.state[1],
                                    step: steps[run.range.lowerBound].countedOnce, lr: lr, hyperparameters)
            for i in run.range {
                parameters[i].value.markModified()  // (what a forward saved of it is out of date)
                parameterSteps[i] = parameterSteps[i].countedOnce
            }
        }
        stepCount = stepCount.countedOnce
    }

    public func stateTensors(of index: Int) throws -> [Tensor] {
        try state.tensors(of: index, parameters, op: name)
    }
}
