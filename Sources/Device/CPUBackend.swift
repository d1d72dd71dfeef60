import CGemm
import Foundation

/// The CPU implementation of every op: simple loops, written to be read and to serve as the reference the OpenCL
/// kernels are tested against. Only the matrix product has a fast path (`matmul`: blocked SIMD on all cores); its
/// plain triple loop stays as `matmulNaive`.
struct CPUBackend: Backend {
    /// The fast product: cache-blocked, packed, SIMD micro-kernel (CGemm), rows split across all cores.
    func matmul(_ a: Tensor, _ b: Tensor, _ c: Tensor, m: Int, n: Int, k: Int,
                transA: Bool, transB: Bool, beta: Float) throws {
        guard m > 0, n > 0 else { return }
        // NOTE: the threads write disjoint rows of C and only read A and B.
        nonisolated(unsafe) let A = a.hostPointer, B = b.hostPointer, C = c.hostPointer
        let (aRow, aCol) = transA ? (1, m) : (k, 1)
        let (bRow, bCol) = transB ? (1, k) : (n, 1)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        // Small products are not worth waking threads for; chunks are multiples of the 6-row micro-kernel.
        let chunks = m * n * k < 1 << 18 ? 1 : min(cores, (m + 5) / 6)
        let rowsPerChunk = ((m + chunks - 1) / chunks + 5) / 6 * 6
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let begin = chunk * rowsPerChunk, end = min(m, begin + rowsPerChunk)
            clnn_sgemm_rows(Int32(m), Int32(n), Int32(k), A, aRow, aCol, B, bRow, bCol, C, beta, Int32(begin), Int32(end))
        }
    }

    func matmulNaive(_ a: Tensor, _ b: Tensor, _ c: Tensor, m: Int, n: Int, k: Int,
                     transA: Bool, transB: Bool, beta: Float) throws {
        let A = a.hostPointer, B = b.hostPointer, C = c.hostPointer
        for i in 0..<m {
            for j in 0..<n {
                var acc: Float = 0
                for p in 0..<k {
                    acc += (transA ? A[p * m + i] : A[i * k + p]) * (transB ? B[j * k + p] : B[p * n + j])
                }
                C[i * n + j] = beta == 0 ? acc : acc + beta * C[i * n + j]
            }
        }
    }

    func reluForward(_ x: Tensor, _ y: Tensor) throws {
        let X = x.hostPointer, Y = y.hostPointer
        for i in 0..<x.count { Y[i] = max(X[i], 0) }
    }

    func reluBackward(_ x: Tensor, _ dy: Tensor, _ dx: Tensor) throws {
        let X = x.hostPointer, DY = dy.hostPointer, DX = dx.hostPointer
        for i in 0..<x.count { DX[i] = X[i] > 0 ? DY[i] : 0 }
    }

    func biasForward(_ x: Tensor, _ b: Tensor, _ y: Tensor, rows: Int, cols: Int) throws {
        let X = x.hostPointer, Bv = b.hostPointer, Y = y.hostPointer
        for i in 0..<rows {
            for j in 0..<cols { Y[i * cols + j] = X[i * cols + j] + Bv[j] }
        }
    }

    func biasBackward(_ dy: Tensor, _ db: Tensor, rows: Int, cols: Int, beta: Float) throws {
        let DY = dy.hostPointer, DB = db.hostPointer
        var sums = [Float](repeating: 0, count: cols)
        for i in 0..<rows {
            for j in 0..<cols { sums[j] += DY[i * cols + j] }
        }
        for j in 0..<cols { DB[j] = beta == 0 ? sums[j] : sums[j] + beta * DB[j] }
    }

    func biasReluForward(_ x: Tensor, _ b: Tensor, _ y: Tensor, rows: Int, cols: Int) throws {
        let X = x.hostPointer, Bv = b.hostPointer, Y = y.hostPointer
        for i in 0..<rows {
            for j in 0..<cols { Y[i * cols + j] = max(X[i * cols + j] + Bv[j], 0) }
        }
    }

    func biasReluBackward(_ y: Tensor, _ dy: Tensor, _ dx: Tensor, _ db: Tensor, rows: Int, cols: Int, beta: Float) throws {
        let Y = y.hostPointer, DY = dy.hostPointer, DX = dx.hostPointer, DB = db.hostPointer
        var sums = [Float](repeating: 0, count: cols)
        for i in 0..<rows {
            for j in 0..<cols {
                let g = Y[i * cols + j] > 0 ? DY[i * cols + j] : 0
                DX[i * cols + j] = g
                sums[j] += g
            }
        }
        for j in 0..<cols { DB[j] = beta == 0 ? sums[j] : sums[j] + beta * DB[j] }
    }

    func softmaxXent(_ logits: Tensor, _ labels: Tensor, _ losses: Tensor, _ grad: Tensor?,
                     rows: Int, cols: Int, gradScale: Float) throws {
        let Z = logits.hostPointer, L = labels.hostPointer, OUT = losses.hostPointer
        for i in 0..<rows {
            let z = Z + i * cols
            var m = z[0]
            for j in 1..<cols { m = max(m, z[j]) }
            var s: Float = 0
            for j in 0..<cols { s += expf(z[j] - m) }
            let lse = m + logf(s)
            let label = Int(L[i])
            let valid = label >= 0 && label < cols
            OUT[i] = valid ? lse - z[label] : .nan
            if let grad {
                let g = grad.hostPointer + i * cols
                for j in 0..<cols { g[j] = gradScale * (expf(z[j] - lse) - (j == label ? 1 : 0)) }
            }
        }
    }

    func mse(_ pred: Tensor, _ target: Tensor, _ losses: Tensor, _ grad: Tensor?, gradScale: Float) throws {
        let P = pred.hostPointer, T = target.hostPointer, OUT = losses.hostPointer
        for i in 0..<pred.count {
            let d = P[i] - T[i]
            OUT[i] = d * d
            if let grad { grad.hostPointer[i] = gradScale * 2 * d }
        }
    }

    func sumAll(_ x: Tensor, _ out: Tensor) throws {
        let X = x.hostPointer
        var acc: Double = 0  // Double, like the kernel's compensated sum, keeps long sums accurate
        for i in 0..<x.count { acc += Double(X[i]) }
        out.hostPointer[0] = Float(acc)
    }

    func argmaxRows(_ x: Tensor, _ out: Tensor, rows: Int, cols: Int) throws {
        let X = x.hostPointer, OUT = out.hostPointer
        for i in 0..<rows {
            var best = 0
            for j in 1..<max(cols, 1) where X[i * cols + j] > X[i * cols + best] { best = j }
            OUT[i] = Float(best)
        }
    }

    func elementwise(_ op: BinaryOp, _ x: Tensor, _ y: Tensor, _ out: Tensor) throws {
        let X = x.hostPointer, Y = y.hostPointer, OUT = out.hostPointer
        switch op {
        case .add: for i in 0..<x.count { OUT[i] = X[i] + Y[i] }
        case .sub: for i in 0..<x.count { OUT[i] = X[i] - Y[i] }
        case .mul: for i in 0..<x.count { OUT[i] = X[i] * Y[i] }
        }
    }

    func affine(_ x: Tensor, alpha: Float, beta: Float, _ out: Tensor) throws {
        let X = x.hostPointer, OUT = out.hostPointer
        for i in 0..<x.count { OUT[i] = alpha * X[i] + beta }
    }

    func fill(_ x: Tensor, _ value: Float) throws {
        x.hostPointer.update(repeating: value, count: x.count)
    }

    func gatherRows(_ src: Tensor, _ order: Tensor, offset: Int, _ dst: Tensor, rows: Int, cols: Int) throws {
        let S = src.hostPointer, O = order.hostPointer, D = dst.hostPointer
        let srcRows = src.count / max(cols, 1)
        for r in 0..<rows {
            let v = O[offset + r]  // clamped, as in the kernel (NaN reads row 0)
            let from = v >= Float(srcRows - 1) ? srcRows - 1 : (v > 0 ? Int(v) : 0)
            (D + r * cols).update(from: S + from * cols, count: cols)
        }
    }

    func sgdStep(_ param: Tensor, _ grad: Tensor, _ velocity: Tensor?,
                 lr: Float, momentum: Float, weightDecay: Float) throws {
        let P = param.hostPointer, G = grad.hostPointer
        for i in 0..<param.count {
            var g = G[i] + weightDecay * P[i]
            if momentum > 0, let velocity {
                g = momentum * velocity.hostPointer[i] + g
                velocity.hostPointer[i] = g
            }
            P[i] -= lr * g
        }
    }
}
