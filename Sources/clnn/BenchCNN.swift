import ArgumentParser
import Device
import Foundation
@_spi(CLI) import NN

extension Bench {
    struct CNNBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cnn",
            abstract: "The CNN of shared/anchors/cnn.py on Fashion-MNIST: forward+backward of one batch (the median of "
                + "--runs) and the epoch time and test accuracy, on every device.",
            discussion: "As cnn.py: SGD lr 0.05 with momentum 0.9 and cosine decay over the epochs, batch 64. The "
                + "batch row is the forward, the cross-entropy and its gradient, and the backward of the first 64 "
                + "training images (no optimiser step), as cnn.py's row.")

        @Option(help: "A folder in the MNIST layout.")
        var data: String = MNISTFolder.defaultPath

        @Option(help: "all, cpu, opencl or opencl:N.")
        var device: String = "all"

        @Option(help: "cnn (plain) or cnn-bn (batch norm after each convolution).")
        var arch: String = "cnn"

        @Option(help: "Epochs trained and timed per device (0: the batch row only).")
        var epochs: Int = 1

        @Option(help: "Forward+backward passes timed per device (after 3 untimed).")
        var runs: Int = 20

        @Option(help: "Minibatch size.")
        var batchSize: Int = 64

        func validate() throws {
            guard CNN.Kind(rawValue: arch) != nil else {
                throw ValidationError("--arch must be one of \(CNN.Kind.allCases.map(\.rawValue)), got '\(arch)'")
            }
            guard (0...100).contains(epochs) else { throw ValidationError("--epochs must be in 0...100, got \(epochs)") }
            guard (1...1000).contains(runs) else { throw ValidationError("--runs must be in 1...1000, got \(runs)") }
            guard (1...4096).contains(batchSize) else {
                throw ValidationError("--batch-size must be in 1...4096, got \(batchSize)")
            }
        }

        func run() throws {
            let kind = CNN.Kind(rawValue: arch)!
            let devices = try benchDevices(device)
            let (rawTrain, rawTest) = try MNISTFolder(data).load()
            let normalization = Normalization.fit(rawTrain)
            let (train, test) = (normalization.apply(rawTrain), normalization.apply(rawTest))
            print("\(kind.rawValue) (shared/anchors/cnn.py), batch \(batchSize), SGD lr 0.05 momentum 0.9 cosine")
            for tag in devices {
                try tag.warmUp()
                let loss = CrossEntropyLoss()
                // One batch, forward and backward, as cnn.py times it.
                let model = try CNN.make(kind, seed: 0, on: tag)
                let batch = try DeviceDataset(train.prefix(batchSize), on: tag)
                let order = try Tensor((0..<batch.count).map(Float.init), shape: [batch.count], on: tag)
                func rows(_ t: Tensor) throws -> Rows {
                    try Rows(t, order: order, offset: 0, count: batch.count, checkingIndices: false)
                }
                let (x, y) = (try rows(batch.images), try rows(batch.labels))
                let (grad, mean) = (try Tensor.empty([batch.count, 10], on: tag), try Tensor.empty([1], on: tag))
                var times: [Double] = []
                for run in 0..<(runs + 3) {
                    let start = DispatchTime.now().uptimeNanoseconds
                    try model.zeroGrad()
                    let pred = try model.forward(x)
                    try loss.mean(pred, y, grad: grad, into: mean, at: 0)
                    _ = try model.backward(grad, needsInputGradient: false)
                    try tag.synchronize()
                    if run >= 3 { times.append(secondsSince(start)) }
                }
                let batchTime = times.sorted()[times.count / 2]
                var line = tag.description.padding(toLength: 12, withPad: " ", startingAt: 0)
                    + String(format: "forward+backward of a batch of %d: %.2f ms", batch.count, batchTime * 1e3)
                if epochs > 0 {
                    var options = TrainingOptions()
                    (options.lr, options.momentum, options.batchSize, options.epochs, options.seed) =
                        (0.05, 0.9, batchSize, epochs, 0)
                    let trainer = try Trainer(model: try CNN.make(kind, seed: 0, on: tag), loss: loss, classes: 10,
                                              options: options, device: tag)
                    let data = try DeviceDataset(train, on: tag)
                    var epochTimes: [Double] = []
                    for epoch in 1...epochs {
                        let start = DispatchTime.now().uptimeNanoseconds
                        _ = try trainer.trainEpoch(data, epoch: epoch, reportEvery: 100)
                        try tag.synchronize()
                        epochTimes.append(secondsSince(start))
                    }
                    let accuracy = try trainer.evaluate(test).accuracy
                    line += String(format: "; epoch %.2f s (median of %d), test accuracy %.4f after %d",
                                   epochTimes.sorted()[epochs / 2], epochs, accuracy, epochs)
                }
                print(line)
            }
        }
    }
}
