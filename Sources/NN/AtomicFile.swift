import Foundation

/// Writes files so that a reader sees either the old contents or the new, never a half-written file:
/// the bytes go to a temporary file in the same folder, are flushed to disk, then renamed over the target.
public enum AtomicFile {
    /// Test hook: when set to N, a write fails after N bytes, as if the process died mid-write.
    public static let failAfterVariable = "CLNN_FAIL_WRITE_AFTER_BYTES"

    public static func write(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError(path, "cannot write: folder \(folder) does not exist")
        }
        let temp = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw DataError(path, "cannot write: \(String(cString: strerror(errno)))") }
        var ok = false
        defer {
            if !ok { unlink(temp) }
        }
        let limit = ProcessInfo.processInfo.environment[failAfterVariable].flatMap(Int.init)
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                if let limit, done >= limit {
                    close(fd)
                    throw DataError(path, "write failed after \(done) bytes (injected by \(failAfterVariable))")
                }
                let chunk = min(raw.count - done, limit.map { max($0 - done, 1) } ?? raw.count, 1 << 20)
                let n = Foundation.write(fd, raw.baseAddress! + done, chunk)
                if n < 0 {
                    let why = String(cString: strerror(errno))
                    close(fd)
                    throw DataError(path, "cannot write: \(why)")
                }
                done += n
            }
        }
        guard fsync(fd) == 0, close(fd) == 0 else { throw DataError(path, "cannot flush to disk: \(String(cString: strerror(errno)))") }
        guard rename(temp, path) == 0 else { throw DataError(path, "cannot replace: \(String(cString: strerror(errno)))") }
        ok = true
    }
}
