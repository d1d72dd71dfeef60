/// Runs every op as a kernel from `Kernels/*.cl` on one OpenCL device.
struct OpenCLBackend: Backend {
    let device: OpenCLDevice

    func matmul(_ a: Tensor, _ b: Tensor, _ c: Tensor, m: Int, n: Int, k: Int,
                transA: Bool, transB: Bool, beta: Float) throws {
        let variant: GemmVariant
        switch (transA, transB) {
        case (false, false): variant = .nn
        case (false, true): variant = .nt
        case (true, false): variant = .tn
        case (true, true):
            return try matmulNaive(a, b, c, m: m, n: n, k: k, transA: true, transB: true, beta: beta)
        }
        try matmul(a, b, c, m: m, n: n, k: k, variant: variant, kernel: try device.gemmPlan()[variant], beta: beta)
    }

    /// The product through one specific kernel of matmul.cl.
    func matmul(_ a: Tensor, _ b: Tensor, _ c: Tensor, m: Int, n: Int, k: Int,
                variant: GemmVariant, kernel choice: GemmKernel, beta: Float) throws {
        let kernel = try device.kernel("matmul", choice.kernelName(variant), options: choice.options)
        // NOTE: a device whose limits cannot hold a tile (work-group size or local memory) takes the naive kernel.
        if case .tiled(let config) = choice,
           kernel.maxWorkGroupSize < config.workGroupSize || device.info.localMemory < config.localMemoryBytes {
            return try matmulNaive(a, b, c, m: m, n: n, k: k, transA: variant == .tn, transB: variant == .nt, beta: beta)
        }
        try device.launch(kernel, [.int(m), .int(n), .int(k), .buffer(a.clBuffer), .buffer(b.clBuffer),
                                   .buffer(c.clBuffer), .float(beta)],
                          global: choice.global(m: m, n: n), local: choice.local,
                          cost: (2 * Double(m) * Double(n) * Double(k), 4 * Double(m * k + k * n + m * n)))
    }

    func matmulNaive(_ a: Tensor, _ b: Tensor, _ c: Tensor, m: Int, n: Int, k: Int,
                     transA: Bool, transB: Bool, beta: Float) throws {
        let kernel = try device.kernel("matmul", "matmul_naive")
        try device.launch(kernel, [.int(m), .int(n), .int(k), .buffer(a.clBuffer), .buffer(b.clBuffer),
                                   .buffer(c.clBuffer), .int(transA ? 1 : 0), .int(transB ? 1 : 0), .float(beta)],
                          global: [n, m], cost: (2 * Double(m) * Double(n) * Double(k), 4 * Double(m * k + k * n + m * n)))
    }

    func reluForward(_ x: Tensor, _ y: Tensor) throws {
        try run("relu", "relu_forward", [.int(x.count), .buffer(x.clBuffer), .buffer(y.clBuffer)], global: [x.count])
    }

    func reluBackward(_ x: Tensor, _ dy: Tensor, _ dx: Tensor) throws {
        try run("relu", "relu_backward", [.int(x.count), .buffer(x.clBuffer), .buffer(dy.clBuffer),
                                          .buffer(dx.clBuffer)], global: [x.count])
    }

    func biasForward(_ x: Tensor, _ b: Tensor, _ y: Tensor, rows: Int, cols: Int) throws {
        try run("bias", "bias_forward", [.int(rows), .int(cols), .buffer(x.clBuffer), .buffer(b.clBuffer),
                                         .buffer(y.clBuffer)], global: [cols, rows])
    }

    func biasBackward(_ dy: Tensor, _ db: Tensor, rows: Int, cols: Int, beta: Float) throws {
        try run("bias", "bias_backward", [.int(rows), .int(cols), .buffer(dy.clBuffer), .buffer(db.clBuffer),
                                          .float(beta)], global: [cols])
    }

    func biasReluForward(_ x: Tensor, _ b: Tensor, _ y: Tensor, rows: Int, cols: Int) throws {
        try run("bias", "bias_relu_forward", [.int(rows), .int(cols), .buffer(x.clBuffer), .buffer(b.clBuffer),
                                              .buffer(y.clBuffer)], global: [cols, rows])
    }

    func biasReluBackward(_ y: Tensor, _ dy: Tensor, _ dx: Tensor, _ db: Tensor, rows: Int, cols: Int, beta: Float) throws {
        try run("bias", "bias_relu_backward", [.int(rows), .int(cols), .buffer(y.clBuffer), .buffer(dy.clBuffer),
                                               .buffer(dx.clBuffer), .buffer(db.clBuffer), .float(beta)], global: [cols])
    }

    func softmaxXent(_ logits: Tensor, _ labels: Tensor, _ losses: Tensor, _ grad: Tensor?,
                     rows: Int, cols: Int, gradScale: Float) throws {
        let unused = try device.placeholder()
        try run("loss", "softmax_xent", [.int(rows), .int(cols), .buffer(logits.clBuffer), .buffer(labels.clBuffer),
                                         .buffer(losses.clBuffer), .buffer(grad?.clBuffer ?? unused),
                                         .float(gradScale), .int(grad == nil ? 0 : 1)], global: [rows])
    }

    func mse(_ pred: Tensor, _ target: Tensor, _ losses: Tensor, _ grad: Tensor?, gradScale: Float) throws {
        let unused = try device.placeholder()
        try run("loss", "mse", [.int(pred.count), .buffer(pred.clBuffer), .buffer(target.clBuffer),
                                .buffer(losses.clBuffer), .buffer(grad?.clBuffer ?? unused),
                                .float(gradScale), .int(grad == nil ? 0 : 1)], global: [pred.count])
    }

    func sumAll(_ x: Tensor, _ out: Tensor) throws {
        let kernel = try device.kernel("reduce", "sum_all")
        let limit = min(256, kernel.maxWorkGroupSize, device.info.localMemory / MemoryLayout<Float>.size)
        var size = 1
        while size * 2 <= limit { size *= 2 }
        try device.launch(kernel, [.int(x.count), .buffer(x.clBuffer), .buffer(out.clBuffer), .local(floats: size)],
                          global: [size], local: [size])
    }

    func argmaxRows(_ x: Tensor, _ out: Tensor, rows: Int, cols: Int) throws {
        try run("reduce", "argmax_rows", [.int(rows), .int(cols), .buffer(x.clBuffer), .buffer(out.clBuffer)],
                global: [rows])
    }

    func elementwise(_ op: BinaryOp, _ x: Tensor, _ y: Tensor, _ out: Tensor) throws {
        try run("elementwise", op.rawValue, [.int(x.count), .buffer(x.clBuffer), .buffer(y.clBuffer),
                                             .buffer(out.clBuffer)], global: [x.count])
    }

    func affine(_ x: Tensor, alpha: Float, beta: Float, _ out: Tensor) throws {
        try run("elementwise", "affine", [.int(x.count), .buffer(x.clBuffer), .float(alpha), .float(beta),
                                          .buffer(out.clBuffer)], global: [x.count])
    }

    func fill(_ x: Tensor, _ value: Float) throws {
        try run("elementwise", "fill", [.int(x.count), .buffer(x.clBuffer), .float(value)], global: [x.count])
    }

    func gatherRows(_ src: Tensor, _ order: Tensor, offset: Int, _ dst: Tensor, rows: Int, cols: Int) throws {
        try device.launch(try device.kernel("gather", "gather_rows"),
                          [.int(rows), .int(cols), .buffer(src.clBuffer), .int(src.count / max(cols, 1)),
                           .buffer(order.clBuffer), .int(offset),
                           .buffer(dst.clBuffer)],
                          global: [cols, rows], cost: (0, Double(2 * rows * cols * 4)))
    }

    func sgdStep(_ param: Tensor, _ grad: Tensor, _ velocity: Tensor?,
                 lr: Float, momentum: Float, weightDecay: Float) throws {
        let unused = try device.placeholder()
        try run("sgd", "sgd_step", [.int(param.count), .buffer(param.clBuffer), .buffer(grad.clBuffer),
                                    .buffer(velocity?.clBuffer ?? unused), .float(lr),
                                    .float(velocity == nil ? 0 : momentum), .float(weightDecay)],
                global: [param.count])
    }

    /// Launches a memory-bound kernel; its profiler cost is the bytes of its buffer arguments.
    private func run(_ file: String, _ name: String, _ args: [KernelArg], global: [Int]) throws {
        var bytes = 0.0
        for case .buffer(let buffer) in args { bytes += Double(buffer.count * 4) }
        try device.launch(try device.kernel(file, name), args, global: global, cost: (0, bytes))
    }
}
