// A linear layer's fused products (Kernels/matmul.cl with its fusion defines, see `GemmFusion`): the forward product
// with the bias and the activation as its epilogue, and the weight gradient with the bias gradient beside it. Both read
// their input rows in place through the batch's index list (`Rows`). On cpu: CGemm's small path, which reads the rows
// the same way, then the epilogue as a loop.
import CGemm

extension Tensor {
    /// z = x·w + bias and, when `activation` is given, y = f(z) — one kernel, reading x's rows in place.
    ///
    /// x: [batch, in] (rows of a resident dataset or a tensor), weight: [in, out], bias: [out];
    /// z and y: [batch, out] (y only with an activation).
    /// Dense operands only: a view is an error naming the op (pass its `contiguous()` copy).
    public static func linear(_ x: Rows, weight: Tensor, bias: Tensor, activation: Activation?,
                              preActivation z: Tensor, output y: Tensor?) throws {
        let (inputs, outputs) = try matrixDims("linear (weight)", weight)
        guard x.columns == inputs, x.source.shape.count == 2 else {
            throw DeviceError.shapeMismatch(op: "linear", x.shape, weight.shape)
        }
        try requireShape("linear (bias)", bias, [outputs])
        try requireShape("linear (pre-activation)", z, [x.count, outputs])
        if activation != nil {
            guard let y else { throw DeviceError.invalidArgument(op: "linear", "an activation needs an output tensor") }
            try requireShape("linear (output)", y, [x.count, outputs])
        }
        let (batch, order) = (x.count, x.order)
        // Written: a layer's forward that kept them for its backward must see the change.
        z.version.bump()
        y?.version.bump()
        try Tensor.run("linear", x.source, order, weight, bias, z,
                       activation == nil ? nil : y) { x0, order, w, b, z, y in
            let rows = order.map { HostRowOrder(order: $0, offset: x.offset, rows: x.sourceRows) }
            nonisolated(unsafe) let (z, y, b) = (z, y, b)
            try matmulBlocked(x0, w, z, m: batch, n: outputs, k: inputs, transA: false, transB: false, beta: 0,
                              order: rows) { rows, columns in
                Activation.biasActivationBlock(activation, z: z, y: y, bias: b, stride: outputs, rows: rows,
                                               columns: columns)
            }
        } opencl: { device, x0, order, w, b, z, y in
            let fusion = GemmFusion(gatherA: order != nil, bias: true, activation: activation)
            let extra = GemmFusionOperands(order: order, offset: x.offset, aRows: x.sourceRows, bias: b, y: y)
            let launch = try GemmPlans.shared.launches(for: device).launch(.nn, m: batch, n: outputs, k: inputs,
                                                                           on: device, a: x0, b: w, fusion: fusion,
                                                                           extra: extra)
            try launchMatmul(device, x0, w, z, m: batch, n: outputs, k: inputs, transA: false, transB: false,
                             kernel: launch, beta: 0, fusion: fusion, extra: extra)
        }
    }

    /// A linear layer's parameter gradients in one kernel: dw = xᵀ·dz and, when `biasGradient` is given,
    /// db = Σ_rows dz; with `accumulate` both are added to what the tensors hold. Reads x's rows in place.
    ///
    /// x: [batch, in], dz: [batch, out], weightGradient: [in, out], biasGradient: [out]
    /// Dense operands only: a view is an error naming the op (pass its `contiguous()` copy).
    public static func linearBackward(_ x: Rows, _ dz: Tensor, weightGradient dw: Tensor, biasGradient db: Tensor?,
                                      accumulate: Bool) throws {
        let (batch, outputs) = try matrixDims("linearBackward (dz)", dz)
        guard x.count == batch, x.source.shape.count == 2 else {
            throw DeviceError.shapeMismatch(op: "linearBackward", x.shape, dz.shape)
        }
        let inputs = x.columns
        try requireShape("linearBackward (weight gradient)", dw, [inputs, outputs])
        if let db { try requireShape("linearBackward (bias gradient)", db, [outputs]) }
        let (order, beta): (Tensor?, Float) = (x.order, accumulate ? 1 : 0)
        try Tensor.run("linearBackward", x.source, order, dz, dw, db) { x0, order, dz, dw, db in
            let rows = order.map { HostRowOrder(order: $0, offset: x.offset, rows: x.sourceRows) }
            try matmulBlocked(x0, dz, dw, m: inputs, n: outputs, k: batch, transA: true, transB: false, beta: beta,
                              order: rows)
            guard let db else { return }
            hostColumnSums(dz, rows: batch, cols: outputs, into: db, accumulate: accumulate)
        } opencl: { device, x0, order, dz, dw, db in
            let fusion = GemmFusion(gatherA: order != nil, biasGradient: db != nil)
            let extra = GemmFusionOperands(order: order, offset: x.offset, aRows: x.sourceRows, db: db)
            let launch = try GemmPlans.shared.launches(for: device).launch(.tn, m: inputs, n: outputs, k: batch,
                                                                           on: device, a: x0, b: dz, fusion: fusion,
                                                                           extra: extra)
            try launchMatmul(device, x0, dz, dw, m: inputs, n: outputs, k: batch, transA: true, transB: false,
                             kernel: launch, beta: beta, fusion: fusion, extra: extra)
        }
    }
}

extension OpCheck {
    /// The fused linear products reading their rows through an index list (which repeats rows and holds indices out
    /// of range, read clamped): forward with the bias and each activation, backward with the bias gradient, fresh and
    /// accumulated — through the device's plan, and forward (ReLU) and backward through every candidate it can hold.
    static var linearChecks: [OpCheck] {
        // (9 × 1 → 4: a layer of one input, whose weight gradient Aᵀ·B has m = 1.)
        let shapes = [(7, 13, 11), (65, 37, 50), (3, 5, 17), (64, 784, 50), (2, 2100, 3), (2100, 3, 2), (9, 1, 4)]
        let planned = shapes.flatMap { batch, inputs, outputs in
            ([nil] + Activation.allCases).map { activation in
                linearForwardCheck(batch, inputs, outputs, activation, form: "linear \(activation?.rawValue ?? "none")") {
                    x, w, b, z, y in
                    try Tensor.linear(x, weight: w, bias: b, activation: activation, preActivation: z, output: y)
                }
            } + [false, true].map { accumulate in
                linearBackwardCheck(batch, inputs, outputs, accumulate: accumulate,
                                    form: "linearBackward\(accumulate ? " accumulate" : "")") { x, dz, dw, db in
                    try Tensor.linearBackward(x, dz, weightGradient: dw, biasGradient: db, accumulate: accumulate)
                }
            }
        }
        let (batch, inputs, outputs) = shapes[1]
        let forward = GemmPlan.candidates(.nn).map { kernel in
            let launch = GemmLaunch(kernel, .nn), fusion = GemmFusion(gatherA: true, bias: true, activation: .relu)
            return linearForwardCheck(batch, inputs, outputs, .relu, form: "linear relu via \(kernel)",
                                      openCLOnly: true, skip: { launch.unusable(fusion: fusion, on: $0, buildFailures: false) }) { x, w, b, z, y in
                // On cpu (the comparison's side): the CPU fallback.
                guard w.device.isOpenCL else {
                    return try Tensor.linear(x, weight: w, bias: b, activation: .relu, preActivation: z, output: y)
                }
                try Tensor.run("linear", x.source, x.order, w, b, z, y) { _, _, _, _, _, _ in
                } opencl: { device, x0, order, w, b, z, y in
                    try launchMatmul(device, x0, w, z, m: batch, n: outputs, k: inputs, transA: false, transB: false,
                                     kernel: launch, beta: 0, fusion: fusion,
                                     extra: GemmFusionOperands(order: order, offset: x.offset, aRows: x.sourceRows,
                                                               bias: b, y: y))
                }
            }
        }
        let backward = GemmPlan.candidates(.tn).map { kernel in
            let launch = GemmLaunch(kernel, .tn), fusion = GemmFusion(gatherA: true, biasGradient: true)
            // A kernel that splits K gets a batch of three chunks and adds to the gradients (its second pass).
            let split = kernel.splitK(m: 1, n: 1, k: 1) != nil
            let (batch, inputs, outputs) = split ? (600, 13, 11) : (batch, inputs, outputs)
            return linearBackwardCheck(batch, inputs, outputs, accumulate: split, form: "linearBackward via \(kernel)",
                                       openCLOnly: true, skip: { launch.unusable(fusion: fusion, on: $0, buildFailures: false) }) { x, dz, dw, db in
                guard dz.device.isOpenCL else {
                    return try Tensor.linearBackward(x, dz, weightGradient: dw, biasGradient: db, accumulate: split)
                }
                try Tensor.run("linearBackward", x.source, x.order, dz, dw, db) { _, _, _, _, _ in
                } opencl: { device, x0, order, dz, dw, db in
                    try launchMatmul(device, x0, dz, dw, m: inputs, n: outputs, k: batch, transA: true, transB: false,
                                     kernel: launch, beta: split ? 1 : 0, fusion: fusion,
                                     extra: GemmFusionOperands(order: order, offset: x.offset, aRows: x.sourceRows, db: db))
                }
            }
        }
        // The CPU's blocked path (beyond its small path) packs the rows straight through the index list, forward
        // (rows of A) and backward (columns of Aᵀ). Too large for the simulator; OpenCL has the shapes above.
        let cpuOnly: @Sendable (DeviceTag) -> String? = { $0.isOpenCL ? "the CPU's blocked path (cpu only)" : nil }
        let blocked = [
            linearForwardCheck(130, 300, 120, .relu, form: "linear relu (cpu blocked)", skip: cpuOnly) {
                x, w, b, z, y in
                try Tensor.linear(x, weight: w, bias: b, activation: .relu, preActivation: z, output: y)
            },
            linearBackwardCheck(130, 300, 120, accumulate: true, form: "linearBackward accumulate (cpu blocked)",
                                skip: cpuOnly) { x, dz, dw, db in
                try Tensor.linearBackward(x, dz, weightGradient: dw, biasGradient: db, accumulate: true)
            },
        ]
        return planned + forward + backward + blocked
    }

    /// A batch's rows of a source through an index list, and the rows it picks (clamped as the kernels clamp).
    private static func linearRows(_ batch: Int, _ inputs: Int) -> (source: [Float], order: [Float], gathered: [Float]) {
        let (sourceRows, offset) = (batch + 3, 2)
        let source = values(sourceRows * inputs, seed: 11)
        var order = (0..<(batch + offset)).map { Float(($0 * 5 + 1) % sourceRows) }
        order[offset] = Float(sourceRows + 9)
        if batch > 1 { order[offset + 1] = -4 }
        let picked = order[offset...].map { min(max(Int($0), 0), sourceRows - 1) }
        return (source, order, picked.flatMap { source[($0 * inputs)..<(($0 + 1) * inputs)] })
    }

    private static func rows(_ batch: Int, _ inputs: Int, _ source: [Float], _ order: [Float], on d: DeviceTag) throws
        -> Rows {
        try Rows(try Tensor(source, shape: [batch + 3, inputs], on: d), order: try Tensor(order, shape: [order.count], on: d),
                 offset: 2, count: batch, checkingIndices: false)  // out-of-range entries: read clamped
    }

    private static func linearForwardCheck(
        _ batch: Int, _ inputs: Int, _ outputs: Int, _ activation: Activation?, form: String, openCLOnly: Bool = false,
        skip: @escaping @Sendable (DeviceTag) -> String? = { _ in nil },
        _ op: @escaping @Sendable (Rows, Tensor, Tensor, Tensor, Tensor?) throws -> Void
    ) -> OpCheck {
        let (source, order, gathered) = linearRows(batch, inputs)
        let wv = values(inputs * outputs, seed: 12), bv = values(outputs, seed: 13)
        return OpCheck(form, "\(batch)x\(inputs)→\(outputs)", rtol: 1e-4, atol: 1e-4, openCLOnly: openCLOnly,
                       skip: skip, compute: { d in
            let z = try Tensor.zeros([batch, outputs], on: d), y = try Tensor.zeros([batch, outputs], on: d)
            try op(try rows(batch, inputs, source, order, on: d), try Tensor(wv, shape: [inputs, outputs], on: d),
                   try Tensor(bv, shape: [outputs], on: d), z, activation == nil ? nil : y)
            return activation == nil ? [z] : [z, y]
        }, reference: {
            let product = referenceProduct(gathered, wv, m: batch, n: outputs, k: inputs, transA: false, transB: false)
            let z = product.enumerated().map { $0.element + Double(bv[$0.offset % outputs]) }
            return activation.map { f in [z, z.map { f($0) }] } ?? [z]
        })
    }

    private static func linearBackwardCheck(
        _ batch: Int, _ inputs: Int, _ outputs: Int, accumulate: Bool, form: String, openCLOnly: Bool = false,
        skip: @escaping @Sendable (DeviceTag) -> String? = { _ in nil },
        _ op: @escaping @Sendable (Rows, Tensor, Tensor, Tensor) throws -> Void
    ) -> OpCheck {
        let (source, order, gathered) = linearRows(batch, inputs)
        let dzv = values(batch * outputs, seed: 14), dw0 = values(inputs * outputs, seed: 15), db0 = values(outputs, seed: 16)
        return OpCheck(form, "\(batch)x\(inputs)→\(outputs)", rtol: 1e-4, atol: 1e-4, openCLOnly: openCLOnly,
                       skip: skip, compute: { d in
            let dw = try Tensor(dw0, shape: [inputs, outputs], on: d), db = try Tensor(db0, shape: [outputs], on: d)
            try op(try rows(batch, inputs, source, order, on: d), try Tensor(dzv, shape: [batch, outputs], on: d), dw, db)
            return [dw, db]
        }, reference: {
            let dw = referenceProduct(gathered, dzv, m: inputs, n: outputs, k: batch, transA: true, transB: false)
            let db = (0..<outputs).map { j in (0..<batch).reduce(0.0) { $0 + Double(dzv[$1 * outputs + j]) } }
            return accumulate ? [zip(dw, dw0).map { $0 + Double($1) }, zip(db, db0).map { $0 + Double($1) }] : [dw, db]
        })
    }
}
