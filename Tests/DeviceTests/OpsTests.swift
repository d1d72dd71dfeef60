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

    func testActivationsForwardAndBackwardMatchTheReferenceOnEveryDevice() throws {
        for f in Activation.allCases {
            for (rows, cols) in rowShapes {
                let xv = testValues(rows * cols, seed: 31).map { $0 * 3 }, dyv = testValues(rows * cols, seed: 32)
                try compareOnEveryDevice("\(f) \(rows)x\(cols)", rtol: 1e-5, atol: 2e-6) { d in
                    let x = try Tensor(xv, shape: [rows, cols], on: d)
                    return [try x.activation(f),
                            try x.activationBackward(f, try Tensor(dyv, shape: [rows, cols], on: d))]
                } check: { r in
                    let y = xv.map { f(Double($0)) }
                    assertClose(r[0], y, rtol: 1e-5, atol: 1e-6, "\(f)")
                    assertClose(r[1], xv.indices.map { Double(dyv[$0]) * f.derivative(Double(xv[$0]), y[$0]) },
                                rtol: 1e-5, atol: 1e-6, "\(f) backward")
                }
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

    func testBiasForwardAndBackwardMatchCPUOnEveryDevice() throws {
        for (rows, cols) in rowShapes {
            let xv = testValues(rows * cols, seed: 41), bv = testValues(cols, seed: 42),
                dbv = testValues(cols, seed: 43)
            try compareOnEveryDevice("bias \(rows)x\(cols)") { d in
                let x = try Tensor(xv, shape: [rows, cols], on: d)
                let y = try x.addBias(try Tensor(bv, shape: [cols], on: d))
                let db = try Tensor(dbv, shape: [cols], on: d)
                try Tensor.addBiasBackward(x, into: db, accumulate: true)
                let fresh = try Tensor.zeros([cols], on: d)
                try Tensor.addBiasBackward(x, into: fresh)
                return [y, db, fresh]
            } check: { r in
                assertClose(r[0], xv.indices.map { xv[$0] + bv[$0 % cols] }, "bias forward")
                let sums = (0..<cols).map { j in (0..<rows).reduce(0.0) { $0 + Double(xv[$1 * cols + j]) } }
                assertClose(r[1], zip(sums, dbv).map { $0 + Double($1) }, "bias backward (accumulate)")
                assertClose(r[2], sums, "bias backward")
            }
        }
    }

    func testFusedBiasActivationMatchesReferenceOnEveryDevice() throws {
        for f in Activation.allCases {
            for (rows, cols) in rowShapes {
                let xv = testValues(rows * cols, seed: 44), bv = testValues(cols, seed: 45),
                    dyv = testValues(rows * cols, seed: 46)
                let dbv = testValues(cols, seed: 47)
                try compareOnEveryDevice("bias+\(f) \(rows)x\(cols)", rtol: 1e-5, atol: 2e-6) { d in
                    let z = try Tensor(xv, shape: [rows, cols], on: d)
                    let y = try z.biasActivation(try Tensor(bv, shape: [cols], on: d), f)
                    let db = try Tensor(dbv, shape: [cols], on: d)
                    let dz = try Tensor.biasActivationBackward(f, preActivation: z,
                                                               try Tensor(dyv, shape: [rows, cols], on: d),
                                                               db: db, accumulate: true)
                    return [z, y, dz, db]
                } check: { r in
                    let z = xv.indices.map { Double(xv[$0]) + Double(bv[$0 % cols]) }
                    let y = z.map { f($0) }
                    let dz = z.indices.map { Double(dyv[$0]) * f.derivative(z[$0], y[$0]) }
                    let db = (0..<cols).map { j in (0..<rows).reduce(Double(dbv[j])) { $0 + dz[$1 * cols + j] } }
                    assertClose(r[0], z, "pre-activation")
                    assertClose(r[1], y, rtol: 1e-5, atol: 1e-6, "forward")
                    assertClose(r[2], dz, rtol: 1e-5, atol: 1e-6, "dz")
                    assertClose(r[3], db, rtol: 1e-5, atol: 1e-4, "db")
                }
            }
        }
    }

    func testFusedMeanLossMatchesReferenceOnEveryDevice() throws {
        for (rows, cols) in rowShapes + [(300, 10), (1000, 3)] where rows > 0 {
            let zv = testValues(rows * cols, seed: 61).map { $0 * 8 }
            let pv = testValues(rows, seed: 62).map { $0 * 3 }
            var rng = SeededGenerator(seed: 63)
            let labels = (0..<rows).map { _ in Float(rng.next() % UInt64(cols)) }
            try compareOnEveryDevice("mean loss \(rows)x\(cols)", rtol: 1e-4, atol: 1e-5) { d in
                let out = try Tensor.zeros([3], on: d)
                let z = try Tensor(zv, shape: [rows, cols], on: d), p = try Tensor(pv, shape: [rows, 1], on: d)
                let y = try Tensor(labels, shape: [rows], on: d)
                let gz = try Tensor.zeros([rows, cols], on: d), gp = try Tensor.zeros([rows, 1], on: d)
                try z.meanLoss(.softmaxCrossEntropy, labels: y, grad: gz, into: out, at: 1)
                try p.meanLoss(.squaredError, labels: y, grad: gp, into: out, at: 2)
                return [out, gz, gp]
            } check: { r in
                var ce = 0.0, se = 0.0, gz = [Double](), gp = [Double]()
                for i in 0..<rows {
                    let z = (0..<cols).map { Double(zv[i * cols + $0]) }
                    let m = z.max()!
                    let lse = m + log(z.reduce(0) { $0 + exp($1 - m) })
                    ce += lse - z[Int(labels[i])]
                    gz += (0..<cols).map { (exp(z[$0] - lse) - ($0 == Int(labels[i]) ? 1 : 0)) / Double(rows) }
                    let d = Double(pv[i]) - Double(labels[i])
                    se += d * d
                    gp.append(2 * d / Double(rows))
                }
                assertClose(r[0], [0, ce / Double(rows), se / Double(rows)], rtol: 1e-5, atol: 1e-5, "mean losses")
                assertClose(r[1], gz, rtol: 1e-4, atol: 1e-6, "cross-entropy gradient")
                assertClose(r[2], gp, rtol: 1e-5, atol: 1e-6, "squared-error gradient")
            }
        }
    }

    func testSoftmaxCrossEntropyMatchesReferenceOnEveryDevice() throws {
        for (rows, cols) in rowShapes where cols > 1 {
            let zv = testValues(rows * cols, seed: 51).map { $0 * 20 }  // large logits exercise log-sum-exp
            var rng = SeededGenerator(seed: 52)
            let labels = (0..<rows).map { _ in Float(rng.next() % UInt64(cols)) }
            try compareOnEveryDevice("softmax xent \(rows)x\(cols)", rtol: 1e-4, atol: 1e-5) { d in
                let z = try Tensor(zv, shape: [rows, cols], on: d)
                let grad = try Tensor.zeros([rows, cols], on: d)
                let losses = try z.softmaxCrossEntropy(labels: try Tensor(labels, shape: [rows], on: d),
                                                       grad: grad, gradScale: 0.5)
                return [losses, grad]
            } check: { r in
                var expectedLoss = [Double](), expectedGrad = [Double]()
                for i in 0..<rows {
                    let z = (0..<cols).map { Double(zv[i * cols + $0]) }
                    let m = z.max()!
                    let lse = m + log(z.reduce(0) { $0 + exp($1 - m) })
                    expectedLoss.append(lse - z[Int(labels[i])])
                    expectedGrad += (0..<cols).map { 0.5 * (exp(z[$0] - lse) - ($0 == Int(labels[i]) ? 1 : 0)) }
                }
                assertClose(r[0], expectedLoss, rtol: 1e-5, atol: 1e-4, "losses")
                assertClose(r[1], expectedGrad, rtol: 1e-5, atol: 1e-6, "gradient")
            }
        }
    }

    func testSquaredErrorMatchesReferenceOnEveryDevice() throws {
        for n in [1, 7, 100, 0] {
            let pv = testValues(n, seed: 61), tv = testValues(n, seed: 62)
            try compareOnEveryDevice("mse \(n)") { d in
                let p = try Tensor(pv, shape: [n, 1], on: d)
                let grad = try Tensor.zeros([n, 1], on: d)
                return [try p.squaredError(target: try Tensor(tv, shape: [n], on: d), grad: grad, gradScale: 0.25),
                        grad]
            } check: { r in
                assertClose(r[0], zip(pv, tv).map { Double($0 - $1) * Double($0 - $1) }, "losses")
                assertClose(r[1], zip(pv, tv).map { 0.5 * Double($0 - $1) }, "gradient")
            }
        }
    }

    func testReductionsMatchReferenceOnEveryDevice() throws {
        for (rows, cols) in rowShapes + [(1000, 3)] where cols > 0 {
            let xv = testValues(rows * cols, seed: 71)
            try compareOnEveryDevice("reductions \(rows)x\(cols)", rtol: 1e-5, atol: 1e-4) { d in
                let x = try Tensor(xv, shape: [rows, cols], on: d)
                return [try x.sum(), try x.argmaxRows()]
            } check: { r in
                assertClose(r[0], [xv.reduce(0.0) { $0 + Double($1) }], rtol: 1e-5, atol: 1e-4, "sum")
                let argmax = (0..<rows).map { i in
                    Float((0..<cols).max { xv[i * cols + $0] < xv[i * cols + $1] }!)
                }
                assertClose(r[1], argmax, "argmax")
            }
        }
    }

    func testElementwiseOpsMatchReferenceOnEveryDevice() throws {
        for n in [1, 13, 1000, 0] {
            let xv = testValues(n, seed: 81), yv = testValues(n, seed: 82)
            try compareOnEveryDevice("elementwise \(n)") { d in
                let x = try Tensor(xv, shape: [n], on: d), y = try Tensor(yv, shape: [n], on: d)
                let filled = try Tensor.zeros([n], on: d)
                try filled.fill(2.5)
                return [try x.elementwise(.add, y), try x.elementwise(.sub, y), try x.elementwise(.mul, y),
                        try x.affine(scale: 3, shift: -1), filled]
            } check: { r in
                assertClose(r[0], zip(xv, yv).map { Double($0) + Double($1) }, "add")
                assertClose(r[1], zip(xv, yv).map { Double($0) - Double($1) }, "sub")
                assertClose(r[2], zip(xv, yv).map { Double($0) * Double($1) }, "mul")
                assertClose(r[3], xv.map { 3 * Double($0) - 1 }, "affine")
                assertClose(r[4], [Double](repeating: 2.5, count: n), "fill")
            }
        }
    }

    func testSGDStepMatchesReferenceOnEveryDevice() throws {
        let n = 37
        let pv = testValues(n, seed: 91), gv = testValues(n, seed: 92), vv = testValues(n, seed: 93)
        try compareOnEveryDevice("sgd") { d in
            let plain = try Tensor(pv, shape: [n], on: d), grad = try Tensor(gv, shape: [n], on: d)
            try plain.sgdStep(grad: grad, velocity: nil, lr: 0.1)
            let withMomentum = try Tensor(pv, shape: [n], on: d), velocity = try Tensor(vv, shape: [n], on: d)
            try withMomentum.sgdStep(grad: grad, velocity: velocity, lr: 0.1, momentum: 0.9, weightDecay: 0.01)
            return [plain, withMomentum, velocity]
        } check: { r in
            assertClose(r[0], zip(pv, gv).map { Double($0) - 0.1 * Double($1) }, "plain")
            let v = (0..<n).map { 0.9 * Double(vv[$0]) + Double(gv[$0]) + 0.01 * Double(pv[$0]) }
            assertClose(r[1], (0..<n).map { Double(pv[$0]) - 0.1 * v[$0] }, "momentum")
            assertClose(r[2], v, "velocity")
        }
    }

    /// Adam's kernel against the same update written the textbook way in Double (m̂ / (√v̂ + eps)), over several
    /// steps.
    func testAdamStepMatchesReferenceOnEveryDevice() throws {
        let n = 37
        let pv = testValues(n, seed: 94), gv = testValues(n, seed: 96)
        let (lr, b1, b2, eps, wd) = (0.01, 0.9, 0.999, 1e-8, 0.05)
        try compareOnEveryDevice("adam", rtol: 1e-5, atol: 1e-6) { d in
            let p = try Tensor(pv, shape: [n], on: d), g = try Tensor(gv, shape: [n], on: d)
            let m = try Tensor.zeros([n], on: d), v = try Tensor.zeros([n], on: d)
            for t in 1...3 {
                try p.adamStep(grad: g, m: m, v: v, step: t, lr: Float(lr),
                               AdamHyperparameters(beta1: Float(b1), beta2: Float(b2), eps: Float(eps),
                                                   weightDecay: Float(wd)))
            }
            return [p, m, v]
        } check: { r in
            var p = pv.map(Double.init), m = [Double](repeating: 0, count: n), v = m
            for t in 1...3 {
                for i in 0..<n {
                    let g = Double(gv[i]) + wd * p[i]
                    m[i] = b1 * m[i] + (1 - b1) * g
                    v[i] = b2 * v[i] + (1 - b2) * g * g
                    let mHat = m[i] / (1 - pow(b1, Double(t))), vHat = v[i] / (1 - pow(b2, Double(t)))
                    p[i] -= lr * mHat / (vHat.squareRoot() + eps)
                }
            }
            assertClose(r[0], p, rtol: 1e-5, atol: 1e-6, "param")
            assertClose(r[1], m, rtol: 1e-5, atol: 1e-7, "exp_avg")
            assertClose(r[2], v, rtol: 1e-4, atol: 1e-9, "exp_avg_sq")
        }
    }

    func testGatherRowsMatchesReferenceOnEveryDevice() throws {
        let (n, cols) = (37, 13)
        let src = testValues(n * cols, seed: 95)
        // A shuffled order with bad entries at the end: out of range, negative and NaN are clamped, never read OOB.
        let order: [Float] = (0..<n).map { Float(($0 * 11) % n) } + [1000, -5, .nan]
        for (offset, rows) in [(0, 5), (30, 7), (3, 0), (n, 3)] {
            try compareOnEveryDevice("gather \(offset)+\(rows)") { d in
                let dst = try Tensor.zeros([rows, cols], on: d)
                try dst.gatherRows(from: try Tensor(src, shape: [n, cols], on: d),
                                   order: try Tensor(order, shape: [order.count], on: d), offset: offset)
                let labels = try Tensor.zeros([rows], on: d)
                try labels.gatherRows(from: try Tensor((0..<n).map(Float.init), shape: [n], on: d),
                                      order: try Tensor(order, shape: [order.count], on: d), offset: offset)
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
