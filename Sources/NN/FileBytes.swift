import Foundation

/// The whole content of the regular file at `path`, read with POSIX calls.
/// NOTE: Foundation's FileManager.contents(atPath:) leaks its buffer for an empty file (seen under ASan).
public func readFileBytes(_ path: String, what: String = "file") throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else {
        let code = errno
        throw DataError(path, code == ENOENT ? "no such \(what)" : "cannot open: \(String(cString: strerror(code)))")
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw DataError(path, "cannot stat: \(String(cString: strerror(errno)))") }
    guard (info.st_mode & S_IFMT) == S_IFREG else { throw DataError(path, "is not a regular file") }
    let size = Int(info.st_size)
    var bytes = [UInt8](repeating: 0, count: size)
    var done = 0
    while done < size {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, size - done) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw DataError(path, "cannot read: \(n < 0 ? String(cString: strerror(errno)) : "file shrank while reading")") }
        done += n
    }
    return bytes
}
