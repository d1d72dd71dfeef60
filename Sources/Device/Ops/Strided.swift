// The strided iteration shared by the elementwise ops and the reductions: operands of one shape, each with its own
// layout, their axes merged where all allow (Kernels/strided.cl on OpenCL, `forEachRow` on cpu).

/// Operands of one shape, each a layout over its storage, ready for a strided kernel or the CPU loop.
struct StridedOperands {
    /// The merged axes (at least one).
    let shape: [Int]
    /// Each operand's strides over `shape`.
    let strides: [[Int]]
    /// Each operand's offset.
    let offsets: [Int]

    // Shared by every dense launch of up to seven operands (no allocation per op).
    private static let denseStrides = (0..<8).map { Array(repeating: Layout.unitStride, count: $0) }
    private static let zeroOffsets = (0..<8).map { Array(repeating: 0, count: $0) }

    /// The strided kernels index at most this many axes (`runElementwise` launches more as several parts).
    static let maxRank = 8

    /// Any number of axes: the CPU loop walks them all; an OpenCL launch of more than `maxRank` goes in parts.
    init(_ layouts: [Layout]) {
        // Every operand dense and unbroadcast (the common case of a chain of ops): one axis, nothing to merge.
        if layouts.allSatisfy({ $0.isDense && $0.shape == layouts[0].shape }) {
            shape = [layouts[0].count]
            if layouts.count < Self.denseStrides.count {
                (strides, offsets) = (Self.denseStrides[layouts.count], Self.zeroOffsets[layouts.count])
            } else {
                strides = Array(repeating: Layout.unitStride, count: layouts.count)
                offsets = Array(repeating: 0, count: layouts.count)
            }
            return
        }
        let merged = mergedAxes(layouts)
        (shape, strides, offsets) = (merged.shape, merged.strides, layouts.map(\.offset))
    }

    private init(shape: [Int], strides: [[Int]], offsets: [Int]) {
        (self.shape, self.strides, self.offsets) = (shape, strides, offsets)
    }

    /// Whether a strided kernel indexes these axes in one launch.
    var fitsOneLaunch: Bool { shape.count <= Self.maxRank }

    /// The operands over their last `maxRank` axes, once per index of the axes before (each operand's offset moved
    /// there), for `body`: what a launch of more axes than the kernels index runs as.
    func forEachPart(_ body: (StridedOperands) throws -> Void) rethrows {
        let lead = shape.count - Self.maxRank
        guard lead > 0 else { return try body(self) }
        guard count > 0 else { return }
        let (inner, innerStrides) = (Array(shape[lead...]), strides.map { Array($0[lead...]) })
        try forEachIndex(ofLeading: lead) { start in
            try body(StridedOperands(shape: inner, strides: innerStrides, offsets: start))
        }
    }

    /// Dense tensors of one shape (the common case of a chain of ops), as one axis — without building their layouts
    /// (this runs for every op, and ops on small tensors are host-bound); nil otherwise.
    init?(dense tensors: [Tensor]) {
        let first = tensors[0]
        guard tensors.allSatisfy({ $0.isDense && $0.shape == first.shape }) else { return nil }
        shape = first.shape.count == 1 ? first.shape : [first.count]
        if tensors.count < Self.denseStrides.count {
            (strides, offsets) = (Self.denseStrides[tensors.count], Self.zeroOffsets[tensors.count])
        } else {
            strides = Array(repeating: Layout.unitStride, count: tensors.count)
            offsets = Array(repeating: 0, count: tensors.count)
        }
    }

    var inner: Int { shape[shape.count - 1] }
    var rows: Int { shape.dropLast().reduce(1, *) }
    var count: Int { shape.reduce(1, *) }

    /// On CPU-type devices each work-item loops over this many neighbouring elements of a row (strided.cl's
    /// CLNN_ROW_LOOP), and a column reduction keeps up to `reductionColumns` outputs per work-item.
    static let rowChunk = 256, reductionColumns = 1024

    /// The defines strided.cl reads: the element loop's form for the device kind and its sizes.
    static func header(rowLoop: Bool) -> String {
        (rowLoop ? "#define CLNN_ROW_LOOP 1\n" : "") + "#define ROW_CHUNK \(rowChunk)\n#define COLUMNS \(reductionColumns)\n"
    }

    /// The work sizes of an elementwise launch on `device`: a work-item per `rowChunk` elements of a row on a
    /// CPU-type device; one per element on a GPU, in work-groups of 256 (rows stacked when rows are short).
    func elementwiseSizes(on device: OpenCLDevice) -> (global: WorkSize, local: WorkSize?) {
        if device.rowLoop { return (WorkSize((inner + Self.rowChunk - 1) / Self.rowChunk, rows), nil) }
        var lx = 1
        while lx < Swift.min(inner, 256) { lx *= 2 }
        return (WorkSize(inner, rows), WorkSize(lx, Swift.max(1, Swift.min(256 / lx, rows))))
    }

    /// Calls `body` once per row (every axis but the last) with each operand's offset of the row's first element;
    /// along the row, operand i steps by `strides[i].last`.
    func forEachRow(_ body: ([Int]) throws -> Void) rethrows {
        guard count > 0 else { return }
        if shape.count == 1 { return try body(offsets) }
        try forEachIndex(ofLeading: shape.count - 1, body)
    }

    /// Calls `body` with each operand's offset of every index of the first `axes` axes, in row-major order (the other
    /// axes at 0): an odometer over them.
    private func forEachIndex(ofLeading axes: Int, _ body: ([Int]) throws -> Void) rethrows {
        var (index, start) = ([Int](repeating: 0, count: axes), offsets)
        while true {
            try body(start)
            var k = axes - 1
            while k >= 0 {
                index[k] += 1
                for i in start.indices { start[i] += strides[i][k] }
                if index[k] < shape[k] { break }
                for i in start.indices { start[i] -= strides[i][k] * shape[k] }
                index[k] = 0
                k -= 1
            }
            if k < 0 { return }
        }
    }

    /// The last axis' stride of operand i.
    func step(_ i: Int) -> Int { strides[i][strides[i].count - 1] }
}

extension OpenCLDevice {
    /// Launches elementwise kernel `source` over `s`'s elements (see `elementwiseSizes`); `arguments` sets them for
    /// the operands it is given: `s`, or each part of `s` when it has more axes than the kernels index
    /// (`forEachPart`: a launch per part).
    func runElementwise(_ source: KernelSource, _ s: StridedOperands,
                        _ arguments: (inout KernelArguments, StridedOperands) throws -> Void) throws {
        let kernel = try kernel(source)
        try s.forEachPart { part in
            let (global, local) = part.elementwiseSizes(on: self)
            try launch(kernel, global: global, local: local) { try arguments(&$0, part) }
        }
    }
}

extension KernelArguments {
    /// The shared axes of a strided kernel: `rank`, `shape`, `inner`, `rows`.
    mutating func axes(_ s: StridedOperands) throws {
        try int("rank", s.shape.count); try int8("shape", s.shape); try int("inner", s.inner); try int("rows", s.rows)
    }

    /// Operand `name` of a strided kernel: its buffer, offset and strides (operand `i` of `s`).
    mutating func layout(_ name: String, _ buffer: CLBuffer, _ s: StridedOperands, _ i: Int) throws {
        try self.buffer(name, buffer); try int(name + "_offset", s.offsets[i]); try int8(name + "_strides", s.strides[i])
    }
}
