// Views: new layouts over the same storage (no copy), each with its backward rule.

extension Tensor {
    /// The same elements in `shape` (one entry may be -1: inferred). A view when this tensor is contiguous, else a
    /// reshaped contiguous copy. `[2, 6].reshaped([3, -1])` → [3, 4].
    /// - Throws: `DeviceError.invalidArgument` when the element counts differ or more than one size is -1.
    public func reshaped(_ shape: [Int]) throws -> Tensor {
        let target = try inferredShape(shape)
        let base = layout.isContiguous ? self : try contiguous()
        let view = Tensor(view: Layout(shape: target, strides: Layout.rowMajorStrides(target), offset: base.offset),
                          of: base)
        let inputShape = self.shape
        return view.recorded("reshaped", from: [self]) { g in [try g.reshaped(inputShape)] }
    }

    private func inferredShape(_ shape: [Int]) throws -> [Int] {
        let unknown = shape.indices.filter { shape[$0] == -1 }
        guard unknown.count <= 1, shape.allSatisfy({ $0 >= -1 }) else {
            throw DeviceError.invalidArgument(op: "reshaped", "shape \(shape) may have one -1 and no other negative "
                + "size")
        }
        // (Checked: sizes from a caller may overflow; more than a tensor can hold is refused below anyway.)
        let known = try shape.filter { $0 != -1 }.reduce(1) { product, d in
            let (value, overflow) = product.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw DeviceError.invalidArgument(op: "reshaped", "shape \(shape) has too many elements")
            }
            return value
        }
        var target = shape
        if let k = unknown.first {
            guard known > 0, count % known == 0 else {
                throw DeviceError.invalidArgument(op: "reshaped", "cannot infer the -1 of \(shape) for \(count) "
                    + "elements (shape \(self.shape))")
            }
            target[k] = count / known
        }
        guard (try Tensor.checkedCount(target)) == count else {
            throw DeviceError.invalidArgument(op: "reshaped", "shape \(shape) has \(target.reduce(1, *)) elements, "
                + "the tensor of shape \(self.shape) has \(count)")
        }
        return target
    }

    /// The axes in the order `axes` names them (a permutation of 0..<rank; negative counts from the end), as a
    /// view. `[2, 3, 4].permuted([2, 0, 1])` → [4, 2, 3].
    public func permuted(_ axes: [Int]) throws -> Tensor {
        let resolved = try axes.map { try axis($0, "permuted") }
        guard resolved.count == shape.count, Set(resolved).count == shape.count else {
            throw DeviceError.invalidArgument(op: "permuted", "\(axes) is not a permutation of the \(shape.count) "
                + "axes of shape \(shape)")
        }
        let view = Tensor(view: Layout(shape: resolved.map { shape[$0] }, strides: resolved.map { strides[$0] },
                                       offset: offset), of: self)
        var inverse = [Int](repeating: 0, count: resolved.count)
        for (k, a) in resolved.enumerated() { inverse[a] = k }
        return view.recorded("permuted", from: [self]) { g in [try g.permuted(inverse)] }
    }

    /// The last two axes swapped, as a view: [.., m, n] → [.., n, m]. A tensor of fewer than two axes is returned
    /// as it is.
    public func transposed() throws -> Tensor {
        guard shape.count >= 2 else { return self }
        var axes = Array(shape.indices)
        axes.swapAt(axes.count - 1, axes.count - 2)
        return try permuted(axes)
    }

    /// A size-1 axis inserted at `axis` (0...rank; negative counts from the end), as a view: `[3].unsqueezed(axis: 0)`
    /// → [1, 3], `unsqueezed(axis: -1)` → [3, 1].
    public func unsqueezed(axis: Int) throws -> Tensor {
        let k = axis < 0 ? axis + shape.count + 1 : axis
        guard (0...shape.count).contains(k) else {
            throw DeviceError.invalidArgument(op: "unsqueezed", "axis \(axis) is out of range for shape \(shape) "
                + "(-\(shape.count + 1)...\(shape.count))")
        }
        var (s, t) = (shape, strides)
        s.insert(1, at: k)
        t.insert(k < strides.count ? strides[k] * shape[k] : 1, at: k)
        return try reshapedView(Layout(shape: s, strides: t, offset: offset), "unsqueezed")
    }

    /// Axis `axis` removed (it must have size 1), or every size-1 axis when `axis` is nil, as a view. A 0-d tensor
    /// takes axis 0 or −1 and stays 0-d (PyTorch's).
    public func squeezed(axis: Int? = nil) throws -> Tensor {
        var keep = Array(shape.indices)
        if shape.isEmpty {
            _ = try scalarAxis(axis, "squeezed")  // (axis 0 or −1 of a 0-d tensor: it stays 0-d)
        } else if let axis {
            let k = try self.axis(axis, "squeezed")
            guard shape[k] == 1 else {
                throw DeviceError.invalidArgument(op: "squeezed", "axis \(axis) of shape \(shape) has size "
                    + "\(shape[k]), not 1")
            }
            keep.remove(at: k)
        } else {
            keep = keep.filter { shape[$0] != 1 }
        }
        return try reshapedView(Layout(shape: keep.map { shape[$0] }, strides: keep.map { strides[$0] },
                                       offset: offset), "squeezed")
    }

    /// A view with another arrangement of the same elements in the same order (size-1 axes added or removed).
    private func reshapedView(_ view: Layout, _ op: String) throws -> Tensor {
        let inputShape = shape
        return Tensor(view: view, of: self).recorded(op, from: [self]) { g in [try g.reshaped(inputShape)] }
    }

    /// This tensor broadcast to `shape` (numpy's rules: size-1 and missing leading axes repeat), as a view with
    /// stride 0 along the repeated axes. Its gradient is summed back over them. As in PyTorch, -1 keeps an existing
    /// axis's size (`[1, 3]` to `[4, -1]` is `[4, 3]`).
    /// - Throws: `DeviceError.invalidArgument` naming the axis that cannot broadcast, a negative size, or a shape of
    ///   too many elements.
    public func expanded(to requested: [Int]) throws -> Tensor {
        let lead = requested.count - self.shape.count
        var shape = requested
        for (k, size) in requested.enumerated() where size < 0 {
            guard size == -1, k >= lead, lead >= 0 else {
                throw DeviceError.invalidArgument(op: "expanded(to:)", "size \(size) at axis \(k) of \(requested): "
                    + (size == -1 ? "-1 keeps an axis of \(self.shape), and a new leading axis has none" : "negative"))
            }
            shape[k] = self.shape[k - lead]
        }
        _ = try Tensor.checkedCount(shape)
        guard let view = layout.broadcast(to: shape) else {
            let result = try Tensor.broadcastShape("expanded(to:)", self.shape, shape)
            throw DeviceError.invalidArgument(op: "expanded(to:)", "shape \(self.shape) broadcasts with \(shape) to "
                + "\(result), not to \(shape)")
        }
        let inputShape = self.shape
        return Tensor(view: view, of: self).recorded("expanded", from: [self]) { g in [try g.sum(to: inputShape)] }
    }

    /// Rows `range` of the first axis, as a view on the same storage (no copy). `x[2..<5]` of [10, 3] → [3, 3].
    /// - Throws: `DeviceError.invalidArgument` for a tensor without axes or a range outside the first axis.
    public subscript(_ range: Range<Int>) -> Tensor {
        get throws {
            guard let rows = shape.first else {
                throw DeviceError.invalidArgument(op: "subscript", "a tensor of shape [] has no rows to slice")
            }
            guard range.lowerBound >= 0, range.upperBound <= rows else {
                throw DeviceError.invalidArgument(op: "subscript", "rows \(range) are outside 0..<\(rows) "
                    + "(shape \(shape))")
            }
            var view = layout
            view.shape[0] = range.count
            view.offset += range.isEmpty ? 0 : range.lowerBound * strides[0]
            let inputShape = shape
            return Tensor(view: view, of: self).recorded("subscript", from: [self]) { g in
                let full = try Tensor.zeros(inputShape, on: g.device)
                try full[range].copy(from: g)
                return [full]
            }
        }
    }

    /// This tensor when it is dense (row-major from its storage's start), else a dense copy of it on its device.
    /// The fixed-function ops (matmul, the fused layers, losses) read views through it.
    public func contiguous() throws -> Tensor {
        if isDense { return self }
        let out = try Tensor.empty(shape, on: device)
        try Tensor.unaryKernel(PointwiseTable.copy, self, into: out)
        return out.recorded("contiguous", from: [self]) { g in [g] }
    }

    /// A dense copy with its own storage (even when this tensor is dense), recorded like any op.
    public func cloned() throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        try Tensor.unaryKernel(PointwiseTable.copy, self, into: out)
        return out.recorded("cloned", from: [self]) { g in [g] }
    }

    /// `axis` (negative counts from the end) checked against this tensor's rank.
    func axis(_ axis: Int, _ op: String) throws -> Int {
        let k = axis < 0 ? axis + shape.count : axis
        guard shape.indices.contains(k) else {
            throw DeviceError.invalidArgument(op: op, "axis \(axis) is out of range for shape \(shape)")
        }
        return k
    }
}
