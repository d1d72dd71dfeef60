import COpenCL
import Foundation

/// Discovers the OpenCL devices of every platform once, and opens each device's context and queue on first use.
///
/// No ICD, no platform or no device is a normal state: `devices` is then empty and CLNN runs on `cpu`.
public final class OpenCLRuntime: @unchecked Sendable {
    /// The process’s runtime: discovers the devices once; opens each device’s context and queue on first use.
    public static let shared = OpenCLRuntime()

    /// Every OpenCL device, in platform order then device order. `opencl:N` is `devices[N]`.
    public let devices: [OpenCLDeviceInfo]
    /// Why discovery found nothing, when it found nothing (e.g. `clGetPlatformIDs failed: CL_PLATFORM_NOT_FOUND_KHR`).
    public let discoveryNote: String?

    private let ids: [cl_device_id]
    private let lock = NSLock()
    // By index (an array, not a dictionary: every op's result looks its device up here).
    private var opened: [OpenCLDevice?] = []

    private init() {
        var found: [(cl_device_id, OpenCLDeviceInfo)] = []
        var note: String?
        var platformCount: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &platformCount)
        if let why = clnn_opencl_load_error() {
            note = "no OpenCL library could be loaded (\(String(cString: why))); install an OpenCL driver "
                + "(Debian: ocl-icd-libopencl1 and e.g. pocl-opencl-icd)"
        } else if let symbol = clnn_opencl_missing_symbol() {
            note = "the OpenCL library \(String(cString: clnn_opencl_library())) lacks \(String(cString: symbol)): "
                + "it is not an "
                + "OpenCL ICD loader (check CLNN_OPENCL_LIBRARY, or install ocl-icd-libopencl1)"
        } else if status != CL_SUCCESS {
            note = OpenCLError.call("clGetPlatformIDs", status: status).description
        } else if platformCount == 0 {
            note = "no OpenCL platform is installed"
        } else {
            var platforms = [cl_platform_id?](repeating: nil, count: Int(platformCount))
            if clGetPlatformIDs(platformCount, &platforms, nil) == CL_SUCCESS {
                for case let platform? in platforms {
                    let platformName = platformString(platform, CL_PLATFORM_NAME)
                    var deviceCount: cl_uint = 0
                    let type = cl_device_type(CL_DEVICE_TYPE_ALL)
                    guard clGetDeviceIDs(platform, type, 0, nil, &deviceCount) == CL_SUCCESS, deviceCount > 0 else {
                        continue
                    }
                    var ids = [cl_device_id?](repeating: nil, count: Int(deviceCount))
                    guard clGetDeviceIDs(platform, type, deviceCount, &ids, nil) == CL_SUCCESS else { continue }
                    for case let id? in ids {
                        found.append((id, Self.describe(id, index: found.count, platform: platformName)))
                    }
                }
            }
            if found.isEmpty { note = "OpenCL platforms exist but offer no device" }
        }
        ids = found.map(\.0)
        devices = found.map(\.1)
        discoveryNote = note
    }

    private static func describe(_ id: cl_device_id, index: Int, platform: String) -> OpenCLDeviceInfo {
        var type: cl_device_type = 0
        clGetDeviceInfo(id, cl_device_info(CL_DEVICE_TYPE), MemoryLayout<cl_device_type>.size, &type, nil)
        var info = OpenCLDeviceInfo(
            index: index,
            name: deviceString(id, CL_DEVICE_NAME),
            platform: platform,
            vendor: deviceString(id, CL_DEVICE_VENDOR),
            version: deviceString(id, CL_DEVICE_VERSION),
            driverVersion: deviceString(id, CL_DRIVER_VERSION),
            computeUnits: deviceInteger(id, CL_DEVICE_MAX_COMPUTE_UNITS, as: cl_uint.self),
            globalMemory: deviceInteger(id, CL_DEVICE_GLOBAL_MEM_SIZE, as: cl_ulong.self),
            maxAllocation: deviceInteger(id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, as: cl_ulong.self),
            localMemory: deviceInteger(id, CL_DEVICE_LOCAL_MEM_SIZE, as: cl_ulong.self),
            maxWorkGroupSize: deviceInteger(id, CL_DEVICE_MAX_WORK_GROUP_SIZE, as: Int.self),
            isCPU: type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0
        )
        let alignBits = deviceInteger(id, CL_DEVICE_MEM_BASE_ADDR_ALIGN, as: cl_uint.self)
        if alignBits >= 32 { info.baseAddressAlignment = alignBits / 8 }
        info.maxClockMHz = deviceInteger(id, CL_DEVICE_MAX_CLOCK_FREQUENCY, as: cl_uint.self)
        info.preferredFloatVectorWidth = deviceInteger(id, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, as: cl_uint.self)
        info.hasDouble = deviceInteger(id, CL_DEVICE_DOUBLE_FP_CONFIG, as: cl_ulong.self) != 0
        if info.vendor.lowercased().contains("nvidia") {
            // CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV and _MINOR_NV (0x4000, 0x4001).
            let major = deviceInteger(id, 0x4000, as: cl_uint.self), minor = deviceInteger(id, 0x4001, as: cl_uint.self)
            info.nvidiaComputeCapability = major * 10 + minor
        }
        return info
    }

    /// Waits for the queued work of every opened device (errors ignored): call before the process exits, so that
    /// no driver thread is still working while the process tears down.
    public func finishAll() {
        lock.lock()
        let devices = opened.compactMap { $0 }
        lock.unlock()
        for device in devices { try? device.finish() }
    }

    /// The opened device `opencl:index`, creating its context and queue on first use.
    public func device(_ index: Int) throws -> OpenCLDevice {
        lock.lock()
        defer { lock.unlock() }
        if opened.indices.contains(index), let device = opened[index] { return device }
        guard ids.indices.contains(index) else {
            throw DeviceError.unknownDevice("opencl:\(index)",
                                            available: DeviceTag.availableTags(openCLCount: ids.count))
        }
        let device = try OpenCLDevice(id: ids[index], info: devices[index])
        if opened.count <= index { opened += Array(repeating: nil, count: index + 1 - opened.count) }
        opened[index] = device
        return device
    }
}

extension DeviceTag {
    static func availableTags(openCLCount: Int) -> [DeviceTag] {
        [.cpu] + (0..<openCLCount).map { .opencl($0) }
    }
}
