/// Stochastic gradient descent with optional momentum and weight decay (PyTorch's formulation):
/// g = grad + weightDecay·param; v = momentum·v + g; param −= lr·(momentum > 0 ? v : g).
public final class SGD {
    public let parameters: [Parameter]
    public var lr: Float
    public let momentum: Float
    public let weightDecay: Float

    public init(_ parameters: [Parameter], lr: Float, momentum: Float = 0, weightDecay: Float = 0) throws {
        for (name, value) in [("lr", lr), ("momentum", momentum), ("weight decay", weightDecay)]
        where !value.isFinite || value < 0 {
            throw DeviceError.invalidArgument(op: "SGD", "\(name) must be a finite number ≥ 0, got \(value)")
        }
        self.parameters = parameters
        self.lr = lr
        self.momentum = momentum
        self.weightDecay = weightDecay
    }

    /// Updates every parameter in place, on its own device.
    public func step() throws {
        for p in parameters {
            if momentum > 0 && p.velocity == nil { p.velocity = try Tensor.zeros(p.value.shape, on: p.device) }
            try p.value.sgdStep(grad: try p.grad, velocity: momentum > 0 ? p.velocity : nil,
                                lr: lr, momentum: momentum, weightDecay: weightDecay)
        }
    }
}
