/// A failed OpenCL call, or a program that would not build.
public enum OpenCLError: Error, CustomStringConvertible, Equatable {
    /// `call` returned `status`.
    case call(String, status: Int32)
    /// A program failed to build; `log` is the driver's full build log.
    case buildFailed(program: String, device: String, options: String, status: Int32, log: String)
    /// A kernel source was not found among the built-in kernels or the override folder.
    case missingSource(String, searched: String)
    /// `CLNN_KERNELS_DIR` names something that is not a readable folder of `.cl` files.
    case badKernelsFolder(String, problem: String)

    public var description: String {
        switch self {
        case let .call(call, status):
            return "\(call) failed: \(openCLStatusName(status)) (\(status))"
        case let .buildFailed(program, device, options, status, log):
            return """
                building OpenCL program '\(program)' for \(device) failed: \(openCLStatusName(status)) (\(status))
                options: \(options.isEmpty ? "(none)" : options)
                build log:
                \(log.isEmpty ? "(empty)" : log)
                """
        case let .missingSource(name, searched):
            return "no OpenCL source '\(name).cl' (searched \(searched))"
        case let .badKernelsFolder(folder, problem):
            return "\(KernelLibrary.overrideVariable)=\(folder): \(problem)"
        }
    }
}

/// Errors from device selection and device-tagged tensor operations.
public enum DeviceError: Error, CustomStringConvertible, Equatable {
    /// A device name that does not parse or names no device; `available` lists those there are.
    case unknownDevice(String, available: [DeviceTag])
    /// The operands of `op` live on two devices.
    case deviceMismatch(op: String, DeviceTag, DeviceTag)
    /// The operands of `op` have shapes it cannot combine.
    case shapeMismatch(op: String, [Int], [Int])
    /// An argument of `op` is out of range; the text says which and why.
    case invalidArgument(op: String, String)
    /// A tensor of `bytes` exceeds what `device` can allocate at once (`limit`).
    case allocationTooLarge(device: DeviceTag, bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case let .unknownDevice(text, available):
            return "unknown device '\(text)'; available devices: "
                + "\(available.map(\.description).joined(separator: ", "))"
        case let .deviceMismatch(op, a, b):
            return "\(op): operands are on different devices (\(a) and \(b)); move one with .to(_:) first"
        case let .shapeMismatch(op, a, b):
            return "\(op): shapes \(a) and \(b) do not fit together"
        case let .invalidArgument(op, why):
            return "\(op): \(why)"
        case let .allocationTooLarge(device, bytes, limit):
            return "cannot allocate \(bytes) bytes on \(device): the device allows at most \(limit) bytes per buffer"
        }
    }
}
