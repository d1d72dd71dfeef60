// Reductions (Kernels/reduce.cl): sum, argmax_rows.

private enum ReduceKernels {
    static let sum = KernelSource("reduce", "sum")
    static let argmaxRows = KernelSource("reduce", "argmax_rows")
}

extension Tensor {
    /// The sum of all elements, accumulated in Double on cpu and Kahan-compensated on OpenCL. → [1]
    @discardableResult
    public func sum(into out: Tensor? = nil) throws -> Tensor {
        let out = try output("sum", out, [1], on: device)
        let n = count
        try Tensor.run("sum", self, out) { x, out in
            var acc: Double = 0
            for i in 0..<n { acc += Double(x[i]) }
            out[0] = Float(acc)
        } opencl: { device, x, out in
            let kernel = try device.kernel(ReduceKernels.sum)
            // One work-group of the largest power of two the kernel and the local memory allow (at most 256).
            let limit = min(256, kernel.maxWorkGroupSize, device.info.localMemory / MemoryLayout<Float>.size)
            var size = 1
            while size * 2 <= limit { size *= 2 }
            try device.launch(kernel, global: WorkSize(size), local: WorkSize(size)) { a in
                try a.int("n", n); try a.buffer("x", x); try a.buffer("out", out); try a.local("scratch", floats: size)
            }
        }
        return out
    }

    /// The index of the largest entry of each row (the first one on ties). self: [rows, cols] → [rows]
    @discardableResult
    public func argmaxRows(into out: Tensor? = nil) throws -> Tensor {
        let (rows, cols) = try matrixDims("argmaxRows", self)
        guard cols > 0 else { throw DeviceError.invalidArgument(op: "argmaxRows", "rows have no entries") }
        let out = try output("argmaxRows", out, [rows], on: device)
        try Tensor.run("argmaxRows", self, out) { x, out in
            for i in 0..<rows {
                var best = 0
                for j in 1..<cols where x[i * cols + j] > x[i * cols + best] { best = j }
                out[i] = Float(best)
            }
        } opencl: { device, x, out in
            try device.run(ReduceKernels.argmaxRows, global: WorkSize(rows)) { a in
                try a.int("rows", rows); try a.int("cols", cols); try a.buffer("x", x); try a.buffer("out", out)
            }
        }
        return out
    }
}

extension OpCheck {
    /// The total sum (compensated) and the row argmax.
    static var reduceChecks: [OpCheck] {
        [(3, 5), (65, 33), (1000, 3)].map { rows, cols in
            let xv = values(rows * cols, seed: 71)
            return OpCheck("sum, argmaxRows", "\(rows)x\(cols)", atol: 1e-4, compute: { d in
                let x = try Tensor(xv, shape: [rows, cols], on: d)
                return [try x.sum(), try x.argmaxRows()]
            }, reference: {
                let total = xv.reduce(0.0) { $0 + Double($1) }
                let argmax: [Double] = (0..<rows).map { i in
                    var best = 0
                    for j in 1..<cols where xv[i * cols + j] > xv[i * cols + best] { best = j }
                    return Double(best)
                }
                return [[total], argmax]
            })
        }
    }
}
