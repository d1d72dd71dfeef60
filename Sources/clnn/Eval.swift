import ArgumentParser
import Device
import Foundation
@_spi(CLI) import NN

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a saved model's test loss and accuracy.")

    @Option(help: "A checkpoint written by `clnn train --save`.")
    var model: String

    @OptionGroup var common: DataDeviceOptions

    func run() throws {
        let device = try common.resolveDevice()
        let (checkpoint, network) = try Checkpoint.load(model, on: device)
        let folder = MNISTFolder(common.data)
        let raw = try folder.loadTestRaw()
        let imagesFile = try folder.file(MNISTFolder.testImages)
        guard raw.features == checkpoint.sizes[0] else {
            throw DataError(imagesFile, "images have \(raw.features) pixels but the model \(model) expects \(checkpoint.sizes[0])")
        }
        if let trained = checkpoint.imageShape, let shape = raw.imageShape, trained != shape {
            throw DataError(imagesFile, "images are \(shape[0])×\(shape[1]) but the model \(model) was trained on "
                            + "\(trained[0])×\(trained[1]) images (the same pixel count, laid out differently)")
        }
        let test = raw.dataset(checkpoint.normalization)
        let loss = Losses.named(checkpoint.loss)!
        let evaluator = try Evaluator(model: network, loss: loss, classes: checkpoint.classes, device: device)
        try ClassPlan.check(test.labels, classes: checkpoint.classes, source: try folder.file(MNISTFolder.testLabels))
        let (testLoss, accuracy) = try evaluator.evaluate(test)
        print("model \(model): \(LayerSpec.text(checkpoint.layers)), \(checkpoint.loss), on \(device.summary)")
        print(String(format: "test loss %.4f  test acc %.4f  (%d examples)", testLoss, accuracy, test.count))
    }
}
