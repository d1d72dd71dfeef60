import ArgumentParser
@_spi(CLI) import Device
import Foundation
@_spi(CLI) import NN

/// A training run as `clnn train`'s options decide it — and, with `--resume` or `--init-from`, the checkpoint it
/// starts from, read and checked against the options before any data is loaded.
struct RunStart {
    /// The checkpoint to start from (its bytes are parsed again on the chosen device).
    let source: (path: String, bytes: [UInt8], checkpoint: Checkpoint)?
    /// With `--resume`: the saved run's state, and its file.
    let state: (path: String, value: TrainingState)?
    let options: TrainingOptions
    let activation: Activation
    let lossName: String
    /// Where the model and its training state go after each epoch (process 0 only under mpirun).
    let save: String?
    /// The SVG plot's file (process 0 only under mpirun).
    let plot: String?
    /// The processes training together under mpirun, or nil.
    let group: ProcessGroup?
    /// The locks this run holds on the files it writes and resumes, until it ends.
    let locks: [FileLock]

    init(_ command: Train, group: ProcessGroup? = nil) throws {
        self.group = group
        let writes = (group?.rank ?? 0) == 0
        let save = writes ? command.save ?? command.resume : nil
        let plot = writes ? command.plot : nil
        (self.save, self.plot) = (save, plot)
        // A run owns its files before it reads any: every output is checked against every input (through links),
        // then the checkpoint written (and the one resumed) is locked against another clnn.
        if writes { try Self.checkOutputs(command, save: save, plot: plot) }
        // NOTE: the lock is the run's state file's: two names of one run (m and m.safetensors) share it.
        var locks: [FileLock] = []
        if let save { locks.append(try FileLock(try SavedRun.Files(save).state, for: save, exclusive: true,
                                                purpose: "clnn train --save \(save)")) }
        if writes, let resume = command.resume, !AtomicFile.sameTarget(resume, save ?? "") {
            locks.append(try FileLock(try SavedRun.Files(resume).state, for: resume, exclusive: false,
                                      purpose: "clnn train --resume \(resume)"))
        }
        self.locks = locks

        var source: (String, [UInt8], Checkpoint)?
        var state: (String, TrainingState)?
        if let resume = command.resume {
            let saved: SavedRun.Loaded
            do {
                // Only the holder of the writer's lock (saving back in place) may move a staged state into place.
                saved = try SavedRun.load(resume, settle: writes && AtomicFile.sameTarget(resume, save ?? ""))
            } catch let error as DataError {
                throw DataError(error.path, error.problem + "; the run cannot continue exactly (--init-from \(resume) starts "
                    + "a new run from its weights)")
            }
            if let note = saved.note, writes { warn("clnn: note: \(note)") }
            source = (resume, saved.bytes, saved.checkpoint)
            state = (saved.files.state, saved.state)
        } else if let path = command.initFrom {
            let bytes = try readFileBytes(path, what: "checkpoint file", holding: 4)
            // A plain PyTorch state dict's activation, loss and classes come from the options (its normalisation is
            // settled once the data is loaded, in `train`).
            let assumptions = StateDictAssumptions(activation: Activation(rawValue: command.activation ?? "relu") ?? .relu,
                                                   loss: command.loss ?? "cross-entropy", classes: command.classes)
            source = (path, bytes, try Checkpoint.verified(bytes, path: path, vocabulary: Checkpoint.vocabulary,
                                                           assuming: assumptions).checkpoint)
        }
        self.source = source
        self.state = state

        // The model's shape: from the checkpoint, which options may repeat but not contradict.
        let checkpoint = source?.2
        let option = command.resume != nil ? "--resume" : "--init-from"
        func agree<T: Equatable>(_ name: String, _ given: T?, _ recorded: T, _ shown: String) throws {
            if let given, given != recorded {
                throw ValidationError("\(name) \(given) contradicts \(option) \(source!.0), which records \(shown)")
            }
        }
        if let checkpoint {
            try agree("--hidden", command.hidden.isEmpty ? nil : command.hidden, Array(checkpoint.sizes.dropFirst().dropLast()),
                      "hidden sizes \(checkpoint.sizes.dropFirst().dropLast().map(String.init).joined(separator: " "))")
        }
        if let checkpoint, !checkpoint.inferredFromShapes {
            try agree("--normalization", command.normalization, "", "its own input normalisation")
            try agree("--activation", command.activation, checkpoint.activation, "activation \(checkpoint.activation)")
            try agree("--loss", command.loss, checkpoint.loss, "loss \(checkpoint.loss)")
            try agree("--classes", command.classes, checkpoint.classes, "\(checkpoint.classes) classes")
        }
        activation = Activation(rawValue: checkpoint?.activation ?? command.activation ?? "relu") ?? .relu
        lossName = checkpoint?.loss ?? command.loss ?? "cross-entropy"

        var options = TrainingOptions()
        if let (_, saved) = state {
            let o = saved.options
            try agree("--optimizer", command.optimizer, o.optimizer.rawValue, "optimizer \(o.optimizer.rawValue)")
            try agree("--lr", command.lr, o.lr, "lr \(o.lr)")
            try agree("--lr-schedule", command.lrSchedule, o.schedule.rawValue, "schedule \(o.schedule.rawValue)")
            try agree("--momentum", command.momentum, o.momentum, "momentum \(o.momentum)")
            try agree("--weight-decay", command.weightDecay, o.weightDecay, "weight decay \(o.weightDecay)")
            try agree("--batch-size", command.batchSize, o.batchSize, "batch size \(o.batchSize)")
            try agree("--seed", command.seed, o.seed, "seed \(o.seed)")
            options = o
            if let epochs = command.epochs {
                guard epochs > saved.epoch else {
                    throw ValidationError("--epochs \(epochs): the run being resumed has completed \(saved.epoch) epochs already")
                }
                if epochs != o.epochs && o.schedule != .constant {
                    warn("clnn: note: --epochs \(epochs) (the run planned \(o.epochs)) lays the \(o.schedule.rawValue) schedule over "
                         + "the new length from here on; the result differs from a run planned for \(epochs)")
                }
                options.epochs = epochs
            }
            guard saved.epoch < options.epochs else {
                throw ValidationError("--resume \(command.resume!): the run completed all \(options.epochs) epochs; "
                    + "pass --epochs N (more than \(options.epochs)) to train it further")
            }
            if command.epochs != nil && saved.position.step > 0 && options.epochs <= saved.epoch {
                throw ValidationError("--epochs \(options.epochs): the run being resumed is in epoch \(saved.epoch + 1) already")
            }
        } else {
            options.optimizer = OptimizerKind(rawValue: command.optimizer ?? "sgd")!
            options.epochs = command.epochs ?? 5
            options.batchSize = command.batchSize ?? 64
            options.lr = command.lr ?? (options.optimizer == .adam ? 1e-3 : 0.1)
            options.schedule = LearningRateSchedule(rawValue: command.lrSchedule ?? "cosine")!
            options.momentum = command.momentum ?? 0
            options.weightDecay = command.weightDecay ?? 0
            options.seed = command.seed ?? 42
        }
        if let stop = command.stopAfter, stop > options.epochs {
            throw ValidationError("--stop-after \(stop) is beyond the run's last epoch (\(options.epochs))")
        }
        if let stop = command.stopAfter, let (_, saved) = state, stop <= saved.epoch {
            throw ValidationError("--stop-after \(stop): the run being resumed has completed \(saved.epoch) epochs already")
        }
        self.options = options
    }

    /// Every output against every other and every input: the data, `--resume` and `--init-from` and their training
    /// states. Only `--save` may be `--resume`'s own file (the run saved back in place), with its state.
    static func checkOutputs(_ command: Train, save: String?, plot: String?) throws {
        var inputs = try MNISTFolder(command.common.data).files().map { (what: "a data file", path: $0) }
        let saveFiles = save.flatMap { try? SavedRun.Files($0) }
        var resumeFiles: SavedRun.Files?
        if let resume = command.resume {
            resumeFiles = try? SavedRun.Files(resume)
            inputs += [("the --resume checkpoint", resume)]
            if let files = resumeFiles { inputs += [("--resume's training state", files.state), ("--resume's training state", files.staged)] }
        }
        if let initFrom = command.initFrom {
            inputs.append(("the --init-from checkpoint", initFrom))
            if let files = try? SavedRun.Files(initFrom) {
                inputs += [("--init-from's training state", files.state), ("--init-from's training state", files.staged)]
            }
        }
        var outputs: [OutputFiles.Output] = []
        if let save {
            outputs.append(.init("--save", save, replaces: command.resume))
            // Its state may replace the resumed run's only when the model does (saved back in place).
            let inPlace = command.resume.map { AtomicFile.sameTarget($0, save) } ?? false
            if let saveFiles {
                outputs.append(.init("--save's training state", saveFiles.state, replaces: inPlace ? resumeFiles?.state : nil))
                outputs.append(.init("--save's staged training state", saveFiles.staged, replaces: inPlace ? resumeFiles?.staged : nil))
            }
        }
        if let plot { outputs.append(.init("--plot", plot)) }
        do {
            try OutputFiles.check(outputs, inputs: inputs)
        } catch let conflict as OutputFiles.Conflict {
            throw ValidationError(conflict.description)
        }
    }

    /// Where the run starts: epochs completed and steps into the next.
    var start: RunPosition { state?.value.position ?? RunPosition(epoch: 0) }
    /// The first epoch this run trains.
    var firstEpoch: Int { start.epoch + 1 }
}

extension RunStart {
    func train(_ command: Train) throws {
        let common = command.common
        // An explicit device is checked at once; `auto` is decided once the model's shape is known.
        let deviceList = try common.deviceList()
        var explicitDevice = try deviceList?.first ?? (common.device.lowercased() == "auto" ? nil : common.resolveDevice())
        if let group, deviceList == nil {
            // Each process takes a device by its rank on the host: `opencl` means opencl:(local rank mod count).
            let openCL = DeviceTag.available.filter(\.isOpenCL)
            switch common.device.lowercased() {
            case "opencl" where !openCL.isEmpty: explicitDevice = openCL[group.localRank % openCL.count]
            case "auto":
                // GPUs are shared out by local rank as `opencl` would; with none, every process measures below (at
                // once, sharing the cores as they will in training) and all take process 0's choice.
                let gpus = OpenCLRuntime.shared.devices.filter { !$0.isCPU }
                if !gpus.isEmpty { explicitDevice = .opencl(gpus[group.localRank % gpus.count].index) }
            default: break
            }
        }
        if let deviceList, options.batchSize % deviceList.count != 0 {
            throw ValidationError("--batch-size \(options.batchSize) cannot be split evenly across the \(deviceList.count) devices of "
                + "--device \(common.device): make it a multiple of \(deviceList.count)")
        }
        let lossFunction = Losses.named(lossName)!
        let folder = MNISTFolder(common.data)
        let loadStart = Date()
        // Images stay bytes on the host; the normalised float copy is made only on the device.
        let (train, test) = try folder.loadRaw()
        if group == nil && Interrupt.requested {
            warn("clnn: interrupted while loading the data, before training; nothing was written")
            throw ExitCode(Interrupt.exitStatus)
        }
        if let group { try checkSameData(train, test, group: group, folder: common.data) }
        var checkpoint = source?.checkpoint
        var assumptions = StateDictAssumptions()
        if let source, source.checkpoint.inferredFromShapes {
            // A plain PyTorch state dict: read again with the normalisation settled now that the data is here.
            assumptions = try StateDictAssumptions(activation: command.activation, loss: command.loss, classes: command.classes,
                                                   normalization: command.normalization) { try trainingStatistics(train, folder) }
            checkpoint = try Checkpoint.verified(source.bytes, path: source.path, vocabulary: Checkpoint.vocabulary,
                                                 assuming: assumptions).checkpoint
        }
        if let source, let note = checkpoint?.note { warn("clnn: \(source.path): \(note)") }
        // A model from a checkpoint keeps the input statistics it was trained with.
        let normalization = try checkpoint?.normalization ?? parseNormalization(command.normalization)
            ?? trainingStatistics(train, folder)
        let plan = try ClassPlan(train: train.labels, test: test.labels, explicit: checkpoint?.classes ?? command.classes,
                                 trainSource: try folder.file(MNISTFolder.trainLabels),
                                 testSource: try folder.file(MNISTFolder.testLabels))
        for warning in plan.warnings { warn("clnn: warning: \(warning)") }
        let sizes = checkpoint?.sizes
            ?? [train.features] + (command.hidden.isEmpty ? [50] : command.hidden) + [lossFunction.outputs(classes: plan.classes)]
        if let checkpoint, let source {
            try checkpoint.checkInputs(train, imagesFile: try folder.file(MNISTFolder.trainImages), model: source.path)
        }
        var device: DeviceTag
        if let explicitDevice {
            device = explicitDevice
        } else if let group {
            // Each process's share of the batch, measured on every process at once; process 0's choice wins.
            let decision = try DeviceChoice.fastest(sizes: sizes, batchSize: max(options.batchSize / group.size, 1))
            let choices = try group.allgather([decision.device.isOpenCL ? Double(decision.device.index) : -1])
            device = choices[0][0] < 0 ? .cpu : .opencl(Int(choices[0][0]))
            if group.rank == 0 { warn("clnn: --device auto picked \(device) for every process: \(decision.reason)") }
        } else {
            device = try common.resolveDevice(sizes: sizes, batchSize: options.batchSize)
        }
        do {
            for d in deviceList ?? [device] {
                // NOTE: a batch larger than the training set is the training set.
                try MLP.checkFits(sizes: sizes, rows: max(min(options.batchSize, train.count), Trainer.evaluationChunk), on: d)
            }
        } catch let error as DeviceError {
            throw ValidationError("--batch-size \(options.batchSize): " + "\(error)".replacingOccurrences(of: "MLP: ", with: ""))
        }
        print("data \(common.data): \(train.count) train, \(test.count) test, \(train.features) features, \(plan.classes) classes "
              + String(format: "(mean %.4f std %.4f, loaded in %.2fs)", normalization.mean, normalization.std,
                       Date().timeIntervalSince(loadStart)))

        if let group {
            try checkSameRun(command, sizes: sizes, classes: plan.classes, normalization: normalization,
                             devicesPerProcess: deviceList?.count ?? 1, group: group)
        }
        let model = try source.map { try Checkpoint.decode($0.bytes, path: $0.path, on: device, assuming: assumptions).1 }
            ?? MLP.make(sizes: sizes, activation: activation, seed: options.seed, on: device)
        let trainer = try Trainer(model: model, loss: lossFunction, classes: plan.classes, options: options, device: device,
                                  replicas: Array((deviceList ?? []).dropFirst()), processGroup: group)
        if let state { try state.value.restore(into: trainer, path: state.path) }
        let o = options
        let optimizerText = o.optimizer == .adam ? "Adam lr \(o.lr) (\(o.schedule.rawValue))"
            : "SGD lr \(o.lr) (\(o.schedule.rawValue)) momentum \(o.momentum)"
        let devicesText = deviceList.map { "devices \($0.map(\.description).joined(separator: ", ")) (data-parallel, \(o.batchSize / ($0.count * (group?.size ?? 1))) examples each per step)" }
            ?? "device \(device.summary)"
        let processText = group.map { "\($0.size) processes (mpirun; process 0's devices shown), global batch split across all; " } ?? ""
        print("\(processText)\(devicesText); model \(sizes.map(String.init).joined(separator: "-")) "
              + "\(checkpoint?.activation ?? activation.rawValue), \(lossName), \(optimizerText)"
              + (o.weightDecay > 0 ? " weight decay \(o.weightDecay)" : "")
              + ", batch \(o.batchSize), \(o.epochs) epochs, seed \(o.seed)")
        if let source {
            print(state == nil ? "starting from the weights of \(source.path)"
                  : start.step == 0 ? "resuming \(source.path) after epoch \(firstEpoch - 1) of \(o.epochs)"
                  : "resuming \(source.path) at step \(start.step) of epoch \(firstEpoch) of \(o.epochs)")
        }

        // The data goes to the device once; every minibatch is read there through the epoch's order.
        for d in deviceList ?? [device] { try d.warmUp() }
        let deviceTrain = try DeviceDataset(train, normalization: normalization, on: device)
        let deviceTest = try DeviceDataset(test, normalization: normalization, on: device)
        try trainer.prepare(deviceTrain)
        var curves = TrainingCurves()
        curves.title = "clnn \(sizes.map(String.init).joined(separator: "-")) \(lossName) on \(device)"
        let bar = ProgressBar()
        let metadata = try Checkpoint(model: model, loss: lossName, classes: plan.classes, normalization: normalization,
                                      imageShape: checkpoint?.imageShape ?? train.imageShape)
        let run = try TrainingRun(trainer: trainer, train: deviceTrain, test: deviceTest, checkpoint: metadata, save: save, from: start)
        (run.stopAfter, run.maxSteps) = (command.stopAfter, command.maxSteps)
        if let recorded = state?.value.stepsPerEpoch, start.step > 0, recorded != run.stepsPerEpoch {
            throw ValidationError("--resume \(command.resume!): the run stopped at step \(start.step) of an epoch of \(recorded) steps, "
                + "but this data and --batch-size give \(run.stepsPerEpoch): it cannot continue that epoch (other data?)")
        }
        if let maxSteps = command.maxSteps, maxSteps <= run.stepsTaken {
            throw ValidationError("--max-steps \(maxSteps) counts the run's steps in all; the run being resumed has taken "
                + "\(run.stepsTaken) (\(run.stepsPerEpoch) per epoch): give more")
        }
        func plotCurves() throws { if let plot { try AtomicFile.write(Array(curves.svg().utf8), to: plot) } }
        do {
            try run.run(shouldStop: { Interrupt.requested }, onStep: { report in
                Interrupt.testHook(step: report.step)
                curves.stepLoss.append((Double(report.epoch - 1) + Double(report.step) / Double(report.steps), Double(report.runningLoss)))
                bar.show(report, epochs: o.epochs)
            }, onEpoch: { e in
                bar.finish()
                curves.epochs.append((e.epoch, e.testLoss, e.accuracy))
                print(String(format: "epoch %d/%d  train loss %.4f  test loss %.4f  test acc %.4f  (%.2f s)",
                             e.epoch, o.epochs, e.trainLoss, e.testLoss, e.accuracy, e.seconds)
                      + (e.steps < run.stepsPerEpoch ? " after \(e.steps) of \(run.stepsPerEpoch) steps (--max-steps)" : ""))
                try plotCurves()
            })
        } catch let error as TrainingError {
            bar.finish()
            try? plotCurves()
            try report(error, run)
        }
        let position = run.position
        if let save {
            let continues = "--resume \(save) continues"
            print("saved \(save)" + (position.step > 0 ? " at step \(position.step) of epoch \(position.epoch + 1) of \(o.epochs) (--max-steps; \(continues))"
                : position.epoch < o.epochs ? " after epoch \(position.epoch) of \(o.epochs) (\(continues))" : ""))
        }
        if let plot = plot { print("plotted \(plot)") }
        for lock in locks { lock.release() }
    }

    /// Says why training stopped and what the checkpoint holds, then ends with the status: the signal's after a stop
    /// (agreed by every process under mpirun), 1 after divergence.
    private func report(_ error: TrainingError, _ run: TrainingRun) throws -> Never {
        var kept = ""
        if let save {
            // NOTE: name the file only when this run wrote a good model into it.
            if case .interrupted = error, let saved = run.saved {
                kept = "; the run so far (\(describe(saved))) is saved in \(save) with its training state (--resume \(save) "
                    + "continues from there)"
            } else {
                kept = run.saved.map { "; the last good checkpoint (\(describe($0))) is kept in \(save) (--resume \(save) continues it)" }
                    ?? "; no checkpoint was written"
            }
        }
        if let group {
            // Every process stopped at the same step (a stop is agreed; a diverging loss is the summed one, the
            // weights are the same everywhere): process 0 reports, all leave together, no abort. A process the
            // signal did not reach takes the status of one it did.
            if group.rank == 0 { warn("clnn: \(error)\(kept)") }
            guard case .interrupted = error else { throw AgreedStop(status: 1) }
            let signal = Int32(try group.allgather([Double(Interrupt.signal)]).map { $0[0] }.max() ?? 0)
            throw AgreedStop(status: 128 + (signal == 0 ? SIGTERM : signal))
        }
        warn("clnn: \(error)\(kept)")
        if case .interrupted = error { throw ExitCode(Interrupt.exitStatus) }
        throw ExitCode(1)
    }

    /// The training set's pixel statistics, to normalise with.
    /// - Throws: `DataError` naming the images file when every pixel is the same (std 0: nothing to normalise by).
    private func trainingStatistics(_ train: RawDataset, _ folder: MNISTFolder) throws -> Normalization {
        let statistics = train.normalization
        guard statistics.std >= 1e-6 else {
            throw DataError(try folder.file(MNISTFolder.trainImages), String(format: "every training pixel has the same value "
                + "(mean %.4f, std 0): the images hold nothing to learn and cannot be normalised; check the file, or pass "
                + "--normalization none", statistics.mean))
        }
        return statistics
    }

    /// "epoch 2", or "step 40 of epoch 3".
    private func describe(_ position: RunPosition) -> String {
        position.step == 0 ? "epoch \(position.epoch)" : "step \(position.step) of epoch \(position.epoch + 1)"
    }
}

extension RunStart {
    /// Checks, before training, that every process runs the same run: the same options, model, normalisation and
    /// starting files (`--resume`/`--init-from` and the training state, compared by content: on several hosts each
    /// reads its own copy). The first setting that differs is an error on every process, naming it and both values —
    /// rather than processes that drift apart and are caught only at an epoch's end.
    func checkSameRun(_ command: Train, sizes: [Int], classes: Int, normalization: Normalization, devicesPerProcess: Int,
                      group: ProcessGroup) throws {
        let o = options
        var settings: [(name: String, value: Double, shown: (Double) -> String)] = []
        func add(_ name: String, _ value: Double, _ shown: @escaping (Double) -> String = { "\(Float($0))" }) {
            settings.append((name, value, shown))
        }
        func whole(_ v: Double) -> String { v < 0 ? "none" : String(Int(v)) }
        func hash(_ v: Double) -> String { String(UInt64(v), radix: 16) }
        add("--epochs", Double(o.epochs), whole)
        add("--batch-size", Double(o.batchSize), whole)
        add("--lr", Double(o.lr))
        add("--lr-schedule", Double(LearningRateSchedule.allCases.firstIndex(of: o.schedule) ?? -1)) {
            LearningRateSchedule.allCases.indices.contains(Int($0)) ? LearningRateSchedule.allCases[Int($0)].rawValue : "?"
        }
        add("--optimizer", o.optimizer == .adam ? 1 : 0) { $0 == 1 ? "adam" : "sgd" }
        add("--momentum", Double(o.momentum))
        add("--weight-decay", Double(o.weightDecay))
        add("--seed", Double(o.seed), whole)
        add("--max-steps", Double(command.maxSteps ?? -1), whole)
        add("--stop-after", Double(command.stopAfter ?? -1), whole)
        add("--activation", Double(Activation.allCases.firstIndex(of: activation) ?? -1)) {
            Activation.allCases.indices.contains(Int($0)) ? Activation.allCases[Int($0)].rawValue : "?"
        }
        add("--loss", lossName == "mse" ? 1 : 0) { $0 == 1 ? "mse" : "cross-entropy" }
        add("the class count", Double(classes), whole)
        for (i, size) in sizes.enumerated() {
            add(i == 0 ? "input size" : i == sizes.count - 1 ? "output size" : "hidden layer \(i)'s size", Double(size), whole)
        }
        add("the devices per process", Double(devicesPerProcess), whole)
        add("the input normalisation mean", Double(normalization.mean))
        add("the input normalisation std", Double(normalization.std))
        let sourceOption = command.resume != nil ? "--resume" : "--init-from"
        add("\(sourceOption) file's content (FNV-1a)", source.map { digest($0.bytes) } ?? -1) { $0 < 0 ? "none" : hash($0) }
        add("training state's content (FNV-1a)", try state.map { digest(try readFileBytes($0.path, what: "training state")) } ?? -1) {
            $0 < 0 ? "none" : hash($0)
        }
        // The layer count first: every process must then gather as many values.
        let counts = try group.allgather([Double(sizes.count)])
        if let p = counts.firstIndex(where: { $0 != counts[0] }) {
            throw ValidationError("process \(p) runs a model of \(Int(counts[p][0])) layer sizes but process 0 one of "
                + "\(Int(counts[0][0])): every process must start the same run (same options and files)")
        }
        let all = try group.allgather(settings.map(\.value))
        for (p, values) in all.enumerated() where p != 0 {
            if let i = settings.indices.first(where: { values[$0] != all[0][$0] }) {
                let s = settings[i]
                throw ValidationError("process \(p) runs with \(s.name) \(s.shown(values[i])) but process 0 with "
                    + "\(s.shown(all[0][i])): every process must start the same run (same options and files)")
            }
        }
    }

    /// FNV-1a of `bytes`, to 53 bits (exact in a Double).
    private func digest(_ bytes: [UInt8]) -> Double { Double(fnv1a(bytes) >> 11) }

    /// Every process must train on the same data: compares each one's example counts and a checksum of its pixels and
    /// labels with process 0's.
    /// - Throws: `DataError` naming this process's folder and the process that differs.
    func checkSameData(_ train: RawDataset, _ test: RawDataset, group: ProcessGroup, folder: String) throws {
        func digest(_ data: RawDataset) -> [Double] {
            var sum = 0.0
            for (i, p) in data.pixels.enumerated() { sum += Double(p) * Double(i % 251 + 1) }
            for (i, l) in data.labels.enumerated() { sum += Double(l) * Double(i % 13 + 1) }
            return [Double(data.count), sum]
        }
        let all = try group.allgather(digest(train) + digest(test))
        guard let other = all.firstIndex(where: { $0 != all[0] }) else { return }
        func describe(_ d: [Double]) -> String {
            "\(Int(d[0])) training and \(Int(d[2])) test examples (checksums \(Int(d[1])), \(Int(d[3])))"
        }
        throw DataError(folder, "process \(group.rank)'s data folder; process \(other) read \(describe(all[other])) but process 0 "
            + "read \(describe(all[0])): every process must train on the same data")
    }
}
