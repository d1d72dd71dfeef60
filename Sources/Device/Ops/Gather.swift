// Minibatch gathering (Kernels/gather.cl): rows of a resident dataset picked by a shuffled order.

private let gatherRowsKernel = KernelSource("gather", "gather_rows")

extension Tensor {
    /// Gathers rows of `source` in the order `order[offset..<offset + rows]` into self, on their common device.
    /// An index outside the source's rows (or NaN) is clamped, so a bad order never reads outside `source`.
    /// source: [n, cols] (or [n] for cols = 1), order: [count] row indices as floats, self: [rows, cols] (or [rows]).
    public func gatherRows(from source: Tensor, order: Tensor, offset: Int) throws {
        let cols = source.shape.count == 2 ? source.shape[1] : 1
        let rows = shape.first ?? 0
        guard count == rows * cols, source.count % max(cols, 1) == 0, rows == 0 || source.count > 0 else {
            throw DeviceError.shapeMismatch(op: "gatherRows", source.shape, shape)
        }
        guard offset >= 0, offset + rows <= order.count else {
            throw DeviceError.invalidArgument(op: "gatherRows", "rows \(offset)..<\(offset + rows) exceed an order of \(order.count)")
        }
        let sourceRows = source.count / max(cols, 1)
        try Tensor.run("gatherRows", source, order, self) { m in
            for r in 0..<rows {
                let v = m[1][offset + r]  // clamped as in the kernel (NaN reads row 0)
                let from = v >= Float(sourceRows - 1) ? sourceRows - 1 : (v > 0 ? Int(v) : 0)
                (m[2] + r * cols).update(from: m[0] + from * cols, count: cols)
            }
        } opencl: { d in
            try d.device.run(gatherRowsKernel, global: WorkSize(rows)) { a in
                try a.int(rows); try a.int(cols); try a.buffer(d[0]); try a.int(sourceRows); try a.buffer(d[1])
                try a.int(offset); try a.buffer(d[2])
            }
        }
    }
}
