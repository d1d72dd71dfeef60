import Device
import Foundation
import TestSupport
import XCTest

/// Shapes for the elementwise and row-wise ops: a scalar, odd sizes, and a batch of the MLP's hidden layer.
let rowShapes: [(rows: Int, cols: Int)] = [(1, 1), (3, 5), (65, 33), (64, 50), (7, 10), (0, 4)]

final class OpsTests: XCTestCase {
    /// Runs `op` on cpu and on every OpenCL device with the same inputs, and compares each device with cpu.
    /// `op` returns the tensors to compare; `check` tests the cpu results against a Double reference.
    func compareOnEveryDevice(_ label: String, rtol: Double = 1e-5, atol: Double = 1e-5,
                              _ op: (DeviceTag) throws -> [Tensor], check: ([[Float]]) -> Void) throws {
        let cpu = try op(.cpu).map { try $0.toArray() }
        check(cpu)
        for device in openCLDevices {
            let got = try op(device)
            XCTAssertTrue(got.allSatisfy { $0.device == device }, "\(label): result left \(device)")
            for (g, c) in zip(got, cpu) {
                assertClose(try g.toArray(), c, rtol: rtol, atol: atol, "\(label) on \(device)")
            }
        }
    }

    func testActivationGradientsMatchFiniteDifferences() throws {
        for f in Activation.allCases {
            // Values are kept away from 0, where relu and leaky relu have no derivative.
            let xv = testValues(40, seed: 33).map { $0 < 0 ? $0 - 0.1 : $0 + 0.1 }, rv = testValues(40, seed: 34)
            let numeric = finiteDifferences(xv.map(Double.init)) { x in
                zip(x, rv).reduce(0) { $0 + f($1.0) * Double($1.1) }
            }
            for device in testDevices {
                let x = try Tensor(xv, shape: [4, 10], on: device)
                let dx = try x.activationBackward(f, try Tensor(rv, shape: [4, 10], on: device))
                assertClose(try dx.toArray(), numeric, rtol: 1e-4, atol: 1e-4, "\(f) gradient on \(device)")
            }
        }
    }

    /// The bias-activation backward sums each column of the bias gradient as the kernel does (from zero down the
    /// rows, the earlier gradient added last), so accumulating gives the same bits on cpu and on an OpenCL device
    /// (a batch short enough for the kernel's one-pass form; ReLU's derivative is exact).
    func testBiasActivationBackwardAccumulatesInTheKernelsOrder() throws {
        for (rows, cols) in [(65, 33), (200, 7)] {
            let zv = testValues(rows * cols, seed: 51), dyv = testValues(rows * cols, seed: 52).map { $0 * 1e3 }
            let earlier = testValues(cols, seed: 53).map { $0 * 1e-3 }
            func run(_ device: DeviceTag) throws -> [Float] {
                let db = try Tensor(earlier, shape: [cols], on: device)
                let z = try Tensor(zv, shape: [rows, cols], on: device)
                _ = try Tensor.biasActivationBackward(.relu, preActivation: z,
                                                      try Tensor(dyv, shape: [rows, cols], on: device), db: db,
                                                      accumulate: true)
                return try db.toArray()
            }
            let cpu = try run(.cpu)
            var inOrder = [Float](repeating: 0, count: cols)
            for i in 0..<rows { for j in 0..<cols where zv[i * cols + j] > 0 { inOrder[j] += dyv[i * cols + j] } }
            XCTAssertEqual(cpu, zip(inOrder, earlier).map { $0 + $1 }, "cpu, \(rows)x\(cols)")
            for device in openCLDevices {
                XCTAssertEqual(try run(device), cpu, "\(device) and cpu, \(rows)x\(cols)")
            }
        }
    }

    func testGatherRowsMatchesReferenceOnEveryDevice() throws {
        let (n, cols) = (37, 13)
        let src = testValues(n * cols, seed: 95)
        // A shuffled order with bad entries at the end: unchecked, out of range, negative and NaN are clamped, never
        // read out of bounds.
        let order: [Float] = (0..<n).map { Float(($0 * 11) % n) } + [1000, -5, .nan]
        for (offset, rows) in [(0, 5), (30, 7), (3, 0), (n, 3)] {
            try compareOnEveryDevice("gather \(offset)+\(rows)") { d in
                let dst = try Tensor.zeros([rows, cols], on: d)
                try dst.gatherRows(from: try Tensor(src, shape: [n, cols], on: d),
                                   order: try Tensor(order, shape: [order.count], on: d), offset: offset,
                                   checkingIndices: offset + rows <= n)
                let labels = try Tensor.zeros([rows], on: d)
                try labels.gatherRows(from: try Tensor((0..<n).map(Float.init), shape: [n], on: d),
                                      order: try Tensor(order, shape: [order.count], on: d), offset: offset,
                                      checkingIndices: offset + rows <= n)
                return [dst, labels]
            } check: { r in
                let picked = (offset..<offset + rows).map { i -> Int in
                    let v = order[i]
                    return v.isNaN || v < 0 ? 0 : min(Int(v), n - 1)
                }
                assertClose(r[0], picked.flatMap { row in (0..<cols).map { src[row * cols + $0] } }, "rows")
                assertClose(r[1], picked.map(Float.init), "labels")
            }
        }
        XCTAssertThrowsError(try Tensor.zeros([4, cols]).gatherRows(from: try Tensor(src, shape: [n, cols]),
                                                                    order: try Tensor.zeros([3]), offset: 0))
    }

    /// An order entry that is not a row (past the end, negative, fractional, NaN) is an error naming it, from
    /// `gatherRows` and `Rows` on every device, and nothing is written; good entries around it are read as given.
    func testAnOrderEntryThatIsNotARowIsRefusedNamingIt() throws {
        for device in testDevices {
            let source = try Tensor((0..<12).map(Float.init), shape: [4, 3], on: device)
            for (bad, text) in [(Float(4), "4.0"), (-1, "-1.0"), (2.5, "2.5"), (.nan, "nan"), (.infinity, "inf")] {
                let order = try Tensor([3, 0, bad, 1], shape: [4], on: device)
                let out = try Tensor.full([2, 3], value: 7, on: device)
                XCTAssertThrowsError(try out.gatherRows(from: source, order: order, offset: 1)) {
                    XCTAssertEqual("\($0)", "gatherRows: order entry 2 is \(text), not a row index in 0..<4",
                                   "\(device)")
                }
                XCTAssertEqual(try out.toArray(), [Float](repeating: 7, count: 6), "nothing written on \(device)")
                XCTAssertThrowsError(try Rows(source, order: order, offset: 0, count: 4)) {
                    XCTAssertTrue("\($0)".contains("Rows: order entry 2 is \(text)"), "\($0)")
                }
                XCTAssertEqual(try Rows(source, order: order, offset: 0, count: 2).gathered().toArray(),
                               [9, 10, 11, 0, 1, 2], "the entries before it on \(device)")
                let one = try Tensor.zeros([1, 3], on: device)
                try one.gatherRows(from: source, order: order, offset: 3)
                XCTAssertEqual(try one.toArray(), [3, 4, 5], "the entry after it on \(device)")
            }
        }
    }

    func testOpsRejectMismatchedShapes() throws {
        let x = try Tensor.zeros([2, 3])
        XCTAssertThrowsError(try x.addBias(try Tensor.zeros([2]))) { error in
            XCTAssertEqual(error as? DeviceError, .shapeMismatch(op: "addBias (bias)", [2], [3]))
        }
        XCTAssertThrowsError(try x.elementwise(.add, try Tensor.zeros([3, 2])))
        XCTAssertThrowsError(try x.activationBackward(.relu, try Tensor.zeros([6])))
        XCTAssertThrowsError(try x.softmaxCrossEntropy(labels: try Tensor.zeros([3])))
        XCTAssertThrowsError(try Tensor([1, 2], shape: [3]))
        XCTAssertThrowsError(try Tensor.zeros([-1, 2]))
    }
}
