/// Stochastic gradient descent with optional momentum and weight decay (PyTorch's `torch.optim.SGD`):
/// g = grad + weightDecay·param; v = momentum·v + g; param −= lr·(momentum > 0 ? v : g).
///
/// When every parameter lives on one device, the optimiser moves them into flat buffers (values, gradients and
/// velocities: one arena each, the parameters becoming views into them, as llm.c does), so a step is one kernel
/// however many tensors the model has.
public final class SGD: Optimizer {
    public let parameters: [Parameter]
    public var lr: Float
    /// Momentum (0: plain SGD).
    public let momentum: Float
    /// L2 penalty, added to the gradient as weightDecay·param.
    public let weightDecay: Float
    public var stepCount = 0
    public var name: String { "sgd" }
    /// `momentum_buffer` (PyTorch's name) with momentum, else nothing.
    public var stateNames: [String] { momentum > 0 ? ["momentum_buffer"] : [] }
    var arena = ArenaSlot()

    /// - Throws: `DeviceError.invalidArgument` when a rate is negative or not finite.
    public init(_ parameters: [Parameter], lr: Float, momentum: Float = 0, weightDecay: Float = 0) throws {
        for (name, value) in [("lr", lr), ("momentum", momentum), ("weight decay", weightDecay)]
        where !value.isFinite || value < 0 {
            throw DeviceError.invalidArgument(op: "SGD", "\(name) must be a finite number ≥ 0, got \(value)")
        }
        self.parameters = parameters
        self.lr = lr
        self.momentum = momentum
        self.weightDecay = weightDecay
        _ = try arena.current(parameters, stateSlots: stateNames.count)
    }

    public func step() throws {
        let slots = stateNames.count
        if let flat = try arena.current(parameters, stateSlots: slots) {
            try flat.values.sgdStep(grad: flat.grads, velocity: flat.states.first, lr: lr, momentum: momentum,
                                    weightDecay: weightDecay)
        } else {
            for p in parameters {
                try p.ensureState(slots)
                try p.value.sgdStep(grad: try p.grad, velocity: p.state.first, lr: lr, momentum: momentum,
                                    weightDecay: weightDecay)
            }
        }
        stepCount += 1
    }
}

extension SGD: FlatOptimizer {
    func flatBuffers() throws -> ParameterArena? { try arena.current(parameters, stateSlots: stateNames.count) }
    func align(to floats: Int) { arena.alignment = floats }
}
