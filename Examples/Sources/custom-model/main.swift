// A custom 784-128-64-10 model trained with CLNN's TrainingRun (epochs, evaluation, a checkpoint with its training
// state after each epoch), then loaded into a model built the same way and evaluated on the test set.
//   swift run custom-model [FOLDER [DEVICE [EPOCHS]]]
//   e.g. swift run custom-model /usr/share/datasets/fashion-mnist opencl:0 2
import CLNN
import Foundation

func run() throws {
    let arguments = Array(CommandLine.arguments.dropFirst())
    let folder = arguments.first ?? MNISTFolder.defaultPath
    let device = try arguments.count > 1 ? DeviceTag(parsing: arguments[1]) : .cpu
    let epochs = arguments.count > 2 ? Int(arguments[2]) ?? 2 : 2

    // Data: IDX files, normalised with the training set's own mean and standard deviation, then put on the device.
    let (rawTrain, rawTest) = try MNISTFolder(folder).loadRaw()
    let normalization = rawTrain.normalization
    let train = try DeviceDataset(rawTrain, normalization: normalization, on: device)
    let test = try DeviceDataset(rawTest, normalization: normalization, on: device)

    // The model: Linear layers with their activation fused in, as PyTorch's nn.Sequential of Linear and ReLU.
    let model = Sequential([
        try Linear(rawTrain.features, 128, activation: .relu, seed: 1, on: device),
        try Linear(128, 64, activation: .relu, seed: 2, on: device),
        try Linear(64, 10, seed: 3, on: device),
    ])
    var options = TrainingOptions()
    (options.epochs, options.batchSize, options.optimizer, options.lr) = (epochs, 64, .adam, 1e-3)
    // The class count comes from the model's 10 outputs; the device is the model's.
    let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options)

    // The run saves the model (a PyTorch state dict with the architecture recorded) and its training state after
    // every epoch; `SavedRun.load` and `TrainingRun(..., from: state.position)` would continue it.
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("custom-model-\(getpid()).safetensors").path
    defer {
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.removeItem(atPath: TrainingState.path(besides: path))
    }
    let run = try TrainingRun(trainer: trainer, train: train, test: test,
                              checkpoint: try Checkpoint(model: model, loss: "cross-entropy", classes: 10,
                                                         normalization: normalization),
                              save: path)
    try run.run(onStep: { report in
        if report.step % 500 == 0 { print("  step \(report.step)/\(report.steps) loss \(report.runningLoss)") }
    }, onEpoch: { epoch in
        print("epoch \(epoch.epoch): train loss \(epoch.trainLoss), test loss \(epoch.testLoss), "
              + "test accuracy \(epoch.accuracy)")
    })

    // Load into a model built the same way and measure it without an optimiser.
    let copy = Sequential([
        try Linear(rawTrain.features, 128, activation: .relu, seed: 7, on: device),
        try Linear(128, 64, activation: .relu, seed: 8, on: device),
        try Linear(64, 10, seed: 9, on: device),
    ])
    try copy.load(from: path)
    let (_, reloaded) = try Evaluator(model: copy, loss: CrossEntropyLoss()).evaluate(test)
    print("reloaded from \(path): test accuracy \(reloaded)")
}

do {
    try run()
} catch {
    print("custom-model: \(error)")
    exit(1)
}
