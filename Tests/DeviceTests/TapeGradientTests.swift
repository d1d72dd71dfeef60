import Device
import Foundation
import TestSupport
import XCTest

/// An input of a gradient check: its values and shape.
struct GradientInput {
    let values: [Float]
    let shape: [Int]
    init(_ shape: [Int], seed: UInt64, map: (Float) -> Float = { $0 }) {
        self.shape = shape
        values = testValues(shape.reduce(1, *), seed: seed).map(map)
    }
}

/// Checks the tape's gradients of L = Σ y·r (y = `build(inputs)`, r fixed) on every device against central finite
/// differences of `reference`, y's Double forward pass (row-major).
func checkTapeGradients(_ name: String, _ inputs: [GradientInput], rtol: Double = 2e-3, atol: Double = 2e-4,
                        build: ([Tensor]) throws -> Tensor, reference: ([[Double]]) -> [Double],
                        file: StaticString = #filePath, line: UInt = #line) throws {
    let doubles = inputs.map { $0.values.map(Double.init) }
    let outCount = reference(doubles).count
    let r = testValues(outCount, seed: 99).map(Double.init)
    func loss(_ xs: [[Double]]) -> Double { zip(reference(xs), r).reduce(0) { $0 + $1.0 * $1.1 } }
    let numeric = inputs.indices.map { k in
        finiteDifferences(doubles[k]) { xk in
            var xs = doubles
            xs[k] = xk
            return loss(xs)
        }
    }
    for device in testDevices {
        let tensors = try inputs.map { input -> Tensor in
            let t = try Tensor(input.values, shape: input.shape, on: device)
            t.requiresGrad = true
            return t
        }
        let y = try build(tensors)
        XCTAssertEqual(y.count, outCount, "\(name): output count", file: file, line: line)
        assertClose(try y.toArray(), reference(doubles), rtol: 1e-4, atol: 1e-5, "\(name) forward on \(device)",
                    file: file, line: line)
        let l = try (y * Tensor(r.map(Float.init), shape: y.shape, on: device)).sum()
        try l.backward()
        for (k, t) in tensors.enumerated() {
            guard let grad = t.grad else {
                XCTFail("\(name): input \(k) got no gradient on \(device)", file: file, line: line)
                continue
            }
            XCTAssertEqual(grad.shape, t.shape, "\(name): gradient \(k)'s shape", file: file, line: line)
            XCTAssertEqual(grad.device, device, file: file, line: line)
            assertClose(try grad.toArray(), numeric[k], rtol: rtol, atol: atol,
                        "\(name): gradient of input \(k) on \(device)", file: file, line: line)
        }
    }
}

final class TapeGradientTests: XCTestCase {
    func testUnaryOpGradientsMatchFiniteDifferences() throws {
        let away: (Float) -> Float = { $0 < 0 ? $0 - 0.2 : $0 + 0.2 }
        let cases: [(String, (Float) -> Float, (Tensor) throws -> Tensor, (Double) -> Double)] = [
            ("exp", { $0 }, { try $0.exp() }, Foundation.exp),
            ("log", { abs($0) + 0.5 }, { try $0.log() }, Foundation.log),
            ("sqrt", { abs($0) + 0.5 }, { try $0.sqrt() }, { $0.squareRoot() }),
            ("abs", away, { try $0.abs() }, { abs($0) }),
            ("neg", { $0 }, { try -$0 }, { -$0 }),
            ("pow 3", { $0 }, { try $0.pow(3) }, { $0 * $0 * $0 }),
            ("pow 2.5", { abs($0) + 0.5 }, { try $0.pow(2.5) }, { Foundation.pow($0, 2.5) }),
            ("clamp", away, { try $0.clamped(min: -0.5, max: 0.5) }, { min(max($0, -0.5), 0.5) }),
            ("scalars", away, { try 1 / (3 - (2 * $0 + 1) / 4) }, { 1 / (3 - (2 * $0 + 1) / 4) }),
        ]
        for (name, map, op, f) in cases {
            try checkTapeGradients(name, [GradientInput([7, 3], seed: 40, map: map)],
                                   build: { try op($0[0]) }, reference: { $0[0].map(f) })
        }
    }

    func testBroadcastGradientsSumBackOverBroadcastAxes() throws {
        let pairs: [([Int], [Int])] = [([5, 3], [3]), ([4, 1, 3], [2, 1]), ([], [2, 3]), ([3, 1], [1, 4])]
        let ops: [(String, (Tensor, Tensor) throws -> Tensor, (Double, Double) -> Double)] = [
            ("+", { try $0 + $1 }, { $0 + $1 }), ("-", { try $0 - $1 }, { $0 - $1 }),
            ("*", { try $0 * $1 }, { $0 * $1 }), ("/", { try $0 / $1 }, { $0 / $1 }),
            ("maximum", { try $0.maximum($1) }, { max($0, $1) }), ("minimum", { try $0.minimum($1) }, { min($0, $1) }),
        ]
        for (aShape, bShape) in pairs {
            let a = GradientInput(aShape, seed: 41), b = GradientInput(bShape, seed: 42) { $0 < 0 ? $0 - 0.5 : $0 + 0.5 }
            for (name, op, f) in ops {
                try checkTapeGradients("\(name) \(aShape) \(bShape)", [a, b], build: { try op($0[0], $0[1]) }) {
                    referenceBroadcast($0[0], aShape, $0[1], bShape, f).values
                }
            }
        }
    }

    func testReductionGradientsMatchFiniteDifferences() throws {
        let shape = [4, 5, 3]
        let input = GradientInput(shape, seed: 43)
        let ops: [(String, (Tensor, Int?) throws -> Tensor, ([Double]) -> Double)] = [
            ("sum", { try $0.sum(axis: $1) }, { $0.reduce(0, +) }),
            ("mean", { try $0.mean(axis: $1) }, { $0.reduce(0, +) / Double($0.count) }),
            ("max", { try $0.max(axis: $1) }, { $0.max()! }),
            ("min", { try $0.min(axis: $1) }, { $0.min()! }),
            ("variance", { try $0.variance(axis: $1) }, { x in
                let m = x.reduce(0, +) / Double(x.count)
                return x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1)
            }),
            ("logSumExp", { try $0.logSumExp(axis: $1) }, { x in Foundation.log(x.reduce(0) { $0 + Foundation.exp($1) }) }),
        ]
        for (name, op, f) in ops {
            for axis in [0, 1, 2] {
                try checkTapeGradients("\(name) axis \(axis)", [input], build: { try op($0[0], axis) }) {
                    referenceReduce($0[0], shape, axis: axis, f)
                }
            }
            try checkTapeGradients("\(name) of all", [input], build: { try op($0[0], nil) }) { [f($0[0])] }
        }
        for axis in [0, 2] {
            try checkTapeGradients("softmax axis \(axis)", [input], build: { try $0[0].softmax(axis: axis) }) { x in
                softmaxReference(x[0], shape, axis: axis, log: false)
            }
            try checkTapeGradients("logSoftmax axis \(axis)", [input], build: { try $0[0].logSoftmax(axis: axis) }) {
                softmaxReference($0[0], shape, axis: axis, log: true)
            }
        }
    }

    func testViewGradientsRouteToTheirBase() throws {
        let input = GradientInput([4, 3], seed: 44)
        // y = x.T[1..<3] · 2 + x.reshaped([3, 4])[0..<2], then expanded and squeezed.
        try checkTapeGradients("views", [input], build: { x in
            let t = try x[0].transposed()[1..<3]  // [2, 4]
            let r = try x[0].reshaped([3, -1])[0..<2]  // [2, 4]
            let y = try t * 2 + r
            return try y.unsqueezed(axis: 0).expanded(to: [3, 2, 4]).permuted([2, 0, 1]).contiguous()
        }) { x in
            let v = x[0]
            var y = [Double](repeating: 0, count: 8)
            for i in 0..<2 { for j in 0..<4 { y[i * 4 + j] = v[j * 3 + (i + 1)] * 2 + v[i * 4 + j] } }
            // [3, 2, 4] permuted to [4, 3, 2]: out[j][c][i] = y[i][j].
            var out: [Double] = []
            for j in 0..<4 { for _ in 0..<3 { for i in 0..<2 { out.append(y[i * 4 + j]) } } }
            return out
        }
    }

    func testMatmulEinsumActivationAndLossGradients() throws {
        let (a, b) = (GradientInput([5, 4], seed: 45), GradientInput([4, 3], seed: 46))
        func product(_ x: [Double], _ y: [Double], m: Int, k: Int, n: Int) -> [Double] {
            (0..<m * n).map { i in (0..<k).reduce(0) { $0 + x[i / n * k + $1] * y[$1 * n + i % n] } }
        }
        try checkTapeGradients("matmul", [a, b], build: { try $0[0].matmul($0[1]) }) {
            product($0[0], $0[1], m: 5, k: 4, n: 3)
        }
        // A transposed view is read with the transpose flag; its gradient comes back transposed.
        let bt = GradientInput([3, 4], seed: 47)
        try checkTapeGradients("matmul of a transposed view", [a, bt], build: { try $0[0].matmul($0[1].transposed()) }) {
            let t = referenceView($0[1], [4, 3]) { i in i[1] * 4 + i[0] }
            return product($0[0], t, m: 5, k: 4, n: 3)
        }
        try checkTapeGradients("einsum ij,jk->ik", [a, b], build: { try Tensor.einsum("ij,jk->ik", $0[0], $0[1]) }) {
            product($0[0], $0[1], m: 5, k: 4, n: 3)
        }
        let (u, v) = (GradientInput([5, 4], seed: 48), GradientInput([4], seed: 49))
        try checkTapeGradients("einsum ij,j->i", [u, v], build: { try Tensor.einsum("ij,j->i", $0[0], $0[1]) }) { x in
            (0..<5).map { i in (0..<4).reduce(0) { $0 + x[0][i * 4 + $1] * x[1][$1] } }
        }
        try checkTapeGradients("einsum ij,k->k", [u, v], build: { try Tensor.einsum("ij,k->k", $0[0], $0[1]) }) { x in
            let total = x[0].reduce(0, +)
            return x[1].map { $0 * total }
        }
        let away = GradientInput([6, 4], seed: 50) { $0 < 0 ? $0 - 0.1 : $0 + 0.1 }
        for f in Activation.allCases {
            try checkTapeGradients("\(f)", [away], build: { try $0[0].activation(f) }) { $0[0].map { f($0) } }
        }
        let labels: [Float] = [0, 3, 1, 2, 3, 0]
        try checkTapeGradients("softmaxCrossEntropy", [GradientInput([6, 4], seed: 51)], build: {
            try $0[0].softmaxCrossEntropy(labels: try Tensor(labels, shape: [6], on: $0[0].device))
        }) { x in
            (0..<6).map { i in
                let row = Array(x[0][i * 4..<i * 4 + 4])
                let m = row.max()!
                return m + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - m) }) - row[Int(labels[i])]
            }
        }
        try checkTapeGradients("squaredError", [GradientInput([6, 1], seed: 52), GradientInput([6], seed: 53)],
                               build: { try $0[0].squaredError(target: $0[1]) }) { x in
            zip(x[0], x[1]).map { ($0 - $1) * ($0 - $1) }
        }
    }
}

/// softmax (or log-softmax) along `axis`, in Double.
func softmaxReference(_ x: [Double], _ shape: [Int], axis: Int, log: Bool) -> [Double] {
    let n = shape[axis], inner = shape[(axis + 1)...].reduce(1, *), outer = shape[..<axis].reduce(1, *)
    var out = x
    for o in 0..<outer {
        for j in 0..<inner {
            let idx = (0..<n).map { (o * n + $0) * inner + j }
            let m = idx.map { x[$0] }.max()!
            let lse = m + Foundation.log(idx.reduce(0) { $0 + Foundation.exp(x[$1] - m) })
            for i in idx { out[i] = log ? x[i] - lse : Foundation.exp(x[i] - lse) }
        }
    }
    return out
}
