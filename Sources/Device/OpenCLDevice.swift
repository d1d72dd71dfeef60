import COpenCL
import Foundation

/// An argument to a kernel launch.
enum KernelArg {
    case buffer(CLBuffer)
    case int(Int)
    case float(Float)
    /// `floats` floats of work-group local memory.
    case local(floats: Int)
}

/// One opened OpenCL device: its context, an in-order queue, its memory, kernel launches, and the cache of its
/// programs and kernels (built by `ProgramBuilder`).
///
/// Every tensor on this device uses this one queue, so commands run in the order they were issued and a read-back
/// sees every earlier write.
public final class OpenCLDevice: @unchecked Sendable {
    public let info: OpenCLDeviceInfo
    let id: cl_device_id
    let context: CLContext
    let queue: CLQueue

    private let lock = NSLock()
    private var programs: [String: CLProgram] = [:]
    private var kernels: [String: CLKernel] = [:]
    /// Buffers used by commands that may not have finished yet, kept alive until the next point where the queue is
    /// known to be drained.
    /// NOTE: the OpenCL spec defers deleting a released buffer until its commands finish, but not every driver
    /// does (oclgrind frees at once and then reports reads of "uninitialised" memory), so we never rely on it.
    private var inFlight: [CLBuffer] = []
    private static let maxInFlight = 4096

    init(id: cl_device_id, info: OpenCLDeviceInfo) throws {
        self.id = id
        self.info = info
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

    /// The program built from kernel file `name` with `options`, built once per (device, source, options).
    func program(_ name: String, options: String = "") throws -> CLProgram {
        let source = try KernelLibrary.source(name)
        let key = "\(name)|\(options)|\(source.hashValue)"
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

    /// Kernel `kernel` from file `file` built with `options`, cached per device.
    func kernel(_ file: String, _ kernel: String, options: String = "") throws -> CLKernel {
        let program = try self.program(file, options: options)
        let key = "\(ObjectIdentifier(program))|\(kernel)"
        lock.lock()
        defer { lock.unlock() }
        if let cached = kernels[key] { return cached }
        var status: cl_int = CL_SUCCESS
        guard let handle = clCreateKernel(program.handle, kernel, &status), status == CL_SUCCESS else {
            throw OpenCLError.call("clCreateKernel(\(kernel) in \(file).cl)", status: status)
        }
        var wgSize = 0
        status = clGetKernelWorkGroupInfo(handle, id, cl_kernel_work_group_info(CL_KERNEL_WORK_GROUP_SIZE),
                                          MemoryLayout<Int>.size, &wgSize, nil)
        if status != CL_SUCCESS {
            clReleaseKernel(handle)
            throw OpenCLError.call("clGetKernelWorkGroupInfo(\(kernel))", status: status)
        }
        let wrapped = CLKernel(handle, name: kernel, maxWorkGroupSize: wgSize)
        kernels[key] = wrapped
        return wrapped
    }

    // MARK: Launching

    /// Enqueues `kernel` over `global` work-items (rounded up to a multiple of `local` when given).
    /// A launch with zero work-items does nothing.
    /// `cost` (flops, bytes moved) feeds the profiler's GFLOP/s and GB/s columns.
    func launch(_ kernel: CLKernel, _ args: [KernelArg], global: [Int], local: [Int]? = nil,
                cost: (flops: Double, bytes: Double) = (0, 0)) throws {
        if global.contains(0) { return }
        var globalSize = global
        if let local {
            for d in globalSize.indices { globalSize[d] = (globalSize[d] + local[d] - 1) / local[d] * local[d] }
        }
        lock.lock()
        defer { lock.unlock() }
        for (i, arg) in args.enumerated() {
            let status: cl_int
            switch arg {
            case .buffer(let buffer):
                var mem: cl_mem? = buffer.handle
                status = clSetKernelArg(kernel.handle, cl_uint(i), MemoryLayout<cl_mem>.size, &mem)
            case .int(let value):
                var v = cl_int(truncatingIfNeeded: value)
                status = clSetKernelArg(kernel.handle, cl_uint(i), MemoryLayout<cl_int>.size, &v)
            case .float(let value):
                var v = value
                status = clSetKernelArg(kernel.handle, cl_uint(i), MemoryLayout<Float>.size, &v)
            case .local(let floats):
                status = clSetKernelArg(kernel.handle, cl_uint(i), floats * MemoryLayout<Float>.size, nil)
            }
            try check(status, "clSetKernelArg(\(kernel.name), arg \(i))")
        }
        var event: cl_event?
        let status: cl_int = withUnsafeMutablePointer(to: &event) { eventPointer in
            clEnqueueNDRangeKernel(queue.handle, kernel.handle, cl_uint(global.count), nil, globalSize, local, 0, nil,
                                   Profiler.enabled ? eventPointer : nil)
        }
        try check(status, "clEnqueueNDRangeKernel(\(kernel.name), global \(globalSize), local \(local ?? []))")
        if let event { Profiler.shared.record(kernel.name, CLEvent(event), cost: cost) }
        for case .buffer(let buffer) in args { inFlight.append(buffer) }
        if inFlight.count > Self.maxInFlight {
            try check(clFinish(queue.handle), "clFinish(\(info.name))")
            inFlight.removeAll(keepingCapacity: true)
        }
    }

    /// Called after a blocking command: everything queued before it has finished.
    private func drained() {
        lock.lock()
        inFlight.removeAll(keepingCapacity: true)
        lock.unlock()
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
        var status: cl_int = CL_SUCCESS
        guard let mem = clCreateBuffer(context.handle, cl_mem_flags(CL_MEM_READ_WRITE), bytes, nil, &status),
              status == CL_SUCCESS else {
            throw OpenCLError.call("clCreateBuffer(\(bytes) bytes on \(info.name))", status: status)
        }
        return CLBuffer(mem, count: count, device: self)
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
        lock.lock()
        inFlight += [source, destination]
        lock.unlock()
    }

    /// Waits for every queued command to finish.
    public func finish() throws {
        try check(clFinish(queue.handle), "clFinish(\(info.name))")
        drained()
    }
}
