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
    /// self: [m, k] (or [k, m] with transposeSelf), other: [k, n] (or [n, k] with transposeOther) → [m, n]
    @discardableResult
    public func matmul(_ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false,
                       accumulate: Bool = false, into out: Tensor? = nil) throws -> Tensor {
        try Tensor.matmul(self, other, transA: transposeSelf, transB: transposeOther, accumulate: accumulate, into: out,
                          naive: false)
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
        if accumulate && out == nil { throw DeviceError.invalidArgument(op: "matmul", "accumulate needs an output to add to") }
        let c = try output("matmul", out, [m, n], on: a.device)
        let beta: Float = accumulate ? 1 : 0
        try Tensor.run("matmul", a, b, c) { h in
            if naive {
                matmulNaive(h[0], h[1], h[2], m: m, n: n, k: k, transA: transA, transB: transB, beta: beta)
            } else {
                matmulBlocked(h[0], h[1], h[2], m: m, n: n, k: k, transA: transA, transB: transB, beta: beta)
            }
        } opencl: { d in
            let variant = GemmVariant(transA: transA, transB: transB)
            let kernel = try naive ? nil : variant.map {
                try GemmPlans.shared.launches(for: d.device).pick($0, multiplyAdds: m * n * k)
            }
            try launchMatmul(d.device, d[0], d[1], d[2], m: m, n: n, k: k, transA: transA, transB: transB,
                             kernel: kernel, beta: beta)
        }
        return c
    }
}

private let matmulNaiveKernel = KernelSource("matmul", "matmul_naive")

/// C = op(A)·op(B) + beta·C through `kernel` of matmul.cl, or matmul_naive when it is nil (both transposes, the
/// reference) or when the device cannot hold the kernel's tile (work-group size, local memory).
func launchMatmul(_ device: OpenCLDevice, _ a: CLBuffer, _ b: CLBuffer, _ c: CLBuffer, m: Int, n: Int, k: Int,
                  transA: Bool, transB: Bool, kernel choice: GemmLaunch?, beta: Float) throws {
    let flops = 2 * Double(m) * Double(n) * Double(k)
    if let choice {
        let kernel = try device.kernel(choice.source)
        var fits = true
        if case .tiled(let config) = choice.kernel {
            fits = kernel.maxWorkGroupSize >= config.workGroupSize && device.info.localMemory >= config.localMemoryBytes
        }
        if fits {
            try device.launch(kernel, global: choice.kernel.global(m: m, n: n), local: choice.kernel.local, flops: flops) { x in
                try x.int(m); try x.int(n); try x.int(k); try x.buffer(a); try x.buffer(b); try x.buffer(c); try x.float(beta)
            }
            return
        }
    }
    try device.launch(try device.kernel(matmulNaiveKernel), global: WorkSize(n, m), flops: flops) { x in
        try x.int(m); try x.int(n); try x.int(k); try x.buffer(a); try x.buffer(b); try x.buffer(c)
        try x.int(transA ? 1 : 0); try x.int(transB ? 1 : 0); try x.float(beta)
    }
}

/// The fast CPU product: cache-blocked, packed, SIMD micro-kernel (CGemm), rows split across all cores.
private func matmulBlocked(_ A: UnsafeMutablePointer<Float>, _ B: UnsafeMutablePointer<Float>, _ C: UnsafeMutablePointer<Float>,
                           m: Int, n: Int, k: Int, transA: Bool, transB: Bool, beta: Float) {
    guard m > 0, n > 0 else { return }
    // NOTE: the threads write disjoint rows of C and only read A and B.
    nonisolated(unsafe) let (A, B, C) = (A, B, C)
    let (aRow, aCol) = transA ? (1, m) : (k, 1)
    let (bRow, bCol) = transB ? (1, k) : (n, 1)
    let cores = ProcessInfo.processInfo.activeProcessorCount
    // Small products are not worth waking threads for; chunks are multiples of the 6-row micro-kernel.
    let chunks = m * n * k < 1 << 22 ? 1 : min(cores, (m + 5) / 6)
    let rowsPerChunk = ((m + chunks - 1) / chunks + 5) / 6 * 6
    DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
        let begin = chunk * rowsPerChunk, end = min(m, begin + rowsPerChunk)
        clnn_sgemm_rows(Int32(m), Int32(n), Int32(k), A, aRow, aCol, B, bRow, bCol, C, beta, Int32(begin), Int32(end))
    }
}

/// The reference: c[i][j] = Σ_p op(a)[i][p]·op(b)[p][j] (+ beta·c[i][j]), one multiply-add at a time.
private func matmulNaive(_ A: UnsafeMutablePointer<Float>, _ B: UnsafeMutablePointer<Float>, _ C: UnsafeMutablePointer<Float>,
                         m: Int, n: Int, k: Int, transA: Bool, transB: Bool, beta: Float) {
    for i in 0..<m {
        for j in 0..<n {
            var acc: Float = 0
            for p in 0..<k { acc += (transA ? A[p * m + i] : A[i * k + p]) * (transB ? B[j * k + p] : B[p * n + j]) }
            C[i * n + j] = beta == 0 ? acc : acc + beta * C[i * n + j]
        }
    }
}
