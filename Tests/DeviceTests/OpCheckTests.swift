@testable import Device
import TestSupport
import XCTest

/// The op coverage `clnn check` ships to users is the suite's: every check of `OpCheck.all` (each op on odd shapes,
/// each GEMM candidate in each form) passes on every device against its Double reference and the CPU fallback.
final class OpCheckTests: XCTestCase {
    func testEveryOpCheckPassesOnEveryDevice() throws {
        XCTAssertGreaterThan(try run(OpCheck.all.filter { !$0.openCLOnly }), 150 * testDevices.count)
    }

    /// Each GEMM kernel the tuner may pick, plain and in the fused linear forms (OpenCL devices only).
    func testEveryGemmCandidateCheckPassesOnEveryOpenCLDevice() throws {
        try requireOpenCL()
        XCTAssertGreaterThan(try run(OpCheck.all.filter(\.openCLOnly)), 30)
    }

    /// Runs `checks` on every device they apply to; returns how many ran (not skipped).
    private func run(_ checks: [OpCheck]) throws -> Int {
        var ran = 0
        for device in testDevices {
            for check in checks where check.applies(to: device) {
                let result = check.run(on: device)
                XCTAssertTrue(result.passed, "\(check.op) \(check.shape) on \(device): \(result.failure ?? "")")
                if let why = result.skipped { XCTAssertFalse(why.isEmpty) } else { ran += 1 }
            }
        }
        return ran
    }

    /// A check fails when the op is wrong: a reference that differs in one element names it.
    func testACheckNamesTheFirstElementPastTheTolerance() throws {
        let wrong = OpCheck("affine", "3", compute: { d in [try Tensor([1, 2, 3], shape: [3], on: d).affine(scale: 2)] },
                            reference: { [[2, 4, 6.5]] })
        for device in testDevices {
            let result = wrong.run(on: device)
            XCTAssertEqual(result.failure, "output 1 element 2: 6.0 where 6.5 was expected (cpu 6.0)", "\(device)")
            XCTAssertEqual(result.maxAbsolute, 0.5, accuracy: 1e-9)
        }
        let throwing = OpCheck("bad", "1", compute: { d in [try Tensor([1], shape: [2], on: d)] }, reference: { [[1]] })
        XCTAssertTrue(throwing.run(on: .cpu).failure?.hasPrefix("threw: ") ?? false)
    }
}
