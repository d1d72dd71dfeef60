import Foundation

/// A training run as a user asks for it — what `clnn train`'s options say — for `TrainingRun.start`, which settles
/// every choice: each `nil` takes the default or, with `resume`, what the saved run recorded (a value given then must
/// agree with the record; a model from a checkpoint keeps its own shape, activation, loss, classes and normalisation).
///
/// ```swift
/// var request = RunRequest()
/// request.hidden = [100]
/// request.optimizer = .adam
/// request.save = "model.safetensors"
/// let run = try TrainingRun.start(request)
/// try run.run { epoch in print(epoch.epoch, epoch.accuracy) }
/// ```
///
/// Errors name each setting by its `clnn train` option: `batchSize` is `--batch-size`, `initFrom` `--init-from`.
public struct RunRequest: Sendable {
    /// Which devices train.
    public enum Devices: Sendable, Equatable {
        /// An OpenCL GPU when there is one; with only CPU-type OpenCL (POCL), whichever of it and `cpu` trains this
        /// model faster (measured); else `cpu`. Under a process group each process takes the GPU of its local rank
        /// (mod their count); without GPUs, process 0's measured choice.
        case auto
        /// The first OpenCL device; under a process group, OpenCL device (local rank mod their count).
        case openCL
        /// This device.
        case one(DeviceTag)
        /// Data-parallel over these devices: one model copy each, the global batch split evenly.
        case list([DeviceTag])
    }

    /// A folder in the MNIST layout (the four IDX files, `.gz` or plain).
    public var data = MNISTFolder.defaultPath
    /// The devices (`--device`).
    public var devices = Devices.auto
    /// Passes over the training set (default 5; resumed: the run's own, or more).
    public var epochs: Int?
    /// Examples per step, over all devices and processes (default 64).
    public var batchSize: Int?
    /// Default SGD.
    public var optimizer: OptimizerKind?
    /// Default: the optimiser's own (`OptimizerKind.defaultLearningRate`).
    public var lr: Float?
    /// Default cosine.
    public var schedule: LearningRateSchedule?
    /// SGD momentum (default 0).
    public var momentum: Float?
    /// L2 weight decay (default 0).
    public var weightDecay: Float?
    /// Initialisation and shuffling (default 42).
    public var seed: UInt64?
    /// The model's architecture: a preset (`mlp`, the default, shaped by `hidden` and `activation`; `cnn`; `cnn-bn`)
    /// or an architecture text (`conv(32,3,p=1) relu maxpool(2) flatten linear(10)`, see `LayerSpec.resolve`). A
    /// checkpoint's own architecture may be repeated here but not contradicted.
    public var architecture: String?
    /// Hidden layer sizes of a new MLP (default one of 50).
    public var hidden: [Int] = []
    /// The hidden layers' activation (default ReLU).
    public var activation: Activation?
    /// `cross-entropy` (default) or `mse`.
    public var loss: String?
    /// The class count (default: the largest training label + 1).
    public var classes: Int?
    /// The input normalisation (default: the training set's statistics; a clnn checkpoint's own).
    public var normalization: Normalization?
    /// Write the model and its training state here after every epoch (`SavedRun`); with `resume`, by default the
    /// resumed file.
    public var save: String?
    /// Write the training curves here as SVG after every epoch.
    public var plot: String?
    /// Continue the run saved in this checkpoint where it stopped.
    public var resume: String?
    /// Start a new run from this checkpoint's weights (a clnn checkpoint, or a plain PyTorch state dict: of an MLP,
    /// or of the model `architecture` gives).
    public var initFrom: String?
    /// Stop after this epoch.
    public var stopAfter: Int?
    /// Stop once the run has taken this many steps in all.
    public var maxSteps: Int?

    /// The defaults: Fashion-MNIST, `--device auto`, a 784-50-10 ReLU MLP, SGD lr 0.1 cosine, 5 epochs of batch 64.
    public init() {}

    /// A request that cannot be carried out as given: two settings that contradict each other or a saved run, a
    /// device that cannot hold the model, a file that would overwrite an input. Names the settings.
    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public let description: String
        /// A request that cannot be carried out, for the reason `description` gives.
        public init(_ description: String) { self.description = description }
    }

    /// The largest values that keep every count and step in range.
    public static let maxEpochs = TrainingOptions.maxEpochs, maxBatchSize = TrainingOptions.maxBatchSize
    /// The most layers `--hidden` makes.
    public static let maxLayers = 64

    /// Checks every setting's range and the pairs that exclude each other (`TrainingRun.start` does it first).
    /// - Throws: `RunRequest.Invalid` naming the setting (by its `clnn train` option), its range and the value.
    public func validate() throws {
        func fail(_ text: String) -> Invalid { Invalid(text) }
        if let epochs, !(1...Self.maxEpochs).contains(epochs) {
            throw fail("--epochs must be in 1...\(Self.maxEpochs), got \(epochs)")
        }
        if let batchSize, !(1...Self.maxBatchSize).contains(batchSize) {
            throw fail("--batch-size must be in 1...\(Self.maxBatchSize), got \(batchSize)")
        }
        guard hidden.allSatisfy({ $0 > 0 }) else { throw fail("--hidden sizes must be at least 1, got \(hidden)") }
        guard hidden.allSatisfy({ $0 <= 1 << 16 }) else { throw fail("--hidden sizes must be at most 65536, got \(hidden)") }
        guard hidden.count < Self.maxLayers else {
            throw fail("--hidden: at most \(Self.maxLayers - 1) hidden layers, got \(hidden.count)")
        }
        if let architecture, architecture != "mlp" {
            guard !architecture.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw fail("--arch is empty: give a preset (\(LayerSpec.presets.joined(separator: ", "))) or layers")
            }
            if !hidden.isEmpty || activation != nil {
                throw fail("--\(hidden.isEmpty ? "activation" : "hidden") shapes the mlp preset; --arch "
                    + "\(architecture.prefix(40)) gives every layer itself")
            }
            do { _ = try LayerSpec.Call.entries(architecture) } catch let error as LayerSpec.Mismatch {
                throw fail("--arch \(error.message)")
            }
        }
        if let lr, !(lr.isFinite && lr > 0) { throw fail("--lr must be a finite number > 0, got \(lr)") }
        if let momentum, !(momentum.isFinite && momentum >= 0 && momentum < 1) {
            throw fail("--momentum must be in [0, 1), got \(momentum)")
        }
        if let weightDecay, !(weightDecay.isFinite && weightDecay >= 0) {
            throw fail("--weight-decay must be a finite number ≥ 0, got \(weightDecay)")
        }
        if optimizer == .adam, let momentum, momentum != 0 {
            throw fail("--momentum applies to sgd; adam has its own moments (betas 0.9, 0.999)")
        }
        if let loss, Losses.named(loss) == nil { throw fail("--loss must be cross-entropy or mse, got '\(loss)'") }
        if let classes, !(1...(1 << 16)).contains(classes) { throw fail("--classes must be in 1...65536, got \(classes)") }
        if let normalization, !(normalization.mean.isFinite && abs(normalization.mean) <= 1e6 && normalization.std.isFinite
                                && normalization.std >= 1e-6 && normalization.std <= 1e6) {
            throw fail("--normalization must be MEAN,STD (|mean| ≤ 1e6, 1e-6 ≤ std ≤ 1e6) or none, got "
                + "\(normalization.mean),\(normalization.std)")
        }
        for (option, path) in [("--save", save), ("--plot", plot), ("--resume", resume), ("--init-from", initFrom)]
        where path?.isEmpty == true {
            throw fail("\(option) needs a file name, got an empty string")
        }
        if resume != nil && initFrom != nil {
            throw fail("--resume continues a run and --init-from starts a new one from its weights: give one")
        }
        if let maxSteps, maxSteps < 1 { throw fail("--max-steps must be ≥ 1, got \(maxSteps)") }
        if let stopAfter, stopAfter < 1 { throw fail("--stop-after must be ≥ 1, got \(stopAfter)") }
    }

    /// How `devices` is spelt as `--device`, for messages.
    var devicesText: String {
        switch devices {
        case .auto: "auto"
        case .openCL: "opencl"
        case .one(let tag): tag.description
        case .list(let tags): tags.map(\.description).joined(separator: ",")
        }
    }
}
