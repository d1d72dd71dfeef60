/// A dense row-major fp32 tensor that lives on one device.
///
/// Operations run where their operands live; operands on different devices are an error, never a silent copy.
/// Move a tensor with `to(_:)`. The reference is immutable but its contents are not: optimisers update
/// parameters in place, and training reuses buffers between steps.
public final class Tensor: @unchecked Sendable, CustomStringConvertible {
    /// The sizes of each dimension, outermost first (row-major).
    public let shape: [Int]
    /// Where the elements live; every op runs there. (It changes only when a parameter that holds this tensor moves
    /// to another device: see `rebind(to:)`.)
    public package(set) var device: DeviceTag
    var storage: Storage

    /// Number of elements.
    public let count: Int

    init(shape: [Int], device: DeviceTag, storage: Storage) {
        self.shape = shape
        self.device = device
        self.storage = storage
        self.count = shape.reduce(1, *)
    }

    /// An uninitialised tensor of `shape` on `device` (for outputs that are about to be overwritten).
    public static func empty(_ shape: [Int], on device: DeviceTag) throws -> Tensor {
        let count = try checkedCount(shape)
        return Tensor(shape: shape, device: device, storage: try Backend(device).allocate(count))
    }

    static func checkedCount(_ shape: [Int]) throws -> Int {
        var count = 1
        for d in shape {
            guard d >= 0 else {
                throw DeviceError.invalidArgument(op: "tensor", "negative dimension in shape \(shape)")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product <= Int(Int32.max) else {
                throw DeviceError.invalidArgument(op: "tensor", "shape \(shape) has too many elements")
            }
            count = product
        }
        return count
    }

    /// `Tensor([2, 3], opencl:0: 0.5, -1.25, 2, 0, 1, 3)`: the shape, the device and the first values (at most six,
    /// read back from the device; waits for queued work).
    public var description: String {
        let shown = min(count, 6)
        var values = [Float](repeating: 0, count: shown)
        let read: Bool = shown > 0 && values.withUnsafeMutableBufferPointer { buffer in
            (try? storage.download(into: buffer.baseAddress!, count: shown)) != nil
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
        try target.copy(from: self)
        (storage, device) = (target.storage, target.device)
    }

    /// Whether this tensor shows the same memory object as `other` (a view rebound onto it, or itself).
    package func sharesStorage(with other: Tensor) -> Bool {
        switch (storage, other.storage) {
        case let (.cpu(a), .cpu(b)): return a === b
        case let (.opencl(a), .opencl(b)): return a === b
        default: return false
        }
    }
}
