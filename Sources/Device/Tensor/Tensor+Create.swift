extension Tensor {
    /// A tensor holding `values` (row-major) with `shape`, on `device`.
    public convenience init(_ values: [Float], shape: [Int], on device: DeviceTag = .cpu) throws {
        let count = try Tensor.checkedCount(shape)
        guard values.count == count else {
            throw DeviceError.shapeMismatch(op: "Tensor(values:shape:)", [values.count], shape)
        }
        let made = try Tensor.empty(shape, on: device)
        self.init(shape: shape, device: device, storage: made.storage)
        try upload(values)
    }

    /// A tensor of zeros.
    public static func zeros(_ shape: [Int], on device: DeviceTag = .cpu) throws -> Tensor {
        try full(shape, value: 0, on: device)
    }

    /// A tensor of ones.
    public static func ones(_ shape: [Int], on device: DeviceTag = .cpu) throws -> Tensor {
        try full(shape, value: 1, on: device)
    }

    /// A tensor with every element `value`.
    public static func full(_ shape: [Int], value: Float, on device: DeviceTag = .cpu) throws -> Tensor {
        let t = try Tensor.empty(shape, on: device)
        try t.fill(value)
        return t
    }

    /// 0, 1, …, n − 1 as floats: shape [n].
    public static func arange(_ n: Int, on device: DeviceTag = .cpu) throws -> Tensor {
        guard n >= 0 else { throw DeviceError.invalidArgument(op: "arange", "a negative length \(n)") }
        return try Tensor((0..<checkedCount([n])).map(Float.init), shape: [n], on: device)
    }

    /// A tensor of uniform random values in [0, 1), drawn on the host from `seed`, so the same seed gives the same
    /// values on every device.
    public static func rand(_ shape: [Int], seed: UInt64, on device: DeviceTag = .cpu) throws -> Tensor {
        var rng = SeededGenerator(seed: seed)
        let count = try checkedCount(shape)
        return try Tensor((0..<count).map { _ in Float(rng.nextUniform()) }, shape: shape, on: device)
    }

    /// A tensor of normal random values with mean 0 and standard deviation `std`, drawn on the host from `seed`,
    /// so the same seed gives the same values on every device.
    public static func randn(_ shape: [Int], seed: UInt64, std: Float = 1,
                             on device: DeviceTag = .cpu) throws -> Tensor {
        var rng = SeededGenerator(seed: seed)
        let count = try checkedCount(shape)
        let values = (0..<count).map { _ in Float(rng.nextNormal()) * std }
        return try Tensor(values, shape: shape, on: device)
    }
}
