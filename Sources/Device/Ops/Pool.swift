// 2-D pooling (NCHW): the largest value under a sliding window (max pooling, its gradient routed to that value) and
// the mean (average pooling, the padding's zeros counted as PyTorch's default does). Kernels/pool.cl holds both
// forwards and both gradients, each gradient a gather over the window positions that read an element; the CPU loops
// below are the same computations, the reference the kernels are checked against.

private let maxPoolKernel = KernelSource("pool", "max_pool2d")
private let maxPoolRowsKernel = KernelSource("pool", "max_pool2d_2x2_rows")
private let maxPoolBackwardKernel = KernelSource("pool", "max_pool2d_backward")
private let maxPoolBackwardPlanesKernel = KernelSource("pool", "max_pool2d_backward_planes")
private let avgPoolKernel = KernelSource("pool", "avg_pool2d")
private let avgPoolBackwardKernel = KernelSource("pool", "avg_pool2d_backward")

/// The host form of pool.cl's `window_argmax`: the first tap of window position (oh, ow) over one channel plane that
/// holds its largest value (a NaN wins), as h·W + w, or −1 when every tap lies in the padding.
private func windowArgmax(_ plane: UnsafeMutablePointer<Float>, h: Int, w: Int, _ k: Window2d, oh: Int, ow: Int)
    -> Int {
    var best = -1
    var m: Float = 0
    let (top, left) = (oh * k.strideHeight - k.paddingHeight, ow * k.strideWidth - k.paddingWidth)
    for i in 0..<k.kernelHeight {
        let y = top + i * k.dilationHeight
        guard y >= 0, y < h else { continue }
        for j in 0..<k.kernelWidth {
            let x = left + j * k.dilationWidth
            guard x >= 0, x < w else { continue }
            let v = plane[y * w + x]
            if best < 0 || (!m.isNaN && (v > m || v.isNaN)) { (best, m) = (y * w + x, v) }
        }
    }
    return best
}

/// The window positions (oh, ow) whose window reads element (y, x) of a plane, as col2im finds them.
private func positionsReading(y: Int, x: Int, _ k: [Int], oh: Int, ow: Int, _ body: (Int, Int) -> Void) {
    for i in 0..<k[0] {
        let t = y + k[4] - i * k[6]
        guard t >= 0, t % k[2] == 0, t / k[2] < oh else { continue }
        for j in 0..<k[1] {
            let u = x + k[5] - j * k[7]
            guard u >= 0, u % k[3] == 0, u / k[3] < ow else { continue }
            body(t / k[2], u / k[3])
        }
    }
}

extension Tensor {
    /// The largest value under each position of `window` (PyTorch's `F.max_pool2d`): self [N, C, H, W] →
    /// [N, C, OH, OW]. The padding never wins (it is −∞; a window entirely in the padding gives −∞); a NaN under
    /// the window wins (the first, where PyTorch routes the gradient to the last). Recorded on the tape: the gradient
    /// goes to the element that won (the first, on a tie). Reads any layout.
    /// - Throws: `DeviceError.invalidArgument` naming max_pool2d for input that is not NCHW, a window larger than
    ///   the padded input, or padding above half the kernel, as PyTorch.
    public func maxPool2d(_ window: Window2d) throws -> Tensor {
        let (n, c, h, w) = try nchw("max_pool2d")
        let (oh, ow) = try window.outputSize(height: h, width: w, op: "max_pool2d")
        for (axis, k, p) in [("height", window.kernelHeight, window.paddingHeight),
                             ("width", window.kernelWidth, window.paddingWidth)] where p > k / 2 {
            throw DeviceError.invalidArgument(op: "max_pool2d", "padding \(p) along the \(axis) is more than half the "
                + "kernel \(k)")
        }
        let x = isDense ? self : try Tensor.withoutGradients { try contiguous() }
        // `indices`: the plane index each output came from, the int's bits in a float (what the gradient reads).
        let (y, indices) = (try Tensor.empty([n, c, oh, ow], on: device), try Tensor.empty([n, c, oh, ow], on: device))
        let dims = [n, c, h, w, oh, ow], k = window.packed
        try Tensor.run("max_pool2d", x, y, indices) { xp, yp, ip in
            nonisolated(unsafe) let (xp, yp, ip) = (xp, yp, ip)
            // Without padding every tap of every window is inside the plane: no bounds to check.
            let inside = window.paddingHeight == 0 && window.paddingWidth == 0
            let (kh, kw, sy, sx, dy, dx) = (k[0], k[1], k[2], k[3], k[6], k[7])
            hostParallel(n * c, costPerItem: Double(oh * ow) * Double(k[0] * k[1])) { planes in
                if inside && kh == 2 && kw == 2 && dy == 1 && dx == 1 {
                    // The common 2x2 window, unrolled: the same rule as the loop below.
                    for plane in planes {
                        let source = xp + plane * h * w
                        var o = plane * oh * ow
                        for py in 0..<oh {
                            let top = py * sy * w
                            var px = 0
                            if sx == 2 {
                                // Four windows at a time from two rows of eight (window q's taps are lanes 2q and
                                // 2q + 1), with vector selects: scalar selects compile to jumps that mispredict.
                                let (upperRow, lowerRow) = (UnsafeRawPointer(source + top),
                                                            UnsafeRawPointer(source + top + w))
                                let lanes = SIMD4<Int32>(0, 2, 4, 6) &+ Int32(top)
                                while px + 4 <= ow {
                                    let offset = 2 * px * MemoryLayout<Float>.size
                                    let upper = upperRow.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
                                    let lower = lowerRow.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
                                    let base = lanes &+ Int32(2 * px)
                                    var (m, at) = (upper.evenHalf, base)
                                    @inline(__always) func take(_ v: SIMD4<Float>, _ tap: SIMD4<Int32>) {
                                        let wins = (m .== m) .& ((v .> m) .| (v .!= v))
                                        m.replace(with: v, where: wins)
                                        at.replace(with: tap, where: wins)
                                    }
                                    take(upper.oddHalf, base &+ 1)
                                    take(lower.evenHalf, base &+ Int32(w))
                                    take(lower.oddHalf, base &+ Int32(w + 1))
                                    UnsafeMutableRawPointer(yp + o).storeBytes(of: m, as: SIMD4<Float>.self)
                                    UnsafeMutableRawPointer(ip + o).storeBytes(of: at, as: SIMD4<Int32>.self)
                                    o += 4
                                    px += 4
                                }
                            }
                            while px < ow {
                                defer { px += 1 }
                                let first = top + px * sx
                                var (at, m) = (first, source[first])
                                @inline(__always) func take(_ tap: Int) {
                                    let v = source[tap]
                                    let wins = !m.isNaN && (v > m || v.isNaN)
                                    at = wins ? tap : at
                                    m = wins ? v : m
                                }
                                take(first + 1)
                                take(first + w)
                                take(first + w + 1)
                                yp[o] = m
                                ip[o] = Float(bitPattern: UInt32(bitPattern: Int32(at)))
                                o += 1
                            }
                        }
                    }
                    return
                }
                for plane in planes {
                    let source = xp + plane * h * w
                    for py in 0..<oh {
                        for px in 0..<ow {
                            var at: Int
                            if inside {
                                at = (py * sy) * w + px * sx
                                var m = source[at]
                                for i in 0..<kh {
                                    for j in 0..<kw {
                                        let tap = (py * sy + i * dy) * w + px * sx + j * dx, v = source[tap]
                                        // The first largest, a NaN wins (PyTorch's rule, as windowArgmax).
                                        if !m.isNaN && (v > m || v.isNaN) { (at, m) = (tap, v) }
                                    }
                                }
                            } else {
                                at = windowArgmax(source, h: h, w: w, window, oh: py, ow: px)
                            }
                            let o = (plane * oh + py) * ow + px
                            yp[o] = at < 0 ? -.infinity : source[at]
                            ip[o] = Float(bitPattern: UInt32(bitPattern: Int32(at)))
                        }
                    }
                }
            }
        } opencl: { device, xb, yb, ib in
            // A CPU-type device takes the common 2x2 window (no padding, no dilation) whole output rows at a time.
            let rows = device.rowLoop && window.kernelHeight == 2 && window.kernelWidth == 2 && k[4] == 0
                && k[5] == 0 && k[6] == 1 && k[7] == 1
            try device.runGather(rows ? maxPoolRowsKernel : maxPoolKernel, dims, k,
                                 outputs: rows ? n * c * oh : n * c * oh * ow) { a in
                try a.buffer("x", xb); try a.buffer("y", yb); try a.buffer("indices", ib)
            }
        }
        return y.recorded("max_pool2d", from: [self]) { g in
            let g = g.isDense ? g : try g.contiguous()
            let dx = try Tensor.empty([n, c, h, w], on: g.device)
            try Tensor.run("max_pool2d backward", indices, g, dx) { ip, gp, dp in
                nonisolated(unsafe) let (ip, gp, dp) = (ip, gp, dp)
                // Each plane's own: zeros, then every output's gradient added where its largest value came from.
                hostParallel(n * c, costPerItem: Double(h * w + oh * ow)) { planes in
                    for plane in planes {
                        (dp + plane * h * w).initialize(repeating: 0, count: h * w)
                        for o in (plane * oh * ow)..<((plane + 1) * oh * ow) {
                            let at = Int(Int32(bitPattern: ip[o].bitPattern))
                            if at >= 0 { dp[plane * h * w + at] += gp[o] }
                        }
                    }
                }
            } opencl: { device, ib, gb, db in
                // A CPU-type device scatters plane by plane (no division per tap); a GPU gathers element by element.
                try device.runGather(device.rowLoop ? maxPoolBackwardPlanesKernel : maxPoolBackwardKernel, dims, k,
                                     outputs: device.rowLoop ? n * c : n * c * h * w, perItem: !device.rowLoop) { a in
                    try a.buffer("indices", ib); try a.buffer("g", gb); try a.buffer("dx", db)
                }
            }
            return [dx]
        }
    }

    /// Max pooling with a square window (`stride` nil: the kernel size, as PyTorch's default).
    public func maxPool2d(kernel: Int, stride: Int? = nil, padding: Int = 0, dilation: Int = 1) throws -> Tensor {
        try maxPool2d(Window2d(kernel: kernel, stride: stride ?? kernel, padding: padding, dilation: dilation))
    }

    /// The mean under each position of `window` (PyTorch's `F.avg_pool2d` with `count_include_pad`): self
    /// [N, C, H, W] → [N, C, OH, OW], each output the sum of the window's kh·kw taps (zeros in the padding) over kh·kw.
    /// Recorded on the tape. Reads any layout.
    /// - Throws: `DeviceError.invalidArgument` naming avg_pool2d for input that is not NCHW, a window larger than
    ///   the padded input, a dilation other than 1, or padding above half the window, as PyTorch.
    public func avgPool2d(_ window: Window2d) throws -> Tensor {
        let (n, c, h, w) = try nchw("avg_pool2d")
        guard window.dilationHeight == 1, window.dilationWidth == 1 else {
            throw DeviceError.invalidArgument(op: "avg_pool2d", "average pooling has no dilation, got "
                + "(\(window.dilationHeight), \(window.dilationWidth))")
        }
        let (oh, ow) = try window.outputSize(height: h, width: w, op: "avg_pool2d")
        for (axis, k, p) in [("height", window.kernelHeight, window.paddingHeight),
                             ("width", window.kernelWidth, window.paddingWidth)] where p > k / 2 {
            throw DeviceError.invalidArgument(op: "avg_pool2d", "padding \(p) along the \(axis) is more than half the "
                + "kernel \(k)")
        }
        let x = isDense ? self : try Tensor.withoutGradients { try contiguous() }
        let y = try Tensor.empty([n, c, oh, ow], on: device)
        let dims = [n, c, h, w, oh, ow], k = window.packed, taps = Float(k[0] * k[1])
        try Tensor.run("avg_pool2d", x, y) { xp, yp in
            nonisolated(unsafe) let (xp, yp) = (xp, yp)
            hostParallel(n * c, costPerItem: Double(oh * ow) * Double(k[0] * k[1])) { planes in
                for plane in planes {
                    for py in 0..<oh {
                        for px in 0..<ow {
                            var acc: Float = 0
                            for i in 0..<k[0] {
                                let r = py * k[2] - k[4] + i
                                guard r >= 0, r < h else { continue }
                                for j in 0..<k[1] {
                                    let q = px * k[3] - k[5] + j
                                    if q >= 0 && q < w { acc += xp[(plane * h + r) * w + q] }
                                }
                            }
                            yp[(plane * oh + py) * ow + px] = acc / taps
                        }
                    }
                }
            }
        } opencl: { device, xb, yb in
            try device.runGather(avgPoolKernel, dims, k, outputs: n * c * oh * ow) { a in
                try a.buffer("x", xb); try a.buffer("y", yb)
            }
        }
        let device = device
        return y.recorded("avg_pool2d", from: [self]) { g in
            let g = g.isDense ? g : try g.contiguous()
            let dx = try Tensor.empty([n, c, h, w], on: device)
            try Tensor.run("avg_pool2d backward", g, dx) { gp, dp in
                nonisolated(unsafe) let (gp, dp) = (gp, dp)
                hostParallel(n * c, costPerItem: Double(h * w) * Double(k[0] * k[1])) { planes in
                    for plane in planes {
                        for index in 0..<(h * w) {
                            var acc: Float = 0
                            positionsReading(y: index / w, x: index % w, k, oh: oh, ow: ow) { py, px in
                                acc += gp[(plane * oh + py) * ow + px]
                            }
                            dp[plane * h * w + index] = acc / taps
                        }
                    }
                }
            } opencl: { device, gb, db in
                try device.runGather(avgPoolBackwardKernel, dims, k, outputs: n * c * h * w) { a in
                    try a.buffer("g", gb); try a.buffer("dx", db)
                }
            }
            return [dx]
        }
    }

    /// Average pooling with a square window (`stride` nil: the kernel size, as PyTorch's default).
    public func avgPool2d(kernel: Int, stride: Int? = nil, padding: Int = 0) throws -> Tensor {
        try avgPool2d(Window2d(kernel: kernel, stride: stride ?? kernel, padding: padding))
    }
}

extension OpCheck {
    /// Max and average pooling on odd sizes (a 5x7 image of 3 channels, stride 2, padding, dilation 2, overlapping
    /// windows, ties, 2x2 windows in rows of more than four), and the gradients of Σ y·r, against the same loops written out in Double.
    static var poolChecks: [OpCheck] {
        let cases: [(n: Int, c: Int, h: Int, w: Int, k: (Int, Int), s: (Int, Int), p: (Int, Int), d: (Int, Int))] = [
            (2, 3, 5, 7, (2, 2), (2, 2), (0, 0), (1, 1)),
            // Rows of 9 windows: CPU-type devices take four at a time from two rows of eight, then one alone.
            (2, 3, 5, 19, (2, 2), (2, 2), (0, 0), (1, 1)),
            (1, 2, 4, 10, (2, 2), (1, 2), (0, 0), (1, 1)),
            (1, 3, 5, 7, (3, 3), (2, 1), (1, 1), (1, 1)),
            (3, 2, 9, 6, (3, 2), (1, 2), (1, 0), (2, 1)),
        ]
        return cases.flatMap { n, c, h, w, k, s, p, d -> [OpCheck] in
            let window = Window2d(kernel: k, stride: s, padding: p, dilation: d)
            let (oh, ow) = (try? window.outputSize(height: h, width: w, op: "check")) ?? (0, 0)
            // Values rounded to a coarse grid, so that windows hold ties.
            let xv = values(n * c * h * w, seed: 111).map { ($0 * 4).rounded() / 4 }
            let rv = values(n * c * oh * ow, seed: 112)
            let shape = "\(n)x\(c)x\(h)x\(w) k\(k.0)x\(k.1) s\(s.0)x\(s.1) p\(p.0)x\(p.1)"
            // The in-bounds taps of output (b·C + ch, py, px) as input indices, in window order.
            @Sendable func taps(_ plane: Int, _ py: Int, _ px: Int, dilated: Bool) -> [Int] {
                (0..<k.0).flatMap { i in
                    (0..<k.1).compactMap { j -> Int? in
                        let r = py * s.0 - p.0 + i * (dilated ? d.0 : 1), q = px * s.1 - p.1 + j * (dilated ? d.1 : 1)
                        return r >= 0 && r < h && q >= 0 && q < w ? (plane * h + r) * w + q : nil
                    }
                }
            }
            @Sendable func compute(_ device: DeviceTag, _ op: (Tensor) throws -> Tensor) throws -> [Tensor] {
                let x = try Tensor(xv, shape: [n, c, h, w], on: device)
                x.requiresGrad = true
                let y = try op(x)
                try (y * (try Tensor(rv, shape: [n, c, oh, ow], on: device))).sum().backward()
                return [y, try x.grad ?? Tensor.zeros(x.shape, on: device)]
            }
            let maxCheck = OpCheck("max_pool2d", shape + " d\(d.0)x\(d.1)", compute: { device in
                try compute(device) { try $0.maxPool2d(window) }
            }, reference: {
                var y: [Double] = [], dx = [Double](repeating: 0, count: xv.count)
                for plane in 0..<(n * c) {
                    for py in 0..<oh {
                        for px in 0..<ow {
                            let at = taps(plane, py, px, dilated: true)
                            let best = at.dropFirst().reduce(at[0]) { xv[$1] > xv[$0] ? $1 : $0 }
                            y.append(Double(xv[best]))
                            dx[best] += Double(rv[(plane * oh + py) * ow + px])
                        }
                    }
                }
                return [y, dx]
            })
            guard d == (1, 1) else { return [maxCheck] }
            let avgCheck = OpCheck("avg_pool2d", shape, compute: { device in
                try compute(device) { try $0.avgPool2d(window) }
            }, reference: {
                var y: [Double] = [], dx = [Double](repeating: 0, count: xv.count)
                let count = Double(k.0 * k.1)
                for plane in 0..<(n * c) {
                    for py in 0..<oh {
                        for px in 0..<ow {
                            let at = taps(plane, py, px, dilated: false)
                            y.append(at.reduce(0) { $0 + Double(xv[$1]) } / count)
                            for i in at { dx[i] += Double(rv[(plane * oh + py) * ow + px]) / count }
                        }
                    }
                }
                return [y, dx]
            })
            return [maxCheck, avgCheck]
        }
    }
}
