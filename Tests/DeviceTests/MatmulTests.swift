@_spi(Reference) import Device
import TestSupport
import XCTest

/// The shapes every matmul test runs: tiny, odd, not multiples of any tile, and the MLP's own.
let matmulShapes: [(m: Int, k: Int, n: Int)] = [
    (1, 1, 1), (3, 5, 7), (65, 129, 33), (1, 784, 1), (64, 784, 50), (33, 17, 70), (2, 0, 3),
]

/// op(a)·op(b) in Double: the reference every device is compared against (the checks' own).
func referenceMatmul(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transA: Bool, transB: Bool) -> [Double] {
    OpCheck.referenceProduct(a, b, m: m, n: n, k: k, transA: transA, transB: transB)
}

final class MatmulTests: XCTestCase {
    func testMatmulMatchesReferenceOnEveryDeviceAndTransposition() throws {
        for device in testDevices {
            for (m, k, n) in matmulShapes {
                for (transA, transB) in [(false, false), (false, true), (true, false), (true, true)] {
                    let av = testValues(m * k, seed: 1), bv = testValues(k * n, seed: 2)
                    let a = try Tensor(av, shape: transA ? [k, m] : [m, k], on: device)
                    let b = try Tensor(bv, shape: transB ? [n, k] : [k, n], on: device)
                    let expected = referenceMatmul(av, bv, m: m, n: n, k: k, transA: transA, transB: transB)
                    let label = "\(device) \(m)x\(k)·\(k)x\(n) tA=\(transA) tB=\(transB)"
                    let c = try a.matmul(b, transposeSelf: transA, transposeOther: transB)
                    XCTAssertEqual(c.shape, [m, n])
                    assertClose(try c.toArray(), expected, rtol: 1e-4, atol: 1e-4, label)

                    let naive = try Tensor.zeros([m, n], on: device)
                    try Tensor.matmul(a, b, transA: transA, transB: transB, accumulate: false, into: naive, naive: true)
                    assertClose(try naive.toArray(), expected, rtol: 1e-4, atol: 1e-4, "naive " + label)
                }
            }
        }
    }

    /// The cache-blocked CPU product past the small path (2²² multiply-adds and up): a narrow B (50 and 61 columns: A
    /// read in place, row-major or transposed), a wide one (A packed), K split into equal blocks (785 = 197 + 196 · 3,
    /// 300 = 150 · 2), rows not a multiple of the 6-row tile and split across threads; accumulating too.
    func testBlockedCPUProductOnNarrowAndWideShapes() throws {
        for (m, k, n) in [(203, 785, 50), (230, 300, 61), (14, 300, 1000)] {
            for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
                let av = testValues(m * k, seed: 3), bv = testValues(k * n, seed: 4), cv = testValues(m * n, seed: 5)
                let a = try Tensor(av, shape: transA ? [k, m] : [m, k])
                let b = try Tensor(bv, shape: transB ? [n, k] : [k, n])
                let product = referenceMatmul(av, bv, m: m, n: n, k: k, transA: transA, transB: transB)
                let label = "\(m)x\(k)·\(k)x\(n) tA=\(transA) tB=\(transB)"
                let c = try a.matmul(b, transposeSelf: transA, transposeOther: transB)
                assertClose(try c.toArray(), product, rtol: 1e-4, atol: 1e-4, label)
                let accumulated = try Tensor(cv, shape: [m, n])
                try Tensor.matmul(a, b, transA: transA, transB: transB, accumulate: true, into: accumulated, naive: false)
                assertClose(try accumulated.toArray(), zip(product, cv).map { $0 + Double($1) }, rtol: 1e-4,
                            atol: 1e-4, "accumulating " + label)
            }
        }
    }

    func testGemmAccumulatesIntoExistingValues() throws {
        for device in testDevices {
            let (m, k, n) = (37, 19, 41)
            let av = testValues(m * k, seed: 3), bv = testValues(k * n, seed: 4), cv = testValues(m * n, seed: 5)
            let a = try Tensor(av, shape: [m, k], on: device)
            let b = try Tensor(bv, shape: [k, n], on: device)
            let c = try Tensor(cv, shape: [m, n], on: device)
            try a.matmul(b, accumulate: true, into: c)
            let product = referenceMatmul(av, bv, m: m, n: n, k: k, transA: false, transB: false)
            let expected = zip(product, cv).map { $0 + Double($1) }
            assertClose(try c.toArray(), expected, rtol: 1e-4, atol: 1e-4, "\(device)")
        }
    }

    func testOpenCLMatmulMatchesCPUFallback() throws {
        try requireOpenCL()
        for device in openCLDevices {
            for (m, k, n) in matmulShapes {
                let a = try Tensor.randn([m, k], seed: 11)
                let b = try Tensor.randn([k, n], seed: 12)
                let cpu = try a.matmul(b).toArray()
                let gpu = try a.to(device).matmul(b.to(device)).toArray()
                assertClose(gpu, cpu, rtol: 1e-4, atol: 1e-4, "\(device) \(m)x\(k)x\(n)")
            }
        }
    }

    func testMatmulGradientsMatchFiniteDifferences() throws {
        // L = Σ (A·B) ∘ R, so dL/dA = R·Bᵀ and dL/dB = Aᵀ·R: the two gradient products a linear layer needs.
        let (m, k, n) = (5, 7, 3)
        let av = testValues(m * k, seed: 21), bv = testValues(k * n, seed: 22), rv = testValues(m * n, seed: 23)
        func loss(_ a: [Double], _ b: [Double]) -> Double {
            var total = 0.0
            for i in 0..<m {
                for j in 0..<n { for p in 0..<k { total += a[i * k + p] * b[p * n + j] * Double(rv[i * n + j]) } }
            }
            return total
        }
        let ad = av.map(Double.init), bd = bv.map(Double.init)
        let numericA = finiteDifferences(ad) { loss($0, bd) }
        let numericB = finiteDifferences(bd) { loss(ad, $0) }
        for device in testDevices {
            let a = try Tensor(av, shape: [m, k], on: device)
            let b = try Tensor(bv, shape: [k, n], on: device)
            let r = try Tensor(rv, shape: [m, n], on: device)
            let dA = try r.matmul(b, transposeOther: true)
            let dB = try a.matmul(r, transposeSelf: true)
            assertClose(try dA.toArray(), numericA, rtol: 1e-4, atol: 1e-4, "dA on \(device)")
            assertClose(try dB.toArray(), numericB, rtol: 1e-4, atol: 1e-4, "dB on \(device)")
        }
    }

    func testMatmulShapeMismatchNamesOpAndShapes() throws {
        let a = try Tensor.zeros([2, 3]), b = try Tensor.zeros([4, 5])
        XCTAssertThrowsError(try a.matmul(b)) { error in
            XCTAssertEqual(error as? DeviceError, .shapeMismatch(op: "matmul", [2, 3], [4, 5]))
            XCTAssertEqual("\(error)", "matmul: shapes [2, 3] and [4, 5] do not fit together")
        }
        XCTAssertThrowsError(try Tensor.zeros([3]).matmul(b))
    }

    func testOperandsOnDifferentDevicesAreAnError() throws {
        try requireOpenCL()
        let a = try Tensor.zeros([2, 3]), b = try Tensor.zeros([3, 2], on: .opencl(0))
        XCTAssertThrowsError(try a.matmul(b)) { error in
            XCTAssertEqual(error as? DeviceError, .deviceMismatch(op: "matmul", .cpu, .opencl(0)))
            XCTAssertTrue("\(error)".contains("cpu and opencl:0"), "\(error)")
        }
        XCTAssertThrowsError(try a.activation(.relu).addBias(try Tensor.zeros([3], on: .opencl(0))))
    }
}
