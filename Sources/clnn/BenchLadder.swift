import ArgumentParser
@_spi(Reference) import Device
import Foundation

extension Bench {
    struct Ladder: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The fast.ai lessons' matmul ladder: the same product from a triple loop up to "
                + "the tuned OpenCL kernel.")

        @Option(help: "Timed runs per step (the median is printed).")
        var runs: Int = 5

        func validate() throws {
            guard runs > 0 else { throw ValidationError("--runs must be at least 1, got \(runs)") }
        }

        func run() throws {
            for (m, k, n) in [(5, 784, 10), (512, 784, 256)] {
                print("\n\(m)x\(k) · \(k)x\(n)")
                let a = (0..<m * k).map { Float(($0 * 7) % 13) / 13 - 0.5 }
                let b = (0..<k * n).map { Float(($0 * 5) % 11) / 11 - 0.5 }
                var rows: [(String, Double)] = []
                func time(_ name: String, runs: Int, _ body: () throws -> [Float]) rethrows {
                    var result: [Float] = []
                    let seconds = try medianSeconds(runs: runs) { result = try body() }
                    rows.append((name, seconds))
                    _ = result
                }
                let slowRuns = m * n * k > 10_000_000 ? 1 : runs
                time("triple loop", runs: slowRuns) { tripleLoop(a, b, m, k, n) }
                time("inner loop vectorised", runs: slowRuns) { innerVectorised(a, b, m, k, n) }
                time("row broadcast", runs: runs) { rowBroadcast(a, b, m, k, n) }
                let ca = try Tensor(a, shape: [m, k]), cb = try Tensor(b, shape: [k, n])
                // The same broadcasting rung with the library's tensors: (a[i, :, None] * b).sum(0), a row at a time.
                func tensorBroadcast(_ a: Tensor, _ b: Tensor) throws -> [Float] {
                    try (0..<m).flatMap { i in try (a[i..<i + 1].transposed() * b).sum(axis: 0).toArray() }
                }
                try time("row broadcast, tensor ops (cpu)", runs: slowRuns) { try tensorBroadcast(ca, cb) }
                try time("einsum \"ik,kj->ij\" (cpu)", runs: runs) { try Tensor.einsum("ik,kj->ij", ca, cb).toArray() }
                try time("CPU fallback (CPUBackend)", runs: runs) { try ca.matmul(cb).toArray() }
                if let tag = DeviceTag.available.first(where: \.isOpenCL) {
                    let ga = try ca.to(tag), gb = try cb.to(tag), gc = try Tensor.empty([m, n], on: tag)
                    try time("naive OpenCL kernel (\(tag))", runs: runs) {
                        try Tensor.matmul(ga, gb, transA: false, transB: false, accumulate: false, into: gc,
                                          naive: true)
                        return try gc.toArray()
                    }
                    try time("row broadcast, tensor ops (\(tag))", runs: slowRuns) { try tensorBroadcast(ga, gb) }
                    try time("einsum \"ik,kj->ij\" (\(tag))", runs: runs) {
                        try Tensor.einsum("ik,kj->ij", ga, gb, into: gc)
                        return try gc.toArray()
                    }
                    try time("tuned OpenCL kernel (\(tag))", runs: runs) {
                        try ga.matmul(gb, into: gc)
                        return try gc.toArray()
                    }
                }
                let base = rows[0].1
                for (name, seconds) in rows {
                    print(name.padding(toLength: 36, withPad: " ", startingAt: 0)
                          + String(format: "%12.1f µs %12.1fx", seconds * 1e6, base / seconds))
                }
            }
        }
    }
}

/// c[i][j] = Σ_k a[i][k]·b[k][j], one multiply-add at a time.
func tripleLoop(_ a: [Float], _ b: [Float], _ m: Int, _ k: Int, _ n: Int) -> [Float] {
    var c = [Float](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            for p in 0..<k { c[i * n + j] += a[i * k + p] * b[p * n + j] }
        }
    }
    return c
}

/// The lessons' second step: the k loop becomes one elementwise product of a row and a column, then a sum, done
/// eight lanes at a time (the column is strided, so its lanes are gathered).
func innerVectorised(_ a: [Float], _ b: [Float], _ m: Int, _ k: Int, _ n: Int) -> [Float] {
    var c = [Float](repeating: 0, count: m * n)
    a.withUnsafeBufferPointer { A in
        b.withUnsafeBufferPointer { B in
            let a = A.baseAddress!, b = B.baseAddress!
            for i in 0..<m {
                for j in 0..<n {
                    var acc = SIMD8<Float>()
                    var p = 0
                    while p + 8 <= k {
                        let row = UnsafeRawPointer(a + i * k + p).loadUnaligned(as: SIMD8<Float>.self)
                        let q = b + p * n + j
                        let column = SIMD8<Float>(q[0], q[n], q[2 * n], q[3 * n],
                                                  q[4 * n], q[5 * n], q[6 * n], q[7 * n])
                        acc += row * column
                        p += 8
                    }
                    var s = acc.sum()
                    while p < k { s += a[i * k + p] * b[p * n + j]; p += 1 }
                    c[i * n + j] = s
                }
            }
        }
    }
    return c
}

/// The lessons' broadcast step: row i of c is Σ_k a[i][k] · (row k of b), a scalar broadcast over a whole row.
func rowBroadcast(_ a: [Float], _ b: [Float], _ m: Int, _ k: Int, _ n: Int) -> [Float] {
    var c = [Float](repeating: 0, count: m * n)
    c.withUnsafeMutableBufferPointer { c in
        b.withUnsafeBufferPointer { b in
            for i in 0..<m {
                let row = c.baseAddress! + i * n
                for p in 0..<k {
                    let s = a[i * k + p]
                    let brow = b.baseAddress! + p * n
                    for j in 0..<n { row[j] += s * brow[j] }
                }
            }
        }
    }
    return c
}
