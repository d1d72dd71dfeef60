// Reductions along one axis (or all) of any layout (Kernels/reduce.cl). One table drives the kernels: a row is a
// reduction's name, identity and combining expression in OpenCL C, and its Swift function. The public ops and their
// backward rules are in Reduction+API.swift.

/// A reduction: the identity and how two partial results combine.
struct ReductionFunction: Sendable {
    let name: String
    /// OpenCL C.
    let identity: String
    /// OpenCL C in acc, v.
    let combine: String
    /// The CPU loop's identity and combination, in Double.
    let start: Double
    let apply: @Sendable (Double, Double) -> Double
    let loop: KernelSource
    let group: KernelSource

    init(_ name: String, _ identity: String, _ combine: String, start: Double,
         _ apply: @escaping @Sendable (Double, Double) -> Double) {
        (self.name, self.identity, self.combine, self.start, self.apply) = (name, identity, combine, start, apply)
        loop = KernelSource("reduce", "reduce_" + name)
        group = KernelSource("reduce", "reduce_\(name)_group")
    }
}

enum ReductionTable {
    static let sum = ReductionFunction("sum", "0.0f", "acc + v", start: 0, +)
    // NaN propagates: once acc is NaN, v > acc is false and acc stays.
    static let max = ReductionFunction("max", "-INFINITY", "v > acc || isnan(v) ? v : acc", start: -.infinity) {
        $1 > $0 || $1.isNaN ? $1 : $0
    }
    static let min = ReductionFunction("min", "INFINITY", "v < acc || isnan(v) ? v : acc", start: .infinity) {
        $1 < $0 || $1.isNaN ? $1 : $0
    }
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

    init(_ op: String, _ x: Tensor, axis k: Int, out: Tensor) throws {
        var kept = x.layout
        kept.shape.remove(at: k)
        kept.strides.remove(at: k)
        (n, step, shape) = (x.shape[k], x.strides[k], kept.shape)
        operands = try StridedOperands(op, [kept, Layout(shape: kept.shape, strides: Layout.rowMajorStrides(kept.shape),
                                                         offset: out.offset)])
    }
}

extension Tensor {
    /// f over axis `k` (no gradient recording), scaled by `scale`: the axis removed from the shape.
    func reductionKernel(_ f: ReductionFunction, axis k: Int, scale: Float = 1) throws -> Tensor {
        var outShape = shape
        outShape.remove(at: k)
        let out = try Tensor.empty(outShape, on: device)
        let r = try ReducedAxis(f.name, self, axis: k, out: out)
        let s = r.operands
        try Tensor.run(f.name, views: true, self, out) { xp, op in
            s.forEachRow { o in
                for j in 0..<s.inner {
                    var acc = f.start
                    let base = o[0] + j * s.step(0)
                    for i in 0..<r.n { acc = f.apply(acc, Double(xp[base + i * r.step])) }
                    op[o[1] + j * s.step(1)] = Float(acc) * scale
                }
            }
        } opencl: { device, xb, ob in
            // A long contiguous axis per output: a work-group each (or, for one long output, chunks first).
            if r.step == 1, r.n >= 256, s.count <= 4 * 1024 {
                try groupReduce(f, device, xb, ob, r, scale: scale)
                return
            }
            try device.run(f.loop, global: s.global) { a in
                try a.axes(s); try a.layout("x", xb, s, 0); try a.int("n", r.n); try a.int("stride", r.step)
                try a.layout("out", ob, s, 1); try a.float("scale", scale)
            }
        }
        return out
    }

    private func groupReduce(_ f: ReductionFunction, _ device: OpenCLDevice, _ xb: CLBuffer, _ ob: CLBuffer,
                             _ r: ReducedAxis, scale: Float) throws {
        let kernel = try device.kernel(f.group)
        let limit = Swift.min(256, kernel.maxWorkGroupSize, device.info.localMemory / MemoryLayout<Float>.size)
        var size = 1
        while size * 2 <= limit { size *= 2 }
        let s = r.operands
        func launch(_ s: StridedOperands, x: CLBuffer, n: Int, total: Int, out: CLBuffer, scale: Float) throws {
            try device.launch(kernel, global: WorkSize(s.inner * size, s.rows), local: WorkSize(size, 1)) { a in
                try a.axes(s); try a.layout("x", x, s, 0); try a.int("n", n); try a.int("stride", 1)
                try a.int("total", total); try a.layout("out", out, s, 1); try a.float("scale", scale)
                try a.local("scratch", floats: size)
            }
        }
        // One output of a long axis: chunks reduced by one work-group each, then the chunks' results.
        if s.count == 1, r.n >= 64 * size {
            let chunks = Swift.min(256, r.n / (16 * size))
            let chunk = (r.n + chunks - 1) / chunks
            let partial = try device.makeBuffer(count: chunks)
            let first = try StridedOperands(f.name, [Layout(shape: [chunks], strides: [chunk], offset: s.offsets[0]),
                                                     Layout(contiguous: [chunks])])
            try launch(first, x: xb, n: chunk, total: r.n, out: partial, scale: 1)
            let second = try StridedOperands(f.name, [Layout(contiguous: [1]),
                                                      Layout(shape: [1], strides: [1], offset: s.offsets[1])])
            try launch(second, x: partial, n: chunks, total: chunks, out: ob, scale: scale)
            return
        }
        try launch(s, x: xb, n: r.n, total: r.n * s.count, out: ob, scale: scale)
    }

    /// The index along axis `k` of the largest element (first on ties, NaN largest), as floats; the axis removed.
    func argmaxKernel(axis k: Int) throws -> Tensor {
        guard shape[k] > 0 else {
            throw DeviceError.invalidArgument(op: "argmax", "axis \(k) of shape \(shape) is empty: no largest element")
        }
        var outShape = shape
        outShape.remove(at: k)
        let out = try Tensor.empty(outShape, on: device)
        let r = try ReducedAxis("argmax", self, axis: k, out: out)
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
            try device.run(ReductionTable.argmax, global: s.global) { a in
                try a.axes(s); try a.layout("x", xb, s, 0); try a.int("n", r.n); try a.int("stride", r.step)
                try a.layout("out", ob, s, 1)
            }
        }
        return out
    }
}
