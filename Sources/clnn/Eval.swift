import ArgumentParser
import Device
import Foundation
@_spi(CLI) import NN

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a saved model's test loss and accuracy.")

    @Option(help: ArgumentHelp(
        "A checkpoint written by `clnn train --save`, or a plain PyTorch nn.Sequential state dict saved "
        + "with safetensors' save_file (its Linear sizes read from the tensor shapes, or the model --arch gives)."))
    var model: String

    @Option(help: ArgumentHelp(
        "For a plain state dict that is not an MLP: its architecture, a preset (cnn, cnn-bn) or layers as "
        + "`clnn train --arch` takes them. With a clnn checkpoint it must be the checkpoint's own.",
        valueName: "preset-or-layers"))
    var arch: String?

    @OptionGroup var common: DataDeviceOptions

    @Option(help: "For a plain state dict: the activation between its Linear layers (default relu).")
    var activation: String?

    @Option(help: "For a plain state dict: cross-entropy or mse (default cross-entropy).")
    var loss: String?

    @Option(help: "For a plain state dict: the class count (default: the output width).")
    var classes: Int?

    @Option(help: ArgumentHelp(
        "For a plain state dict: the input normalisation, MEAN,STD or none (default: the training set's "
        + "statistics)."))
    var normalization: String?

    func validate() throws {
        try validateModelOptions(activation: activation, loss: loss, classes: classes)
        _ = try parseNormalization(normalization)
    }

    func run() throws {
        let device = try common.resolveDevice()
        let folder = MNISTFolder(common.data)
        let bytes = try readFileBytes(model, what: "checkpoint file", holding: 4)
        if bytes.count > 256 << 20 {
            // NOTE: a model this large takes a while to load and a long while to evaluate: say so before the wait.
            warn("clnn: \(model) is \(HostMemory.gib(bytes.count)) (about \(bytes.count / 4) parameters): loading and "
                 + "evaluating it take a while")
        }
        let plain = Checkpoint.isPlainStateDict(try SafeTensors.metadata(of: bytes, path: model))
        var assumptions = StateDictAssumptions()
        var requested: [LayerSpec]?
        if let arch {
            // Over the test images; a preset ends in as many outputs as classes.
            let raw = try folder.loadTestRaw()
            let lossName = loss ?? "cross-entropy"
            let outputs = Losses.named(lossName)!.outputs(classes: classes ?? Int(raw.labels.max() ?? 0) + 1)
            do {
                requested = try LayerSpec.requested(arch, input: raw.imageShape.map { [1] + $0 } ?? [raw.features],
                                                    outputs: outputs)
            } catch let error as LayerSpec.Mismatch {
                throw ValidationError("--arch \(arch.prefix(60)): the architecture \(error.message)")
            }
        }
        if plain {
            assumptions = try StateDictAssumptions(activation: activation, loss: loss, classes: classes,
                                                   normalization: normalization) {
                try folder.loadRaw().train.normalization
                    .requireSpread(imagesFile: try folder.file(MNISTFolder.trainImages))
            }
            assumptions.architecture = requested
        } else if let given = [("--activation", activation), ("--loss", loss), ("--normalization", normalization),
                               ("--classes", classes.map(String.init))].first(where: { $0.1 != nil }) {
            throw ValidationError("\(given.0) is for a plain PyTorch state dict; \(model) is a clnn checkpoint "
                + "that records its own")
        }
        let (checkpoint, network) = try Checkpoint.decode(bytes, path: model, on: device, assuming: assumptions)
        if !plain, let requested, let difference = LayerSpec.difference(file: checkpoint.layers, model: requested) {
            throw ValidationError("--arch \(arch ?? "") gives \(LayerSpec.text(requested)) but \(model) holds "
                + "\(LayerSpec.text(checkpoint.layers)): \(difference)")
        }
        if let note = checkpoint.note { warn("clnn: \(model): \(note)") }
        print("model \(model): \(LayerSpec.text(checkpoint.layers)), \(checkpoint.loss), on \(device.summary)")
        do {
            try LayerSpec.checkFits(checkpoint.layers, rows: Evaluator.chunk(for: checkpoint.layers), on: device, training: false)
        } catch let error as DeviceError {
            throw DataError(model, "\(error)".replacingOccurrences(of: "MLP: ", with: "")
                .replacingOccurrences(of: "model: ", with: ""))
        }
        let raw = try folder.loadTestRaw()
        try checkpoint.checkInputs(raw, imagesFile: try folder.file(MNISTFolder.testImages), model: model)
        let test = raw.dataset(checkpoint.normalization)
        let loss = Losses.named(checkpoint.loss)!
        let evaluator = try Evaluator(model: network, loss: loss, classes: checkpoint.classes, device: device)
        try ClassPlan.check(test.labels, classes: checkpoint.classes, source: try folder.file(MNISTFolder.testLabels))
        let (testLoss, accuracy) = try evaluator.evaluate(test)
        print(String(format: "test loss %.4f  test acc %.4f  (%d examples)", testLoss, accuracy, test.count))
    }
}
