// Shape checks shared by the ops, and the launch helper of the memory-bound kernels.

func requireShape(_ op: String, _ t: Tensor, _ expected: [Int]) throws {
    guard t.shape == expected else { throw DeviceError.shapeMismatch(op: op, t.shape, expected) }
}

func matrixDims(_ op: String, _ t: Tensor) throws -> (rows: Int, cols: Int) {
    guard t.shape.count == 2 else { throw DeviceError.invalidArgument(op: op, "expects a matrix, got shape \(t.shape)") }
    return (t.shape[0], t.shape[1])
}

/// `out` when given (checked to have `shape`), else a new tensor of `shape` on `device`.
func output(_ op: String, _ out: Tensor?, _ shape: [Int], on device: DeviceTag) throws -> Tensor {
    guard let out else { return try Tensor.empty(shape, on: device) }
    try requireShape(op + " (output)", out, shape)
    return out
}

extension OpenCLDevice {
    /// Launches kernel `name` of file `file`; its profiler cost is the bytes of its buffer arguments.
    func run(_ file: String, _ name: String, _ args: [KernelArg], global: [Int], options: String = "") throws {
        var bytes = 0.0
        for case .buffer(let buffer) in args { bytes += Double(buffer.count * 4) }
        try launch(try kernel(file, name, options: options), args, global: global, cost: (0, bytes))
    }
}
