import ArgumentParser
import Device
import Foundation
import NN

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
        let test = checkpoint.normalization.apply(try folder.loadTest())
        guard test.features == checkpoint.sizes[0] else {
            throw DataError(try folder.file(MNISTFolder.testImages),
                            "images have \(test.features) pixels but the model \(model) expects \(checkpoint.sizes[0])")
        }
        let loss = makeLoss(named: checkpoint.loss)!
        var options = TrainingOptions()
        options.lr = 1
        let trainer = try Trainer(model: network, loss: loss, classes: checkpoint.classes, options: options, device: device)
        try trainer.validateLabels(test, source: try folder.file(MNISTFolder.testLabels))
        let (testLoss, accuracy) = try trainer.evaluate(test)
        print("model \(model): \(checkpoint.sizes.map(String.init).joined(separator: "-")), \(checkpoint.loss), on \(DataDeviceOptions.describe(device))")
        print(String(format: "test loss %.4f  test acc %.4f  (%d examples)", testLoss, accuracy, test.count))
    }
}
