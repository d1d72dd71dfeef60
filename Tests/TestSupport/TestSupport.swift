import Device
import NN
import Foundation
import XCTest

/// Every device a test should cover: cpu, then each OpenCL device.
public var testDevices: [DeviceTag] { DeviceTag.available }

/// The OpenCL devices only (empty when the machine has none).
public var openCLDevices: [DeviceTag] { DeviceTag.available.filter(\.isOpenCL) }

/// Skips the calling test when there is no OpenCL device.
public func requireOpenCL(count: Int = 1) throws {
    let have = openCLDevices.count
    if have < count {
        let why = OpenCLRuntime.shared.discoveryNote.map { " (\($0))" } ?? ""
        throw XCTSkip("needs \(count) OpenCL device(s), found \(have)\(why)")
    }
}

/// Asserts |actual − expected| ≤ atol + rtol·|expected| elementwise, reporting the worst element.
public func assertClose<A: BinaryFloatingPoint, B: BinaryFloatingPoint>(
    _ actual: [A], _ expected: [B], rtol: Double = 1e-5, atol: Double = 1e-5, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    guard actual.count == expected.count else {
        XCTFail("\(message): \(actual.count) values, expected \(expected.count)", file: file, line: line)
        return
    }
    var worst = -1
    var worstExcess = 0.0
    for i in actual.indices {
        let a = Double(actual[i]), e = Double(expected[i])
        let excess = abs(a - e) - (atol + rtol * abs(e))
        if excess > worstExcess || a.isNaN != e.isNaN {
            worst = i
            worstExcess = a.isNaN != e.isNaN ? .infinity : excess
        }
    }
    if worst >= 0 {
        XCTFail("\(message): element \(worst) is \(actual[worst]), expected \(expected[worst]) "
                + "(rtol \(rtol), atol \(atol))", file: file, line: line)
    }
}

/// Deterministic test values in [-1, 1) from `seed`.
public func testValues(_ count: Int, seed: UInt64) -> [Float] {
    OpCheck.values(count, seed: seed)
}

/// Central finite differences in Double of `f` at `x`.
public func finiteDifferences(_ x: [Double], step: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
    GradientCheck.finiteDifferences(x, step: step, f)
}
