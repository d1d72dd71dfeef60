import Foundation

// The public spellings of the elementwise ops (PyTorch's semantics, Swift's names), each recorded on the tape with
// its backward rule: the table's derivative, summed back over the axes an operand was broadcast along.
// Every op reads any layout and returns a new dense tensor on its operands' device.

extension Tensor {
    /// f(self; p, q), recorded with f's derivative.
    func unary(_ f: UnaryFunction, p: Float = 0, q: Float = 0) throws -> Tensor {
        let out = try Tensor.empty(shape, like: self)
        try Tensor.unaryKernel(f, self, p: p, q: q, into: out)
        // (Checked before the node's arrays and closure are built: an op off the tape allocates nothing more.)
        guard f.derivative != nil, requiresGrad, Tensor.recording else { return out }
        // NOTE: the rule runs only while `out` is alive (it is the tensor being differentiated): unowned, so that
        // the result does not keep itself alive through its own node.
        return out.record(f.name, from: [self], saving: [self, out]) { [unowned(unsafe) out] g, _ in
            [try Tensor.unaryBackwardKernel(f, g, x: self, y: out, p: p, q: q)]
        }
    }

    /// f(self, other) broadcast, recorded with f's partial derivatives.
    func binary(_ f: BinaryFunction, _ other: Tensor) throws -> Tensor {
        guard device == other.device else { throw DeviceError.deviceMismatch(op: f.name, device, other.device) }
        let out = try Tensor.empty(try Tensor.broadcastShape(f.name, shape, other.shape), like: self)
        try Tensor.binaryKernel(f, self, other, into: out)
        guard f.derivatives != nil, requiresGrad || other.requiresGrad, Tensor.recording else { return out }
        let (a, b) = (self, other)
        return out.record(f.name, from: [self, other], saving: [a, b, out]) { [unowned(unsafe) out] g, needs in
            let y = out
            // Constant partial derivatives (a sum, a difference) scale the gradient: no derivative kernel.
            if let (da, db) = f.constantSlopes {
                func scaled(_ c: Float) throws -> Tensor { c == 1 ? g : c == -1 ? try -g : try g * c }
                return [needs[0] ? try scaled(da).sum(to: a.shape) : nil,
                        needs[1] ? try scaled(db).sum(to: b.shape) : nil]
            }
            let (ga, gb) = try Tensor.binaryBackwardKernel(f, g, a, b, y: y)
            return [needs[0] ? try ga.sum(to: a.shape) : nil, needs[1] ? try gb.sum(to: b.shape) : nil]
        }
    }

    /// Elementwise sum with broadcasting: [2, 3] + [3] → [2, 3].
    /// - Throws: `DeviceError.invalidArgument` naming the axis where the shapes do not broadcast;
    ///   `DeviceError.deviceMismatch` when the operands live on different devices.
    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(PointwiseTable.add, b) }
    /// Elementwise difference with broadcasting.
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(PointwiseTable.sub, b) }
    /// Elementwise product with broadcasting (`a[:, None] * b` is `try a.unsqueezed(axis: 1) * b`).
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(PointwiseTable.mul, b) }
    /// Elementwise quotient with broadcasting.
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(PointwiseTable.div, b) }

    /// a + b for every element of a.
    public static func + (a: Tensor, b: Float) throws -> Tensor { try a.unary(PointwiseTable.affine, p: 1, q: b) }
    /// a + b for every element of b.
    public static func + (a: Float, b: Tensor) throws -> Tensor { try b.unary(PointwiseTable.affine, p: 1, q: a) }
    /// a − b for every element of a.
    public static func - (a: Tensor, b: Float) throws -> Tensor { try a.unary(PointwiseTable.affine, p: 1, q: -b) }
    /// a − b for every element of b.
    public static func - (a: Float, b: Tensor) throws -> Tensor { try b.unary(PointwiseTable.rsub, p: a) }
    /// a · b for every element of a.
    public static func * (a: Tensor, b: Float) throws -> Tensor { try a.unary(PointwiseTable.affine, p: b, q: 0) }
    /// a · b for every element of b.
    public static func * (a: Float, b: Tensor) throws -> Tensor { try b.unary(PointwiseTable.affine, p: a, q: 0) }
    /// Divides by a scalar, as a product with its reciprocal (which may differ from a true quotient in the last
    /// bit). A b so small or large that its reciprocal is not a normal number (it would overflow, or be flushed to 0
    /// where a device has no denormals) is scaled by 2⁶⁴ or 2⁻⁶⁴ first and the product scaled back: 0 / 1e-39 is 0,
    /// not 0 · inf.
    public static func / (a: Tensor, b: Float) throws -> Tensor {
        let reciprocal = 1 / b
        guard reciprocal.isNormal || b == 0 || !b.isFinite else {
            let scale: Float = b.magnitude < 1 ? 0x1p64 : 0x1p-64
            return try a.unary(PointwiseTable.affine, p: 1 / (b * scale), q: 0) * scale
        }
        return try a.unary(PointwiseTable.affine, p: reciprocal, q: 0)
    }
    /// a / b for every element of b.
    public static func / (a: Float, b: Tensor) throws -> Tensor { try b.unary(PointwiseTable.rdiv, p: a) }
    /// −x, elementwise.
    public static prefix func - (x: Tensor) throws -> Tensor { try x.unary(PointwiseTable.neg) }

    /// eˣ, elementwise.
    public func exp() throws -> Tensor { try unary(PointwiseTable.exp) }
    /// The natural logarithm, elementwise (−inf at 0, NaN below).
    public func log() throws -> Tensor { try unary(PointwiseTable.log) }
    /// The square root, elementwise (NaN below 0).
    public func sqrt() throws -> Tensor { try unary(PointwiseTable.sqrt) }
    /// |x|, elementwise (its gradient at 0 is 0).
    public func abs() throws -> Tensor { try unary(PointwiseTable.abs) }
    /// xᵖ, elementwise.
    public func pow(_ exponent: Float) throws -> Tensor { try unary(PointwiseTable.pow, p: exponent) }
    /// Each element limited to [min, max]; an absent bound does not limit (NaN stays NaN; a NaN bound makes every
    /// element NaN, as PyTorch's). The gradient passes where the element is within the bounds.
    public func clamped(min: Float? = nil, max: Float? = nil) throws -> Tensor {
        // A NaN bound makes every element NaN, as PyTorch's clamp (the kernel's fmax/fmin would ignore it).
        if min?.isNaN == true || max?.isNaN == true { return try self * Float.nan }
        return try unary(PointwiseTable.clamp, p: min ?? -.infinity, q: max ?? .infinity)
    }

    /// The larger of the two, elementwise with broadcasting (NaN wins; a tie's gradient goes to self).
    public func maximum(_ other: Tensor) throws -> Tensor { try binary(PointwiseTable.maximum, other) }
    /// The smaller of the two, elementwise with broadcasting (NaN wins; a tie's gradient goes to self).
    public func minimum(_ other: Tensor) throws -> Tensor { try binary(PointwiseTable.minimum, other) }

    /// 1 where a < b, else 0 (broadcast; no gradient).
    public static func .< (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(PointwiseTable.lt, b) }
    /// 1 where a ≤ b, else 0.
    public static func .<= (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(PointwiseTable.le, b) }
    /// 1 where a > b, else 0.
    public static func .> (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(PointwiseTable.gt, b) }
    /// 1 where a ≥ b, else 0.
    public static func .>= (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(PointwiseTable.ge, b) }
    /// 1 where a = b, else 0.
    public static func .== (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(PointwiseTable.eq, b) }
    /// 1 where a ≠ b, else 0.
    public static func .!= (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(PointwiseTable.ne, b) }
    /// 1 where a < b, else 0.
    public static func .< (a: Tensor, b: Float) throws -> Tensor { try a.unary(PointwiseTable.ltScalar, p: b) }
    /// 1 where a ≤ b, else 0.
    public static func .<= (a: Tensor, b: Float) throws -> Tensor { try a.unary(PointwiseTable.leScalar, p: b) }
    /// 1 where a > b, else 0 (`x .> 0` is ReLU's mask).
    public static func .> (a: Tensor, b: Float) throws -> Tensor { try a.unary(PointwiseTable.gtScalar, p: b) }
    /// 1 where a ≥ b, else 0.
    public static func .>= (a: Tensor, b: Float) throws -> Tensor { try a.unary(PointwiseTable.geScalar, p: b) }
    /// 1 where a = b, else 0.
    public static func .== (a: Tensor, b: Float) throws -> Tensor { try a.unary(PointwiseTable.eqScalar, p: b) }

    /// `a` where `condition` ≠ 0, else `b` (all three broadcast together). The gradient goes to the chosen side.
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        for other in [a, b] where other.device != condition.device {
            throw DeviceError.deviceMismatch(op: "where", condition.device, other.device)
        }
        let shape = try broadcastShape("where", try broadcastShape("where", condition.shape, a.shape), b.shape)
        let out = try Tensor.empty(shape, on: condition.device)
        try chooseKernel(condition, a, b, into: out)
        let (c, aShape, bShape) = (condition.detached(), a.shape, b.shape)
        return out.recorded("where", from: [a, b], saving: [c]) { g in
            let zero = try Tensor.zeros([], on: g.device)
            return [try Tensor.where(c, g, zero).sum(to: aShape), try Tensor.where(c, zero, g).sum(to: bShape)]
        }
    }

    /// Whether every element is within atol + rtol·|other| of `other`'s (broadcast), NaN matching NaN only when
    /// `equalNaN`. Reads both back to the host.
    public func allClose(_ other: Tensor, rtol: Float = 1e-5, atol: Float = 1e-8, equalNaN: Bool = false) throws -> Bool {
        let shape = try Tensor.broadcastShape("allClose", self.shape, other.shape)
        let (a, b) = try Tensor.withoutGradients {
            (try expanded(to: shape).toArray(), try other.expanded(to: shape).toArray())
        }
        return zip(a, b).allSatisfy { x, y in
            if x.isNaN || y.isNaN { return equalNaN && x.isNaN && y.isNaN }
            if x == y { return true }
            return Swift.abs(x - y) <= atol + rtol * Swift.abs(y)
        }
    }
}

extension OpCheck {
    /// Every row of the op table, forward and backward, in Double: (x, p, q) → (y, dy/dx); (a, b) → (y, ∂a, ∂b).
    private static let unaryReference: [String: @Sendable (Double, Double, Double) -> (Double, Double)] = [
        "copy": { x, _, _ in (x, 1) }, "fill": { _, p, _ in (p, 0) }, "neg": { x, _, _ in (-x, -1) },
        "exp": { x, _, _ in (Foundation.exp(x), Foundation.exp(x)) }, "log": { x, _, _ in (Foundation.log(x), 1 / x) },
        "sqrt": { x, _, _ in (x.squareRoot(), 0.5 / x.squareRoot()) },
        "abs": { x, _, _ in (Swift.abs(x), x > 0 ? 1 : x < 0 ? -1 : 0) },
        "pow": { x, p, _ in (Foundation.pow(x, p), p * Foundation.pow(x, p - 1)) },
        "clamp": { x, p, q in (Swift.min(Swift.max(x, p), q), x >= p && x <= q ? 1 : 0) },
        "affine": { x, p, q in (p * x + q, p) }, "rsub": { x, p, _ in (p - x, -1) }, "rdiv": { x, p, _ in (p / x, -p / (x * x)) },
        "gt_scalar": { x, p, _ in (x > p ? 1 : 0, 0) }, "lt_scalar": { x, p, _ in (x < p ? 1 : 0, 0) },
        "ge_scalar": { x, p, _ in (x >= p ? 1 : 0, 0) }, "le_scalar": { x, p, _ in (x <= p ? 1 : 0, 0) },
        "eq_scalar": { x, p, _ in (x == p ? 1 : 0, 0) },
    ]
    private static let binaryReference: [String: @Sendable (Double, Double) -> (Double, Double, Double)] = [
        "add": { ($0 + $1, 1, 1) }, "sub": { ($0 - $1, 1, -1) }, "mul": { ($0 * $1, $1, $0) },
        "div": { ($0 / $1, 1 / $1, -$0 / ($1 * $1)) },
        "maximum": { $0 >= $1 ? ($0, 1, 0) : ($1, 0, 1) }, "minimum": { $0 <= $1 ? ($0, 1, 0) : ($1, 0, 1) },
        "lt": { ($0 < $1 ? 1 : 0, 0, 0) }, "le": { ($0 <= $1 ? 1 : 0, 0, 0) }, "gt": { ($0 > $1 ? 1 : 0, 0, 0) },
        "ge": { ($0 >= $1 ? 1 : 0, 0, 0) }, "eq": { ($0 == $1 ? 1 : 0, 0, 0) }, "ne": { ($0 != $1 ? 1 : 0, 0, 0) },
    ]

    /// Every row of the elementwise table, forward and backward, on a transposed (non-contiguous) view; the binary
    /// rows on broadcast shapes; `where`. Inputs kept in (0.5, 1.5) so that log, sqrt, pow and 1/x are smooth.
    static var pointwiseChecks: [OpCheck] {
        let (rows, cols) = (13, 7)
        let xv = values(rows * cols, seed: 91).map { $0 * 0.5 + 1 }, gv = values(rows * cols, seed: 92)
        // x is read transposed: element (i, j) of the [cols, rows] view is xv[j * cols + i].
        let xt = (0..<rows * cols).map { Double(xv[($0 % rows) * cols + $0 / rows]) }
        let unary = PointwiseTable.unary.map { f -> OpCheck in
            let (p, q): (Float, Float) = f.name == "clamp" ? (0.75, 1.25) : f.name == "pow" ? (2.5, 0) : (1.1, 0.3)
            return OpCheck("\(f.name) (strided)", "\(cols)x\(rows) view", compute: { d in
                let x = try Tensor(xv, shape: [rows, cols], on: d).transposed()
                let y = try Tensor.empty([cols, rows], on: d)
                try Tensor.unaryKernel(f, x, p: p, q: q, into: y)
                let g = try Tensor(gv, shape: [cols, rows], on: d)
                return [y, try Tensor.unaryBackwardKernel(f, g, x: x, y: y, p: p, q: q)]
            }, reference: {
                let r = xt.map { unaryReference[f.name]!($0, Double(p), Double(q)) }
                return [r.map(\.0), zip(r, gv).map { $0.1 * Double($1) }]
            })
        }
        let binary = PointwiseTable.binary.map { f -> OpCheck in
            let (aShape, bShape, outShape) = ([5, 1, 3], [4, 1], [5, 4, 3])
            let av = values(15, seed: 93).map { $0 + 1.5 }, bv = values(4, seed: 94).map { $0 + 1.5 }
            let g = values(60, seed: 95)
            return OpCheck("\(f.name) (broadcast)", "5x1x3, 4x1", compute: { d in
                let (a, b) = (try Tensor(av, shape: aShape, on: d), try Tensor(bv, shape: bShape, on: d))
                let y = try Tensor.empty(outShape, on: d)
                try Tensor.binaryKernel(f, a, b, into: y)
                let (ga, gb) = try Tensor.binaryBackwardKernel(f, try Tensor(g, shape: outShape, on: d), a, b, y: y)
                return [y, ga, gb]
            }, reference: {
                let r = (0..<60).map { i in binaryReference[f.name]!(Double(av[(i / 12) * 3 + i % 3]), Double(bv[(i / 3) % 4])) }
                return [r.map(\.0), zip(r, g).map { $0.1 * Double($1) }, zip(r, g).map { $0.2 * Double($1) }]
            })
        }
        let cv: [Float] = [1, 0, 0, 1, 1, 0, 1]
        let choose = OpCheck("where", "7 over 3x7", compute: { d in
            [try Tensor.where(try Tensor(cv, shape: [7], on: d), try Tensor(xv[0..<21].map { $0 }, shape: [3, 7], on: d),
                              try Tensor.full([], value: -1, on: d))]
        }, reference: { [(0..<21).map { cv[$0 % 7] != 0 ? Double(xv[$0]) : -1 }] })
        return unary + binary + [choose]
    }
}
