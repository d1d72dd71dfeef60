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

/// `out` when given (checked to have `shape` and to be dense; its version bumped, as it is about to change), else a
/// new tensor of `shape` on `device`.
func output(_ op: String, _ out: Tensor?, _ shape: [Int], on device: DeviceTag) throws -> Tensor {
    guard let out else { return try Tensor.empty(shape, on: device) }
    try requireShape(op + " (output)", out, shape)
    guard out.isDense else { throw Tensor.needsDense(op, out.shape) }
    out.version.bump()
    return out
}

extension OpenCLDevice {
    /// Launches the kernel `source` names over `global` work-items, its arguments set by `arguments`.
    func run(_ source: KernelSource, global: WorkSize, _ arguments: (inout KernelArguments) throws -> Void) throws {
        try launch(try kernel(source), global: global, arguments)
    }
}
