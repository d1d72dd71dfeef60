/// Tensors that a module (or the trainer) reuses from step to step, one per `Slot` case, reallocated only when the
/// shape or the device changes, so a training step allocates nothing. Slots are found by index (no hashing).
///
/// A module's workspace hands out fresh tensors unless `reuse` is on (`Module.setBufferReuse`): a result then
/// stays valid only until the same module's next call.
final class Workspace<Slot: RawRepresentable & CaseIterable> where Slot.RawValue == Int {
    private var slots: [Tensor?] = Array(repeating: nil, count: Slot.allCases.count)
    /// Whether `tensor` reuses its slots (else every call allocates, and the slots are dropped).
    var reuse: Bool {
        didSet { if !reuse { slots = Array(repeating: nil, count: Slot.allCases.count) } }
    }

    init(reuse: Bool = true) { self.reuse = reuse }

    func tensor(_ slot: Slot, _ shape: [Int], on device: DeviceTag) throws -> Tensor {
        guard reuse else { return try Tensor.empty(shape, on: device) }
        if let t = slots[slot.rawValue], t.shape == shape, t.device == device { return t }
        let t = try Tensor.empty(shape, on: device)
        slots[slot.rawValue] = t
        return t
    }
}
