import COpenCL
import Foundation

/// What CLNN knows about one OpenCL device.
public struct OpenCLDeviceInfo: Sendable {
    public let index: Int
    public let name: String
    public let platform: String
    public let vendor: String
    public let version: String
    public let driverVersion: String
    public let computeUnits: Int
    public let globalMemory: Int
    public let maxAllocation: Int
    public let localMemory: Int
    public let maxWorkGroupSize: Int
    public let isCPU: Bool
    /// CL_DEVICE_MEM_BASE_ADDR_ALIGN in bytes: where a sub-buffer may start.
    public var baseAddressAlignment: Int = 128
}

func deviceString(_ device: cl_device_id, _ param: Int32) -> String {
    var size = 0
    guard clGetDeviceInfo(device, cl_device_info(param), 0, nil, &size) == CL_SUCCESS, size > 0 else { return "?" }
    var bytes = [CChar](repeating: 0, count: size + 1)
    guard clGetDeviceInfo(device, cl_device_info(param), size, &bytes, nil) == CL_SUCCESS else { return "?" }
    return String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        .trimmingCharacters(in: .whitespacesAndNewlines)
}

func deviceInteger<T: FixedWidthInteger>(_ device: cl_device_id, _ param: Int32, as: T.Type) -> Int {
    var value: T = 0
    guard clGetDeviceInfo(device, cl_device_info(param), MemoryLayout<T>.size, &value, nil) == CL_SUCCESS else { return 0 }
    return Int(clamping: value)
}

func platformString(_ platform: cl_platform_id, _ param: Int32) -> String {
    var size = 0
    guard clGetPlatformInfo(platform, cl_platform_info(param), 0, nil, &size) == CL_SUCCESS, size > 0 else { return "?" }
    var bytes = [CChar](repeating: 0, count: size + 1)
    guard clGetPlatformInfo(platform, cl_platform_info(param), size, &bytes, nil) == CL_SUCCESS else { return "?" }
    return String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        .trimmingCharacters(in: .whitespacesAndNewlines)
}

