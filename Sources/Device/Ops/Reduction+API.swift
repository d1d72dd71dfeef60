// The public reductions (PyTorch's semantics and defaults), each recorded on the tape with its backward rule; the
// composite ones (variance, std, logSumExp, softmax, logSoftmax) are written with tensor ops and differentiate
// through them. `axis: nil` reduces every axis; `keepDims` keeps the reduced axes with size 1.

extension Tensor {
    /// f along `axis` (or every axis), recorded with `rule` (the result's gradient, already shaped with the reduced
    /// axes kept as size 1 → the input's gradient).
    private func reduced(_ op: String, _ f: ReductionFunction, axis: Int?, keepDims: Bool, mean: Bool = false,
                         rule: @escaping (_ g: Tensor, _ x: Tensor, _ y: Tensor) throws -> Tensor) throws -> Tensor {
        let axis = try scalarAxis(axis, op)
        let (k, source) = try reductionAxis(axis, op)
        let n = source.shape[k]
        let raw = try source.reductionKernel(f, axis: k, scale: mean ? 1 / Float(n) : 1)
        let kept = keptShape(axis)
        let out = Tensor(view: Layout(contiguous: keepDims ? kept : reducedShape(axis)), of: raw)
        let (x, y) = (detached(), Tensor(view: Layout(contiguous: kept), of: raw))
        return out.recorded(op, from: [self], saving: [x, y]) { g in
            [try rule(try g.reshaped(kept), x, y)]
        }
    }

    /// `axis` as the reduction reads it: on a 0-d tensor, axis 0 or −1 names its one element (PyTorch's rule: a
    /// scalar reads as if it had one axis of size 1), which is reducing every axis (nil); any other axis is out of
    /// range. On other tensors, `axis` as given (checked where it is used).
    func scalarAxis(_ axis: Int?, _ op: String) throws -> Int? {
        guard shape.isEmpty, let axis else { return axis }
        guard axis == 0 || axis == -1 else {
            throw DeviceError.invalidArgument(op: op, "axis \(axis) is out of range for a 0-d tensor (0 or -1)")
        }
        return nil
    }

    /// The axis to reduce and the tensor to reduce it in: every axis is axis 0 of a flat contiguous view.
    private func reductionAxis(_ axis: Int?, _ op: String) throws -> (Int, Tensor) {
        if let axis { return (try self.axis(axis, op), self) }
        let flat = layout.isContiguous ? self : try Tensor.withoutGradients { try contiguous() }
        return (0, Tensor(view: Layout(shape: [count], strides: [1], offset: flat.offset), of: flat))
    }

    /// What a reduction over `axis` (every axis when nil) reads, in the caller's terms: "axis 1 of shape [3, 0]", or
    /// "the tensor of shape [3, 0]".
    private func emptyOperand(_ axis: Int?) -> String {
        axis.map { "axis \($0) of shape \(shape)" } ?? "the tensor of shape \(shape)"
    }

    /// The shape with the reduced axes as size 1.
    private func keptShape(_ axis: Int?) -> [Int] {
        guard let axis else { return shape.map { _ in 1 } }
        var s = shape
        s[axis < 0 ? axis + shape.count : axis] = 1
        return s
    }

    /// The shape with the reduced axes removed.
    private func reducedShape(_ axis: Int?) -> [Int] {
        guard let axis else { return [] }
        var s = shape
        s.remove(at: axis < 0 ? axis + shape.count : axis)
        return s
    }

    /// The sum along `axis` (every axis when nil): [2, 3].sum(axis: 0) → [3]; `sum()` → []. Blocked or pairwise in
    /// fp32 on OpenCL, Double on cpu.
    public func sum(axis: Int? = nil, keepDims: Bool = false) throws -> Tensor {
        let shape = self.shape
        return try reduced("sum", ReductionTable.sum, axis: axis, keepDims: keepDims) { g, _, _ in
            try g.expanded(to: shape)
        }
    }

    /// The mean along `axis` (every axis when nil); NaN over an empty axis.
    public func mean(axis: Int? = nil, keepDims: Bool = false) throws -> Tensor {
        let shape = self.shape
        return try reduced("mean", ReductionTable.sum, axis: axis, keepDims: keepDims, mean: true) { g, x, _ in
            try (g * (1 / Float(x.count / Swift.max(g.count, 1)))).expanded(to: shape)
        }
    }

    /// The largest element along `axis` (every axis when nil); NaN if any is NaN. Its gradient is shared evenly
    /// among the elements equal to the maximum (PyTorch's `amax`).
    /// - Throws: `DeviceError.invalidArgument` when the axis is empty.
    public func max(axis: Int? = nil, keepDims: Bool = false) throws -> Tensor {
        try extremum("max", ReductionTable.max, axis: axis, keepDims: keepDims)
    }

    /// The smallest element along `axis` (every axis when nil), as `max`.
    public func min(axis: Int? = nil, keepDims: Bool = false) throws -> Tensor {
        try extremum("min", ReductionTable.min, axis: axis, keepDims: keepDims)
    }

    private func extremum(_ op: String, _ f: ReductionFunction, axis: Int?, keepDims: Bool) throws -> Tensor {
        let axis = try scalarAxis(axis, op)
        let (k, source) = try reductionAxis(axis, op)
        guard source.shape[k] > 0 else {
            throw DeviceError.invalidArgument(op: op, "\(emptyOperand(axis)) is empty: no \(op)imum")
        }
        return try reduced(op, f, axis: axis, keepDims: keepDims) { g, x, y in
            let hits = try x .== y
            return try Tensor.where(hits, g / hits.sum(axis: axis, keepDims: true).reshaped(g.shape), 0 * g)
        }
    }

    /// The index along `axis` of the largest element (the first on ties; NaN counts as largest), as floats, the axis
    /// removed; with `axis` nil, the index into the flattened tensor, shape []. No gradient. An axis (or, with nil,
    /// a tensor) of more than 2^24 elements is an error: its indices would not all be exact as floats.
    public func argmax(axis: Int? = nil) throws -> Tensor {
        let axis = try scalarAxis(axis, "argmax")
        let (k, source) = try reductionAxis(axis, "argmax")
        guard source.shape[k] > 0 else {
            throw DeviceError.invalidArgument(op: "argmax", "\(emptyOperand(axis)) is empty: no largest element")
        }
        let raw = try source.argmaxKernel(axis: k)
        return axis == nil ? try raw.reshaped([]) : raw
    }

    /// The variance along `axis` (every axis when nil) with Bessel's `correction` (PyTorch's default 1: divides by
    /// n − 1), computed as the mean of squared deviations from the mean (two passes).
    public func variance(axis: Int? = nil, keepDims: Bool = false, correction: Int = 1) throws -> Tensor {
        let axis = try scalarAxis(axis, "variance")
        let n = try axis.map { shape[try self.axis($0, "variance")] } ?? count
        let deviation = try self - mean(axis: axis, keepDims: true)
        // (In Double: a correction from the caller may be any Int, where n − correction would overflow.)
        let divisor = Swift.max(Double(n) - Double(correction), 0)
        return try (deviation * deviation).sum(axis: axis, keepDims: keepDims) / Float(divisor)
    }

    /// The standard deviation along `axis` (every axis when nil), √variance with the same `correction`.
    public func std(axis: Int? = nil, keepDims: Bool = false, correction: Int = 1) throws -> Tensor {
        try variance(axis: axis, keepDims: keepDims, correction: correction).sqrt()
    }

    /// log Σ exp(x) along `axis` (every axis when nil), shifted by the maximum so that it neither overflows nor
    /// underflows. Over an empty axis, −inf (the log of an empty sum, as PyTorch).
    public func logSumExp(axis: Int? = nil, keepDims: Bool = false) throws -> Tensor {
        let axis = try scalarAxis(axis, "logSumExp")
        guard try !reducesEmpty(axis, "logSumExp") else {
            return try overEmptyAxis("logSumExp", Tensor.full(keepDims ? keptShape(axis) : reducedShape(axis),
                                                              value: -.infinity, on: device))
        }
        let (shifted, shift) = try shiftedByMax(axis: axis)
        let result = try shifted.exp().sum(axis: axis, keepDims: true).log() + shift
        return keepDims ? result : try result.reshaped(reducedShape(axis))
    }

    /// exp(x) / Σ exp(x) along `axis` (the last by default), with the maximum subtracted first (as PyTorch).
    public func softmax(axis: Int = -1) throws -> Tensor {
        let axis = try scalarAxis(axis, "softmax")
        guard try !reducesEmpty(axis, "softmax") else { return try overEmptyAxis("softmax", .empty(shape, on: device)) }
        let e = try shiftedByMax(axis: axis, keepingInfinite: true).shifted.exp()
        return try e / e.sum(axis: axis, keepDims: true)
    }

    /// x − logSumExp(x) along `axis` (the last by default), as (x − max) − log Σ exp(x − max).
    public func logSoftmax(axis: Int = -1) throws -> Tensor {
        let axis = try scalarAxis(axis, "logSoftmax")
        guard try !reducesEmpty(axis, "logSoftmax") else {
            return try overEmptyAxis("logSoftmax", .empty(shape, on: device))
        }
        let shifted = try shiftedByMax(axis: axis, keepingInfinite: true).shifted
        return try shifted - shifted.exp().sum(axis: axis, keepDims: true).log()
    }

    /// `result` of `op` over an empty axis — this tensor has no element — on the tape as PyTorch's: its input's
    /// gradient is empty too.
    private func overEmptyAxis(_ op: String, _ result: Tensor) -> Tensor {
        let (inputShape, device) = (shape, device)
        return result.recorded(op, from: [self]) { _ in [try Tensor.zeros(inputShape, on: device)] }
    }

    /// Whether `axis` (every axis when nil) holds no element, after checking it against the rank by `op`'s name.
    private func reducesEmpty(_ axis: Int?, _ op: String) throws -> Bool {
        guard let axis else { return count == 0 }
        return shape[try self.axis(axis, op)] == 0
    }

    /// x − m and m, m the maximum along `axis` with the axes kept (a constant for the gradient: the result does not
    /// depend on it); 0 where the maximum is infinite — so logSumExp of an all −inf slice is −inf and of one with
    /// +inf is +inf, as PyTorch's — unless `keepingInfinite` (softmax and logSoftmax, where PyTorch subtracts the
    /// maximum as it is: a slice with +inf is NaN throughout).
    private func shiftedByMax(axis: Int?, keepingInfinite: Bool = false) throws -> (shifted: Tensor, shift: Tensor) {
        let top = try max(axis: axis, keepDims: true).detached()
        let shift = keepingInfinite ? top
            : try Tensor.where(try top.abs() .== .infinity, try Tensor.zeros([], on: device), top)
        return (try self - shift, shift)
    }

    /// The sum of this gradient over the axes along which a tensor of `shape` was broadcast to this one's shape
    /// (leading axes, and axes where `shape` has 1): what broadcasting's backward rule returns.
    func sum(to shape: [Int]) throws -> Tensor {
        if self.shape == shape { return self }
        let lead = self.shape.count - shape.count
        var g = lead > 0 ? try reshaped([self.shape[..<lead].reduce(1, *)] + Array(self.shape[lead...]))
            .sum(axis: 0) : self
        for k in shape.indices where shape[k] == 1 && g.shape[k] != 1 { g = try g.sum(axis: k, keepDims: true) }
        return try g.reshaped(shape)
    }
}

extension OpCheck {
    /// Every reduction along each axis of a view (strided loops and per-output groups), a long axis (chunked), an
    /// axis of many rows under wide rows of outputs (blocks of rows first, on CPU-type devices), and argmax, in
    /// Double.
    static var reductionChecks: [OpCheck] {
        let shape = [6, 300, 5]
        let xv = values(shape.reduce(1, *), seed: 96)
        let long = values(70_001, seed: 97)
        let wide = [2, 262, 257], wv = values(wide.reduce(1, *), seed: 98)
        let references: [(ReductionFunction, @Sendable ([Double]) -> Double)] = [
            (ReductionTable.sum, { $0.reduce(0, +) }), (ReductionTable.max, { $0.max()! }),
            (ReductionTable.min, { $0.min()! }),
        ]
        @Sendable func reduce(_ axis: Int, _ f: ([Double]) -> Double) -> [Double] {
            let outer = shape[..<axis].reduce(1, *), n = shape[axis], inner = shape[(axis + 1)...].reduce(1, *)
            return (0..<outer * inner).map { o in
                f((0..<n).map { k in Double(xv[((o / inner) * n + k) * inner + o % inner]) })
            }
        }
        @Sendable func reduceWide(_ f: ([Double]) -> Double) -> [Double] {
            (0..<wide[0] * wide[2]).map { o in
                let (i, j) = (o / wide[2], o % wide[2])
                let column: [Double] = (0..<wide[1]).map { k in Double(wv[(i * wide[1] + k) * wide[2] + j]) }
                return f(column)
            }
        }
        var checks = references.flatMap { f, r in
            shape.indices.map { axis in
                OpCheck("\(f.name) axis \(axis)", "6x300x5", atol: 1e-4, compute: { d in
                    [try Tensor(xv, shape: shape, on: d).reductionKernel(f, axis: axis)]
                }, reference: { [reduce(axis, r)] })
            } + [OpCheck("\(f.name) of a long axis", "70001", atol: 1e-3, compute: { d in
                [try Tensor(long, shape: [long.count], on: d).reductionKernel(f, axis: 0)]
            }, reference: { [[r(long.map(Double.init))]] }),
            OpCheck("\(f.name) axis 1 under wide rows", "2x262x257", atol: 1e-4, compute: { d in
                [try Tensor(wv, shape: wide, on: d).reductionKernel(f, axis: 1)]
            }, reference: { [reduceWide(r)] })]
        }
        checks += shape.indices.map { axis in
            OpCheck("argmax axis \(axis)", "6x300x5", compute: { d in
                [try Tensor(xv, shape: shape, on: d).argmaxKernel(axis: axis)]
            }, reference: {
                let outer = shape[..<axis].reduce(1, *), n = shape[axis], inner = shape[(axis + 1)...].reduce(1, *)
                return [(0..<outer * inner).map { o in
                    let slice = (0..<n).map { xv[((o / inner) * n + $0) * inner + o % inner] }
                    return Double(slice.firstIndex(of: slice.max()!)!)
                }]
            })
        }
        return checks
    }
}
