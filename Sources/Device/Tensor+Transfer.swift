extension Tensor {
    /// A copy of this tensor on `target`: cpu↔opencl and between OpenCL devices (through the host).
    /// Returns a copy even when `target` is this tensor's own device.
    public func to(_ target: DeviceTag) throws -> Tensor {
        let result = try Tensor.empty(shape, on: target)
        try result.copy(from: self)
        return result
    }

    /// Overwrites this tensor with `source`'s values. The two may live on different devices; their element
    /// counts must agree.
    ///
    /// Between two OpenCL devices the copy goes through host memory but does not block the host: it is queued after
    /// everything already queued on `source`'s device, and work queued afterwards on this tensor's device runs after
    /// it, as for any op. A copy to or from `cpu` completes before it returns.
    public func copy(from source: Tensor) throws {
        guard source.count == count else { throw DeviceError.shapeMismatch(op: "copy", source.shape, shape) }
        try source.storage.copy(to: storage, count: count)
    }

    /// Overwrites elements offset..<offset + values.count (row-major) with host values; with the default offset and
    /// as many values as elements, the whole tensor. For filling a large tensor in chunks without a full host copy.
    public func upload(_ values: UnsafeBufferPointer<Float>, at offset: Int = 0) throws {
        guard offset >= 0, offset + values.count <= count else {
            throw DeviceError.invalidArgument(op: "upload", "elements \(offset)..<\(offset + values.count) "
                + "exceed \(count)")
        }
        guard let base = values.baseAddress else { return }
        try storage.upload(base, count: values.count, at: offset)
    }

    /// Overwrites this tensor with `values` (exactly `count` of them).
    public func upload(_ values: [Float]) throws {
        guard values.count == count else { throw DeviceError.shapeMismatch(op: "upload", [values.count], shape) }
        try values.withUnsafeBufferPointer { try upload($0) }
    }

    /// The values, read back to the host (waits for queued work on the device).
    public func toArray() throws -> [Float] {
        var out = [Float](repeating: 0, count: count)
        try out.withUnsafeMutableBufferPointer { dst in
            guard let base = dst.baseAddress else { return }
            try storage.download(into: base, count: count)
        }
        return out
    }

    /// The single value of a one-element tensor.
    public func item() throws -> Float {
        guard count == 1 else {
            throw DeviceError.invalidArgument(op: "item", "tensor of shape \(shape) is not a scalar")
        }
        return try toArray()[0]
    }
}
