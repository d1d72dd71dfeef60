import ArgumentParser
import AutogradReference
import Device
import Foundation
@_spi(CLI) import NN

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The fast.ai lessons' walk-through on real data: sizes, normalisation, and activation statistics "
            + "per init.")

    @OptionGroup var common: DataDeviceOptions

    @Option(help: "Hidden layer size for the activation statistics.")
    var hidden: Int = 50

    @Option(help: "Seed for the weights.")
    var seed: UInt64 = 42

    @Flag(help: ArgumentHelp(
        "Also check the gradients of the lessons' 784-50-1 MSE model on a real batch: the hand-written "
        + "backward on the device against Swift's autograd and finite differences."))
    var gradients = false

    @Option(help: "Training images in the --gradients batch.")
    var batch: Int = 64

    func validate() throws {
        guard hidden > 0, hidden <= 1 << 16 else {
            throw ValidationError("--hidden must be in 1...65536, got \(hidden)")
        }
        guard (1...4096).contains(batch) else { throw ValidationError("--batch must be in 1...4096, got \(batch)") }
    }

    func run() throws {
        let device = try common.resolveDevice()
        let folder = MNISTFolder(common.data)
        let (rawTrain, rawTest) = try folder.load()
        // (Constant images: refused, as training refuses them, rather than statistics divided by zero.)
        let norm = try Normalization.fit(rawTrain).requireSpread(imagesFile: try folder.file(MNISTFolder.trainImages),
                                                                remedy: nil)
        let (n, m, c) = (rawTrain.count, rawTrain.features, rawTrain.classCount)
        do {
            // The statistics run every training image through a [m, hidden] layer at once.
            try MLP.checkFits(sizes: [m, hidden, max(c, 1)], rows: n, on: device, training: false)
        } catch let error as DeviceError {
            throw ValidationError("--hidden \(hidden): " + "\(error)".replacingOccurrences(of: "MLP: ", with: ""))
        }
        print("data \(common.data) on \(device.summary)")
        print("n = \(n) training images, m = \(m) pixels each, c = \(c) classes (\(rawTest.count) test images)")

        let before = try (try Tensor(rawTrain.images, shape: [n, m], on: device)).statistics()
        let train = norm.apply(rawTrain), test = norm.apply(rawTest)
        let after = try (try Tensor(train.images, shape: [n, m], on: device)).statistics()
        let x = try Tensor(test.images, shape: [test.count, m], on: device)
        let testAfter = try x.statistics()
        print(String(format: "train mean %.4f std %.4f before normalisation", before.mean, before.std))
        print(String(format: "train mean %.4f std %.4f after  (test, with the train statistics: mean %.4f std %.4f)",
                     after.mean, after.std, testAfter.mean, testAfter.std))

        print("\nactivations of x_test · w1 + b1 with \(hidden) hidden units (w1 [\(m), \(hidden)], b1 = 0):")
        print("init".padding(toLength: 38, withPad: " ", startingAt: 0) + "  linear mean   std    relu mean   std")
        let rows: [(String, Initializer, Float)] = [
            ("randn", .normal(std: 1), 0),
            ("xavier (lessons: randn / sqrt(m))", .scaledByFanIn, 0),
            ("xavier (glorot normal)", .xavierNormal(), 0),
            ("kaiming (randn * sqrt(2 / m))", .kaimingNormal(), 0),
            ("kaiming + shifted relu (relu - 0.5)", .kaimingNormal(), -0.5),
        ]
        for (name, initializer, shift) in rows {
            let layer = try Linear(m, hidden, initializer: initializer, seed: seed, on: device)
            let linear = try layer.forward(x)
            let relu = try linear.activation(.relu).affine(scale: 1, shift: shift)
            let (l, r) = (try linear.statistics(), try relu.statistics())
            print(name.padding(toLength: 38, withPad: " ", startingAt: 0)
                  + String(format: "  %9.4f %7.4f  %9.4f %7.4f", l.mean, l.std, r.mean, r.std))
        }
        if gradients { try checkGradients(train: train, device: device) }
    }
}

