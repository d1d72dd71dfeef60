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
        try Tensor.run("linear", x.source, order, weight, bias, z,
                       activation == nil ? nil : y) { x0, order, w, b, z, y in
            let rows = order.map { HostRowOrder(order: $0, offset: x.offset, rows: x.sourceRows) }
            try matmulBlocked(x0, w, z, m: batch, n: outputs, k: inputs, transA: false, transB: false, beta: 0,
                              order: rows)
            for i in 0..<batch {
                let row = z + i * outputs
                for j in 0..<outputs { row[j] += b[j] }
                if let activation, let y {
                    let out = y + i * outputs
                    for j in 0..<outputs { out[j] = activation(row[j]) }
                }
            }
        } opencl: { device, x0, order, w, b, z, y in
            let launch = try GemmPlans.shared.launches(for: device).pick(.nn, multiplyAdds: batch * outputs * inputs)
            let fusion = GemmFusion(gatherA: order != nil, bias: true, activation: activation)
            let extra = GemmFusionOperands(order: order, offset: x.offset, aRows: x.sourceRows, bias: b, y: y)
            try launchMatmul(device, x0, w, z, m: batch, n: outputs, k: inputs, transA: false, transB: false,
                             kernel: launch, beta: 0, fusion: fusion, extra: extra)
        }
    }

    /// A linear layer's parameter gradients in one kernel: dw = xᵀ·dz and, when `biasGradient` is given,
    /// db = Σ_rows dz; with `accumulate` both are added to what the tensors hold. Reads x's rows in place.
    ///
    /// x: [batch, in], dz: [batch, out], weightGradient: [in, out], biasGradient: [out]
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
            if !accumulate { db.update(repeating: 0, count: outputs) }
            for i in 0..<batch {
                let row = dz + i * outputs
                for j in 0..<outputs { db[j] += row[j] }
            }
        } opencl: { device, x0, order, dz, dw, db in
            let launch = try GemmPlans.shared.launches(for: device).pick(.tn, multiplyAdds: batch * outputs * inputs)
            let fusion = GemmFusion(gatherA: order != nil, biasGradient: db != nil)
            let extra = GemmFusionOperands(order: order, offset: x.offset, aRows: x.sourceRows, db: db)
            try launchMatmul(device, x0, dz, dw, m: inputs, n: outputs, k: batch, transA: true, transB: false,
                             kernel: launch, beta: beta, fusion: fusion, extra: extra)
        }
    }
}
