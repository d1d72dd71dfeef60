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
        let t = try Tensor.empty(shape, on: device)
        try t.fill(0)
        return t
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
