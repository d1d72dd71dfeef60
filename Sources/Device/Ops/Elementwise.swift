// Elementwise arithmetic (Kernels/elementwise.cl): add, sub, mul, affine, fill.

/// Elementwise binary operations; the raw value is the kernel's name.
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

    fileprivate var kernel: KernelSource {
        switch self {
        case .add: return ElementwiseKernels.add
        case .sub: return ElementwiseKernels.sub
        case .mul: return ElementwiseKernels.mul
        }
    }
}

private enum ElementwiseKernels {
    static let add = KernelSource("elementwise", "add")
    static let sub = KernelSource("elementwise", "sub")
    static let mul = KernelSource("elementwise", "mul")
    static let affine = KernelSource("elementwise", "affine")
    static let fill = KernelSource("elementwise", "fill")
}

extension Tensor {
    /// self op other, elementwise; both have the same shape. `out` may be self or other (in place).
    @discardableResult
    public func elementwise(_ op: BinaryOp, _ other: Tensor, into out: Tensor? = nil) throws -> Tensor {
        try requireShape(op.rawValue, other, shape)
        let out = try output(op.rawValue, out, shape, on: device)
        let n = count
        try Tensor.run(op.rawValue, self, other, out) { x, y, out in
            for i in 0..<n { out[i] = op.apply(x[i], y[i]) }
        } opencl: { device, x, y, out in
            try device.run(op.kernel, global: WorkSize(n)) { a in
                try a.int("n", n); try a.buffer("x", x); try a.buffer("y", y); try a.buffer("out", out)
            }
        }
        return out
    }

    /// alpha · self + beta, elementwise. `out` may be self (in place).
    @discardableResult
    public func affine(scale alpha: Float, shift beta: Float = 0, into out: Tensor? = nil) throws -> Tensor {
        let out = try output("affine", out, shape, on: device)
        let n = count
        try Tensor.run("affine", self, out) { x, out in
            for i in 0..<n { out[i] = alpha * x[i] + beta }
        } opencl: { device, x, out in
            try device.run(ElementwiseKernels.affine, global: WorkSize(n)) { a in
                try a.int("n", n); try a.buffer("x", x); try a.float("alpha", alpha); try a.float("beta_", beta)
                try a.buffer("out", out)
            }
        }
        return out
    }

    /// Sets every element to `value`, in place.
    public func fill(_ value: Float) throws {
        let n = count
        try Tensor.run("fill", self) { x in
            x.update(repeating: value, count: n)
        } opencl: { device, x in
            try device.run(ElementwiseKernels.fill, global: WorkSize(n)) { a in
                try a.int("n", n); try a.buffer("x", x); try a.float("value", value)
            }
        }
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
