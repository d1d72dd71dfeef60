import COpenCL
import Foundation

/// Builds OpenCL programs for one device: from the binary cache (`ProgramCache`) when it holds this
/// (device, driver, options, source), else from source, storing the binary for next time. A build failure carries
/// the driver's full build log.
struct ProgramBuilder {
    let device: OpenCLDevice

    /// The options every program is built with, before its own: OpenCL C 1.2, and the kernels' parameter names and
    /// types kept (`-cl-kernel-arg-info`): launches are checked against them.
    static let standardOptions = "-cl-std=CL1.2 -cl-kernel-arg-info"

    /// A cached binary that fails to load or build is dropped and the source is used.
    func build(name: String, source: String, options: String) throws -> CLProgram {
        guard ProgramCache.enabled(for: device.info) else {
            return try fromSource(name: name, source: source, options: options)
        }
        let file = ProgramCache.file(for: device.info, source: source, options: options)
        if let stored = readRegularFile(file.path).map({ Data($0) }) {
            if let binary = ProgramCache.unwrap(stored), let program = fromBinary(binary, options: options) {
                return program
            }
            unlink(file.path)
        }
        let program = try fromSource(name: name, source: source, options: options)
        if let binary = ProgramCache.binary(of: program.handle) { writeCacheFile(ProgramCache.wrap(binary), to: file) }
        return program
    }

    private func fromBinary(_ binary: Data, options: String) -> CLProgram? {
        var status: cl_int = CL_SUCCESS
        var binaryStatus: cl_int = CL_SUCCESS
        var deviceID: cl_device_id? = device.id
        let handle: cl_program? = binary.withUnsafeBytes { raw in
            var length = raw.count
            var pointer: UnsafePointer<UInt8>? = raw.bindMemory(to: UInt8.self).baseAddress
            return clCreateProgramWithBinary(device.context.handle, 1, &deviceID, &length, &pointer, &binaryStatus,
                                             &status)
        }
        guard let handle else { return nil }
        let program = CLProgram(handle)  // released on every path below that gives up
        guard status == CL_SUCCESS, binaryStatus == CL_SUCCESS else { return nil }
        guard clBuildProgram(handle, 1, &deviceID, Self.standardOptions + " " + options, nil, nil) == CL_SUCCESS else {
            return nil
        }
        return program
    }

    private func fromSource(name: String, source: String, options: String) throws -> CLProgram {
        var status: cl_int = CL_SUCCESS
        let handle: cl_program? = source.withCString { text in
            var strings: [UnsafePointer<CChar>?] = [text]
            var lengths = [source.utf8.count]
            return clCreateProgramWithSource(device.context.handle, 1, &strings, &lengths, &status)
        }
        guard let handle, status == CL_SUCCESS else {
            throw OpenCLError.call("clCreateProgramWithSource(\(name).cl)", status: status)
        }
        let program = CLProgram(handle)
        var deviceID: cl_device_id? = device.id
        let fullOptions = Self.standardOptions + " " + options
        status = clBuildProgram(handle, 1, &deviceID, fullOptions, nil, nil)
        if status != CL_SUCCESS {
            throw OpenCLError.buildFailed(program: "\(name).cl", device: device.info.name, options: fullOptions,
                                          status: status, log: buildLog(handle))
        }
        return program
    }

    private func buildLog(_ program: cl_program) -> String {
        var size = 0
        let param = cl_program_build_info(CL_PROGRAM_BUILD_LOG)
        guard clGetProgramBuildInfo(program, device.id, param, 0, nil, &size) == CL_SUCCESS, size > 0 else { return "" }
        var bytes = [UInt8](repeating: 0, count: size)
        guard clGetProgramBuildInfo(program, device.id, param, size, &bytes, nil) == CL_SUCCESS else { return "" }
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
}
