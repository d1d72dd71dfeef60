import COpenCL
import Foundation

/// One opened OpenCL device: its context, an in-order queue, its memory, kernel launches, and the cache of its
/// programs and kernels (built by `ProgramBuilder`).
///
/// Every tensor on this device uses this one queue, so commands run in the order they were issued and a read-back
/// sees every earlier write.
public final class OpenCLDevice: @unchecked Sendable {
    /// What the driver reports about the device.
    public let info: OpenCLDeviceInfo
    let id: cl_device_id
    let context: CLContext
    let queue: CLQueue
    /// How the strided kernels cover elements here (strided.cl): a loop over a row's chunk per work-item (CPU-type
    /// devices) or a work-item per element (GPUs). `CLNN_ELEMENT_FORM=row|item` picks one, to test a form on a
    /// device that would not use it.
    let rowLoop: Bool
    /// Buffers of freed tensors kept for reuse (see `BufferPool`): up to 1 GiB or a quarter of the device's memory
    /// (less the host's share for a CPU-type device, whose buffers are host memory). Empty it only after `finish()`:
    /// a kept buffer may still be in use by queued commands.
    let bufferPool: BufferPool<cl_mem>

    private let lock = NSLock()
    private var programs: [String: CLProgram] = [:]
    private var kernels: [String: CLKernel] = [:]
    /// Kernels by `KernelSource.slot`: the launch path's lookup.
    private var slots: [CLKernel?] = []
    /// Buffers used by commands that may not have finished yet, kept alive until the next point where the queue is
    /// known to be drained.
    /// NOTE: the OpenCL spec defers deleting a released buffer until its commands finish, but not every driver
    /// does (oclgrind frees at once and then reports reads of "uninitialised" memory), so we never rely on it.
    /// Host staging memory of a cross-device copy waits here too, until its write has run.
    private var inFlight: [AnyObject] = []
    /// Buffers released by their tensors, to be given back to the driver when the queue drains.
    private var pendingRelease: [cl_mem] = []
    private static let maxInFlight = 4096
    /// Bytes among `inFlight` — host staging memory of cross-device copies, the buffers of copies on this device —
    /// bounded like the count.
    private var inFlightBytes = 0
    private static let maxInFlightBytes = 256 << 20

    init(id: cl_device_id, info: OpenCLDeviceInfo) throws {
        self.id = id
        self.info = info
        let memory = info.isCPU ? min(info.globalMemory, HostMemory.available().bytes) : info.globalMemory
        bufferPool = BufferPool(limit: min(1 << 30, memory / 4)) { clReleaseMemObject($0) }
        switch ProcessInfo.processInfo.environment["CLNN_ELEMENT_FORM"] ?? "" {
        case "": rowLoop = info.isCPU
        case "row": rowLoop = true
        case "item": rowLoop = false
        case let other:
            throw DeviceError.invalidArgument(op: "CLNN_ELEMENT_FORM", "'\(other)' is not a form: row or item")
        }
        var status: cl_int = CL_SUCCESS
        var deviceID: cl_device_id? = id
        guard let ctx = clCreateContext(nil, 1, &deviceID, nil, nil, &status), status == CL_SUCCESS else {
            throw OpenCLError.call("clCreateContext(\(info.name))", status: status)
        }
        context = CLContext(ctx)
        let properties = Profiler.enabled ? cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE) : 0
        guard let q = clCreateCommandQueue(ctx, id, properties, &status), status == CL_SUCCESS else {
            throw OpenCLError.call("clCreateCommandQueue(\(info.name))", status: status)
        }
        queue = CLQueue(q)
    }

    // MARK: Programs and kernels

    /// The program built from kernel file `name` (after its generated header and `prelude`'s text, when given) with
    /// `options`, built once per (device, source, options).
    func program(_ name: String, options: String = "", prelude: String? = nil) throws -> CLProgram {
        let header = KernelLibrary.header(name, rowLoop: rowLoop)
        let source = try header + (prelude.map { try KernelLibrary.source($0) + "\n" } ?? "")
            + KernelLibrary.source(name)
        let key = "\(prelude ?? "")+\(name)|\(options)|\(source.hashValue)"
        lock.lock()
        defer { lock.unlock() }
        if let cached = programs[key] { return cached }
        let program = try ProgramBuilder(device: self).build(name: name, source: source, options: options)
        programs[key] = program
        return program
    }

    /// Builds every kernel file for this device (as the ops will use them, with `KernelLibrary.defaultOptions`) and
    /// returns each build's seconds. Later ops find the programs cached.
    public func buildAllPrograms() throws -> [(file: String, seconds: Double)] {
        try KernelLibrary.names.map { name in
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try program(name, options: KernelLibrary.defaultOptions[name] ?? "")
            return (name, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
    }

    /// Every kernel made on this device so far (for the checks of their parameters).
    var builtKernels: [CLKernel] {
        lock.lock()
        defer { lock.unlock() }
        return Array(kernels.values)
    }

    /// Kernel `kernel` from file `file` built with `options`, cached per device.

    func kernel(_ file: String, _ kernel: String, options: String = "", prelude: String? = nil) throws -> CLKernel {
        let program = try self.program(file, options: options, prelude: prelude)
        let key = "\(ObjectIdentifier(program))|\(kernel)"
        lock.lock()
        defer { lock.unlock() }
        if let cached = kernels[key] { return cached }
        let wrapped = try makeKernel(program, kernel, what: "\(kernel) in \(file).cl")
        kernels[key] = wrapped
        return wrapped
    }

    /// Kernel `name` of a built program, with its largest work-group size on this device.
    private func makeKernel(_ program: CLProgram, _ name: String, what: String) throws -> CLKernel {
        var status: cl_int = CL_SUCCESS
        guard let handle = clCreateKernel(program.handle, name, &status), status == CL_SUCCESS else {
            throw OpenCLError.call("clCreateKernel(\(what))", status: status)
        }
        var wgSize = 0
        status = clGetKernelWorkGroupInfo(handle, id, cl_kernel_work_group_info(CL_KERNEL_WORK_GROUP_SIZE),
                                          MemoryLayout<Int>.size, &wgSize, nil)
        if status != CL_SUCCESS {
            clReleaseKernel(handle)
            throw OpenCLError.call("clGetKernelWorkGroupInfo(\(name))", status: status)
        }
        // A kernel keeps its program alive.
        return CLKernel(handle, name: name, maxWorkGroupSize: wgSize, parameters: Self.parameters(of: handle))
    }

    /// A kernel's parameters as the driver reports them, or nil when it cannot (no `-cl-kernel-arg-info` in a
    /// cached binary, an OpenCL 1.1 driver, a type CLNN does not pass).
    private static func parameters(of kernel: OpaquePointer) -> [KernelParameter]? {
        var count: cl_uint = 0
        guard clGetKernelInfo(kernel, cl_kernel_info(CL_KERNEL_NUM_ARGS), MemoryLayout<cl_uint>.size, &count, nil)
                == CL_SUCCESS else { return nil }
        func text(_ index: cl_uint, _ what: Int32) -> String? {
            var size = 0
            guard clGetKernelArgInfo(kernel, index, cl_kernel_arg_info(what), 0, nil, &size) == CL_SUCCESS, size > 0
            else { return nil }
            var bytes = [CChar](repeating: 0, count: size + 1)
            guard clGetKernelArgInfo(kernel, index, cl_kernel_arg_info(what), size, &bytes, nil) == CL_SUCCESS
            else { return nil }
            return String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        var parameters: [KernelParameter] = []
        for index in 0..<count {
            var qualifier: cl_kernel_arg_address_qualifier = 0
            guard clGetKernelArgInfo(kernel, index, cl_kernel_arg_info(CL_KERNEL_ARG_ADDRESS_QUALIFIER),
                                     MemoryLayout.size(ofValue: qualifier), &qualifier, nil) == CL_SUCCESS,
                  let name = text(index, CL_KERNEL_ARG_NAME), let type = text(index, CL_KERNEL_ARG_TYPE_NAME)
            else { return nil }
            let kind: KernelParameter.Kind
            switch Int32(qualifier) {
            case CL_KERNEL_ARG_ADDRESS_LOCAL: kind = .local
            case CL_KERNEL_ARG_ADDRESS_GLOBAL, CL_KERNEL_ARG_ADDRESS_CONSTANT: kind = .buffer
            default:
                switch type.trimmingCharacters(in: .whitespaces) {
                case "int", "uint", "unsigned int": kind = .int
                case "float": kind = .float
                case "int8": kind = .int8
                default: return nil
                }
            }
            parameters.append(KernelParameter(name: name, kind: kind))
        }
        return parameters
    }

    /// Kernel `name` of a caller's OpenCL C `source` built with `options`: built once per (device, source, options)
    /// — through the on-disk program cache like the built-in kernels — and kept.
    func customKernel(name: String, source: String, options: String) throws -> CLKernel {
        let key = "custom|\(name)|\(options)|\(fnv1a(source))|\(source.utf8.count)"
        lock.lock()
        if let cached = kernels[key] {
            lock.unlock()
            return cached
        }
        lock.unlock()
        let program = try ProgramBuilder(device: self).build(name: "custom kernel \(name)", source: source,
                                                             options: options)
        let wrapped = try makeKernel(program, name, what: "\(name), no __kernel of that name in the source?")
        lock.lock()
        defer { lock.unlock() }
        kernels[key] = kernels[key] ?? wrapped
        return kernels[key]!
    }

    // MARK: Launching

    /// The kernel `source` names, built for this device on first use and found by its slot afterwards.
    func kernel(_ source: KernelSource) throws -> CLKernel {
        lock.lock()
        if source.slot < slots.count, let cached = slots[source.slot] {
            lock.unlock()
            return cached
        }
        lock.unlock()
        let built = try kernel(source.file, source.name, options: source.options, prelude: source.prelude)
        lock.lock()
        defer { lock.unlock() }
        if slots.count <= source.slot { slots += Array(repeating: nil, count: source.slot + 1 - slots.count) }
        slots[source.slot] = built
        return built
    }

    /// Enqueues `kernel` over `global` work-items (rounded up to a multiple of `local` when given), its arguments set
    /// in order by `arguments`.
    /// NOTE: `arguments` runs with the device's lock held: it must not call back into the device (allocate, fetch a
    /// kernel or the placeholder) — resolve those before the launch. A launch with zero work-items does nothing.
    /// `flops` feeds the profiler's GFLOP/s;
    /// its GB/s column counts the bytes of the buffer arguments.
    func launch(_ kernel: CLKernel, global: WorkSize, local: WorkSize? = nil, flops: Double = 0,
                _ arguments: (inout KernelArguments) throws -> Void) throws {
        if global.isEmpty { return }
        let size = local.map { global.rounded(up: $0) } ?? global
        lock.lock()
        defer { lock.unlock() }
        var args = KernelArguments(kernel: kernel, device: self)
        try arguments(&args)
        try args.finish()
        var event: cl_event?
        let status: cl_int = withUnsafeMutablePointer(to: &event) { eventPointer in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 6) { sizes in
                sizes[0] = size.x
                sizes[1] = size.y
                sizes[2] = size.z
                sizes[3] = local?.x ?? 1
                sizes[4] = local?.y ?? 1
                sizes[5] = local?.z ?? 1
                return clEnqueueNDRangeKernel(queue.handle, kernel.handle, cl_uint(size.dimensions), nil,
                                              sizes.baseAddress!, local == nil ? nil : sizes.baseAddress! + 3, 0, nil,
                                              Profiler.enabled ? eventPointer : nil)
            }
        }
        if status != CL_SUCCESS {
            throw OpenCLError.call("clEnqueueNDRangeKernel(\(kernel.name), global \(size), "
                                   + "local \(local.map { "\($0)" } ?? "none"))",
                                   status: status)
        }
        if let event { Profiler.shared.record(kernel.name, CLEvent(event), cost: (flops, args.bytes)) }
    }

    /// Releases `buffer` (a buffer's handle, retained for this) once the queue has drained: the spec defers deleting
    /// a released buffer until its commands finish, but not every driver does. Too many waiting: drain now.
    func releaseWhenDrained(_ buffer: cl_mem) {
        lock.lock()
        pendingRelease.append(buffer)
        let tooMany = pendingRelease.count > Self.maxInFlight
        lock.unlock()
        if tooMany { try? finish() }
    }

    /// Called after a blocking command: everything queued before it has finished. What was held for the queue is let
    /// go outside the lock (a buffer's deinit comes back here).
    private func drained() {
        lock.lock()
        let held = inFlight, released = pendingRelease
        inFlight.removeAll(keepingCapacity: true)
        pendingRelease.removeAll(keepingCapacity: true)
        inFlightBytes = 0
        lock.unlock()
        withExtendedLifetime(held) {}
        for buffer in released { clReleaseMemObject(buffer) }
    }

    /// Keeps the objects of a copy alive until the queue next drains. Returns whether too many (or too many bytes)
    /// are held — a loop of copies with nothing that waits —, when the caller must `finish()`.
    private func holdCopy(_ objects: [AnyObject], bytes: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        inFlight += objects
        inFlightBytes += bytes
        return inFlight.count > Self.maxInFlight || inFlightBytes > Self.maxInFlightBytes
    }

    /// The objects held for the queue now (`holdCopy`), for tests.
    package var heldForQueue: (count: Int, bytes: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (inFlight.count, inFlightBytes)
    }

    // MARK: Memory

    /// A one-float buffer bound to kernel arguments that a launch does not use (a kernel argument must always be
    /// a valid buffer), so that no two arguments alias.
    func placeholder() throws -> CLBuffer {
        lock.lock()
        defer { lock.unlock() }
        if let buffer = placeholderBuffer { return buffer }
        let buffer = try makeBuffer(count: 1)
        placeholderBuffer = buffer
        return buffer
    }
    private var placeholderBuffer: CLBuffer?

    /// A new buffer of `count` floats (uninitialised).
    func makeBuffer(count: Int) throws -> CLBuffer {
        let bytes = max(count, 1) * MemoryLayout<Float>.size
        if bytes > info.maxAllocation && info.maxAllocation > 0 {
            throw DeviceError.allocationTooLarge(device: .opencl(info.index), bytes: bytes, limit: info.maxAllocation)
        }
        if let kept = bufferPool.take(count) { return CLBuffer(kept, count: count, device: self) }
        var status: cl_int = CL_SUCCESS
        var mem = clCreateBuffer(context.handle, cl_mem_flags(CL_MEM_READ_WRITE), bytes, nil, &status)
        if mem == nil || status != CL_SUCCESS {
            // Buffers kept for reuse may be what is missing: give them back (once nothing queued uses them) and
            // try once more.
            try? finish()
            bufferPool.drain()
            mem = clCreateBuffer(context.handle, cl_mem_flags(CL_MEM_READ_WRITE), bytes, nil, &status)
        }
        guard let mem, status == CL_SUCCESS else {
            throw OpenCLError.call("clCreateBuffer(\(bytes) bytes on \(info.name))", status: status)
        }
        return CLBuffer(mem, count: count, device: self)
    }

    /// Floats `offset..<offset + count` of `buffer` as a buffer of their own (a sub-buffer sharing its memory).
    /// `offset` must be a multiple of `info.baseAddressAlignment` bytes.
    func makeSubBuffer(of buffer: CLBuffer, offset: Int, count: Int) throws -> CLBuffer {
        var region = cl_buffer_region(origin: offset * MemoryLayout<Float>.size,
                                      size: max(count, 1) * MemoryLayout<Float>.size)
        var status: cl_int = CL_SUCCESS
        guard let mem = clCreateSubBuffer(buffer.handle, cl_mem_flags(CL_MEM_READ_WRITE),
                                          cl_buffer_create_type(CL_BUFFER_CREATE_TYPE_REGION), &region, &status),
              status == CL_SUCCESS else {
            throw OpenCLError.call("clCreateSubBuffer(\(count) floats at \(offset) on \(info.name))", status: status)
        }
        return CLBuffer(mem, count: count, device: self, parent: buffer)
    }

    /// Copies `count` floats from host memory into `buffer` (blocking: the host memory may be reused at once).
    func write(_ buffer: CLBuffer, from source: UnsafeRawPointer, count: Int, at offset: Int = 0) throws {
        guard count > 0 else { return }
        try check(clEnqueueWriteBuffer(queue.handle, buffer.handle, cl_bool(CL_TRUE), offset * MemoryLayout<Float>.size,
                                       count * MemoryLayout<Float>.size, source, 0, nil, nil),
                  "clEnqueueWriteBuffer(\(count) floats)")
    }

    /// Copies `count` floats from `buffer` into host memory, after every command queued before it.
    func read(_ buffer: CLBuffer, into destination: UnsafeMutableRawPointer, count: Int) throws {
        guard count > 0 else { return }
        try check(clEnqueueReadBuffer(queue.handle, buffer.handle, cl_bool(CL_TRUE), 0,
                                      count * MemoryLayout<Float>.size, destination, 0, nil, nil),
                  "clEnqueueReadBuffer(\(count) floats)")
        drained()
    }

    /// Copies `count` floats between two buffers of this device.
    func copy(_ source: CLBuffer, to destination: CLBuffer, count: Int) throws {
        guard count > 0 else { return }
        try check(clEnqueueCopyBuffer(queue.handle, source.handle, destination.handle, 0, 0,
                                      count * MemoryLayout<Float>.size, 0, nil, nil),
                  "clEnqueueCopyBuffer(\(count) floats)")
        // (Bounded: a loop of copies that never reads back held every source until the next read — a batch norm's
        // running statistics, updated by a copy each step, grew a GPU run's memory without limit.)
        if holdCopy([source, destination], bytes: 2 * count * MemoryLayout<Float>.size) { try finish() }
    }

    /// Copies `count` floats from `source`, a buffer of another device (another context), into `destination` of
    /// this device without blocking the host: `source`'s device reads into host staging memory, and the write into
    /// `destination` waits in this device's queue for that read (a user event completed by the read's callback).
    /// Commands queued later on either device are ordered after the copy as usual, and neither queue drains.
    /// Falls back to a blocking copy where the driver refuses a step.
    func copyAcross(from source: CLBuffer, to destination: CLBuffer, count: Int) throws {
        guard count > 0 else { return }
        let bytes = count * MemoryLayout<Float>.size
        let staging = try HostBuffer(count: count)
        let from = source.device
        var readEvent: cl_event?
        try check(clEnqueueReadBuffer(from.queue.handle, source.handle, cl_bool(CL_FALSE), 0, bytes, staging.pointer,
                                      0, nil, &readEvent), "clEnqueueReadBuffer(\(count) floats, non-blocking)")
        guard let readEvent else { throw OpenCLError.call("clEnqueueReadBuffer (no event)", status: CL_INVALID_EVENT) }
        // The read must start without a later finish on its device, or the write would wait forever.
        try check(clFlush(from.queue.handle), "clFlush(\(from.info.name))")
        if from.holdCopy([source, staging], bytes: bytes) {
            do { try from.finish() } catch {
                clReleaseEvent(readEvent)
                throw error
            }
        }
        var status: cl_int = CL_SUCCESS
        guard let gate = clCreateUserEvent(context.handle, &status), status == CL_SUCCESS else {
            defer { clReleaseEvent(readEvent) }
            var wait: cl_event? = readEvent
            try check(clWaitForEvents(1, &wait), "clWaitForEvents(read from \(from.info.name))")
            return try write(destination, from: staging.pointer, count: count)
        }
        var gateList: cl_event? = gate
        status = clEnqueueWriteBuffer(queue.handle, destination.handle, cl_bool(CL_FALSE), 0, bytes, staging.pointer,
                                      1, &gateList, nil)
        guard status == CL_SUCCESS else {
            clReleaseEvent(gate)
            var wait: cl_event? = readEvent
            clWaitForEvents(1, &wait)
            clReleaseEvent(readEvent)
            throw OpenCLError.call("clEnqueueWriteBuffer(\(count) floats, after a read on \(from.info.name))",
                                   status: status)
        }
        let full = holdCopy([destination, staging], bytes: bytes)
        // The callback owns both events from here: it opens the gate (or fails it with the read's error status).
        let events = Unmanaged.passRetained(CrossDeviceGate(read: readEvent, gate: gate)).toOpaque()
        status = clSetEventCallback(readEvent, CL_COMPLETE, { _, readStatus, userData in
            guard let userData else { return }
            let events = Unmanaged<CrossDeviceGate>.fromOpaque(userData).takeRetainedValue()
            clSetUserEventStatus(events.gate, readStatus < 0 ? readStatus : CL_COMPLETE)
            clReleaseEvent(events.gate)
            clReleaseEvent(events.read)
        }, events)
        if status != CL_SUCCESS {
            // No callback will come: wait for the read here and open the gate ourselves.
            Unmanaged<CrossDeviceGate>.fromOpaque(events).release()
            var wait: cl_event? = readEvent
            let waited = clWaitForEvents(1, &wait)
            clSetUserEventStatus(gate, waited == CL_SUCCESS ? CL_COMPLETE : waited)
            clReleaseEvent(gate)
            clReleaseEvent(readEvent)
            try check(waited, "clWaitForEvents(read from \(from.info.name))")
        }
        // Only now, with the gate's opener in place, may this queue be waited for.
        if full { try finish() }
    }

    /// Waits for every queued command to finish.
    public func finish() throws {
        try check(clFinish(queue.handle), "clFinish(\(info.name))")
        drained()
    }
}

/// The two events of one cross-device copy, handed to the read's completion callback.
private final class CrossDeviceGate {
    let read: cl_event
    let gate: cl_event
    init(read: cl_event, gate: cl_event) { (self.read, self.gate) = (read, gate) }
}

/// Sets a kernel's arguments in order, during `OpenCLDevice.launch` (the device's lock is held).
struct KernelArguments {
    fileprivate let kernel: CLKernel
    fileprivate let device: OpenCLDevice
    private var index: cl_uint = 0
    /// Bytes of the buffer arguments, for the profiler.
    fileprivate private(set) var bytes = 0.0

    fileprivate init(kernel: CLKernel, device: OpenCLDevice) {
        self.kernel = kernel
        self.device = device
    }

    /// Sets the next argument: parameter `name` (empty: any name) of `kind`. Until a launch of the kernel has matched
    /// them, the name and kind are checked against the kernel's parameters, so an argument in the wrong place is an
    /// error naming both, not a wrong buffer read.
    private mutating func set(_ name: String, _ kind: KernelParameter.Kind, _ size: Int,
                              _ value: UnsafeRawPointer?) throws {
        if !kernel.argumentsChecked, let parameters = kernel.parameters {
            guard Int(index) < parameters.count else {
                throw DeviceError.invalidArgument(op: kernel.name, "argument \(index + 1) '\(name)' (\(kind.rawValue)) "
                    + "is one "
                    + "more than the kernel's \(parameters.count) parameters")
            }
            let expected = parameters[Int(index)]
            guard expected.kind == kind, name.isEmpty || expected.name == name else {
                throw DeviceError.invalidArgument(op: kernel.name, "argument \(index + 1) is given as "
                    + "\(KernelParameter(name: name, kind: kind).described) but the kernel declares "
                    + "\(expected.described) there")
            }
        }
        let status = clSetKernelArg(kernel.handle, index, size, value)
        if status != CL_SUCCESS {
            throw OpenCLError.call("clSetKernelArg(\(kernel.name), arg \(index))", status: status)
        }
        index += 1
    }

    /// After the last argument: every parameter was given one (checked until a launch has matched).
    fileprivate func finish() throws {
        guard !kernel.argumentsChecked else { return }
        if let parameters = kernel.parameters, Int(index) < parameters.count {
            throw DeviceError.invalidArgument(op: kernel.name, "the launch gave \(index) arguments "
                + "but the kernel declares "
                + "\(parameters.count): missing \(parameters[Int(index)...].map(\.described).joined(separator: ", "))")
        }
        kernel.argumentsChecked = true
    }

    /// A buffer argument for parameter `name`; the buffer is kept alive until the queue drains.
    mutating func buffer(_ name: String, _ buffer: CLBuffer) throws {
        var mem: cl_mem? = buffer.handle
        try set(name, .buffer, MemoryLayout<cl_mem>.size, &mem)
        bytes += Double(buffer.count * 4)
    }

    mutating func int(_ name: String, _ value: Int) throws {
        var v = cl_int(truncatingIfNeeded: value)
        try set(name, .int, MemoryLayout<cl_int>.size, &v)
    }

    /// Up to eight ints (the rest zero) as an `int8` parameter.
    mutating func int8(_ name: String, _ values: [Int]) throws {
        precondition(values.count <= 8, "an int8 argument holds at most 8 values")
        var v = (cl_int(0), cl_int(0), cl_int(0), cl_int(0), cl_int(0), cl_int(0), cl_int(0), cl_int(0))
        withUnsafeMutableBytes(of: &v) { raw in
            let ints = raw.bindMemory(to: cl_int.self)
            for (i, value) in values.enumerated() { ints[i] = cl_int(truncatingIfNeeded: value) }
        }
        try set(name, .int8, MemoryLayout<cl_int>.size * 8, &v)
    }

    mutating func float(_ name: String, _ value: Float) throws {
        var v = value
        try set(name, .float, MemoryLayout<Float>.size, &v)
    }

    /// `floats` floats of work-group local memory for parameter `name`.
    mutating func local(_ name: String, floats: Int) throws {
        try set(name, .local, floats * MemoryLayout<Float>.size, nil)
    }
}
