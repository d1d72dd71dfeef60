import Device
import Foundation
import TestSupport
import XCTest

/// A reduction along `axis` of row-major `values` of `shape`, in Double: f over each slice, the axis removed.
func referenceReduce<T: BinaryFloatingPoint>(_ values: [T], _ shape: [Int], axis: Int,
                                             _ f: ([Double]) -> Double) -> [Double] {
    let outer = shape[..<axis].reduce(1, *), n = shape[axis], inner = shape[(axis + 1)...].reduce(1, *)
    var out: [Double] = []
    for o in 0..<outer {
        for i in 0..<inner { out.append(f((0..<n).map { Double(values[(o * n + $0) * inner + i]) })) }
    }
    return out
}

private func mean(_ x: [Double]) -> Double { x.reduce(0, +) / Double(x.count) }
private func variance(_ x: [Double]) -> Double {
    let m = mean(x)
    return x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1)
}
private func logSumExp(_ x: [Double]) -> Double {
    let m = x.max()!
    return m + Foundation.log(x.reduce(0) { $0 + Foundation.exp($1 - m) })
}

final class ReductionTests: XCTestCase {
    let shapes: [[Int]] = [[5, 7], [3, 1, 4], [2, 300, 3], [1000], [1, 1], [4, 257]]

    func testReductionsAlongEachAxisMatchDoubleOnEveryDevice() throws {
        let ops: [(String, (Tensor, Int?, Bool) throws -> Tensor, ([Double]) -> Double)] = [
            ("sum", { try $0.sum(axis: $1, keepDims: $2) }, { $0.reduce(0, +) }),
            ("mean", { try $0.mean(axis: $1, keepDims: $2) }, mean),
            ("max", { try $0.max(axis: $1, keepDims: $2) }, { $0.max()! }),
            ("min", { try $0.min(axis: $1, keepDims: $2) }, { $0.min()! }),
            ("variance", { try $0.variance(axis: $1, keepDims: $2) }, variance),
            ("std", { try $0.std(axis: $1, keepDims: $2) }, { variance($0).squareRoot() }),
            ("logSumExp", { try $0.logSumExp(axis: $1, keepDims: $2) }, logSumExp),
        ]
        for shape in shapes {
            let v = testValues(shape.reduce(1, *), seed: 21)
            for device in testDevices {
                let x = try Tensor(v, shape: shape, on: device)
                for (name, op, f) in ops {
                    for axis in shape.indices where shape[axis] > 1 || !name.contains("var") && name != "std" {
                        let expected = referenceReduce(v, shape, axis: axis, f)
                        let got = try op(x, axis, false)
                        var reduced = shape
                        reduced.remove(at: axis)
                        XCTAssertEqual(got.shape, reduced, "\(name) axis \(axis) of \(shape)")
                        assertClose(try got.toArray(), expected, rtol: 1e-5, atol: 1e-5,
                                    "\(name) axis \(axis) of \(shape) on \(device)")
                        var kept = shape
                        kept[axis] = 1
                        XCTAssertEqual(try op(x, axis, true).shape, kept)
                        // A negative axis counts from the end.
                        assertClose(try op(x, axis - shape.count, false).toArray(), expected, rtol: 1e-5,
                                    atol: 1e-5, "\(name) axis \(axis - shape.count) on \(device)")
                    }
                    guard !(name.contains("var") || name == "std") || v.count > 1 else { continue }
                    let all = try op(x, nil, false)
                    XCTAssertEqual(all.shape, [])
                    assertClose(try all.toArray(), [f(v.map(Double.init))], rtol: 1e-5, atol: 1e-5,
                                "\(name) of all \(shape) on \(device)")
                    XCTAssertEqual(try op(x, nil, true).shape, shape.map { _ in 1 })
                }
            }
        }
    }

    func testReductionsReadViewsAndLongAxesStayAccurate() throws {
        let v = testValues(6 * 9, seed: 22)
        let long = (0..<300_001).map { Float($0 % 7) * 0.25 + 1e-3 }
        let longSum = long.reduce(0.0) { $0 + Double($1) }
        for device in testDevices {
            let t = try Tensor(v, shape: [6, 9], on: device).transposed()  // [9, 6]
            let tv = referenceView(v, [9, 6]) { i in i[1] * 9 + i[0] }
            assertClose(try t.sum(axis: 0).toArray(), referenceReduce(tv.map(Float.init), [9, 6], axis: 0) {
                $0.reduce(0, +)
            }, rtol: 1e-5, atol: 1e-5, "sum of a transposed view on \(device)")
            assertClose(try t.max(axis: 1).toArray(), referenceReduce(tv.map(Float.init), [9, 6], axis: 1) {
                $0.max()!
            }, "max of a transposed view on \(device)")
            assertClose(try t.sum().toArray(), [tv.reduce(0, +)], rtol: 1e-5, atol: 1e-5, "sum of all of a view")
            // 300001 elements: chunked and blocked on OpenCL, Double on cpu; fp32 naive would be off by ~1e-4.
            let x = try Tensor(long, shape: [long.count], on: device)
            assertClose(try x.sum().toArray(), [longSum], rtol: 2e-6, "long sum on \(device)")
            assertClose(try x.reshaped([1, -1]).sum(axis: 1).toArray(), [longSum], rtol: 2e-6, "long row on \(device)")
            assertClose(try x.reshaped([-1, 1]).sum(axis: 0).toArray(), [longSum], rtol: 2e-6, "long column")
        }
    }

    func testZeroSizeAxesAndArgmax() throws {
        for device in testDevices {
            let empty = try Tensor.zeros([0, 4], on: device)
            XCTAssertEqual(try empty.sum(axis: 0).toArray(), [0, 0, 0, 0])
            XCTAssertEqual(try empty.sum(axis: 1).shape, [0])
            XCTAssertEqual(try empty.sum().toArray(), [0])
            XCTAssertTrue(try empty.mean().toArray()[0].isNaN)
            XCTAssertThrowsError(try empty.max(axis: 0)) { XCTAssertTrue("\($0)".contains("empty")) }
            // The operand named in the caller's terms (they read "axis 0 of shape [0, 4]", and argmax's "[0]").
            XCTAssertThrowsError(try empty.min()) {
                XCTAssertEqual("\($0)", "min: the tensor of shape [0, 4] is empty: no minimum")
            }
            XCTAssertThrowsError(try empty.argmax()) {
                XCTAssertEqual("\($0)", "argmax: the tensor of shape [0, 4] is empty: no largest element")
            }
            XCTAssertThrowsError(try empty.argmax(axis: 0)) {
                XCTAssertEqual("\($0)", "argmax: axis 0 of shape [0, 4] is empty: no largest element")
            }
            let x = try Tensor([1, 5, 5, -1, 2, 0, 7, 7, .nan], shape: [3, 3], on: device)
            XCTAssertEqual(try x.argmax(axis: 1).toArray(), [1, 1, 2], "ties: first; NaN: largest on \(device)")
            XCTAssertEqual(try x[0..<2].argmax(axis: 0).toArray(), [0, 0, 0])
            XCTAssertEqual(try x[0..<2].argmax().toArray(), [1])
            XCTAssertTrue(try x.max().toArray()[0].isNaN)
        }
    }

    /// A 0-d tensor reads as if it had one axis of size 1, named 0 or −1 (PyTorch's rule): each reduction over it is
    /// the reduction of its one element, 0-d, with or without `keepDims`, and its gradient flows; any other axis is
    /// out of range.
    func testAZeroDTensorNamesItsOneElementAsAxisZeroOrMinusOne() throws {
        for device in testDevices {
            let x = try Tensor([3], shape: [], on: device)
            for axis in [0, -1] {
                let results: [(String, Tensor, Float)] = [
                    ("sum", try x.sum(axis: axis), 3), ("sum keepDims", try x.sum(axis: axis, keepDims: true), 3),
                    ("mean", try x.mean(axis: axis), 3), ("max", try x.max(axis: axis), 3),
                    ("min", try x.min(axis: axis, keepDims: true), 3), ("argmax", try x.argmax(axis: axis), 0),
                    ("logSumExp", try x.logSumExp(axis: axis), 3), ("softmax", try x.softmax(axis: axis), 1),
                    ("logSoftmax", try x.logSoftmax(axis: axis), 0), ("squeezed", try x.squeezed(axis: axis), 3),
                    ("variance correction 0", try x.variance(axis: axis, correction: 0), 0)]
                for (name, y, want) in results {
                    XCTAssertEqual(y.shape, [], "\(name) over axis \(axis) on \(device)")
                    XCTAssertEqual(try y.toArray(), [want], "\(name) over axis \(axis) on \(device)")
                }
                XCTAssertTrue(try x.variance(axis: axis).toArray()[0].isNaN, "one element, correction 1: 0/0")
                let leaf = try Tensor([3], shape: [], on: device)
                leaf.requiresGrad = true
                try (leaf.max(axis: axis) * 2 + leaf.mean(axis: axis, keepDims: true)).backward()
                XCTAssertEqual(try leaf.grad?.toArray(), [3], "the gradient through max and mean on \(device)")
            }
            for (axis, op) in [(1, "sum"), (-2, "softmax"), (1, "squeezed")] {
                XCTAssertThrowsError(try op == "sum" ? x.sum(axis: axis) : op == "softmax" ? x.softmax(axis: axis)
                                         : x.squeezed(axis: axis)) {
                    XCTAssertEqual("\($0)", "\(op): axis \(axis) is out of range for a 0-d tensor (0 or -1)")
                }
            }
        }
    }

    func testSoftmaxAndLogSoftmaxAreStable() throws {
        let v: [Float] = [1000, 1001, 1002, -1000, 0, 1000, -.infinity, -.infinity, 0]
        for device in testDevices {
            let x = try Tensor(v, shape: [3, 3], on: device)
            let expected = stride(from: 0, to: 9, by: 3).flatMap { r -> [Double] in
                let row = v[r..<r + 3].map(Double.init)
                let lse = logSumExp(row)
                return row.map { Foundation.exp($0 - lse) }
            }
            assertClose(try x.softmax().toArray(), expected, rtol: 1e-5, atol: 1e-6, "softmax on \(device)")
            assertClose(try x.logSoftmax(axis: 1).exp().toArray(), expected, rtol: 1e-5, atol: 1e-6)
            assertClose(try x.softmax(axis: 1).sum(axis: 1).toArray(), [1, 1, 1], rtol: 1e-6, atol: 1e-6)
            let allInf = try Tensor([-.infinity, -.infinity], shape: [2], on: device)
            XCTAssertEqual(try allInf.logSumExp().toArray(), [-.infinity])
        }
    }
}
