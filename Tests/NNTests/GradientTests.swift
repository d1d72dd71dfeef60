import NN
import TestSupport
import XCTest

final class GradientTests: XCTestCase {
    func assertGradientsMatch(_ results: [GradientCheck.Result], _ label: String, file: StaticString = #filePath,
                              line: UInt = #line) {
        for r in results {
            XCTAssertFalse(r.analytic.isEmpty && r.numeric.isEmpty && r.name != "input", file: file, line: line)
            assertClose(r.analytic, r.numeric, rtol: 1e-3, atol: 1e-4, "\(label) d/d\(r.name)", file: file, line: line)
        }
    }

    func testLinearGradientsMatchFiniteDifferencesOnEveryDevice() throws {
        for device in testDevices {
            let layer = try Linear(7, 5, seed: 1, on: device)
            try layer.bias.load(try Tensor.randn([5], seed: 2))
            let x = try Tensor.randn([3, 7], seed: 3, on: device)
            let results = try GradientCheck.check(layer, input: x)
            XCTAssertEqual(results.map(\.name), ["input", "weight", "bias"])
            assertGradientsMatch(results, "Linear on \(device)")
        }
    }

    func testActivationLayerGradientsMatchFiniteDifferencesOnEveryDevice() throws {
        for f in Activation.allCases {
            for device in testDevices {
                // Inputs kept away from the kink at 0.
                let values = testValues(24, seed: 4).map { $0 < 0 ? $0 - 0.05 : $0 + 0.05 }
                let results = try GradientCheck.check(ActivationLayer(f),
                                                      input: try Tensor(values, shape: [4, 6], on: device))
                assertGradientsMatch(results, "\(f) on \(device)")
            }
        }
    }

    func testLinearWithFusedActivationGradientsMatchFiniteDifferencesOnEveryDevice() throws {
        for f in Activation.allCases {
            for device in testDevices {
                let layer = try Linear(7, 5, activation: f, seed: 2, on: device)
                let x = try Tensor(testValues(3 * 7, seed: 9), shape: [3, 7], on: device)
                assertGradientsMatch(try GradientCheck.check(layer, input: x), "Linear+\(f) on \(device)")
            }
        }
    }

    func testTwoLayerModelGradientsMatchFiniteDifferencesOnEveryDevice() throws {
        for device in testDevices {
            let model = try MLP.make(sizes: [6, 9, 4], seed: 5, on: device)
            let x = try Tensor.randn([5, 6], seed: 6, on: device)
            let results = try GradientCheck.check(model, input: x)
            XCTAssertEqual(results.count, 5)
            assertGradientsMatch(results, "784-50-10-style model on \(device)")
        }
    }

    func testLossGradientsMatchFiniteDifferencesOnEveryDevice() throws {
        for device in testDevices {
            let logits = try Tensor(testValues(5 * 4, seed: 7).map { $0 * 3 }, shape: [5, 4], on: device)
            let labels = try Tensor([0, 3, 1, 1, 2], shape: [5], on: device)
            let ce = try GradientCheck.check(CrossEntropyLoss(), pred: logits, labels: labels)
            assertClose(ce.analytic, ce.numeric, rtol: 1e-3, atol: 1e-5, "cross-entropy on \(device)")

            let pred = try Tensor(testValues(5, seed: 8).map { $0 * 4 }, shape: [5, 1], on: device)
            let mse = try GradientCheck.check(MSELoss(), pred: pred, labels: labels)
            assertClose(mse.analytic, mse.numeric, rtol: 1e-3, atol: 1e-5, "mse on \(device)")
        }
    }

    func testLossValuesMatchTheirReferences() throws {
        for device in testDevices {
            let zv = testValues(12, seed: 9).map { $0 * 50 }
            let logits = try Tensor(zv, shape: [3, 4], on: device)
            let labels = try Tensor([2, 0, 3], shape: [3], on: device)
            let expected = CrossEntropyLoss().reference(DoubleMatrix(rows: 3, cols: 4, values: zv.map(Double.init)),
                                                        [2, 0, 3])
            XCTAssertEqual(Double(try CrossEntropyLoss()(logits, labels).item()), expected,
                           accuracy: 1e-4 * max(1, expected))
            let p = try Tensor([1, 2, 3], shape: [3, 1], on: device)
            XCTAssertEqual(try MSELoss()(p, labels).item(), Float((1 + 4 + 0) / 3.0), accuracy: 1e-6)
        }
    }

    func testGradientsAccumulateUntilZeroGrad() throws {
        for device in testDevices {
            let layer = try Linear(3, 2, seed: 10, on: device)
            let x = try Tensor.randn([4, 3], seed: 11, on: device), dy = try Tensor.randn([4, 2], seed: 12, on: device)
            _ = try layer.forward(x)
            _ = try layer.backward(dy)
            let once = try layer.weight.grad.toArray()
            _ = try layer.forward(x)  // each backward goes through a forward of its own
            _ = try layer.backward(dy)
            assertClose(try layer.weight.grad.toArray(), once.map { 2 * $0 }, "accumulated on \(device)")
            try layer.zeroGrad()
            XCTAssertEqual(try layer.weight.grad.toArray(), [0, 0, 0, 0, 0, 0])
        }
    }

    func testInitializersHaveTheirStatedScale() throws {
        let (fanIn, fanOut) = (400, 100)
        func std(_ i: Initializer) throws -> Double {
            let v = try i.tensor([fanIn, fanOut], fanIn: fanIn, fanOut: fanOut, seed: 3, on: .cpu).toArray()
            let mean = v.reduce(0) { $0 + Double($1) } / Double(v.count)
            return (v.reduce(0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(v.count)).squareRoot()
        }
        XCTAssertEqual(try std(.kaimingNormal()), (2.0 / 400).squareRoot(), accuracy: 0.003)
        XCTAssertEqual(try std(.kaimingNormal(mode: .fanOut)), (2.0 / 100).squareRoot(), accuracy: 0.005)
        XCTAssertEqual(try std(.xavierNormal()), (2.0 / 500).squareRoot(), accuracy: 0.003)
        XCTAssertEqual(try std(.xavierUniform()), (2.0 / 500).squareRoot(), accuracy: 0.003)
        XCTAssertEqual(try std(.scaledByFanIn), (1.0 / 400).squareRoot(), accuracy: 0.002)
        XCTAssertEqual(try std(.normal(std: 1)), 1, accuracy: 0.03)
    }

    func testSeededModelStartsIdenticalOnEveryDevice() throws {
        let reference = try MLP.make(sizes: [8, 5, 3], seed: 77, on: .cpu).parameters.map { try $0.value.toArray() }
        for device in testDevices {
            let model = try MLP.make(sizes: [8, 5, 3], seed: 77, on: device)
            XCTAssertEqual(try model.parameters.map { try $0.value.toArray() }, reference, "\(device)")
            try model.to(.cpu)
            XCTAssertTrue(model.parameters.allSatisfy { $0.device == .cpu })
        }
    }
}
