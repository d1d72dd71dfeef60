import Foundation

/// Hyper-parameters of a training run.
public struct TrainingOptions: Sendable {
    /// Passes over the training data.
    public var epochs = 5
    /// Examples per step.
    public var batchSize = 64
    /// The learning rate (the peak rate with the cosine schedule). Unless set, the optimiser's own default: 0.1 for
    /// SGD, 0.001 for Adam (PyTorch's).
    public var lr: Float {
        get { explicitLR ?? optimizer.defaultLearningRate }
        set { explicitLR = newValue }
    }
    private var explicitLR: Float?
    /// SGD momentum (0: none).
    public var momentum: Float = 0
    /// L2 penalty, for either optimiser.
    public var weightDecay: Float = 0
    /// Fixes the initial weights and every epoch’s order.
    public var seed: UInt64 = 42
    /// How `lr` moves over the run.
    public var schedule: LearningRateSchedule = .cosine
    /// SGD (with `momentum`) or Adam (with PyTorch's betas and eps); `lr` and `weightDecay` apply to both.
    public var optimizer: OptimizerKind = .sgd
    /// The defaults: 5 epochs, batch 64, SGD lr 0.1 with cosine decay, no momentum or decay, seed 42 (with
    /// `optimizer = .adam`, lr 0.001).
    public init() {}

    /// The largest epoch count and batch size a run takes: every count and step stays in range, and a training state
    /// records them (`TrainingState` reads no larger ones back).
    public static let maxEpochs = 1_000_000, maxBatchSize = 1 << 24

    /// These options with the settings of `optimizer`, one of the caller's own that a `Trainer` steps: its kind,
    /// momentum and weight decay (SGD's and Adam's), and — unless `lr` was set here — its rate as the schedule's
    /// base, as PyTorch's schedulers take it: the rate it had when the first trainer over it was made (`initialLR`,
    /// PyTorch's `initial_lr`), not the one a schedule left it at. What the trainer does and what a training state
    /// records are then the optimiser's.
    func adopting(_ optimizer: any Optimizer) -> TrainingOptions {
        var adopted = self
        if explicitLR == nil { adopted.lr = optimizer.initialLR ?? optimizer.lr }
        if let sgd = optimizer as? SGD {
            (adopted.optimizer, adopted.momentum, adopted.weightDecay) = (.sgd, sgd.momentum, sgd.weightDecay)
        } else if let adam = optimizer as? Adam {
            (adopted.optimizer, adopted.momentum, adopted.weightDecay) = (.adam, 0, adam.hyperparameters.weightDecay)
        }
        return adopted
    }

    /// The optimiser these options describe, over `parameters`.
    public func makeOptimizer(_ parameters: [Parameter]) throws -> any Optimizer {
        switch optimizer {
        case .sgd: return try SGD(parameters, lr: lr, momentum: momentum, weightDecay: weightDecay)
        case .adam:
            guard momentum == 0 else {
                throw DeviceError.invalidArgument(op: "TrainingOptions", "momentum applies to SGD; Adam uses its betas")
            }
            return try Adam(parameters, lr: lr, weightDecay: weightDecay)
        }
    }
}

/// The optimisers `TrainingOptions` (and `--optimizer`) can name.
public enum OptimizerKind: String, Sendable, CaseIterable {
    /// `SGD`, with `momentum`.
    case sgd
    /// `Adam`, with PyTorch’s betas and eps.
    case adam

    /// The learning rate `TrainingOptions` uses unless one is set: 0.1 for SGD, 0.001 for Adam (PyTorch's default).
    public var defaultLearningRate: Float { self == .adam ? 1e-3 : 0.1 }
}

/// How the learning rate moves over a run.
public enum LearningRateSchedule: String, Sendable, CaseIterable {
    /// The same rate throughout.
    case constant
    /// Cosine decay from the base rate at the first step to 0 after the last: lr·½(1 + cos(π·t/T)).
    case cosine

    /// The rate at `step` (0-based) of `totalSteps`.
    public func rate(base: Float, step: Int, totalSteps: Int) -> Float {
        rate(base: base, progress: Double(step) / Double(max(totalSteps, 1)))
    }

    /// The rate at `progress` (0 at the first step, 1 after the last) of the run.
    public func rate(base: Float, progress t: Double) -> Float {
        switch self {
        case .constant: return base
        case .cosine:
            return Float(Double(base) * 0.5 * (1 + cos(Double.pi * t)))
        }
    }
}

/// Where training stands, handed to the progress callback every few steps.
public struct StepReport: Sendable {
    /// The epoch, from 1.
    public let epoch: Int
    /// Steps done in the epoch.
    public let step: Int
    /// Steps in the epoch.
    public let steps: Int
    /// Mean loss of the batches since the previous report.
    public let runningLoss: Float
    /// Examples per second since the epoch began.
    public let itemsPerSecond: Double
    /// Seconds since the epoch began.
    public let elapsed: Double
    /// Seconds left in the epoch, at the rate so far.
    public var eta: Double { step > 0 ? elapsed / Double(step) * Double(steps - step) : 0 }
}

/// Why training stopped early.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    /// The loss of the batch at `step` (1-based, the first such step of the epoch) was `value`. `hint` names the
    /// likely cause.
    case nonFiniteLoss(epoch: Int, step: Int, value: Float, hint: String)
    /// The update at `step` (the epoch's last, after which no loss was computed) made `parameter` non-finite.
    case nonFiniteParameters(epoch: Int, step: Int, parameter: String, hint: String)
    /// The weights are finite but evaluating them after `epoch` gave a loss of `value` (the forward pass overflows).
    case nonFiniteEvaluation(epoch: Int, value: Double, hint: String)
    /// `shouldStop` asked to stop (e.g. Ctrl-C or SIGTERM) after `step`.
    case interrupted(epoch: Int, step: Int)
    /// `shouldStop` asked to stop while `TrainingRun.start` loaded the data: nothing was trained or written.
    case interruptedBeforeTraining

    public var description: String {
        switch self {
        case let .nonFiniteLoss(epoch, step, value, hint):
            return "loss became \(value) at epoch \(epoch), step \(step); stopped: \(hint)"
        case let .nonFiniteParameters(epoch, step, parameter, hint):
            return "the update at epoch \(epoch), step \(step) (the epoch's last) made \(parameter) non-finite; "
                + "stopped: \(hint)"
        case let .nonFiniteEvaluation(epoch, value, hint):
            return "the test loss after epoch \(epoch) is \(value): the weights are so large that the forward pass "
                + "overflows; stopped: \(hint)"
        case let .interrupted(epoch, step):
            return "interrupted at epoch \(epoch), step \(step)"
        case .interruptedBeforeTraining:
            return "interrupted while loading the data, before training; nothing was written"
        }
    }
}

