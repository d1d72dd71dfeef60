import Foundation

/// A whole training run: epochs over the data on the run's schedule, evaluation after each, the model and its
/// training state saved after each (`SavedRun`) — and at a stop — so that a run stopped anywhere continues exactly.
///
/// ```swift
/// let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options)
/// let run = TrainingRun(trainer: trainer, train: train, test: test,
///                       checkpoint: try Checkpoint(model: model, loss: "cross-entropy", classes: 10,
///                                                  normalization: stats),
///                       save: "m.safetensors")
/// try run.run { epoch in print(epoch.epoch, epoch.testLoss, epoch.accuracy) }
/// ```
///
/// To continue a saved run, read it (`SavedRun.load`), build the model from its bytes (`Checkpoint.decode`), restore
/// the state into the trainer (`TrainingState.restore`) and start the run at the state's `position`.
public final class TrainingRun {
    /// The trainer: model, loss, optimiser, options (epochs, batch size, schedule).
    public let trainer: Trainer
    /// The training and test data, on the trainer's device.
    public let train: DeviceDataset, test: DeviceDataset
    /// The metadata written with the model (loss, classes, normalisation, image shape); its epoch is set per save.
    public let checkpoint: Checkpoint?
    /// Where the model and its training state go after each epoch and at a stop; nil: nothing is saved.
    public let save: String?
    /// Stop after this epoch (`nil`: the run's last).
    public var stopAfter: Int?
    /// Stop once the run has taken this many steps in all (a resumed run's earlier steps count).
    public var maxSteps: Int?
    /// Steps between progress reports (and stop checks).
    public var reportEvery = 25
    /// Where the training curves go as SVG after each epoch (and at a stop); nil: not written.
    public var plot: String?
    /// The curves so far: the running loss at each progress report, test loss and accuracy after each epoch.
    public var curves = TrainingCurves()
    /// The file locks the run holds until `close()` or its end (`start`'s, on the checkpoint it writes and the one
    /// it resumes: another run of this or another process cannot write them meanwhile).
    var locks: [FileLock] = []

    /// Releases the run's locks on its files (also done when the run is freed): another run may then write them.
    public func close() {
        for lock in locks { lock.release() }
        locks = []
    }
    /// Where the run stands: epochs completed, steps into the next.
    public private(set) var position: RunPosition
    /// Where the last save put the run, nil before any save.
    public private(set) var saved: RunPosition?
    /// Steps in one epoch of `train` at the trainer's batch size.
    public let stepsPerEpoch: Int

    /// One epoch's (or a partial epoch's) results.
    public struct EpochReport: Sendable {
        /// The epoch, from 1.
        public let epoch: Int
        /// Its steps taken so far (`stepsPerEpoch` for a whole epoch).
        public let steps: Int
        /// The mean training loss over those steps, test loss and accuracy after them.
        public let trainLoss: Float, testLoss: Double, accuracy: Double
        /// Seconds spent training in this call (evaluation excluded).
        public let seconds: Double
        /// Where the run stands after it (saved there when `save` is set).
        public let position: RunPosition
    }

    /// A run of `trainer` over `train`, evaluated on `test`, starting at `position` (a resumed run's; the trainer
    /// then holds its weights and optimiser state).
    /// - Throws: `DeviceError.invalidArgument` when a checkpoint is to be saved without metadata to save it with, or
    ///   `position` is not in the run (an epoch past its last, a step outside an epoch of `train`); `DataError` when
    ///   the metadata does not describe the model or would not read back (classes against its outputs, statistics),
    ///   or a training state cannot record the optimiser — here, before anything is trained for a save that fails.
    public init(trainer: Trainer, train: DeviceDataset, test: DeviceDataset, checkpoint: Checkpoint?,
                save: String? = nil,
                from position: RunPosition = RunPosition(epoch: 0)) throws {
        guard save == nil || checkpoint != nil else {
            throw DeviceError.invalidArgument(op: "TrainingRun", "saving to \(save!) needs the checkpoint's metadata")
        }
        (self.trainer, self.train, self.test, self.checkpoint, self.save) = (trainer, train, test, checkpoint, save)
        self.position = position
        let o = trainer.options
        stepsPerEpoch = BatchSampler(count: train.count, batchSize: o.batchSize, seed: o.seed).batchCount
        guard (0...o.epochs).contains(position.epoch), position.step >= 0,
              position.step == 0 || (position.epoch < o.epochs && position.step < stepsPerEpoch) else {
            throw DeviceError.invalidArgument(op: "TrainingRun", "the run cannot start at epoch \(position.epoch), "
                + "step \(position.step): it has \(o.epochs) epochs of \(stepsPerEpoch) steps")
        }
        if let save, let checkpoint {
            try SavedRun.checkTarget(save)
            try checkpoint.checkWritable(trainer.model, path: save)
            try TrainingState.checkRecordable(trainer, path: save)
        }
    }

    /// The step of the run (in all) it stops after: the run's end, `stopAfter`'s or `maxSteps`.
    public var lastStep: Int {
        let epochs = trainer.options.epochs
        return min(min(stopAfter ?? epochs, epochs) * stepsPerEpoch, maxSteps ?? .max)
    }

    /// Steps taken in all.
    public var stepsTaken: Int { position.epoch * stepsPerEpoch + position.step }

    /// Trains until `lastStep`: each epoch (or the part of it left) is trained, evaluated, reported to `onEpoch` and
    /// saved. `onStep` gets every progress report; `shouldStop` is polled at each (under a process group the stop is
    /// agreed: all processes stop at the same step).
    /// - Throws: `TrainingError.interrupted` after a stop — the steps taken are saved first (with `save`), so the run
    ///   continues from them; other `TrainingError`s when training diverges (nothing is saved then: `saved` says
    ///   what the file holds); errors of a save or of the callbacks.
    public func run(shouldStop: () -> Bool = { false }, onStep: (StepReport) throws -> Void = { _ in },
                    onEpoch: (EpochReport) throws -> Void = { _ in }) throws {
        do {
            try loop(shouldStop: shouldStop, onStep: { report in
                let at = Double(report.epoch - 1) + Double(report.step) / Double(report.steps)
                curves.stepLoss.append((at, Double(report.runningLoss)))
                try onStep(report)
            }, onEpoch: { report in
                curves.epochs.append((report.epoch, report.testLoss, report.accuracy))
                try onEpoch(report)
                try writePlot()
            })
        } catch let error as TrainingError {
            try? writePlot()
            if case let .interrupted(epoch, step) = error, save != nil, epoch == position.epoch + 1,
               step > position.step {
                // Stopped mid-epoch after `step` whole steps: saved with the state that continues them (nothing is
                // saved when the last update made a weight non-finite: the error says so).
                var reached = RunPosition(epoch: position.epoch, step: step,
                                          lossSum: position.lossSum + trainer.lastLossSum)
                if step == stepsPerEpoch { reached = RunPosition(epoch: epoch) }
                try saveRun(at: reached)
                position = reached
            }
            throw error
        }
    }

    private func loop(shouldStop: () -> Bool, onStep: (StepReport) throws -> Void,
                      onEpoch: (EpochReport) throws -> Void) throws {
        while stepsTaken < lastStep {
            let epoch = position.epoch + 1
            // Under a process group the stop is agreed at the epoch's reports instead (the processes would not see a
            // request at the same moment here).
            if trainer.processGroup == nil && shouldStop() {
                throw TrainingError.interrupted(epoch: epoch, step: position.step)
            }
            let began = Date()
            let steps = min(lastStep - stepsTaken, stepsPerEpoch - position.step)
            _ = try trainer.trainEpoch(train, epoch: epoch, firstStep: position.step, reportEvery: reportEvery,
                                       maxSteps: steps,
                                       shouldStop: shouldStop, progress: onStep)
            position.step += steps
            position.lossSum += trainer.lastLossSum
            let trainLoss = Float(position.lossSum / Double(max(position.step, 1)))
            let taken = position.step
            if position.step == stepsPerEpoch { position = RunPosition(epoch: epoch) }
            let seconds = Date().timeIntervalSince(began)
            let (testLoss, accuracy) = try trainer.evaluate(test)
            guard testLoss.isFinite else {
                throw TrainingError.nonFiniteEvaluation(epoch: epoch, value: testLoss, hint: trainer.divergenceHint)
            }
            try saveRun(at: position)
            try onEpoch(EpochReport(epoch: epoch, steps: taken, trainLoss: trainLoss, testLoss: testLoss,
                                    accuracy: accuracy,
                                    seconds: seconds, position: position))
        }
    }

    /// Writes `curves` to `plot`, replacing the file as one step.
    private func writePlot() throws {
        if let plot { try AtomicFile.write(Array(curves.svg().utf8), to: plot) }
    }

    /// Saves the model and its training state at `position` as one commit (see `SavedRun`); nothing without `save`.
    private func saveRun(at position: RunPosition) throws {
        guard let save, let checkpoint else { return }
        var metadata = checkpoint
        metadata.epoch = position.epoch > 0 ? position.epoch : nil
        let note = try SavedRun.whileSaving {
            try SavedRun.save(trainer, checkpoint: metadata, at: position, stepsPerEpoch: stepsPerEpoch, to: save)
        }
        if let note { CLNNLog.logger.notice("\(note)") }
        saved = position
    }
}
