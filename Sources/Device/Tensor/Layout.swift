/// How a tensor's elements sit in its storage: element (i₀, i₁, …) is at `offset + Σ iₖ·strides[k]`.
///
/// A view (reshape, transpose, slice, expand) is a new layout over the same storage, not a copy; broadcasting is a
/// stride of 0. A layout is *contiguous* when its elements are the storage's elements `offset..<offset + count` in
/// row-major order.
struct Layout: Equatable, Sendable {
    var shape: [Int]
    var strides: [Int]
    var offset: Int

    /// The row-major layout of `shape` from element 0.
    init(contiguous shape: [Int]) {
        self.shape = shape
        strides = Layout.rowMajorStrides(shape)
        offset = 0
    }

    init(shape: [Int], strides: [Int], offset: Int) {
        (self.shape, self.strides, self.offset) = (shape, strides, offset)
    }

    /// Whether two of its elements are one place in storage (an expanded view: a stride of 0 along an axis longer
    /// than 1), so that writing through it would write one place several times.
    var repeatsElements: Bool { zip(shape, strides).contains { $0 > 1 && $1 == 0 } }

    /// Whether the two reach the same storage element at every index (an in-place op's operand and its result):
    /// the same shape and offset, and the same stride along every axis longer than 1.
    func placesEqual(_ other: Layout) -> Bool {
        guard shape == other.shape else { return false }
        if shape.contains(0) { return true }
        return offset == other.offset && shape.indices.allSatisfy { shape[$0] == 1 || strides[$0] == other.strides[$0] }
    }

    /// The storage elements it may reach: offset..<extent (none when empty; strides are never negative).
    var footprint: Range<Int> { shape.contains(0) ? 0..<0 : offset..<extent }

    /// `[1]`, shared (a one-axis layout's strides, made for every op's result otherwise).
    static let unitStride = [1]

    static func rowMajorStrides(_ shape: [Int]) -> [Int] {
        if shape.count == 1 { return unitStride }
        var strides = [Int](repeating: 1, count: shape.count)
        var step = 1
        for k in shape.indices.reversed() {
            strides[k] = step
            step *= max(shape[k], 1)
        }
        return strides
    }

    var count: Int { shape.reduce(1, *) }

    /// Whether the elements are storage elements offset..<offset + count, row-major (a size-1 axis's stride does not
    /// matter; an empty tensor is contiguous).
    var isContiguous: Bool {
        if shape.contains(0) { return true }
        var step = 1
        for k in shape.indices.reversed() where shape[k] != 1 {
            guard strides[k] == step else { return false }
            step *= shape[k]
        }
        return true
    }

    /// Contiguous and starting at element 0: what the fixed-function ops read and write.
    var isDense: Bool { isContiguous && (offset == 0 || shape.contains(0)) }

    /// The largest storage element index it reaches plus one (0 when empty).
    var extent: Int {
        guard !shape.contains(0) else { return 0 }
        return offset + zip(shape, strides).reduce(1) { $0 + ($1.0 - 1) * $1.1 }
    }

    /// This layout broadcast to `target` (numpy's rules: axes are matched from the right; a size-1 or missing axis
    /// repeats with stride 0). Nil when some axis has neither the same size nor size 1.
    func broadcast(to target: [Int]) -> Layout? {
        guard target.count >= shape.count else { return nil }
        let lead = target.count - shape.count
        var strides = [Int](repeating: 0, count: target.count)
        for k in shape.indices {
            if shape[k] == target[lead + k] {
                strides[lead + k] = shape[k] == 1 ? 0 : self.strides[k]
            } else if shape[k] != 1 {
                return nil
            }
        }
        return Layout(shape: target, strides: strides, offset: offset)
    }

    /// The shape two shapes broadcast to, or the first axis (counted from the left of the result) where they
    /// cannot.
    static func broadcastShape(_ a: [Int], _ b: [Int]) -> Result<[Int], BroadcastFailure> {
        let rank = max(a.count, b.count)
        var out = [Int](repeating: 1, count: rank)
        for k in 0..<rank {
            let x = k - (rank - a.count) >= 0 ? a[k - (rank - a.count)] : 1
            let y = k - (rank - b.count) >= 0 ? b[k - (rank - b.count)] : 1
            guard x == y || x == 1 || y == 1 else { return .failure(BroadcastFailure(axis: k, sizes: (x, y))) }
            out[k] = x == 1 ? y : x
        }
        return .success(out)
    }

    struct BroadcastFailure: Error {
        let axis: Int
        let sizes: (Int, Int)
    }
}

/// Layouts of the same shape with their axes merged where every one of them allows it (an axis whose stride is the
/// next one's stride × size in all layouts), and size-1 axes dropped: the strided kernels then index fewer axes.
/// Rank 0 becomes rank 1 of size 1.
func mergedAxes(_ layouts: [Layout]) -> (shape: [Int], strides: [[Int]]) {
    let shape = layouts[0].shape
    var outShape: [Int] = []
    var outStrides: [[Int]] = layouts.map { _ in [] }
    for k in shape.indices where shape[k] != 1 {
        if let last = outShape.indices.last,
           layouts.indices.allSatisfy({ outStrides[$0][last] == layouts[$0].strides[k] * shape[k] }) {
            outShape[last] *= shape[k]
            for i in layouts.indices { outStrides[i][last] = layouts[i].strides[k] }
        } else {
            outShape.append(shape[k])
            for i in layouts.indices { outStrides[i].append(layouts[i].strides[k]) }
        }
    }
    if outShape.isEmpty { return ([1], layouts.map { _ in [1] }) }
    return (outShape, outStrides)
}
