/// Tensors that a module (or the trainer) reuses from step to step, one per `Slot` case, reallocated only when the
/// shape or the device changes, so a training step allocates nothing. Slots are found by index (no hashing).
///
/// NOTE: a forward's result lives in such a buffer: it stays valid until the same module's next forward.
final class Workspace<Slot: RawRepresentable & CaseIterable> where Slot.RawValue == Int {
    private var slots: [Tensor?] = Array(repeating: nil, count: Slot.allCases.count)

    func tensor(_ slot: Slot, _ shape: [Int], on device: DeviceTag) throws -> Tensor {
        if let t = slots[slot.rawValue], t.shape == shape, t.device == device { return t }
        let t = try Tensor.empty(shape, on: device)
        slots[slot.rawValue] = t
        return t
    }
}
