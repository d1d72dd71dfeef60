/// Where a tensor lives: the host (`cpu`) or one OpenCL device, by its index in the list of all OpenCL devices
/// across all platforms (platform order, then device order, as the ICD loader reports them).
///
/// A tag is a plain value: it holds no handles. It prints and parses as `cpu`, `opencl` (index 0) or `opencl:N`.
public struct DeviceTag: Hashable, Sendable, CustomStringConvertible {
    /// What kind of device a tag names.
    public enum Kind: Hashable, Sendable {
        /// The host, with the CPU fallbacks.
        case cpu
        /// An OpenCL device.
        case opencl
    }

    /// Host or OpenCL.
    public let kind: Kind
    /// The OpenCL device index; 0 for `cpu`.
    public let index: Int

    /// A tag of `kind`; `index` is the OpenCL device index (0 for cpu). Existence is checked when the device is used.
    public init(kind: Kind, index: Int) {
        self.kind = kind
        self.index = index
    }

    /// The host.
    public static let cpu = DeviceTag(kind: .cpu, index: 0)
    /// OpenCL device `index` in the list of all OpenCL devices.
    public static func opencl(_ index: Int = 0) -> DeviceTag { DeviceTag(kind: .opencl, index: index) }

    public var description: String {
        switch kind {
        case .cpu: return "cpu"
        case .opencl: return "opencl:\(index)"
        }
    }

    /// Whether the tag names an OpenCL device.
    public var isOpenCL: Bool { kind == .opencl }

    /// Parses `cpu`, `opencl` or `opencl:N` and checks that the device exists.
    /// - Throws: `DeviceError.unknownDevice` listing the valid devices.
    public init(parsing text: String) throws {
        let available = DeviceTag.available
        guard let tag = DeviceTag.parseSyntax(text) else {
            throw DeviceError.unknownDevice(text, available: available)
        }
        guard available.contains(tag) else {
            throw DeviceError.unknownDevice(text, available: available)
        }
        self = tag
    }

    /// Parses the spelling only, without checking that the device exists.
    public static func parseSyntax(_ text: String) -> DeviceTag? {
        let lower = text.lowercased()
        if lower == "cpu" { return .cpu }
        if lower == "opencl" { return .opencl(0) }
        guard lower.hasPrefix("opencl:") else { return nil }
        let digits = lower.dropFirst("opencl:".count)
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
              digits.count <= 6, let index = Int(digits) else { return nil }
        return .opencl(index)
    }

    /// Every device on this machine: `cpu` first, then each OpenCL device.
    public static var available: [DeviceTag] {
        availableTags(openCLCount: OpenCLRuntime.shared.devices.count)
    }

    /// The first OpenCL device, or `cpu` when there is none.
    public static var preferred: DeviceTag {
        OpenCLRuntime.shared.devices.isEmpty ? .cpu : .opencl(0)
    }
}
