// 2-D convolution (NCHW) as the lessons build it: unfold the patches a window slides over into the columns of a
// matrix (im2col, Kernels/conv.cl), one matrix product with the flattened filters, the bias broadcast. im2col's
// backward (col2im: each input element sums the column entries that read it) is its rule on the tape; the product's
// and the bias's gradients come from `matmul` and `+`.

import CGemm
import Foundation

private let im2colKernel = KernelSource("conv", "im2col")
private let col2imKernel = KernelSource("conv", "col2im")
private let col2imPlanesKernel = KernelSource("conv", "col2im_planes")

/// The positions p in 0..<count whose tap p·stride + offset falls in 0..<size, as first..<end (empty: first ≥ end).
func insideRange(offset: Int, stride: Int, size: Int, count: Int) -> (first: Int, end: Int) {
    // The smallest p with p·stride + offset ≥ 0, and one past the largest with p·stride + offset ≤ size − 1.
    let first = offset >= 0 ? 0 : (-offset + stride - 1) / stride
    let last = size - 1 - offset
    let end = last < 0 ? 0 : min(last / stride + 1, count)
    return (min(first, count), end)
}

/// im2col's host loop: rows `rows` of the columns of the `dims[0]` images at `xp` (dims = N, C, H, W, OH, OW;
/// packed: `Window2d.packed`) into `cp`, whose rows are `columns` floats apart (N·OH·OW for the whole batch).
private func im2colHost(_ xp: UnsafeMutablePointer<Float>, _ cp: UnsafeMutablePointer<Float>, _ dims: [Int],
                        _ packed: [Int], rows: Range<Int>, columns: Int) {
    let (n, c, h, w, oh, ow) = (dims[0], dims[1], dims[2], dims[3], dims[4], dims[5])
    let (kh, kw) = (packed[0], packed[1])
    let (sy, sx, py0, px0, dy, dx) = (packed[2], packed[3], packed[4], packed[5], packed[6], packed[7])
    for row in rows {
        let (j, i, ch) = (row % kw, (row / kw) % kh, row / (kw * kh))
        // The outputs px whose tap j falls inside the row: z = px·sx − px0 + j·dx in 0..<w.
        let (first, end) = insideRange(offset: j * dx - px0, stride: sx, size: w, count: ow)
        var out = cp + row * columns
        for b in 0..<n {
            for py in 0..<oh {
                let y = py * sy - py0 + i * dy
                guard y >= 0, y < h, first < end else {
                    out.initialize(repeating: 0, count: ow)
                    out += ow
                    continue
                }
                let source = xp + ((b * c + ch) * h + y) * w + j * dx - px0
                out.initialize(repeating: 0, count: first)
                if sx == 1 {
                    (out + first).update(from: source + first, count: end - first)
                } else {
                    for px in first..<end { out[px] = source[px * sx] }
                }
                (out + end).initialize(repeating: 0, count: ow - end)
                out += ow
            }
        }
    }
}

/// col2im's host loop: planes `planes` (n·C + c) of the images at `xp` from the columns at `cp` (rows `columns`
/// floats apart), plane by plane — zeros, then every column entry that reads the plane added where it read, tap by
/// tap (as conv.cl's col2im_planes): no two planes share an element, so threads may split the planes.
private func col2imHost(_ cp: UnsafeMutablePointer<Float>, _ xp: UnsafeMutablePointer<Float>, _ dims: [Int],
                        _ packed: [Int], planes: Range<Int>, columns: Int) {
    let (c, h, w, oh, ow) = (dims[1], dims[2], dims[3], dims[4], dims[5])
    let (kh, kw) = (packed[0], packed[1])
    let (sy, sx, py0, px0, dy, dx) = (packed[2], packed[3], packed[4], packed[5], packed[6], packed[7])
    for plane in planes {
        let (ch, b) = (plane % c, plane / c)
        let out = xp + plane * h * w
        out.initialize(repeating: 0, count: h * w)
        for i in 0..<kh {
            for j in 0..<kw {
                let row = cp + ((ch * kh + i) * kw + j) * columns + b * oh * ow
                let (first, end) = insideRange(offset: j * dx - px0, stride: sx, size: w, count: ow)
                guard first < end else { continue }
                for py in 0..<oh {
                    let y = py * sy - py0 + i * dy
                    guard y >= 0, y < h else { continue }
                    let target = out + y * w + j * dx - px0, source = row + py * ow
                    for px in first..<end { target[px * sx] += source[px] }
                }
            }
        }
    }
}

extension Window2d {
    /// The output's height and width over an input of `height` × `width` (PyTorch's formula).
    /// - Throws: `DeviceError.invalidArgument` naming `op` for a size, stride or dilation outside 1...2²⁰, padding
    ///   outside 0...2²⁰, or a (dilated) window larger than the padded input.
    public func outputSize(height: Int, width: Int, op: String) throws -> (height: Int, width: Int) {
        try check(op: op)
        func along(_ axis: String, _ size: Int, _ k: Int, _ p: Int, _ d: Int) throws -> Int {
            guard let length = outputLength(size, alongHeight: axis == "height") else {
                let extent = d * (k - 1) + 1
                throw DeviceError.invalidArgument(op: op, "the window spans \(extent) along the \(axis) (kernel \(k), "
                    + "dilation \(d)), more than the padded input's \(size + 2 * p) (\(size) + 2·\(p) padding)")
            }
            return length
        }
        return (try along("height", height, kernelHeight, paddingHeight, dilationHeight),
                try along("width", width, kernelWidth, paddingWidth, dilationWidth))
    }

    /// Checks the window's own values: kernel, stride and dilation in 1...2²⁰, padding in 0...2²⁰ (so that no sum or
    /// product of them overflows, here or in the kernels' ints).
    /// - Throws: `DeviceError.invalidArgument` naming `op`, the axis and the values.
    public func check(op: String) throws {
        guard !isInRange else { return }
        let limit = 1 << 20
        for (axis, k, s, p, d) in [("height", kernelHeight, strideHeight, paddingHeight, dilationHeight),
                                   ("width", kernelWidth, strideWidth, paddingWidth, dilationWidth)] {
            guard (1...limit).contains(k), (1...limit).contains(s), (1...limit).contains(d), (0...limit).contains(p)
            else {
                throw DeviceError.invalidArgument(op: op, "the window's \(axis) needs kernel, stride and dilation in "
                    + "1...\(limit) and padding in 0...\(limit), got kernel \(k), stride \(s), padding \(p), "
                    + "dilation \(d)")
            }
        }
    }

    /// (kh, kw, stride h, stride w, pad h, pad w, dilation h, dilation w): conv.cl's `window`.
    var packed: [Int] {
        [kernelHeight, kernelWidth, strideHeight, strideWidth, paddingHeight, paddingWidth, dilationHeight,
         dilationWidth]
    }
}

extension Tensor {
    /// (N, C, H, W) of a 4-d tensor, or an error naming `op`.
    func nchw(_ op: String) throws -> (n: Int, c: Int, h: Int, w: Int) {
        guard shape.count == 4 else {
            throw DeviceError.invalidArgument(op: op, "expects NCHW input (4 axes: batch, channels, height, width), "
                + "got shape \(shape)")
        }
        return (shape[0], shape[1], shape[2], shape[3])
    }

    /// The patches `window` slides over, as the columns of a matrix: self [N, C, H, W] → [C·kh·kw, N·OH·OW], row
    /// (c, i, j) holding tap (i, j) of channel c at every window position (n, oh, ow), zero where the tap falls in
    /// the padding. Reads any layout (a view through a contiguous copy). Recorded on the tape (col2im).
    public func im2col(_ window: Window2d) throws -> Tensor {
        let (n, c, h, w) = try nchw("im2col")
        let (oh, ow) = try window.outputSize(height: h, width: w, op: "im2col")
        let (kh, kw) = (window.kernelHeight, window.kernelWidth)
        let (rows, columns) = (c * kh * kw, n * oh * ow)
        let x = isDense ? self : try Tensor.withoutGradients { try contiguous() }
        let cols = try Tensor.empty([rows, columns], on: device)
        let dims = [n, c, h, w, oh, ow], packed = window.packed
        try Tensor.run("im2col", x, cols) { xp, cp in
            nonisolated(unsafe) let (xp, cp) = (xp, cp)
            hostParallel(rows, costPerItem: Double(columns)) { rowRange in
                im2colHost(xp, cp, dims, packed, rows: rowRange, columns: columns)
            }
        } opencl: { device, xb, cb in
            try device.runGather(im2colKernel, dims, packed, outputs: columns, rows: rows) { a in
                try a.buffer("x", xb); try a.buffer("cols", cb)
            }
        }
        let inputShape = shape
        return cols.recorded("im2col", from: [self]) { g in
            [try Tensor.col2im(g.isDense ? g : try g.contiguous(), window, shape: inputShape)]
        }
    }

    /// im2col's gradient: cols [C·kh·kw, N·OH·OW] → [N, C, H, W] of `shape`, each element the sum of the column
    /// entries that read it. Dense operands only.
    static func col2im(_ cols: Tensor, _ window: Window2d, shape: [Int], into out: Tensor? = nil) throws -> Tensor {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (oh, ow) = try window.outputSize(height: h, width: w, op: "col2im")
        let (kh, kw) = (window.kernelHeight, window.kernelWidth)
        try requireShape("col2im (columns)", cols, [c * kh * kw, n * oh * ow])
        let x = try output("col2im", out, shape, on: cols.device, reading: [cols])
        let dims = [n, c, h, w, oh, ow], packed = window.packed, columns = n * oh * ow
        try Tensor.run("col2im", cols, x) { cp, xp in
            nonisolated(unsafe) let (cp, xp) = (cp, xp)
            hostParallel(n * c, costPerItem: Double(kh * kw) * Double(oh * ow)) { planes in
                col2imHost(cp, xp, dims, packed, planes: planes, columns: columns)
            }
        } opencl: { device, cb, xb in
            // A CPU-type device scatters plane by plane (no division per tap); a GPU gathers element by element.
            try device.runGather(device.rowLoop ? col2imPlanesKernel : col2imKernel, dims, packed,
                                 outputs: device.rowLoop ? n * c : n * c * h * w, perItem: !device.rowLoop) { a in
                try a.buffer("cols", cb); try a.buffer("x", xb)
            }
        }
        return x
    }

    /// 2-D convolution, as PyTorch's `F.conv2d` with one group: self [N, C, H, W], weight [O, C, kh, kw], bias [O]
    /// → [N, O, OH, OW]. The product of the flattened filters with the input's patches (`im2col`), recorded on the
    /// tape: gradients for the input, the weight and the bias.
    ///
    /// ```swift
    /// let x = try Tensor.randn([64, 1, 28, 28], seed: 1, on: device)
    /// let w = try Tensor.randn([32, 1, 3, 3], seed: 2, std: 0.3, on: device), b = try Tensor.zeros([32], on: device)
    /// w.requiresGrad = true
    /// let y = try x.conv2d(w, bias: b, padding: 1)        // [64, 32, 28, 28]
    /// try y.clamped(min: 0).mean().backward()             // w.grad: [32, 1, 3, 3]
    /// ```
    /// - Throws: `DeviceError.invalidArgument` naming conv2d for input that is not NCHW, a weight that is not
    ///   [O, C, kh, kw] for the input's C channels, a bias that is not [O], a window larger than the padded input,
    ///   or a stride or dilation below 1; a device mismatch names both devices.
    public func conv2d(_ weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0,
                       dilation: Int = 1) throws -> Tensor {
        try conv2d(weight, bias: bias, stride: (stride, stride), padding: (padding, padding),
                   dilation: (dilation, dilation))
    }

    /// The same with a window that differs between the axes: each of `stride`, `padding`, `dilation` is (height,
    /// width).
    public func conv2d(_ weight: Tensor, bias: Tensor? = nil, stride: (Int, Int), padding: (Int, Int),
                       dilation: (Int, Int)) throws -> Tensor {
        let (n, c, h, w) = try nchw("conv2d")
        guard weight.shape.count == 4 else {
            throw DeviceError.invalidArgument(op: "conv2d", "expects a weight of shape [out channels, in channels, "
                + "kernel height, kernel width], got \(weight.shape)")
        }
        let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        guard weight.shape[1] == c else {
            throw DeviceError.invalidArgument(op: "conv2d", "the input has \(c) channels (shape \(shape)) but the "
                + "weight \(weight.shape) takes \(weight.shape[1])")
        }
        if let bias, bias.shape != [o] {
            throw DeviceError.invalidArgument(op: "conv2d", "the bias has shape \(bias.shape), the weight's \(o) "
                + "output channels need [\(o)]")
        }
        for other in [weight] + (bias.map { [$0] } ?? []) where other.device != device {
            throw DeviceError.deviceMismatch(op: "conv2d", device, other.device)
        }
        let window = Window2d(kernel: (kh, kw), stride: stride, padding: padding, dilation: dilation)
        let (oh, ow) = try window.outputSize(height: h, width: w, op: "conv2d")
        guard (try? Tensor.checkedCount([n, o, oh, ow])) != nil else {
            throw DeviceError.invalidArgument(op: "conv2d", "the output [\(n), \(o), \(oh), \(ow)] has too many "
                + "elements (a tensor holds at most 2^31 − 1)")
        }
        let x = isDense ? self : try Tensor.withoutGradients { try contiguous() }
        let wt = weight.isDense ? weight : try Tensor.withoutGradients { try weight.contiguous() }
        let bt = try bias.map { b in b.isDense ? b : try Tensor.withoutGradients { try b.contiguous() } }
        let shape = ConvShape(n: n, c: c, h: h, w: w, o: o, oh: oh, ow: ow, window: window)
        let (y, cols) = try Tensor.withoutGradients { try shape.forward(x, wt, bt) }
        let (xs, ws) = (x.detached(), wt.detached())
        // The patches serve only the weight's gradient: a frozen weight's op does not hold them for as long as the
        // tape does (no backward asks for that gradient: whether a leaf takes one through an op is fixed here).
        let patches = weight.requiresGrad ? cols : nil
        return y.recorded("conv2d", from: [self, weight] + (bias.map { [$0] } ?? []), saving: [xs, ws]) { g, needs in
            let g = g.isDense ? g : try g.contiguous()
            // A parameter's gradient is written straight into its own buffer when it has one.
            let wDestination = needs[1] ? needs.destination(1) : nil
            let bDestination = bias != nil && needs[2] ? needs.destination(2) : nil
            let none = try Tensor.empty([1], on: g.device)
            let dx = needs[0] ? try Tensor.empty(xs.shape, on: g.device) : nil
            let dw = needs[1] ? try wDestination?.tensor ?? Tensor.empty(ws.shape, on: g.device) : nil
            let db = bias != nil && needs[2] ? try bDestination?.tensor ?? Tensor.empty([o], on: g.device) : nil
            try Tensor.withoutGradients {
                try shape.backward(g, xs, ws, cols: patches, dx: dx ?? none, dw: dw ?? none, db: db ?? none,
                                   needs: (dx != nil, dw != nil, db != nil),
                                   accumulate: (wDestination?.accumulate ?? false, bDestination?.accumulate ?? false))
            }
            return [dx, wDestination == nil ? dw : nil] + (bias != nil ? [bDestination == nil ? db : nil] : [])
        }
    }
}

/// One convolution's sizes: input [N, C, H, W], weight [O, C, kh, kw], output [N, O, OH, OW].
///
/// On cpu a convolution runs image by image: the image's patches unfolded into a scratch matrix that stays in the
/// core's cache ([C·kh·kw, OH·OW]), one product with the filters written straight into the image's output planes,
/// the bias added there; the images split across the cores. Its backward does the same per image: the weight's
/// gradient summed over each core's images, the patches' gradient folded back into the image (col2im). On OpenCL it
/// is the lessons' form: `im2col` of the whole batch, one product with the tuned GEMM kernels, the [O, N·OH·OW]
/// result written out as NCHW with the bias in one pass.
private struct ConvShape {
    let n, c, h, w, o, oh, ow: Int
    let window: Window2d
    var taps: Int { c * window.kernelHeight * window.kernelWidth }
    var positions: Int { oh * ow }

    /// On OpenCL the batch's patches are one tensor: an error naming `op` and the batch that would fit when they
    /// pass a tensor's limit (2³¹ − 1 elements), rather than one naming the patches' shape.
    func checkUnfoldedSize(op: String) throws {
        let perImage = taps * positions
        guard perImage > 0, n > Int(Int32.max) / perImage else { return }
        let fits = Int(Int32.max) / perImage
        throw DeviceError.invalidArgument(op: op, "on OpenCL a convolution unfolds the batch's patches into one "
            + "[C·kh·kw, N·OH·OW] = [\(taps), \(n)·\(positions)] matrix, over a tensor's 2^31 − 1 elements: "
            + (fits > 0 ? "pass at most \(fits) images at a time" : "one image's patches are already over it")
            + " (or run it on cpu, image by image)")
    }

    /// y = conv(x, weight) + bias, dense operands; on OpenCL also the batch's patches (`im2col`), for the backward
    /// (which needs them for the weight's gradient: kept rather than unfolded again, 4·C·kh·kw·N·OH·OW bytes for as
    /// long as the tape holds the op).
    func forward(_ x: Tensor, _ weight: Tensor, _ bias: Tensor?) throws -> (y: Tensor, cols: Tensor?) {
        let y = try Tensor.empty([n, o, oh, ow], on: x.device)
        nonisolated(unsafe) var cols: Tensor?
        let b = try bias ?? Tensor.empty([1], on: x.device)
        let (taps, positions, dims, packed, o, hasBias) = (taps, positions, [1, c, h, w, oh, ow], window.packed, o,
                                                           bias != nil)
        let imageSize = c * h * w
        try Tensor.run("conv2d", x, weight, b, y) { xp, wp, bp, yp in
            nonisolated(unsafe) let (xp, wp, bp, yp) = (xp, wp, bp, yp)
            try perImage { image, scratch in
                let out = yp + image * o * positions
                im2colHost(xp + image * imageSize, scratch.cols, dims, packed, rows: 0..<taps, columns: positions)
                try scratch.gemm(wp, scratch.cols, out, m: o, n: positions, k: taps, transA: false, transB: false,
                                 beta: 0)
                if hasBias {
                    for f in 0..<o {
                        let row = out + f * positions, v = bp[f]
                        for q in 0..<positions { row[q] += v }
                    }
                }
            }
        } opencl: { _, _, _, _, _ in
            try checkUnfoldedSize(op: "conv2d")
            let patches = try x.im2col(window)
            cols = patches
            let product = try weight.reshaped([o, taps]).matmul(patches)  // [O, N·OH·OW]
            let planes = try product.reshaped([o, n, positions]).permuted([1, 0, 2])
            let out = try y.reshaped([n, o, positions])
            if let bias {
                try Tensor.binaryKernel(PointwiseTable.add, planes, try bias.reshaped([o, 1]), into: out)
            } else {
                try Tensor.unaryKernel(PointwiseTable.copy, planes, into: out)
            }
        }
        return (y, cols)
    }

    /// The gradients of a convolution from the output's gradient g (dense): into dx, dw and db those that `needs`
    /// asks for (the others are placeholders), dw and db added to when `accumulate` says so. `cols`: the forward's
    /// patches of x on OpenCL (unfolded again when nil).
    func backward(_ g: Tensor, _ x: Tensor, _ weight: Tensor, cols: Tensor?, dx: Tensor, dw: Tensor, db: Tensor,
                  needs: (x: Bool, w: Bool, b: Bool), accumulate: (w: Bool, b: Bool)) throws {
        let (taps, positions, dims, packed, o) = (taps, positions, [1, c, h, w, oh, ow], window.packed, o)
        let (imageSize, outSize, n) = (c * h * w, o * positions, n)
        try Tensor.run("conv2d backward", g, x, weight, dx, dw, db) { gp, xp, wp, dxp, dwp, dbp in
            nonisolated(unsafe) let (gp, xp, wp, dxp) = (gp, xp, wp, dxp)
            // Each chunk of images sums its own weight and bias gradients; the chunks' sums are added at the end.
            let partials = try perImage(partial: needs.w || needs.b ? o * taps + o : 0) { image, scratch in
                let gi = gp + image * outSize
                let first = scratch.images == 1
                if needs.w {
                    im2colHost(xp + image * imageSize, scratch.cols, dims, packed, rows: 0..<taps, columns: positions)
                    // dW += g_image · cols_imageᵀ: [O, OH·OW]·[OH·OW, C·kh·kw]
                    try scratch.gemm(gi, scratch.cols, scratch.partial!, m: o, n: taps, k: positions, transA: false,
                                     transB: true, beta: first ? 0 : 1)
                }
                if needs.b {
                    let sums = scratch.partial! + o * taps
                    for f in 0..<o {
                        var acc: Float = 0
                        let row = gi + f * positions
                        for q in 0..<positions { acc += row[q] }
                        sums[f] = first ? acc : sums[f] + acc
                    }
                }
                if needs.x {
                    // dcols = Wᵀ · g_image: [C·kh·kw, O]·[O, OH·OW], folded back into the image's planes.
                    try scratch.gemm(wp, gi, scratch.cols, m: taps, n: positions, k: o, transA: true, transB: false,
                                     beta: 0)
                    col2imHost(scratch.cols, dxp + image * imageSize, dims, packed, planes: 0..<c, columns: positions)
                }
            }
            if needs.w { Self.sum(partials, at: 0, count: o * taps, into: dwp, accumulate: accumulate.w) }
            if needs.b { Self.sum(partials, at: o * taps, count: o, into: dbp, accumulate: accumulate.b) }
        } opencl: { _, _, _, _, _, _, _ in
            // The output's gradient as the product's: [N, O, OH·OW] → [O, N·OH·OW].
            let gt = try g.reshaped([n, o, positions]).permuted([1, 0, 2]).contiguous().reshaped([o, n * positions])
            let w2 = try weight.reshaped([o, taps])
            if needs.w {
                try gt.matmul(try cols ?? x.im2col(window), transposeOther: true, accumulate: accumulate.w,
                              into: try dw.reshaped([o, taps]))
            }
            if needs.b {
                let sums = try gt.sum(axis: 1)
                if accumulate.b {
                    try Tensor.binaryKernel(PointwiseTable.add, db, sums, into: db)
                } else {
                    try Tensor.unaryKernel(PointwiseTable.copy, sums, into: db)
                }
            }
            if needs.x {
                _ = try Tensor.col2im(try w2.matmul(gt, transposeSelf: true), window, shape: x.shape, into: dx)
            }
        }
    }

    /// Per-chunk buffers of the host loop: the image's unfolded patches, the GEMM's pack buffer, and the chunk's
    /// partial sums when asked for.
    final class Scratch: @unchecked Sendable {
        let cols: UnsafeMutablePointer<Float>
        let partial: UnsafeMutablePointer<Float>?
        /// Images done by this chunk so far, counting the current one.
        var images = 0
        /// Whether the product may use all cores (a single chunk: one image, or one core).
        let threaded: Bool
        private let buffers: [HostBuffer]
        init(cols: Int, partial: Int, threaded: Bool) throws {
            var buffers = [try HostBuffer(count: cols)]
            if partial > 0 { buffers.append(try HostBuffer(count: partial)) }
            if !threaded { buffers.append(try HostBuffer(count: clnn_sgemm_pack_floats())) }
            self.buffers = buffers
            self.cols = buffers[0].pointer
            self.partial = partial > 0 ? buffers[1].pointer : nil
            self.threaded = threaded
        }

        /// C = op(A)·op(B) + beta·C of dense row-major matrices: on this chunk's thread, or threaded when the chunk
        /// is the only one.
        func gemm(_ a: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                  m: Int, n: Int, k: Int, transA: Bool, transB: Bool, beta: Float) throws {
            if threaded {
                return try matmulBlocked(a, b, c, m: m, n: n, k: k, transA: transA, transB: transB, beta: beta)
            }
            let (aRow, aCol) = transA ? (1, m) : (k, 1), (bRow, bCol) = transB ? (1, k) : (n, 1)
            clnn_sgemm_rows(Int32(m), Int32(n), Int32(k), a, aRow, aCol, b, bRow, bCol, c, beta, 0, Int32(m),
                            buffers.last!.pointer)
        }
    }

    /// Runs `body` for every image, the images split into one chunk per core, each chunk with its own `Scratch`
    /// (and `partial` floats of partial sums). Returns the chunks' scratch, in order.
    @discardableResult
    func perImage(partial: Int = 0, _ body: @Sendable (Int, Scratch) throws -> Void) throws -> [Scratch] {
        let chunks = max(1, min(hostThreads, n))
        let scratch = try (0..<chunks).map { _ in
            try Scratch(cols: taps * positions, partial: partial, threaded: chunks == 1)
        }
        let per = (n + chunks - 1) / chunks
        let failure = ErrorBox()
        poolRun(chunks) { chunk in
            for image in (chunk * per)..<min(n, (chunk + 1) * per) {
                scratch[chunk].images += 1
                do { try body(image, scratch[chunk]) } catch {
                    failure.set(error)
                    return
                }
            }
        }
        if let error = failure.error { throw error }
        return scratch.filter { $0.images > 0 }
    }

    /// out[i] = (accumulate ? out[i] : 0) + Σ over the chunks of their partial sum i (floats at..<at + count).
    static func sum(_ partials: [Scratch], at: Int, count: Int, into out: UnsafeMutablePointer<Float>,
                    accumulate: Bool) {
        if !accumulate { out.initialize(repeating: 0, count: count) }
        for scratch in partials {
            let p = scratch.partial! + at
            for i in 0..<count { out[i] += p[i] }
        }
    }
}

/// The first error thrown by any of several threads.
private final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var error: Error?
    func set(_ error: Error) {
        lock.lock()
        defer { lock.unlock() }
        if self.error == nil { self.error = error }
    }
}

extension OpenCLDevice {
    /// How many neighbouring outputs one work-item of a gather kernel (im2col, col2im, pooling) writes: on a device
    /// that runs work-items as loops (a CPU type: `rowLoop`) long runs in order, each its own work-group — about 32
    /// work-groups per compute unit in all (a work-group costs the driver a task: POCL ~1-2 µs), at least 256 outputs
    /// each unless that would leave compute units idle; 1 on a GPU, where neighbouring work-items write neighbours.
    func gatherWidth(_ items: Int, rows: Int = 1) -> Int {
        guard rowLoop else { return 1 }
        let groups = 32 * max(info.computeUnits, 1)
        var width = max(256, (items * rows + groups - 1) / groups)
        while width > 1 && (items + width - 1) / width * rows < 4 * info.computeUnits { width /= 2 }
        return max(1, min(width, items))
    }

    /// Launches a window kernel (conv.cl, pool.cl: `dims`, `window`, `width`, then `buffers`) over `outputs` outputs,
    /// `gatherWidth` of them per work-item.
    /// `perItem` false: the kernel takes one output (a whole plane) per work-item, width 1.
    func runGather(_ source: KernelSource, _ dims: [Int], _ window: [Int], outputs: Int, rows: Int = 1,
                   perItem: Bool = true, _ buffers: (inout KernelArguments) throws -> Void) throws {
        let width = perItem ? gatherWidth(outputs, rows: rows) : 1
        try launch(try kernel(source), global: rows == 1 ? WorkSize((outputs + width - 1) / width)
                                                         : WorkSize((outputs + width - 1) / width, rows),
                   local: rowLoop ? (rows == 1 ? WorkSize(1) : WorkSize(1, 1)) : nil) { a in
            try a.int8("dims", dims); try a.int8("window", window); try a.int("width", width)
            try buffers(&a)
        }
    }
}

extension OpCheck {
    /// Convolutions on odd sizes — a 5x7 image of 3 channels, stride 2, padding 2, dilation 2, a batch of 1 —
    /// against a direct Double convolution, and the gradients of Σ y·r for input, weight and bias against the same
    /// sums written out in Double.
    static var convChecks: [OpCheck] {
        let cases: [(n: Int, c: Int, h: Int, w: Int, o: Int, k: (Int, Int), s: (Int, Int), p: (Int, Int),
                     d: (Int, Int))] = [
            (2, 3, 5, 7, 4, (3, 3), (1, 1), (1, 1), (1, 1)),
            (1, 3, 5, 7, 2, (3, 2), (2, 1), (2, 0), (2, 1)),
            (3, 2, 9, 6, 5, (1, 1), (2, 2), (0, 0), (1, 1)),
        ]
        return cases.map { n, c, h, w, o, k, s, p, d in
            let window = Window2d(kernel: k, stride: s, padding: p, dilation: d)
            let (oh, ow) = (try? window.outputSize(height: h, width: w, op: "check")) ?? (0, 0)
            let xv = values(n * c * h * w, seed: 101), wv = values(o * c * k.0 * k.1, seed: 102)
            let bv = values(o, seed: 103), rv = values(n * o * oh * ow, seed: 104)
            // The input element each tap reads at each output position, or nil in the padding.
            @Sendable func tap(_ b: Int, _ ch: Int, _ y: Int, _ x: Int, _ i: Int, _ j: Int) -> Int? {
                let (r, q) = (y * s.0 - p.0 + i * d.0, x * s.1 - p.1 + j * d.1)
                return r >= 0 && r < h && q >= 0 && q < w ? ((b * c + ch) * h + r) * w + q : nil
            }
            let taps = (0..<c).flatMap { ch in (0..<k.0).flatMap { i in (0..<k.1).map { j in (ch, i, j) } } }
            @Sendable func weightIndex(_ f: Int, _ ch: Int, _ i: Int, _ j: Int) -> Int { ((f * c + ch) * k.0 + i) * k.1 + j }
            return OpCheck("conv2d", "\(n)x\(c)x\(h)x\(w) k\(k.0)x\(k.1) s\(s.0) p\(p.0) d\(d.0)", rtol: 1e-4,
                           atol: 1e-4, compute: { device in
                let x = try Tensor(xv, shape: [n, c, h, w], on: device)
                let weight = try Tensor(wv, shape: [o, c, k.0, k.1], on: device)
                let bias = try Tensor(bv, shape: [o], on: device)
                for t in [x, weight, bias] { t.requiresGrad = true }
                let y = try x.conv2d(weight, bias: bias, stride: s, padding: p, dilation: d)
                try (y * (try Tensor(rv, shape: [n, o, oh, ow], on: device))).sum().backward()
                return [y] + (try [x, weight, bias].map { try $0.grad ?? Tensor.zeros($0.shape, on: device) })
            }, reference: {
                var y = [Double](repeating: 0, count: n * o * oh * ow)
                var dx = [Double](repeating: 0, count: xv.count), dw = [Double](repeating: 0, count: wv.count)
                var db = [Double](repeating: 0, count: o)
                for b in 0..<n {
                    for f in 0..<o {
                        for py in 0..<oh {
                            for px in 0..<ow {
                                let out = ((b * o + f) * oh + py) * ow + px
                                var acc = Double(bv[f])
                                let r = Double(rv[out])
                                db[f] += r
                                for (ch, i, j) in taps {
                                    guard let at = tap(b, ch, py, px, i, j) else { continue }
                                    let wi = weightIndex(f, ch, i, j)
                                    acc += Double(xv[at]) * Double(wv[wi])
                                    dx[at] += r * Double(wv[wi])
                                    dw[wi] += r * Double(xv[at])
                                }
                                y[out] = acc
                            }
                        }
                    }
                }
                return [y, dx, dw, db]
            })
        }
    }
}
