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
    public func copy(from source: Tensor) throws {
        guard source.count == count else { throw DeviceError.shapeMismatch(op: "copy", source.shape, shape) }
        switch (source.storage, storage) {
        case let (.cpu(from), .cpu(to)):
            to.pointer.update(from: from.pointer, count: count)
        case let (.cpu(from), .opencl(to)):
            try to.device.write(to, from: from.pointer, count: count)
        case let (.opencl(from), .cpu(to)):
            try from.device.read(from, into: to.pointer, count: count)
        case let (.opencl(from), .opencl(to)) where from.device === to.device:
            try from.device.copy(from, to: to, count: count)
        case let (.opencl(from), .opencl(to)):
            let staging = HostBuffer(count: count)
            try from.device.read(from, into: staging.pointer, count: count)
            try to.device.write(to, from: staging.pointer, count: count)
        }
    }

    /// Overwrites this tensor with host values (row-major); `values.count` must equal `count`.
    public func upload(_ values: UnsafeBufferPointer<Float>) throws {
        guard values.count == count else { throw DeviceError.shapeMismatch(op: "upload", [values.count], shape) }
        guard let base = values.baseAddress, count > 0 else { return }
        switch storage {
        case .cpu(let buffer): buffer.pointer.update(from: base, count: count)
        case .opencl(let buffer): try buffer.device.write(buffer, from: base, count: count)
        }
    }

    /// Overwrites elements offset..<offset + values.count (row-major) with host values: for filling a large tensor
    /// in chunks without a full host copy.
    public func upload(_ values: UnsafeBufferPointer<Float>, at offset: Int) throws {
        guard offset >= 0, offset + values.count <= count else {
            throw DeviceError.invalidArgument(op: "upload", "elements \(offset)..<\(offset + values.count) exceed \(count)")
        }
        guard let base = values.baseAddress, !values.isEmpty else { return }
        switch storage {
        case .cpu(let buffer): (buffer.pointer + offset).update(from: base, count: values.count)
        case .opencl(let buffer): try buffer.device.write(buffer, from: base, count: values.count, at: offset)
        }
    }

    /// Overwrites this tensor with `values`.
    public func upload(_ values: [Float]) throws {
        try values.withUnsafeBufferPointer { try upload($0) }
    }

    /// The values, read back to the host (waits for queued work on the device).
    public func toArray() throws -> [Float] {
        var out = [Float](repeating: 0, count: count)
        try out.withUnsafeMutableBufferPointer { dst in
            guard let base = dst.baseAddress, count > 0 else { return }
            switch storage {
            case .cpu(let buffer): base.update(from: buffer.pointer, count: count)
            case .opencl(let buffer): try buffer.device.read(buffer, into: base, count: count)
            }
        }
        return out
    }

    /// The single value of a one-element tensor.
    public func item() throws -> Float {
        guard count == 1 else { throw DeviceError.invalidArgument(op: "item", "tensor of shape \(shape) is not a scalar") }
        return try toArray()[0]
    }
}
