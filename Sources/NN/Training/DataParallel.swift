import Foundation

/// One device's copy of the model in a training step — the trainer's own model, or a replica on another device —
/// with the buffers of its share of each batch and its copies of the data.
final class Worker {
    let model: Sequential
    let device: DeviceTag
    enum Buffer: Int, CaseIterable { case stepLosses, grad, order }
    let workspace = Workspace<Buffer>()
    /// The datasets copied to this device, with the primary's dataset (kept, so its identity cannot be reused).
    private var copies: [ObjectIdentifier: (source: DeviceDataset, copy: DeviceDataset)] = [:]

    init(model: Sequential, device: DeviceTag) {
        (self.model, self.device) = (model, device)
    }

    /// A copy of `model` (known modules only) on `device`, with the same weights, laid out with views aligned to
    /// `alignment` floats.
    convenience init(copying model: Sequential, on device: DeviceTag, alignment: Int) throws {
        guard let specs = model.layerSpecs else {
            let custom = model.layers.first { $0.layerSpecs == nil }.map { "\(type(of: $0))" } ?? "a module"
            throw DeviceError.invalidArgument(op: "Trainer", "data parallelism copies the model to each device, and it "
                + "holds \(custom), which cannot be copied (CLNN's own layers can)")
        }
        let copy = try LayerSpec.modules(specs, seed: 0, on: device)
        for (mine, theirs) in zip(copy.parameters, model.parameters) { try mine.load(theirs.value) }
        // A batch norm's running statistics start as the model's (each replica then keeps its own).
        try copy.loadBuffers(Dictionary(uniqueKeysWithValues: model.namedBuffers.map { ($0.name, $0.value) }))
        try copy.layoutParameters(alignment: alignment)
        self.init(model: copy, device: device)
    }

    /// The model's flat buffers, checked to still hold its parameters (another `Sequential` built over some of its
    /// layers, or a parameter moved alone, would leave them stale: summing gradients there would be silently wrong).
    var block: ParameterBlock {
        get throws {
            guard let block = model.parameterBlock, block.holds(model.parameters) else {
                throw DeviceError.invalidArgument(op: "Trainer", "data parallelism needs the model's parameters "
                    + "in its own "
                    + "flat buffers on one device; they were moved or laid out elsewhere since "
                    + "(call layoutParameters())")
            }
            return block
        }
    }

    /// `data` (on the primary device) as a dataset on this worker's device, copied once.
    func dataset(_ data: DeviceDataset) throws -> DeviceDataset {
        if data.images.device == device { return data }
        if let entry = copies[ObjectIdentifier(data)] { return entry.copy }
        let copy = try DeviceDataset(copying: data, to: device)
        copies[ObjectIdentifier(data)] = (data, copy)
        return copy
    }
}

/// How a step's gradients become the whole batch's and the weights stay one model's: one device, replicas in one
/// process, or processes over MPI (each with its local replicas). It owns the batch's split, the gradient sum, the
/// weights' return to replicas, the reduction of reported losses and the agreement to stop.
protocol GradientExchange {
    /// This process's workers: the trainer's model first.
    var workers: [Worker] { get }
    /// This process's workers' shares of a global batch (some may be empty).
    func shares(of batch: Range<Int>) -> [Range<Int>]
    /// Makes the trainer's flat gradient the batch's: Σ over every share of (share / batch) · its mean-loss gradient.
    func sumGradients(_ weights: [Double]) throws
    /// After the step: the new weights to every replica.
    func returnWeights() throws
    /// The batch's mean loss of each pending step, from each worker's losses and shares (`weights[step][worker]`).
    func reduceLosses(_ losses: [[Float]], weights: [[Double]]) throws -> [Float]
    /// Whether to stop: this process's request, agreed with every other.
    func agreeToStop(_ request: Bool) throws -> Bool
    /// At an epoch's end: a check that every process still holds one model.
    func endEpoch() throws
    /// Host seconds spent exchanging, and the steps that exchanged.
    var seconds: Double { get }
}

/// One device: nothing to exchange.
struct LocalExchange: GradientExchange {
    let workers: [Worker]
    func shares(of batch: Range<Int>) -> [Range<Int>] { [batch] }
    func sumGradients(_ weights: [Double]) throws {}
    func returnWeights() throws {}
    func reduceLosses(_ losses: [[Float]], weights: [[Double]]) throws -> [Float] { losses[0] }
    func agreeToStop(_ request: Bool) throws -> Bool { request }
    func endEpoch() throws {}
    var seconds: Double { 0 }
}

/// Replicas of the model on several devices of one process: each takes an even share of the batch; their gradients
/// are summed into the trainer's flat buffer (one copy each) and the stepped weights copied back (one copy each).
final class ReplicaExchange: GradientExchange {
    let workers: [Worker]
    /// The share of the batch this process takes, as `parts` of `processes` (one process: the whole batch).
    let rank: Int, processes: Int
    private let staging = Workspace<Worker.Buffer>()
    private(set) var seconds = 0.0

    init(workers: [Worker], rank: Int = 0, processes: Int = 1) {
        (self.workers, self.rank, self.processes) = (workers, rank, processes)
    }

    func shares(of batch: Range<Int>) -> [Range<Int>] {
        Array(NN.shares(of: batch, parts: workers.count * processes).dropFirst(rank * workers.count)
                  .prefix(workers.count))
    }

    func sumGradients(_ weights: [Double]) throws {
        let started = DispatchTime.now().uptimeNanoseconds
        defer { seconds += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }
        let primary = try workers[0].block
        try primary.materialiseGradients()
        if weights[0] == 0 {
            try primary.grads.fill(0)  // this device had no rows this step (its buffer holds the last step's)
        } else if weights[0] != 1 {
            try primary.grads.affine(scale: Float(weights[0]), into: primary.grads)
        }
        for (worker, weight) in zip(workers.dropFirst(), weights.dropFirst()) where weight > 0 {
            let block = try worker.block
            try block.materialiseGradients()
            let buffer = try staging.tensor(.grad, primary.grads.shape, on: primary.device)
            try buffer.copy(from: block.grads)
            try buffer.affine(scale: Float(weight), into: buffer)
            try primary.grads.elementwise(.add, buffer, into: primary.grads)
        }
        // Every parameter's gradient is now the batch's (written: as after DDP's all-reduce), but a frozen one's,
        // which reads as none, as on one device.
        for p in primary.parameters where p.isFrozen { p.zeroGrad() }
    }

    func returnWeights() throws {
        let started = DispatchTime.now().uptimeNanoseconds
        defer { seconds += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }
        let primary = try workers[0].block
        for worker in workers.dropFirst() { try worker.block.values.copy(from: primary.values) }
    }

    func reduceLosses(_ losses: [[Float]], weights: [[Double]]) throws -> [Float] {
        partialLosses(losses, weights: weights).map(Float.init)
    }

    /// Σ over workers of share · mean loss, per pending step, in Double.
    func partialLosses(_ losses: [[Float]], weights: [[Double]]) -> [Double] {
        weights.indices.map { s in
            zip(losses, weights[s]).reduce(0.0) { $0 + ($1.1 > 0 ? $1.1 * Double($1.0[s]) : 0) }
        }
    }

    func agreeToStop(_ request: Bool) throws -> Bool { request }
    func endEpoch() throws {}
}

/// Processes of an mpirun job, each with its local workers (`ReplicaExchange`): the flat gradient is summed across
/// processes with one `MPI_Allreduce` per step, reported losses are summed, a stop is agreed (any process's request
/// stops all at the same step) and once an epoch the processes check they still hold one model.
final class ProcessExchange: GradientExchange {
    let local: ReplicaExchange
    let group: ProcessGroup
    private var exchangeSeconds = 0.0

    /// Every process starts from process 0's weights.
    init(workers: [Worker], group: ProcessGroup) throws {
        local = ReplicaExchange(workers: workers, rank: group.rank, processes: group.size)
        self.group = group
        let primary = try workers[0].block
        var values = try primary.values.toArray()
        try group.broadcast(&values, from: 0)
        try primary.values.upload(values)
        try local.returnWeights()
    }

    var workers: [Worker] { local.workers }
    var seconds: Double { local.seconds + exchangeSeconds }
    func shares(of batch: Range<Int>) -> [Range<Int>] { local.shares(of: batch) }

    func sumGradients(_ weights: [Double]) throws {
        try local.sumGradients(weights)
        let started = DispatchTime.now().uptimeNanoseconds
        defer { exchangeSeconds += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }
        let grads = try workers[0].block.grads
        var values = try grads.toArray()
        try group.allreduceSum(&values)
        try grads.upload(values)
    }

    func returnWeights() throws { try local.returnWeights() }

    /// Each process holds its shares' part of every step's mean loss: the sum over processes is the mean.
    func reduceLosses(_ losses: [[Float]], weights: [[Double]]) throws -> [Float] {
        try group.allreduceSum(local.partialLosses(losses, weights: weights)).map(Float.init)
    }

    func agreeToStop(_ request: Bool) throws -> Bool { try group.allreduceSum([request ? 1 : 0])[0] > 0 }

    func endEpoch() throws {
        let values = try workers[0].block.values.toArray()
        let digest = values.enumerated().reduce(0.0) { $0 + Double($1.element) * Double($1.offset % 251 + 1) }
        let all = try group.allgather([digest])
        if let other = all.firstIndex(where: { $0[0] != all[0][0] }) {
            throw DeviceError.invalidArgument(op: "Trainer", "the weights of process \(other) differ from process 0's "
                + "(\(all[other][0]) against \(all[0][0])): the processes no longer train one model")
        }
    }
}

/// `range` split into `parts` contiguous shares whose sizes differ by at most one (the first ones larger).
func shares(of range: Range<Int>, parts: Int) -> [Range<Int>] {
    let (base, extra) = (range.count / parts, range.count % parts)
    var start = range.lowerBound
    return (0..<parts).map { r in
        let n = base + (r < extra ? 1 : 0)
        defer { start += n }
        return start..<(start + n)
    }
}
