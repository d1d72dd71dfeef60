import Foundation

/// The whole content of the regular file at `path`, refused before it is read when `copies` times its size (the
/// bytes and what the caller makes of them) is more than the process can get. A FIFO, device or folder given by mistake
/// is an error at once
/// (never a hang); each failure names the real problem.
@_spi(CLI) public func readFileBytes(_ path: String, what: String = "file", holding copies: Int = 1) throws -> [UInt8] {
    guard !path.isEmpty else { throw DataError(path, "empty path: no \(what) named") }
    do {
        return try RegularFile.read(path, holding: copies)
    } catch {
        switch error {
        case .open(let code): throw DataError(path, openFailure(code, what: what))
        case .notRegular(let kind): throw DataError(path, "is \(kind.phrase), not a regular \(what)")
        case .read(let code): throw DataError(path, "cannot read: \(String(cString: strerror(code)))")
        case .shrank: throw DataError(path, "cannot read: file shrank while reading")
        case let .tooLarge(bytes, available, limit):
            throw DataError(path, "is \(HostMemory.gib(bytes)) (\(bytes) bytes); "
                + "reading it\(copies > 1 ? " as a \(what) (\(copies) copies)" : "") "
                + "needs more than the \(HostMemory.gib(available)) this process can get "
                + "(limited by \(limit)): not read")
        }
    }
}

/// The message for a failed `open`/`stat` of an input: names the real problem, not always "no such file".
func openFailure(_ code: Int32, what: String) -> String {
    switch code {
    case ENOENT: return "no such \(what)"
    case ELOOP: return "cannot open: a loop of symbolic links"
    case EACCES: return "cannot open: permission denied (on the file or on a folder above it)"
    case ENOTDIR: return "cannot open: a part of the path is a file, not a folder"
    case ENAMETOOLONG: return "cannot open: the name is too long"
    default: return "cannot open: \(String(cString: strerror(code)))"
    }
}
