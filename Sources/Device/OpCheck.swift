import Foundation

/// One check of an op on a device: the op runs on a shape that is not a multiple of any tile, and each output is
/// compared with a Double reference and with what the CPU fallback gives. `clnn check` runs every check CLNN ships on
/// every device and prints a table; the tests run the same checks (`OpCheck.all`), so the table is the suite's op
/// coverage shipped to users.
public struct OpCheck: Sendable {
    /// The op and its form: `matmul nn (tiled 64x64x16 wpt 8x8)`, `relu backward`.
    public let op: String
    /// The shape it runs on: `65x33`, `7x13→11`.
    public let shape: String
    /// An element passes when |got − expected| ≤ atol + rtol·|expected| (and NaN where NaN is expected).
    let rtol: Double, atol: Double
    /// Whether it checks a kernel of OpenCL devices only (a GEMM candidate): it does not apply to `cpu`.
    public let openCLOnly: Bool
    /// Why a device cannot run it (a kernel's work-group or local memory past the device's), or nil.
    let skip: @Sendable (DeviceTag) -> String?
    /// The op's outputs, computed on a device.
    let compute: @Sendable (DeviceTag) throws -> [Tensor]
    /// Each output's expected values, computed in Double.
    let reference: @Sendable () -> [[Double]]

    init(_ op: String, _ shape: String, rtol: Double = 1e-5, atol: Double = 1e-5, openCLOnly: Bool = false,
         skip: @escaping @Sendable (DeviceTag) -> String? = { _ in nil },
         compute: @escaping @Sendable (DeviceTag) throws -> [Tensor], reference: @escaping @Sendable () -> [[Double]]) {
        (self.op, self.shape, self.rtol, self.atol, self.openCLOnly) = (op, shape, rtol, atol, openCLOnly)
        (self.skip, self.compute, self.reference) = (skip, compute, reference)
    }

    /// What one check found on one device.
    public struct Result: Sendable {
        /// The check's op and shape (as `OpCheck.op` and `OpCheck.shape`), and the device it ran on.
        public let op: String, shape: String, device: DeviceTag
        /// The largest absolute and relative differences from the Double reference, over every output.
        public let maxAbsolute: Double, maxRelative: Double
        /// The largest difference from the CPU fallback's result (0 on cpu itself).
        public let maxFromCPU: Double
        /// Why it failed: the output, the first element past the tolerance, its value and the expected one; nil when
        /// it passed.
        public let failure: String?
        /// Why it did not run on this device, or nil.
        public let skipped: String?
        /// How long the check took on the device (the CPU comparison and the reference included).
        public let seconds: Double
        /// Whether every output was within the tolerance of the reference and of the CPU fallback (a skipped check
        /// has passed: it did not run).
        public var passed: Bool { failure == nil }
    }

    /// Whether it checks something `device` runs.
    public func applies(to device: DeviceTag) -> Bool { device.isOpenCL || !openCLOnly }

    /// Runs the check on `device`; any error the op throws is a failure naming it.
    public func run(on device: DeviceTag) -> Result {
        let start = DispatchTime.now().uptimeNanoseconds
        func result(_ abs: Double = 0, _ rel: Double = 0, _ fromCPU: Double = 0, failure: String? = nil,
                    skipped: String? = nil) -> Result {
            Result(op: op, shape: shape, device: device, maxAbsolute: abs, maxRelative: rel, maxFromCPU: fromCPU,
                   failure: failure, skipped: skipped,
                   seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        if let why = skip(device) { return result(skipped: why) }
        let got: [[Float]], cpu: [[Float]]
        do {
            got = try compute(device).map { try $0.toArray() }
            try device.synchronize()
            cpu = device == .cpu ? got : try compute(.cpu).map { try $0.toArray() }
        } catch {
            return result(failure: "threw: \(error)")
        }
        let expected = reference()
        guard got.count == expected.count, zip(got, expected).allSatisfy({ $0.count == $1.count }) else {
            return result(failure: "gave \(got.map(\.count)) values per output where \(expected.map(\.count)) were expected")
        }
        var (maxAbs, maxRel, maxCPU) = (0.0, 0.0, 0.0)
        var failure: String?
        for (o, (values, wanted)) in zip(got, expected).enumerated() {
            for (i, (g, e)) in zip(values, wanted).enumerated() {
                let c = Double(cpu[o][i]), value = Double(g)
                let close = e.isNaN ? value.isNaN : abs(value - e) <= atol + rtol * abs(e)
                let matchesCPU = e.isNaN ? c.isNaN : abs(value - c) <= atol + rtol * abs(e)
                if e.isFinite && value.isFinite {
                    maxAbs = max(maxAbs, abs(value - e))
                    maxRel = max(maxRel, abs(value - e) / max(abs(e), 1e-30))
                    if c.isFinite { maxCPU = max(maxCPU, abs(value - c)) }
                }
                if failure == nil && !(close && matchesCPU) {
                    failure = "output \(o + 1) element \(i): \(g) where \(Float(e)) was expected (cpu \(cpu[o][i]))"
                }
            }
        }
        return result(maxAbs, maxRel, maxCPU, failure: failure)
    }
}

extension OpCheck {
    /// Every check CLNN ships: each op family's own (defined beside the op), GEMM candidates included.
    public static var all: [OpCheck] {
        let families: [[OpCheck]] = [elementwiseChecks, pointwiseChecks, reductionChecks, activationChecks, biasChecks,
                                     lossChecks, reduceChecks, gatherChecks, optimizerChecks, matmulChecks,
                                     rowsProductChecks, gemmCandidateChecks, linearChecks, convChecks,
                                     poolChecks, batchNormChecks]
        return families.flatMap { $0 }
    }

    /// Deterministic values in [-1, 1) from `seed`: the checks' inputs (and the tests').
    public static func values(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<count).map { _ in Float(rng.nextUniform() * 2 - 1) }
    }

    /// op(A)·op(B) in Double, one multiply-add at a time: the products' reference.
    public static func referenceProduct(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transA: Bool,
                                        transB: Bool) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var acc = 0.0
                for p in 0..<k {
                    acc += Double(transA ? a[p * m + i] : a[i * k + p]) * Double(transB ? b[j * k + p] : b[p * n + j])
                }
                c[i * n + j] = acc
            }
        }
        return c
    }

    /// `values` in Double.
    static func doubles(_ values: [Float]) -> [Double] { values.map(Double.init) }
}
