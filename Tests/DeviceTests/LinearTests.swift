@testable import Device
import TestSupport
import XCTest

/// The fused linear products' plumbing: their sources, labels read through the order, `Rows`' checks. (Their values
/// against a Double reference, on every device and candidate, are `OpCheck.linearChecks`, run by `OpCheckTests`.)
final class LinearTests: XCTestCase {
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
