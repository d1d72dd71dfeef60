@_spi(CLI) import Device
import Foundation
import Logging

extension TrainingRun {
    /// The run `request` asks for, ready to `run()`: its settings reconciled with the checkpoint it resumes or starts
    /// from, its output files checked against every input and locked, the data loaded and checked, the device chosen,
    /// the model built or read there, the trainer's kernels built. In a process group every process must call this
    /// with the same request and data (checked: the first difference is an error naming it on every process); process
    /// 0 alone saves and plots.
    ///
    /// - Parameters:
    ///   - request: what the run is to be (see `RunRequest`; checked first with `RunRequest.validate()`).
    ///   - group: the processes training together under mpirun (`ProcessGroup.join()`), or nil.
    ///   - say: the run's description, line by line (the data, the model and devices, where it starts).
    ///   - note: notes and warnings (a device choice, a resumed run's repair, classes without examples).
    ///   - shouldStop: polled once the data is loaded (a stop request while loading).
    /// - Throws: `RunRequest.Invalid` naming the settings that cannot hold together; `DataError` for a file that
    ///   cannot be read or used; `DeviceError`; `TrainingError.interruptedBeforeTraining` when `shouldStop` held.
    public static func start(_ request: RunRequest, in group: ProcessGroup? = nil,
                             say: (String) -> Void = { print($0) },
                             note: (String) -> Void = { CLNNLog.logger.notice("\($0)") },
                             shouldStop: () -> Bool = { false }) throws -> TrainingRun {
        let plan = try RunStart(request, group: group, note: note)
        let options = plan.options
        let devices = try plan.devices(request, group: group)
        guard let lossFunction = Losses.named(plan.lossName) else {
            throw RunRequest.Invalid("--loss must be cross-entropy or mse, got '\(plan.lossName)'")
        }
        let folder = MNISTFolder(request.data)
        let loadStart = Date()
        // Images stay bytes on the host; the normalised float copy is made only on the device.
        let (train, test) = try folder.loadRaw()
        if group == nil && shouldStop() { throw TrainingError.interruptedBeforeTraining }
        if let group { try RunStart.checkSameData(train, test, group: group, folder: request.data) }
        try plan.checkResumedSteps(request, trainCount: train.count)
        // The architecture --arch gives, over this data's images (a preset ends in as many outputs as classes).
        var requested: [LayerSpec]?
        if let text = request.architecture {
            let classCount = request.classes ?? Int(train.labels.max() ?? 0) + 1
            do {
                requested = try LayerSpec.requested(text, input: train.imageShape.map { [1] + $0 } ?? [train.features],
                                                    outputs: lossFunction.outputs(classes: classCount))
            } catch let error as LayerSpec.Mismatch {
                throw RunRequest.Invalid("--arch \(text.prefix(60)): the architecture \(error.message)")
            }
        }
        var checkpoint = plan.source?.checkpoint
        var assumptions = StateDictAssumptions()
        if let source = plan.source, source.checkpoint.inferredFromShapes {
            // A plain PyTorch state dict: read again with the normalisation settled now that the data is here.
            assumptions = StateDictAssumptions(activation: request.activation ?? .relu,
                                               loss: request.loss ?? "cross-entropy",
                                               classes: request.classes, architecture: requested)
            (assumptions.normalization, assumptions.normalizationOrigin)
                = try request.normalization.map { ($0, "--normalization") }
                ?? (try trainingStatistics(train, folder), "the training set's statistics; --normalization to change")
            checkpoint = try Checkpoint.verified(source.bytes, path: source.path, vocabulary: Checkpoint.vocabulary,
                                                 assuming: assumptions).checkpoint
        }
        if let source = plan.source, let text = checkpoint?.note { note("\(source.path): \(text)") }
        // A model from a checkpoint keeps the input statistics it was trained with.
        let normalization = try checkpoint?.normalization ?? request.normalization ?? trainingStatistics(train, folder)
        let classes = try ClassPlan(train: train.labels, test: test.labels,
                                    explicit: checkpoint?.classes ?? request.classes,
                                    explicitSource: checkpoint.map {
                                        "the class count of \(plan.source?.path ?? "the checkpoint") (\($0.classes))"
                                    },
                                    trainSource: try folder.file(MNISTFolder.trainLabels),
                                    testSource: try folder.file(MNISTFolder.testLabels))
        for warning in classes.warnings { note("warning: \(warning)") }
        let outputs = lossFunction.outputs(classes: classes.classes)
        if let requested, let checkpoint, let source = plan.source,
           let difference = LayerSpec.difference(file: checkpoint.layers, model: requested) {
            throw RunRequest.Invalid("--arch \(request.architecture ?? "") gives \(LayerSpec.text(requested)) but "
                + "\(source.path) holds \(LayerSpec.text(checkpoint.layers)): \(difference)")
        }
        let specs = checkpoint?.layers ?? requested ?? LayerSpec.mlp(
            sizes: [train.features] + (request.hidden.isEmpty ? [50] : request.hidden) + [outputs],
            activation: plan.activation)
        let sizes = LayerSpec.sizes(specs)
        if let checkpoint, let source = plan.source {
            try checkpoint.checkInputs(train, imagesFile: try folder.file(MNISTFolder.trainImages), model: source.path)
        } else if sizes.last != outputs {
            throw RunRequest.Invalid("--arch \(request.architecture ?? ""): the model ends with \(sizes.last ?? 0) "
                + "outputs but \(plan.lossName) over \(classes.classes) classes needs \(outputs)")
        }
        let device = try devices.first ?? plan.measuredDevice(specs: specs, group: group, note: note)
        do {
            for d in devices.isEmpty ? [device] : devices {
                // NOTE: a batch larger than the training set is the training set.
                try LayerSpec.checkFits(specs, rows: max(min(options.batchSize, train.count),
                                                                       Evaluator.chunk(for: specs)),
                                        on: d)
            }
        } catch let error as DeviceError {
            throw RunRequest.Invalid("--batch-size \(options.batchSize): "
                + "\(error)".replacingOccurrences(of: "MLP: ", with: "").replacingOccurrences(of: "model: ", with: ""))
        }
        say("data \(request.data): \(train.count) train, \(test.count) test, \(train.features) features, "
            + "\(classes.classes) classes "
            + String(format: "(mean %.4f std %.4f, loaded in %.2fs)", normalization.mean,
                     normalization.std, Date().timeIntervalSince(loadStart)))
        if let group {
            try plan.checkSameRun(request, specs: specs, classes: classes.classes, normalization: normalization,
                                  devicesPerProcess: max(devices.count, 1), group: group)
        }
        let model = try plan.source.map {
            try Checkpoint.decode($0.bytes, path: $0.path, on: device, assuming: assumptions).1
        } ?? (requested == nil ? MLP.make(sizes: sizes, activation: plan.activation, seed: options.seed, on: device)
              // An architecture given as PyTorch's layers starts as PyTorch's do.
              : LayerSpec.modules(specs, initializer: .pytorchDefault, seed: options.seed, on: device))
        let trainer = try Trainer(model: model, loss: lossFunction, classes: classes.classes, options: options,
                                  device: device,
                                  replicas: Array(devices.dropFirst()), processGroup: group)
        if let state = plan.state {
            try state.value.restore(into: trainer, path: state.path)
            if let copies = state.value.modelCopies, copies != trainer.modelCopies {
                note("note: \(state.path) was trained on \(copies) model cop\(copies == 1 ? "y" : "ies") (devices × "
                     + "processes) and continues on \(trainer.modelCopies): each step's gradient is summed in "
                     + "another order (and a dropout draws per copy), so the result differs from the run never "
                     + "stopped")
            }
        }
        var dataParallel: [DeviceTag]?
        if case .list = request.devices { dataParallel = devices }
        let modelText = LayerSpec.isMLP(specs)
            ? "\(sizes.map(String.init).joined(separator: "-")) \(checkpoint?.activation ?? plan.activation.rawValue)"
            : LayerSpec.text(specs)
        say(plan.describe(model: modelText, device: device, devices: dataParallel, group: group))
        if let source = plan.source {
            say(plan.state == nil ? "starting from the weights of \(source.path)"
                : plan.start.step == 0 ? "resuming \(source.path) after epoch \(plan.start.epoch) of \(options.epochs)"
                : "resuming \(source.path) at step \(plan.start.step) of epoch \(plan.start.epoch + 1) "
                    + "of \(options.epochs)")
        }

        // The data goes to the device once; every minibatch is read there through the epoch's order.
        for d in devices.isEmpty ? [device] : devices { try d.warmUp() }
        let deviceTrain = try DeviceDataset(train, normalization: normalization, on: device)
        let deviceTest = try DeviceDataset(test, normalization: normalization, on: device)
        try trainer.prepare(deviceTrain)
        let metadata = try Checkpoint(model: model, loss: plan.lossName, classes: classes.classes,
                                      normalization: normalization,
                                      imageShape: checkpoint?.imageShape ?? train.imageShape)
        let run = try TrainingRun(trainer: trainer, train: deviceTrain, test: deviceTest, checkpoint: metadata,
                                  save: plan.save, from: plan.start)
        (run.stopAfter, run.maxSteps, run.plot, run.locks)
            = (request.stopAfter, request.maxSteps, plan.plot, plan.locks)
        let shortName = LayerSpec.isMLP(specs) ? sizes.map(String.init).joined(separator: "-")
            : request.architecture.flatMap { CNN.Kind(rawValue: $0)?.rawValue } ?? "model"
        run.curves.title = "clnn \(shortName) \(plan.lossName) on \(device)"
        return run
    }

    /// The training set's pixel statistics, to normalise with.
    /// - Throws: `DataError` naming the images file when every pixel is the same (std 0: nothing to normalise by).
    private static func trainingStatistics(_ train: RawDataset, _ folder: MNISTFolder) throws -> Normalization {
        try train.normalization.requireSpread(imagesFile: try folder.file(MNISTFolder.trainImages))
    }

    /// One epoch's report as a line: `epoch 2/5  train loss 0.4 …`.
    public func summary(_ e: EpochReport) -> String {
        String(format: "epoch %d/%d  train loss %.4f  test loss %.4f  test acc %.4f  (%.2f s)", e.epoch,
               trainer.options.epochs, e.trainLoss, e.testLoss, e.accuracy, e.seconds)
            + (e.steps < stepsPerEpoch ? " after \(e.steps) of \(stepsPerEpoch) steps (--max-steps)" : "")
    }

    /// What stopped the run and what the saved checkpoint holds, as one message.
    public func explain(_ error: TrainingError) -> String {
        guard let save else { return "\(error)" }
        // NOTE: name the file only when this run wrote a good model into it.
        if case .interrupted = error, let saved {
            return "\(error); the run so far (\(saved.text)) is saved in \(save) with its training state (--resume "
                + "\(save) continues from there)"
        }
        return "\(error)" + (saved.map { "; the last good checkpoint (\($0.text)) is kept in \(save) (--resume \(save) "
            + "continues it)" } ?? "; no checkpoint was written")
    }

    /// What the run wrote, for its last lines: the checkpoint and where it stands, the plot.
    public var closingLines: [String] {
        var lines: [String] = []
        let epochs = trainer.options.epochs
        if let save {
            let continues = "--resume \(save) continues"
            lines.append("saved \(save)" + (position.step > 0
                ? " at step \(position.step) of epoch \(position.epoch + 1) of \(epochs) (--max-steps; \(continues))"
                : position.epoch < epochs ? " after epoch \(position.epoch) of \(epochs) (\(continues))" : ""))
        }
        if let plot { lines.append("plotted \(plot)") }
        return lines
    }
}

extension RunPosition {
    /// "epoch 2", or "step 40 of epoch 3".
    var text: String { step == 0 ? "epoch \(epoch)" : "step \(step) of epoch \(epoch + 1)" }
}

extension RunStart {
    /// The devices `request` names (empty for `auto` without a GPU to take: measured once the model is known).
    func devices(_ request: RunRequest, group: ProcessGroup?) throws -> [DeviceTag] {
        switch request.devices {
        case .list(let tags):
            guard options.batchSize % tags.count == 0 else {
                throw RunRequest.Invalid("--batch-size \(options.batchSize) cannot be split evenly across the "
                    + "\(tags.count) devices of --device \(request.devicesText): make it a multiple of \(tags.count)")
            }
            for tag in tags where !DeviceTag.available.contains(tag) {
                throw DeviceError.unknownDevice(tag.description, available: DeviceTag.available)
            }
            return tags
        case .one(let tag):
            guard DeviceTag.available.contains(tag) else {
                throw DeviceError.unknownDevice(tag.description, available: DeviceTag.available)
            }
            return [tag]
        case .openCL:
            // Each process takes a device by its rank on the host: opencl:(local rank mod count).
            let openCL = DeviceTag.available.filter(\.isOpenCL)
            if let group, !openCL.isEmpty { return [openCL[group.localRank % openCL.count]] }
            return [try DeviceTag(parsing: "opencl")]
        case .auto:
            // GPUs are shared out by local rank as `openCL` would; with none, the device is measured.
            let gpus = OpenCLRuntime.shared.devices.filter { !$0.isCPU }
            if let group, !gpus.isEmpty { return [.opencl(gpus[group.localRank % gpus.count].index)] }
            return []
        }
    }

    /// `auto`'s device: the faster at training this model; in a process group each process measures its share of the
    /// batch at once (sharing the cores as in training) and all take process 0's choice.
    func measuredDevice(specs: [LayerSpec], group: ProcessGroup?, note: (String) -> Void) throws -> DeviceTag {
        let decision = try DeviceChoice.fastest(specs: specs,
                                                batchSize: max(options.batchSize / (group?.size ?? 1), 1))
        guard let group else {
            note("--device auto picked \(decision.device): \(decision.reason)")
            return decision.device
        }
        let choices = try group.allgather([decision.device.isOpenCL ? Double(decision.device.index) : -1])
        let device: DeviceTag = choices[0][0] < 0 ? .cpu : .opencl(Int(choices[0][0]))
        if group.rank == 0 { note("--device auto picked \(device) for every process: \(decision.reason)") }
        return device
    }

    /// The run in a line: processes, devices, model, loss, optimiser, batch, epochs, seed.
    func describe(model: String, device: DeviceTag, devices: [DeviceTag]?, group: ProcessGroup?) -> String {
        let o = options
        let optimizerText = o.optimizer == .adam ? "Adam lr \(o.lr) (\(o.schedule.rawValue))"
            : "SGD lr \(o.lr) (\(o.schedule.rawValue)) momentum \(o.momentum)"
        let devicesText = devices.map { "devices \($0.map(\.description).joined(separator: ", ")) (data-parallel, "
            + "\(o.batchSize / ($0.count * (group?.size ?? 1))) examples each per step)" } ?? "device \(device.summary)"
        let processText = group.map { "\($0.size) processes (mpirun; process 0's devices shown), global batch split "
            + "across all; " } ?? ""
        return "\(processText)\(devicesText); model \(model), "
            + "\(lossName), \(optimizerText)" + (o.weightDecay > 0 ? " weight decay \(o.weightDecay)" : "")
            + ", batch \(o.batchSize), \(o.epochs) epochs, seed \(o.seed)"
    }
}
