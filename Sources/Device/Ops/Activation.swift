// The activation family (Kernels/activation.cl): activation, activation_backward, and the fused bias_activation /
// bias_activation_backward that a layer's bias and activation run as.
import Foundation
import RealModule

/// An elementwise activation function. Each case is one line of its function and one of its derivative here
/// (generic, so the same line is the Float CPU path and the Double reference of the gradient checks), and one block
/// of `Kernels/activation.cl` selected by `-D ACTIVATION_<NAME>`. Every op below and `Linear(…, activation:)` work
/// for all of them.
public enum Activation: String, CaseIterable, Sendable, Codable {
    /// max(x, 0); NaN stays NaN (as PyTorch's and numpy's).
    case relu
    /// max(x, 0.01·x), PyTorch's default slope.
    case leakyReLU = "leaky-relu"
    /// tanh(x).
    case tanh
    /// 1 / (1 + e⁻ˣ).
    case sigmoid
    /// x·Φ(x), the exact (erf) form, as PyTorch's default `nn.GELU()`.
    case gelu

    /// f(x).
    public func callAsFunction<T: Real>(_ x: T) -> T {
        switch self {
        case .relu: return x < 0 ? 0 : x  // (NaN is not < 0: it passes, as activation.cl's F)
        case .leakyReLU: return x > 0 ? x : x / 100
        case .tanh: return T.tanh(x)
        case .sigmoid: return 1 / (1 + T.exp(-x))
        case .gelu: return x * (1 + T.erf(x / T.sqrt(2))) / 2
        }
    }

    /// f′(x), given x and y = f(x).
    public func derivative<T: Real>(_ x: T, _ y: T) -> T {
        switch self {
        case .relu: return x > 0 ? 1 : 0
        case .leakyReLU: return x > 0 ? 1 : 1 / 100
        case .tanh: return 1 - y * y
        case .sigmoid: return y * (1 - y)
        case .gelu: return (1 + T.erf(x / T.sqrt(2))) / 2 + x * T.exp(-x * x / 2) / T.sqrt(2 * T.pi)
        }
    }

    /// Rough host cost of one element relative to a copy, for `hostParallel`.
    var hostCost: Double { self == .relu || self == .leakyReLU ? 1 : 16 }

    /// A linear layer's epilogue on the CPU over one block of its output: z += bias, then y = f(z) when `f` is
    /// given (y and z row-major, `stride` floats a row).
    static func biasActivationBlock(_ f: Activation?, z: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>?,
                                    bias: UnsafeMutablePointer<Float>, stride: Int, rows: Range<Int>,
                                    columns: Range<Int>) {
        for i in rows {
            let row = z + i * stride
            for j in columns { row[j] += bias[j] }
            guard let f, let y else { continue }
            let out = y + i * stride
            // The cheap cases as loops of their own (the function inlined and vectorised).
            switch f {
            case .relu: for j in columns { out[j] = Activation.relu(row[j]) }
            case .leakyReLU: for j in columns { out[j] = Activation.leakyReLU(row[j]) }
            default: for j in columns { out[j] = f(row[j]) }
            }
        }
    }

    /// The build option that selects this activation in activation.cl.
    var options: String { "-D ACTIVATION_" + rawValue.uppercased().replacingOccurrences(of: "-", with: "_") }

    /// This activation's four kernels, made once.
    fileprivate var kernels: ActivationKernels {
        switch self {
        case .relu: return ActivationKernels.relu
        case .leakyReLU: return ActivationKernels.leakyReLU
        case .tanh: return ActivationKernels.tanh
        case .sigmoid: return ActivationKernels.sigmoid
        case .gelu: return ActivationKernels.gelu
        }
    }
}

/// The kernels of activation.cl for one activation.
private struct ActivationKernels {
    let forward, backward, biasForward, biasBackward: KernelSource
    /// biasBackward over a tall batch: row blocks (their partial sums then added by bias.cl's column sums).
    let biasBackwardBlocks: KernelSource
    init(_ f: Activation) {
        let options = f.options
        forward = KernelSource("activation", "activation", options: options)
        backward = KernelSource("activation", "activation_backward", options: options)
        biasForward = KernelSource("activation", "bias_activation", options: options)
        biasBackward = KernelSource("activation", "bias_activation_backward", options: options)
        biasBackwardBlocks = KernelSource("activation", "bias_activation_backward_blocks", options: options)
    }
    /// Rows per block of bias_activation_backward_blocks (BIAS_ROW_BLOCK); a batch of more than two blocks
    /// takes that form.
    static let rowBlock = 256
    static let relu = ActivationKernels(.relu), leakyReLU = ActivationKernels(.leakyReLU),
               tanh = ActivationKernels(.tanh)
    static let sigmoid = ActivationKernels(.sigmoid), gelu = ActivationKernels(.gelu)
}

extension Tensor {
    /// f(self), elementwise. Any shape; reads views (through a contiguous copy). Without `out`, recorded on the tape
    /// (its rule is `activationBackward`).
    @discardableResult
    public func activation(_ f: Activation, into out: Tensor? = nil) throws -> Tensor {
        let input = try Tensor.withoutGradients { try contiguous() }
        let result = try input.activationKernel(f, into: out)
        guard out == nil else { return result }
        let x = input.detached()
        return result.recorded(f.rawValue, from: [self], saving: [x]) { g in
            [try x.activationBackward(f, try g.contiguous())]
        }
    }

    private func activationKernel(_ f: Activation, into out: Tensor?) throws -> Tensor {
        let out = try output("activation", out, shape, on: device)
        let n = count
        try Tensor.run("activation", self, out) { x, y in
            nonisolated(unsafe) let (x, y) = (x, y)
            hostParallel(n, costPerItem: f.hostCost) { range in
                // The cheap cases as loops of their own (the function inlined and vectorised).
                switch f {
                case .relu: for i in range { y[i] = Activation.relu(x[i]) }
                case .leakyReLU: for i in range { y[i] = Activation.leakyReLU(x[i]) }
                default: for i in range { y[i] = f(x[i]) }
                }
            }
        } opencl: { device, x, y in
            try device.run(f.kernels.forward, global: WorkSize(n)) { a in
                try a.int("n", n); try a.buffer("x", x); try a.buffer("y", y)
            }
        }
        return out
    }

    /// The gradient through f: dx = dy · f′(self), where self is the forward input. dy: self's shape.
    /// Dense operands only: a view is an error naming the op (pass its `contiguous()` copy).
    @discardableResult
    public func activationBackward(_ f: Activation, _ dy: Tensor, into out: Tensor? = nil) throws -> Tensor {
        try requireShape("activationBackward (dy)", dy, shape)
        let out = try output("activationBackward", out, shape, on: device)
        let n = count
        try Tensor.run("activationBackward", self, dy, out) { x, dy, dx in
            nonisolated(unsafe) let (x, dy, dx) = (x, dy, dx)
            hostParallel(n, costPerItem: f.hostCost) { range in
                switch f {
                case .relu: for i in range { dx[i] = dy[i] * Activation.relu.derivative(x[i], 0) }
                case .leakyReLU: for i in range { dx[i] = dy[i] * Activation.leakyReLU.derivative(x[i], 0) }
                default:
                    for i in range {
                        let v = x[i]
                        dx[i] = dy[i] * f.derivative(v, f(v))
                    }
                }
            }
        } opencl: { device, x, dy, dx in
            try device.run(f.kernels.backward, global: WorkSize(n)) { a in
                try a.int("n", n); try a.buffer("x", x); try a.buffer("dy", dy); try a.buffer("dx", dx)
            }
        }
        return out
    }

    /// A layer's bias and activation in one pass. Self (x·w, [rows, cols]) becomes the pre-activation x·w + bias
    /// **in place**, and the result is f of it. bias: [cols] → [rows, cols]
    /// Not recorded on the tape (a layer's own backward is `biasActivationBackward`): with a gradient being recorded
    /// for self or bias it is an error — `(x + bias).activation(f)` is the recorded form.
    /// Dense operands only: a view is an error naming the op (pass its `contiguous()` copy).
    @discardableResult
    public func biasActivation(_ bias: Tensor, _ f: Activation, into out: Tensor? = nil) throws -> Tensor {
        let (rows, cols) = try matrixDims("biasActivation", self)
        try requireShape("biasActivation (bias)", bias, [cols])
        if Tensor.recording, let tracked = [("its input", self), ("the bias", bias)].first(where: \.1.requiresGrad) {
            throw DeviceError.invalidArgument(op: "biasActivation", "\(tracked.0) requires a gradient, but this op "
                + "writes the pre-activation into its input in place and is not recorded: use "
                + "(x + bias).activation(.\(f)) (or Linear's own backward)")
        }
        let out = try output("biasActivation", out, shape, on: device)
        version.bump()  // self is written (the pre-activation): an op that saved it must see the change
        try Tensor.run("biasActivation", self, bias, out) { z, b, y in
            for i in 0..<rows {
                for j in 0..<cols {
                    let v = z[i * cols + j] + b[j]
                    z[i * cols + j] = v
                    y[i * cols + j] = f(v)
                }
            }
        } opencl: { device, z, b, y in
            try device.run(f.kernels.biasForward, global: WorkSize(cols, rows)) { a in
                try a.int("rows", rows); try a.int("cols", cols); try a.buffer("z", z); try a.buffer("b", b)
                try a.buffer("y", y)
            }
        }
        return out
    }

    /// The backward of `biasActivation`, from the pre-activation z: dz = dy · f′(z), and db = Σ_rows dz
    /// (or db += when
    /// `accumulate`). z, dy: [rows, cols]; db: [cols] → dz [rows, cols]
    /// Dense operands only: a view is an error naming the op (pass its `contiguous()` copy).
    @discardableResult
    public static func biasActivationBackward(_ f: Activation, preActivation z: Tensor, _ dy: Tensor, db: Tensor,
                                              accumulate: Bool = false, into out: Tensor? = nil) throws -> Tensor {
        let (rows, cols) = try matrixDims("biasActivationBackward", z)
        try requireShape("biasActivationBackward (dy)", dy, z.shape)
        try requireShape("biasActivationBackward (bias gradient)", db, [cols])
        let dz = try output("biasActivationBackward", out, z.shape, on: z.device)
        try Tensor.run("biasActivationBackward", z, dy, dz, db) { z, dy, dz, db in
            // Columns split across the cores: each column's sum still runs down the rows in order. The cheap
            // derivatives (which ignore f(v)) as loops of their own. NOTE: split from a quarter of hostParallel's
            // usual work: the cost here is dz's lines, which the other core read in the last step and each of which
            // a single writer takes back one at a time (128×512 of ReLU: 0.41 ms on one thread).
            nonisolated(unsafe) let (z, dy, dz, db) = (z, dy, dz, db)
            hostParallel(cols, costPerItem: Double(rows) * Swift.max(f.hostCost, 4)) { columns in
                @inline(__always) func sweep(_ derivative: (Float) -> Float) {
                    // As the kernels sum: each column from zero down the rows, the earlier db added last.
                    let earlier = accumulate ? columns.map { db[$0] } : []
                    for j in columns { db[j] = 0 }
                    for i in 0..<rows {
                        let (zr, dyr, dzr) = (z + i * cols, dy + i * cols, dz + i * cols)
                        for j in columns {
                            let g = dyr[j] * derivative(zr[j])
                            dzr[j] = g
                            db[j] += g
                        }
                    }
                    for (j, value) in zip(columns, earlier) { db[j] += value }
                }
                switch f {
                case .relu: sweep { Activation.relu.derivative($0, 0) }
                case .leakyReLU: sweep { Activation.leakyReLU.derivative($0, 0) }
                default: sweep { f.derivative($0, f($0)) }
                }
            }
        } opencl: { device, z, dy, dz, db in
            let blocks = (rows + ActivationKernels.rowBlock - 1) / ActivationKernels.rowBlock
            guard blocks > 2 else {
                try device.run(f.kernels.biasBackward, global: WorkSize(cols)) { a in
                    try a.int("rows", rows); try a.int("cols", cols); try a.buffer("z", z); try a.buffer("dy", dy)
                    try a.buffer("dz", dz); try a.buffer("db", db); try a.float("beta", accumulate ? 1 : 0)
                }
                return
            }
            // A tall batch: blocks of rows in parallel, each column's partial sums added in order after.
            let partial = try device.makeBuffer(count: blocks * cols)
            try device.run(f.kernels.biasBackwardBlocks, global: WorkSize(cols, blocks)) { a in
                try a.int("rows", rows); try a.int("cols", cols); try a.buffer("z", z); try a.buffer("dy", dy)
                try a.buffer("dz", dz); try a.buffer("partial", partial)
            }
            try launchColumnSums(device, partial, rows: blocks, cols: cols, into: db, beta: accumulate ? 1 : 0)
        }
        return dz
    }
}

extension OpCheck {
    /// Each activation forward and backward, alone and fused with a bias, on odd shapes.
    static var activationChecks: [OpCheck] {
        Activation.allCases.flatMap { f in
            // (700 rows: the blocked form's three blocks, the last one short.)
            [(3, 5), (65, 33), (0, 4), (700, 7)].flatMap { (rows, cols) -> [OpCheck] in
                let xv = values(rows * cols, seed: 31).map { $0 * 3 }, dyv = values(rows * cols, seed: 32)
                let bv = values(cols, seed: 45), dbv = values(cols, seed: 47)
                let shape = "\(rows)x\(cols)"
                let z = xv.indices.map { Double(xv[$0]) + Double(bv[$0 % cols]) }
                return [
                    OpCheck("\(f.rawValue)", shape, atol: 2e-6, compute: { d in
                        [try Tensor(xv, shape: [rows, cols], on: d).activation(f)]
                    }, reference: { [xv.map { f(Double($0)) }] }),
                    OpCheck("\(f.rawValue) backward", shape, atol: 2e-6, compute: { d in
                        let x = try Tensor(xv, shape: [rows, cols], on: d)
                        return [try x.activationBackward(f, try Tensor(dyv, shape: [rows, cols], on: d))]
                    }, reference: {
                        [xv.indices.map { Double(dyv[$0]) * f.derivative(Double(xv[$0]), f(Double(xv[$0]))) }]
                    }),
                    OpCheck("bias+\(f.rawValue) forward and backward", shape, atol: 1e-5, compute: { d in
                        let pre = try Tensor(xv, shape: [rows, cols], on: d)
                        let y = try pre.biasActivation(try Tensor(bv, shape: [cols], on: d), f)
                        let db = try Tensor(dbv, shape: [cols], on: d)
                        let dz = try Tensor.biasActivationBackward(f, preActivation: pre,
                                                                   try Tensor(dyv, shape: [rows, cols], on: d), db: db,
                                                                   accumulate: true)
                        return [pre, y, dz, db]
                    }, reference: {
                        let y = z.map { f($0) }
                        let dz = z.indices.map { Double(dyv[$0]) * f.derivative(z[$0], y[$0]) }
                        let db = (0..<cols).map { j in (0..<rows).reduce(Double(dbv[j])) { $0 + dz[$1 * cols + j] } }
                        return [z, y, dz, db]
                    }),
                ]
            }
        }
    }
}
