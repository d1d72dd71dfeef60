import ArgumentParser
import Device
import Foundation
import NN

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train an MLP on an MNIST-format dataset (default: Fashion-MNIST) on cpu or an OpenCL device.")

    @OptionGroup var common: DataDeviceOptions

    @Option(help: "Number of passes over the training set.")
    var epochs: Int = 5

    @Option(help: "Examples per minibatch.")
    var batchSize: Int = 64

    @Option(help: "Learning rate (the peak rate with --lr-schedule cosine).")
    var lr: Float = 0.1

    @Option(help: "constant, or cosine: decay from --lr to 0 over the run.")
    var lrSchedule: String = "cosine"

    @Option(help: "SGD momentum, in [0, 1).")
    var momentum: Float = 0

    @Option(help: "L2 weight decay.")
    var weightDecay: Float = 0

    @Option(parsing: .upToNextOption, help: "Hidden layer sizes, e.g. --hidden 100 50.")
    var hidden: [Int] = [50]

    @Option(help: "Hidden layers' activation: relu, leaky-relu, tanh, sigmoid or gelu.")
    var activation: String = "relu"

    @Option(help: "cross-entropy or mse (the fast.ai lessons' single-output regression on the label).")
    var loss: String = "cross-entropy"

    @Option(help: "Seed for initialisation and shuffling.")
    var seed: UInt64 = 42

    @Option(help: "Number of classes; default: the largest training label + 1. State it when the training set lacks some classes.")
    var classes: Int?

    @Option(help: "Write the trained model here (safetensors, PyTorch state-dict names), after every epoch. A regular file or a new name; a symbolic link is followed and kept.")
    var save: String?

    @Option(help: "Write the training curves here as SVG (same rules as --save).")
    var plot: String?

    /// The largest values that keep every count and step in range (the step arithmetic is done in Double anyway).
    static let maxEpochs = 1_000_000, maxBatchSize = 1 << 24, maxLayers = 64

    func validate() throws {
        guard (1...Self.maxEpochs).contains(epochs) else {
            throw ValidationError("--epochs must be in 1...\(Self.maxEpochs), got \(epochs)")
        }
        guard (1...Self.maxBatchSize).contains(batchSize) else {
            throw ValidationError("--batch-size must be in 1...\(Self.maxBatchSize), got \(batchSize)")
        }
        guard hidden.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--hidden sizes must be at least 1, got \(hidden)")
        }
        guard hidden.allSatisfy({ $0 <= 1 << 16 }) else { throw ValidationError("--hidden sizes must be at most 65536, got \(hidden)") }
        guard hidden.count < Self.maxLayers else { throw ValidationError("--hidden: at most \(Self.maxLayers - 1) hidden layers, got \(hidden.count)") }
        guard lr.isFinite, lr > 0 else { throw ValidationError("--lr must be a finite number > 0, got \(lr)") }
        guard momentum.isFinite, momentum >= 0, momentum < 1 else {
            throw ValidationError("--momentum must be in [0, 1), got \(momentum)")
        }
        guard weightDecay.isFinite, weightDecay >= 0 else {
            throw ValidationError("--weight-decay must be a finite number ≥ 0, got \(weightDecay)")
        }
        guard LearningRateSchedule(rawValue: lrSchedule) != nil else {
            throw ValidationError("--lr-schedule must be constant or cosine, got '\(lrSchedule)'")
        }
        guard Activation(rawValue: activation) != nil else {
            throw ValidationError("--activation must be one of \(Activation.allCases.map(\.rawValue).joined(separator: ", ")), got '\(activation)'")
        }
        guard makeLoss(named: loss) != nil else { throw ValidationError("--loss must be cross-entropy or mse, got '\(loss)'") }
        if let classes, !(1...(1 << 16)).contains(classes) {
            throw ValidationError("--classes must be in 1...65536, got \(classes)")
        }
        for (option, path) in [("--save", save), ("--plot", plot)] where path?.isEmpty == true {
            throw ValidationError("\(option) needs a file name, got an empty string")
        }
    }

    func run() throws {
        Interrupt.install()
        // An explicit device is checked at once; `auto` is decided once the model's shape is known.
        let explicitDevice = common.device.lowercased() == "auto" ? nil : try common.resolveDevice()
        let lossFunction = makeLoss(named: loss)!
        let folder = MNISTFolder(common.data)
        // Every output is checked before any data is read or any work done: a bad --plot must not cost a good --save.
        let outputs = [("--save", save), ("--plot", plot)].compactMap { option, path in path.map { (option: option, path: $0) } }
        do {
            try OutputFiles.check(outputs, inputs: try folder.files())
        } catch let conflict as OutputFiles.Conflict {
            throw ValidationError(conflict.description)
        }
        let loadStart = Date()
        // Images stay bytes on the host; the normalised float copy is made only on the device.
        let (train, test) = try folder.loadRaw()
        let normalization = train.normalization
        let plan = try ClassPlan(train: train.labels, test: test.labels, explicit: classes,
                                 trainSource: try folder.file(MNISTFolder.trainLabels),
                                 testSource: try folder.file(MNISTFolder.testLabels))
        for warning in plan.warnings { warn("clnn: warning: \(warning)") }
        let sizes = [train.features] + hidden + [lossFunction.outputs(classes: plan.classes)]
        let device = try explicitDevice ?? common.resolveDevice(sizes: sizes, batchSize: batchSize)
        do {
            try MLP.checkFits(sizes: sizes, rows: max(batchSize, Trainer.evaluationChunk), on: device)
        } catch let error as DeviceError {
            throw ValidationError("--hidden \(hidden.map(String.init).joined(separator: " ")) with --batch-size \(batchSize): \(error)")
        }
        print("data \(common.data): \(train.count) train, \(test.count) test, \(train.features) features, \(plan.classes) classes "
              + String(format: "(mean %.4f std %.4f, loaded in %.2fs)", normalization.mean, normalization.std,
                       Date().timeIntervalSince(loadStart)))

        var options = TrainingOptions()
        (options.epochs, options.batchSize, options.lr) = (epochs, batchSize, lr)
        (options.momentum, options.weightDecay, options.seed) = (momentum, weightDecay, seed)
        options.schedule = LearningRateSchedule(rawValue: lrSchedule)!
        let model = try MLP.make(sizes: sizes, activation: Activation(rawValue: activation)!, seed: seed, on: device)
        let trainer = try Trainer(model: model, loss: lossFunction, classes: plan.classes, options: options, device: device)
        let checkpoint = Checkpoint(sizes: sizes, loss: loss, classes: plan.classes, normalization: normalization,
                                    imageShape: train.imageShape, activation: activation)
        print("device \(device.summary); model \(sizes.map(String.init).joined(separator: "-")) \(activation), "
              + "\(loss), SGD lr \(lr) (\(lrSchedule)) momentum \(momentum), batch \(batchSize), \(epochs) epochs, seed \(seed)")

        // The data goes to the device once; every minibatch is read there through the epoch's order.
        try device.warmUp()
        let deviceTrain = try DeviceDataset(train, normalization: normalization, on: device)
        let deviceTest = try DeviceDataset(test, normalization: normalization, on: device)
        try trainer.prepare(deviceTrain)
        var curves = TrainingCurves()
        curves.title = "clnn \(sizes.map(String.init).joined(separator: "-")) \(loss) on \(device)"
        let bar = ProgressBar()
        var savedEpoch: Int?
        do {
            for epoch in 1...epochs {
                if Interrupt.requested { throw TrainingError.interrupted(epoch: epoch, step: 0) }
                let start = Date()
                let trainLoss = try trainer.trainEpoch(deviceTrain, epoch: epoch, reportEvery: 25,
                                                       shouldStop: { Interrupt.requested }) { report in
                    curves.stepLoss.append((Double(epoch - 1) + Double(report.step) / Double(report.steps),
                                            Double(report.runningLoss)))
                    bar.show(report, epochs: epochs)
                }
                let seconds = Date().timeIntervalSince(start)
                let (testLoss, accuracy) = try trainer.evaluate(deviceTest)
                bar.finish()
                guard testLoss.isFinite else {
                    throw TrainingError.nonFiniteEvaluation(epoch: epoch, value: testLoss, hint: trainer.divergenceHint)
                }
                curves.epochs.append((epoch, testLoss, accuracy))
                print(String(format: "epoch %d/%d  train loss %.4f  test loss %.4f  test acc %.4f  (%.2f s)",
                             epoch, epochs, trainLoss, testLoss, accuracy, seconds))
                if let save {
                    try checkpoint.save(model, to: save)
                    savedEpoch = epoch
                }
                if let plot { try AtomicFile.write(Array(curves.svg().utf8), to: plot) }
            }
        } catch let error as TrainingError {
            bar.finish()
            if let plot { try? AtomicFile.write(Array(curves.svg().utf8), to: plot) }
            var kept = ""
            if let save {
                // NOTE: name the file only when this run wrote a good model into it.
                kept = savedEpoch.map { "; the last good checkpoint (epoch \($0)) is kept in \(save)" }
                    ?? "; no checkpoint was written"
            }
            warn("clnn: \(error)\(kept)")
            if case .interrupted = error { throw ExitCode(Interrupt.exitStatus) }
            throw ExitCode(1)
        }
        if let save { print("saved \(save)") }
        if let plot { print("plotted \(plot)") }
    }
}

/// A live progress line on a terminal; a few plain lines per epoch otherwise.
final class ProgressBar {
    private let isTerminal = isatty(STDOUT_FILENO) != 0
    private var lastPlainQuarter = -1
    private var drawn = false

    func show(_ r: StepReport, epochs: Int) {
        let line = String(format: "epoch %d/%d %@ %d/%d  loss %.4f  %.0f items/s  ETA %@", r.epoch, epochs,
                          bar(r.step, r.steps), r.step, r.steps, r.runningLoss, r.itemsPerSecond, formatDuration(r.eta))
        if isTerminal {
            print("\r\u{1B}[K" + line, terminator: "")
            fflush(nil)
            drawn = true
        } else {
            let quarter = r.step * 4 / max(r.steps, 1)
            if quarter > lastPlainQuarter && r.step < r.steps {
                print(line)
                lastPlainQuarter = quarter
            }
        }
    }

    func finish() {
        if drawn { print("\r\u{1B}[K", terminator: "") }
        drawn = false
        lastPlainQuarter = -1
    }

    private func bar(_ step: Int, _ steps: Int) -> String {
        let width = 24
        let filled = steps > 0 ? step * width / steps : width
        return "[" + String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled) + "]"
    }
}
