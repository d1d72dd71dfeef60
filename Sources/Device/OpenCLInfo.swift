import COpenCL
import Foundation

/// What CLNN knows about one OpenCL device.
public struct OpenCLDeviceInfo: Sendable {
    /// The index in `DeviceTag.opencl(_:)` terms.
    public let index: Int
    /// CL_DEVICE_NAME.
    public let name: String
    /// The platform’s CL_PLATFORM_NAME.
    public let platform: String
    /// CL_DEVICE_VENDOR.
    public let vendor: String
    /// CL_DEVICE_VERSION, e.g. `OpenCL 3.0 PoCL ...`.
    public let version: String
    /// CL_DRIVER_VERSION.
    public let driverVersion: String
    /// CL_DEVICE_MAX_COMPUTE_UNITS.
    public let computeUnits: Int
    /// CL_DEVICE_GLOBAL_MEM_SIZE, in bytes.
    public let globalMemory: Int
    /// CL_DEVICE_MAX_MEM_ALLOC_SIZE: the largest single buffer, in bytes.
    public let maxAllocation: Int
    /// CL_DEVICE_LOCAL_MEM_SIZE, in bytes.
    public let localMemory: Int
    /// CL_DEVICE_MAX_WORK_GROUP_SIZE.
    public let maxWorkGroupSize: Int
    /// Whether the device type is CL_DEVICE_TYPE_CPU (POCL, rusticl on llvmpipe).
    public let isCPU: Bool
    /// CL_DEVICE_MEM_BASE_ADDR_ALIGN in bytes: where a sub-buffer may start.
    public var baseAddressAlignment: Int = 128
    /// CL_DEVICE_MAX_CLOCK_FREQUENCY in MHz (0 when the driver does not say).
    public var maxClockMHz = 0
    /// CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT.
    public var preferredFloatVectorWidth = 0
    /// Whether the device computes in double precision (CL_DEVICE_DOUBLE_FP_CONFIG is not empty).
    public var hasDouble = false
    /// An NVIDIA GPU's compute capability, major·10 + minor (cl_nv_device_attribute_query), or 0.
    public var nvidiaComputeCapability = 0

    /// The device's peak single-precision rate in GFLOP/s where its FP32 lanes per compute unit are known — NVIDIA
    /// GPUs by compute capability: 64 per SM for 7.x (Volta, Turing) and 8.0 (A100), 128 for 8.6 and later (Ampere's
    /// GA10x, Ada, Hopper, Blackwell) — from the units and the clock; nil elsewhere.
    public var peakGFLOPS: Double? {
        guard !isCPU, maxClockMHz > 0, nvidiaComputeCapability >= 70 else { return nil }
        let lanes: Double = nvidiaComputeCapability >= 86 ? 128 : 64
        return Double(computeUnits) * lanes * 2 * Double(maxClockMHz) / 1000
    }
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
    guard clGetDeviceInfo(device, cl_device_info(param), MemoryLayout<T>.size, &value, nil) == CL_SUCCESS else {
        return 0
    }
    return Int(clamping: value)
}

func platformString(_ platform: cl_platform_id, _ param: Int32) -> String {
    var size = 0
    guard clGetPlatformInfo(platform, cl_platform_info(param), 0, nil, &size) == CL_SUCCESS, size > 0 else {
        return "?"
    }
    var bytes = [CChar](repeating: 0, count: size + 1)
    guard clGetPlatformInfo(platform, cl_platform_info(param), size, &bytes, nil) == CL_SUCCESS else { return "?" }
    return String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        .trimmingCharacters(in: .whitespacesAndNewlines)
}

