/// Stochastic gradient descent with optional momentum and weight decay (PyTorch's `torch.optim.SGD`):
/// g = grad + weightDecay·param; v = momentum·v + g; param −= lr·(momentum > 0 ? v : g).
///
/// When the parameters are a model's `ParameterBlock`, a step is one kernel however many tensors the model has (one
/// per run of consecutive parameters it steps, when some have no gradient or are frozen): the velocities are laid out
/// alike (the optimiser keeps only them; the model owns values and gradients).
public final class SGD: Optimizer {
    public let parameters: [Parameter]
    public var lr: Float
    public var initialLR: Float?
    /// Momentum (0: plain SGD).
    public let momentum: Float
    /// L2 penalty, added to the gradient as weightDecay·param.
    public let weightDecay: Float
    public var stepCount = 0
    public var parameterSteps: [Int]
    public var name: String { "sgd" }
    /// `momentum_buffer` (PyTorch's name) with momentum, else nothing.
    public var stateNames: [String] { momentum > 0 ? ["momentum_buffer"] : [] }
    private var state: OptimizerState

    /// - Throws: `DeviceError.invalidArgument` when a rate is negative or not finite, or a parameter is listed twice.
    public init(_ parameters: [Parameter], lr: Float, momentum: Float = 0, weightDecay: Float = 0) throws {
        for (name, value) in [("lr", lr), ("momentum", momentum), ("weight decay", weightDecay)]
        where !value.isFinite || value < 0 {
            throw DeviceError.invalidArgument(op: "SGD", "\(name) must be a finite number ≥ 0, got \(value)")
        }
        try OptimizerState.requireDistinct(parameters, op: "SGD")
        self.parameters = parameters
        self.lr = lr
        self.momentum = momentum
        self.weightDecay = weightDecay
        state = OptimizerState(slots: momentum > 0 ? 1 : 0)
        parameterSteps = Array(repeating: 0, count: parameters.count)
    }

    public func step() throws {
        try OptimizerState.requireStepCounts(parameterSteps, parameters, op: name)
        try OptimizerState.requireLearningRate(lr, op: name)
        for run in try state.runs(parameters, together: { _, _ in true }) {
            try run.values.sgdStep(grad: run.grads, velocity: run.state.first, lr: lr, momentum: momentum,
                                   weightDecay: weightDecay)
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
