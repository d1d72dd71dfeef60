// Row-broadcast bias (Kernels/bias.cl): add_bias and add_bias_backward.

private enum BiasKernels {
    static let addBias = KernelSource("bias", "add_bias")
    static let addBiasBackward = KernelSource("bias", "add_bias_backward")
}

extension Tensor {
    /// self + bias on every row. self: [rows, cols], bias: [cols] → [rows, cols]. `out` may be self (in place).
    /// Without `out`, recorded on the tape (self's gradient is the output's; bias's its column sums), as `self + bias`
    /// is. Dense operands only: a view is an error naming the op (pass its `contiguous()` copy).
    @discardableResult
    public func addBias(_ bias: Tensor, into out: Tensor? = nil) throws -> Tensor {
        let result = try addBiasKernel(bias, into: out)
        guard out == nil else { return result }
        return result.recorded("addBias", from: [self, bias]) { g in [g, try g.sum(axis: 0)] }
    }

    private func addBiasKernel(_ bias: Tensor, into out: Tensor?) throws -> Tensor {
        let (rows, cols) = try matrixDims("addBias", self)
        try requireShape("addBias (bias)", bias, [cols])
        let out = try output("addBias", out, shape, on: device)
        try Tensor.run("addBias", self, bias, out) { x, b, y in
            for i in 0..<rows {
                for j in 0..<cols { y[i * cols + j] = x[i * cols + j] + b[j] }
            }
        } opencl: { device, x, b, y in
            try device.run(BiasKernels.addBias, global: WorkSize(cols, rows)) { a in
                try a.int("rows", rows); try a.int("cols", cols); try a.buffer("x", x); try a.buffer("b", b)
                try a.buffer("y", y)
            }
        }
        return out
    }

    /// The bias gradient: db = Σ_rows dy, or db += Σ_rows dy when `accumulate`. dy: [rows, cols], db: [cols]
    /// Dense operands only: a view is an error naming the op (pass its `contiguous()` copy).
    public static func addBiasBackward(_ dy: Tensor, into db: Tensor, accumulate: Bool = false) throws {
        let (rows, cols) = try matrixDims("addBiasBackward", dy)
        try requireShape("addBiasBackward (bias gradient)", db, [cols])
        try Tensor.run("addBiasBackward", dy, db) { dy, db in
            hostColumnSums(dy, rows: rows, cols: cols, into: db, accumulate: accumulate)
        } opencl: { device, dy, db in
            try launchColumnSums(device, dy, rows: rows, cols: cols, into: db, beta: accumulate ? 1 : 0)
        }
    }
}

/// db = the column sums of the [rows, cols] matrix in `x` (+ db when `accumulate`), on the host, as add_bias_backward
/// computes them: each column summed from zero down the rows in order, then added to db. The columns are split
/// across the cores when there is work enough (reading along rows).
func hostColumnSums(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, into db: UnsafeMutablePointer<Float>,
                    accumulate: Bool) {
    nonisolated(unsafe) let (x, db) = (x, db)
    hostParallel(cols, costPerItem: Double(rows)) { columns in
        let first = columns.lowerBound
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: columns.count)
        defer { acc.deallocate() }
        acc.initialize(repeating: 0, count: columns.count)
        for i in 0..<rows {
            let row = x + i * cols
            for j in columns { acc[j - first] += row[j] }
        }
        for j in columns { db[j] = accumulate ? acc[j - first] + db[j] : acc[j - first] }
    }
}

/// db = beta·db + the column sums of the [rows, cols] matrix in `x` (add_bias_backward), on `device`: the bias
/// gradient, the sum of a tall batch's per-block partial sums (`biasActivationBackward`), and split K's partial
/// products added in order (`launchMatmul`).
func launchColumnSums(_ device: OpenCLDevice, _ x: CLBuffer, rows: Int, cols: Int, into db: CLBuffer,
                      beta: Float) throws {
    // Groups of 64 work-items: a CPU driver runs them as vectors along the columns (POCL left to pick the size:
    // 17 ms more for the full batch's split-K sums of 235 × 39200).
    let kernel = try device.kernel(BiasKernels.addBiasBackward)
    try device.launch(kernel, global: WorkSize(cols), local: WorkSize(min(64, kernel.maxWorkGroupSize))) { a in
        try a.int("rows", rows); try a.int("cols", cols); try a.buffer("dy", x); try a.buffer("db", db)
        try a.float("beta", beta)
    }
}

extension OpCheck {
    /// The bias forward, and its gradient fresh and accumulated.
    static var biasChecks: [OpCheck] {
        [(1, 1), (3, 5), (65, 33), (0, 4)].map { rows, cols in
            let xv = values(rows * cols, seed: 41), bv = values(cols, seed: 42), dbv = values(cols, seed: 43)
            return OpCheck("bias forward and backward", "\(rows)x\(cols)", compute: { d in
                let x = try Tensor(xv, shape: [rows, cols], on: d)
                let y = try x.addBias(try Tensor(bv, shape: [cols], on: d))
                let db = try Tensor(dbv, shape: [cols], on: d), fresh = try Tensor.zeros([cols], on: d)
                try Tensor.addBiasBackward(x, into: db, accumulate: true)
                try Tensor.addBiasBackward(x, into: fresh)
                return [y, db, fresh]
            }, reference: {
                let sums = (0..<cols).map { j in (0..<rows).reduce(0.0) { $0 + Double(xv[$1 * cols + j]) } }
                return [xv.indices.map { Double(xv[$0]) + Double(bv[$0 % cols]) }, zip(sums, dbv).map { $0 + Double($1) },
                        sums]
            })
        }
    }
}
