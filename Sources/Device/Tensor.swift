/// Host memory of `count` floats, freed in deinit.
final class HostBuffer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    init(count: Int) {
        self.count = count
        // 64-byte alignment keeps SIMD loads aligned; at least one element so the pointer is always valid.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride,
                                                   alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }
    deinit { pointer.deallocate() }
}

/// A tensor's memory: on the host, or in one OpenCL device's buffer.
enum Storage {
    case cpu(HostBuffer)
    case opencl(CLBuffer)
}

/// A dense row-major fp32 tensor that lives on one device.
///
/// Operations run where their operands live; operands on different devices are an error, never a silent copy.
/// Move a tensor with `to(_:)`. The reference is immutable but its contents are not: optimisers update
/// parameters in place, and training reuses buffers between steps.
public final class Tensor: @unchecked Sendable, CustomStringConvertible {
    public let shape: [Int]
    public let device: DeviceTag
    let storage: Storage

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
        switch device.kind {
        case .cpu:
            return Tensor(shape: shape, device: device, storage: .cpu(HostBuffer(count: count)))
        case .opencl:
            let cl = try OpenCLRuntime.shared.device(device.index)
            return Tensor(shape: shape, device: device, storage: .opencl(try cl.makeBuffer(count: count)))
        }
    }

    static func checkedCount(_ shape: [Int]) throws -> Int {
        var count = 1
        for d in shape {
            guard d >= 0 else { throw DeviceError.invalidArgument(op: "tensor", "negative dimension in shape \(shape)") }
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product <= Int(Int32.max) else {
                throw DeviceError.invalidArgument(op: "tensor", "shape \(shape) has too many elements")
            }
            count = product
        }
        return count
    }

    public var description: String { "Tensor(\(shape), \(device))" }

    /// The host pointer of a cpu tensor. Internal invariant: only the CPU backend calls it.
    var hostPointer: UnsafeMutablePointer<Float> {
        guard case .cpu(let buffer) = storage else { preconditionFailure("\(self) is not on cpu") }
        return buffer.pointer
    }

    /// The buffer of an OpenCL tensor. Internal invariant: only the OpenCL backend calls it.
    var clBuffer: CLBuffer {
        guard case .opencl(let buffer) = storage else { preconditionFailure("\(self) is not on OpenCL") }
        return buffer
    }
}
