extension Tensor {
    /// A dense copy of this tensor on `target`: cpu↔opencl and between OpenCL devices (through the host).
    /// Returns a copy even when `target` is this tensor's own device. Recorded on the tape: the gradient goes back
    /// to this tensor's device.
    public func to(_ target: DeviceTag) throws -> Tensor {
        let result = try Tensor.empty(shape, on: target)
        try Tensor.withoutGradients { try result.copy(from: self) }
        let home = device
        return result.recorded("to(\(target))", from: [self]) { g in [try g.to(home)] }
    }

    /// Overwrites this tensor with `source`'s values. The two may live on different devices; their element
    /// counts must agree.
    ///
    /// Between two OpenCL devices the copy goes through host memory but does not block the host: it is queued after
    /// everything already queued on `source`'s device, and work queued afterwards on this tensor's device runs after
    /// it, as for any op. A copy to or from `cpu` completes before it returns.
    ///
    /// Either may be a view: a source is read through its layout (a dense copy first when it is on another device),
    /// and a view as the target is written through its layout (`x[2..<4].copy(from: rows)`); then the shapes must
    /// agree, or `source` must broadcast to this shape. Not recorded on the tape (it modifies this tensor in place).
    public func copy(from source: Tensor) throws {
        if isDense, source.count == count, source.isDense || source.device != device {
            guard source.count == count else { throw DeviceError.shapeMismatch(op: "copy", source.shape, shape) }
            let dense = try Tensor.withoutGradients { try source.contiguous() }
            try dense.storage.copy(to: storage, count: count)
        } else {
            let local = source.device == device ? source : try Tensor.withoutGradients { try source.to(device) }
            // Same count, other shape ([6] into [2, 3]): the elements in row-major order, as for dense tensors.
            let broadcasts = local.layout.broadcast(to: shape) != nil
            let from = broadcasts || local.count != count ? local : try Tensor.withoutGradients {
                try local.reshaped(shape)
            }
            try Tensor.unaryKernel(PointwiseTable.copy, from, into: self)
        }
        version.bump()
    }

    /// Overwrites elements offset..<offset + values.count (row-major) with host values; with the default offset and
    /// as many values as elements, the whole tensor. For filling a large tensor in chunks without a full host copy.
    /// Dense operands only: a view is an error naming the op (pass its `contiguous()` copy).
    public func upload(_ values: UnsafeBufferPointer<Float>, at offset: Int = 0) throws {
        guard offset >= 0, offset <= count, values.count <= count - offset else {
            throw DeviceError.invalidArgument(op: "upload", "\(values.count) values from element \(offset) "
                + "exceed the tensor's \(count)")
        }
        guard isDense else { throw Tensor.needsDense("upload", shape) }
        guard let base = values.baseAddress else { return }
        try storage.upload(base, count: values.count, at: offset)
        version.bump()
    }

    /// Overwrites this tensor with `values` (exactly `count` of them).
    /// Dense operands only: a view is an error naming the op (pass its `contiguous()` copy).
    public func upload(_ values: [Float]) throws {
        guard values.count == count else { throw DeviceError.shapeMismatch(op: "upload", [values.count], shape) }
        try values.withUnsafeBufferPointer { try upload($0) }
    }

    /// The values in row-major order, read back to the host (waits for queued work on the device; a view is made
    /// contiguous on its device first).
    public func toArray() throws -> [Float] {
        let dense = try Tensor.withoutGradients { try contiguous() }
        var out = [Float](repeating: 0, count: count)
        try out.withUnsafeMutableBufferPointer { dst in
            guard let base = dst.baseAddress else { return }
            try dense.storage.download(into: base, count: count)
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
