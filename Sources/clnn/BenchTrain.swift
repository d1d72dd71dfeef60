import ArgumentParser
import Device
import Foundation
@_spi(CLI) import NN

extension Bench {
    struct TrainBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "train",
            abstract: "Epoch time (784-50-10, cross-entropy, SGD lr 0.1, batch 64) and the fast.ai lessons' full-batch "
                + "forward+backward (784-50-1, MSE, all training images), on every device.",
            discussion: "The full-batch pass is timed two ways, in turn: fwd+bwd without the input's gradient (the "
                + "work of PyTorch's autograd for an input that needs none) and with it (the lessons' and the numpy "
                + "anchor's: one more product of the forward's size).")

        @Option(help: "A folder in the MNIST layout.")
        var data: String = MNISTFolder.defaultPath

        @Option(help: "all, cpu, opencl or opencl:N.")
        var device: String = "all"

        @Option(help: "Epochs timed per device (the median is printed).")
        var epochs: Int = 3

        @Option(help: "Full-batch passes timed per device and form (the median is printed).")
        var runs: Int = 5

        @Option(parsing: .upToNextOption, help: ArgumentHelp(
            "Hidden layer sizes of the timed epoch's model (e.g. 512 256 for the wide anchor)."))
        var hidden: [Int] = [50]

        @Option(help: "Minibatch size of the timed epoch.")
        var batchSize: Int = 64

        @Option(help: "Learning rate of the timed epoch (constant).")
        var lr: Float = 0.1

        @Flag(help: ArgumentHelp("Also time the same model written with tensor ops (TapeLinear layers, tape "
            + "gradients), from the same seed, its epochs taking turns with the fused model's, and print its epoch "
            + "time, the median ratio of neighbouring epochs and the last epoch loss beside the fused layers'."))
        var tape = false

        func validate() throws {
            guard (1...1000).contains(epochs) else {
                throw ValidationError("--epochs must be in 1...1000, got \(epochs)")
            }
            guard (1...1000).contains(runs) else { throw ValidationError("--runs must be in 1...1000, got \(runs)") }
            guard hidden.allSatisfy({ (1...65536).contains($0) }) else {
                throw ValidationError("--hidden sizes must be in 1...65536, got \(hidden)")
            }
            guard (1...(1 << 16)).contains(batchSize) else {
                throw ValidationError("--batch-size must be in 1...65536, got \(batchSize)")
            }
            guard lr.isFinite, lr > 0 else { throw ValidationError("--lr must be a finite number > 0, got \(lr)") }
        }

        func run() throws {
            let tags = try benchDevices(device)
            let (rawTrain, _) = try MNISTFolder(data).load()
            let train = Normalization.fit(rawTrain).apply(rawTrain)
            let sizes = [train.features] + hidden + [10]
            print("epoch: \(sizes.map(String.init).joined(separator: "-")), cross-entropy, SGD lr \(lr), "
                  + "batch \(batchSize); "
                  + "full batch: \(train.features)-50-1, MSE, \(train.count) images")
            print("device      epoch s (median of \(epochs))  full-batch fwd ms  bwd ms  fwd+bwd ms  with input grad ms")
            for tag in tags {
                do {
                    try MLP.checkFits(sizes: sizes, rows: max(min(batchSize, train.count), Evaluator.defaultChunk),
                                      on: tag)
                    try MLP.checkFits(sizes: [train.features, 50, 1], rows: train.count, on: tag)
                } catch let error as DeviceError {
                    throw ValidationError("--hidden \(hidden) --batch-size \(batchSize): "
                        + "\(error)".replacingOccurrences(of: "MLP: ", with: ""))
                }
            }
            for tag in tags {
                try tag.warmUp()
                var options = TrainingOptions()
                (options.lr, options.schedule, options.batchSize, options.epochs) = (lr, .constant, batchSize, epochs)
                let deviceTrain = try DeviceDataset(train, on: tag)
                // Each model's epochs, timed; with --tape the two models take turns epoch by epoch, so that a change
                // in the machine's load meets both.
                let last = sizes.count - 2
                var models = [try MLP.make(sizes: sizes, seed: 1, on: tag)]
                if tape {
                    models.append(Sequential(try (0...last).map { i in
                        try TapeLinear(sizes[i], sizes[i + 1], activation: i < last ? .relu : nil,
                                       seed: 1 &+ UInt64(i), on: tag)
                    }))
                }
                let trainers = try models.map { model in
                    let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), classes: 10, options: options,
                                              device: tag)
                    try trainer.prepare(deviceTrain)
                    return trainer
                }
                var epochTimes = trainers.map { _ in [Double]() }
                var losses = trainers.map { _ in Float.nan }
                for epoch in 1...epochs {
                    for (i, trainer) in trainers.enumerated() {
                        let start = DispatchTime.now().uptimeNanoseconds
                        losses[i] = try trainer.trainEpoch(deviceTrain, epoch: epoch, reportEvery: 100)
                        try tag.synchronize()
                        epochTimes[i].append(secondsSince(start))
                    }
                }
                let medians = epochTimes.map { $0.sorted()[epochs / 2] }
                let epochTime = medians[0]
                if tape {
                    // The ratio of each pair of neighbouring epochs, median: slow drifts in load cancel.
                    let ratios = zip(epochTimes[1], epochTimes[0]).map { $0 / $1 }.sorted()
                    print(tag.description.padding(toLength: 12, withPad: " ", startingAt: 0)
                          + String(format: "tape layers: epoch %.3f s, fused %.3f s, ratio %.2fx (goal ≤ 1.5x); "
                                   + "last epoch loss tape %.6f, fused %.6f", medians[1], medians[0],
                                   ratios[ratios.count / 2], losses[1], losses[0]))
                }

                // The lessons' workload: every training image at once through 784-50-1 with MSE on the label.
                let x = try Tensor(train.images, shape: [train.count, train.features], on: tag)
                let y = try Tensor(train.labels, shape: [train.count], on: tag)
                let seedModel = try MLP.make(sizes: [train.features, 50, 1], seed: 1, on: tag)
                let grad = try Tensor.empty([train.count, 1], on: tag)
                // The backward pass both ways, in turn: without the input's gradient (what PyTorch's autograd does
                // for an input that needs none: its anchor's work) and with it (as the lessons and the numpy anchor
                // compute it: one more product of the forward's size).
                var forward: [Double] = [], backward: [Double] = [], backwardInput: [Double] = []
                for run in 0...(2 * runs + 1) {
                    var start = DispatchTime.now().uptimeNanoseconds
                    let pred = try seedModel.forward(x)
                    _ = try MSELoss()(pred, y, grad: grad)
                    try tag.synchronize()
                    if run >= 2 { forward.append(secondsSince(start)) }
                    start = DispatchTime.now().uptimeNanoseconds
                    try seedModel.zeroGrad()
                    _ = try seedModel.backward(grad, needsInputGradient: run % 2 == 1)
                    try tag.synchronize()
                    if run >= 2 { run % 2 == 1 ? backwardInput.append(secondsSince(start))
                                               : backward.append(secondsSince(start)) }
                }
                func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
                let (f, b, bx) = (median(forward), median(backward), median(backwardInput))
                print(tag.description.padding(toLength: 12, withPad: " ", startingAt: 0)
                      + String(format: "%10.3f %24.1f %8.1f %10.1f %16.1f", epochTime, f * 1e3, b * 1e3,
                               (f + b) * 1e3, (f + bx) * 1e3))
            }
        }
    }
}
