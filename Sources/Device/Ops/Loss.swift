// Losses with their gradients fused into the same pass (Kernels/loss.cl): softmax_cross_entropy, squared_error.
import Foundation

private enum LossKernels {
    static let softmaxCrossEntropy = KernelSource("loss", "softmax_cross_entropy")
    static let squaredError = KernelSource("loss", "squared_error")
}

extension Tensor {
    /// Per-row softmax cross-entropy of self (logits [rows, classes]) against class indices `labels` [rows],
    /// log-sum-exp stable. When `grad` ([rows, classes]) is given it receives gradScale · (softmax − one-hot).
    /// An out-of-range label gives a NaN loss (never an out-of-bounds read). → losses [rows]
    @discardableResult
    public func softmaxCrossEntropy(labels: Tensor, grad: Tensor? = nil, gradScale: Float = 1,
                                    into losses: Tensor? = nil) throws -> Tensor {
        let (rows, cols) = try matrixDims("softmaxCrossEntropy", self)
        guard cols > 0 else { throw DeviceError.invalidArgument(op: "softmaxCrossEntropy", "zero classes") }
        try requireShape("softmaxCrossEntropy (labels)", labels, [rows])
        if let grad { try requireShape("softmaxCrossEntropy (grad)", grad, shape) }
        let losses = try output("softmaxCrossEntropy (losses)", losses, [rows], on: device)
        try Tensor.run("softmaxCrossEntropy", self, labels, losses, grad) { m in
            for i in 0..<rows {
                let z = m[0] + i * cols
                var top = z[0]
                for j in 1..<cols { top = max(top, z[j]) }
                var s: Float = 0
                for j in 0..<cols { s += expf(z[j] - top) }
                let lse = top + logf(s)
                let label = Int(exactly: m[1][i].rounded(.towardZero)) ?? -1
                m[2][i] = label >= 0 && label < cols ? lse - z[label] : .nan
                if let g = m.optional(3) {
                    for j in 0..<cols { g[i * cols + j] = gradScale * (expf(z[j] - lse) - (j == label ? 1 : 0)) }
                }
            }
        } opencl: { d in
            let g = try d.orPlaceholder(3)
            try d.device.run(LossKernels.softmaxCrossEntropy, global: WorkSize(rows)) { a in
                try a.int(rows); try a.int(cols); try a.buffer(d[0]); try a.buffer(d[1]); try a.buffer(d[2])
                try a.buffer(g); try a.float(gradScale); try a.int(grad == nil ? 0 : 1)
            }
        }
        return losses
    }

    /// Per-element squared error of self (predictions) against `target` of the same element count. When `grad`
    /// (self's shape) is given it receives gradScale · 2 · (pred − target). → losses [count]
    @discardableResult
    public func squaredError(target: Tensor, grad: Tensor? = nil, gradScale: Float = 1,
                             into losses: Tensor? = nil) throws -> Tensor {
        guard target.count == count else { throw DeviceError.shapeMismatch(op: "squaredError", shape, target.shape) }
        if let grad { try requireShape("squaredError (grad)", grad, shape) }
        let losses = try output("squaredError (losses)", losses, [count], on: device)
        let n = count
        try Tensor.run("squaredError", self, target, losses, grad) { m in
            for i in 0..<n {
                let d = m[0][i] - m[1][i]
                m[2][i] = d * d
                m.optional(3)?[i] = gradScale * 2 * d
            }
        } opencl: { d in
            let g = try d.orPlaceholder(3)
            try d.device.run(LossKernels.squaredError, global: WorkSize(n)) { a in
                try a.int(n); try a.buffer(d[0]); try a.buffer(d[1]); try a.buffer(d[2])
                try a.buffer(g); try a.float(gradScale); try a.int(grad == nil ? 0 : 1)
            }
        }
        return losses
    }
}
