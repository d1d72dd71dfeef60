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
/// The tensors (at most six) must share a device. Every launch, on every device, is checked against the kernel's own
/// declaration in `source`: too few or too many arguments, or one of another kind (`.float` for an `int`), is a
/// `DeviceError.invalidArgument` naming the parameter. A build failure throws `OpenCLError.buildFailed` with the
/// driver's full log, a bad kernel name `OpenCLError.call` with the OpenCL status name.
public struct CustomKernel: Sendable {
    /// The `__kernel` function to launch.
    public let name: String
    /// Its OpenCL C source (OpenCL 1.2).
    public let source: String
    /// Build options, e.g. `-D WIDTH=4`.
    public let options: String

    /// The kernel's parameters as its declaration in `source` gives them (nil when it cannot be read there, e.g.
    /// behind a macro): every launch is checked against them, on every device.
    public let parameters: [(name: String, kind: ArgumentKind)]?

    /// What a kernel parameter takes.
    public enum ArgumentKind: String, Sendable {
        /// `__global float*` (any qualifiers): a `.tensor`.
        case tensor
        /// `int` or `uint`: an `.int`.
        case int
        /// `float`: a `.float`.
        case float
    }

    /// A kernel `name` of `source`; nothing is built until its first launch on a device.
    public init(name: String, source: String, options: String = "") {
        self.name = name
        self.source = source
        self.options = options
        parameters = Self.declaredParameters(of: name, in: source)
    }

    /// The parameters of `__kernel void name(...)` in `source`, or nil when the declaration is not there as text.
    static func declaredParameters(of name: String, in source: String) -> [(name: String, kind: ArgumentKind)]? {
        // NOTE: a kernel name is a C identifier; anything else cannot be found (nor put in a pattern) safely.
        guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }),
              let pattern = try? Regex("(__kernel|kernel)\\s+void\\s+\(name)\\s*\\(([^)]*)\\)") else { return nil }
        // Comments out first (a `*`, `,` or `)` in one is not the code's); a kernel declared twice (#ifdef branches)
        // cannot be told apart here: no check then.
        let code = stripComments(source)
        let matches = code.matches(of: pattern)
        guard matches.count == 1, let list = matches[0].output[2].substring else { return nil }
        var parameters: [(String, ArgumentKind)] = []
        for part in list.split(separator: ",") {
            let words = part.replacingOccurrences(of: "*", with: " * ").split(whereSeparator: \.isWhitespace)
            guard let last = words.last else { continue }
            let type = words.dropLast()
            let kind: ArgumentKind
            if type.contains("*") {
                kind = .tensor
            } else if type.contains("float") {
                kind = .float
            } else if type.contains("int") || type.contains("uint") {
                kind = .int
            } else {
                return nil  // a type CLNN cannot pass (long, half, a struct): the launch's own status will say
            }
            parameters.append((String(last), kind))
        }
        return parameters
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
        try check(arguments)
        let tensors = arguments.compactMap { argument -> Tensor? in
            if case let .tensor(t) = argument { return t }
            return nil
        }
        guard let first = tensors.first, tensors.count <= 6 else {
            throw DeviceError.invalidArgument(op: name, "a custom kernel launch takes 1...6 tensor arguments, "
                + "got \(tensors.count)")
        }
        guard global >= 0 else {
            throw DeviceError.invalidArgument(op: name, "global size must be ≥ 0, got \(global)")
        }
        func at(_ i: Int) -> Tensor? { i < tensors.count ? tensors[i] : nil }
        try Tensor.run(name, first, at(1), at(2), at(3), at(4), at(5)) { p0, p1, p2, p3, p4, p5 in
            let pointers = [p0, p1, p2, p3, p4, p5].prefix(tensors.count).compactMap { $0 }
            try cpu(HostTensors(pointers: pointers))
        } opencl: { device, b0, b1, b2, b3, b4, b5 in
            let buffers = [b0, b1, b2, b3, b4, b5].prefix(tensors.count).compactMap { $0 }
            let kernel = try device.customKernel(name: name, source: source, options: options)
            try device.launch(kernel, global: WorkSize(global)) { a in
                var next = 0
                for (i, argument) in arguments.enumerated() {
                    // Named as the declaration names it (checked before); unnamed when it cannot be read.
                    let parameter = parameters.map { $0[i].name } ?? ""
                    switch argument {
                    case .tensor:
                        try a.buffer(parameter, buffers[next])
                        next += 1
                    case let .int(value): try a.int(parameter, value)
                    case let .float(value): try a.float(parameter, value)
                    }
                }
            }
        }
    }

    /// Checks `arguments` against the kernel's declared parameters: their count, and each one's kind.
    /// - Throws: `DeviceError.invalidArgument` naming the parameter that is missing, extra or of another kind.
    func check(_ arguments: [Argument]) throws {
        guard let parameters else { return }
        let names = parameters.map(\.name).joined(separator: ", ")
        if arguments.count != parameters.count {
            let detail = arguments.count < parameters.count
                ? "missing \(parameters[arguments.count...].map { "'\($0.name)'" }.joined(separator: ", "))"
                : "\(arguments.count - parameters.count) more than it declares"
            throw DeviceError.invalidArgument(op: name, "the kernel takes \(parameters.count) arguments (\(names)) "
                + "but the launch "
                + "gave \(arguments.count): \(detail)")
        }
        for (i, (argument, parameter)) in zip(arguments, parameters).enumerated() {
            let given: ArgumentKind
            switch argument {
            case .tensor: given = .tensor
            case .int: given = .int
            case .float: given = .float
            }
            guard given == parameter.kind else {
                throw DeviceError.invalidArgument(op: name, "argument \(i + 1) is a .\(given.rawValue) "
                    + "but parameter '\(parameter.name)' "
                    + "is declared \(parameter.kind == .tensor ? "a __global float pointer" : parameter.kind.rawValue)"
                    + ": pass "
                    + ".\(parameter.kind.rawValue)(…)")
            }
        }
    }

    /// `source` with its `//` and `/* */` comments replaced by spaces.
    static func stripComments(_ source: String) -> String {
        var out = ""
        var rest = Substring(source)
        while let start = rest.firstIndex(of: "/") {
            out += rest[..<start]
            let after = rest[start...].dropFirst()
            if after.first == "/" {
                rest = after.drop(while: { $0 != "\n" })
                out += " "
            } else if after.first == "*", let end = after.dropFirst().range(of: "*/") {
                rest = after.dropFirst()[end.upperBound...]
                out += " "
            } else {
                out += "/"
                rest = after
            }
        }
        return out + rest
    }
}
