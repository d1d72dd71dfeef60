// The SGD update (Kernels/sgd.cl), PyTorch's formulation:
//   g = grad + weightDecay·param; v = momentum·v + g; param −= lr·(momentum > 0 ? v : g)

private let sgdStepKernel = KernelSource("sgd", "sgd_step")

extension Tensor {
    /// One SGD update of self (a parameter), in place; `velocity` (self's shape) is needed when momentum > 0.
    public func sgdStep(grad: Tensor, velocity: Tensor?, lr: Float, momentum: Float = 0, weightDecay: Float = 0) throws {
        try requireShape("sgdStep (grad)", grad, shape)
        if let velocity { try requireShape("sgdStep (velocity)", velocity, shape) }
        if momentum > 0 && velocity == nil {
            throw DeviceError.invalidArgument(op: "sgdStep", "momentum needs a velocity tensor")
        }
        let n = count
        let momentum = velocity == nil ? 0 : momentum
        try Tensor.run("sgdStep", self, grad, velocity) { m in
            let p = m[0], g = m[1]
            if let v = m.optional(2), momentum > 0 {
                for i in 0..<n {
                    let step = momentum * v[i] + (g[i] + weightDecay * p[i])
                    v[i] = step
                    p[i] -= lr * step
                }
            } else {
                // NOTE: a loop of its own, so the compiler vectorises it (the common case: no momentum).
                for i in 0..<n { p[i] -= lr * (g[i] + weightDecay * p[i]) }
            }
        } opencl: { d in
            let v = try d.orPlaceholder(2)
            try d.device.run(sgdStepKernel, global: WorkSize(n)) { a in
                try a.int(n); try a.buffer(d[0]); try a.buffer(d[1]); try a.buffer(v)
                try a.float(lr); try a.float(momentum); try a.float(weightDecay)
            }
        }
    }
}
