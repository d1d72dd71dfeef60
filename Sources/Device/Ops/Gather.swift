// Minibatch gathering (Kernels/gather.cl): rows of a resident dataset picked by a shuffled order.

private let gatherRowsKernel = KernelSource("gather", "gather_rows")

extension Tensor {
    /// Gathers rows of `source` in the order `order[offset..<offset + rows]` into self, on their common device.
    /// The entries used are checked first (an error names the first that is not a whole number in 0..<n: negative,
    /// past the end, fractional, NaN), which reads them to the host — a wait for the device's queued work.
    /// `checkingIndices: false` skips that for an order the caller made itself (a shuffle of 0..<n): an index outside
    /// is then clamped, so even a bad order never reads outside `source`.
    /// source: [n, cols] (or [n] for cols = 1), order: [count] row indices as floats, self: [rows, cols] (or [rows]).
    /// Dense operands only: a view is an error naming the op (pass its `contiguous()` copy).
    public func gatherRows(from source: Tensor, order: Tensor, offset: Int, checkingIndices: Bool = true) throws {
        let cols = source.shape.count == 2 ? source.shape[1] : 1
        let rows = shape.first ?? 0
        guard count == rows * cols, source.count % Swift.max(cols, 1) == 0, rows == 0 || source.count > 0 else {
            throw DeviceError.shapeMismatch(op: "gatherRows", source.shape, shape)
        }
        guard offset >= 0, offset <= order.count, rows <= order.count - offset else {
            throw DeviceError.invalidArgument(op: "gatherRows", "\(rows) rows from \(offset) exceed an order of "
                + "\(order.count)")
        }
        let sourceRows = source.count / Swift.max(cols, 1)
        if checkingIndices {
            try Rows.checkIndices(order, offset: offset, count: rows, sourceRows: sourceRows, op: "gatherRows")
        }
        version.bump()
        try Tensor.run("gatherRows", source, order, self) { src, order, dst in
            let order = HostRowOrder(order: order, offset: offset, rows: sourceRows)
            for r in 0..<rows { (dst + r * cols).update(from: src + order.row(r) * cols, count: cols) }
        } opencl: { device, src, order, dst in
            try device.run(gatherRowsKernel, global: WorkSize(rows)) { a in
                try a.int("rows", rows); try a.int("cols", cols); try a.buffer("src", src)
                try a.int("src_rows", sourceRows)
                try a.buffer("order", order); try a.int("offset", offset); try a.buffer("dst", dst)
            }
        }
    }
}

/// Rows `order[offset..<offset + count]` of `source` (a minibatch of a resident dataset), read in place by the ops
/// that take them — the first layer's products and the loss — so no gathered copy is made. `Rows(tensor)` is all
/// of a tensor's rows, in order.
public struct Rows {
    /// The stored rows: [rows, columns] (or [rows] for labels).
    public let source: Tensor
    /// Row indices as floats; nil for the source's own rows in order.
    public let order: Tensor?
    /// The first entry of `order` this batch uses.
    public let offset: Int
    /// Rows in the batch.
    public let count: Int

    /// All rows of `tensor`, in order. tensor: [rows, columns] (or [rows])
    public init(_ tensor: Tensor) {
        (source, order, offset, count) = (tensor, nil, 0, tensor.shape.first ?? 0)
    }

    /// Rows `order[offset..<offset + count]` of `source`. Those entries are checked (an error names the first that
    /// is not a whole number in 0..<n: negative, past the end, fractional, NaN), which reads them to the host — a
    /// wait for the device's queued work. `checkingIndices: false` skips that, for an order the caller made itself
    /// (a training loop's shuffle of 0..<n, read every step without a wait): an index outside is then clamped by
    /// every op that reads the rows, so even a bad order never reads outside `source`.
    /// source: [n, columns] (or [n]), order: [m] row indices as floats on source's device.
    public init(_ source: Tensor, order: Tensor, offset: Int, count: Int, checkingIndices: Bool = true) throws {
        guard source.shape.count == 1 || source.shape.count == 2 else {
            throw DeviceError.invalidArgument(op: "Rows", "expects a matrix or a vector, got shape \(source.shape)")
        }
        guard order.device == source.device else {
            throw DeviceError.deviceMismatch(op: "Rows", source.device, order.device)
        }
        guard count >= 0, offset >= 0, offset <= order.count, count <= order.count - offset else {
            throw DeviceError.invalidArgument(op: "Rows", "\(count) rows from \(offset) exceed an order of "
                + "\(order.count)")
        }
        guard count == 0 || source.count > 0 else {
            throw DeviceError.invalidArgument(op: "Rows", "cannot pick \(count) rows of an empty tensor")
        }
        if checkingIndices {
            try Self.checkIndices(order, offset: offset, count: count, sourceRows: source.shape[0], op: "Rows")
        }
        (self.source, self.order, self.offset, self.count) = (source, order, offset, count)
    }

    /// Refuses an entry of `order[offset..<offset + count]` that is not a row of `sourceRows` (negative, past the
    /// end, fractional, NaN), naming the first. Reads those entries to the host.
    static func checkIndices(_ order: Tensor, offset: Int, count: Int, sourceRows: Int, op: String) throws {
        guard count > 0 else { return }
        let entries = try Tensor.withoutGradients {
            try order.reshaped([order.count])[offset..<offset + count].toArray()
        }
        if let i = entries.firstIndex(where: { !isWholeIndex($0, below: sourceRows) }) {
            throw DeviceError.invalidArgument(op: op, "order entry \(offset + i) is \(entries[i]), not a row index in "
                + "0..<\(sourceRows)")
        }
    }

    /// Columns per row (1 for a vector of labels).
    public var columns: Int { source.shape.count == 2 ? source.shape[1] : 1 }
    /// The source’s device.
    public var device: DeviceTag { source.device }
    /// [count, columns], or [count] for rows of a vector.
    public var shape: [Int] { source.shape.count == 2 ? [count, columns] : [count] }
    /// How many rows the source has (what an index is clamped to).
    var sourceRows: Int { source.shape.first ?? 0 }

    /// The rows as a tensor of their own (a copy when picked through an order).
    /// Dense operands only: a view is an error naming the op (pass its `contiguous()` copy).
    public func gathered(into out: Tensor? = nil) throws -> Tensor {
        let out = try output("Rows.gathered", out, shape, on: device, reading: [source, order])
        if let order {
            try out.gatherRows(from: source, order: order, offset: offset, checkingIndices: false)  // checked at init
        } else {
            try out.copy(from: source)
        }
        return out
    }
}

/// An index list over a source's stored rows on the host: stored row s is order[offset + s], clamped to 0..<rows
/// (NaN reads row 0), as `stored_row` of Kernels/rows.cl does on a device.
struct HostRowOrder {
    let order: UnsafeMutablePointer<Float>
    let offset: Int
    let rows: Int

    func row(_ s: Int) -> Int {
        let v = order[offset + s]
        return v >= Float(rows - 1) ? rows - 1 : (v > 0 ? Int(v) : 0)
    }
}

extension OpCheck {
    /// Rows through a shuffled index list whose last entries are out of range, negative and NaN (read clamped).
    static var gatherChecks: [OpCheck] {
        let (n, cols) = (37, 13)
        let source = values(n * cols, seed: 95)
        let order: [Float] = (0..<n).map { Float(($0 * 11) % n) } + [1000, -5, .nan]
        return [(0, 5), (30, 7), (n, 3)].map { offset, rows in
            OpCheck("gatherRows", "\(rows) of \(n)x\(cols) from \(offset)", compute: { d in
                let dst = try Tensor.zeros([rows, cols], on: d)
                try dst.gatherRows(from: try Tensor(source, shape: [n, cols], on: d),
                                   order: try Tensor(order, shape: [order.count], on: d), offset: offset,
                                   checkingIndices: false)
                return [dst]
            }, reference: {
                let picked = (offset..<offset + rows).map { i -> Int in
                    order[i].isNaN || order[i] < 0 ? 0 : min(Int(order[i]), n - 1)
                }
                return [picked.flatMap { row in (0..<cols).map { Double(source[row * cols + $0]) } }]
            })
        }
    }
}
