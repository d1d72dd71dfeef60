import Device
import Foundation
import TestSupport
import XCTest

/// Row-major values of `shape` read through `index → source index` (a Double reference of a view).
func referenceView<T: BinaryFloatingPoint>(_ values: [T], _ shape: [Int], _ source: ([Int]) -> Int) -> [Double] {
    let count = shape.reduce(1, *)
    var out: [Double] = []
    out.reserveCapacity(count)
    var index = [Int](repeating: 0, count: shape.count)
    for _ in 0..<count {
        out.append(Double(values[source(index)]))
        var k = shape.count - 1
        while k >= 0 {
            index[k] += 1
            if index[k] < shape[k] { break }
            index[k] = 0
            k -= 1
        }
    }
    return out
}

final class TensorViewTests: XCTestCase {
    func testViewsReadTheRightElementsOnEveryDevice() throws {
        let v = testValues(2 * 3 * 5, seed: 3)
        for device in testDevices {
            let x = try Tensor(v, shape: [2, 3, 5], on: device)
            assertClose(try x.reshaped([5, -1]).toArray(), v.map(Double.init), "reshaped on \(device)")
            XCTAssertEqual(try x.reshaped([-1]).shape, [30])
            let p = try x.permuted([2, 0, 1])
            XCTAssertEqual(p.shape, [5, 2, 3])
            assertClose(try p.toArray(), referenceView(v, [5, 2, 3]) { i in i[1] * 15 + i[2] * 5 + i[0] },
                        "permuted on \(device)")
            let t = try x.transposed()
            XCTAssertEqual(t.shape, [2, 5, 3])
            assertClose(try t.toArray(), referenceView(v, [2, 5, 3]) { i in i[0] * 15 + i[2] * 5 + i[1] },
                        "transposed on \(device)")
            // A reshape of a non-contiguous view copies; of a contiguous one, shares.
            assertClose(try t.reshaped([10, 3]).toArray(), try t.toArray(), "reshaped transpose on \(device)")
            XCTAssertEqual(try x.unsqueezed(axis: 1).shape, [2, 1, 3, 5])
            XCTAssertEqual(try x.unsqueezed(axis: -1).shape, [2, 3, 5, 1])
            XCTAssertEqual(try x.unsqueezed(axis: 0).squeezed(axis: 0).shape, [2, 3, 5])
            XCTAssertEqual(try Tensor.zeros([1, 3, 1], on: device).squeezed().shape, [3])
            let row = try Tensor(Array(v[0..<5]), shape: [5], on: device)
            let e = try row.expanded(to: [3, 5])
            XCTAssertEqual(e.strides, [0, 1])
            assertClose(try e.toArray(), (0..<15).map { Double(v[$0 % 5]) }, "expanded on \(device)")
            let s = try x.reshaped([6, 5])[2..<5]
            XCTAssertEqual(s.shape, [3, 5])
            assertClose(try s.toArray(), v[10..<25].map(Double.init), "slice on \(device)")
            XCTAssertEqual(try x[1..<1].shape, [0, 3, 5])
            // The slice of a transposed view reads through both layouts.
            let ts = try t[1..<2]
            assertClose(try ts.toArray(), referenceView(v, [1, 5, 3]) { i in 15 + i[2] * 5 + i[1] },
                        "slice of transpose on \(device)")
        }
    }

    func testSliceIsAViewOnTheSameStorage() throws {
        for device in testDevices {
            let x = try Tensor.zeros([4, 3], on: device)
            try x[1..<3].fill(7)
            XCTAssertEqual(try x.toArray(), [0, 0, 0, 7, 7, 7, 7, 7, 7, 0, 0, 0], "\(device)")
            // Copy into a transposed view writes through its strides.
            let y = try Tensor.zeros([2, 3], on: device)
            try y.transposed().copy(from: try Tensor([1, 2, 3, 4, 5, 6], shape: [3, 2], on: device))
            XCTAssertEqual(try y.toArray(), [1, 3, 5, 2, 4, 6], "\(device)")
            // A broadcast source fills every row.
            try x[0..<2].copy(from: try Tensor([1, 2, 3], shape: [3], on: device))
            XCTAssertEqual(try x[0..<2].toArray(), [1, 2, 3, 1, 2, 3], "\(device)")
        }
    }

    func testCreationSpellings() throws {
        for device in testDevices {
            XCTAssertEqual(try Tensor.ones([2, 2], on: device).toArray(), [1, 1, 1, 1])
            XCTAssertEqual(try Tensor.full([3], value: -2.5, on: device).toArray(), [-2.5, -2.5, -2.5])
            XCTAssertEqual(try Tensor.arange(4, on: device).toArray(), [0, 1, 2, 3])
            XCTAssertEqual(try Tensor.arange(0, on: device).shape, [0])
        }
    }

    func testBadViewsAreErrorsNamingWhatIsWrong() throws {
        let x = try Tensor.zeros([2, 3])
        func message(_ body: () throws -> Tensor) -> String {
            do { _ = try body(); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(message { try x.reshaped([4, -1]) }.contains("cannot infer"))
        XCTAssertTrue(message { try x.reshaped([-1, -1]) }.contains("one -1"))
        XCTAssertTrue(message { try x.reshaped([7]) }.contains("has 7 elements"))
        XCTAssertTrue(message { try x.permuted([0, 0]) }.contains("not a permutation"))
        XCTAssertTrue(message { try x.squeezed(axis: 0) }.contains("size 2, not 1"))
        XCTAssertTrue(message { try x.unsqueezed(axis: 4) }.contains("out of range"))
        XCTAssertTrue(message { try x.expanded(to: [2, 4]) }.contains("axis 1"))
        XCTAssertTrue(message { try x[1..<3] }.contains("outside 0..<2"))
        XCTAssertTrue(message { try Tensor.zeros([])[0..<0] }.contains("no rows"))
        // A fixed-function op that writes refuses a view, naming it.
        XCTAssertTrue(message {
            try x.elementwise(.add, x, into: try Tensor.zeros([4, 3])[1..<3])
        }.contains("view"))
    }
}
