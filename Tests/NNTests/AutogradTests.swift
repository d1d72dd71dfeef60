#if canImport(_Differentiation) && !CLNN_NO_DIFFERENTIATION
import AutogradReference
import Foundation
import NN
import TestSupport
import XCTest

/// The fast.ai lessons' "compare with autograd" cells, in Swift: every module's and loss's hand-written backward, on
/// every device, against gradients the compiler derives from the reference forward (AutogradReference), and those
/// against finite differences. Each test prints the largest difference it saw per module and device.
final class AutogradTests: XCTestCase {
    private func reference(_ linear: Linear) throws -> Autograd.Layer {
        Autograd.Layer(w: try linear.weight.value.toArray().map(Double.init),
                       b: try linear.bias.value.toArray().map(Double.init),
                       inFeatures: linear.inFeatures, outFeatures: linear.outFeatures, activation: linear.activation)
    }

    /// max |a − b| after checking closeness.
    @discardableResult
    private func compare(_ got: [Float], _ expected: [Double], _ what: String, rtol: Double = 1e-4,
                         atol: Double = 1e-5) -> Double {
        assertClose(got, expected, rtol: rtol, atol: atol, what)
        return zip(got, expected).map { abs(Double($0) - $1) }.max() ?? 0
    }

    /// The tape's gradients (a `TapeLinear`, tensor ops) against the compiler's, as the hand-written ones below.
    func testTapeLayersMatchAutogradOnEveryDevice() throws {
        for activation in [nil] + Activation.allCases.map(Optional.some) {
            for device in testDevices {
                for (rows, inputs, outputs) in [(1, 1, 1), (4, 13, 9), (17, 33, 5)] {
                    let layer = try TapeLinear(inputs, outputs, activation: activation, seed: 3, on: device)
                    try layer.bias.value.upload(testValues(outputs, seed: 4))
                    let xv = testValues(rows * inputs, seed: 5).map { $0 * 2 }, rv = testValues(rows * outputs, seed: 6)
                    _ = try layer.forward(try Tensor(xv, shape: [rows, inputs], on: device))
                    try layer.zeroGrad()
                    let dx = try layer.backward(try Tensor(rv, shape: [rows, outputs], on: device))
                    let reference = Autograd.Layer(w: try layer.weight.value.toArray().map(Double.init),
                                                   b: try layer.bias.value.toArray().map(Double.init),
                                                   inFeatures: inputs, outFeatures: outputs, activation: activation)
                    let auto = Autograd.gradients(x: xv.map(Double.init), rows: rows, layers: [reference],
                                                  objective: .weightedSum(r: rv.map(Double.init)))
                    let shape = "TapeLinear \(activation?.rawValue ?? "") \(rows)x\(inputs)→\(outputs) on \(device)"
                    compare(try dx.toArray(), auto.input, "input gradient, \(shape)")
                    compare(try layer.weight.grad.toArray(), auto.weights[0], "weight gradient, \(shape)")
                    compare(try layer.bias.grad.toArray(), auto.biases[0], "bias gradient, \(shape)")
                }
            }
        }
    }

    func testLinearWithEveryActivationMatchesAutogradOnEveryDevice() throws {
        for activation in [nil] + Activation.allCases.map(Optional.some) {
            let name = "Linear" + (activation.map { "+\($0.rawValue)" } ?? "")
            for device in testDevices {
                var worst = 0.0
                for (rows, inputs, outputs) in [(1, 1, 1), (3, 5, 7), (4, 13, 9), (17, 33, 5)] {
                    let linear = try Linear(inputs, outputs, activation: activation, seed: 3, on: device)
                    try linear.bias.value.upload(testValues(outputs, seed: 4))
                    let xv = testValues(rows * inputs, seed: 5).map { $0 * 2 }, rv = testValues(rows * outputs, seed: 6)
                    let x = try Tensor(xv, shape: [rows, inputs], on: device)
                    _ = try linear.forward(x)
                    try linear.zeroGrad()
                    let dx = try linear.backward(try Tensor(rv, shape: [rows, outputs], on: device))
                    let auto = Autograd.gradients(x: xv.map(Double.init), rows: rows, layers: [try reference(linear)],
                                                  objective: .weightedSum(r: rv.map(Double.init)))
                    let shape = "\(name) \(rows)x\(inputs)→\(outputs) on \(device)"
                    worst = max(worst, compare(try dx.toArray(), auto.input, "input gradient, \(shape)"))
                    worst = max(worst, compare(try linear.weight.grad.toArray(), auto.weights[0],
                                               "weight gradient, \(shape)"))
                    worst = max(worst, compare(try linear.bias.grad.toArray(), auto.biases[0],
                                               "bias gradient, \(shape)"))
                    if device == .cpu {
                        // The two references agree: autograd against finite differences of the same forward.
                        let r = try Tensor.randn([rows, outputs], seed: 1)
                        let numeric = try GradientCheck.check(linear, input: x, seed: 1)
                        let same = Autograd.gradients(x: xv.map(Double.init), rows: rows,
                                                      layers: [try reference(linear)],
                                                      objective: .weightedSum(r: try r.toArray().map(Double.init)))
                        for (result, autograd) in zip(numeric, [same.input, same.weights[0], same.biases[0]]) {
                            assertClose(result.numeric, autograd, rtol: 1e-4, atol: 1e-6,
                                        "finite differences vs autograd, \(result.name), \(shape)")
                        }
                    }
                }
                print("autograd vs hand-written: \(name) on \(device): max |Δ| = \(worst)")
            }
        }
    }

    func testActivationLayersAndLossesMatchAutogradOnEveryDevice() throws {
        let (rows, cols) = (5, 7)
        let xv = testValues(rows * cols, seed: 7).map { $0 * 3 }
        let labels: [Float] = [0, 6, 3, 3, 1]
        for device in testDevices {
            // ActivationLayer (each function) before a Linear, so the objective has parameters behind it too.
            for f in Activation.allCases {
                let model = Sequential([ActivationLayer(f), try Linear(cols, 4, seed: 2, on: device)])
                let x = try Tensor(xv, shape: [rows, cols], on: device)
                _ = try model.forward(x)
                try model.zeroGrad()
                let rv = testValues(rows * 4, seed: 8)
                let dx = try model.backward(try Tensor(rv, shape: [rows, 4], on: device))
                let auto = Autograd.gradients(x: xv.map(Double.init), rows: rows,
                                              layers: [try reference(model.layers[1] as! Linear)],
                                              activationFirst: f, objective: .weightedSum(r: rv.map(Double.init)))
                let worst = compare(try dx.toArray(), auto.input, "ActivationLayer(\(f)) input gradient on \(device)")
                print("autograd vs hand-written: ActivationLayer(\(f.rawValue)) on \(device): max |Δ| = \(worst)")
            }
            for (loss, objective, width) in [(CrossEntropyLoss() as any Loss,
                                              Autograd.Objective.softmaxCrossEntropy(labels: labels.map(Double.init)),
                                              cols),
                                             (MSELoss(), .meanSquaredError(labels: labels.map(Double.init)), 1)] {
                let pv = Array(xv.prefix(rows * width))
                let pred = try Tensor(pv, shape: [rows, width], on: device)
                let grad = try Tensor.empty([rows, width], on: device)
                let value = try loss(pred, try Tensor(labels, shape: [rows], on: device), grad: grad).item()
                let auto = Autograd.lossGradient(pred: pv.map(Double.init), rows: rows, cols: width,
                                                 objective: objective)
                XCTAssertEqual(Double(value), auto.value, accuracy: 1e-5, "\(loss.name) value on \(device)")
                let worst = compare(try grad.toArray(), auto.grad, "\(loss.name) gradient on \(device)", atol: 1e-6)
                print("autograd vs hand-written: \(loss.name) on \(device): max |Δ| = \(worst)")
            }
        }
    }

    /// The whole MLP with its loss, on a real batch of Fashion-MNIST: the lessons' 784-50-1 MSE model and a
    /// 784-32-10 cross-entropy one.
    func testTheWholeMLPMatchesAutogradOnARealBatchOnEveryDevice() throws {
        let (train, _) = try fashionSlice(train: 16, test: 1)
        for (sizes, loss, objective) in [([784, 50, 1], MSELoss() as any Loss,
                                          Autograd.Objective.meanSquaredError(labels: train.labels.map(Double.init))),
                                         ([784, 32, 10], CrossEntropyLoss(),
                                          .softmaxCrossEntropy(labels: train.labels.map(Double.init)))] {
            for device in testDevices {
                let model = try MLP.make(sizes: sizes, seed: 11, on: device)
                let x = try Tensor(train.images, shape: [train.count, 784], on: device)
                let pred = try model.forward(x)
                let grad = try Tensor.empty(pred.shape, on: device)
                let value = try loss(pred, try Tensor(train.labels, shape: [train.count], on: device),
                                     grad: grad).item()
                try model.zeroGrad()
                let dx = try model.backward(grad)
                let auto = Autograd.gradients(x: train.images.map(Double.init), rows: train.count,
                                              layers: try model.layers.map { try reference($0 as! Linear) },
                                              objective: objective)
                XCTAssertEqual(Double(value), auto.value, accuracy: 1e-4 * max(1, abs(auto.value)),
                               "\(sizes) loss on \(device)")
                let name = "MLP \(sizes.map(String.init).joined(separator: "-")) \(loss.name)"
                var worst = compare(try dx.toArray(), auto.input, "\(name) input gradient on \(device)", atol: 1e-6)
                for (k, layer) in model.layers.enumerated() {
                    let linear = layer as! Linear
                    worst = max(worst, compare(try linear.weight.grad.toArray(), auto.weights[k],
                                               "\(name) layer \(k) weight on \(device)", atol: 1e-6))
                    worst = max(worst, compare(try linear.bias.grad.toArray(), auto.biases[k],
                                               "\(name) layer \(k) bias on \(device)", atol: 1e-6))
                }
                print("autograd vs hand-written: \(name) on a real batch of 16, \(device): max |Δ| = \(worst)")
            }
        }
    }
}
#endif
