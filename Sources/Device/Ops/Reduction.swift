// Reductions along one axis (or all) of any layout (Kernels/reduce.cl). One table drives the kernels: a row is a
// reduction's name, identity and combining expression in OpenCL C, and its Swift function. The public ops and their
// backward rules are in Reduction+API.swift.

/// A reduction: the identity and how two partial results combine.
final class ReductionFunction: Sendable {
    let name: String
    /// OpenCL C.
    let identity: String
    /// OpenCL C in acc, v.
    let combine: String
    /// The CPU loop, compiled for this reduction: every output of `s` (operand 0: x's kept axes, 1: out) from the
    /// `n` elements `step` apart that start at its x offset, times `scale`. Throws when its scratch cannot be
    /// allocated.
    let cpu: @Sendable (_ s: StridedOperands, _ n: Int, _ step: Int, _ x: UnsafePointer<Float>,
                        _ out: UnsafeMutablePointer<Float>, _ scale: Float) throws -> Void
    let loop: KernelSource
    let group: KernelSource
    /// CPU-type devices only: blocks of the reduced axis over whole rows of outputs (see `reductionKernel`).
    let blocks: KernelSource

    init<R: ReductionScalar>(_ name: String, _ identity: String, _ combine: String, _ r: R.Type) {
        (self.name, self.identity, self.combine) = (name, identity, combine)
        cpu = { s, n, step, x, out, scale in try reduceOnHost(R.self, s, n, step, x, out, scale) }
        loop = KernelSource("reduce", "reduce_" + name)
        group = KernelSource("reduce", "reduce_\(name)_group")
        blocks = KernelSource("reduce", "reduce_\(name)_blocks")
    }
}

/// A reduction's identity and combination in Double (the CPU loop's accumulator), as a type so that each
/// reduction's loops are compiled for it.
protocol ReductionScalar {
    static var start: Double { get }
    static func combine<T: BinaryFloatingPoint>(_ acc: T, _ v: T) -> T
}

enum SumReduction: ReductionScalar {
    static var start: Double { 0 }
    static func combine<T: BinaryFloatingPoint>(_ acc: T, _ v: T) -> T { acc + v }
}

// NaN propagates: once acc is NaN, v > acc is false and acc stays.
enum MaxReduction: ReductionScalar {
    static var start: Double { -.infinity }
    static func combine<T: BinaryFloatingPoint>(_ acc: T, _ v: T) -> T { v > acc || v.isNaN ? v : acc }
}

enum MinReduction: ReductionScalar {
    static var start: Double { .infinity }
    static func combine<T: BinaryFloatingPoint>(_ acc: T, _ v: T) -> T { v < acc || v.isNaN ? v : acc }
}

/// The CPU loop of a reduction, in Double. A contiguous reduced axis: each output with four accumulators (the
/// additions overlap); outputs contiguous in x: the reduced axis outermost, blocks of 64 rows in fp32 (vectorised)
/// then added to Double totals — small ones a row of accumulators at a time, large ones split across the cores; else
/// each output on its own.
private func reduceOnHost<R: ReductionScalar>(_ r: R.Type, _ s: StridedOperands, _ n: Int, _ step: Int,
                                             _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                             _ scale: Float) throws {
    let (inner, xs, os) = (s.inner, s.step(0), s.step(1))
    if step != 1 && xs == 1 && n > 1 && n * inner < 1 << 16 {
        // A small one (a batch's bias gradient): one row of accumulators, added to a row of x at a time, blocks of 64
        // rows in fp32 (vectorised) then added to Double totals.
        var totals = [Double](repeating: R.start, count: inner), blocks = [Float](repeating: 0, count: inner)
        s.forEachRow { o in
            totals.withUnsafeMutableBufferPointer { total in
                blocks.withUnsafeMutableBufferPointer { block in
                    for j in 0..<inner { total[j] = R.start }
                    for k0 in stride(from: 0, to: n, by: 64) {
                        for j in 0..<inner { block[j] = Float(R.start) }
                        for k in k0..<Swift.min(n, k0 + 64) {
                            let row = x + o[0] + k * step
                            for j in 0..<inner { block[j] = R.combine(block[j], row[j]) }
                        }
                        for j in 0..<inner { total[j] = R.combine(total[j], Double(block[j])) }
                    }
                    for j in 0..<inner { out[o[1] + j * os] = Float(total[j]) * scale }
                }
            }
        }
        return
    }
    if step != 1 && xs == 1 && n > 1 {
        // A large one: blocks of 64 rows of the reduced axis over the whole row of outputs, split across the cores
        // (x read in order, whole rows one after another), each into its own partial row in fp32; then each
        // output's blocks in order into a Double total (the same order as the small form's).
        nonisolated(unsafe) let (x, out) = (x, out)
        let blockCount = (n + 63) / 64
        // (Host memory that can fail with an error, not a trap: 1/64 of x.)
        let partials = try HostBuffer(count: blockCount * inner)
        withExtendedLifetime(partials) {
            nonisolated(unsafe) let partial = partials.pointer
            s.forEachRow { o in
                hostParallel(blockCount, costPerItem: Double(64 * inner)) { blocks in
                    for b in blocks {
                        let block = partial + b * inner
                        for j in 0..<inner { block[j] = Float(R.start) }
                        for k in b * 64..<Swift.min(n, b * 64 + 64) {
                            let row = x + o[0] + k * step
                            for j in 0..<inner { block[j] = R.combine(block[j], row[j]) }
                        }
                    }
                }
                hostParallel(inner, costPerItem: Double(blockCount)) { columns in
                    var totals = [Double](repeating: R.start, count: columns.count)
                    totals.withUnsafeMutableBufferPointer { total in
                        for b in 0..<blockCount {
                            let block = partial + b * inner + columns.lowerBound
                            for j in 0..<columns.count { total[j] = R.combine(total[j], Double(block[j])) }
                        }
                        for j in 0..<columns.count {
                            out[o[1] + (columns.lowerBound + j) * os] = Float(total[j]) * scale
                        }
                    }
                }
            }
        }
        return
    }
    s.forEachRow { o in
        for j in 0..<inner {
            let p = x + o[0] + j * xs
            var lanes = (R.start, R.start, R.start, R.start)
            var k = 0
            if step == 1 {
                while k + 4 <= n {
                    lanes = (R.combine(lanes.0, Double(p[k])), R.combine(lanes.1, Double(p[k + 1])),
                             R.combine(lanes.2, Double(p[k + 2])), R.combine(lanes.3, Double(p[k + 3])))
                    k += 4
                }
            }
            var acc = R.combine(R.combine(lanes.0, lanes.1), R.combine(lanes.2, lanes.3))
            while k < n {
                acc = R.combine(acc, Double(p[k * step]))
                k += 1
            }
            out[o[1] + j * os] = Float(acc) * scale
        }
    }
}

enum ReductionTable {
    static let sum = ReductionFunction("sum", "0.0f", "acc + v", SumReduction.self)
    // NaN propagates: once acc is NaN, v > acc is false and acc stays.
    static let max = ReductionFunction("max", "-INFINITY", "v > acc || isnan(v) ? v : acc", MaxReduction.self)
    static let min = ReductionFunction("min", "INFINITY", "v < acc || isnan(v) ? v : acc", MinReduction.self)
    static let all = [sum, max, min]
    static let argmax = KernelSource("reduce", "argmax")

    /// The table as the X-macro list reduce.cl expands.
    static let header = "#define REDUCTION_OPS(X) \\\n    "
        + all.map { "X(\($0.name), (\($0.identity)), (\($0.combine)))" }.joined(separator: " \\\n    ") + "\n"
}

/// The reduction of one axis: x's other axes as the output's (both layouts merged), the reduced axis' length and
/// stride.
private struct ReducedAxis {
    let operands: StridedOperands
    let n: Int
    let step: Int
    /// The output's shape with the axis removed.
    let shape: [Int]

    init(_ op: String, _ x: Tensor, axis k: Int, out: Tensor) {
        var kept = x.layout
        kept.shape.remove(at: k)
        kept.strides.remove(at: k)
        (n, step, shape) = (x.shape[k], x.strides[k], kept.shape)
        operands = StridedOperands([kept, Layout(shape: kept.shape, strides: Layout.rowMajorStrides(kept.shape),
                                                 offset: out.offset)])
    }
}

extension Tensor {
    /// f over axis `k` (no gradient recording), scaled by `scale`: the axis removed from the shape.
    func reductionKernel(_ f: ReductionFunction, axis k: Int, scale: Float = 1) throws -> Tensor {
        var outShape = shape
        outShape.remove(at: k)
        let out = try Tensor.empty(outShape, like: self)
        let r = ReducedAxis(f.name, self, axis: k, out: out)
        guard r.operands.fitsOneLaunch || !device.isOpenCL else {
            // (Dense, the other axes merge into at most two. An empty tensor counts as contiguous as it is: a new
            // one, with nothing to copy.)
            let dense = count == 0 ? try Tensor.empty(shape, like: self)
                : try Tensor.withoutGradients { try contiguous() }
            return try dense.reductionKernel(f, axis: k, scale: scale)
        }
        let s = r.operands
        try Tensor.run(f.name, views: true, self, out) { xp, op in
            try f.cpu(s, r.n, r.step, xp, op, scale)
        } opencl: { device, xb, ob in
            // A contiguous reduced axis: a work-group per output on a GPU (when the outputs are few enough to keep
            // it busy that way), a vectorised loop per output on a CPU-type device; else the strided loop.
            let cpu = device.rowLoop
            if r.step == 1, r.n > 1, cpu || r.n >= 256 && s.count <= 4 * 1024 {
                try groupReduce(f, device, xb, ob, r, scale: scale)
                return
            }
            // A CPU-type device, outputs contiguous in x and a wide row of them (a column sum): blocks of the axis
            // over whole rows first (x read in order), then the blocks, below.
            var (s, x, n, step) = (s, xb, r.n, r.step)
            if cpu, s.step(0) == 1, s.inner >= 256, r.n >= 2 * Self.reductionBlock {
                let blocks = (r.n + Self.reductionBlock - 1) / Self.reductionBlock
                let partial = try device.makeBuffer(count: s.rows * blocks * s.inner)
                try device.launch(try device.kernel(f.blocks), global: WorkSize(blocks, s.rows),
                                  local: WorkSize(1, 1)) { a in
                    try a.axes(s); try a.layout("x", xb, s, 0); try a.int("n", r.n); try a.int("stride", r.step)
                    try a.int("blocks", blocks); try a.buffer("partial", partial)
                }
                // The partial rows as x over the same axes: row-major, `blocks` rows of outputs per row of s.
                var strides = [Int](repeating: 1, count: s.shape.count), next = blocks * s.inner
                for k in stride(from: s.shape.count - 2, through: 0, by: -1) {
                    strides[k] = next
                    next *= s.shape[k]
                }
                s = StridedOperands([Layout(shape: s.shape, strides: strides, offset: 0),
                                     Layout(shape: s.shape, strides: s.strides[1], offset: s.offsets[1])])
                (x, n, step) = (partial, blocks, s.inner)
            }
            // NOTE: on a CPU-type device each work-item walks the whole axis for `width` neighbouring outputs: few,
            // long work-items, each its own work-group, or the driver may put them all in one group on one core.
            // Wide rows read memory in order (the prefetchers follow; 64 outputs read at half the speed of 256 on a
            // 2-core Skylake), narrower ones when that is what keeps every compute unit busy.
            var width = cpu ? StridedOperands.reductionColumns : 1
            while width > 16 && (s.inner + width - 1) / width * s.rows < 4 * device.info.computeUnits { width /= 2 }
            let global = WorkSize((s.inner + width - 1) / width, s.rows)
            try device.launch(try device.kernel(f.loop), global: global, local: cpu ? WorkSize(1, 1) : nil) { a in
                try a.axes(s); try a.layout("x", x, s, 0); try a.int("n", n); try a.int("stride", step)
                try a.int("width", width); try a.layout("out", ob, s, 1); try a.float("scale", scale)
            }
        }
        return out
    }

    private func groupReduce(_ f: ReductionFunction, _ device: OpenCLDevice, _ xb: CLBuffer, _ ob: CLBuffer,
                             _ r: ReducedAxis, scale: Float) throws {
        let kernel = try device.kernel(f.group)
        // A work-group of the largest power of two the kernel and local memory allow (at most 256) on a GPU; on a
        // CPU-type device each work-item reduces a whole output.
        let limit = Swift.min(256, kernel.maxWorkGroupSize, device.info.localMemory / MemoryLayout<Float>.size)
        var size = 1
        while size * 2 <= limit && !device.rowLoop { size *= 2 }
        func launch(_ s: StridedOperands, x: CLBuffer, n: Int, total: Int, out: CLBuffer, scale: Float) throws {
            try device.launch(kernel, global: WorkSize(s.inner * size, s.rows), local: WorkSize(size, 1)) { a in
                try a.axes(s); try a.layout("x", x, s, 0); try a.int("n", n); try a.int("stride", 1)
                try a.int("total", total); try a.layout("out", out, s, 1); try a.float("scale", scale)
                try a.local("scratch", floats: size)
            }
        }
        let s = r.operands
        // One output of a long axis: chunks reduced in parallel first, then the chunks' results.
        if s.count == 1, r.n >= 1 << 15 {
            let chunks = Swift.min(256, r.n >> 12)
            let chunk = (r.n + chunks - 1) / chunks
            let partial = try device.makeBuffer(count: chunks)
            let first = StridedOperands([Layout(shape: [chunks], strides: [chunk], offset: s.offsets[0]),
                                         Layout(contiguous: [chunks])])
            try launch(first, x: xb, n: chunk, total: r.n, out: partial, scale: 1)
            let second = StridedOperands([Layout(contiguous: [1]),
                                          Layout(shape: [1], strides: [1], offset: s.offsets[1])])
            try launch(second, x: partial, n: chunks, total: chunks, out: ob, scale: scale)
            return
        }
        try launch(s, x: xb, n: r.n, total: r.n * s.count, out: ob, scale: scale)
    }

    /// Rows of the reduced axis per block of `reduce_*_blocks` (reduce.cl's BLOCK).
    static let reductionBlock = 64

    /// The index along axis `k` of the largest element (first on ties, NaN largest), as floats; the axis removed.
    func argmaxKernel(axis k: Int) throws -> Tensor {
        guard shape[k] > 0 else {
            throw DeviceError.invalidArgument(op: "argmax", "axis \(k) of shape \(shape) is empty: no largest element")
        }
        // Indices are floats: whole numbers are exact up to 2^24 only.
        guard shape[k] <= 1 << 24 else {
            throw DeviceError.invalidArgument(op: "argmax", "axis \(k) of shape \(shape) is longer than 2^24 "
                + "(16777216): its indices, as floats, would not all be exact")
        }
        var outShape = shape
        outShape.remove(at: k)
        let out = try Tensor.empty(outShape, like: self)
        let r = ReducedAxis("argmax", self, axis: k, out: out)
        guard r.operands.fitsOneLaunch || !device.isOpenCL else {
            return try Tensor.withoutGradients { try contiguous() }.argmaxKernel(axis: k)
        }
        let s = r.operands
        try Tensor.run("argmax", views: true, self, out) { xp, op in
            s.forEachRow { o in
                for j in 0..<s.inner {
                    let base = o[0] + j * s.step(0)
                    var best = 0
                    for i in 1..<Swift.max(r.n, 1) where !xp[base + best * r.step].isNaN {
                        let v = xp[base + i * r.step]
                        if v > xp[base + best * r.step] || v.isNaN { best = i }
                    }
                    op[o[1] + j * s.step(1)] = Float(best)
                }
            }
        } opencl: { device, xb, ob in
            try device.launch(try device.kernel(ReductionTable.argmax), global: WorkSize(s.inner, s.rows)) { a in
                try a.axes(s); try a.layout("x", xb, s, 0); try a.int("n", r.n); try a.int("stride", r.step)
                try a.layout("out", ob, s, 1)
            }
        }
        return out
    }
}
