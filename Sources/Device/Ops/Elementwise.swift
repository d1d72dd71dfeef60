// Elementwise arithmetic (Kernels/elementwise.cl): add, sub, mul, affine, fill.

/// Elementwise binary operations; the raw value is the kernel's name.
public enum BinaryOp: String, Sendable {
    /// x + y
    case add
    /// x − y
    case sub
    /// x · y
    case mul

    func apply(_ x: Float, _ y: Float) -> Float {
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
        try Tensor.run(op.rawValue, self, other, out) { m in
            for i in 0..<n { m[2][i] = op.apply(m[0][i], m[1][i]) }
        } opencl: { d in
            try d.device.run(op.kernel, global: WorkSize(n)) { a in
                try a.int(n); try a.buffer(d[0]); try a.buffer(d[1]); try a.buffer(d[2])
            }
        }
        return out
    }

    /// alpha · self + beta, elementwise. `out` may be self (in place).
    @discardableResult
    public func affine(scale alpha: Float, shift beta: Float = 0, into out: Tensor? = nil) throws -> Tensor {
        let out = try output("affine", out, shape, on: device)
        let n = count
        try Tensor.run("affine", self, out) { m in
            for i in 0..<n { m[1][i] = alpha * m[0][i] + beta }
        } opencl: { d in
            try d.device.run(ElementwiseKernels.affine, global: WorkSize(n)) { a in
                try a.int(n); try a.buffer(d[0]); try a.float(alpha); try a.float(beta); try a.buffer(d[1])
            }
        }
        return out
    }

    /// Sets every element to `value`, in place.
    public func fill(_ value: Float) throws {
        let n = count
        try Tensor.run("fill", self) { m in
            m[0].update(repeating: value, count: n)
        } opencl: { d in
            try d.device.run(ElementwiseKernels.fill, global: WorkSize(n)) { a in
                try a.int(n); try a.buffer(d[0]); try a.float(value)
            }
        }
    }
}
