// The one place that chooses a backend. Every op checks that its operands share a device and that their shapes
// fit, allocates its output on that device, and hands the work to that device's backend.

/// The backend for `device`.
private func backend(for device: DeviceTag) throws -> any Backend {
    switch device.kind {
    case .cpu: return CPUBackend()
    case .opencl: return OpenCLBackend(device: try OpenCLRuntime.shared.device(device.index))
    }
}

/// The backend shared by `tensors`, or `DeviceError.deviceMismatch` naming `op` and the two devices.
private func backend(_ op: String, _ tensors: Tensor?...) throws -> any Backend {
    let present = tensors.compactMap { $0 }
    let device = present[0].device
    for t in present.dropFirst() where t.device != device {
        throw DeviceError.deviceMismatch(op: op, device, t.device)
    }
    return try backend(for: device)
}

private func requireShape(_ op: String, _ t: Tensor, _ expected: [Int]) throws {
    guard t.shape == expected else { throw DeviceError.shapeMismatch(op: op, t.shape, expected) }
}

private func matrixDims(_ op: String, _ t: Tensor) throws -> (Int, Int) {
    guard t.shape.count == 2 else {
        throw DeviceError.invalidArgument(op: op, "expects a matrix, got shape \(t.shape)")
    }
    return (t.shape[0], t.shape[1])
}

extension Tensor {
    // MARK: Matrix products

    /// The matrix product op(self)·op(other), where op transposes when its flag is set (read through indexing).
    ///
    /// self: [m, k] (or [k, m] with transposeSelf), other: [k, n] (or [n, k] with transposeOther) → [m, n]
    public func matmul(_ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false) throws -> Tensor {
        let (m, _) = try Tensor.gemmDims(self, other, transA: transposeSelf, transB: transposeOther)
        let n = transposeOther ? other.shape[0] : other.shape[1]
        let out = try Tensor.empty([m, n], on: device)
        try Tensor.gemm(self, other, into: out, transA: transposeSelf, transB: transposeOther, accumulate: false)
        return out
    }

    /// c = op(a)·op(b), or c += op(a)·op(b) when `accumulate`. c: [m, n].
    public static func gemm(_ a: Tensor, _ b: Tensor, into c: Tensor, transA: Bool = false, transB: Bool = false,
                            accumulate: Bool = false, naive: Bool = false) throws {
        let be = try backend("matmul", a, b, c)
        let (m, k) = try gemmDims(a, b, transA: transA, transB: transB)
        let n = transB ? b.shape[0] : b.shape[1]
        try requireShape("matmul (output)", c, [m, n])
        if naive {
            try be.matmulNaive(a, b, c, m: m, n: n, k: k, transA: transA, transB: transB, beta: accumulate ? 1 : 0)
        } else {
            try be.matmul(a, b, c, m: m, n: n, k: k, transA: transA, transB: transB, beta: accumulate ? 1 : 0)
        }
    }

    private static func gemmDims(_ a: Tensor, _ b: Tensor, transA: Bool, transB: Bool) throws -> (m: Int, k: Int) {
        _ = try backend("matmul", a, b)
        let (ar, ac) = try matrixDims("matmul", a)
        let (br, bc) = try matrixDims("matmul", b)
        let (m, k) = transA ? (ac, ar) : (ar, ac)
        let kb = transB ? bc : br
        guard k == kb else { throw DeviceError.shapeMismatch(op: "matmul", a.shape, b.shape) }
        return (m, k)
    }

    // Every op that makes a tensor has an `into:` form writing a tensor the caller owns, so that a training step can
    // reuse its buffers; the allocating form allocates and calls it.

    // MARK: ReLU

    /// max(self, 0), elementwise. Any shape.
    public func relu() throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        try relu(into: out)
        return out
    }

    public func relu(into out: Tensor) throws {
        let be = try backend("relu", self, out)
        try requireShape("relu (output)", out, shape)
        try be.reluForward(self, out)
    }

    /// The ReLU gradient: `dy` where self (the forward input, or output) > 0, else 0.
    public func reluBackward(_ dy: Tensor) throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        try reluBackward(dy, into: out)
        return out
    }

    public func reluBackward(_ dy: Tensor, into out: Tensor) throws {
        let be = try backend("reluBackward", self, dy, out)
        try requireShape("reluBackward", dy, shape)
        try requireShape("reluBackward (output)", out, shape)
        try be.reluBackward(self, dy, out)
    }

    // MARK: Bias

    /// self + bias on every row. self: [rows, cols], bias: [cols] → [rows, cols]
    public func addingBias(_ bias: Tensor) throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        try addingBias(bias, into: out)
        return out
    }

    /// `out` may be self (in place).
    public func addingBias(_ bias: Tensor, into out: Tensor) throws {
        let be = try backend("addBias", self, bias, out)
        let (rows, cols) = try matrixDims("addBias", self)
        try requireShape("addBias", bias, [cols])
        try requireShape("addBias (output)", out, shape)
        try be.biasForward(self, bias, out, rows: rows, cols: cols)
    }

    /// db = Σ_rows dy (or db += when `accumulate`). dy: [rows, cols], db: [cols]
    public static func biasBackward(_ dy: Tensor, into db: Tensor, accumulate: Bool = false) throws {
        let be = try backend("biasBackward", dy, db)
        let (rows, cols) = try matrixDims("biasBackward", dy)
        try requireShape("biasBackward", db, [cols])
        try be.biasBackward(dy, db, rows: rows, cols: cols, beta: accumulate ? 1 : 0)
    }

    /// max(self + bias, 0): a layer's bias and its ReLU in one pass. self: [rows, cols], bias: [cols]
    public func addingBiasReLU(_ bias: Tensor) throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        try addingBiasReLU(bias, into: out)
        return out
    }

    /// `out` may be self (in place).
    public func addingBiasReLU(_ bias: Tensor, into out: Tensor) throws {
        let be = try backend("addBiasReLU", self, bias, out)
        let (rows, cols) = try matrixDims("addBiasReLU", self)
        try requireShape("addBiasReLU", bias, [cols])
        try requireShape("addBiasReLU (output)", out, shape)
        try be.biasReluForward(self, bias, out, rows: rows, cols: cols)
    }

    /// The backward of `addingBiasReLU`, with the ReLU mask inside: from the forward output `y` and `dy`,
    /// returns dx = dy·[y > 0] and writes db = Σ_rows dx (or adds it, when `accumulate`).
    public static func biasReluBackward(output y: Tensor, _ dy: Tensor, into db: Tensor, accumulate: Bool) throws -> Tensor {
        let dx = try Tensor.empty(y.shape, on: y.device)
        try biasReluBackward(output: y, dy, dx: dx, db: db, accumulate: accumulate)
        return dx
    }

    public static func biasReluBackward(output y: Tensor, _ dy: Tensor, dx: Tensor, db: Tensor, accumulate: Bool) throws {
        let be = try backend("biasReluBackward", y, dy, dx, db)
        let (rows, cols) = try matrixDims("biasReluBackward", y)
        try requireShape("biasReluBackward", dy, y.shape)
        try requireShape("biasReluBackward (dx)", dx, y.shape)
        try requireShape("biasReluBackward (bias grad)", db, [cols])
        try be.biasReluBackward(y, dy, dx, db, rows: rows, cols: cols, beta: accumulate ? 1 : 0)
    }

    // MARK: Losses

    /// Per-row softmax cross-entropy of self (logits [rows, classes]) against class indices `labels` [rows].
    /// When `grad` ([rows, classes]) is given, it receives gradScale · (softmax − one-hot).
    /// → losses [rows]
    public func softmaxCrossEntropy(labels: Tensor, grad: Tensor? = nil, gradScale: Float = 1) throws -> Tensor {
        let losses = try Tensor.empty([shape.first ?? 0], on: device)
        try softmaxCrossEntropy(labels: labels, losses: losses, grad: grad, gradScale: gradScale)
        return losses
    }

    public func softmaxCrossEntropy(labels: Tensor, losses: Tensor, grad: Tensor?, gradScale: Float) throws {
        let be = try backend("softmaxCrossEntropy", self, labels, losses, grad)
        let (rows, cols) = try matrixDims("softmaxCrossEntropy", self)
        guard cols > 0 else { throw DeviceError.invalidArgument(op: "softmaxCrossEntropy", "zero classes") }
        try requireShape("softmaxCrossEntropy (labels)", labels, [rows])
        try requireShape("softmaxCrossEntropy (losses)", losses, [rows])
        if let grad { try requireShape("softmaxCrossEntropy (grad)", grad, shape) }
        try be.softmaxXent(self, labels, losses, grad, rows: rows, cols: cols, gradScale: gradScale)
    }

    /// Per-element squared error of self (predictions) against `target` of the same element count.
    /// When `grad` (self's shape) is given, it receives gradScale · 2 · (pred − target). → losses [count]
    public func squaredError(target: Tensor, grad: Tensor? = nil, gradScale: Float = 1) throws -> Tensor {
        let losses = try Tensor.empty([count], on: device)
        try squaredError(target: target, losses: losses, grad: grad, gradScale: gradScale)
        return losses
    }

    public func squaredError(target: Tensor, losses: Tensor, grad: Tensor?, gradScale: Float) throws {
        let be = try backend("squaredError", self, target, losses, grad)
        guard target.count == count else { throw DeviceError.shapeMismatch(op: "squaredError", shape, target.shape) }
        try requireShape("squaredError (losses)", losses, [count])
        if let grad { try requireShape("squaredError (grad)", grad, shape) }
        try be.mse(self, target, losses, grad, gradScale: gradScale)
    }

    // MARK: Reductions

    /// The sum of all elements. → [1]
    public func sum() throws -> Tensor {
        let out = try Tensor.empty([1], on: device)
        try sum(into: out)
        return out
    }

    public func sum(into out: Tensor) throws {
        let be = try backend("sum", self, out)
        try requireShape("sum (output)", out, [1])
        try be.sumAll(self, out)
    }

    /// The index of the largest entry of each row. self: [rows, cols] → [rows]
    public func argmaxRows() throws -> Tensor {
        let (rows, cols) = try matrixDims("argmaxRows", self)
        guard cols > 0 else { throw DeviceError.invalidArgument(op: "argmaxRows", "rows have no entries") }
        let out = try Tensor.empty([rows], on: device)
        try backend("argmaxRows", self, out).argmaxRows(self, out, rows: rows, cols: cols)
        return out
    }

    // MARK: Elementwise

    /// self op other, elementwise; both have the same shape.
    public func elementwise(_ op: BinaryOp, _ other: Tensor) throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        try elementwise(op, other, into: out)
        return out
    }

    /// `out` may be self or other (in place).
    public func elementwise(_ op: BinaryOp, _ other: Tensor, into out: Tensor) throws {
        let be = try backend(op.rawValue, self, other, out)
        try requireShape(op.rawValue, other, shape)
        try requireShape(op.rawValue + " (output)", out, shape)
        try be.elementwise(op, self, other, out)
    }

    /// alpha · self + beta, elementwise.
    public func affine(scale alpha: Float, shift beta: Float = 0) throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        try affine(scale: alpha, shift: beta, into: out)
        return out
    }

    /// `out` may be self (in place).
    public func affine(scale alpha: Float, shift beta: Float = 0, into out: Tensor) throws {
        let be = try backend("affine", self, out)
        try requireShape("affine (output)", out, shape)
        try be.affine(self, alpha: alpha, beta: beta, out)
    }

    /// Sets every element to `value`, in place.
    public func fill(_ value: Float) throws {
        try backend("fill", self).fill(self, value)
    }

    /// Gathers rows of `source` in the order `order[offset..<offset + rows]` into self, on their common device.
    /// source: [n, cols] (or [n] for cols = 1), order: [count] row indices as floats, self: [rows, cols] (or [rows]).
    public func gatherRows(from source: Tensor, order: Tensor, offset: Int) throws {
        let be = try backend("gatherRows", self, source, order)
        let cols = source.shape.count == 2 ? source.shape[1] : 1
        let rows = shape.first ?? 0
        guard count == rows * cols, source.count % max(cols, 1) == 0, rows == 0 || source.count > 0 else {
            throw DeviceError.shapeMismatch(op: "gatherRows", source.shape, shape)
        }
        guard offset >= 0, offset + rows <= order.count else {
            throw DeviceError.invalidArgument(op: "gatherRows", "rows \(offset)..<\(offset + rows) exceed an order of \(order.count)")
        }
        try be.gatherRows(source, order, offset: offset, self, rows: rows, cols: cols)
    }

    /// One SGD update of self (a parameter), in place; `velocity` (self's shape) is needed when momentum > 0.
    public func sgdStep(grad: Tensor, velocity: Tensor?, lr: Float, momentum: Float = 0, weightDecay: Float = 0) throws {
        let be = try backend("sgdStep", self, grad, velocity)
        try requireShape("sgdStep (grad)", grad, shape)
        if let velocity { try requireShape("sgdStep (velocity)", velocity, shape) }
        if momentum > 0 && velocity == nil {
            throw DeviceError.invalidArgument(op: "sgdStep", "momentum needs a velocity tensor")
        }
        try be.sgdStep(self, grad, velocity, lr: lr, momentum: momentum, weightDecay: weightDecay)
    }
}

extension DeviceTag {
    /// Builds the kernels and picks (tunes, the first time) the GEMM kernels now, so that the first timed work
    /// does not pay for it. A no-op on cpu.
    public func warmUp() throws {
        guard isOpenCL else { return }
        let device = try OpenCLRuntime.shared.device(index)
        _ = try device.buildAllPrograms()
        _ = try device.gemmPlan()
    }

    /// Waits until every command queued on this device has finished (a no-op on cpu). For timing.
    public func synchronize() throws {
        if isOpenCL { try OpenCLRuntime.shared.device(index).finish() }
    }
}
