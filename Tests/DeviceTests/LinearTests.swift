@testable import Device
import TestSupport
import XCTest

/// The fused linear products (`Tensor.linear`, `Tensor.linearBackward`), reading their rows through an index list,
/// against a Double reference that gathers first, on every device and on shapes that are not multiples of any tile.
final class LinearTests: XCTestCase {
    /// (batch, in, out): tiny, odd, the default model's first and second layer, and K past the CPU small path.
    let shapes = [(1, 1, 1), (7, 13, 11), (65, 37, 50), (64, 784, 50), (64, 50, 10), (3, 5, 17), (2, 2100, 3),
                  (2100, 3, 2)]

    /// Source rows, and an order over them that repeats rows and holds indices out of range (read as clamped).
    func rowsFixture(batch: Int, inputs: Int, on device: DeviceTag, offset: Int = 2)
        throws -> (rows: Rows, gathered: [Float])
    {
        let sourceRows = batch + 3
        let source = testValues(sourceRows * inputs, seed: 11)
        var order = (0..<(batch + offset)).map { Float(($0 * 5 + 1) % sourceRows) }
        order[offset] = Float(sourceRows + 9)  // clamped to the last row
        if batch > 1 { order[offset + 1] = -4 }  // clamped to row 0
        let picked = order[offset..<(offset + batch)].map { min(max(Int($0), 0), sourceRows - 1) }
        let gathered = picked.flatMap { source[($0 * inputs)..<(($0 + 1) * inputs)] }
        let rows = try Rows(try Tensor(source, shape: [sourceRows, inputs], on: device),
                            order: try Tensor(order, shape: [order.count], on: device), offset: offset, count: batch)
        return (rows, gathered)
    }

    func testFusedLinearForwardMatchesReferenceOnEveryDevice() throws {
        for device in testDevices {
            for (batch, inputs, outputs) in shapes {
                let (x, gathered) = try rowsFixture(batch: batch, inputs: inputs, on: device)
                let wv = testValues(inputs * outputs, seed: 12), bv = testValues(outputs, seed: 13)
                let w = try Tensor(wv, shape: [inputs, outputs], on: device),
                    b = try Tensor(bv, shape: [outputs], on: device)
                let product = referenceMatmul(gathered, wv, m: batch, n: outputs, k: inputs, transA: false,
                                              transB: false)
                let zExpected = product.enumerated().map { $0.element + Double(bv[$0.offset % outputs]) }
                for activation in [nil] + Activation.allCases {
                    let label = "\(device) \(batch)x\(inputs)→\(outputs) \(activation?.rawValue ?? "none")"
                    let z = try Tensor.zeros([batch, outputs], on: device),
                        y = try Tensor.zeros([batch, outputs], on: device)
                    try Tensor.linear(x, weight: w, bias: b, activation: activation, preActivation: z, output: y)
                    assertClose(try z.toArray(), zExpected, rtol: 1e-4, atol: 1e-4, "z " + label)
                    if let activation {
                        assertClose(try y.toArray(), zExpected.map { activation($0) }, rtol: 1e-4, atol: 1e-4,
                                    "y " + label)
                    }
                }
            }
        }
    }

    func testFusedLinearBackwardMatchesReferenceOnEveryDevice() throws {
        for device in testDevices {
            for (batch, inputs, outputs) in shapes {
                let (x, gathered) = try rowsFixture(batch: batch, inputs: inputs, on: device)
                let dzv = testValues(batch * outputs, seed: 14)
                let dz = try Tensor(dzv, shape: [batch, outputs], on: device)
                let dwExpected = referenceMatmul(gathered, dzv, m: inputs, n: outputs, k: batch, transA: true,
                                                 transB: false)
                let dbExpected = (0..<outputs).map { j in
                    (0..<batch).reduce(0.0) { $0 + Double(dzv[$1 * outputs + j]) }
                }
                for accumulate in [false, true] {
                    let label = "\(device) \(batch)x\(inputs)→\(outputs) accumulate \(accumulate)"
                    let dw0 = testValues(inputs * outputs, seed: 15), db0 = testValues(outputs, seed: 16)
                    let dw = try Tensor(dw0, shape: [inputs, outputs], on: device),
                        db = try Tensor(db0, shape: [outputs], on: device)
                    try Tensor.linearBackward(x, dz, weightGradient: dw, biasGradient: db, accumulate: accumulate)
                    let base = { (v: [Float], i: Int) in accumulate ? Double(v[i]) : 0 }
                    assertClose(try dw.toArray(), dwExpected.indices.map { dwExpected[$0] + base(dw0, $0) },
                                rtol: 1e-4, atol: 1e-4, "dw " + label)
                    assertClose(try db.toArray(), dbExpected.indices.map { dbExpected[$0] + base(db0, $0) },
                                rtol: 1e-4, atol: 1e-4, "db " + label)
                    // Without the bias gradient, dw alone.
                    let dwOnly = try Tensor(dw0, shape: [inputs, outputs], on: device)
                    try Tensor.linearBackward(x, dz, weightGradient: dwOnly, biasGradient: nil, accumulate: accumulate)
                    assertClose(try dwOnly.toArray(), dwExpected.indices.map { dwExpected[$0] + base(dw0, $0) },
                                rtol: 1e-4, atol: 1e-4, "dw only " + label)
                }
            }
        }
    }

    /// Whichever kernel the tuner picks, its fused forms compute the same as the plain product and the loops.
    func testEveryGemmCandidatesFusedFormsMatchTheReference() throws {
        try requireOpenCL()
        let (batch, inputs, outputs) = (37, 29, 21)
        for tag in openCLDevices {
            let (x, gathered) = try rowsFixture(batch: batch, inputs: inputs, on: tag)
            let wv = testValues(inputs * outputs, seed: 12), bv = testValues(outputs, seed: 13)
            let dzv = testValues(batch * outputs, seed: 14)
            let (w, b) = (try Tensor(wv, shape: [inputs, outputs], on: tag), try Tensor(bv, shape: [outputs], on: tag))
            let dz = try Tensor(dzv, shape: [batch, outputs], on: tag)
            let z = referenceMatmul(gathered, wv, m: batch, n: outputs, k: inputs, transA: false, transB: false)
                .enumerated().map { $0.element + Double(bv[$0.offset % outputs]) }
            let dwExpected = referenceMatmul(gathered, dzv, m: inputs, n: outputs, k: batch, transA: true,
                                             transB: false)
            let dbExpected = (0..<outputs).map { j in (0..<batch).reduce(0.0) { $0 + Double(dzv[$1 * outputs + j]) } }
            for kernel in GemmPlan.candidates(.nn) {
                let launch = GemmLaunch(kernel, .nn)
                let (zOut, yOut) = (try Tensor.zeros([batch, outputs], on: tag),
                                    try Tensor.zeros([batch, outputs], on: tag))
                try Tensor.run("linear", x.source, x.order!, w, b, zOut, yOut) { _, _, _, _, _, _ in
                } opencl: { device, x0, order, w, b, z, y in
                    try launchMatmul(device, x0, w, z, m: batch, n: outputs, k: inputs, transA: false, transB: false,
                                     kernel: launch, beta: 0,
                                     fusion: GemmFusion(gatherA: true, bias: true, activation: .gelu),
                                     extra: GemmFusionOperands(order: order, offset: x.offset, aRows: x.sourceRows,
                                                               bias: b, y: y))
                }
                assertClose(try zOut.toArray(), z, rtol: 1e-4, atol: 1e-4, "\(tag) \(kernel) z")
                assertClose(try yOut.toArray(), z.map { Activation.gelu($0) }, rtol: 1e-4, atol: 1e-4,
                            "\(tag) \(kernel) y")
            }
            for kernel in GemmPlan.candidates(.tn) {
                let launch = GemmLaunch(kernel, .tn)
                let (dw, db) = (try Tensor.zeros([inputs, outputs], on: tag), try Tensor.zeros([outputs], on: tag))
                try Tensor.run("linearBackward", x.source, x.order!, dz, dw, db) { _, _, _, _, _ in
                } opencl: { device, x0, order, dz, dw, db in
                    try launchMatmul(device, x0, dz, dw, m: inputs, n: outputs, k: batch, transA: true, transB: false,
                                     kernel: launch, beta: 0, fusion: GemmFusion(gatherA: true, biasGradient: true),
                                     extra: GemmFusionOperands(order: order, offset: x.offset, aRows: x.sourceRows,
                                                               db: db))
                }
                assertClose(try dw.toArray(), dwExpected, rtol: 1e-4, atol: 1e-4, "\(tag) \(kernel) dw")
                assertClose(try db.toArray(), dbExpected, rtol: 1e-4, atol: 1e-4, "\(tag) \(kernel) db")
            }
        }
    }

    func testEveryFusionHasItsOwnSourceSlot() {
        XCTAssertEqual(GemmFusion.all.count, GemmFusion.count)
        for (i, fusion) in GemmFusion.all.enumerated() { XCTAssertEqual(fusion.index, i, "\(fusion)") }
        XCTAssertEqual(GemmFusion.none.index, 0)
    }

    func testMeanLossReadsLabelsThroughTheOrder() throws {
        for device in testDevices {
            let (rows, cols) = (9, 4)
            let logits = try Tensor(testValues(rows * cols, seed: 17), shape: [rows, cols], on: device)
            let labels = (0..<12).map { Float($0 % cols) }
            let order = (0..<12).map { Float((11 - $0) % 12) }
            let picked = try Tensor((0..<rows).map { labels[Int(order[2 + $0])] }, shape: [rows], on: device)
            let rowsOfLabels = try Rows(try Tensor(labels, shape: [12], on: device),
                                        order: try Tensor(order, shape: [12], on: device), offset: 2, count: rows)
            let (expected, actual) = (try Tensor.zeros([1], on: device), try Tensor.zeros([1], on: device))
            let (g1, g2) = (try Tensor.zeros([rows, cols], on: device), try Tensor.zeros([rows, cols], on: device))
            try logits.meanLoss(.softmaxCrossEntropy, labels: picked, grad: g1, into: expected)
            try logits.meanLoss(.softmaxCrossEntropy, labels: rowsOfLabels, grad: g2, into: actual)
            assertClose(try actual.toArray(), try expected.toArray(), "\(device) loss")
            assertClose(try g2.toArray(), try g1.toArray(), "\(device) grad")
        }
    }

    func testRowsRejectAnOrderTooShortOrOnAnotherDevice() throws {
        let source = try Tensor.zeros([4, 3])
        let order = try Tensor([0, 1, 2], shape: [3])
        XCTAssertThrowsError(try Rows(source, order: order, offset: 1, count: 3))
        XCTAssertThrowsError(try Rows(source, order: order, offset: -1, count: 1))
        let rows = try Rows(source, order: order, offset: 1, count: 2)
        XCTAssertEqual(rows.shape, [2, 3])
        if let other = openCLDevices.first {
            XCTAssertThrowsError(try Rows(source, order: try order.to(other), offset: 0, count: 1))
        }
    }
}
