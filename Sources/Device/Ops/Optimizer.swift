// The optimisers' updates (Kernels/optimizer.cl), in PyTorch's formulation. Each updates a parameter (or a whole
// flat arena of them) in place, reading its gradient and updating its optimiser state.
import CGemm
import Foundation

private let sgdStepKernel = KernelSource("optimizer", "sgd_step")
private let adamStepKernel = KernelSource("optimizer", "adam_step")
/// The parameters (floats) from which the CPU's SGD update streams its stores: a batch-sized model's block (40k).
let sgdStreamingMinimum = 16_384

/// Adam's hyper-parameters (PyTorch's names and defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay).
public struct AdamHyperparameters: Sendable, Equatable {
    /// Decay of the first moment (the gradient’s running mean).
    public var beta1: Float = 0.9
    /// Decay of the second moment (the squared gradient’s running mean).
    public var beta2: Float = 0.999
    /// Added to the second moment’s square root, against division by zero.
    public var eps: Float = 1e-8
    /// L2 penalty, added to the gradient as weightDecay·param.
    public var weightDecay: Float = 0
    /// PyTorch’s defaults unless given.
    public init(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0) {
        (self.beta1, self.beta2, self.eps, self.weightDecay) = (beta1, beta2, eps, weightDecay)
    }
}

extension Tensor {
    /// One SGD update of self (a parameter), in place; `velocity` (self's shape) is needed when momentum > 0:
    /// g = grad + weightDecay·self; v = momentum·v + g; self −= lr·(momentum > 0 ? v : g). A negative momentum
    /// (NaN included) is an error.
    /// Dense operands only: a view is an error naming the op (pass its `contiguous()` copy).
    public func sgdStep(grad: Tensor, velocity: Tensor?, lr: Float, momentum: Float = 0,
                        weightDecay: Float = 0) throws {
        try requireShape("sgdStep (grad)", grad, shape)
        if let velocity { try requireShape("sgdStep (velocity)", velocity, shape) }
        guard momentum >= 0 else {
            throw DeviceError.invalidArgument(op: "sgdStep", "momentum must be ≥ 0, got \(momentum)")
        }
        if momentum > 0 && velocity == nil {
            throw DeviceError.invalidArgument(op: "sgdStep", "momentum needs a velocity tensor")
        }
        let n = count
        let momentum = velocity == nil ? 0 : momentum
        version.bump()
        try Tensor.run("sgdStep", self, grad, velocity) { p, g, v in
            // A block of parameters worth streaming, when other cores may hold copies (see update.c).
            if n >= sgdStreamingMinimum && hostThreads > 1
                && clnn_sgd_streaming(p, g, momentum > 0 ? v : nil, n, lr, momentum, weightDecay) != 0 {
                return
            }
            if let v, momentum > 0 {
                for i in 0..<n {
                    let step = momentum * v[i] + (g[i] + weightDecay * p[i])
                    v[i] = step
                    p[i] -= lr * step
                }
            } else {
                // NOTE: a loop of its own, so the compiler vectorises it (the common case: no momentum).
                for i in 0..<n { p[i] -= lr * (g[i] + weightDecay * p[i]) }
            }
        } opencl: { device, p, g, v in
            let v = try v ?? device.placeholder()
            try device.run(sgdStepKernel, global: WorkSize(n)) { a in
                try a.int("n", n); try a.buffer("param", p); try a.buffer("grad", g); try a.buffer("velocity", v)
                try a.float("lr", lr); try a.float("momentum", momentum); try a.float("weight_decay", weightDecay)
            }
        }
    }

    /// Adam's update number `step` (counting from 1) of self (a parameter), in place, with its first and second
    /// moments `m` and `v` (self's shape, zero before the first step), as `torch.optim.Adam` does it:
    /// g = grad + weightDecay·self; m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²;
    /// self −= lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + eps).
    /// Dense operands only: a view is an error naming the op (pass its `contiguous()` copy).
    public func adamStep(grad: Tensor, m: Tensor, v: Tensor, step: Int, lr: Float,
                         _ h: AdamHyperparameters = AdamHyperparameters()) throws {
        try requireShape("adamStep (grad)", grad, shape)
        try requireShape("adamStep (m)", m, shape)
        try requireShape("adamStep (v)", v, shape)
        guard step >= 1 else { throw DeviceError.invalidArgument(op: "adamStep", "step counts from 1, got \(step)") }
        // NOTE: the bias corrections in Double (PyTorch computes them in Python floats), so a long run's β^t
        // does not drift.
        let stepSize = Float(Double(lr) / (1 - Foundation.pow(Double(h.beta1), Double(step))))
        let bias2Sqrt = Float((1 - Foundation.pow(Double(h.beta2), Double(step))).squareRoot())
        let n = count
        let (beta1, beta2, eps, decay) = (h.beta1, h.beta2, h.eps, h.weightDecay)
        version.bump()
        try Tensor.run("adamStep", self, grad, m, v) { p, g, m, v in
            for i in 0..<n {
                let gi = g[i] + decay * p[i]
                let mi = beta1 * m[i] + (1 - beta1) * gi
                let vi = beta2 * v[i] + (1 - beta2) * gi * gi
                m[i] = mi
                v[i] = vi
                p[i] -= stepSize * mi / (vi.squareRoot() / bias2Sqrt + eps)
            }
        } opencl: { device, p, g, m, v in
            try device.run(adamStepKernel, global: WorkSize(n)) { a in
                try a.int("n", n); try a.buffer("param", p); try a.buffer("grad", g); try a.buffer("m", m)
                try a.buffer("v", v); try a.float("step_size", stepSize); try a.float("beta1", beta1)
                try a.float("beta2", beta2); try a.float("eps", eps); try a.float("weight_decay", decay)
                try a.float("bias2_sqrt", bias2Sqrt)
            }
        }
    }
}

extension OpCheck {
    /// SGD plain and with momentum and weight decay (also on a block large enough for the CPU's streaming update);
    /// three Adam steps against the textbook update in Double.
    static var optimizerChecks: [OpCheck] {
        [37, sgdStreamingMinimum + 27].map(sgdCheck) + [adamCheck]
    }

    private static func sgdCheck(_ n: Int) -> OpCheck {
        let pv = values(n, seed: 91), gv = values(n, seed: 92), vv = values(n, seed: 93)
        return OpCheck("sgdStep (plain; momentum 0.9, decay 0.01)", "\(n)", compute: { d in
            let plain = try Tensor(pv, shape: [n], on: d), grad = try Tensor(gv, shape: [n], on: d)
            try plain.sgdStep(grad: grad, velocity: nil, lr: 0.1)
            let moving = try Tensor(pv, shape: [n], on: d), velocity = try Tensor(vv, shape: [n], on: d)
            try moving.sgdStep(grad: grad, velocity: velocity, lr: 0.1, momentum: 0.9, weightDecay: 0.01)
            return [plain, moving, velocity]
        }, reference: {
            let v = (0..<n).map { 0.9 * Double(vv[$0]) + Double(gv[$0]) + 0.01 * Double(pv[$0]) }
            return [zip(pv, gv).map { Double($0) - 0.1 * Double($1) }, (0..<n).map { Double(pv[$0]) - 0.1 * v[$0] }, v]
        })
    }

    private static var adamCheck: OpCheck {
        let n = 37
        let pv = values(n, seed: 91), gv = values(n, seed: 92)
        let (lr, b1, b2, eps, wd) = (0.01, 0.9, 0.999, 1e-8, 0.05)
        return OpCheck("adamStep (3 steps, decay 0.05)", "\(n)", atol: 1e-6, compute: { d in
            let p = try Tensor(pv, shape: [n], on: d), g = try Tensor(gv, shape: [n], on: d)
            let m = try Tensor.zeros([n], on: d), v = try Tensor.zeros([n], on: d)
            for t in 1...3 {
                try p.adamStep(grad: g, m: m, v: v, step: t, lr: Float(lr),
                               AdamHyperparameters(beta1: Float(b1), beta2: Float(b2), eps: Float(eps),
                                                   weightDecay: Float(wd)))
            }
            return [p, m, v]
        }, reference: {
            var p = pv.map(Double.init), m = [Double](repeating: 0, count: n), v = m
            for t in 1...3 {
                for i in 0..<n {
                    let g = Double(gv[i]) + wd * p[i]
                    m[i] = b1 * m[i] + (1 - b1) * g
                    v[i] = b2 * v[i] + (1 - b2) * g * g
                    let mHat = m[i] / (1 - pow(b1, Double(t))), vHat = v[i] / (1 - pow(b2, Double(t)))
                    p[i] -= lr * mHat / (vHat.squareRoot() + eps)
                }
            }
            return [p, m, v]
        })
    }
}
