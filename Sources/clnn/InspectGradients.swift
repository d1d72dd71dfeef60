import AutogradReference
import Device
import Foundation
@_spi(CLI) import NN

extension Inspect {
    /// The lessons' "compare with autograd" cells: the 784-`hidden`-1 MSE model (ReLU, regressing the label) on the
    /// first `batch` training images; each gradient of the hand-written backward on `device` against Swift's autograd
    /// and against central finite differences of the Double reference at sampled entries.
    func checkGradients(train: Dataset, device: DeviceTag) throws {
        let n = min(batch, train.count), m = train.features
        let images = Array(train.images.prefix(n * m)), labels = Array(train.labels.prefix(n))
        // The two layers as MLP.make builds them (its seeds), kept typed for the autograd reference below.
        let linears = [try Linear(m, hidden, activation: .relu, seed: seed, on: device),
                       try Linear(hidden, 1, seed: seed &+ 1, on: device)]
        let model = Sequential(linears)
        let x = try Tensor(images, shape: [n, m], on: device)
        let pred = try model.forward(x)
        let grad = try Tensor.empty(pred.shape, on: device)
        let loss = try MSELoss()(pred, try Tensor(labels, shape: [n], on: device), grad: grad).item()
        try model.zeroGrad()
        let dx = try model.backward(grad)
        // The lessons' names: w1, b1, w2, b2 (each Linear's weight, then bias).
        var hand: [(String, [Int], [Float])] = []
        for (k, p) in model.parameters.enumerated() {
            hand.append(("\(k % 2 == 0 ? "w" : "b")\(k / 2 + 1)", p.value.shape, try p.grad.toArray()))
        }
        hand.append(("input", [n, m], try dx.toArray()))

        var autograd: [[Double]]?
        #if canImport(_Differentiation) && !CLNN_NO_DIFFERENTIATION
        let reference = try linears.map {
            Autograd.Layer(w: try $0.weight.value.toArray().map(Double.init),
                           b: try $0.bias.value.toArray().map(Double.init),
                           inFeatures: $0.inFeatures, outFeatures: $0.outFeatures, activation: $0.activation)
        }
        let auto = Autograd.gradients(x: images.map(Double.init), rows: n, layers: reference,
                                      objective: .meanSquaredError(labels: labels.map(Double.init)))
        autograd = zip(auto.weights, auto.biases).flatMap { [$0, $1] } + [auto.input]
        #endif

        // Central differences of the Double reference, at `samples` entries of each gradient.
        let xd = DoubleMatrix(rows: n, cols: m, values: images.map(Double.init))
        let labelsD = labels.map(Double.init)
        let params = try model.parameters.map { try $0.value.toArray().map(Double.init) }
        func referenceLoss(_ x: DoubleMatrix, _ p: [[Double]]) -> Double {
            MSELoss().reference(model.referenceForward(x, p), labelsD)
        }
        let samples = 20, h = 1e-6
        var generator = SeededGenerator(seed: seed &+ 1)
        print(String(format: "\ngradients of the lessons' %d-%d-1 MSE model (relu) on %d training images, "
                     + "loss %.6f, on %@:",
                     m, hidden, n, loss, device.description))
        print("tensor  shape        max |hand - autograd|  rel      max |hand - finite diff| (\(samples) entries)  rel")
        for (t, (name, shape, values)) in hand.enumerated() {
            let scale = Double(values.map { abs($0) }.max() ?? 0)
            var autoText = "  (autograd not in this toolchain)   "
            if let reference = autograd?[t] {
                let diff = zip(values, reference).map { abs(Double($0) - $1) }.max() ?? 0
                autoText = String(format: "  %20.3e  %7.1e", diff, diff / max(scale, 1e-30))
            }
            var fd = 0.0
            for _ in 0..<min(samples, values.count) {
                let i = Int.random(in: 0..<values.count, using: &generator)
                let numeric: Double
                if t < params.count {
                    var (plus, minus) = (params, params)
                    plus[t][i] += h
                    minus[t][i] -= h
                    numeric = (referenceLoss(xd, plus) - referenceLoss(xd, minus)) / (2 * h)
                } else {
                    var (plus, minus) = (xd, xd)
                    plus.values[i] += h
                    minus.values[i] -= h
                    numeric = (referenceLoss(plus, params) - referenceLoss(minus, params)) / (2 * h)
                }
                fd = max(fd, abs(Double(values[i]) - numeric))
            }
            print(name.padding(toLength: 8, withPad: " ", startingAt: 0)
                  + "\(shape)".padding(toLength: 11, withPad: " ", startingAt: 0) + autoText
                  + String(format: "  %24.3e  %14.1e", fd, fd / max(scale, 1e-30)))
        }
    }
}
