@_spi(CLI) import Device
import Foundation

/// A run's settings as a request and the checkpoint it starts from decide them — read and checked against each other
/// before any data is loaded.
struct RunStart {
    /// The checkpoint to start from (its bytes are parsed again on the chosen device).
    let source: (path: String, bytes: [UInt8], checkpoint: Checkpoint)?
    /// With `resume`: the saved run's state, and its file.
    let state: (path: String, value: TrainingState)?
    let options: TrainingOptions
    let activation: Activation
    let lossName: String
    /// Where the model and its training state go after each epoch (process 0 only in a process group).
    let save: String?
    /// The SVG plot's file (process 0 only in a process group).
    let plot: String?
    /// The locks this run holds on the files it writes and resumes, until it ends.
    let locks: [FileLock]

    init(_ request: RunRequest, group: ProcessGroup?, note: (String) -> Void) throws {
        try request.validate()
        let writes = (group?.rank ?? 0) == 0
        let save = writes ? request.save ?? request.resume : nil
        let plot = writes ? request.plot : nil
        (self.save, self.plot) = (save, plot)
        // A run owns its files before it reads any: every output is checked against every input (through links),
        // then the checkpoint written (and the one resumed) is locked against another clnn.
        if writes { try Self.checkOutputs(request, save: save, plot: plot) }
        if let resume = request.resume, SavedRun.isTrainingState(try SavedRun.Files(resume).resolved) {
            throw DataError(resume, "is a training state, not a checkpoint: resume the checkpoint it was saved beside "
                + "(m.safetensors for m.state.safetensors)")
        }
        if let save { try SavedRun.checkTarget(save) }
        // NOTE: the lock is the run's state file's: two names of one run (m and m.safetensors) share it. The model
        // file's is taken too: a run saving its model where another's state lives (--save m.state.safetensors)
        // meets that run's lock.
        var locks: [FileLock] = []
        if let save {
            let files = try SavedRun.Files(save)
            for locked in [files.state, files.resolved] {
                locks.append(try FileLock(locked, for: save, exclusive: true, purpose: "clnn train --save \(save)"))
            }
        }
        if writes, let resume = request.resume, !AtomicFile.sameTarget(resume, save ?? "") {
            locks.append(try FileLock(try SavedRun.Files(resume).state, for: resume, exclusive: false,
                                      purpose: "clnn train --resume \(resume)"))
        }
        self.locks = locks
        (source, state) = try Self.readSource(request,
                                              settle: writes && AtomicFile.sameTarget(request.resume ?? "", save ?? ""),
                                              note: writes ? note : { _ in })

        // The model's shape: from the checkpoint, which the request may repeat but not contradict.
        let checkpoint = source?.checkpoint
        let agree = Agreement(source: "\(request.resume != nil ? "--resume" : "--init-from") \(source?.path ?? "")")
        if let checkpoint, LayerSpec.isMLP(checkpoint.layers), !checkpoint.layers.isEmpty {
            let hidden = Array(checkpoint.sizes.dropFirst().dropLast())
            try agree.check("--hidden", request.hidden.isEmpty ? nil : request.hidden, hidden,
                      "hidden sizes \(hidden.map(String.init).joined(separator: " "))")
        }
        if let checkpoint, !checkpoint.inferredFromShapes {
            try agree.check("--normalization", request.normalization.map { $0 == Normalization(mean: 0, std: 1) ? "none" : "\($0.mean),\($0.std)" }, "",
                      "its own input normalisation")
            try agree.check("--activation", request.activation?.rawValue, checkpoint.activation,
                            "activation \(checkpoint.activation)")
            try agree.check("--loss", request.loss, checkpoint.loss, "loss \(checkpoint.loss)")
            try agree.check("--classes", request.classes, checkpoint.classes, "\(checkpoint.classes) classes")
        }
        activation = Activation(rawValue: checkpoint?.activation ?? "") ?? request.activation ?? .relu
        lossName = checkpoint?.loss ?? request.loss ?? "cross-entropy"
        options = try Self.options(request, state: state?.value, agree: agree, note: writes ? note : { _ in })
    }

    /// The checkpoint `resume` or `initFrom` names, read and verified; with `resume`, its training state.
    private static func readSource(_ request: RunRequest, settle: Bool, note: (String) -> Void) throws
        -> ((path: String, bytes: [UInt8], checkpoint: Checkpoint)?, (path: String, value: TrainingState)?) {
        if let resume = request.resume {
            let saved: SavedRun.Loaded
            do {
                // Only the holder of the writer's lock (saving back in place) may move a staged state into place.
                saved = try SavedRun.load(resume, settle: settle)
            } catch let error as DataError {
                throw DataError(error.path, error.problem + "; the run cannot continue exactly (--init-from \(resume) "
                    + "starts a new run from its weights)")
            }
            if let text = saved.note { note("note: \(text)") }
            return ((resume, saved.bytes, saved.checkpoint), (saved.files.state, saved.state))
        }
        guard let path = request.initFrom else { return (nil, nil) }
        let bytes = try readFileBytes(path, what: "checkpoint file", holding: 4)
        // A plain PyTorch state dict's activation, loss and classes come from the request (its normalisation is
        // settled once the data is loaded).
        // A plain state dict of the model --arch gives is read once the data has said the images' shape
        // (`TrainingRun.start` reads every plain state dict again then): until then, a checkpoint that says nothing.
        if let architecture = request.architecture, architecture != "mlp",
           try Checkpoint.isPlainStateDict(SafeTensors.metadata(of: bytes, path: path)) {
            var pending = Checkpoint(layers: [], loss: request.loss ?? "cross-entropy", classes: request.classes ?? 1,
                                     normalization: Normalization(mean: 0, std: 1))
            pending.inferredFromShapes = true
            return ((path, bytes, pending), nil)
        }
        let assumptions = StateDictAssumptions(activation: request.activation ?? .relu,
                                               loss: request.loss ?? "cross-entropy", classes: request.classes)
        let checkpoint = try Checkpoint.verified(bytes, path: path, vocabulary: Checkpoint.vocabulary,
                                                 assuming: assumptions).checkpoint
        return ((path, bytes, checkpoint), nil)
    }

    /// The run's options: the saved run's (which the request may repeat, or lengthen), else the request's and the
    /// defaults.
    private static func options(_ request: RunRequest, state saved: TrainingState?,
                                agree: Agreement,
                                note: (String) -> Void) throws -> TrainingOptions {
        var options = TrainingOptions()
        if let saved {
            let o = saved.options
            try agree.check("--optimizer", request.optimizer?.rawValue, o.optimizer.rawValue,
                            "optimizer \(o.optimizer.rawValue)")
            try agree.check("--lr", request.lr, o.lr, "lr \(o.lr)")
            try agree.check("--lr-schedule", request.schedule?.rawValue, o.schedule.rawValue,
                            "schedule \(o.schedule.rawValue)")
            try agree.check("--momentum", request.momentum, o.momentum, "momentum \(o.momentum)")
            try agree.check("--weight-decay", request.weightDecay, o.weightDecay, "weight decay \(o.weightDecay)")
            try agree.check("--batch-size", request.batchSize, o.batchSize, "batch size \(o.batchSize)")
            try agree.check("--seed", request.seed, o.seed, "seed \(o.seed)")
            options = o
            if let epochs = request.epochs {
                guard epochs > saved.epoch else {
                    throw RunRequest.Invalid("--epochs \(epochs): the run being resumed has completed \(saved.epoch) "
                        + "epochs already")
                }
                if epochs != o.epochs && o.schedule != .constant {
                    note("note: --epochs \(epochs) (the run planned \(o.epochs)) lays the \(o.schedule.rawValue) "
                         + "schedule over the new length from here on; "
                         + "the result differs from a run planned for \(epochs)")
                }
                options.epochs = epochs
            }
            guard saved.epoch < options.epochs else {
                throw RunRequest.Invalid("--resume \(request.resume ?? ""): the run completed all \(options.epochs) "
                    + "epochs; pass --epochs N (more than \(options.epochs)) to train it further")
            }
        } else {
            options.optimizer = request.optimizer ?? .sgd
            options.epochs = request.epochs ?? 5
            options.batchSize = request.batchSize ?? 64
            if let lr = request.lr { options.lr = lr }
            options.schedule = request.schedule ?? .cosine
            options.momentum = request.momentum ?? 0
            options.weightDecay = request.weightDecay ?? 0
            options.seed = request.seed ?? 42
        }
        if let stop = request.stopAfter, stop > options.epochs {
            throw RunRequest.Invalid("--stop-after \(stop) is beyond the run's last epoch (\(options.epochs))")
        }
        if let stop = request.stopAfter, let saved, stop <= saved.epoch {
            throw RunRequest.Invalid("--stop-after \(stop): the run being resumed has completed \(saved.epoch) epochs "
                + "already")
        }
        return options
    }

    /// Every output against every other and every input: the data, `resume` and `initFrom` and their training
    /// states. Only `save` may be `resume`'s own file (the run saved back in place), with its state.
    static func checkOutputs(_ request: RunRequest, save: String?, plot: String?) throws {
        var inputs = try MNISTFolder(request.data).files().map { (what: "a data file", path: $0) }
        let saveFiles = save.flatMap { try? SavedRun.Files($0) }
        var resumeFiles: SavedRun.Files?
        if let resume = request.resume {
            resumeFiles = try? SavedRun.Files(resume)
            inputs += [("the --resume checkpoint", resume)]
            if let files = resumeFiles {
                inputs += [("--resume's training state", files.state), ("--resume's training state", files.staged)]
            }
        }
        if let initFrom = request.initFrom {
            inputs.append(("the --init-from checkpoint", initFrom))
            if let files = try? SavedRun.Files(initFrom) {
                inputs += [("--init-from's training state", files.state),
                           ("--init-from's training state", files.staged)]
            }
        }
        var outputs: [OutputFiles.Output] = []
        if let save {
            outputs.append(.init("--save", save, replaces: request.resume))
            // Its state may replace the resumed run's only when the model does (saved back in place).
            let inPlace = request.resume.map { AtomicFile.sameTarget($0, save) } ?? false
            if let saveFiles {
                outputs.append(.init("--save's training state", saveFiles.state,
                                     replaces: inPlace ? resumeFiles?.state : nil))
                outputs.append(.init("--save's staged training state", saveFiles.staged,
                                     replaces: inPlace ? resumeFiles?.staged : nil))
            }
        }
        if let plot { outputs.append(.init("--plot", plot)) }
        // The run's locks (on the states of --save and --resume) are its own files while it lasts.
        var locks: [(what: String, path: String)] = []
        if let saveFiles {
            for locked in [saveFiles.state, saveFiles.resolved] {
                if let lock = try? FileLock.path(locking: locked) { locks.append(("--save's lock file", lock)) }
            }
        }
        if let resumeFiles, let lock = try? FileLock.path(locking: resumeFiles.state) {
            locks.append(("--resume's lock file", lock))
        }
        do {
            try OutputFiles.check(outputs, inputs: inputs, reserved: locks)
        } catch let conflict as OutputFiles.Conflict {
            throw RunRequest.Invalid(conflict.description)
        }
    }

    /// A setting the request may repeat but not contradict: the checkpoint's, or the saved run's.
    struct Agreement {
        /// The option and file that record it (`--resume m.safetensors`).
        let source: String

        func check<T: Equatable>(_ name: String, _ given: T?, _ recorded: T, _ shown: String) throws {
            if let given, given != recorded {
                throw RunRequest.Invalid("\(name) \(given) contradicts \(source), which records \(shown)")
            }
        }
    }

    /// Where the run starts: epochs completed and steps into the next.
    var start: RunPosition { state?.value.position ?? RunPosition(epoch: 0) }

    /// A resumed run's steps against the data's (`trainCount` examples), as soon as the data is counted: an epoch
    /// stopped mid-way must have as many steps now, and `--max-steps` (the run's steps in all) must go past them.
    func checkResumedSteps(_ request: RunRequest, trainCount: Int) throws {
        let stepsPerEpoch = BatchSampler(count: trainCount, batchSize: options.batchSize, seed: options.seed).batchCount
        if let recorded = state?.value.stepsPerEpoch, start.step > 0, recorded != stepsPerEpoch {
            throw RunRequest.Invalid("--resume \(request.resume ?? ""): the run stopped at step \(start.step) of an "
                + "epoch of \(recorded) steps, but this data and --batch-size give \(stepsPerEpoch): it cannot "
                + "continue that epoch (other data?)")
        }
        let (product, overflow) = start.epoch.multipliedReportingOverflow(by: stepsPerEpoch)
        let (sum, past) = product.addingReportingOverflow(start.step)
        let taken = overflow || past ? Int.max : sum
        if let maxSteps = request.maxSteps, maxSteps <= taken {
            throw RunRequest.Invalid("--max-steps \(maxSteps) counts the run's steps in all; the run being resumed has "
                + "taken \(taken) (\(stepsPerEpoch) per epoch): give more")
        }
    }
}
