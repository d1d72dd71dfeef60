import Device
import Foundation
import NN
import TestSupport
import XCTest

/// The convolutional layers as modules: batch norm's two modes and running statistics against Double, its gradient
/// against finite differences, dropout's masks and modes, and a small CNN that trains with `Trainer` to the same
/// curve on every device, named as PyTorch names it.
final class ConvLayerTests: XCTestCase {
    /// Batch norm of x [N, C, L] in Double with the batch's statistics: (y, mean, biased variance).
    private func batchNorm(_ x: [Double], n: Int, c: Int, l: Int, gamma: [Double], beta: [Double], eps: Double)
        -> (y: [Double], mean: [Double], variance: [Double]) {
        var y = x, mean = [Double](repeating: 0, count: c), variance = mean
        for ch in 0..<c {
            let values = (0..<n).flatMap { b in (0..<l).map { i in x[(b * c + ch) * l + i] } }
            mean[ch] = values.reduce(0, +) / Double(values.count)
            variance[ch] = values.reduce(0) { $0 + ($1 - mean[ch]) * ($1 - mean[ch]) } / Double(values.count)
            for b in 0..<n {
                for i in 0..<l {
                    let at = (b * c + ch) * l + i
                    y[at] = (x[at] - mean[ch]) / (variance[ch] + eps).squareRoot() * gamma[ch] + beta[ch]
                }
            }
        }
        return (y, mean, variance)
    }

    func testBatchNormModesRunningStatisticsAndGradientsOnEveryDevice() throws {
        let (n, c, h, w) = (3, 2, 3, 5)
        let xv = testValues(n * c * h * w, seed: 130).map { $0 * 2 + 0.5 }, r = testValues(xv.count, seed: 131)
        let gamma: [Double] = [1.5, -0.5], beta: [Double] = [0.25, 1]
        let x = xv.map(Double.init), count = Double(n * h * w)
        let (y, mean, variance) = batchNorm(x, n: n, c: c, l: h * w, gamma: gamma, beta: beta, eps: 1e-5)
        func loss(_ x: [Double], _ g: [Double], _ b: [Double]) -> Double {
            zip(batchNorm(x, n: n, c: c, l: h * w, gamma: g, beta: b, eps: 1e-5).y, r).reduce(0) {
                $0 + $1.0 * Double($1.1)
            }
        }
        let dx = finiteDifferences(x) { loss($0, gamma, beta) }
        let dGamma = finiteDifferences(gamma) { loss(x, $0, beta) }, dBeta = finiteDifferences(beta) { loss(x, gamma, $0) }
        for device in testDevices {
            let bn = try BatchNorm2d(c, on: device)
            try bn.weight.value.upload(gamma.map(Float.init))
            try bn.bias.value.upload(beta.map(Float.init))
            let model = Sequential([bn])
            let input = try Tensor(xv, shape: [n, c, h, w], on: device)
            let out = try model.forward(input)
            assertClose(try out.toArray(), y, rtol: 1e-4, atol: 1e-4, "training forward on \(device)")
            // Running statistics: momentum 0.1, the variance unbiased.
            assertClose(try bn.runningMean.toArray(), mean.map { 0.1 * $0 }, rtol: 1e-4, atol: 1e-5,
                        "running mean on \(device)")
            assertClose(try bn.runningVar.toArray(), variance.map { 0.9 + 0.1 * $0 * count / (count - 1) },
                        rtol: 1e-4, atol: 1e-5, "running variance on \(device)")
            XCTAssertEqual(bn.batchesTracked, 1)
            let grad = try XCTUnwrap(try model.backward(try Tensor(r, shape: [n, c, h, w], on: device),
                                                        needsInputGradient: true))
            assertClose(try grad.toArray(), dx, rtol: 2e-3, atol: 2e-3, "dx on \(device)")
            assertClose(try bn.weight.grad.toArray(), dGamma, rtol: 2e-3, atol: 2e-3, "dγ on \(device)")
            assertClose(try bn.bias.grad.toArray(), dBeta, rtol: 2e-3, atol: 2e-3, "dβ on \(device)")

            // Evaluation mode: the running statistics, which then stay.
            model.eval()
            XCTAssertFalse(bn.isTraining)
            let (rm, rv) = (try bn.runningMean.toArray(), try bn.runningVar.toArray())
            let evaluated = try Tensor.withoutGradients { try model.forward(input) }.toArray()
            let expected = x.indices.map { i -> Double in
                let ch = (i / (h * w)) % c
                return (x[i] - Double(rm[ch])) / (Double(rv[ch]) + 1e-5).squareRoot() * gamma[ch] + beta[ch]
            }
            assertClose(evaluated, expected, rtol: 1e-4, atol: 1e-4, "evaluation forward on \(device)")
            XCTAssertEqual(try bn.runningMean.toArray(), rm)
            XCTAssertEqual(bn.batchesTracked, 1)
            // A count set at Int.max stays there at the next training forward (it trapped: helper-28).
            let counted = try BatchNorm1d(2, on: device)
            try counted.setRunningStatistics(mean: try Tensor.zeros([2], on: device),
                                             variance: try Tensor.ones([2], on: device), batchesTracked: Int.max)
            _ = try counted.forward(try Tensor([1, 2, 3, 4], shape: [2, 2], on: device))
            XCTAssertEqual(counted.batchesTracked, Int.max)
            // An empty batch in training: an empty output, the running statistics unchanged (it was refused as one
            // value per channel).
            let emptyBatch = try Tensor.zeros([0, 3, 2, 2], on: device)
            emptyBatch.requiresGrad = true
            let normed = try BatchNorm2d(3, on: device)
            let normal = try normed(emptyBatch)
            XCTAssertEqual(normal.shape, [0, 3, 2, 2])
            try normal.sum().backward()
            XCTAssertEqual(try XCTUnwrap(emptyBatch.grad).shape, [0, 3, 2, 2])
            XCTAssertEqual(try normed.runningMean.toArray() + normed.runningVar.toArray(), [0, 0, 0, 1, 1, 1])
            XCTAssertEqual(normed.batchesTracked, 0)

            XCTAssertThrowsError(try BatchNorm1d(4, on: device).forward(try Tensor.zeros([1, 4], on: device))) {
                XCTAssertTrue("\($0)".contains("more than one value per channel"), "\($0)")
            }
            XCTAssertThrowsError(try BatchNorm2d(3, on: device).forward(input)) {
                XCTAssertTrue("\($0)".contains("BatchNorm2d: expects input of shape [N, 3, H, W], got [3, 2, 3, 5]"),
                              "\($0)")
            }
        }
    }

    func testDropoutDropsAndScalesInTrainingOnlyWithTheSameMaskOnEveryDevice() throws {
        var masks: [[Float]] = []
        for device in testDevices {
            let dropout = try Dropout(0.25, seed: 9)
            let x = try Tensor.ones([50, 40], on: device)
            let y = try dropout.forward(x).toArray()
            let kept = y.filter { $0 != 0 }
            XCTAssertEqual(Set(kept), [Float(1 / 0.75)], "kept elements are scaled by 1/(1-p)")
            XCTAssertEqual(Double(kept.count) / Double(y.count), 0.75, accuracy: 0.04)
            let dx = try XCTUnwrap(try dropout.backward(try Tensor.full([50, 40], value: 2, on: device),
                                                        needsInputGradient: true)).toArray()
            XCTAssertEqual(dx, y.map { $0 * 2 }, "the gradient passes where the element was kept")
            masks.append(y)
            dropout.eval()
            XCTAssertEqual(try dropout.forward(x).toArray(), [Float](repeating: 1, count: 2000))
        }
        XCTAssertEqual(Set(masks.map { $0 }).count, 1, "the same seed gives the same mask on every device")
        XCTAssertThrowsError(try Dropout(1.5, seed: 1)) { XCTAssertTrue("\($0)".contains("0...1"), "\($0)") }
    }

    /// A dropout's k-th training forward draws the k-th mask of its stream, and `setRandomStream` places a stream
    /// anywhere: a layer put at (seed, k) draws what a fresh layer of that seed draws on its k-th forward; evaluation
    /// draws nothing; a `Sequential` gives each child the stream of its index.
    func testADropoutStreamCanBePlacedAtAnyDraw() throws {
        let x = try Tensor.ones([7, 13])
        let fresh = try Dropout(0.5, seed: 21)
        var masks: [[Float]] = []
        for _ in 0..<4 { masks.append(try fresh.forward(x).toArray()) }
        XCTAssertEqual(fresh.draws, 4)
        XCTAssertEqual(Set(masks).count, 4, "each forward draws a new mask")
        fresh.eval()
        _ = try fresh.forward(x)
        XCTAssertEqual(fresh.draws, 4, "evaluation draws nothing")
        let placed = try Dropout(0.5, seed: 99)
        placed.setRandomStream(seed: 21, draw: 2)
        XCTAssertEqual(try placed.forward(x).toArray(), masks[2])
        XCTAssertEqual(try placed.forward(x).toArray(), masks[3], "and goes on from there")
        placed.setRandomStream(seed: 21, draw: 0)
        XCTAssertEqual(try placed.forward(x).toArray(), masks[0])

        let model = Sequential([Flatten(), try Dropout(0.5, seed: 1), try Dropout(0.5, seed: 2)])
        model.setRandomStream(seed: 20, draw: 3)
        let layers = model.layers.compactMap { $0 as? Dropout }
        XCTAssertEqual(layers.map(\.draws), [3, 3])
        let alone = try Dropout(0.5, seed: Sequential.streamSeed(20, child: 1))
        for _ in 0..<3 { _ = try alone.forward(x) }
        XCTAssertEqual(try layers[0].forward(x).toArray(), try alone.forward(x).toArray(),
                       "the child at index 1 takes the stream streamSeed(20, child: 1)")

        // A model built from an architecture that starts with an image entry (no state-dict index, one entry):
        // its dropout (entry 4) draws as it always did — seed (run seed ^ 0xD50F << 48) + its entry's index — and
        // the run's stream placed at draw 0 gives the same masks.
        let specs = try LayerSpec.resolve("flatten linear(13) relu dropout(0.5) linear(3)", input: [1, 2, 3])
        XCTAssertEqual(specs.count, 6)
        let built = try LayerSpec.modules(specs, seed: 7, on: .cpu)
        let layer = try XCTUnwrap(built.layers.compactMap { $0 as? Dropout }.first)
        let expected = try Dropout(0.5, seed: (7 ^ 0xD50F_0000_0000_0000) &+ 4).forward(x).toArray()
        XCTAssertEqual(try layer.forward(x).toArray(), expected, "the masks of the code before streams were placed")
        built.setRandomStream(seed: Sequential.streamSeed(run: 7), draw: 0)
        XCTAssertEqual(try layer.forward(x).toArray(), expected, "the trainer's placement at draw 0: the same stream")
    }

    /// Streams in nested models: a dropout inside a `Sequential` inside another takes its entry's stream in the
    /// whole model (as if the model were flat), and a child without specs (counted as one entry) gives its own
    /// children streams far from every other entry's — where they used to coincide: the inner dropout at entry 1 of
    /// a spec-less child at entry 1 drew the same masks as the outer dropout at entry 2.
    func testEveryDropoutOfANestedModelHasAStreamOfItsOwn() throws {
        let x = try Tensor.ones([7, 13])
        let nested = Sequential([try Dropout(0.5, seed: 0), Sequential([Flatten(), try Dropout(0.5, seed: 0)]),
                                 try Dropout(0.5, seed: 0)])
        nested.setRandomStream(seed: 40, draw: 5)
        let flat = Sequential([try Dropout(0.5, seed: 0), Flatten(), try Dropout(0.5, seed: 0),
                               try Dropout(0.5, seed: 0)])
        flat.setRandomStream(seed: 40, draw: 5)
        XCTAssertEqual(try nested.forward(x).toArray(), try flat.forward(x).toArray(), "the flat model's streams")

        let specless = Sequential([Flatten(), try Dropout(0.5, seed: 0), SpeclessIdentity()])
        XCTAssertNil(specless.layerSpecs)
        let outer = Sequential([try Dropout(0.5, seed: 0), specless, try Dropout(0.5, seed: 0)])
        outer.setRandomStream(seed: 40, draw: 5)
        let dropouts = [outer.layers[0], specless.layers[1], outer.layers[2]].compactMap { $0 as? Dropout }
        let masks = try dropouts.map { try $0.forward(x).toArray() }
        XCTAssertEqual(Set(masks).count, 3, "three dropouts, three streams")
        let inner = try Dropout(0.5, seed: Sequential.streamSeed(Sequential.streamSeed(mixing: 41), child: 1))
        for _ in 0..<5 { _ = try inner.forward(x) }
        XCTAssertEqual(masks[1], try inner.forward(x).toArray(), "the spec-less child's seed is its entry's, mixed")
    }

    /// The anchor's CNN shape, narrower: conv-relu-pool twice, flatten, two linear layers.
    private func cnn(seed: UInt64, on device: DeviceTag) throws -> Sequential {
        Sequential([
            try ImageInput(channels: 1, height: 28, width: 28),
            try Conv2d(1, 4, kernel: 3, padding: 1, seed: seed, on: device), ActivationLayer(.relu),
            MaxPool2d(kernel: 2),
            try Conv2d(4, 6, kernel: 3, padding: 1, seed: seed + 2, on: device), ActivationLayer(.relu),
            MaxPool2d(kernel: 2),
            Flatten(),
            try Linear(6 * 7 * 7, 16, activation: .relu, initializer: .pytorchDefault, seed: seed + 4, on: device),
            try Linear(16, 10, initializer: .pytorchDefault, seed: seed + 6, on: device),
        ])
    }

    func testASmallCNNTrainsToTheSameCurveOnEveryDeviceNamedAsPyTorchNamesIt() throws {
        let (train, test) = try fashionSlice(train: 32 * 10, test: 200)
        var options = TrainingOptions()
        (options.epochs, options.batchSize, options.seed, options.momentum) = (2, 32, 5, 0.9)
        var curves: [[Double]] = []
        for device in testDevices {
            let model = try cnn(seed: 11, on: device)
            XCTAssertEqual(model.namedParameters.map(\.name),
                           ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias", "9.weight", "9.bias"])
            let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options, device: device)
            let data = try DeviceDataset(train, on: device)
            var curve: [Double] = []
            for epoch in 1...options.epochs {
                curve.append(Double(try trainer.trainEpoch(data, epoch: epoch, reportEvery: 1) { _ in }))
            }
            let (loss, accuracy) = try trainer.evaluate(test)
            curve.append(loss)
            XCTAssertLessThan(curve[1], curve[0], "the training loss falls on \(device)")
            XCTAssertGreaterThan(accuracy, 0.3, "well above chance (0.1) on \(device)")
            curves.append(curve)
        }
        for curve in curves.dropFirst() { assertClose(curve, curves[0], rtol: 1e-3, atol: 1e-4, "curve vs cpu") }
    }

    /// Every parameter gradient of a whole CNN (image input, conv, batch norm, relu, max pool, conv, avg pool,
    /// flatten, linear) through `Sequential.backward`, against central differences of Σ y·r in fp32.
    func testAWholeCNNsParameterGradientsMatchFiniteDifferencesOnEveryDevice() throws {
        let x = testValues(3 * 2 * 7 * 6, seed: 140), r = testValues(3 * 5, seed: 141)
        for device in testDevices {
            let model = Sequential([
                try ImageInput(channels: 2, height: 7, width: 6),
                try Conv2d(2, 3, kernel: 3, padding: 1, seed: 1, on: device), try BatchNorm2d(3, on: device),
                ActivationLayer(.tanh), MaxPool2d(kernel: 2, stride: 1),
                try Conv2d(3, 4, window: Window2d(kernel: (2, 3), stride: (2, 1), padding: (1, 0)), seed: 3,
                           on: device),
                AvgPool2d(kernel: 2), Flatten(), try Linear(4 * 2 * 1, 5, seed: 5, on: device),
            ])
            let input = try Tensor(x, shape: [3, 2 * 7 * 6], on: device)
            let seed = try Tensor(r, shape: [3, 5], on: device)
            func loss() throws -> Double {
                let y = try Tensor.withoutGradients { try model.forward(input) }.toArray()
                return zip(y, r).reduce(0) { $0 + Double($1.0 * $1.1) }
            }
            try model.zeroGrad()
            _ = try model.forward(input)
            _ = try model.backward(seed, needsInputGradient: false)
            var compared = 0, kinks = 0
            for (name, p) in model.namedParameters {
                let analytic = try p.grad.toArray()
                var values = try p.value.toArray()
                // Central differences at two steps: where they disagree, a max pool's choice flips within the step
                // (a kink, where no derivative exists), and the element is not compared.
                func difference(_ i: Int, _ step: Float) throws -> Double {
                    let v = values[i]
                    defer { values[i] = v }
                    values[i] = v + step
                    try p.value.upload(values)
                    let up = try loss()
                    values[i] = v - step
                    try p.value.upload(values)
                    let down = try loss()
                    values[i] = v
                    try p.value.upload(values)
                    return (up - down) / Double(2 * step)
                }
                for i in values.indices {
                    let (wide, narrow) = (try difference(i, 2e-3), try difference(i, 1e-3))
                    guard abs(wide - narrow) <= 1e-3 + 1e-2 * abs(narrow) else {
                        kinks += 1
                        continue
                    }
                    compared += 1
                    assertClose([analytic[i]], [narrow], rtol: 3e-2, atol: 3e-3, "d\(name)[\(i)] on \(device)")
                }
            }
            XCTAssertLessThan(kinks * 10, compared, "most elements are compared on \(device)")
        }
    }

    /// Sizes a user may pass that once overflowed (a trap) are errors naming the layer.
    func testHugeOrZeroLayerSizesAreErrorsNamingTheLayer() throws {
        let cases: [(String, () throws -> Any)] = [
            ("Conv2d: the window's height needs kernel", {
                try Conv2d(1, 1, kernel: 1 << 40, dilation: 1 << 40, seed: 0)
            }),
            ("Conv2d: the window's height needs kernel", { try Conv2d(1, 1, kernel: Int.min, seed: 0) }),
            ("Conv2d: needs at least one input and one output channel", { try Conv2d(0, 4, kernel: 3, seed: 0) }),
            ("Conv2d: a weight of shape [1048576, 1048576, 64, 64] has too many elements", {
                try Conv2d(1 << 20, 1 << 20, kernel: 64, seed: 0)
            }),
            // (These trapped: the fans, products of the sizes, overflowed before any check — helper-28.)
            ("Conv2d: a weight of shape [1, \(Int.max), 2, 2] has too many", {
                try Conv2d(Int.max, 1, kernel: 2, seed: 0)
            }),
            ("Conv2d: a weight of shape [\(Int.max), 1, 2, 2] has too many", {
                try Conv2d(1, Int.max, kernel: 2, seed: 0)
            }),
            ("has too many elements", { try Conv2d(1 << 45, 1, kernel: 1 << 10, seed: 0) }),
            ("ImageInput: needs sizes ≥ 1 whose product fits", { try ImageInput(channels: 1 << 32, height: 1 << 32, width: 1) }),
            ("ImageInput: needs sizes ≥ 1", { try ImageInput(channels: 0, height: 28, width: 28) }),
            ("BatchNorm2d: needs features ≥ 1", { try BatchNorm2d(0) }),
            ("AdaptiveAvgPool2d: supports output size 1", { try AdaptiveAvgPool2d(2) }),
        ]
        for (expected, body) in cases {
            XCTAssertThrowsError(try body(), expected) { XCTAssertTrue("\($0)".contains(expected), "\($0)") }
        }
        let x = try Tensor.zeros([1, 3, 5, 7])
        XCTAssertThrowsError(try Sequential([try ImageInput(channels: 1, height: 28, width: 28)]).forward(x)) {
            XCTAssertTrue("\($0)".contains("ImageInput: expects rows of 1·28·28 = 784 values"), "\($0)")
        }
        XCTAssertThrowsError(try Conv2d(4, 2, kernel: 3, seed: 0).forward(x)) {
            XCTAssertTrue("\($0)".contains("the input has 3 channels"), "\($0)")
        }
        // PyTorch's nn.Flatten() refuses a tensor without an axis after the batch's (it gave [5, 1]).
        XCTAssertThrowsError(try Flatten().forward(try Tensor.zeros([5]))) {
            XCTAssertTrue("\($0)".contains("Flatten: expects [N, …] with at least one axis after the batch's"), "\($0)")
        }
        XCTAssertEqual(try Flatten().forward(try Tensor.zeros([5, 2])).shape, [5, 2])
        // PyTorch refuses an empty plane (the mean of nothing gave NaN); an empty batch is an empty output.
        XCTAssertThrowsError(try AdaptiveAvgPool2d(1).forward(try Tensor.zeros([2, 3, 0, 4]))) {
            XCTAssertTrue("\($0)".contains("AdaptiveAvgPool2d: expects non-empty channels, height and width"), "\($0)")
        }
        XCTAssertEqual(try AdaptiveAvgPool2d(1).forward(try Tensor.zeros([0, 3, 2, 4])).shape, [0, 3, 1, 1])
    }
}

/// A module a checkpoint cannot describe (no `layerSpecs`): y = x.
private final class SpeclessIdentity: Module {
    var parameters: [Parameter] { [] }
    func forward(_ x: Tensor) throws -> Tensor { x }
    func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? { dy }
    func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix { x }
}
