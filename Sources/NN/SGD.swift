/// Stochastic gradient descent with optional momentum and weight decay (PyTorch's formulation):
/// g = grad + weightDecay·param; v = momentum·v + g; param −= lr·(momentum > 0 ? v : g).
///
/// When every parameter lives on one device, the optimiser moves them into flat buffers (values, gradients and
/// velocities: one arena each, the parameters becoming views into them, as llm.c does), so a step is one kernel
/// however many tensors the model has.
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
        try makeArena()
    }

    /// The flat buffers and each parameter's views in them, when the parameters share a device.
    private struct Arena {
        let values, grads: Tensor
        let velocities: Tensor?
        let views: [(value: Tensor, grad: Tensor, velocity: Tensor?)]
    }
    private var arena: Arena?

    private func makeArena() throws {
        guard let device = parameters.first?.device, parameters.allSatisfy({ $0.device == device }) else { return }
        let shapes = parameters.map(\.value.shape)
        let values = try Tensor.arena(shapes, on: device), grads = try Tensor.arena(shapes, on: device)
        let velocities = momentum > 0 ? try Tensor.arena(shapes, on: device) : nil
        var views: [(Tensor, Tensor, Tensor?)] = []
        for (i, p) in parameters.enumerated() {
            if momentum > 0 && p.velocity == nil { p.velocity = try Tensor.zeros(p.value.shape, on: device) }
            try p.adopt(value: values.views[i], grad: grads.views[i], velocity: velocities?.views[i])
            views.append((values.views[i], grads.views[i], velocities?.views[i]))
        }
        arena = Arena(values: values.flat, grads: grads.flat, velocities: velocities?.flat, views: views)
    }

    /// Updates every parameter in place, on its own device.
    public func step() throws {
        if let arena {
            // NOTE: a parameter moved since (`to(_:)`) no longer lives in the arena: rebuild it first.
            if !zip(parameters, arena.views).allSatisfy({ $0.lives(in: $1.value, $1.grad, $1.velocity) }) {
                self.arena = nil
                try makeArena()
                return try step()
            }
            for p in parameters { try p.materialiseGrad() }
            try arena.values.sgdStep(grad: arena.grads, velocity: arena.velocities, lr: lr, momentum: momentum,
                                     weightDecay: weightDecay)
            return
        }
        for p in parameters {
            if momentum > 0 && p.velocity == nil { p.velocity = try Tensor.zeros(p.value.shape, on: p.device) }
            try p.value.sgdStep(grad: try p.grad, velocity: momentum > 0 ? p.velocity : nil,
                                lr: lr, momentum: momentum, weightDecay: weightDecay)
        }
    }
}
