import Foundation

// The device seam: the only file that asks which kind of device a tensor lives on. It owns memory (allocate,
// upload, download, copy), synchronisation and warm-up, and hands each op the typed memory of its operands after
// checking that they share a device. Ops (Sources/Device/Ops) bring a CPU loop and an OpenCL launch; they never
// switch on the device themselves.

/// Host memory of `count` floats, 64-byte aligned, freed in deinit.
final class HostBuffer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    /// For a view: the buffer whose memory it shows (kept alive; only an owner frees).
    private let parent: HostBuffer?
    init(count: Int) throws {
        self.count = count
        parent = nil
        if let kept = hostBufferPool.take(count) {
            pointer = kept
            return
        }
        // At least one element so the pointer is always valid. NOTE: posix_memalign, not Swift's allocate: a
        // failed allocation is an error to report, not a trap.
        var raw: UnsafeMutableRawPointer?
        let (bytes, overflow) = max(count, 1).multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        var allocated = !overflow && posix_memalign(&raw, 64, bytes) == 0
        if !allocated && !overflow {
            // Memory kept for reuse may be what is missing: give it back and try once more.
            hostBufferPool.drain()
            allocated = posix_memalign(&raw, 64, bytes) == 0
        }
        guard allocated, let raw else {
            let (available, limit) = HostMemory.available()
            throw HostMemory.Shortfall(what: "a tensor of \(count) floats on cpu", bytes: Double(count) * 4,
                                       available: available,
                                       limit: "the allocator's refusal; " + limit)
        }
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }
    /// Elements offset..<offset + count of `parent`.
    init(viewOf parent: HostBuffer, offset: Int, count: Int) {
        self.parent = parent
        self.count = count
        pointer = parent.pointer + offset
    }
    deinit {
        guard parent == nil else { return }
        if !hostBufferPool.put(pointer, count: count) { free(pointer) }
    }
}

/// A tensor's memory: on the host, or in one OpenCL device's buffer (which knows its device).
enum Storage {
    case cpu(HostBuffer)
    case opencl(CLBuffer)
}

/// The backend of one device: where memory lives and how it moves.
enum Backend {
    case cpu
    case opencl(OpenCLDevice)

    init(_ tag: DeviceTag) throws {
        switch tag.kind {
        case .cpu: self = .cpu
        case .opencl: self = .opencl(try OpenCLRuntime.shared.device(tag.index))
        }
    }

    /// `count` uninitialised floats.
    func allocate(_ count: Int) throws -> Storage {
        switch self {
        case .cpu: return .cpu(try HostBuffer(count: count))
        case .opencl(let device): return .opencl(try device.makeBuffer(count: count))
        }
    }

    /// Where a view into a flat buffer may start, in floats (a sub-buffer's base address alignment on OpenCL).
    var viewAlignment: Int {
        switch self {
        case .cpu: return 16
        case .opencl(let device): return max(device.info.baseAddressAlignment / MemoryLayout<Float>.size, 1)
        }
    }

    /// Elements offset..<offset + count of `storage` as storage of their own, sharing its memory.
    func view(of storage: Storage, offset: Int, count: Int) throws -> Storage {
        switch storage {
        case .cpu(let buffer): return .cpu(HostBuffer(viewOf: buffer, offset: offset, count: count))
        case .opencl(let buffer):
            return .opencl(try buffer.device.makeSubBuffer(of: buffer, offset: offset, count: count))
        }
    }

    /// Waits until every command queued on this device has finished (nothing to wait for on cpu).
    func synchronize() throws {
        if case .opencl(let device) = self { try device.finish() }
    }

    /// The OpenCL device, or nil on cpu: for work above the seam that only OpenCL devices need (warm-up, probes).
    var openCLDevice: OpenCLDevice? {
        if case .opencl(let device) = self { return device }
        return nil
    }
}

extension Tensor {
    /// This tensor's OpenCL device and buffer, or nil on cpu: for a probe that talks to the driver directly.
    var openCLMemory: (device: OpenCLDevice, buffer: CLBuffer)? {
        if case .opencl(let buffer) = storage { return (buffer.device, buffer) }
        return nil
    }
}

extension Storage {
    /// The backend this memory belongs to (no device lookup).
    var backend: Backend {
        switch self {
        case .cpu: return .cpu
        case .opencl(let buffer): return .opencl(buffer.device)
        }
    }

    /// Overwrites elements offset..<offset + count with host values.
    func upload(_ source: UnsafePointer<Float>, count: Int, at offset: Int) throws {
        guard count > 0 else { return }
        switch self {
        case .cpu(let buffer): (buffer.pointer + offset).update(from: source, count: count)
        case .opencl(let buffer): try buffer.device.write(buffer, from: source, count: count, at: offset)
        }
    }

    /// Copies the first `count` floats to host memory (after every command queued before, on a device).
    func download(into destination: UnsafeMutablePointer<Float>, count: Int) throws {
        guard count > 0 else { return }
        switch self {
        case .cpu(let buffer): destination.update(from: buffer.pointer, count: count)
        case .opencl(let buffer): try buffer.device.read(buffer, into: destination, count: count)
        }
    }

    /// Copies `count` floats into `destination`, which may live on another device (then through the host; between two
    /// OpenCL devices without blocking the host, see `OpenCLDevice.copyAcross`).
    func copy(to destination: Storage, count: Int) throws {
        guard count > 0 else { return }
        switch (self, destination) {
        case let (.cpu(from), _):
            try destination.upload(from.pointer, count: count, at: 0)
        case let (.opencl(from), .cpu(to)):
            try from.device.read(from, into: to.pointer, count: count)
        case let (.opencl(from), .opencl(to)) where from.device === to.device:
            try from.device.copy(from, to: to, count: count)
        case let (.opencl(from), .opencl(to)):
            try to.device.copyAcross(from: from, to: to, count: count)
        }
    }
}

/// An op's operand as `Tensor.run` hands it to the op's code: a tensor (its host memory on cpu, its buffer on
/// OpenCL), or an optional one (nil when absent).
protocol OpOperand {
    associatedtype Host
    associatedtype Buffer
    /// The operand's device; nil when absent.
    var operandDevice: DeviceTag? { get }
    /// The operand's shape when it is a view that is not dense (nil when dense or absent).
    var viewShape: [Int]? { get }
    /// Its host memory (on cpu, which `run` has checked).
    func hostOperand() -> Host
    /// Its device buffer (on OpenCL, which `run` has checked).
    func bufferOperand() -> Buffer
}

extension Tensor: OpOperand {
    var operandDevice: DeviceTag? { device }
    var viewShape: [Int]? { isDense ? nil : shape }
    func hostOperand() -> UnsafeMutablePointer<Float> {
        guard case .cpu(let buffer) = storage else { preconditionFailure("Tensor.run checked every operand's device") }
        return buffer.pointer
    }
    func bufferOperand() -> CLBuffer {
        guard case .opencl(let buffer) = storage else {
            preconditionFailure("Tensor.run checked every operand's device")
        }
        return buffer
    }
}

extension Optional: OpOperand where Wrapped == Tensor {
    var operandDevice: DeviceTag? { self?.device }
    var viewShape: [Int]? { self?.viewShape }
    func hostOperand() -> UnsafeMutablePointer<Float>? { self?.hostOperand() }
    func bufferOperand() -> CLBuffer? { self?.bufferOperand() }
}

extension Tensor {
    /// Runs op `name` where its operands live: `cpu` receives their host memory, `opencl` the device and their
    /// buffers — each operand in its own closure parameter, typed as given (an optional tensor arrives optional), so
    /// that the op's code names what it reads and a missing or extra operand is a compile error.
    /// Nothing is allocated on the way (this runs for every op of every training step).
    ///
    /// Unless `views` is set (the strided ops, which add each operand's offset themselves), every operand must be dense:
    /// the fixed-function ops make the views they read contiguous first, and write only dense tensors.
    /// - Throws: `DeviceError.deviceMismatch` naming `name` and both devices when the operands do not share one;
    ///   `DeviceError.invalidArgument` for a view where a dense tensor is needed.
    static func run<each Operand: OpOperand>(
        _ name: String, views: Bool = false, _ first: Tensor, _ rest: repeat each Operand,
        cpu: (UnsafeMutablePointer<Float>, repeat (each Operand).Host) throws -> Void,
        opencl: (OpenCLDevice, CLBuffer, repeat (each Operand).Buffer) throws -> Void
    ) throws {
        for operand in repeat each rest {
            if let device = operand.operandDevice, device != first.device {
                throw DeviceError.deviceMismatch(op: name, first.device, device)
            }
            if !views, let shape = operand.viewShape { throw Tensor.needsDense(name, shape) }
        }
        if !views, let shape = first.viewShape { throw Tensor.needsDense(name, shape) }
        switch first.storage {
        case .cpu(let buffer):
            guard Profiler.enabled else { return try cpu(buffer.pointer, repeat (each rest).hostOperand()) }
            let start = DispatchTime.now().uptimeNanoseconds
            defer { Profiler.shared.recordHost(name, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
            try cpu(buffer.pointer, repeat (each rest).hostOperand())
        case .opencl(let buffer): try opencl(buffer.device, buffer, repeat (each rest).bufferOperand())
        }
    }
}

extension Tensor {
    static func needsDense(_ op: String, _ shape: [Int]) -> DeviceError {
        .invalidArgument(op: op, "takes dense tensors only, but got a view of shape \(shape) (a transposed, sliced "
            + "or broadcast layout): pass its contiguous() copy (an output must be a dense tensor)")
    }
}

extension Tensor {
    /// Tensors of `shapes` laid out in one flat, zero-filled buffer on `device`, each starting where the device lets a
    /// view start, and the flat tensor itself: an op on the flat tensor (an SGD step) covers every view in one launch.
    /// The views share the flat tensor's memory; the gaps between them stay zero unless written through `flat`.
    ///
    /// `alignment` (in floats) raises the views' alignment, so that arenas of the same shapes on several devices have
    /// the same layout and copy into each other in one piece (see `arenaAlignment(on:)`).
    public static func arena(_ shapes: [[Int]], on device: DeviceTag,
                             alignment: Int = 1) throws -> (flat: Tensor, views: [Tensor]) {
        let backend = try Backend(device)
        let (offsets, end) = try arenaLayout(shapes, on: device, alignment: alignment)
        let flat = try Tensor.empty([end], on: device)
        try flat.fill(0)
        let views = try zip(shapes, offsets).map { shape, offset in
            Tensor(shape: shape, device: device,
                   storage: try backend.view(of: flat.storage, offset: offset, count: shape.reduce(1, *)))
        }
        return (flat, views)
    }

    /// Where `arena(shapes, on: device, alignment:)` places each view in its flat tensor, and the flat tensor's
    /// length.
    package static func arenaLayout(_ shapes: [[Int]], on device: DeviceTag,
                                    alignment: Int = 1) throws -> (offsets: [Int], count: Int) {
        let backend = try Backend(device)
        let align = Swift.max(backend.viewAlignment, alignment)
        guard align % backend.viewAlignment == 0 else {
            throw DeviceError.invalidArgument(op: "arena", "alignment \(alignment) is not a multiple of "
                + "\(device)'s \(backend.viewAlignment)")
        }
        var offsets: [Int] = []
        var end = 0
        for shape in shapes {
            offsets.append(end)
            let (next, overflow) = end.addingReportingOverflow(try checkedCount(shape))
            guard !overflow else {
                throw DeviceError.invalidArgument(op: "arena", "shapes \(shapes) have too many elements")
            }
            end = (next + align - 1) / align * align
        }
        // A zero-sized view still names one float (a buffer region cannot be empty): keep it inside the buffer.
        if shapes.contains(where: { $0.contains(0) }) { end += 1 }
        return (offsets, end)
    }

    /// Elements offset..<offset + count of this dense tensor (an arena's flat tensor, `offset` where
    /// `arenaLayout` puts a view) as a 1-D tensor of its own over the same memory: an op on it covers that stretch
    /// of the arena's views in one launch. Writes through it are not counted as changes of this tensor or of the
    /// views (`markModified`).
    package func region(offset: Int, count: Int) throws -> Tensor {
        guard isDense, offset >= 0, count > 0, offset + count <= self.count else {
            throw DeviceError.invalidArgument(op: "region", "elements \(offset)..<\(offset + count) of a tensor of "
                + "shape \(shape)")
        }
        return Tensor(shape: [count], device: device,
                      storage: try storage.backend.view(of: storage, offset: offset, count: count))
    }
}

extension DeviceTag {
    /// Waits until every command queued on this device has finished (a no-op on cpu). For timing.
    public func synchronize() throws { try Backend(self).synchronize() }
}

extension DeviceTag {
    /// One line naming the device: `cpu`, or `opencl:0 (its name, its platform)`.
    public var summary: String {
        switch kind {
        case .cpu: return "cpu"
        case .opencl:
            guard let info = OpenCLRuntime.shared.devices.indices.contains(index)
                ? OpenCLRuntime.shared.devices[index] : nil
            else { return description }
            return "\(self) (\(info.name), \(info.platform))"
        }
    }

    /// The largest single buffer and the memory the device can still give this process, in bytes (for cpu and
    /// CPU-type OpenCL devices: what `HostMemory.available()` reports; for a GPU, its global memory).
    public var memoryLimits: (maxBuffer: Int, total: Int) {
        switch kind {
        case .cpu: return (Int.max, HostMemory.available().bytes)
        case .opencl:
            guard OpenCLRuntime.shared.devices.indices.contains(index) else { return (0, 0) }
            let info = OpenCLRuntime.shared.devices[index]
            // A CPU-type device (POCL) allocates the process's own memory: its limits apply too.
            let total = info.isCPU ? min(info.globalMemory, HostMemory.available().bytes) : info.globalMemory
            return (info.maxAllocation > 0 ? info.maxAllocation : Int.max, total)
        }
    }
}

extension Tensor {
    /// Where a view into an arena on `device` may start, in floats: the device's sub-buffer alignment (16 on cpu).
    public static func arenaAlignment(on device: DeviceTag) throws -> Int { try Backend(device).viewAlignment }
}
