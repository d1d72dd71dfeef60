// Batch normalisation as one op (PyTorch's `F.batch_norm`): per channel of [N, C, L], the batch's mean and biased
// variance (training) or given statistics (evaluation), then y = (x − mean)/√(var + eps)·γ + β; its backward rule
// next to it. On cpu each channel is one pass for the statistics and one for y (channels split across the cores);
// on OpenCL one kernel each way (Kernels/batchnorm.cl), a work-group per channel.
import Foundation

extension Tensor {
    /// Batch normalisation of self [N, C, L] (L may be 1) over N and L, per channel: with `statistics` nil, the
    /// batch's own mean and biased variance (training mode); given, those (a layer's running statistics: evaluation
    /// mode). Returns y [N, C, L] and the mean and biased variance used, each [C]. Recorded on the tape: gradients for
    /// self, `weight` (γ) and `bias` (β); the statistics get none.
    ///
    /// Reads views (through a contiguous copy).
    /// - Throws: `DeviceError.invalidArgument` naming batch_norm for input that is not [N, C, L], a weight, bias or
    ///   statistic that is not [C], a negative or non-finite eps, or batch statistics over a single value.
    public func batchNorm(weight: Tensor, bias: Tensor, eps: Float,
                          statistics: (mean: Tensor, variance: Tensor)? = nil)
        throws -> (y: Tensor, mean: Tensor, variance: Tensor) {
        guard shape.count == 3 else {
            throw DeviceError.invalidArgument(op: "batch_norm", "expects input of shape [N, C, L], got \(shape)")
        }
        let (n, c, l) = (shape[0], shape[1], shape[2])
        for (what, t) in [("weight", weight), ("bias", bias)] + (statistics.map {
            [("mean", $0.mean), ("variance", $0.variance)] } ?? []) {
            guard t.shape == [c] else {
                throw DeviceError.invalidArgument(op: "batch_norm", "the \(what) has shape \(t.shape), the input's "
                    + "\(c) channels need [\(c)]")
            }
            if t.device != device { throw DeviceError.deviceMismatch(op: "batch_norm", device, t.device) }
        }
        guard eps >= 0, eps.isFinite else {
            throw DeviceError.invalidArgument(op: "batch_norm", "eps must be finite and ≥ 0, got \(eps)")
        }
        guard statistics != nil || n * l > 1 else {
            throw DeviceError.invalidArgument(op: "batch_norm", "batch statistics need more than one value per "
                + "channel, got input of shape \(shape)")
        }
        func dense(_ t: Tensor) throws -> Tensor { t.isDense ? t : try Tensor.withoutGradients { try t.contiguous() } }
        let norm = BatchNormShape(n: n, c: c, l: l, eps: eps, batchStatistics: statistics == nil)
        let (x, gamma, beta) = (try dense(self), try dense(weight), try dense(bias))
        let (mean, variance) = try statistics.map { (try dense($0.mean).detached(), try dense($0.variance).detached()) }
            ?? (try Tensor.empty([c], on: device), try Tensor.empty([c], on: device))
        let y = try Tensor.empty(shape, on: device)
        try Tensor.withoutGradients { try norm.forward(x, gamma, beta, y: y, mean: mean, variance: variance) }
        let (xs, gs) = (x.detached(), gamma.detached())
        let result = y.recorded("batch_norm", from: [self, weight, bias], saving: [xs, gs, mean, variance]) { g, needs in
            let g = g.isDense ? g : try g.contiguous()
            let wDestination = needs[1] ? needs.destination(1) : nil
            let bDestination = needs[2] ? needs.destination(2) : nil
            let none = try Tensor.empty([1], on: g.device)
            let dx = needs[0] ? try Tensor.empty(xs.shape, on: g.device) : nil
            let dg = needs[1] ? try wDestination?.tensor ?? Tensor.empty([c], on: g.device) : nil
            let db = needs[2] ? try bDestination?.tensor ?? Tensor.empty([c], on: g.device) : nil
            try Tensor.withoutGradients {
                try norm.backward(g, xs, gs, mean: mean, variance: variance, dx: dx ?? none, dgamma: dg ?? none,
                                  dbeta: db ?? none, needs: (dx != nil, dg != nil, db != nil),
                                  accumulate: (wDestination?.accumulate ?? false, bDestination?.accumulate ?? false))
            }
            return [dx, wDestination == nil ? dg : nil, bDestination == nil ? db : nil]
        }
        return (result, mean, variance)
    }
}

/// Σ f(row[q]) over q in 0..<count, in Double, as four independent sums (a single running sum is one long chain of
/// dependent additions: latency-bound).
@inline(__always)
private func doubleSum(_ row: UnsafeMutablePointer<Float>, _ count: Int, _ f: (SIMD4<Double>) -> SIMD4<Double>)
    -> Double {
    var acc = SIMD4<Double>.zero
    var q = 0
    while q + 4 <= count {
        acc += f(SIMD4(Double(row[q]), Double(row[q + 1]), Double(row[q + 2]), Double(row[q + 3])))
        q += 4
    }
    var rest = SIMD4<Double>.zero
    for k in 0..<(count - q) { rest[k] = Double(row[q + k]) }
    let tail = f(rest)
    return acc.sum() + (0..<(count - q)).reduce(0) { $0 + tail[$1] }
}

/// Σ f(a[q], b[q]) over q in 0..<count, in Double, four independent sums.
@inline(__always)
private func doubleSum(_ a: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>, _ count: Int,
                       _ f: (SIMD4<Double>, SIMD4<Double>) -> SIMD4<Double>) -> Double {
    var acc = SIMD4<Double>.zero
    var q = 0
    while q + 4 <= count {
        acc += f(SIMD4(Double(a[q]), Double(a[q + 1]), Double(a[q + 2]), Double(a[q + 3])),
                 SIMD4(Double(b[q]), Double(b[q + 1]), Double(b[q + 2]), Double(b[q + 3])))
        q += 4
    }
    var (ra, rb) = (SIMD4<Double>.zero, SIMD4<Double>.zero)
    for k in 0..<(count - q) { (ra[k], rb[k]) = (Double(a[q + k]), Double(b[q + k])) }
    let tail = f(ra, rb)
    return acc.sum() + (0..<(count - q)).reduce(0) { $0 + tail[$1] }
}

/// One batch normalisation's sizes and mode: x [N, C, L], statistics over N and L.
private struct BatchNormShape {
    let n, c, l: Int
    let eps: Float
    /// The batch's own statistics (training), or given ones.
    let batchStatistics: Bool

    /// y = (x − mean)·γ/√(var + eps) + β; with batch statistics, mean and variance are written first.
    func forward(_ x: Tensor, _ gamma: Tensor, _ beta: Tensor, y: Tensor, mean: Tensor, variance: Tensor) throws {
        let (n, c, l, eps, batch) = (n, c, l, Double(eps), batchStatistics)
        try Tensor.run("batch_norm", x, gamma, beta, y, mean, variance) { xp, gp, bp, yp, mp, vp in
            nonisolated(unsafe) let (xp, gp, bp, yp, mp, vp) = (xp, gp, bp, yp, mp, vp)
            hostParallel(c, costPerItem: Double(n * l) * 3) { channels in
                for ch in channels {
                    if batch {
                        // Two passes in Double: the mean, then the squares about it.
                        var sum = 0.0
                        for b in 0..<n { sum += doubleSum(xp + (b * c + ch) * l, l) { x in x } }
                        let m = sum / Double(n * l)
                        var squares = 0.0
                        for b in 0..<n { squares += doubleSum(xp + (b * c + ch) * l, l) { x in (x - m) * (x - m) } }
                        (mp[ch], vp[ch]) = (Float(m), Float(squares / Double(n * l)))
                    }
                    // (x − mean)·scale + β: x·scale − mean·scale would overflow for values near the float's largest.
                    let scale = Float(Double(gp[ch]) / (Double(vp[ch]) + eps).squareRoot())
                    let (mean, beta) = (mp[ch], bp[ch])
                    for b in 0..<n {
                        let (row, out) = (xp + (b * c + ch) * l, yp + (b * c + ch) * l)
                        for q in 0..<l { out[q] = (row[q] - mean) * scale + beta }
                    }
                }
            }
        } opencl: { device, xb, gb, bb, yb, mb, vb in
            try device.launchPerChannel(forwardKernel, channels: c) { a in
                try a.int8("dims", [n, c, l]); try a.float("eps", Float(eps)); try a.int("batch", batch ? 1 : 0)
                try a.buffer("x", xb); try a.buffer("gamma", gb); try a.buffer("beta", bb)
                try a.buffer("mean", mb); try a.buffer("variance", vb); try a.buffer("y", yb)
            }
        }
    }

    /// The gradients from g (dense [N, C, L]) into dx, dgamma and dbeta — those `needs` asks for (the others are
    /// placeholders) —, dgamma and dbeta added to when `accumulate` says so. With batch statistics the mean and the
    /// variance depend on x too: dx = γ/σ·(g − mean(g) − x̂·mean(g·x̂)), x̂ = (x − mean)/σ; with given ones, γ/σ·g.
    func backward(_ g: Tensor, _ x: Tensor, _ gamma: Tensor, mean: Tensor, variance: Tensor, dx: Tensor,
                  dgamma: Tensor, dbeta: Tensor, needs: (x: Bool, gamma: Bool, beta: Bool),
                  accumulate: (gamma: Bool, beta: Bool)) throws {
        let (n, c, l, eps, batch, count) = (n, c, l, Double(eps), batchStatistics, Double(n * l))
        try Tensor.run("batch_norm backward", g, x, gamma, mean, variance, dx, dgamma, dbeta) {
            gp, xp, gammap, mp, vp, dxp, dgp, dbp in
            nonisolated(unsafe) let (gp, xp, gammap, mp, vp, dxp, dgp, dbp) = (gp, xp, gammap, mp, vp, dxp, dgp, dbp)
            hostParallel(c, costPerItem: Double(n * l) * 3) { channels in
                for ch in channels {
                    let (m, inv) = (Double(mp[ch]), 1 / (Double(vp[ch]) + eps).squareRoot())
                    // Σ g and Σ g·x̂ over the channel.
                    var (sumG, sumGX) = (0.0, 0.0)
                    for b in 0..<n {
                        let (gr, xr) = (gp + (b * c + ch) * l, xp + (b * c + ch) * l)
                        sumG += doubleSum(gr, l) { g in g }
                        sumGX += doubleSum(gr, xr, l) { g, x in g * (x - m) }
                    }
                    sumGX *= inv
                    if needs.gamma { dgp[ch] = Float(sumGX) + (accumulate.gamma ? dgp[ch] : 0) }
                    if needs.beta { dbp[ch] = Float(sumG) + (accumulate.beta ? dbp[ch] : 0) }
                    guard needs.x else { continue }
                    let k = Double(gammap[ch]) * inv
                    // dx = k·g − k·mean(g) − k·inv·mean(g·x̂)·(x − m): one multiply-add per element.
                    let (a, b0, slope) = batch ? (Float(k), Float(-k * sumG / count + k * inv * sumGX / count * m),
                                                  Float(-k * inv * sumGX / count))
                                               : (Float(k), 0, 0)
                    for b in 0..<n {
                        let (gr, xr, out) = (gp + (b * c + ch) * l, xp + (b * c + ch) * l, dxp + (b * c + ch) * l)
                        for q in 0..<l { out[q] = a * gr[q] + slope * xr[q] + b0 }
                    }
                }
            }
        } opencl: { device, gb, xb, gammab, mb, vb, dxb, dgb, dbb in
            try device.launchPerChannel(backwardKernel, channels: c) { a in
                try a.int8("dims", [n, c, l]); try a.float("eps", Float(eps)); try a.int("batch", batch ? 1 : 0)
                try a.int8("flags", [needs.x, needs.gamma, needs.beta, accumulate.gamma, accumulate.beta].map {
                    $0 ? 1 : 0
                })
                try a.buffer("g", gb); try a.buffer("x", xb); try a.buffer("gamma", gammab)
                try a.buffer("mean", mb); try a.buffer("variance", vb)
                try a.buffer("dx", dxb); try a.buffer("dgamma", dgb); try a.buffer("dbeta", dbb)
            }
        }
    }
}

private let forwardKernel = KernelSource("batchnorm", "batch_norm_forward")
private let backwardKernel = KernelSource("batchnorm", "batch_norm_backward")

extension OpenCLDevice {
    /// Launches a batchnorm.cl kernel with one work-group per channel: of one work-item on a CPU-type device (it walks
    /// its channel in order), else the largest power of two up to the kernel's `BN_GROUP` (256) the kernel allows.
    fileprivate func launchPerChannel(_ source: KernelSource, channels: Int,
                                      _ arguments: (inout KernelArguments) throws -> Void) throws {
        let built = try kernel(source)
        var group = 1
        if !rowLoop { while group * 2 <= min(256, built.maxWorkGroupSize, info.maxWorkGroupSize) { group *= 2 } }
        try launch(built, global: WorkSize(channels * group), local: WorkSize(group), arguments)
    }
}

extension OpCheck {
    /// Batch normalisation on odd sizes — [3, 5, 7], [2, 3, 1] and a batch of 1 with 13 positions —, with the batch's
    /// statistics and with given ones: y, the statistics, and the gradients of Σ y·r for x, γ and β, against the same
    /// sums written out in Double.
    static var batchNormChecks: [OpCheck] {
        [(3, 5, 7, true), (2, 3, 1, true), (1, 4, 13, true), (3, 5, 7, false)].map { n, c, l, batch in
            let xv = values(n * c * l, seed: 201).map { $0 * 3 + 0.5 }, gv = values(c, seed: 202)
            let bv = values(c, seed: 203), rv = values(n * c * l, seed: 204)
            let (mv, vv) = (values(c, seed: 205), values(c, seed: 206).map { $0 * $0 + 0.1 })
            let eps = 1e-5
            return OpCheck("batch_norm", "\(n)x\(c)x\(l) " + (batch ? "batch statistics" : "given statistics"),
                           rtol: 1e-4, atol: 1e-4, compute: { device in
                let x = try Tensor(xv, shape: [n, c, l], on: device)
                let gamma = try Tensor(gv, shape: [c], on: device), beta = try Tensor(bv, shape: [c], on: device)
                for t in [x, gamma, beta] { t.requiresGrad = true }
                let stats = batch ? nil : (try Tensor(mv, shape: [c], on: device), try Tensor(vv, shape: [c], on: device))
                let (y, mean, variance) = try x.batchNorm(weight: gamma, bias: beta, eps: Float(eps), statistics: stats)
                try (y * (try Tensor(rv, shape: [n, c, l], on: device))).sum().backward()
                return [y, mean, variance] + (try [x, gamma, beta].map { try $0.grad ?? Tensor.zeros($0.shape, on: device) })
            }, reference: {
                let count = Double(n * l)
                func at(_ b: Int, _ ch: Int, _ q: Int) -> Int { (b * c + ch) * l + q }
                var y = [Double](repeating: 0, count: xv.count), dx = y
                var mean = mv.map(Double.init), variance = vv.map(Double.init)
                var dgamma = [Double](repeating: 0, count: c), dbeta = dgamma
                for ch in 0..<c {
                    let xs = (0..<n).flatMap { b in (0..<l).map { q in Double(xv[at(b, ch, q)]) } }
                    if batch {
                        mean[ch] = xs.reduce(0, +) / count
                        variance[ch] = xs.map { ($0 - mean[ch]) * ($0 - mean[ch]) }.reduce(0, +) / count
                    }
                    let sigma = (variance[ch] + eps).squareRoot()
                    var (sumG, sumGX) = (0.0, 0.0)
                    for b in 0..<n {
                        for q in 0..<l {
                            let i = at(b, ch, q), xhat = (Double(xv[i]) - mean[ch]) / sigma
                            y[i] = xhat * Double(gv[ch]) + Double(bv[ch])
                            sumG += Double(rv[i])
                            sumGX += Double(rv[i]) * xhat
                        }
                    }
                    (dgamma[ch], dbeta[ch]) = (sumGX, sumG)
                    for b in 0..<n {
                        for q in 0..<l {
                            let i = at(b, ch, q), xhat = (Double(xv[i]) - mean[ch]) / sigma
                            let g = Double(rv[i])
                            dx[i] = Double(gv[ch]) / sigma * (batch ? g - sumG / count - xhat * sumGX / count : g)
                        }
                    }
                }
                return [y, mean, variance, dx, dgamma, dbeta]
            })
        }
    }
}
