import Foundation

// Elementwise ops over any layout with numpy's broadcasting (Kernels/pointwise.cl). One table drives them: a row is
// an op's name, its OpenCL expression, its Swift function and its derivative in both languages. The kernels are
// generated from the table (rendered as X-macro lists before pointwise.cl), the CPU loop calls the Swift functions,
// and the tape's backward rule (Pointwise+API.swift) launches the derivative kernel.

/// An elementwise function y = f(x; p, q) of one tensor and two scalars.
final class UnaryFunction: Sendable {
    let name: String
    /// OpenCL C in x, p, q.
    let expression: String
    /// dy/dx in OpenCL C, in x, y, p, q; nil when the op has no gradient (a mask, a fill).
    let derivative: String?
    /// The CPU loop over one row: f of n elements of x (step xs) into out (step os), compiled for this op.
    let row: @Sendable (_ n: Int, _ x: UnsafePointer<Float>, _ xs: Int, _ out: UnsafeMutablePointer<Float>, _ os: Int,
                        _ p: Float, _ q: Float) -> Void
    /// dy/dx in Swift: (x, y, p, q).
    let slope: @Sendable (Float, Float, Float, Float) -> Float
    let forward: KernelSource
    let backward: KernelSource

    init<F: UnaryScalar>(_ name: String, _ expression: String, _ derivative: String?, _ f: F.Type,
                         slope: @escaping @Sendable (Float, Float, Float, Float) -> Float = { _, _, _, _ in 0 }) {
        (self.name, self.expression, self.derivative, self.slope) = (name, expression, derivative, slope)
        row = { n, x, xs, out, os, p, q in unaryRow(F.self, n, x, xs, out, os, p, q) }
        forward = KernelSource("pointwise", "unary_" + name)
        backward = KernelSource("pointwise", "unary_\(name)_backward")
    }
}

/// An elementwise function of one float and two scalars, as a type, so that each op's CPU loop is compiled for it
/// (and vectorised) rather than calling a closure per element.
protocol UnaryScalar {
    static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float
}

/// f over a row: a contiguous row and a broadcast element get loops of their own, which the compiler vectorises.
@inline(__always)
private func unaryRow<F: UnaryScalar>(_ f: F.Type, _ n: Int, _ x: UnsafePointer<Float>, _ xs: Int,
                                       _ out: UnsafeMutablePointer<Float>, _ os: Int, _ p: Float, _ q: Float) {
    if xs == 1 && os == 1 {
        for j in 0..<n { out[j] = F.apply(x[j], p, q) }
    } else if xs == 0 && os == 1 {
        let v = F.apply(x[0], p, q)
        for j in 0..<n { out[j] = v }
    } else {
        for j in 0..<n { out[j * os] = F.apply(x[j * xs], p, q) }
    }
}

/// An elementwise function y = f(a, b) of two tensors (broadcast together).
final class BinaryFunction: Sendable {
    let name: String
    /// OpenCL C in a, b.
    let expression: String
    /// ∂y/∂a and ∂y/∂b in OpenCL C, in a, b, y; nil when the op has no gradient (a comparison).
    let derivatives: (a: String, b: String)?
    /// The CPU loop over one row: f of n elements of a and b (steps as, bs) into out (step os), compiled for this op.
    let row: @Sendable (_ n: Int, _ a: UnsafePointer<Float>, _ as: Int, _ b: UnsafePointer<Float>, _ bs: Int,
                        _ out: UnsafeMutablePointer<Float>, _ os: Int) -> Void
    /// f in Swift (for the host's scalar uses).
    let apply: @Sendable (Float, Float) -> Float
    /// ∂y/∂a and ∂y/∂b in Swift: (a, b, y).
    let slopes: @Sendable (Float, Float, Float) -> (Float, Float)
    let forward: KernelSource
    let backward: KernelSource

    init<F: BinaryScalar>(_ name: String, _ expression: String, _ derivatives: (a: String, b: String)?, _ f: F.Type,
                          slopes: @escaping @Sendable (Float, Float, Float) -> (Float, Float) = { _, _, _ in (0, 0) }) {
        (self.name, self.expression, self.derivatives, self.slopes) = (name, expression, derivatives, slopes)
        row = { n, a, aStep, b, bStep, out, os in binaryRow(F.self, n, a, aStep, b, bStep, out, os) }
        apply = { F.apply($0, $1) }
        forward = KernelSource("pointwise", "binary_" + name)
        backward = KernelSource("pointwise", "binary_\(name)_backward")
    }
}

extension BinaryFunction {
    /// ∂y/∂a and ∂y/∂b when the table gives both as float constants (`1.0f`, `-1.0f`), else nil.
    var constantSlopes: (Float, Float)? {
        func constant(_ text: String) -> Float? { text.hasSuffix("f") ? Float(text.dropLast()) : nil }
        guard let (a, b) = derivatives, let da = constant(a), let db = constant(b) else { return nil }
        return (da, db)
    }
}

/// An elementwise function of two floats, as a type (see `UnaryScalar`).
protocol BinaryScalar {
    static func apply(_ a: Float, _ b: Float) -> Float
}

/// f over a row, with loops of their own for the contiguous and the broadcast cases.
@inline(__always)
private func binaryRow<F: BinaryScalar>(_ f: F.Type, _ n: Int, _ a: UnsafePointer<Float>, _ aStep: Int,
                                        _ b: UnsafePointer<Float>, _ bStep: Int,
                                        _ out: UnsafeMutablePointer<Float>, _ os: Int) {
    switch (aStep, bStep, os) {
    case (1, 1, 1): for j in 0..<n { out[j] = F.apply(a[j], b[j]) }
    case (1, 0, 1):
        let v = b[0]
        for j in 0..<n { out[j] = F.apply(a[j], v) }
    case (0, 1, 1):
        let v = a[0]
        for j in 0..<n { out[j] = F.apply(v, b[j]) }
    default: for j in 0..<n { out[j * os] = F.apply(a[j * aStep], b[j * bStep]) }
    }
}

private func mask(_ condition: Bool) -> Float { condition ? 1 : 0 }

/// The op table. A new elementwise op is one row here (and its public spelling in Pointwise+API.swift).
enum PointwiseTable {
    static let copy = UnaryFunction("copy", "x", "1.0f", Copy.self, slope: { _, _, _, _ in 1 })
    static let fill = UnaryFunction("fill", "p", nil, Fill.self)
    static let neg = UnaryFunction("neg", "-x", "-1.0f", Neg.self, slope: { _, _, _, _ in -1 })
    static let exp = UnaryFunction("exp", "exp(x)", "y", Exp.self, slope: { _, y, _, _ in y })
    static let log = UnaryFunction("log", "log(x)", "1.0f / x", Log.self,
                                   slope: { x, _, _, _ in 1 / x })
    static let sqrt = UnaryFunction("sqrt", "sqrt(x)", "0.5f / y", Sqrt.self,
                                    slope: { _, y, _, _ in 0.5 / y })
    static let abs = UnaryFunction("abs", "fabs(x)", "x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : 0.0f", Abs.self,
                                   slope: { x, _, _, _ in x > 0 ? 1 : x < 0 ? -1 : 0 })
    static let pow = UnaryFunction("pow", "pow(x, p)", "p == 0.0f ? 0.0f : p * pow(x, p - 1.0f)",
                                   Pow.self,
                                   slope: { x, _, p, _ in p == 0 ? 0 : p * Foundation.pow(x, p - 1) })
    static let clamp = UnaryFunction("clamp", "isnan(x) ? x : fmin(fmax(x, p), q)", "x >= p && x <= q ? 1.0f : 0.0f",
                                     Clamp.self,
                                     slope: { x, _, p, q in mask(x >= p && x <= q) })
    /// p·x + q.
    static let affine = UnaryFunction("affine", "p * x + q", "p", Affine.self, slope: { _, _, p, _ in p })
    /// p − x and p / x: a scalar on the left.
    static let rsub = UnaryFunction("rsub", "p - x", "-1.0f", RSub.self, slope: { _, _, _, _ in -1 })
    static let rdiv = UnaryFunction("rdiv", "p / x", "-y / x", RDiv.self, slope: { x, y, _, _ in -y / x })
    static let gtScalar = UnaryFunction("gt_scalar", "x > p ? 1.0f : 0.0f", nil, GtScalar.self)
    static let ltScalar = UnaryFunction("lt_scalar", "x < p ? 1.0f : 0.0f", nil, LtScalar.self)
    static let geScalar = UnaryFunction("ge_scalar", "x >= p ? 1.0f : 0.0f", nil, GeScalar.self)
    static let leScalar = UnaryFunction("le_scalar", "x <= p ? 1.0f : 0.0f", nil, LeScalar.self)
    static let eqScalar = UnaryFunction("eq_scalar", "x == p ? 1.0f : 0.0f", nil, EqScalar.self)

    static let unary = [copy, fill, neg, exp, log, sqrt, abs, pow, clamp, affine, rsub, rdiv,
                        gtScalar, ltScalar, geScalar, leScalar, eqScalar]

    static let add = BinaryFunction("add", "a + b", ("1.0f", "1.0f"), Add.self, slopes: { _, _, _ in (1, 1) })
    static let sub = BinaryFunction("sub", "a - b", ("1.0f", "-1.0f"), Sub.self, slopes: { _, _, _ in (1, -1) })
    static let mul = BinaryFunction("mul", "a * b", ("b", "a"), Mul.self, slopes: { a, b, _ in (b, a) })
    static let div = BinaryFunction("div", "a / b", ("1.0f / b", "-y / b"), Div.self,
                                    slopes: { _, b, y in (1 / b, -y / b) })
    // NOTE: ties send the whole gradient to a, as the forward picks a (PyTorch splits it; either is a subgradient).
    static let maximum = BinaryFunction("maximum", "a >= b || isnan(a) ? a : b",
                                        ("a >= b || isnan(a) ? 1.0f : 0.0f", "a >= b || isnan(a) ? 0.0f : 1.0f"),
                                        Maximum.self,
                                        slopes: { a, b, _ in a >= b || a.isNaN ? (1, 0) : (0, 1) })
    static let minimum = BinaryFunction("minimum", "a <= b || isnan(a) ? a : b",
                                        ("a <= b || isnan(a) ? 1.0f : 0.0f", "a <= b || isnan(a) ? 0.0f : 1.0f"),
                                        Minimum.self,
                                        slopes: { a, b, _ in a <= b || a.isNaN ? (1, 0) : (0, 1) })
    static let lt = BinaryFunction("lt", "a < b ? 1.0f : 0.0f", nil, Lt.self)
    static let le = BinaryFunction("le", "a <= b ? 1.0f : 0.0f", nil, Le.self)
    static let gt = BinaryFunction("gt", "a > b ? 1.0f : 0.0f", nil, Gt.self)
    static let ge = BinaryFunction("ge", "a >= b ? 1.0f : 0.0f", nil, Ge.self)
    static let eq = BinaryFunction("eq", "a == b ? 1.0f : 0.0f", nil, Eq.self)
    static let ne = BinaryFunction("ne", "a != b ? 1.0f : 0.0f", nil, Ne.self)

    static let binary = [add, sub, mul, div, maximum, minimum, lt, le, gt, ge, eq, ne]

    static let choose = KernelSource("pointwise", "choose")

    /// The table as the X-macro lists pointwise.cl expands (an op without a gradient gets a derivative of 0).
    static let header: String = {
        func wrap(_ e: String) -> String { "(\(e))" }
        let unaryRows = unary.map { "X(\($0.name), \(wrap($0.expression)), \(wrap($0.derivative ?? "0.0f")))" }
        let binaryRows = binary.map {
            "X(\($0.name), \(wrap($0.expression)), \(wrap($0.derivatives?.a ?? "0.0f")), "
                + "\(wrap($0.derivatives?.b ?? "0.0f")))"
        }
        return "#define UNARY_OPS(X) \\\n    " + unaryRows.joined(separator: " \\\n    ") + "\n"
            + "#define BINARY_OPS(X) \\\n    " + binaryRows.joined(separator: " \\\n    ") + "\n"
    }()
}


// The ops' Swift functions, one type each (the table rows name them).
enum Copy: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { x } }
enum Fill: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { p } }
enum Neg: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { -x } }
enum Exp: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { Foundation.exp(x) } }
enum Log: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { Foundation.log(x) } }
enum Sqrt: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { x.squareRoot() } }
enum Abs: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { Swift.abs(x) } }
enum Pow: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { Foundation.pow(x, p) } }
enum Clamp: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { x.isNaN ? x : Swift.min(Swift.max(x, p), q) } }
enum Affine: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { p * x + q } }
enum RSub: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { p - x } }
enum RDiv: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { p / x } }
enum GtScalar: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { mask(x > p) } }
enum LtScalar: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { mask(x < p) } }
enum GeScalar: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { mask(x >= p) } }
enum LeScalar: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { mask(x <= p) } }
enum EqScalar: UnaryScalar { static func apply(_ x: Float, _ p: Float, _ q: Float) -> Float { mask(x == p) } }
enum Add: BinaryScalar { static func apply(_ a: Float, _ b: Float) -> Float { a + b } }
enum Sub: BinaryScalar { static func apply(_ a: Float, _ b: Float) -> Float { a - b } }
enum Mul: BinaryScalar { static func apply(_ a: Float, _ b: Float) -> Float { a * b } }
enum Div: BinaryScalar { static func apply(_ a: Float, _ b: Float) -> Float { a / b } }
enum Maximum: BinaryScalar { static func apply(_ a: Float, _ b: Float) -> Float { a >= b || a.isNaN ? a : b } }
enum Minimum: BinaryScalar { static func apply(_ a: Float, _ b: Float) -> Float { a <= b || a.isNaN ? a : b } }
enum Lt: BinaryScalar { static func apply(_ a: Float, _ b: Float) -> Float { mask(a < b) } }
enum Le: BinaryScalar { static func apply(_ a: Float, _ b: Float) -> Float { mask(a <= b) } }
enum Gt: BinaryScalar { static func apply(_ a: Float, _ b: Float) -> Float { mask(a > b) } }
enum Ge: BinaryScalar { static func apply(_ a: Float, _ b: Float) -> Float { mask(a >= b) } }
enum Eq: BinaryScalar { static func apply(_ a: Float, _ b: Float) -> Float { mask(a == b) } }
enum Ne: BinaryScalar { static func apply(_ a: Float, _ b: Float) -> Float { mask(a != b) } }

// MARK: Launches (no gradient recording: see Pointwise+API.swift)

extension Tensor {
    /// A destination of an elementwise op must hold each element once (not an expanded view).
    /// - Throws: `DeviceError.invalidArgument` naming `op`.
    func requireDistinctElements(op: String) throws {
        guard !layout.repeatsElements else {
            throw DeviceError.invalidArgument(op: op, "writes into an expanded view (shape \(shape), strides "
                + "\(layout.strides)) whose elements share memory; write into a tensor of its own (contiguous())")
        }
    }

    /// This tensor as an operand of an op that writes `out` element by element: itself, unless it shows out's
    /// memory at other places (a shifted slice of out, its transpose, a row of it broadcast), where an element could
    /// be read after the op overwrote it — then a copy made first, so the result is numpy's (`x[1...] = x[..<3]`).
    /// The same places (an op in place) need no copy: each element is read before it is written.
    func readable(beside out: Tensor) throws -> Tensor {
        guard sharesStorage(with: out), let placed = layout.broadcast(to: out.shape),
              !placed.placesEqual(out.layout), placed.footprint.overlaps(out.layout.footprint) else { return self }
        let copy = try Tensor.empty(shape, like: self)
        try Tensor.unaryKernel(PointwiseTable.copy, self, into: copy)
        return copy
    }

    /// out = f(x; p, q), elementwise over out's shape (x broadcast to it). out may be a view (written through its
    /// layout, each element once), may be x itself, and may overlap x elsewhere (x is then read from a copy).
    static func unaryKernel(_ f: UnaryFunction, _ x: Tensor, p: Float = 0, q: Float = 0, into out: Tensor) throws {
        let x = try x.readable(beside: out)
        let s = try StridedOperands(dense: [x, out]) ?? {
            guard let xl = x.layout.broadcast(to: out.shape) else {
                throw DeviceError.shapeMismatch(op: f.name, x.shape, out.shape)
            }
            try out.requireDistinctElements(op: f.name)
            return StridedOperands([xl, out.layout])
        }()
        try Tensor.run(f.name, views: true, x, out) { xp, op in
            let (xs, os, n) = (s.step(0), s.step(1), s.inner)
            s.forEachRow { o in f.row(n, xp + o[0], xs, op + o[1], os, p, q) }
        } opencl: { device, xb, ob in
            try device.runElementwise(f.forward, s) { a, s in
                try a.axes(s); try a.layout("x", xb, s, 0); try a.layout("out", ob, s, 1)
                try a.float("p", p); try a.float("q", q)
            }
        }
    }

    /// dx = g · f'(x, y; p, q) over g's shape, dense (x and y broadcast to it).
    static func unaryBackwardKernel(_ f: UnaryFunction, _ g: Tensor, x: Tensor, y: Tensor,
                                    p: Float, q: Float) throws -> Tensor {
        let dx = try Tensor.empty(g.shape, like: g)
        let s = try StridedOperands(dense: [g, x, y, dx]) ?? {
            guard let xl = x.layout.broadcast(to: g.shape), let yl = y.layout.broadcast(to: g.shape) else {
                throw DeviceError.shapeMismatch(op: f.name + " backward", x.shape, g.shape)
            }
            return StridedOperands([g.layout, xl, yl, dx.layout])
        }()
        try Tensor.run(f.name + " backward", views: true, g, x, y, dx) { gp, xp, yp, dp in
            let n = s.inner
            s.forEachRow { o in
                for j in 0..<n {
                    let (xv, yv) = (xp[o[1] + j * s.step(1)], yp[o[2] + j * s.step(2)])
                    dp[o[3] + j * s.step(3)] = gp[o[0] + j * s.step(0)] * f.slope(xv, yv, p, q)
                }
            }
        } opencl: { device, gb, xb, yb, db in
            try device.runElementwise(f.backward, s) { a, s in
                try a.axes(s); try a.layout("g", gb, s, 0); try a.layout("x", xb, s, 1); try a.layout("y", yb, s, 2)
                try a.layout("dx", db, s, 3); try a.float("p", p); try a.float("q", q)
            }
        }
        return dx
    }

    /// The shape `a` and `b` broadcast to, or a shape error naming `op`, both shapes in the caller's order and the
    /// axis where they disagree.
    static func broadcastShape(_ op: String, _ a: [Int], _ b: [Int]) throws -> [Int] {
        switch Layout.broadcastShape(a, b) {
        case .success(let shape): return shape
        case .failure(let failure):
            throw DeviceError.invalidArgument(op: op, "shapes \(a) and \(b) do not broadcast: axis \(failure.axis) of "
                + "the result would be \(failure.sizes.0) from the first and \(failure.sizes.1) from the second")
        }
    }

    /// out = f(a, b) over out's shape (a and b broadcast to it; an operand overlapping out elsewhere is read from a
    /// copy).
    static func binaryKernel(_ f: BinaryFunction, _ a: Tensor, _ b: Tensor, into out: Tensor) throws {
        let (a, b) = (try a.readable(beside: out), try b.readable(beside: out))
        let s = try StridedOperands(dense: [a, b, out]) ?? {
            guard let al = a.layout.broadcast(to: out.shape), let bl = b.layout.broadcast(to: out.shape) else {
                throw DeviceError.shapeMismatch(op: f.name, a.shape, b.shape)
            }
            try out.requireDistinctElements(op: f.name)
            return StridedOperands([al, bl, out.layout])
        }()
        try Tensor.run(f.name, views: true, a, b, out) { ap, bp, op in
            let (sa, sb, so, n) = (s.step(0), s.step(1), s.step(2), s.inner)
            s.forEachRow { o in f.row(n, ap + o[0], sa, bp + o[1], sb, op + o[2], so) }
        } opencl: { device, ab, bb, ob in
            try device.runElementwise(f.forward, s) { x, s in
                try x.axes(s); try x.layout("a", ab, s, 0); try x.layout("b", bb, s, 1); try x.layout("out", ob, s, 2)
            }
        }
    }

    /// (g · ∂f/∂a, g · ∂f/∂b) over g's shape, dense; the caller sums them back to a's and b's shapes.
    static func binaryBackwardKernel(_ f: BinaryFunction, _ g: Tensor, _ a: Tensor, _ b: Tensor,
                                     y: Tensor) throws -> (Tensor, Tensor) {
        let op = f.name + " backward"
        let (ga, gb) = (try Tensor.empty(g.shape, like: g), try Tensor.empty(g.shape, like: g))
        let s = try StridedOperands(dense: [g, a, b, y, ga, gb]) ?? {
            guard let al = a.layout.broadcast(to: g.shape), let bl = b.layout.broadcast(to: g.shape),
                  let yl = y.layout.broadcast(to: g.shape) else {
                throw DeviceError.shapeMismatch(op: op, a.shape, b.shape)
            }
            return StridedOperands([g.layout, al, bl, yl, ga.layout, gb.layout])
        }()
        try Tensor.run(op, views: true, g, a, b, y, ga, gb) { gp, ap, bp, yp, gap, gbp in
            s.forEachRow { o in
                for j in 0..<s.inner {
                    let gv = gp[o[0] + j * s.step(0)]
                    let (da, db) = f.slopes(ap[o[1] + j * s.step(1)], bp[o[2] + j * s.step(2)], yp[o[3] + j * s.step(3)])
                    gap[o[4] + j * s.step(4)] = gv * da
                    gbp[o[5] + j * s.step(5)] = gv * db
                }
            }
        } opencl: { device, gbuf, abuf, bbuf, ybuf, gabuf, gbbuf in
            try device.runElementwise(f.backward, s) { x, s in
                try x.axes(s); try x.layout("g", gbuf, s, 0); try x.layout("a", abuf, s, 1)
                try x.layout("b", bbuf, s, 2); try x.layout("y", ybuf, s, 3); try x.layout("ga", gabuf, s, 4)
                try x.layout("gb", gbbuf, s, 5)
            }
        }
        return (ga, gb)
    }

    /// out = c ≠ 0 ? a : b over out's shape (all three broadcast to it; one overlapping out elsewhere is read from
    /// a copy).
    static func chooseKernel(_ c: Tensor, _ a: Tensor, _ b: Tensor, into out: Tensor) throws {
        let (c, a, b) = (try c.readable(beside: out), try a.readable(beside: out), try b.readable(beside: out))
        guard let cl = c.layout.broadcast(to: out.shape), let al = a.layout.broadcast(to: out.shape),
              let bl = b.layout.broadcast(to: out.shape) else {
            throw DeviceError.shapeMismatch(op: "where", c.shape, out.shape)
        }
        try out.requireDistinctElements(op: "where")
        let s = StridedOperands([cl, al, bl, out.layout])
        try Tensor.run("where", views: true, c, a, b, out) { cp, ap, bp, op in
            s.forEachRow { o in
                for j in 0..<s.inner {
                    op[o[3] + j * s.step(3)] = cp[o[0] + j * s.step(0)] != 0
                        ? ap[o[1] + j * s.step(1)] : bp[o[2] + j * s.step(2)]
                }
            }
        } opencl: { device, cb, ab, bb, ob in
            try device.runElementwise(PointwiseTable.choose, s) { x, s in
                try x.axes(s); try x.layout("c", cb, s, 0); try x.layout("a", ab, s, 1); try x.layout("b", bb, s, 2)
                try x.layout("out", ob, s, 3)
            }
        }
    }
}
