/// An OpenCL kernel written by the caller — OpenCL C source in a string — with a CPU closure as its fallback and
/// reference, launched on tensors like the built-in ops: on an OpenCL device the kernel runs there (built once per
/// device and options, cached on disk like the built-in kernels); on `cpu` the closure runs on the host memory of
/// the same tensors. A layer of your own can so run its own kernel on the device instead of going through the host.
///
/// ```swift
/// let softsign = CustomKernel(name: "softsign", source: """
///     __kernel void softsign(const int n, __global const float* x, __global float* y) {
///         const int i = get_global_id(0);
///         if (i < n) y[i] = x[i] / (1.0f + fabs(x[i]));
///     }
///     """)
/// try softsign.launch(global: x.count, .int(x.count), .tensor(x), .tensor(y)) { host in
///     let (x, y) = (host[0], host[1])
///     for i in 0..<n { y[i] = x[i] / (1 + abs(x[i])) }
/// }
/// ```
///
/// The tensors (at most six) must share a device; a build failure throws `OpenCLError.buildFailed` with the
/// driver's full log, a bad kernel name or argument `OpenCLError.call` with the OpenCL status name.
public struct CustomKernel: Sendable {
    /// The `__kernel` function to launch.
    public let name: String
    /// Its OpenCL C source (OpenCL 1.2).
    public let source: String
    /// Build options, e.g. `-D WIDTH=4`.
    public let options: String

    /// A kernel `name` of `source`; nothing is built until its first launch on a device.
    public init(name: String, source: String, options: String = "") {
        self.name = name
        self.source = source
        self.options = options
    }

    /// One argument of a launch, in the kernel's parameter order.
    public enum Argument: Sendable {
        /// A `__global float*` parameter: the tensor's memory.
        case tensor(Tensor)
        /// A `const int` parameter.
        case int(Int)
        /// A `const float` parameter.
        case float(Float)
    }

    /// The host memory of a CPU launch's tensor arguments, in the order they were given (`host[0]` is the first
    /// `.tensor`).
    public struct HostTensors {
        fileprivate let pointers: [UnsafeMutablePointer<Float>]
        /// The `i`-th tensor argument's elements.
        public subscript(i: Int) -> UnsafeMutablePointer<Float> { pointers[i] }
        /// How many tensor arguments there are.
        public var count: Int { pointers.count }
    }

    /// Runs the kernel over `global` work-items (one dimension) where the tensors live — or `cpu` on the host.
    /// - Throws: `DeviceError.invalidArgument` without a tensor or with more than six; `DeviceError.deviceMismatch`
    ///   when they live on different devices; `OpenCLError` from the build or the launch.
    public func launch(global: Int, _ arguments: Argument..., cpu: (HostTensors) throws -> Void) throws {
        try launch(global: global, arguments, cpu: cpu)
    }

    /// The same with the arguments as an array.
    public func launch(global: Int, _ arguments: [Argument], cpu: (HostTensors) throws -> Void) throws {
        let tensors = arguments.compactMap { argument -> Tensor? in
            if case let .tensor(t) = argument { return t }
            return nil
        }
        guard let first = tensors.first, tensors.count <= 6 else {
            throw DeviceError.invalidArgument(op: name, "a custom kernel launch takes 1...6 tensor arguments, got \(tensors.count)")
        }
        guard global >= 0 else { throw DeviceError.invalidArgument(op: name, "global size must be ≥ 0, got \(global)") }
        func at(_ i: Int) -> Tensor? { i < tensors.count ? tensors[i] : nil }
        try Tensor.run(name, first, at(1), at(2), at(3), at(4), at(5)) { host in
            try cpu(HostTensors(pointers: tensors.indices.map { host[$0] }))
        } opencl: { d in
            let kernel = try d.device.customKernel(name: name, source: source, options: options)
            try d.device.launch(kernel, global: WorkSize(global)) { a in
                var next = 0
                for argument in arguments {
                    switch argument {
                    case .tensor:
                        try a.buffer(d[next])
                        next += 1
                    case let .int(value): try a.int(value)
                    case let .float(value): try a.float(value)
                    }
                }
            }
        }
    }
}
