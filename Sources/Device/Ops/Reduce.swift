// The row argmax of the loss' predictions (a form of `argmax(axis:)`).

extension Tensor {
    /// The index of the largest entry of each row (the first one on ties), as floats. Reads views.
    /// self: [rows, cols] → [rows]
    @discardableResult
    public func argmaxRows(into out: Tensor? = nil) throws -> Tensor {
        let (rows, cols) = try matrixDims("argmaxRows", self)
        guard cols > 0 else { throw DeviceError.invalidArgument(op: "argmaxRows", "rows have no entries") }
        let result = try Tensor.withoutGradients { try argmax(axis: 1) }
        guard let out else { return result }
        try output("argmaxRows", out, [rows], on: device).copy(from: result)
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
