/// An fp32 tensor that lives on one device: a layout (shape, strides, offset) over a storage.
///
/// Operations run where their operands live; operands on different devices are an error, never a silent copy.
/// Move a tensor with `to(_:)`. The reference is immutable but its contents are not: optimisers update
/// parameters in place, and training reuses buffers between steps.
///
/// Views (`reshaped(_:)`, `transposed()`, `permuted(_:)`, `expanded(to:)`, `x[a..<b]`, …) share their base's
/// storage. The elementwise ops and the reductions read any layout; the fixed-function ops (matmul, the fused layers,
/// losses, optimiser steps) read a view through a contiguous copy and write only dense tensors, as their doc comments
/// say. Results record how they were made when an operand `requiresGrad`, so `backward()` can find gradients.
public final class Tensor: @unchecked Sendable, CustomStringConvertible {
    /// The sizes of each dimension, outermost first.
    public let shape: [Int]
    /// How far apart, in elements, neighbours along each dimension are in the storage (0 along a broadcast axis).
    public let strides: [Int]
    /// Where element (0, 0, …) is in the storage, in elements.
    let offset: Int
    /// Where the elements live; every op runs there. (It changes only when a parameter that holds this tensor moves
    /// to another device: see `rebind(to:)`.)
    // NOTE: @exclusivity(unchecked) on the stored vars every op reads (here, in Autograd/Tape.swift and
    // BufferPool.swift): their dynamic access checks were ~8% of a small op's host time (`clnn bench launch --device
    // cpu`), and no access to them overlaps another (plain reads and assignments).
    @exclusivity(unchecked) public package(set) var device: DeviceTag
    @exclusivity(unchecked) var storage: Storage

    /// Number of elements.
    public let count: Int

    /// Whether the elements are row-major from the storage's first element: what fixed-function ops read and write.
    /// (Stored: every op asks, and the layout does not change.)
    let isDense: Bool

    /// Bumped by every in-place change of the storage; shared by the views of one storage, so that `backward()` can
    /// tell that a tensor it saved was modified after it was recorded.
    @exclusivity(unchecked) private(set) var version: VersionCounter

    /// Gradient bookkeeping (see Autograd/Tape.swift).
    @exclusivity(unchecked) var autograd = AutogradState()

    init(shape: [Int], device: DeviceTag, storage: Storage) {
        self.shape = shape
        strides = Layout.rowMajorStrides(shape)
        offset = 0
        self.device = device
        self.storage = storage
        self.count = shape.reduce(1, *)
        isDense = true
        version = VersionCounter()
    }

    /// A view: `layout` over `base`'s storage.
    init(view layout: Layout, of base: Tensor) {
        shape = layout.shape
        strides = layout.strides
        offset = layout.offset
        device = base.device
        storage = base.storage
        count = layout.count
        isDense = layout.isDense
        version = base.version
    }

    var layout: Layout { Layout(shape: shape, strides: strides, offset: offset) }

    /// Whether no other tensor shows this one's storage now (no view or detached alias of it is alive): views share
    /// the version counter, so its being referenced once says so.
    func ownsStorageAlone() -> Bool { isKnownUniquelyReferenced(&version) }


    /// An uninitialised tensor of `shape` on `device` (for outputs that are about to be overwritten).
    public static func empty(_ shape: [Int], on device: DeviceTag) throws -> Tensor {
        let count = try checkedCount(shape)
        return Tensor(shape: shape, device: device, storage: try Backend(device).allocate(count))
    }

    /// An uninitialised tensor of `shape` on `operand`'s device: an op's result, allocated without looking the device
    /// up (`empty(_:on:)` costs a device lookup per op, and ops on small tensors are host-bound).
    static func empty(_ shape: [Int], like operand: Tensor) throws -> Tensor {
        let count = try checkedCount(shape)
        return Tensor(shape: shape, device: operand.device, storage: try operand.storage.backend.allocate(count))
    }

    /// The element count of `shape`, or an error for a negative size or more than Int32.max elements (counted over
    /// the sizes other than 0, so that an empty shape's strides fit too).
    package static func checkedCount(_ shape: [Int]) throws -> Int {
        // The sizes other than 0 must fit together whatever their order, with or without an empty axis: a layout's
        // strides are their products (numpy refuses the same shapes).
        var product = 1, empty = false
        for d in shape {
            guard d >= 0 else {
                throw DeviceError.invalidArgument(op: "tensor", "negative dimension in shape \(shape)")
            }
            guard d > 0 else { empty = true; continue }
            let (next, overflow) = product.multipliedReportingOverflow(by: d)
            guard !overflow, next <= Int(Int32.max) else {
                throw DeviceError.invalidArgument(op: "tensor", "shape \(shape) has too many elements"
                    + (shape.contains(0) ? " along its axes of nonzero size (their strides would not fit)" : ""))
            }
            product = next
        }
        return empty ? 0 : product
    }

    /// `Tensor([2, 3], opencl:0: 0.5, -1.25, 2, 0, 1, 3)`: the shape, the device and the first values (at most six,
    /// read back from the device; waits for queued work).
    public var description: String {
        let shown = Swift.min(count, 6)
        var values = [Float](repeating: 0, count: shown)
        let source = isDense ? self : try? Tensor.withoutGradients { try contiguous() }
        let read: Bool = shown > 0 && values.withUnsafeMutableBufferPointer { buffer in
            (try? source?.storage.download(into: buffer.baseAddress!, count: shown)) != nil
        }
        let text = read ? values.map { "\($0)" }.joined(separator: ", ") + (count > shown ? ", …" : "") : ""
        return "Tensor(\(shape), \(device)\(text.isEmpty ? "" : ": " + text))"
    }
}

extension Tensor {
    /// Copies this tensor's contents into `target` (same shape, any device), then makes this tensor show `target`'s
    /// memory and device: the object callers hold stays the same. How a parameter's value joins its model's flat
    /// buffer, or follows the parameter to another device, without changing identity (as a PyTorch parameter's
    /// `.data` does).
    /// - Throws: `DeviceError.shapeMismatch` when the shapes differ.
    package func rebind(to target: Tensor) throws {
        guard target.shape == shape else { throw DeviceError.shapeMismatch(op: "rebind", shape, target.shape) }
        guard isDense, target.isDense else {
            throw DeviceError.invalidArgument(op: "rebind", "a view cannot be rebound; only dense tensors")
        }
        try target.copy(from: self)
        (storage, device) = (target.storage, target.device)
    }

    /// Counts a write into this tensor's memory made through another tensor over it (a model's flat parameter
    /// buffer, stepped in one launch) as an in-place change of this one: what an op or a module saved of it for a
    /// backward is then refused, as after any in-place op.
    package func markModified() { version.bump() }

    /// Whether this tensor shows the same memory object as `other` (a view rebound onto it, or itself).
    package func sharesStorage(with other: Tensor) -> Bool {
        switch (storage, other.storage) {
        case let (.cpu(a), .cpu(b)): return a === b
        case let (.opencl(a), .opencl(b)): return a === b
        default: return false
        }
    }
}
