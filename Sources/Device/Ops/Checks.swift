// Shape checks shared by the ops, and the launch helper of the memory-bound kernels.

func requireShape(_ op: String, _ t: Tensor, _ expected: [Int]) throws {
    guard t.shape == expected else { throw DeviceError.shapeMismatch(op: op, t.shape, expected) }
}

func matrixDims(_ op: String, _ t: Tensor) throws -> (rows: Int, cols: Int) {
    guard t.shape.count == 2 else {
        throw DeviceError.invalidArgument(op: op, "expects a matrix, got shape \(t.shape)")
    }
    return (t.shape[0], t.shape[1])
}

/// `out` when given (checked to be on `device`, to have `shape` and to be dense; its version bumped, as it is about
/// to change), else a new tensor of `shape` on `device`. `reading`: the op's inputs that `out` must not share memory
/// with (an op that reads one element to write another — a product, a loss — would read what it already overwrote;
/// elementwise ops, which may write in place, pass none).
func output(_ op: String, _ out: Tensor?, _ shape: [Int], on device: DeviceTag, reading inputs: [Tensor?] = [])
    throws -> Tensor {
    guard let out else { return try Tensor.empty(shape, on: device) }
    guard out.device == device else { throw DeviceError.deviceMismatch(op: op + " (output)", device, out.device) }
    try requireShape(op + " (output)", out, shape)
    guard out.isDense else { throw Tensor.needsDense(op, out.shape) }
    if let input = inputs.compactMap({ $0 }).first(where: { $0.sharesStorage(with: out) }) {
        throw DeviceError.invalidArgument(op: op, "the output (shape \(out.shape)) shares memory with an input (shape "
            + "\(input.shape)): this op cannot write over what it reads; pass an output of its own")
    }
    out.version.bump()
    return out
}

extension OpenCLDevice {
    /// Launches the kernel `source` names over `global` work-items, its arguments set by `arguments`.
    func run(_ source: KernelSource, global: WorkSize, _ arguments: (inout KernelArguments) throws -> Void) throws {
        try launch(try kernel(source), global: global, arguments)
    }
}
