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
        try checkpoint.checkInputs(raw, imagesFile: try folder.file(MNISTFolder.testImages), model: model)
        let test = raw.dataset(checkpoint.normalization)
        let loss = Losses.named(checkpoint.loss)!
        let evaluator = try Evaluator(model: network, loss: loss, classes: checkpoint.classes, device: device)
        try ClassPlan.check(test.labels, classes: checkpoint.classes, source: try folder.file(MNISTFolder.testLabels))
        let (testLoss, accuracy) = try evaluator.evaluate(test)
        print("model \(model): \(LayerSpec.text(checkpoint.layers)), \(checkpoint.loss), on \(device.summary)")
        print(String(format: "test loss %.4f  test acc %.4f  (%d examples)", testLoss, accuracy, test.count))
    }
}
