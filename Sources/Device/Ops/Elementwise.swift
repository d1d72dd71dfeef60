// Elementwise arithmetic (Kernels/elementwise.cl): add, sub, mul, affine, fill.

/// Elementwise binary operations; the raw value is the kernel's name.
public enum BinaryOp: String, Sendable {
    case add, sub, mul

    func apply(_ x: Float, _ y: Float) -> Float {
        switch self {
        case .add: return x + y
        case .sub: return x - y
        case .mul: return x * y
        }
    }
}

extension Tensor {
    /// self op other, elementwise; both have the same shape. `out` may be self or other (in place).
    @discardableResult
    public func elementwise(_ op: BinaryOp, _ other: Tensor, into out: Tensor? = nil) throws -> Tensor {
        try requireShape(op.rawValue, other, shape)
        let out = try output(op.rawValue, out, shape, on: device)
        let n = count
        try Tensor.run(op.rawValue, [self, other, out]) { m in
            for i in 0..<n { m[2][i] = op.apply(m[0][i], m[1][i]) }
        } opencl: { d in
            try d.device.run("elementwise", op.rawValue, [.int(n), .buffer(d[0]), .buffer(d[1]), .buffer(d[2])], global: [n])
        }
        return out
    }

    /// alpha · self + beta, elementwise. `out` may be self (in place).
    @discardableResult
    public func affine(scale alpha: Float, shift beta: Float = 0, into out: Tensor? = nil) throws -> Tensor {
        let out = try output("affine", out, shape, on: device)
        let n = count
        try Tensor.run("affine", [self, out]) { m in
            for i in 0..<n { m[1][i] = alpha * m[0][i] + beta }
        } opencl: { d in
            try d.device.run("elementwise", "affine", [.int(n), .buffer(d[0]), .float(alpha), .float(beta), .buffer(d[1])],
                             global: [n])
        }
        return out
    }

    /// Sets every element to `value`, in place.
    public func fill(_ value: Float) throws {
        let n = count
        try Tensor.run("fill", [self]) { m in
            m[0].update(repeating: value, count: n)
        } opencl: { d in
            try d.device.run("elementwise", "fill", [.int(n), .buffer(d[0]), .float(value)], global: [n])
        }
    }
}
