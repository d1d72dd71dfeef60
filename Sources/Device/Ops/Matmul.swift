// The matrix product and its two gradient forms (Kernels/matmul.cl): matmul_forward (C = A·B), matmul_backward_input
// (C = A·Bᵀ), matmul_backward_weight (C = Aᵀ·B), each as register-blocked kernels chosen per device by the tuner
// (GemmTuner.swift), and matmul_naive, the readable reference. On cpu: a packed SIMD GEMM (Sources/CGemm), with the
// plain triple loop kept as the reference.
import CGemm
import Foundation

extension Tensor {
    /// The matrix product op(self)·op(other), where op transposes when its flag is set (read through indexing,
    /// never copied); with `accumulate`, the product is added to `out`.
    ///
    /// Reads views: a transposed view of a dense matrix (`w.transposed()`) is read as the transpose flag says, any
    /// other view through a contiguous copy. Without `out`, the product is recorded on the tape (dA = G·op(B)ᵀ,
    /// dB = op(A)ᵀ·G, transposed back as the flags say).
    ///
    /// self: [m, k] (or [k, m] with transposeSelf), other: [k, n] (or [n, k] with transposeOther) → [m, n]
    @discardableResult
    public func matmul(_ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false,
                       accumulate: Bool = false, into out: Tensor? = nil) throws -> Tensor {
        let (a, transA) = try matrixOperand(transposeSelf), (b, transB) = try other.matrixOperand(transposeOther)
        let c = try Tensor.matmul(a, b, transA: transA, transB: transB, accumulate: accumulate, into: out,
                                  naive: false)
        guard out == nil else { return c }
        let (x, y) = (a.detached(), b.detached())
        return c.recorded("matmul", from: [self, other], saving: [x, y]) { g, needs in
            // An operand with a gradient buffer of its own (a parameter) gets its gradient written there by the
            // product itself, when it needs no transposing back.
            let da = needs[0] && transA == transposeSelf ? needs.destination(0) : nil
            let db = needs[1] && transB == transposeOther ? needs.destination(1) : nil
            let ga = !needs[0] ? nil
                : transA ? try y.matmul(g, transposeSelf: transB, transposeOther: true,
                                        accumulate: da?.accumulate ?? false, into: da?.tensor)
                : try g.matmul(y, transposeOther: !transB, accumulate: da?.accumulate ?? false, into: da?.tensor)
            let gb = !needs[1] ? nil
                : transB ? try g.matmul(x, transposeSelf: true, transposeOther: transA,
                                        accumulate: db?.accumulate ?? false, into: db?.tensor)
                : try x.matmul(g, transposeSelf: !transA, accumulate: db?.accumulate ?? false, into: db?.tensor)
            // The gradients of the operands as given (a transposed view got the flag: transpose back); none for an
            // operand whose gradient was written in place.
            return [da != nil ? nil : try transA == transposeSelf ? ga : ga?.transposed(),
                    db != nil ? nil : try transB == transposeOther ? gb : gb?.transposed()]
        }
    }

    /// A dense matrix to multiply and whether to read it transposed: a transposed view of a dense matrix is its base
    /// read with the flag flipped; any other view, a contiguous copy.
    private func matrixOperand(_ transpose: Bool) throws -> (Tensor, Bool) {
        if isDense { return (self, transpose) }
        if shape.count == 2, offset == 0, strides == [1, Swift.max(shape[0], 1)] {
            return (Tensor(view: Layout(contiguous: [shape[1], shape[0]]), of: self), !transpose)
        }
        return (try Tensor.withoutGradients { try contiguous() }, transpose)
    }

    /// `naive` runs the reference (the triple loop on cpu, matmul_naive on OpenCL): what the tests and the benchmarks
    /// compare the fast kernels with. Not part of the public API (`@_spi(Reference) import Device` to reach it).
    @_spi(Reference) @discardableResult
    public static func matmul(_ a: Tensor, _ b: Tensor, transA: Bool, transB: Bool, accumulate: Bool, into out: Tensor?,
                       naive: Bool) throws -> Tensor {
        guard a.device == b.device else { throw DeviceError.deviceMismatch(op: "matmul", a.device, b.device) }
        let (ar, ac) = try matrixDims("matmul", a), (br, bc) = try matrixDims("matmul", b)
        let (m, k) = transA ? (ac, ar) : (ar, ac)
        let (kb, n) = transB ? (bc, br) : (br, bc)
        guard k == kb else { throw DeviceError.shapeMismatch(op: "matmul", a.shape, b.shape) }
        if accumulate && out == nil {
            throw DeviceError.invalidArgument(op: "matmul", "accumulate needs an output to add to")
        }
        let c = try output("matmul", out, [m, n], on: a.device, reading: [a, b])
        let beta: Float = accumulate ? 1 : 0
        try Tensor.run("matmul", a, b, c) { a, b, c in
            if naive {
                matmulNaive(a, b, c, m: m, n: n, k: k, transA: transA, transB: transB, beta: beta)
            } else {
                try matmulBlocked(a, b, c, m: m, n: n, k: k, transA: transA, transB: transB, beta: beta)
            }
        } opencl: { device, a, b, c in
            let variant = GemmVariant(transA: transA, transB: transB)
            // (A large product's kernel is its shape class's, tuned on its first product.)
            let kernel = try naive ? nil : variant.map {
                try GemmPlans.shared.launches(for: device).launch($0, m: m, n: n, k: k, on: device, a: a, b: b)
            }
            try launchMatmul(device, a, b, c, m: m, n: n, k: k, transA: transA, transB: transB, kernel: kernel,
                             beta: beta)
        }
        return c
    }
}

extension Rows {
    /// The product of these rows and `other`, the rows read in place through their order (no gathered copy of the
    /// minibatch, as the fused `Linear` reads them): [count, k]·[k, n] → [count, n]. Recorded on the tape with
    /// `other`'s gradient, rowsᵀ·G, read in place too. The rows get no gradient: they are a dataset's minibatch
    /// (a source that requires a gradient is an error, as the read through the index list would drop it).
    ///
    /// Reads any view of `other` (a view through a gathered copy of the rows and `Tensor.matmul`).
    public func matmul(_ other: Tensor) throws -> Tensor {
        guard !source.requiresGrad || !Tensor.recording else {
            throw DeviceError.invalidArgument(op: "matmul", "the rows' source (shape \(source.shape)) requires a "
                + "gradient, which rows read through an index list do not pass on: multiply the tensor itself, or "
                + "detach the source (rows are a dataset's minibatch)")
        }
        guard let order, source.shape.count == 2, source.isDense, order.isDense, other.isDense else {
            return try gathered().matmul(other)
        }
        guard device == other.device else { throw DeviceError.deviceMismatch(op: "matmul", device, other.device) }
        let (k, n) = try matrixDims("matmul", other)
        guard k == columns else { throw DeviceError.shapeMismatch(op: "matmul", shape, other.shape) }
        let (m, offset, sourceRows) = (count, self.offset, self.sourceRows)
        let c = try Tensor.empty([m, n], on: device)
        try Tensor.run("matmul", source, order, other, c) { x0, order, w, c in
            try matmulBlocked(x0, w, c, m: m, n: n, k: k, transA: false, transB: false, beta: 0,
                              order: HostRowOrder(order: order, offset: offset, rows: sourceRows))
        } opencl: { device, x0, order, w, c in
            let (fusion, extra) = (GemmFusion(gatherA: true),
                                   GemmFusionOperands(order: order, offset: offset, aRows: sourceRows))
            let launch = try GemmPlans.shared.launches(for: device).launch(.nn, m: m, n: n, k: k, on: device, a: x0,
                                                                           b: w, fusion: fusion, extra: extra)
            try launchMatmul(device, x0, w, c, m: m, n: n, k: k, transA: false, transB: false, kernel: launch,
                             beta: 0, fusion: fusion, extra: extra)
        }
        let rows = self
        // (The rows are read again by the rule: an in-place change of source or order before backward is an error.)
        return c.recorded("matmul", from: [other], saving: [source, order]) { g, needs in
            // Written straight into other's own gradient buffer when it has one (a parameter).
            let g = g.isDense ? g : try g.contiguous()
            let destination = needs.destination(0)
            let gw = try destination?.tensor ?? Tensor.empty([k, n], on: g.device)
            try Tensor.linearBackward(rows, g, weightGradient: gw, biasGradient: nil,
                                      accumulate: destination?.accumulate ?? false)
            return [destination == nil ? gw : nil]
        }
    }
}

private let matmulNaiveKernel = KernelSource("matmul", "matmul_naive")
private let matmulTransposeKernel = KernelSource("matmul", "matmul_transpose")
/// The buffers a fused GEMM launch reads and writes beside A, B and C (see `GemmFusion`).
struct GemmFusionOperands {
    var order: CLBuffer?
    var offset = 0
    var aRows = 0
    var bias: CLBuffer?
    var y: CLBuffer?
    var db: CLBuffer?
}

/// Vector kernels that fit every device (one work-item per group, no local memory): what a fused product runs on
/// when the tuned kernel does not fit the device.
private enum PortableGemm {
    static let nn = GemmLaunch(.columns(vw: 8, rm: 6, rn: 2), .nn)
    static let nt = GemmLaunch(.dots(vw: 8, dm: 3, dn: 4), .nt)
    static let tn = GemmLaunch(.columns(vw: 8, rm: 6, rn: 2), .tn)
}

/// C = op(A)·op(B) + beta·C through `kernel` of matmul.cl, or matmul_naive when it is nil (both transposes, the
/// reference) or when the device cannot hold the kernel's tile (work-group size, local memory). A `fusion` always
/// runs a fast kernel (the portable one when the tuned one does not fit), with `extra`'s buffers.
func launchMatmul(_ device: OpenCLDevice, _ a: CLBuffer, _ b: CLBuffer, _ c: CLBuffer, m: Int, n: Int, k: Int,
                  transA: Bool, transB: Bool, kernel choice: GemmLaunch?, beta: Float,
                  fusion: GemmFusion = .none, extra: GemmFusionOperands = GemmFusionOperands()) throws {
    let flops = 2 * Double(m) * Double(n) * Double(k)
    func fits(_ launch: GemmLaunch, _ kernel: CLKernel) -> Bool { launch.unfit(kernel, on: device) == nil }
    var launch = choice
    var kernel = try launch.map { try device.kernel($0.sources[fusion.index]) }
    if fusion != .none, launch == nil || !fits(launch!, kernel!), let variant = GemmVariant(transA: transA, transB: transB) {
        launch = variant == .nn ? PortableGemm.nn : variant == .nt ? PortableGemm.nt : PortableGemm.tn
        kernel = try device.kernel(launch!.sources[fusion.index])
    }
    if let launch, let kernel, fits(launch, kernel) {
        let form = launch.kernel.serving(fusion)
        // A·Bᵀ by column vectors: B [n, k] transposed into a scratch [k, n] first.
        var b = b
        if transB, case .columns = form {
            let transposed = try device.makeBuffer(count: n * k)
            try device.launch(try device.kernel(matmulTransposeKernel), global: WorkSize(n, k)) { x in
                try x.int("rows", n); try x.int("cols", k); try x.buffer("src", b); try x.buffer("dst", transposed)
            }
            b = transposed
        }
        // Split K: the parts' products (and bias-gradient sums) into scratch buffers, summed into C (and db) after.
        let split = form.splitK(m: m, n: n, k: k)
        let partials = try split.map { try device.makeBuffer(count: $0.parts * m * n) }
        let sumPartials = try split.flatMap { fusion.biasGradient ? try device.makeBuffer(count: $0.parts * n) : nil }
        try device.launch(kernel, global: form.global(m: m, n: n, k: k), local: form.local, flops: flops) { x in
            try x.int("M", m); try x.int("N", n); try x.int("K", k); try x.buffer("A", a); try x.buffer("B", b)
            try x.buffer("C", partials ?? c); try x.float("beta", split == nil ? beta : 0)
            // NOTE: a fusion's operand is never skipped: the kernel would read the previous launch's argument.
            func operand(_ buffer: CLBuffer?, _ name: String) throws -> CLBuffer {
                guard let buffer else {
                    throw DeviceError.invalidArgument(op: "matmul", "a fused product needs its '\(name)' operand")
                }
                return buffer
            }
            if fusion.gatherA {
                try x.buffer("order", try operand(extra.order, "order")); try x.int("offset", extra.offset)
                try x.int("a_rows", extra.aRows)
            }
            if fusion.bias { try x.buffer("bias", try operand(extra.bias, "bias")) }
            if fusion.activation != nil { try x.buffer("Y", try operand(extra.y, "Y")) }
            if fusion.biasGradient { try x.buffer("db", try sumPartials ?? operand(extra.db, "db")) }
            if let split { try x.int("k_chunk", split.chunk) }
        }
        if let split, let partials {
            // The parts added in order (deterministic): column sums of [parts, m·n] and [parts, n].
            try launchColumnSums(device, partials, rows: split.parts, cols: m * n, into: c, beta: beta)
            if let sumPartials, let db = extra.db {
                try launchColumnSums(device, sumPartials, rows: split.parts, cols: n, into: db, beta: beta)
            }
        }
        return
    }
    precondition(fusion == .none, "a fused product has no naive form")
    try device.launch(try device.kernel(matmulNaiveKernel), global: WorkSize(n, m), flops: flops) { x in
        try x.int("M", m); try x.int("N", n); try x.int("K", k); try x.buffer("A", a); try x.buffer("B", b)
        try x.buffer("C", c); try x.int("TRANS_A", transA ? 1 : 0); try x.int("TRANS_B", transB ? 1 : 0)
        try x.float("beta", beta)
    }
}

/// An epilogue of a CPU product: run on each block of C (rows, columns) by the thread that computed it, right after.
typealias HostEpilogue = @Sendable (_ rows: Range<Int>, _ columns: Range<Int>) -> Void

/// The fast CPU product: batch-sized products with B row-major run unpacked on the calling thread (CGemm's small
/// path, which also reads A's rows through `order`); the rest cache-blocked, packed, rows split across all cores.
/// `epilogue` (a layer's bias and activation) runs on each block of C where it was computed, while it is in cache.
func matmulBlocked(_ A: UnsafeMutablePointer<Float>, _ B: UnsafeMutablePointer<Float>, _ C: UnsafeMutablePointer<Float>,
                   m: Int, n: Int, k: Int, transA: Bool, transB: Bool, beta: Float, order: HostRowOrder? = nil,
                   epilogue: HostEpilogue? = nil) throws {
    guard m > 0, n > 0 else { return }
    let (aRow, aCol) = transA ? (1, m) : (k, 1)
    let small = m * n * k < 1 << 22
    if !transB && small && k > 0 && k <= CLNN_SGEMM_SMALL_MAX_K {
        // Split by rows (whole 6-row tiles) over the pool when there is work enough: a training step's products.
        // Three chunks per thread, claimed as threads come free: 64 rows in two shares would be 36 and 28.
        let threads = hostThreads
        let perChunk = m * n * k < 1 << 17 || threads == 1 ? m : ((m + 3 * threads - 1) / (3 * threads) + 5) / 6 * 6
        let chunks = (m + perChunk - 1) / perChunk
        // NOTE: the chunks write disjoint rows of C and only read the rest.
        nonisolated(unsafe) let (A, B, C, order) = (A, B, C, order)
        poolRun(chunks) { chunk in
            let (begin, end) = (min(m, chunk * perChunk), min(m, chunk * perChunk + perChunk))
            guard begin < end else { return }
            // A chunk's rows: further along A (or, through an index list, along the list), and along C.
            let rowsThroughOrder = order != nil && !transA
            _ = clnn_sgemm_small(Int32(end - begin), Int32(n), Int32(k), rowsThroughOrder ? A : A + begin * aRow,
                                 aRow, aCol, transA ? 1 : 0, order?.order, Int32((order?.offset ?? 0) + (rowsThroughOrder ? begin : 0)),
                                 Int32(order?.rows ?? 0), B, n, C + begin * n, beta)
            epilogue?(begin..<end, 0..<n)
        }
        return
    }
    // Outside the small path, A's stored rows through an index list are packed straight from where they lie.
    // NOTE: not gathered into a copy first: writing the copy from one thread cost more than the packing (the other
    // core had read the last step's copy, and each line it held was taken back one at a time).
    var storedAt: [Int] = []
    if let order {
        let (stored, width) = transA ? (k, m) : (m, k)
        storedAt = (0..<stored).map { order.row($0) * width }
    }
    let (bRow, bCol) = transB ? (1, k) : (n, 1)
    // Small products are not worth waking threads for. A wide, short product (n well above m: a convolution's
    // filters times its patches) is split by columns, so that each thread packs only its share of B; any other by
    // rows. Chunks are multiples of the micro-kernel's tile (6 rows, 16 columns).
    let cores = hostThreads
    let byColumns = n >= 4 * m
    let chunks = small ? 1 : byColumns ? min(cores, (n + 15) / 16) : min(cores, (m + 5) / 6)
    let packs = try ScratchBuffers.packs.take(chunks, floats: clnn_sgemm_pack_floats())
    defer { ScratchBuffers.packs.give(packs) }
    // NOTE: the threads write disjoint blocks of C and only read A and B; each packs into its own buffer.
    nonisolated(unsafe) let (A, B, C) = (A, B, C)
    let (extent, tile) = byColumns ? (n, 16) : (m, 6)
    let perChunk = ((extent + chunks - 1) / chunks + tile - 1) / tile * tile
    storedAt.withUnsafeBufferPointer { at in
        nonisolated(unsafe) let at = order == nil ? nil : at.baseAddress
        nonisolated(unsafe) let (rowsAt, colsAt) = transA ? (nil, at) : (at, nil)
        poolRun(chunks) { chunk in
            let begin = Int32(min(extent, chunk * perChunk)), end = Int32(min(extent, chunk * perChunk + perChunk))
            guard begin < end else { return }
            let (rows, columns) = byColumns ? (0..<m, Int(begin)..<Int(end)) : (Int(begin)..<Int(end), 0..<n)
            clnn_sgemm_block(Int32(m), Int32(n), Int32(k), A, aRow, aCol, rowsAt, colsAt, B, bRow, bCol, C, beta,
                             Int32(rows.lowerBound), Int32(rows.upperBound), Int32(columns.lowerBound),
                             Int32(columns.upperBound), packs[chunk].pointer)
            epilogue?(rows, columns)
        }
    }
}

/// Host scratch buffers kept across products — the blocked product's pack buffers (one per concurrent chunk): fresh
/// ones per product (or per worker thread, and GCD retires idle ones) cost page faults that dominated batch-sized and
/// full-batch products.
private final class ScratchBuffers: @unchecked Sendable {
    static let packs = ScratchBuffers()
    private let lock = NSLock()
    private var idle: [HostBuffer] = []

    /// `count` buffers of at least `floats` floats, the caller's alone until it gives them back.
    func take(_ count: Int, floats: Int) throws -> [HostBuffer] {
        lock.lock()
        var taken: [HostBuffer] = []
        while taken.count < count, let i = idle.lastIndex(where: { $0.count >= floats }) {
            taken.append(idle.remove(at: i))
        }
        lock.unlock()
        return taken + (try (taken.count..<count).map { _ in try HostBuffer(count: floats) })
    }

    func give(_ buffers: [HostBuffer]) {
        lock.lock()
        defer { lock.unlock() }
        idle += buffers
        // NOTE: keep the largest few; a smaller buffer than every caller needs would only pile up. The pool's thread
        // count, not `ProcessInfo.activeProcessorCount`: that reads cgroup files on every call (6% of a cpu epoch).
        let keep = 2 * hostThreads
        if idle.count > keep {
            idle.sort { $0.count > $1.count }
            idle.removeLast(idle.count - keep)
        }
    }
}

/// The reference: c[i][j] = Σ_p op(a)[i][p]·op(b)[p][j] (+ beta·c[i][j]), one multiply-add at a time.
private func matmulNaive(_ A: UnsafeMutablePointer<Float>, _ B: UnsafeMutablePointer<Float>,
                         _ C: UnsafeMutablePointer<Float>,
                         m: Int, n: Int, k: Int, transA: Bool, transB: Bool, beta: Float) {
    for i in 0..<m {
        for j in 0..<n {
            var acc: Float = 0
            for p in 0..<k { acc += (transA ? A[p * m + i] : A[i * k + p]) * (transB ? B[j * k + p] : B[p * n + j]) }
            C[i * n + j] = beta == 0 ? acc : acc + beta * C[i * n + j]
        }
    }
}

extension OpCheck {
    /// The product as every op calls it (the device's plan, or the CPU's blocked product), in all four transposes,
    /// and the naive reference kernel, on shapes that are not multiples of any tile.
    static var matmulChecks: [OpCheck] {
        // (m, k, n): the CPU's small path masks a last partial vector of 1–7 (n = 7, 33, 70) or 9–15 columns (n = 29)
        // and reads a whole one plainly (n = 24); its blocked path takes a narrow product's K whole, with a last
        // panel of A packed (67 × 700 · 700 × 20, tB).
        let shapes = [(1, 1, 1), (3, 5, 7), (65, 129, 33), (33, 17, 70), (1, 784, 50), (13, 29, 29), (7, 9, 24),
                      (67, 700, 20), (2, 0, 3), (0, 4, 3)]
        return shapes.flatMap { m, k, n in
            [(false, false), (false, true), (true, false), (true, true)].map { transA, transB in
                productCheck(m: m, k: k, n: n, transA: transA, transB: transB,
                             form: "matmul" + (transA ? " tA" : "") + (transB ? " tB" : "")) { a, b, c, _ in
                    try Tensor.matmul(a, b, transA: transA, transB: transB, accumulate: true, into: c, naive: false)
                }
            } + [productCheck(m: m, k: k, n: n, transA: false, transB: false, form: "matmul naive") { a, b, c, _ in
                try Tensor.matmul(a, b, transA: false, transB: false, accumulate: true, into: c, naive: true)
            }]
        }
    }

    /// A dataset's rows times a matrix, the rows read in place through a shuffled index list (`Rows.matmul`), and
    /// the matrix's gradient from the tape (rowsᵀ·G for G = 1). (TapeTests also runs a product large enough for the
    /// CPU's blocked path, too slow for the checks under oclgrind.)
    static var rowsProductChecks: [OpCheck] {
        [(37, 13, 5, 7, 3), (300, 70, 9, 31, 65)].map { n, k, cols, offset, rows in
            let source = values(n * k, seed: 96), w = values(k * cols, seed: 97)
            let order: [Float] = (0..<n).map { Float(($0 * 11) % n) }
            return OpCheck("matmul (rows in place)", "\(rows) of \(n)x\(k) ·\(cols)",
                           rtol: 1e-4, atol: 1e-4, compute: { d in
                let x = try Tensor(source, shape: [n, k], on: d), b = try Tensor(w, shape: [k, cols], on: d)
                b.requiresGrad = true
                let y = try Rows(x, order: try Tensor(order, shape: [n], on: d), offset: offset, count: rows).matmul(b)
                try y.sum().backward()
                return [y, try b.grad ?? Tensor.zeros([k, cols], on: d)]
            }, reference: {
                let picked = (offset..<offset + rows).map { Int(order[$0]) }
                let y = picked.flatMap { r in
                    (0..<cols).map { j in
                        (0..<k).reduce(0.0) { $0 + Double(source[r * k + $1]) * Double(w[$1 * cols + j]) }
                    }
                }
                // d(Σy)/dw[p][j] = Σ over the picked rows of x[r][p].
                let dw = (0..<k).flatMap { p in
                    [Double](repeating: picked.reduce(0.0) { $0 + Double(source[$1 * k + p]) }, count: cols)
                }
                return [y, dw]
            })
        }
    }

    /// Every GEMM kernel the tuner may pick, in each form it serves, on OpenCL devices: whichever wins is correct.
    /// A candidate the device cannot build or hold (work-group size, local memory) is skipped with the reason, as
    /// the tuner skips it.
    static var gemmCandidateChecks: [OpCheck] {
        GemmVariant.allCases.flatMap { variant in
            GemmPlan.candidates(variant).flatMap { kernel in
                [(65, 33, 129), (3, 784, 50)].map { m, k, n in
                    let launch = GemmLaunch(kernel, variant)
                    return productCheck(m: m, k: k, n: n, transA: variant == .tn, transB: variant == .nt,
                                        form: "gemm \(variant.rawValue) \(kernel)", openCLOnly: true,
                                        skip: { launch.unusable(on: $0, buildFailures: false) }) { a, b, c, d in
                        // On cpu (the comparison's side): the CPU fallback's product.
                        guard d.isOpenCL else {
                            _ = try Tensor.matmul(a, b, transA: variant == .tn, transB: variant == .nt, accumulate: true,
                                                  into: c, naive: false)
                            return
                        }
                        try Tensor.run("matmul", a, b, c) { _, _, _ in
                            throw DeviceError.invalidArgument(op: "gemm check", "a GEMM candidate runs on OpenCL only")
                        } opencl: { device, a, b, c in
                            try launchMatmul(device, a, b, c, m: m, n: n, k: k, transA: variant == .tn,
                                             transB: variant == .nt, kernel: launch, beta: 1)
                        }
                    }
                }
            }
        }
    }

    /// C = op(A)·op(B) + C for A, B and C of odd values, against the Double reference.
    static func productCheck(m: Int, k: Int, n: Int, transA: Bool, transB: Bool, form: String,
                             openCLOnly: Bool = false, skip: @escaping @Sendable (DeviceTag) -> String? = { _ in nil },
                             _ product: @escaping @Sendable (Tensor, Tensor, Tensor, DeviceTag) throws -> Void) -> OpCheck {
        let av = values(m * k, seed: 5), bv = values(k * n, seed: 6), cv = values(m * n, seed: 7)
        return OpCheck(form, "\(m)x\(k)x\(n)", rtol: 1e-4, atol: 1e-4, openCLOnly: openCLOnly, skip: skip,
                       compute: { d in
            let a = try Tensor(av, shape: transA ? [k, m] : [m, k], on: d)
            let b = try Tensor(bv, shape: transB ? [n, k] : [k, n], on: d)
            let c = try Tensor(cv, shape: [m, n], on: d)
            try product(a, b, c, d)
            return [c]
        }, reference: {
            [zip(referenceProduct(av, bv, m: m, n: n, k: k, transA: transA, transB: transB), cv).map { $0 + Double($1) }]
        })
    }
}
