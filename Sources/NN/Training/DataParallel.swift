/// One of a data-parallel run's extra copies of the model: on its own device, with flat value and gradient buffers
/// (so the gradient exchange is one copy per replica per step), and the loss buffers of its share of each batch.
final class Replica {
    let model: Sequential
    let device: DeviceTag
    let arena: ParameterArena
    enum Buffer: Int, CaseIterable { case stepLosses, grad }
    let workspace = Workspace<Buffer>()
    /// The datasets copied to this device, by the primary's dataset.
    private var copies: [ObjectIdentifier: DeviceDataset] = [:]

    /// A copy of `model` (known modules only) on `device`, with the same weights.
    init(of model: Sequential, on device: DeviceTag, alignment: Int) throws {
        guard let specs = model.layerSpecs else {
            let custom = model.layers.first { $0.layerSpecs == nil }.map { "\(type(of: $0))" } ?? "a module"
            throw DeviceError.invalidArgument(op: "Trainer", "data parallelism copies the model to each device, and it "
                + "holds \(custom), which cannot be copied (Linear and ActivationLayer can)")
        }
        let copy = try LayerSpec.modules(specs, seed: 0, on: device)
        for (mine, theirs) in zip(copy.parameters, model.parameters) { try mine.load(theirs.value) }
        guard let arena = try ParameterArena(copy.parameters, stateSlots: 0, alignment: alignment) else {
            preconditionFailure("a model made on one device has its parameters on it")
        }
        (self.model, self.device, self.arena) = (copy, device, arena)
    }

    /// `data` (on the primary device) as a dataset on this replica's device, copied once.
    func dataset(_ data: DeviceDataset) throws -> DeviceDataset {
        if data.images.device == device { return data }
        if let copy = copies[ObjectIdentifier(data)] { return copy }
        let copy = try DeviceDataset(copying: data, to: device)
        copies[ObjectIdentifier(data)] = copy
        return copy
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
