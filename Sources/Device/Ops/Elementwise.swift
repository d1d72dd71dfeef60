// The fixed-function elementwise ops of the training loop (same shapes, an optional output buffer): add, sub, mul,
// affine, fill. They run the op table's kernels (Pointwise.swift) and record nothing on the tape.

/// Elementwise binary operations of `elementwise(_:_:into:)`.
public enum BinaryOp: String, Sendable, CaseIterable {
    /// x + y
    case add
    /// x − y
    case sub
    /// x · y
    case mul

    func apply<T: FloatingPoint>(_ x: T, _ y: T) -> T {
        switch self {
        case .add: return x + y
        case .sub: return x - y
        case .mul: return x * y
        }
    }

    fileprivate var function: BinaryFunction {
        switch self {
        case .add: return PointwiseTable.add
        case .sub: return PointwiseTable.sub
        case .mul: return PointwiseTable.mul
        }
    }
}

extension Tensor {
    /// self op other, elementwise; both have the same shape (no broadcasting: see `+`, `-`, `*` for that). Reads
    /// views; `out` (dense) may be self or other (in place).
    @discardableResult
    public func elementwise(_ op: BinaryOp, _ other: Tensor, into out: Tensor? = nil) throws -> Tensor {
        guard other.shape == shape else { throw DeviceError.shapeMismatch(op: op.rawValue, shape, other.shape) }
        let out = try output(op.rawValue, out, shape, on: device)
        try Tensor.binaryKernel(op.function, self, other, into: out)
        return out
    }

    /// alpha · self + beta, elementwise. Reads views; `out` (dense) may be self (in place).
    @discardableResult
    public func affine(scale alpha: Float, shift beta: Float = 0, into out: Tensor? = nil) throws -> Tensor {
        let out = try output("affine", out, shape, on: device)
        try Tensor.unaryKernel(PointwiseTable.affine, self, p: alpha, q: beta, into: out)
        return out
    }

    /// Sets every element to `value`, in place (through a view's layout: `x[2..<4].fill(0)` clears two rows).
    public func fill(_ value: Float) throws {
        try Tensor.unaryKernel(PointwiseTable.fill, self, p: value, into: self)
        version.bump()
    }
}

extension OpCheck {
    /// add, sub, mul, affine and fill on a scalar, an odd length and a long one.
    static var elementwiseChecks: [OpCheck] {
        [1, 13, 1000, 0].flatMap { n -> [OpCheck] in
            let xv = values(n, seed: 81), yv = values(n, seed: 82)
            let binary = BinaryOp.allCases.map { op in
                OpCheck(op.rawValue, "\(n)", compute: { d in
                    [try Tensor(xv, shape: [n], on: d).elementwise(op, try Tensor(yv, shape: [n], on: d))]
                }, reference: { [zip(xv, yv).map { op.apply(Double($0), Double($1)) }] })
            }
            return binary + [
                OpCheck("affine", "\(n)", compute: { d in [try Tensor(xv, shape: [n], on: d).affine(scale: 3, shift: -1)] },
                        reference: { [xv.map { 3 * Double($0) - 1 }] }),
                OpCheck("fill", "\(n)", compute: { d in
                    let x = try Tensor.zeros([n], on: d)
                    try x.fill(2.5)
                    return [x]
                }, reference: { [[Double](repeating: 2.5, count: n)] }),
            ]
        }
    }
}
