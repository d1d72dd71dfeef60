import ArgumentParser
import Device
import Foundation
@_spi(CLI) import NN

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train an MLP or a CNN on an MNIST-format dataset (default: Fashion-MNIST) on cpu or an OpenCL device.",
        discussion: """
            --save FILE writes the model after every epoch (a PyTorch state dict in safetensors) and the run's \
            training state beside it (FILE without .safetensors + .state.safetensors), committed as one; FILE is \
            locked while the run lasts. --resume FILE continues that run where it stopped (after an epoch, or \
            mid-epoch after --max-steps or Ctrl-C), to the same weights as a run never stopped; --init-from FILE \
            starts a new run from a checkpoint's weights.
            """)

    @OptionGroup(title: "Data and device (a list, --device opencl:0,opencl:1, trains data-parallel: one model copy "
        + "per device, the global --batch-size split evenly)")
    var common: DataDeviceOptions

    @Option(help: "Number of passes over the training set (default 5; with --resume, the run's own).")
    var epochs: Int?

    @Option(help: "Examples per minibatch (default 64).")
    var batchSize: Int?

    @Option(help: "sgd or adam (PyTorch's Adam: betas 0.9, 0.999, eps 1e-8). Default sgd.")
    var optimizer: String?

    @Option(help: "Learning rate, the peak rate with --lr-schedule cosine (default 0.1 for sgd, 0.001 for adam).")
    var lr: Float?

    @Option(help: "constant, or cosine: decay from --lr to 0 over the run (default cosine).")
    var lrSchedule: String?

    @Option(help: "SGD momentum, in [0, 1) (default 0).")
    var momentum: Float?

    @Option(help: "L2 weight decay (default 0).")
    var weightDecay: Float?

    @Option(help: ArgumentHelp(
        "The model: mlp (the default, shaped by --hidden and --activation), cnn (shared/anchors/cnn.py's "
        + "small CNN), cnn-bn (the same with BatchNorm2d after each convolution), or the layers of an "
        + "nn.Sequential in order, e.g. \"conv(32,3,p=1) bn relu maxpool(2) flatten linear(128) relu linear(10)\" "
        + "(conv(OUT,K[,s=S][,p=P][,d=D]), linear(OUT), bn, maxpool(K), avgpool(K), gap, dropout(P), flatten, "
        + "activations; the sizes the layer before implies are left out).",
        valueName: "preset-or-layers"))
    var arch: String?

    @Option(parsing: .upToNextOption, help: "Hidden layer sizes, e.g. --hidden 100 50 (default 50).")
    var hidden: [Int] = []

    @Option(help: "Hidden layers' activation: relu, leaky-relu, tanh, sigmoid or gelu (default relu).")
    var activation: String?

    @Option(help: ArgumentHelp(
        "cross-entropy or mse (the fast.ai lessons' single-output regression on the label). Default "
        + "cross-entropy."))
    var loss: String?

    @Option(help: "Seed for initialisation and shuffling (default 42).")
    var seed: UInt64?

    @Option(help: ArgumentHelp(
        "Number of classes; default: the largest training label + 1. State it when the training set lacks "
        + "some classes."))
    var classes: Int?

    @Option(help: ArgumentHelp(
        "Write the trained model here (safetensors, PyTorch state-dict names) after every epoch, with the "
        + "training state beside it. A regular file or a new name; a symbolic link is followed and kept. "
        + "With --resume: the resumed file."))
    var save: String?

    @Option(help: "Write the training curves here as SVG (same rules as --save).")
    var plot: String?

    @Option(help: ArgumentHelp(
        "Continue the run saved in this checkpoint (and its .state.safetensors) where it stopped: model, "
        + "optimiser state, options and schedule as they were."))
    var resume: String?

    @Option(help: ArgumentHelp(
        "Start a new run from this checkpoint's weights (its architecture; fresh optimiser, epoch 1). A "
        + "plain PyTorch nn.Sequential state dict works too: Linear sizes from its shapes, --activation and "
        + "--loss as given; another model's with --arch."))
    var initFrom: String?

    @Option(help: ArgumentHelp(
        "Input normalisation MEAN,STD or none (default: the training set's statistics; a clnn "
        + "checkpoint's own with --resume/--init-from)."))
    var normalization: String?

    @Option(help: "Stop after this epoch (the run continues later with --resume).")
    var stopAfter: Int?

    @Option(help: ArgumentHelp(
        "Stop once the run has taken this many steps in all (a resumed run's earlier steps count), "
        + "evaluating and saving the model and its training state as at an epoch's end: the first steps of "
        + "the full run, learning rates included; --resume continues from that step."))
    var maxSteps: Int?

    /// The largest values that keep every count and step in range (the step arithmetic is done in Double anyway).
    /// The spellings first (they are the command line's), then the request's own checks (the library's).
    func validate() throws {
        if let lrSchedule, LearningRateSchedule(rawValue: lrSchedule) == nil {
            throw ValidationError("--lr-schedule must be constant or cosine, got '\(lrSchedule)'")
        }
        if let optimizer, OptimizerKind(rawValue: optimizer) == nil {
            throw ValidationError("--optimizer must be sgd or adam, got '\(optimizer)'")
        }
        try validateModelOptions(activation: activation, loss: loss, classes: classes)
        do {
            try request(devices: false).validate()
        } catch let invalid as RunRequest.Invalid {
            throw ValidationError(invalid.description)
        }
    }

    /// The run these options ask for (`devices: false`: `--device` left as `auto`, unparsed).
    func request(devices: Bool = true) throws -> RunRequest {
        var r = RunRequest()
        (r.data, r.devices) = (common.data, devices ? try common.deviceRequest() : .auto)
        (r.epochs, r.batchSize, r.lr, r.momentum, r.weightDecay, r.seed)
            = (epochs, batchSize, lr, momentum, weightDecay, seed)
        r.optimizer = optimizer.flatMap(OptimizerKind.init(rawValue:))
        r.schedule = lrSchedule.flatMap(LearningRateSchedule.init(rawValue:))
        (r.architecture, r.hidden, r.activation, r.loss, r.classes)
            = (arch, hidden, activation.flatMap(Activation.init(rawValue:)), loss, classes)
        r.normalization = try parseNormalization(normalization)
        (r.save, r.plot, r.resume, r.initFrom, r.stopAfter, r.maxSteps)
            = (save, plot, resume, initFrom, stopAfter, maxSteps)
        return r
    }

    func run() throws {
        Interrupt.install()
        // Under mpirun with several ranks: one replica per process; only process 0 prints and writes files.
        let group = try ProcessGroup.join()
        if let group, group.rank != 0 { silenceStandardOutput() }
        let run: TrainingRun
        do {
            run = try TrainingRun.start(try request(), in: group, say: { print($0) }, note: { warn("clnn: " + $0) },
                                        shouldStop: { Interrupt.requested })
        } catch let invalid as RunRequest.Invalid {
            throw ValidationError(invalid.description)
        } catch TrainingError.interruptedBeforeTraining {
            warn("clnn: \(TrainingError.interruptedBeforeTraining)")
            throw ExitCode(Interrupt.exitStatus)
        }
        let bar = ProgressBar(), epochs = run.trainer.options.epochs
        do {
            try run.run(shouldStop: { Interrupt.requested }, onStep: { report in
                Interrupt.testHook(step: report.step)
                bar.show(report, epochs: epochs)
            }, onEpoch: { report in
                bar.finish()
                print(run.summary(report))
            })
        } catch let error as TrainingError {
            bar.finish()
            try stop(error, run, group)
        }
        for line in run.closingLines { print(line) }
        run.close()
    }

    /// Says why training stopped and what the checkpoint holds, then ends with the status: the signal's after a stop
    /// (agreed by every process under mpirun), 1 after divergence.
    private func stop(_ error: TrainingError, _ run: TrainingRun, _ group: ProcessGroup?) throws -> Never {
        if let group {
            // Every process stopped at the same step (a stop is agreed; a diverging loss is the summed one, the
            // weights are the same everywhere): process 0 reports, all leave together, no abort. A process the
            // signal did not reach takes the status of one it did.
            if group.rank == 0 { warn("clnn: " + run.explain(error)) }
            guard case .interrupted = error else { throw AgreedStop(status: 1) }
            let signal = Int32(try group.allgather([Double(Interrupt.signal)]).map { $0[0] }.max() ?? 0)
            throw AgreedStop(status: 128 + (signal == 0 ? SIGTERM : signal))
        }
        warn("clnn: " + run.explain(error))
        if case .interrupted = error { throw ExitCode(Interrupt.exitStatus) }
        throw ExitCode(1)
    }
}
