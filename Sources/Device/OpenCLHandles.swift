import COpenCL

// Owning wrappers over OpenCL handles: each releases its handle exactly once, in deinit.

/// Throws `OpenCLError.call` unless `status` is `CL_SUCCESS`.
@inline(__always)
func check(_ status: cl_int, _ call: @autoclosure () -> String) throws {
    if status != CL_SUCCESS { throw OpenCLError.call(call(), status: status) }
}

final class CLContext: @unchecked Sendable {
    let handle: cl_context
    init(_ handle: cl_context) { self.handle = handle }
    deinit { clReleaseContext(handle) }
}

final class CLQueue: @unchecked Sendable {
    let handle: cl_command_queue
    init(_ handle: cl_command_queue) { self.handle = handle }
    deinit { clReleaseCommandQueue(handle) }
}

final class CLProgram: @unchecked Sendable {
    let handle: cl_program
    init(_ handle: cl_program) { self.handle = handle }
    deinit { clReleaseProgram(handle) }
}

final class CLKernel: @unchecked Sendable {
    let handle: cl_kernel
    let name: String
    /// CL_KERNEL_WORK_GROUP_SIZE for the device it was built for.
    let maxWorkGroupSize: Int
    init(_ handle: cl_kernel, name: String, maxWorkGroupSize: Int) {
        self.handle = handle
        self.name = name
        self.maxWorkGroupSize = maxWorkGroupSize
    }
    deinit { clReleaseKernel(handle) }
}

final class CLEvent: @unchecked Sendable {
    let handle: cl_event
    init(_ handle: cl_event) { self.handle = handle }
    deinit { clReleaseEvent(handle) }
}

/// A device buffer of `count` floats. It keeps its device (and so its context and queue) alive.
final class CLBuffer: @unchecked Sendable {
    let handle: cl_mem
    let count: Int
    let device: OpenCLDevice
    init(_ handle: cl_mem, count: Int, device: OpenCLDevice) {
        self.handle = handle
        self.count = count
        self.device = device
    }
    // NOTE: OpenCL keeps the memory alive until queued commands that use it have finished, so releasing here
    // while a kernel is still in flight is safe.
    deinit { clReleaseMemObject(handle) }
}
