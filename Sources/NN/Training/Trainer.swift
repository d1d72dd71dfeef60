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
    /// The model's copies on `devices.dropFirst()`.
    private let replicas: [Replica]
    /// The processes training together under mpirun, or nil.
    public let processGroup: ProcessGroup?
    /// Seconds spent so far in the gradient exchange (summing replicas' and processes' gradients, copying weights
    /// back): host time, including any wait it causes — copies between OpenCL devices are queued without a wait, so
    /// their device time shows in the epoch instead; the read-back before an allreduce waits. 0 on one device.
    public private(set) var exchangeSeconds = 0.0
    /// Steps that made an exchange.
    public private(set) var exchangeSteps = 0
    /// The sum of the step losses of the last `trainEpoch` call (its result is this over the steps it took).
    public private(set) var lastLossSum = 0.0

    /// The loss's buffers, reused across steps.
    private enum Buffer: Int, CaseIterable { case stepLosses, grad, evaluationLoss, staging }
    private let workspace = Workspace<Buffer>()

    /// - Parameters:
    ///   - model: the model to train, on one device.
    ///   - loss: the loss to minimise.
    ///   - options: epochs, batch size, optimiser and rates.
    ///   - classes: by default the model's output width says it (`loss.classes(outputs:)`); a single-output
    ///     regression (`MSELoss`) needs it stated.
    ///   - device: by default the model's device; when given, the model must already be there.
    ///   - optimizer: by default the one `options` describe (`options.makeOptimizer`).
    ///   - replicas: more devices (any, `cpu` and the model's own included) to train data-parallel on: each holds a
    ///     copy of the model; a step splits the global batch (`options.batchSize`) evenly across the model and its
    ///     copies, sums their gradients into the optimiser's flat buffer (one copy per replica), steps once, and
    ///     copies the new weights back (one copy per replica) — the same update a single device makes, to float
    ///     rounding.
    ///   - processGroup: the processes of an mpirun job (`ProcessGroup.join()`): each trains its own share of every
    ///     global batch, and the flat gradient buffer is summed across them with one `MPI_Allreduce` per step; the
    ///     initial weights are process 0's.
    /// - Throws: `DeviceError.invalidArgument` when the model's parameters are not all on `device`, or the class
    ///   count is unknown or disagrees with the model's outputs, or the batch cannot be split across the replicas —
    ///   here, not at the first step.
    public init(model: Sequential, loss: any Loss, classes: Int? = nil, options: TrainingOptions,
                device: DeviceTag? = nil, optimizer: (any Optimizer)? = nil, replicas: [DeviceTag] = [],
                processGroup: ProcessGroup? = nil) throws {
        self.model = model
        self.loss = loss
        self.options = options
        self.device = try Evaluator.device(of: model, expected: device, op: "Trainer")
        self.classes = try Evaluator.classes(of: model, loss: loss, explicit: classes, op: "Trainer")
        self.optimizer = try optimizer ?? options.makeOptimizer(model.parameters)
        evaluator = try Evaluator(model: model, loss: loss, classes: self.classes, device: self.device)
        devices = [self.device] + replicas
        self.processGroup = processGroup
        if !replicas.isEmpty || processGroup != nil {
            let parts = devices.count * (processGroup?.size ?? 1)
            guard options.batchSize % parts == 0 else {
                let ranks = processGroup.map { " on each of \($0.size) processes" } ?? ""
                throw DeviceError.invalidArgument(op: "Trainer", "the batch size \(options.batchSize) cannot be split evenly "
                    + "across \(devices.count) devices (\(devices.map(\.description).joined(separator: ", ")))\(ranks): make it a multiple of \(parts)")
            }
            guard let flat = self.optimizer as? FlatOptimizer else {
                throw DeviceError.invalidArgument(op: "Trainer", "data parallelism needs an optimizer with flat buffers (SGD, Adam)")
            }
            // One layout for every device's flat buffers, so each exchange is one copy.
            let alignment = try devices.map { try Tensor.arenaAlignment(on: $0) }.max() ?? 1
            flat.align(to: alignment)
            if let processGroup, let primary = try flat.flatBuffers() {
                // Every rank starts from rank 0's weights.
                var values = try primary.values.toArray()
                try processGroup.broadcast(&values, from: 0)
                try primary.values.upload(values)
            }
            self.replicas = try replicas.map { try Replica(of: model, on: $0, alignment: alignment) }
        } else {
            self.replicas = []
        }
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
    /// learning-rate schedule is placed by it: `for e in 1...options.epochs`). Returns the mean training loss.
    /// `progress` — the trailing closure, which may throw (the epoch ends with its error; under a process group the
    /// others then wait: end the job) — is called every `reportEvery` steps and at the end; `shouldStop` is polled
    /// at each report — with a process group, on every process, and any one's request stops all at the same step.
    /// `firstStep` starts the epoch there (a run resumed mid-epoch: the same order, the steps before it skipped);
    /// `maxSteps` ends it after that many steps; the learning rate follows the whole run's schedule either way, so
    /// the steps taken are exactly those of the full epoch.
    ///
    /// ```swift
    /// for epoch in 1...options.epochs {
    ///     let loss = try trainer.trainEpoch(data, epoch: epoch) { report in print(report.step, report.runningLoss) }
    /// }
    /// ```
    /// - Throws: `TrainingError.nonFiniteLoss` naming the first step whose loss was NaN or infinite, and
    ///   `.nonFiniteParameters` when the epoch's last update made the weights so; the parameters are then not to be
    ///   saved. `DataError` for a label the model cannot predict.
    public func trainEpoch(_ data: DeviceDataset, epoch: Int, firstStep: Int = 0, reportEvery: Int = 50, maxSteps: Int? = nil,
                           shouldStop: () -> Bool = { false },
                           progress: (StepReport) throws -> Void) throws -> Float {
        lastLossSum = 0
        guard (1...max(options.epochs, 1)).contains(epoch) else {
            throw DeviceError.invalidArgument(op: "Trainer.trainEpoch", "epoch counts from 1 to options.epochs "
                + "(\(options.epochs)), got \(epoch): the learning-rate schedule is placed by it")
        }
        try requireDevice(data)
        try Evaluator.validateLabels(data.hostLabels, classes: classes, source: "training data")
        let models = [model] + replicas.map(\.model)
        let reused = model.reusesBuffers
        for m in models { m.setBufferReuse(true) }
        defer { for m in models { m.setBufferReuse(reused) } }
        let reportEvery = max(reportEvery, 1)
        let sampler = BatchSampler(count: data.count, batchSize: options.batchSize, seed: options.seed)
        // The epoch's order goes to the device once; each step gathers its rows there.
        let hostOrder = sampler.order(epoch: epoch).map(Float.init)
        let order = try Tensor(hostOrder, shape: [data.count], on: device)
        let replicaData = try replicas.map { ($0, try $0.dataset(data), try Tensor(hostOrder, shape: [data.count], on: $0.device)) }
        guard (0...sampler.batchRanges.count).contains(firstStep) else {
            throw DeviceError.invalidArgument(op: "Trainer.trainEpoch", "firstStep \(firstStep) is outside the epoch's "
                + "\(sampler.batchRanges.count) steps")
        }
        let ranges = Array(sampler.batchRanges.dropFirst(firstStep).prefix(max(maxSteps ?? .max, 0)))
        // NOTE: in Double, so that no epoch count can overflow the step arithmetic.
        // The schedule is laid over whole epochs, so that a run cut short by `maxSteps` takes exactly the first steps
        // of the full run.
        let stepsPerEpoch = Double(sampler.batchRanges.count)
        let totalSteps = Double(options.epochs) * stepsPerEpoch
        let start = Date()
        // Each step's mean loss goes to its own element; a report reads them back at once (and finds the first bad one).
        let stepLosses = try workspace.tensor(.stepLosses, [reportEvery], on: device)
        let replicaLosses = try replicas.map { try $0.workspace.tensor(.stepLosses, [reportEvery], on: $0.device) }
        // Each device's share of each pending step's batch, to weigh its mean loss.
        var weights: [[Double]] = []
        var pendingSteps = 0
        var total = 0.0
        for (taken, range) in ranges.enumerated() {
            let step = firstStep + taken
            let progressSoFar = (Double(epoch - 1) * stepsPerEpoch + Double(step)) / max(totalSteps, 1)
            optimizer.lr = options.schedule.rate(base: options.lr, progress: progressSoFar)
            // The batch's rows and labels are read in place through the epoch's order: no gather, no copy. With
            // replicas, each device takes its share of the batch.
            let rank = processGroup?.rank ?? 0
            let parts = Array(shares(of: range, parts: devices.count * (processGroup?.size ?? 1))
                .dropFirst(rank * devices.count).prefix(devices.count))
            if !parts[0].isEmpty {
                let x = try Rows(data.images, order: order, offset: parts[0].lowerBound, count: parts[0].count)
                let y = try Rows(data.labels, order: order, offset: parts[0].lowerBound, count: parts[0].count)
                try forwardBackward(model, x, y, lossInto: stepLosses, at: pendingSteps) { [workspace, device] in
                    try workspace.tensor(.grad, $0, on: device)
                }
            }
            for (r, (replica, copy, replicaOrder)) in replicaData.enumerated() where !parts[r + 1].isEmpty {
                let part = parts[r + 1]
                try forwardBackward(replica.model, try Rows(copy.images, order: replicaOrder, offset: part.lowerBound, count: part.count),
                                    try Rows(copy.labels, order: replicaOrder, offset: part.lowerBound, count: part.count),
                                    lossInto: replicaLosses[r], at: pendingSteps) { try replica.workspace.tensor(.grad, $0, on: replica.device) }
            }
            weights.append(parts.map { Double($0.count) / Double(range.count) })
            let exchanging = !replicas.isEmpty || processGroup != nil
            var exchangeStart = DispatchTime.now().uptimeNanoseconds
            if exchanging { try sumGradients(weights[weights.count - 1]) }
            var exchangeTime = Double(DispatchTime.now().uptimeNanoseconds - exchangeStart) / 1e9
            try optimizer.step()
            if !replicas.isEmpty {
                exchangeStart = DispatchTime.now().uptimeNanoseconds
                try copyWeightsToReplicas()
                exchangeTime += Double(DispatchTime.now().uptimeNanoseconds - exchangeStart) / 1e9
            }
            if exchanging { (exchangeSeconds, exchangeSteps) = (exchangeSeconds + exchangeTime, exchangeSteps + 1) }

            pendingSteps += 1
            if pendingSteps == reportEvery || taken + 1 == ranges.count {
                // The only host synchronisation inside an epoch: one read of the losses per report (per device).
                var losses = Array(try stepLosses.toArray().prefix(pendingSteps))
                if !replicas.isEmpty || processGroup != nil {
                    let others = try replicaLosses.map { try $0.toArray() }
                    var totals = (0..<pendingSteps).map { s in
                        var total = weights[s][0] > 0 ? weights[s][0] * Double(losses[s]) : 0
                        for (r, values) in others.enumerated() where weights[s][r + 1] > 0 { total += weights[s][r + 1] * Double(values[s]) }
                        return total
                    }
                    // Each process holds its shares' part of every step's mean loss: the sum over processes is the mean.
                    if let processGroup { totals = try processGroup.allreduceSum(totals) }
                    losses = totals.map(Float.init)
                }
                weights.removeAll(keepingCapacity: true)
                if let bad = losses.firstIndex(where: { !$0.isFinite }) {
                    throw TrainingError.nonFiniteLoss(epoch: epoch, step: step + 2 - pendingSteps + bad, value: losses[bad],
                                                      hint: divergenceHint)
                }
                let sum = losses.reduce(0.0) { $0 + Double($1) }
                let mean = Float(sum / Double(pendingSteps))
                guard mean.isFinite else {
                    throw TrainingError.nonFiniteLoss(epoch: epoch, step: step + 1, value: mean, hint: divergenceHint)
                }
                total += sum
                lastLossSum = total
                let elapsed = Date().timeIntervalSince(start)
                // NOTE: the caller's code runs with the model's own setting: `model(x)` there returns a tensor it owns.
                for m in models { m.setBufferReuse(reused) }
                defer { for m in models { m.setBufferReuse(true) } }
                try progress(StepReport(epoch: epoch, step: step + 1, steps: sampler.batchRanges.count, runningLoss: mean,
                                    itemsPerSecond: Double(range.upperBound - ranges[0].lowerBound) / max(elapsed, 1e-9),
                                    elapsed: elapsed))
                pendingSteps = 0
                // Under a process group the stop is agreed: any process's request stops every one at this step (one
                // stopping alone would leave the others waiting in the next allreduce).
                var stop = shouldStop()
                if let processGroup { stop = try processGroup.allreduceSum([stop ? 1 : 0])[0] > 0 }
                if stop { throw TrainingError.interrupted(epoch: epoch, step: step + 1) }
            }
        }
        if let processGroup { try checkProcessesAgree(processGroup) }
        // The last update has no loss after it: check the weights themselves (one read per epoch).
        if let bad = try firstNonFiniteParameter() {
            throw TrainingError.nonFiniteParameters(epoch: epoch, step: firstStep + ranges.count, parameter: bad, hint: divergenceHint)
        }
        return Float(total / Double(max(ranges.count, 1)))
    }

    /// Builds every kernel a training step of this model uses on the device — one forward, loss and backward on the
    /// first batch of `data`, after which the gradients are zeroed and the parameters are as they were — so that the
    /// first epoch's time is training, not kernel compilation.
    public func prepare(_ data: DeviceDataset) throws {
        try requireDevice(data)
        let n = min(options.batchSize, data.count)
        guard n > 0 else { return }
        let reused = model.reusesBuffers
        model.setBufferReuse(true)
        defer { model.setBufferReuse(reused) }
        let order = try Tensor((0..<n).map(Float.init), shape: [n], on: device)
        try forwardBackward(model, try Rows(data.images, order: order, offset: 0, count: n),
                            try Rows(data.labels, order: order, offset: 0, count: n),
                            lossInto: try workspace.tensor(.evaluationLoss, [1], on: device), at: 0) { [workspace, device] in
            try workspace.tensor(.grad, $0, on: device)
        }
        try model.zeroGrad()
        for replica in replicas {
            let copy = try replica.dataset(data)
            let order = try Tensor((0..<n).map(Float.init), shape: [n], on: replica.device)
            try forwardBackward(replica.model, try Rows(copy.images, order: order, offset: 0, count: n),
                                try Rows(copy.labels, order: order, offset: 0, count: n),
                                lossInto: try replica.workspace.tensor(.stepLosses, [1], on: replica.device), at: 0) {
                try replica.workspace.tensor(.grad, $0, on: replica.device)
            }
            try replica.model.zeroGrad()
            try replica.device.synchronize()
        }
        try device.synchronize()
    }

    /// A step without the update on one device's model: forward, the mean loss into `out[slot]` with its gradient
    /// (into `gradBuffer(shape)`), zeroGrad, backward.
    private func forwardBackward(_ model: Sequential, _ x: Rows, _ y: Rows, lossInto out: Tensor, at slot: Int,
                                 gradBuffer: ([Int]) throws -> Tensor) throws {
        let pred = try model.forward(x)
        try Evaluator.checkOutputs(pred, loss: loss, classes: classes, op: "Trainer")
        let grad = try gradBuffer(pred.shape)
        try loss.mean(pred, y, grad: grad, into: out, at: slot)
        try model.zeroGrad()
        _ = try model.backward(grad, needsInputGradient: false)
    }

    /// Makes the optimiser's flat gradient buffer the batch's gradient: Σ over devices of share · that device's
    /// gradient of its own mean loss. One copy per replica (device to device, through the host between contexts,
    /// queued without blocking the host: see `Tensor.copy(from:)`).
    private func sumGradients(_ shares: [Double]) throws {
        guard let primary = try (optimizer as? FlatOptimizer)?.flatBuffers() else {
            throw DeviceError.invalidArgument(op: "Trainer", "data parallelism needs the model's parameters on one device")
        }
        if shares[0] == 0 {
            try primary.grads.fill(0)  // this device had no rows this step (its buffer holds the last step's)
        } else if shares[0] != 1 {
            try primary.grads.affine(scale: Float(shares[0]), into: primary.grads)
        }
        for (r, replica) in replicas.enumerated() where shares[r + 1] > 0 {
            for p in replica.model.parameters { try p.materialiseGrad() }
            let staging = try workspace.tensor(.staging, primary.grads.shape, on: device)
            try staging.copy(from: replica.arena.grads)
            try staging.affine(scale: Float(shares[r + 1]), into: staging)
            try primary.grads.elementwise(.add, staging, into: primary.grads)
        }
        if let processGroup {
            // The gradient exchange between processes: one allreduce of the flat buffer per step.
            var values = try primary.grads.toArray()
            try processGroup.allreduceSum(&values)
            try primary.grads.upload(values)
        }
    }

    /// Checks, once an epoch, that every process holds the same weights (they all apply the same summed gradient).
    private func checkProcessesAgree(_ group: ProcessGroup) throws {
        guard let primary = try (optimizer as? FlatOptimizer)?.flatBuffers() else { return }
        let values = try primary.values.toArray()
        let digest = values.enumerated().reduce(0.0) { $0 + Double($1.element) * Double($1.offset % 251 + 1) }
        let all = try group.allgather([digest])
        if let other = all.firstIndex(where: { $0[0] != all[0][0] }) {
            throw DeviceError.invalidArgument(op: "Trainer", "the weights of process \(other) differ from process 0's "
                + "(\(all[other][0]) against \(all[0][0])): the processes no longer train one model")
        }
    }

    /// Copies the updated weights to every replica: one copy each.
    private func copyWeightsToReplicas() throws {
        guard let primary = try (optimizer as? FlatOptimizer)?.flatBuffers() else { return }
        for replica in replicas { try replica.arena.values.copy(from: primary.values) }
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
        try trainEpoch(try DeviceDataset(data, on: device), epoch: epoch, firstStep: firstStep, reportEvery: reportEvery,
                       maxSteps: maxSteps, shouldStop: shouldStop, progress: progress)
    }

    /// `trainEpoch` without a progress callback.
    public func trainEpoch(_ data: DeviceDataset, epoch: Int, firstStep: Int = 0, reportEvery: Int = 50, maxSteps: Int? = nil,
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

    /// Rows per forward pass in `evaluate`.
    public static let evaluationChunk = Evaluator.defaultChunk

    /// The mean loss and the accuracy of the model on `data` (see `Evaluator`, which needs no optimiser).
    public func evaluate(_ data: DeviceDataset, chunk: Int = Trainer.evaluationChunk) throws -> (loss: Double, accuracy: Double) {
        try evaluator.evaluate(data, chunk: chunk)
    }

    /// The same for a host dataset (uploaded first).
    public func evaluate(_ data: Dataset, chunk: Int = Trainer.evaluationChunk) throws -> (loss: Double, accuracy: Double) {
        try evaluator.evaluate(data, chunk: chunk)
    }

    private func requireDevice(_ data: DeviceDataset) throws {
        guard data.images.device == device else {
            throw DeviceError.deviceMismatch(op: "Trainer", device, data.images.device)
        }
    }
}
