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

    /// Views of more axes than the strided kernels index (8) after merging — a permuted tensor of 9 or 10 axes, two
    /// dense ones broadcast against each other — read, compute, reduce and differentiate on every device (on OpenCL
    /// in a launch per index of the leading axes); they were an error whose advice, contiguous(), failed the same
    /// way (helper-27).
    func testViewsOfMoreAxesThanTheKernelsIndexOnEveryDevice() throws {
        for (shape, order) in [([2, 3, 2, 2, 3, 2, 2, 2, 3], Array((0..<9).reversed())),
                               ([2, 2, 3, 2, 2, 2, 3, 2, 2, 2], [1, 0, 3, 2, 5, 4, 7, 6, 9, 8])] {
            let count = shape.reduce(1, *)
            let v = testValues(count, seed: 29)
            var strides = [Int](repeating: 1, count: shape.count)
            for k in stride(from: shape.count - 2, through: 0, by: -1) { strides[k] = strides[k + 1] * shape[k + 1] }
            let viewShape = order.map { shape[$0] }
            let source = { (i: [Int]) in zip(i, order).reduce(0) { $0 + $1.0 * strides[$1.1] } }
            let expected = referenceView(v, viewShape, source)
            for device in testDevices {
                let x = try Tensor(v, shape: shape, on: device)
                let view = try x.permuted(order)
                assertClose(try view.toArray(), expected, rtol: 0, atol: 0, "\(shape) read on \(device)")
                assertClose(try view.contiguous().toArray(), expected, rtol: 0, atol: 0, "\(device)")
                assertClose(try (view + 1).toArray(), expected.map { $0 + 1 }, "\(device)")
                for axis in [0, 4, shape.count - 1] {
                    // The reference: the view's elements summed along `axis` (row-major over the other axes).
                    var kept = viewShape
                    kept.remove(at: axis)
                    let sums = referenceView(v, kept) { i in
                        var full = i
                        full.insert(0, at: axis)
                        return source(full)
                    }.indices.map { n -> Double in
                        var index = [Int](repeating: 0, count: kept.count), rest = n
                        for k in stride(from: kept.count - 1, through: 0, by: -1) {
                            (index[k], rest) = (rest % kept[k], rest / kept[k])
                        }
                        return (0..<viewShape[axis]).reduce(0.0) { total, j in
                            var full = index
                            full.insert(j, at: axis)
                            return total + Double(v[source(full)])
                        }
                    }
                    assertClose(try view.sum(axis: axis).toArray(), sums, "sum over axis \(axis) on \(device)")
                }
                // Written through such a view: the same elements back in x's order.
                let y = try Tensor.zeros(shape, on: device)
                try y.permuted(order).copy(from: view)
                XCTAssertEqual(try y.toArray(), v, "\(device)")
                // The gradient through the view reaches x in x's order.
                let w = try Tensor(testValues(count, seed: 30), shape: viewShape, on: device)
                x.requiresGrad = true
                try (try x.permuted(order) * w).sum().backward()
                var inverse = [Int](repeating: 0, count: order.count)
                for (k, a) in order.enumerated() { inverse[a] = k }
                assertClose(try XCTUnwrap(x.grad).toArray(), try w.permuted(inverse).toArray(), rtol: 0, atol: 0,
                            "\(device)")
            }
        }
        // Reduced over an empty axis of such a view (it recursed until the stack overflowed on OpenCL: helper-29).
        for device in testDevices {
            let empty = try Tensor.zeros([2, 2, 2, 2, 2, 2, 2, 2, 2, 0], on: device)
                .permuted(Array((0..<10).reversed()))
            XCTAssertEqual(try empty.sum(axis: 0).toArray(), [Float](repeating: 0, count: 512), "\(device)")
            XCTAssertEqual(try empty.sum(axis: 0).shape, [Int](repeating: 2, count: 9), "\(device)")
        }
        // Two dense tensors broadcast against each other into 9 axes that do not merge.
        let (aShape, bShape) = ([2, 1, 2, 1, 2, 1, 2, 1, 2], [1, 3, 1, 3, 1, 3, 1, 3, 1])
        let (av, bv) = (testValues(32, seed: 31), testValues(81, seed: 32))
        let outShape = zip(aShape, bShape).map { max($0, $1) }
        func at(_ i: [Int], _ shape: [Int]) -> Int { zip(i, shape).reduce(0) { $0 * $1.1 + ($1.1 == 1 ? 0 : $1.0) } }
        let expected = referenceView(av, outShape) { at($0, aShape) }.enumerated().map { n, a in
            var index = [Int](repeating: 0, count: outShape.count), rest = n
            for k in stride(from: outShape.count - 1, through: 0, by: -1) {
                (index[k], rest) = (rest % outShape[k], rest / outShape[k])
            }
            return a * Double(bv[at(index, bShape)])
        }
        for device in testDevices {
            let a = try Tensor(av, shape: aShape, on: device), b = try Tensor(bv, shape: bShape, on: device)
            assertClose(try (a * b).toArray(), expected, "broadcast on \(device)")
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
