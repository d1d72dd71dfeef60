/// Tensors that a module (or the trainer) reuses from step to step, reallocated only when the shape or the device
/// changes, so a training step allocates nothing.
///
/// NOTE: a forward's result lives in such a buffer: it stays valid until the same module's next forward.
final class Workspace {
    private var slots: [String: Tensor] = [:]

    func tensor(_ slot: String, _ shape: [Int], on device: DeviceTag) throws -> Tensor {
        if let t = slots[slot], t.shape == shape, t.device == device { return t }
        let t = try Tensor.empty(shape, on: device)
        slots[slot] = t
        return t
    }
}
