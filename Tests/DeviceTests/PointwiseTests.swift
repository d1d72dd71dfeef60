import Device
import Foundation
import TestSupport
import XCTest

/// numpy's broadcasting in Double: f over the broadcast shape of a and b.
func referenceBroadcast<T: BinaryFloatingPoint>(_ a: [T], _ aShape: [Int], _ b: [T], _ bShape: [Int],
                                                _ f: (Double, Double) -> Double) -> (shape: [Int], values: [Double]) {
    let rank = max(aShape.count, bShape.count)
    let pa = [Int](repeating: 1, count: rank - aShape.count) + aShape
    let pb = [Int](repeating: 1, count: rank - bShape.count) + bShape
    let shape = zip(pa, pb).map { $0 == 1 ? $1 : $0 }
    func flat(_ index: [Int], _ s: [Int]) -> Int {
        zip(index, s).reduce(0) { $0 * $1.1 + ($1.1 == 1 ? 0 : $1.0) }
    }
    let count = shape.reduce(1, *)
    var values: [Double] = []
    var index = [Int](repeating: 0, count: rank)
    for _ in 0..<count {
        values.append(f(Double(a[flat(index, pa)]), Double(b[flat(index, pb)])))
        var k = rank - 1
        while k >= 0 {
            index[k] += 1
            if index[k] < shape[k] { break }
            index[k] = 0
            k -= 1
        }
    }
    return (shape, values)
}

final class PointwiseTests: XCTestCase {
    /// Shape pairs: equal, trailing, both sides size 1, leading axes, a scalar, zero-size.
    let pairs: [([Int], [Int])] = [([5, 7], [5, 7]), ([2, 3], [3]), ([4, 1, 5], [3, 1]), ([7], [3, 1]), ([], [2, 3]),
                                   ([0, 3], [3]), ([3, 0], [1]), ([65, 33], [65, 1])]

    func testBinaryOpsBroadcastLikeNumpyOnEveryDevice() throws {
        let ops: [(String, (Tensor, Tensor) throws -> Tensor, (Double, Double) -> Double)] = [
            ("+", { try $0 + $1 }, { $0 + $1 }), ("-", { try $0 - $1 }, { $0 - $1 }),
            ("*", { try $0 * $1 }, { $0 * $1 }), ("/", { try $0 / $1 }, { $0 / $1 }),
            ("maximum", { try $0.maximum($1) }, { max($0, $1) }), ("minimum", { try $0.minimum($1) }, { min($0, $1) }),
            (".<", { try $0 .< $1 }, { $0 < $1 ? 1 : 0 }), (".>=", { try $0 .>= $1 }, { $0 >= $1 ? 1 : 0 }),
            (".==", { try $0 .== $1 }, { $0 == $1 ? 1 : 0 }), (".!=", { try $0 .!= $1 }, { $0 != $1 ? 1 : 0 }),
        ]
        for (aShape, bShape) in pairs {
            let av = testValues(aShape.reduce(1, *), seed: 5)
            // Away from 0 (a divisor), with some ties for the comparisons.
            let bv = testValues(bShape.reduce(1, *), seed: 6).enumerated().map { $1 < 0 ? $1 - 0.5 : $1 + 0.5 }
            for device in testDevices {
                let (a, b) = (try Tensor(av, shape: aShape, on: device), try Tensor(bv, shape: bShape, on: device))
                for (name, op, f) in ops {
                    let expected = referenceBroadcast(av, aShape, bv, bShape, f)
                    let got = try op(a, b)
                    XCTAssertEqual(got.shape, expected.shape, "\(name) \(aShape) \(bShape)")
                    assertClose(try got.toArray(), expected.values, rtol: 1e-6, atol: 1e-6,
                                "\(name) \(aShape) \(bShape) on \(device)")
                    // Operands swapped.
                    let swapped = referenceBroadcast(bv, bShape, av, aShape, f)
                    assertClose(try op(b, a).toArray(), swapped.values, rtol: 1e-6, atol: 1e-6,
                                "\(name) \(bShape) \(aShape) on \(device)")
                }
            }
        }
    }

    func testOpsReadNonContiguousViews() throws {
        let v = testValues(5 * 7, seed: 8)
        let w = testValues(5, seed: 9)
        for device in testDevices {
            let x = try Tensor(v, shape: [5, 7], on: device).transposed()  // [7, 5], strides [1, 7]
            let t = referenceView(v, [7, 5]) { i in i[1] * 7 + i[0] }
            let row = try Tensor(w, shape: [5], on: device)
            let expected = (0..<35).map { t[$0] * Double(w[$0 % 5]) + 1 }
            assertClose(try (x * row + 1).toArray(), expected, rtol: 1e-6, atol: 1e-6, "x·row + 1 on \(device)")
            assertClose(try x.exp().toArray(), t.map(Foundation.exp), rtol: 1e-6, "exp of a view on \(device)")
            // A broadcast (stride 0) operand and a slice with an offset.
            let s = try Tensor(v, shape: [7, 5], on: device)[2..<6]
            let e = try row.expanded(to: [4, 5])
            assertClose(try (s - e).toArray(), (0..<20).map { Double(v[10 + $0]) - Double(w[$0 % 5]) },
                        rtol: 1e-6, atol: 1e-6, "slice − expanded on \(device)")
        }
    }

    func testUnaryOpsAndScalarsMatchDoubleOnEveryDevice() throws {
        let v = testValues(13 * 3, seed: 10).map { $0 * 3 }
        let ops: [(String, (Tensor) throws -> Tensor, (Double) -> Double)] = [
            ("exp", { try $0.exp() }, Foundation.exp), ("log", { try $0.abs().log() }, { Foundation.log(abs($0)) }),
            ("sqrt", { try $0.abs().sqrt() }, { abs($0).squareRoot() }), ("abs", { try $0.abs() }, { abs($0) }),
            ("neg", { try -$0 }, { -$0 }), ("pow 3", { try $0.pow(3) }, { $0 * $0 * $0 }),
            ("pow 2", { try $0.pow(2) }, { $0 * $0 }),
            ("clamp", { try $0.clamped(min: -1, max: 0.5) }, { min(max($0, -1), 0.5) }),
            ("clamp min", { try $0.clamped(min: 0) }, { max($0, 0) }),
            ("x + 2", { try $0 + 2 }, { $0 + 2 }), ("2 + x", { try 2 + $0 }, { 2 + $0 }),
            ("x - 2", { try $0 - 2 }, { $0 - 2 }), ("2 - x", { try 2 - $0 }, { 2 - $0 }),
            ("x * 3", { try $0 * 3 }, { $0 * 3 }), ("3 * x", { try 3 * $0 }, { 3 * $0 }),
            ("x / 4", { try $0 / 4 }, { $0 / 4 }), ("1 / x", { try 1 / $0 }, { 1 / $0 }),
            (".> 0", { try $0 .> 0 }, { $0 > 0 ? 1 : 0 }), (".<= 0.5", { try $0 .<= 0.5 }, { $0 <= 0.5 ? 1 : 0 }),
        ]
        for device in testDevices {
            let x = try Tensor(v, shape: [13, 3], on: device)
            for (name, op, f) in ops {
                assertClose(try op(x).toArray(), v.map { f(Double($0)) }, rtol: 2e-6, atol: 1e-6, "\(name) on \(device)")
            }
            XCTAssertEqual(try Tensor.zeros([0, 4], on: device).exp().shape, [0, 4])
            let nan = try Tensor([.nan, 2], shape: [2], on: device)
            XCTAssertTrue(try nan.clamped(min: 0, max: 1).toArray()[0].isNaN, "clamp keeps NaN on \(device)")
        }
    }

    func testWhereChoosesAndAllCloseCompares() throws {
        for device in testDevices {
            let c = try Tensor([1, 0, 1], shape: [3], on: device)
            let a = try Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3], on: device)
            let b = try Tensor.full([], value: -1, on: device)
            XCTAssertEqual(try Tensor.where(c, a, b).toArray(), [1, -1, 3, 4, -1, 6])
            XCTAssertTrue(try a.allClose(try a + 1e-7))
            XCTAssertFalse(try a.allClose(try a + 1e-3))
            XCTAssertTrue(try a[0..<1].allClose(try Tensor([1, 2, 3], shape: [3], on: device)))
        }
    }

    func testShapeAndDeviceErrorsNameTheOpAndBothOperandsInOrder() throws {
        let a = try Tensor.zeros([2, 3]), b = try Tensor.zeros([4])
        XCTAssertThrowsError(try a + b) { error in
            XCTAssertEqual("\(error)", "add: shapes [2, 3] and [4] do not broadcast: axis 1 of the result would be 3 "
                + "from the first and 4 from the second")
        }
        XCTAssertThrowsError(try b * a) { XCTAssertTrue("\($0)".hasPrefix("mul: shapes [4] and [2, 3]")) }
        guard let device = openCLDevices.first else { return }
        XCTAssertThrowsError(try a - a.to(device)) { error in
            XCTAssertEqual(error as? DeviceError, .deviceMismatch(op: "sub", .cpu, device))
        }
    }
}
