@testable import Device
import TestSupport
import XCTest

final class GemmKernelTests: XCTestCase {
    /// Every candidate the tuner may pick, on every OpenCL device, over the odd shapes: whichever wins is correct.
    func testEveryGemmCandidateMatchesTheReference() throws {
        try requireOpenCL()
        let shapes = [(1, 1, 1), (3, 5, 7), (65, 129, 33), (1, 784, 1), (33, 17, 70), (2, 0, 3), (70, 50, 9)]
        for tag in openCLDevices {
            let device = try OpenCLRuntime.shared.device(tag.index)
            let backend = OpenCLBackend(device: device)
            for variant in GemmVariant.allCases {
                for kernel in GemmPlan.candidates(variant) {
                    for (m, k, n) in shapes {
                        let av = testValues(m * k, seed: 5), bv = testValues(k * n, seed: 6), cv = testValues(m * n, seed: 7)
                        let a = try Tensor(av, shape: variant == .tn ? [k, m] : [m, k], on: tag)
                        let b = try Tensor(bv, shape: variant == .nt ? [n, k] : [k, n], on: tag)
                        let c = try Tensor(cv, shape: [m, n], on: tag)
                        try backend.matmul(a, b, c, m: m, n: n, k: k, variant: variant, kernel: kernel, beta: 1)
                        let product = referenceMatmul(av, bv, m: m, n: n, k: k, transA: variant == .tn, transB: variant == .nt)
                        assertClose(try c.toArray(), zip(product, cv).map { $0 + Double($1) }, rtol: 1e-4, atol: 1e-4,
                                    "\(tag) \(variant) \(kernel) \(m)x\(k)x\(n)")
                    }
                }
            }
        }
    }

    func testDefaultPlansServeTheirVariants() throws {
        try requireOpenCL()
        for info in OpenCLRuntime.shared.devices {
            let plan = GemmPlan.defaults(for: info)
            for variant in GemmVariant.allCases { XCTAssertTrue(plan[variant].serves(variant), "\(variant)") }
        }
        for variant in GemmVariant.allCases {
            XCTAssertTrue(GemmPlan.candidates(variant).allSatisfy { $0.serves(variant) })
        }
    }
}
