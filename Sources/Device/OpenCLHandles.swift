import COpenCL

/// Throws `OpenCLError.call` unless `status` is `CL_SUCCESS`.
@inline(__always)
func check(_ status: cl_int, _ call: @autoclosure () -> String) throws {
    if status != CL_SUCCESS { throw OpenCLError.call(call(), status: status) }
}

/// The release call of one kind of OpenCL object.
protocol CLObjectKind { static func release(_ handle: OpaquePointer) }
enum ContextKind: CLObjectKind { static func release(_ h: OpaquePointer) { clReleaseContext(h) } }
enum QueueKind: CLObjectKind { static func release(_ h: OpaquePointer) { clReleaseCommandQueue(h) } }
enum ProgramKind: CLObjectKind { static func release(_ h: OpaquePointer) { clReleaseProgram(h) } }
enum KernelKind: CLObjectKind { static func release(_ h: OpaquePointer) { clReleaseKernel(h) } }
enum EventKind: CLObjectKind { static func release(_ h: OpaquePointer) { clReleaseEvent(h) } }

/// Owns one OpenCL handle and releases it exactly once, in deinit. The kind parameter keeps a context from being
/// passed where a queue is expected.
final class CLOwned<Kind: CLObjectKind>: @unchecked Sendable {
    let handle: OpaquePointer
    init(_ handle: OpaquePointer) { self.handle = handle }
    deinit { Kind.release(handle) }
}

typealias CLContext = CLOwned<ContextKind>
typealias CLQueue = CLOwned<QueueKind>
typealias CLProgram = CLOwned<ProgramKind>
typealias CLEvent = CLOwned<EventKind>

/// A kernel with what its launches need to know: its name and CL_KERNEL_WORK_GROUP_SIZE on its device.
final class CLKernel: @unchecked Sendable {
    let owned: CLOwned<KernelKind>
    let name: String
    let maxWorkGroupSize: Int
    /// Its parameters as the driver reports them (built with `-cl-kernel-arg-info`); nil when it cannot.
    let parameters: [KernelParameter]?
    /// Whether a launch has set arguments that matched `parameters` (checked until one does; under the device's lock).
    var argumentsChecked = false
    var handle: OpaquePointer { owned.handle }
    init(_ handle: OpaquePointer, name: String, maxWorkGroupSize: Int, parameters: [KernelParameter]?) {
        owned = CLOwned(handle)
        self.name = name
        self.maxWorkGroupSize = maxWorkGroupSize
        self.parameters = parameters
    }
}

/// A kernel parameter: its name and what a launch passes for it.
struct KernelParameter: Equatable {
    enum Kind: String {
        /// A `__global` (or `__constant`) pointer: a buffer.
        case buffer
        /// A `__local` pointer: work-group memory, given by size.
        case local
        /// `int` or `uint`.
        case int
        /// `float`.
        case float
        /// `int8`: up to eight sizes or strides of a layout.
        case int8
    }
    let name: String
    let kind: Kind

    /// What a launch calls it: `'rows' (int)`.
    var described: String { "'\(name)' (\(kind.rawValue))" }
}

/// A device buffer of `count` floats. It keeps its device (and so its context and queue) alive.
/// NOTE: a released buffer's memory is reused or given back only as its deinit says: the spec defers deleting a
/// released buffer until its commands finish, but not every driver does.
final class CLBuffer: @unchecked Sendable {
    let handle: OpaquePointer
    let count: Int
    let device: OpenCLDevice
    /// For a sub-buffer: the buffer it is a region of (kept alive as long as the region).
    let parent: CLBuffer?
    /// Takes over the reference `handle` came with.
    init(_ handle: OpaquePointer, count: Int, device: OpenCLDevice, parent: CLBuffer? = nil) {
        self.handle = handle
        self.count = count
        self.device = device
        self.parent = parent
    }

    // A whole buffer goes to its device's pool for reuse at once: the queue is in order, so a command that reuses it
    // runs after every command queued with it before. Otherwise (a full pool, a sub-buffer) it is given back to the
    // driver only when the queue has drained.
    deinit {
        if parent == nil && device.bufferPool.put(handle, count: count) { return }
        device.releaseWhenDrained(handle)
    }
}
