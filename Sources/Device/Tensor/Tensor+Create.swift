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
        var next = 0
        return try generated([n], on: device) { next += 1; return Float(next - 1) }
    }

    /// A tensor of uniform random values in [0, 1), drawn on the host from `seed`, so the same seed gives the same
    /// values on every device.
    public static func rand(_ shape: [Int], seed: UInt64, on device: DeviceTag = .cpu) throws -> Tensor {
        var rng = SeededGenerator(seed: seed)
        return try generated(shape, on: device) { Float(rng.nextUniform()) }
    }

    /// A tensor of normal random values with mean 0 and standard deviation `std`, drawn on the host from `seed`,
    /// so the same seed gives the same values on every device.
    public static func randn(_ shape: [Int], seed: UInt64, std: Float = 1,
                             on device: DeviceTag = .cpu) throws -> Tensor {
        var rng = SeededGenerator(seed: seed)
        return try generated(shape, on: device) { Float(rng.nextNormal()) * std }
    }

    /// A tensor of `shape` whose elements `next` makes in row-major order on the host. The tensor is allocated
    /// first (a size the device cannot hold fails at once, not after the values are made) and filled a chunk at a
    /// time, so no host copy of the whole tensor is made.
    private static func generated(_ shape: [Int], on device: DeviceTag, _ next: () -> Float) throws -> Tensor {
        let count = try checkedCount(shape)
        let t = try Tensor.empty(shape, on: device)
        // 4M values (16 MB) a chunk: a batch's dropout mask is one write, and a large tensor's host copy bounded.
        var chunk = [Float](repeating: 0, count: Swift.min(count, 1 << 22))
        var start = 0
        while start < count {
            let n = Swift.min(chunk.count, count - start)
            for i in 0..<n { chunk[i] = next() }
            try chunk.withUnsafeBufferPointer { try t.upload(UnsafeBufferPointer(rebasing: $0[0..<n]), at: start) }
            start += n
        }
        return t
    }
}
