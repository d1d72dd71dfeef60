// Row-broadcast bias (Kernels/bias.cl): add_bias and add_bias_backward.

private enum BiasKernels {
    static let addBias = KernelSource("bias", "add_bias")
    static let addBiasBackward = KernelSource("bias", "add_bias_backward")
}

extension Tensor {
    /// self + bias on every row. self: [rows, cols], bias: [cols] → [rows, cols]. `out` may be self (in place).
    @discardableResult
    public func addBias(_ bias: Tensor, into out: Tensor? = nil) throws -> Tensor {
        let (rows, cols) = try matrixDims("addBias", self)
        try requireShape("addBias (bias)", bias, [cols])
        let out = try output("addBias", out, shape, on: device)
        try Tensor.run("addBias", self, bias, out) { m in
            for i in 0..<rows {
                for j in 0..<cols { m[2][i * cols + j] = m[0][i * cols + j] + m[1][j] }
            }
        } opencl: { d in
            try d.device.run(BiasKernels.addBias, global: WorkSize(cols, rows)) { a in
                try a.int(rows); try a.int(cols); try a.buffer(d[0]); try a.buffer(d[1]); try a.buffer(d[2])
            }
        }
        return out
    }

    /// The bias gradient: db = Σ_rows dy, or db += Σ_rows dy when `accumulate`. dy: [rows, cols], db: [cols]
    public static func addBiasBackward(_ dy: Tensor, into db: Tensor, accumulate: Bool = false) throws {
        let (rows, cols) = try matrixDims("addBiasBackward", dy)
        try requireShape("addBiasBackward (bias gradient)", db, [cols])
        try Tensor.run("addBiasBackward", dy, db) { m in
            for j in 0..<cols {
                var acc: Float = 0
                for i in 0..<rows { acc += m[0][i * cols + j] }
                m[1][j] = accumulate ? acc + m[1][j] : acc
            }
        } opencl: { d in
            try d.device.run(BiasKernels.addBiasBackward, global: WorkSize(cols)) { a in
                try a.int(rows); try a.int(cols); try a.buffer(d[0]); try a.buffer(d[1]); try a.float(accumulate ? 1 : 0)
            }
        }
    }
}
