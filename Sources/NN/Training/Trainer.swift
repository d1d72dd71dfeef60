import Foundation

/// Trains a model: batch → forward → loss → backward → step, with an `Optimizer` (SGD or Adam).
///
/// A `Trainer` and its model belong to one task at a time (they hold mutable state and device buffers, so they are
/// not `Sendable`): create and use them inside one `Task`, or keep them in an actor of your own. Different trainers
/// may run in different tasks at once; the OpenCL runtime under them is shared safely.
public final class Trainer {
    /// The model trained.
    public let model: Sequential
    /// The loss minimised.
    public let loss: any Loss
    /// The optimiser that steps the model’s parameters.
    public let optimizer: any Optimizer
    /// Where the model lives; data must be there too.
    public let device: DeviceTag
    /// The classes the model predicts.
    public let classes: Int
    /// The run’s settings.
    public let options: TrainingOptions
    private let evaluator: Evaluator
    /// Every device a step runs on: the model's first, then one per replica (data parallelism).
    public let devices: [DeviceTag]
    /// How each step's gradients become the batch's (one device, replicas, processes).
    private let exchange: any GradientExchange
    /// The processes training together under mpirun, or nil.
    public let processGroup: ProcessGroup?
    /// The model copies each step's batch is split over: devices × processes (1 on one device). A run resumed on
    /// another count sums each step in another order, and draws dropout's masks per copy.
    public var modelCopies: Int { devices.count * (processGroup?.size ?? 1) }
    /// Seconds spent so far in the gradient exchange (summing replicas' and processes' gradients, copying weights
    /// back): host time, including any wait it causes — copies between OpenCL devices are queued without a wait, so
    /// their device time shows in the epoch instead; the read-back before an allreduce waits. 0 on one device.
    public var exchangeSeconds: Double { exchange.seconds }
    /// Steps that made an exchange.
    public private(set) var exchangeSteps = 0
    /// The sum of the step losses of the last `trainEpoch` call (its result is this over the steps it took).
    public private(set) var lastLossSum = 0.0


    /// - Parameters:
    ///   - model: the model to train, on one device.
    ///   - loss: the loss to minimise.
    ///   - options: epochs, batch size, optimiser and rates.
    ///   - classes: by default the model's output width says it (`loss.classes(outputs:)`); a single-output
    ///     regression (`MSELoss`) needs it stated.
    ///   - device: by default the model's device; when given, the model must already be there.
    ///   - optimizer: by default the one `options` describe (`options.makeOptimizer`). One of your own steps some
    ///     or all of the model's parameters (a head to fine-tune: `SGD(head.parameters, …)`), and its settings are
    ///     the run's: `options` takes its kind, momentum and weight decay, and the schedule's base is `options.lr`
    ///     when set, else the optimiser's rate as the first trainer over it found it (`initialLR`).
    ///   - replicas: more devices (any, `cpu` and the model's own included) to train data-parallel on: each holds a
    ///     copy of the model (given the model's weights again at each `trainEpoch`'s start); a step splits the
    ///     global batch (`options.batchSize`) evenly across the model and its copies, sums their gradients into the
    ///     optimiser's flat buffer (one copy per replica), steps once, and copies the new weights back (one copy per
    ///     replica) — the same update a single device makes, to float rounding.
    ///   - processGroup: the processes of an mpirun job (`ProcessGroup.join()`): each trains its own share of every
    ///     global batch, and the flat gradient buffer is summed across them with one `MPI_Allreduce` per step; the
    ///     initial weights are process 0's.
    /// - Throws: `DeviceError.invalidArgument` when the batch size or the epochs are under 1 or over
    ///   `TrainingOptions.maxBatchSize` / `.maxEpochs`, when the optimiser steps a parameter that is not the
    ///   model's, when the model's parameters are not all on `device`, or the class
    ///   count is unknown or disagrees with the model's outputs, or the batch cannot be split across the replicas —
    ///   here, not at the first step.
    public init(model: Sequential, loss: any Loss, classes: Int? = nil, options: TrainingOptions,
                device: DeviceTag? = nil, optimizer: (any Optimizer)? = nil, replicas: [DeviceTag] = [],
                processGroup: ProcessGroup? = nil) throws {
        // (A batch of 0 would step through the data by 0: checked here, with the run's length.)
        guard (1...TrainingOptions.maxBatchSize).contains(options.batchSize) else {
            throw DeviceError.invalidArgument(op: "Trainer", "the batch size is \(options.batchSize); it must be in "
                + "1...\(TrainingOptions.maxBatchSize)")
        }
        guard (1...TrainingOptions.maxEpochs).contains(options.epochs) else {
            throw DeviceError.invalidArgument(op: "Trainer", "the run has \(options.epochs) epochs; it must have "
                + "1...\(TrainingOptions.maxEpochs)")
        }
        // (The trainer's backward gives gradients to the model's parameters only; a training state names each
        // parameter's optimiser state by the model's names.)
        if let optimizer, let other = optimizer.parameters.first(where: { p in
            !model.parameters.contains { $0 === p } }) {
            throw DeviceError.invalidArgument(op: "Trainer", "the optimizer steps parameter '\(other.name)', which is "
                + "not one of the model's")
        }
        self.model = model
        self.loss = loss
        self.options = optimizer.map { options.adopting($0) } ?? options
        if let optimizer, optimizer.initialLR == nil { optimizer.initialLR = self.options.lr }
        self.device = try Evaluator.device(of: model, expected: device, op: "Trainer")
        self.classes = try Evaluator.classes(of: model, loss: loss, explicit: classes, op: "Trainer")
        self.optimizer = try optimizer ?? options.makeOptimizer(model.parameters)
        evaluator = try Evaluator(model: model, loss: loss, classes: self.classes, device: self.device)
        devices = [self.device] + replicas
        self.processGroup = processGroup
        let primary = Worker(model: model, device: self.device)
        guard !replicas.isEmpty || processGroup != nil else {
            exchange = LocalExchange(workers: [primary])
            return
        }
        let parts = devices.count * (processGroup?.size ?? 1)
        guard options.batchSize % parts == 0 else {
            let ranks = processGroup.map { " on each of \($0.size) processes" } ?? ""
            throw DeviceError.invalidArgument(op: "Trainer", "the batch size \(options.batchSize) "
                + "cannot be split evenly "
                + "across \(devices.count) devices (\(devices.map(\.description).joined(separator: ", ")))\(ranks): "
                + "make it a multiple of \(parts)")
        }
        // One layout for every device's flat buffers, so each exchange is one copy.
        let alignment = try devices.map { try Tensor.arenaAlignment(on: $0) }.max() ?? 1
        try model.layoutParameters(alignment: alignment)
        // NOTE: the primary's block may keep a larger alignment it had already: the replicas take the same layout.
        let layout = try primary.block.alignment
        let workers = try [primary] + replicas.map { try Worker(copying: model, on: $0, alignment: layout) }
        exchange = try processGroup.map { try ProcessExchange(workers: workers, group: $0) }
            ?? ReplicaExchange(workers: workers)
    }

    /// Checks that every label of `data` is a class the model can predict.
    public func validateLabels(_ data: RawDataset, source: String) throws {
        try Evaluator.validateLabels(data.labels, classes: classes, source: source)
    }

    /// Checks that every label of `data` is a class the model can predict.
    public func validateLabels(_ data: Dataset, source: String) throws {
        try Evaluator.validateLabels(data.labels, classes: classes, source: source)
    }

    /// One pass over `data` in the order `sampler` gives for `epoch`, which counts from 1 to `options.epochs` (the
    /// learning-rate schedule is placed by it: `for e in 1...options.epochs`), in training mode (`train()`; the
    /// model's mode is restored after). Returns the mean training loss.
    /// `progress` — the trailing closure, which may throw (the epoch ends with its error; under a process group the
    /// others then wait: end the job) — is called every `reportEvery` steps and at the end; `shouldStop` is polled
    /// at each report — with a process group, on every process, and any one's request stops all at the same step.
    /// `firstStep` starts the epoch there (a run resumed mid-epoch: the same order, the steps before it skipped);
    /// `maxSteps` ends it after that many steps; the learning rate follows the whole run's schedule either way, so
    /// the steps taken are exactly those of the full epoch. An epoch of no steps (`firstStep` at its end, `maxSteps`
    /// 0) returns 0.
    ///
    /// ```swift
    /// for epoch in 1...options.epochs {
    ///     let loss = try trainer.trainEpoch(data, epoch: epoch) { report in print(report.step, report.runningLoss) }
    /// }
    /// ```
    /// - Throws: `TrainingError.nonFiniteLoss` naming the first step whose loss was NaN or infinite, and
    ///   `.nonFiniteParameters` when the epoch's last update made the weights so; the parameters are then not to be
    ///   saved. `DataError` for a label the model cannot predict; `DeviceError.invalidArgument` for data of no
    ///   examples, an epoch outside the run, `firstStep` outside the epoch or a negative `maxSteps`.
    public func trainEpoch(_ data: DeviceDataset, epoch: Int, firstStep: Int = 0, reportEvery: Int = 50,
                           maxSteps: Int? = nil,
                           shouldStop: () -> Bool = { false },
                           progress: (StepReport) throws -> Void) throws -> Float {
        lastLossSum = 0
        let sampler = try epochSampler(data, epoch: epoch, firstStep: firstStep, maxSteps: maxSteps)
        let ranges = Array(sampler.batchRanges.dropFirst(firstStep).prefix(max(maxSteps ?? .max, 0)))
        // (The losses of the steps between two reports are kept on the device: no more slots than the epoch's steps.)
        let workers = exchange.workers, reportEvery = min(max(reportEvery, 1), max(ranges.count, 1))
        let firstWorker = (processGroup?.rank ?? 0) * workers.count  // the run's index of this process's first copy
        // The model's block is checked (laid out again if a parameter left it since), so each step is one launch.
        let alignment = model.parameterBlock?.alignment ?? 1
        for w in workers { try w.model.layoutParameters(alignment: alignment) }
        // The replicas start from the model's weights as they are now (loaded or set since the trainer was made).
        try exchange.returnWeights()
        // Buffers reused and training mode (batch statistics, dropout) for the epoch; both restored after.
        let reused = model.reusesBuffers, training = model.isTraining
        func reuseBuffers(_ on: Bool) { for w in workers { w.model.setBufferReuse(on) } }
        reuseBuffers(true)
        for w in workers { w.model.train() }
        defer {
            reuseBuffers(reused)
            for w in workers { w.model.setTraining(training) }
        }
        try requireBatchStatistics(ranges, epoch: epoch, firstStep: firstStep, examples: data.count)
        let views = try epochViews(data, order: sampler.order(epoch: epoch), reportEvery: reportEvery)
        let start = Date()
        var weights: [[Double]] = []  // each worker's share of each pending step's batch
        var total = 0.0
        for (taken, range) in ranges.enumerated() {
            let step = firstStep + taken
            optimizer.lr = learningRate(epoch: epoch, step: step, steps: sampler.batchCount)
            let parts = exchange.shares(of: range)
            for (k, (w, (part, view))) in zip(workers, zip(parts, views)).enumerated() where !part.isEmpty {
                // A dropout's masks are the run's step's, however the run got here (resumed from a checkpoint, a
                // replica that sat a step out): each model copy of the run has its own stream.
                w.model.setRandomStream(seed: Sequential.streamSeed(run: options.seed,
                                                                    worker: firstWorker + k),
                                        draw: UInt64(optimizer.stepCount))
                // (The order is this epoch's shuffle of 0..<count: its entries need no check.)
                func rows(_ t: Tensor) throws -> Rows {
                    try Rows(t, order: view.1, offset: part.lowerBound, count: part.count, checkingIndices: false)
                }
                try forwardBackward(w, rows(view.0.images), rows(view.0.labels), lossInto: view.2, at: weights.count)
            }
            weights.append(parts.map { Double($0.count) / Double(range.count) })
            try exchange.sumGradients(weights[weights.count - 1])
            try optimizer.step()
            try exchange.returnWeights()
            if workers.count > 1 || processGroup != nil { exchangeSteps += 1 }
            guard weights.count == reportEvery || taken + 1 == ranges.count else { continue }
            // The only host synchronisation inside an epoch: one read of the losses per report (per device).
            let losses = try exchange.reduceLosses(try views.map { Array(try $0.2.toArray().prefix(weights.count)) },
                                                   weights: weights)
            if let bad = losses.firstIndex(where: { !$0.isFinite }) {
                throw TrainingError.nonFiniteLoss(epoch: epoch, step: step + 2 - losses.count + bad, value: losses[bad],
                                                  hint: divergenceHint)
            }
            let sum = losses.reduce(0.0) { $0 + Double($1) }
            total += sum
            lastLossSum = total
            let elapsed = Date().timeIntervalSince(start)
            // NOTE: the caller's code runs with the model's own setting: `model(x)` there returns a tensor it owns.
            reuseBuffers(reused)
            try progress(StepReport(epoch: epoch, step: step + 1, steps: sampler.batchCount,
                                    runningLoss: Float(sum / Double(losses.count)),
                                    itemsPerSecond: Double(range.upperBound - ranges[0].lowerBound)
                                        / max(elapsed, 1e-9),
                                    elapsed: elapsed))
            reuseBuffers(true)
            weights.removeAll(keepingCapacity: true)
            // Under a process group the stop is agreed: any process's request stops every one at this step.
            if try exchange.agreeToStop(shouldStop()) { throw TrainingError.interrupted(epoch: epoch, step: step + 1) }
        }
        try exchange.endEpoch()
        // The last update has no loss after it: check the weights themselves (one read per epoch).
        if let bad = try firstNonFiniteParameter() {
            throw TrainingError.nonFiniteParameters(epoch: epoch, step: firstStep + ranges.count, parameter: bad,
                                                    hint: divergenceHint)
        }
        return Float(total / Double(max(ranges.count, 1)))
    }

    /// Each worker's data, the epoch's order uploaded to its device once (each step reads its rows there, in place),
    /// and its slots for the losses of the steps between two reports.
    private func epochViews(_ data: DeviceDataset, order: [Int], reportEvery: Int) throws
        -> [(data: DeviceDataset, order: Tensor, losses: Tensor)] {
        let hostOrder = order.map(Float.init)
        return try exchange.workers.map { w in
            let order = try w.workspace.tensor(.order, [data.count], on: w.device)
            try order.upload(hostOrder)
            return (try w.dataset(data), order, try w.workspace.tensor(.stepLosses, [reportEvery], on: w.device))
        }
    }

    /// The rate at `step` of `epoch` (of `steps`).
    /// NOTE: the schedule is laid over whole epochs (in Double: no count overflows), so a run cut short by
    /// `maxSteps` or resumed at `firstStep` takes exactly the full run's steps.
    private func learningRate(epoch: Int, step: Int, steps: Int) -> Float {
        let total = Double(options.epochs) * Double(steps)
        return options.schedule.rate(base: options.lr, progress: (Double(epoch - 1) * Double(steps) + Double(step))
                                        / max(total, 1))
    }

    /// Builds every kernel a training step of this model uses on the device — one forward, loss and backward on the
    /// first batch of `data`, in evaluation mode, after which the gradients are zeroed and the parameters (and a batch
    /// norm's running statistics, a dropout's draws) are as they were — so that the first epoch's time is training,
    /// not kernel compilation.
    public func prepare(_ data: DeviceDataset) throws {
        try requireDevice(data)
        let n = min(options.batchSize, data.count)
        guard n > 0 else { return }
        for w in exchange.workers {
            // In evaluation mode: the warm-up must not move a batch norm's running statistics or a dropout's draws
            // (a run, resumed or not, sees only its steps).
            let reused = w.model.reusesBuffers, training = w.model.isTraining
            w.model.setBufferReuse(true)
            w.model.eval()
            defer { w.model.setBufferReuse(reused); w.model.setTraining(training) }
            let copy = try w.dataset(data)
            let order = try Tensor((0..<n).map(Float.init), shape: [n], on: w.device)
            func rows(_ t: Tensor) throws -> Rows {
                try Rows(t, order: order, offset: 0, count: n, checkingIndices: false)
            }
            try forwardBackward(w, rows(copy.images), rows(copy.labels),
                                lossInto: try w.workspace.tensor(.stepLosses, [1], on: w.device), at: 0)
            try w.model.zeroGrad()
            try w.device.synchronize()
        }
    }

    /// A step without the update on one worker's model: forward, the mean loss into `out[slot]` with its gradient,
    /// zeroGrad, backward.
    private func forwardBackward(_ worker: Worker, _ x: Rows, _ y: Rows, lossInto out: Tensor, at slot: Int) throws {
        let pred = try ModuleTape.callerRunsBackward { try worker.model.forward(x) }
        try Evaluator.checkOutputs(pred, loss: loss, classes: classes, op: "Trainer")
        let grad = try worker.workspace.tensor(.grad, pred.shape, on: worker.device)
        try loss.mean(pred, y, grad: grad, into: out, at: slot)
        try worker.model.zeroGrad()
        _ = try worker.model.backward(grad, needsInputGradient: false)
    }

    /// The name of the first parameter holding a NaN or an infinity, or nil when all are finite.
    public func firstNonFiniteParameter() throws -> String? {
        for (name, p) in model.namedParameters where try !p.value.toArray().allSatisfy(\.isFinite) { return name }
        return nil
    }

    /// The likely cause of a diverging run, from the options.
    public var divergenceHint: String {
        // NOTE: weight decay alone scales a weight by (1 − lr·wd) per step (heavy-ball with momentum m: stable
        // only while lr·wd < 2(1 + m)); beyond that no learning rate schedule saves the run.
        let decay = Double(options.lr) * Double(options.weightDecay)
        if decay >= 2 * (1 + Double(options.momentum)) {
            return "the weight decay \(options.weightDecay) is too large for learning rate \(options.lr) "
                + "(lr × weight decay = \(decay) makes every update overshoot); lower --weight-decay"
        }
        return "the learning rate \(options.lr) is too large for this model and data; try a smaller --lr"
    }

    /// The same, uploading a host dataset first (for one-off use; keep a `DeviceDataset` across epochs).
    public func trainEpoch(_ data: Dataset, epoch: Int, firstStep: Int = 0, reportEvery: Int = 50, maxSteps: Int? = nil,
                           shouldStop: () -> Bool = { false },
                           progress: (StepReport) throws -> Void) throws -> Float {
        try trainEpoch(try DeviceDataset(data, on: device), epoch: epoch, firstStep: firstStep,
                       reportEvery: reportEvery,
                       maxSteps: maxSteps, shouldStop: shouldStop, progress: progress)
    }

    /// `trainEpoch` without a progress callback.
    public func trainEpoch(_ data: DeviceDataset, epoch: Int, firstStep: Int = 0, reportEvery: Int = 50,
                           maxSteps: Int? = nil,
                           shouldStop: () -> Bool = { false }) throws -> Float {
        try trainEpoch(data, epoch: epoch, firstStep: firstStep, reportEvery: reportEvery, maxSteps: maxSteps,
                       shouldStop: shouldStop, progress: { _ in })
    }

    /// `trainEpoch` of a host dataset without a progress callback.
    public func trainEpoch(_ data: Dataset, epoch: Int, firstStep: Int = 0, reportEvery: Int = 50, maxSteps: Int? = nil,
                           shouldStop: () -> Bool = { false }) throws -> Float {
        try trainEpoch(data, epoch: epoch, firstStep: firstStep, reportEvery: reportEvery, maxSteps: maxSteps,
                       shouldStop: shouldStop, progress: { _ in })
    }

    /// Rows per forward pass in `evaluate`, at most (`Evaluator.chunk(for:)` gives a model's).
    public static let evaluationChunk = Evaluator.defaultChunk

    /// The mean loss and the accuracy of the model on `data` (see `Evaluator`, which needs no optimiser), in chunks of
    /// `chunk` examples (by default `Evaluator.chunk(for:)` of the model).
    public func evaluate(_ data: DeviceDataset,
                         chunk: Int? = nil) throws -> (loss: Double, accuracy: Double) {
        try evaluator.evaluate(data, chunk: chunk)
    }

    /// The same for a host dataset (uploaded first).
    public func evaluate(_ data: Dataset,
                         chunk: Int? = nil) throws -> (loss: Double, accuracy: Double) {
        try evaluator.evaluate(data, chunk: chunk)
    }
}
