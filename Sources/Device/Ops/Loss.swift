// Losses with their gradients fused into the same pass (Kernels/loss.cl): softmax_cross_entropy and squared_error
// per example, and mean_loss: a batch's mean loss and its gradient in one kernel, as a training step uses it.
import Foundation

private enum LossKernels {
    static let softmaxCrossEntropy = KernelSource("loss", "softmax_cross_entropy", options: LossKind.defines)
    static let squaredError = KernelSource("loss", "squared_error", options: LossKind.defines)
    static let meanLoss = KernelSource("loss", "mean_loss", options: LossKind.defines)
}

/// The losses `meanLoss` computes.
public enum LossKind: Int, Sendable, CaseIterable {
    /// Softmax cross-entropy of logit rows against class indices.
    case softmaxCrossEntropy = 0
    /// Squared error of a single output per row against a target.
    case squaredError = 1

    /// The numbering as loss.cl's `-D` defines (`LOSS_SOFTMAX_CROSS_ENTROPY=0 …`): defined here once, never kept
    /// equal by
    /// hand in the kernel.
    static let defines = allCases.map { kind in
        let macro = "\(kind)".reduce(into: "") { out, c in
            out += c.isUppercase ? "_" + String(c) : String(c).uppercased()
        }
        return "-D LOSS_\(macro)=\(kind.rawValue)"
    }.joined(separator: " ")
}

extension Tensor {
    /// Per-row softmax cross-entropy of self (logits [rows, classes]) against class indices `labels` [rows],
    /// log-sum-exp stable. When `grad` ([rows, classes]) is given it receives gradScale · (softmax − one-hot).
    /// A label that is not a class index (out of range, fractional, NaN) gives a NaN loss and a NaN gradient row
    /// (never an out-of-bounds read, nor a truncated class). `grad` may be self (the logits' gradient written over
    /// them, as llm.c does).
    /// Reads views (through a contiguous copy).
    /// Without `grad` and `losses`, recorded on the tape: the logits' gradient is (softmax − one-hot) · the losses'
    /// gradient, row by row (0 where that is 0: a loss masked out, its label's row NaN or not). → losses [rows]
    @discardableResult
    public func softmaxCrossEntropy(labels: Tensor, grad: Tensor? = nil, gradScale: Float = 1,
                                    into losses: Tensor? = nil) throws -> Tensor {
        let (logits, labels) = try Tensor.withoutGradients { (try contiguous(), try labels.contiguous()) }
        let result = try logits.softmaxCrossEntropyKernel(labels: labels, grad: grad, gradScale: gradScale,
                                                          into: losses)
        guard grad == nil, losses == nil else { return result }
        let (x, y) = (logits.detached(), labels.detached())
        return result.recorded("softmaxCrossEntropy", from: [self], saving: [x, y]) { g in
            let rows = try Tensor.empty(x.shape, on: x.device)
            try x.softmaxCrossEntropyKernel(labels: y, grad: rows, gradScale: 1, into: nil)
            // A row whose loss takes no gradient (masked out: a label to ignore) gives none, though its own is NaN.
            let perRow = try g.unsqueezed(axis: 1)
            return [try Tensor.where(perRow, rows * perRow, try Tensor.zeros([], on: g.device))]
        }
    }

    private func softmaxCrossEntropyKernel(labels: Tensor, grad: Tensor?, gradScale: Float,
                                           into losses: Tensor?) throws -> Tensor {
        let (rows, cols) = try matrixDims("softmaxCrossEntropy", self)
        guard cols > 0 else { throw DeviceError.invalidArgument(op: "softmaxCrossEntropy", "zero classes") }
        try requireShape("softmaxCrossEntropy (labels)", labels, [rows])
        if let grad {
            try requireShape("softmaxCrossEntropy (grad)", grad, shape)
            grad.version.bump()  // written: an op that saved it must see the change
        }
        let losses = try output("softmaxCrossEntropy (losses)", losses, [rows], on: device,
                                reading: [self, labels, grad])
        try Tensor.run("softmaxCrossEntropy", self, labels, losses, grad) { logits, labels, losses, grad in
            for i in 0..<rows {
                losses[i] = softmaxCrossEntropyRow(logits + i * cols, cols, label: labels[i],
                                                   grad: grad.map { $0 + i * cols }, scale: gradScale)
            }
        } opencl: { device, logits, labels, losses, grad in
            let wantGrad = grad != nil, grad = try grad ?? device.placeholder()
            try device.run(LossKernels.softmaxCrossEntropy, global: WorkSize(rows)) { a in
                try a.int("rows", rows); try a.int("cols", cols); try a.buffer("logits", logits)
                try a.buffer("labels", labels); try a.buffer("losses", losses); try a.buffer("grad", grad)
                try a.float("grad_scale", gradScale); try a.int("want_grad", wantGrad ? 1 : 0)
            }
        }
        return losses
    }

    /// Per-element squared error of self (predictions) against `target` of the same element count. When `grad`
    /// (self's shape) is given it receives gradScale · 2 · (pred − target). Reads views (through a contiguous copy).
    /// Without `grad` and `losses`, recorded on the tape (both the predictions and the target get gradients).
    /// → losses [count]
    @discardableResult
    public func squaredError(target: Tensor, grad: Tensor? = nil, gradScale: Float = 1,
                             into losses: Tensor? = nil) throws -> Tensor {
        let (pred, goal) = try Tensor.withoutGradients { (try contiguous(), try target.contiguous()) }
        let result = try pred.squaredErrorKernel(target: goal, grad: grad, gradScale: gradScale, into: losses)
        guard grad == nil, losses == nil else { return result }
        let (x, t) = (pred.detached(), goal.detached())
        let (shape, targetShape) = (self.shape, target.shape)
        return result.recorded("squaredError", from: [self, target], saving: [x, t]) { g in
            let d = try (try x.reshaped([-1]) - t.reshaped([-1])) * g * 2
            return [try d.reshaped(shape), try (-d).reshaped(targetShape)]
        }
    }

    private func squaredErrorKernel(target: Tensor, grad: Tensor?, gradScale: Float,
                                    into losses: Tensor?) throws -> Tensor {
        guard target.count == count else { throw DeviceError.shapeMismatch(op: "squaredError", shape, target.shape) }
        if let grad {
            try requireShape("squaredError (grad)", grad, shape)
            grad.version.bump()  // written: an op that saved it must see the change
        }
        let losses = try output("squaredError (losses)", losses, [count], on: device, reading: [self, target, grad])
        let n = count
        try Tensor.run("squaredError", self, target, losses, grad) { pred, target, losses, grad in
            for i in 0..<n {
                let d = pred[i] - target[i]
                losses[i] = d * d
                grad?[i] = gradScale * 2 * d
            }
        } opencl: { device, pred, target, losses, grad in
            let wantGrad = grad != nil, grad = try grad ?? device.placeholder()
            try device.run(LossKernels.squaredError, global: WorkSize(n)) { a in
                try a.int("n", n); try a.buffer("pred", pred); try a.buffer("target", target)
                try a.buffer("losses", losses); try a.buffer("grad", grad); try a.float("grad_scale", gradScale)
                try a.int("want_grad", wantGrad ? 1 : 0)
            }
        }
        return losses
    }

    /// The mean over the batch of `kind`'s loss of self (predictions [rows, cols]; cols = 1 for squared error) against
    /// `labels` [rows], written to element `slot` of `out`; when `grad` (self's shape) is given it receives the
    /// gradient of that mean. One kernel: what a training step runs instead of per-example losses, a sum and a scale.
    /// A batch of no rows has a NaN mean, as in PyTorch.
    /// Dense operands only: a view is an error naming the op (pass its `contiguous()` copy).
    public func meanLoss(_ kind: LossKind, labels: Tensor, grad: Tensor? = nil, into out: Tensor,
                         at slot: Int = 0) throws {
        try meanLoss(kind, labels: Rows(labels), grad: grad, into: out, at: slot)
    }

    /// The same with the labels read in place through the batch's index list (no gathered copy).
    /// Dense operands only: a view is an error naming the op (pass its `contiguous()` copy).
    public func meanLoss(_ kind: LossKind, labels: Rows, grad: Tensor? = nil, into out: Tensor,
                         at slot: Int = 0) throws {
        let (rows, cols) = try matrixDims("meanLoss", self)
        guard cols > 0, kind == .softmaxCrossEntropy || cols == 1 else {
            throw DeviceError.invalidArgument(op: "meanLoss", "\(kind) needs "
                + "\(kind == .squaredError ? "one output" : "at least one class") per row, got \(cols)")
        }
        guard labels.shape == [rows] else {
            throw DeviceError.shapeMismatch(op: "meanLoss (labels)", labels.shape, [rows])
        }
        if let grad { try requireShape("meanLoss (grad)", grad, shape) }
        guard slot >= 0, slot < out.count else {
            throw DeviceError.invalidArgument(op: "meanLoss", "slot \(slot) is outside an output of "
                + "\(out.count) elements")
        }
        // The gradient may be written over the predictions (in place); nothing else may share memory.
        let inputs: [(String, Tensor?)] = [("the predictions", self), ("the labels", labels.source),
                                           ("the gradient", grad)]
        if let (what, _) = inputs.first(where: { $0.1?.sharesStorage(with: out) == true }) {
            throw DeviceError.invalidArgument(op: "meanLoss", "the output shares memory with \(what)")
        }
        if let grad, grad.sharesStorage(with: labels.source) {
            throw DeviceError.invalidArgument(op: "meanLoss", "the gradient shares memory with the labels")
        }
        guard rows > 0 else {
            // The mean of no losses is NaN, as PyTorch's (the gradient, of no rows, is empty).
            try [Float.nan].withUnsafeBufferPointer { try out.upload($0, at: slot) }
            return
        }
        let (offset, labelRows) = (labels.offset, labels.sourceRows)
        // Both are written: an op that saved either must see the change.
        grad?.version.bump()
        out.version.bump()
        try Tensor.run("meanLoss", self, labels.source, grad, out, labels.order) { pred, labels, grad, out, order in
            let scale = 1 / Float(Swift.max(rows, 1))
            let order = order.map { HostRowOrder(order: $0, offset: offset, rows: labelRows) }
            var total: Float = 0
            // NOTE: the batch's labels first, in a loop of independent loads: read through a shuffled index list
            // they are cache misses, which took 60% of this loss when each waited inside its row's work.
            let picked = (0..<rows).map { labels[order?.row($0) ?? $0] }
            for i in 0..<rows {
                let z = pred + i * cols
                let label = picked[i]
                if kind == .squaredError {
                    let d = z[0] - label
                    total += d * d
                    grad?[i] = scale * 2 * d
                    continue
                }
                total += softmaxCrossEntropyRow(z, cols, label: label, grad: grad.map { $0 + i * cols }, scale: scale)
            }
            out[slot] = total * scale
        } opencl: { device, pred, labels, grad, out, order in
            let kernel = try device.kernel(LossKernels.meanLoss)
            let (wantGrad, gathered) = (grad != nil, order != nil)
            let grad = try grad ?? device.placeholder(), order = try order ?? device.placeholder()
            // One work-group of the largest power of two the kernel, the local memory and the rows call for.
            let limit = Swift.min(256, kernel.maxWorkGroupSize, device.info.localMemory / MemoryLayout<Float>.size)
            var size = 1
            while size * 2 <= limit && size < rows { size *= 2 }
            try device.launch(kernel, global: WorkSize(size), local: WorkSize(size)) { a in
                try a.int("kind", kind.rawValue); try a.int("rows", rows); try a.int("cols", cols)
                try a.buffer("pred", pred); try a.buffer("labels", labels); try a.buffer("grad", grad)
                try a.int("want_grad", wantGrad ? 1 : 0); try a.buffer("out", out); try a.int("slot", slot)
                try a.local("scratch", floats: size); try a.int("gathered", gathered ? 1 : 0)
                try a.buffer("order", order); try a.int("offset", offset); try a.int("label_rows", labelRows)
            }
        }
    }
}

/// One row's softmax cross-entropy, log-sum-exp stable: logsumexp(z) − z[label]; `grad` (when given) receives
/// scale · (softmax(z) − one-hot). A label that is not a class index gives NaN, as in the kernel.
private func softmaxCrossEntropyRow(_ z: UnsafeMutablePointer<Float>, _ cols: Int, label value: Float,
                                    grad: UnsafeMutablePointer<Float>?, scale: Float) -> Float {
    var top = z[0]
    for j in 1..<cols { top = max(top, z[j]) }
    var s: Float = 0
    for j in 0..<cols { s += expf(z[j] - top) }
    let lse = top + logf(s)
    // As loss.cl: a label that is not a whole class index (fractional, out of range, NaN) is no class: a NaN loss
    // and a NaN gradient row.
    let label = isWholeIndex(value, below: cols) ? Int(value) : -1
    // The loss is read before the gradient is written: grad may be z itself (written over the logits).
    let loss = label >= 0 ? lse - z[label] : .nan
    if let grad {
        for j in 0..<cols { grad[j] = label >= 0 ? scale * (expf(z[j] - lse) - (j == label ? 1 : 0)) : .nan }
    }
    return loss
}

/// Whether `value` is a whole number in 0..<count: an index a float may name (a class, a row). NaN is not.
func isWholeIndex(_ value: Float, below count: Int) -> Bool {
    value >= 0 && value < Float(count) && value == value.rounded(.down)
}

extension OpCheck {
    /// Both losses per example and as the batch's fused mean with its gradient, the labels read plain and through an
    /// index list; large logits exercise the log-sum-exp.
    static var lossChecks: [OpCheck] {
        [(7, 10), (65, 3), (300, 10)].flatMap { rows, cols -> [OpCheck] in
            let zv = values(rows * cols, seed: 61).map { $0 * 20 }, pv = values(rows, seed: 62).map { $0 * 3 }
            var rng = SeededGenerator(seed: 63)
            let labels = (0..<rows).map { _ in Float(rng.next() % UInt64(cols)) }
            // The labels stored in reverse, read back in order through the index list.
            let stored = Array(labels.reversed()), order = (0..<rows).map { Float(rows - 1 - $0) }
            @Sendable func crossEntropy(scale: Double) -> (losses: [Double], grad: [Double]) {
                var losses = [Double](), grad = [Double]()
                for i in 0..<rows {
                    let z = (0..<cols).map { Double(zv[i * cols + $0]) }
                    let top = z.max()!, lse = top + log(z.reduce(0) { $0 + exp($1 - top) })
                    losses.append(lse - z[Int(labels[i])])
                    grad += (0..<cols).map { scale * (exp(z[$0] - lse) - ($0 == Int(labels[i]) ? 1 : 0)) }
                }
                return (losses, grad)
            }
            let shape = "\(rows)x\(cols)"
            return [
                OpCheck("softmaxCrossEntropy", shape, rtol: 1e-5, atol: 1e-4, compute: { d in
                    let grad = try Tensor.zeros([rows, cols], on: d)
                    let losses = try Tensor(zv, shape: [rows, cols], on: d)
                        .softmaxCrossEntropy(labels: try Tensor(labels, shape: [rows], on: d), grad: grad, gradScale: 0.5)
                    return [losses, grad]
                }, reference: { let r = crossEntropy(scale: 0.5); return [r.losses, r.grad] }),
                OpCheck("squaredError", "\(rows)", compute: { d in
                    let grad = try Tensor.zeros([rows, 1], on: d)
                    let losses = try Tensor(pv, shape: [rows, 1], on: d)
                        .squaredError(target: try Tensor(labels, shape: [rows], on: d), grad: grad, gradScale: 0.25)
                    return [losses, grad]
                }, reference: {
                    [zip(pv, labels).map { Double($0 - $1) * Double($0 - $1) }, zip(pv, labels).map { 0.5 * Double($0 - $1) }]
                }),
                OpCheck("meanLoss (both kinds, labels through an index list)", shape, rtol: 1e-4, atol: 1e-5, compute: { d in
                    let out = try Tensor.zeros([3], on: d)
                    let y = try Rows(try Tensor(stored, shape: [rows], on: d),
                                     order: try Tensor(order, shape: [rows], on: d), offset: 0, count: rows)
                    let gz = try Tensor.zeros([rows, cols], on: d), gp = try Tensor.zeros([rows, 1], on: d)
                    try Tensor(zv, shape: [rows, cols], on: d).meanLoss(.softmaxCrossEntropy, labels: y, grad: gz,
                                                                         into: out, at: 1)
                    try Tensor(pv, shape: [rows, 1], on: d).meanLoss(.squaredError, labels: y, grad: gp, into: out, at: 2)
                    return [out, gz, gp]
                }, reference: {
                    let ce = crossEntropy(scale: 1 / Double(rows))
                    let se = zip(pv, labels).map { Double($0 - $1) * Double($0 - $1) }
                    return [[0, ce.losses.reduce(0, +) / Double(rows), se.reduce(0, +) / Double(rows)], ce.grad,
                            zip(pv, labels).map { 2 * Double($0 - $1) / Double(rows) }]
                }),
            ]
        }
    }
}
