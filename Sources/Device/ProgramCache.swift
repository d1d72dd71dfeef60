import COpenCL
import Foundation
import Synchronization

/// Where CLNN keeps its caches: `CLNN_CACHE_DIR`, else `$XDG_CACHE_HOME/clnn`, else `~/.cache/clnn`.
func clnnCacheFolder(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
    if let dir = environment["CLNN_CACHE_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
    if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
        return URL(fileURLWithPath: xdg).appendingPathComponent("clnn")
    }
    return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/clnn")
}

/// Writes `data` to `file` through a temporary file and a rename. Best effort: a cache that cannot be written
/// only means doing the work again next time — which is said once per process, with the reason, so a user whose
/// cache folder is unwritable learns why every run tunes and compiles again. Returns whether the file was written.
@discardableResult
func writeCacheFile(_ data: Data, to file: URL) -> Bool {
    let folder = file.deletingLastPathComponent()
    try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    // (A name of this write's own: two threads writing one key — two devices of one name — shared `.file.pid`, and
    // the second rename found it gone.)
    let serial = cacheWrites.wrappingAdd(1, ordering: .relaxed).oldValue
    let temp = folder.appendingPathComponent(".\(file.lastPathComponent).\(getpid()).\(serial)")
    let fd = open(temp.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
        var code = errno
        // The folder could not be made: its own reason (a read-only file system, say) is the one to give — unless it
        // is there already (a folder of /proc, where no file can be made): then the file's reason stands.
        if code == ENOENT, mkdir(folder.path, 0o755) != 0, errno != EEXIST { code = errno }
        return cacheNotWritten(folder, code)
    }
    let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    let code = errno
    close(fd)
    guard written == data.count else {
        unlink(temp.path)
        return cacheNotWritten(folder, written < 0 ? code : ENOSPC)
    }
    if rename(temp.path, file.path) != 0 {
        let code = errno
        unlink(temp.path)
        return cacheNotWritten(folder, code)
    }
    return true
}

/// Runs `body` (a read, change and write of `file`) holding `flock` on `.NAME.lock` beside it, so that two threads
/// (two devices of one name share a file) or two processes (ranks on one host) adding to one cache file do not
/// each write back what they read and drop the other's addition. The lock file stays (it is empty; another user's
/// is opened read-only, which `flock` takes). A cache is best effort: without a lock file (a folder that cannot be
/// written: the write fails anyway), or when the lock is not had within `cacheLockSeconds` (a holder stopped with
/// Ctrl-Z), `body` runs unlocked.
func withCacheFileLock<T>(_ file: URL, _ body: () -> T) -> T {
    let folder = file.deletingLastPathComponent()
    try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let path = folder.appendingPathComponent(".\(file.lastPathComponent).lock").path
    var fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    if fd < 0 { fd = open(path, O_RDONLY | O_CLOEXEC) }
    guard fd >= 0 else { return body() }
    defer { close(fd) }  // (closing releases the lock)
    let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(cacheLockSeconds * 1e9)
    while flock(fd, LOCK_EX | LOCK_NB) != 0, errno == EWOULDBLOCK || errno == EINTR,
          DispatchTime.now().uptimeNanoseconds < deadline {
        usleep(5_000)
    }
    return body()
}

/// How long `withCacheFileLock` waits for another holder (whose read, change and write take milliseconds).
let cacheLockSeconds = 10.0

/// Counts the cache files written, process-wide (their temporary names).
private let cacheWrites = Atomic<Int>(0)

nonisolated(unsafe) private var cacheWarned = false
private let cacheWarnLock = NSLock()

/// Says once per process that the cache folder cannot be written, and why. False (the file was not written).
private func cacheNotWritten(_ folder: URL, _ code: Int32) -> Bool {
    cacheWarnLock.lock()
    defer { cacheWarnLock.unlock() }
    guard !cacheWarned else { return false }
    cacheWarned = true
    let why = String(cString: strerror(code))
    let message = "cannot write the cache folder \(folder.path) (\(why)): GEMM tuning and kernel builds are redone "
        + "in every run; set CLNN_CACHE_DIR to a writable folder"
    CLNNLog.logger.warning("\(message)")
    return false
}


/// Compiled program binaries on disk, for drivers without a kernel cache of their own.
///
/// POCL caches compiled kernels itself (`~/.cache/pocl`), so by default this cache is used for every other platform.
/// `CLNN_PROGRAM_CACHE=1` forces it on, `0` off. Entries are keyed by device name, driver and OpenCL version, build
/// options and the source text, so a changed kernel or driver never loads a stale binary.
enum ProgramCache {
    static func enabled(for info: OpenCLDeviceInfo) -> Bool {
        switch ProcessInfo.processInfo.environment["CLNN_PROGRAM_CACHE"] {
        case "1": return true
        case "0": return false
        default: return !info.platform.contains("Portable Computing Language")
        }
    }

    static func file(for info: OpenCLDeviceInfo, source: String, options: String) -> URL {
        let key = fnv1a("\(info.name)|\(info.driverVersion)|\(info.version)|"
            + "\(ProgramBuilder.standardOptions) \(options)|\(source)")
        return clnnCacheFolder().appendingPathComponent("programs/\(key).bin")
    }

    /// The on-disk form: "CLNNBIN1", the payload's length and FNV-1a hash (little-endian UInt64s), the payload.
    /// NOTE: the envelope is checked before the driver sees a byte: rusticl aborts the process on a corrupt binary.
    static let magic = Array("CLNNBIN1".utf8)

    static func wrap(_ payload: Data) -> Data {
        var out = Data(magic)
        withUnsafeBytes(of: UInt64(payload.count).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: fnv1a(payload).littleEndian) { out.append(contentsOf: $0) }
        return out + payload
    }

    /// The payload of a cache file, or nil when the envelope is damaged in any way.
    static func unwrap(_ file: Data) -> Data? {
        let bytes = [UInt8](file)
        guard bytes.count >= 24, Array(bytes[0..<8]) == magic else { return nil }
        func u64(_ at: Int) -> UInt64 { bytes[at..<at + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        let payload = Data(bytes[24...])
        guard u64(8) == UInt64(payload.count), u64(16) == fnv1a(payload), !payload.isEmpty else { return nil }
        return payload
    }


    /// The binary of a built program for its one device.
    static func binary(of program: cl_program) -> Data? {
        var size = 0
        guard clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARY_SIZES), MemoryLayout<Int>.size, &size, nil)
                == CL_SUCCESS, size > 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: size)
        let status = bytes.withUnsafeMutableBufferPointer { buffer -> cl_int in
            var pointers: [UnsafeMutablePointer<UInt8>?] = [buffer.baseAddress]
            return clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARIES),
                                    MemoryLayout<UnsafeMutablePointer<UInt8>?>.size, &pointers, nil)
        }
        return status == CL_SUCCESS ? Data(bytes) : nil
    }
}
