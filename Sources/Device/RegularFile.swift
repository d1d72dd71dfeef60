import Foundation

/// Reading whole regular files with POSIX calls, for every file CLNN reads (data, checkpoints, caches, kernels).
///
/// The file is opened with `O_NONBLOCK`, so a FIFO or a device given by mistake fails at once instead of hanging in
/// `open()`; the regular-file check is made on the opened descriptor (no race with a rename).
/// NOTE: Foundation's FileManager.contents(atPath:) leaks its buffer for an empty file (seen under ASan).
package enum RegularFile {
    package enum Failure: Error {
        case open(errno: Int32)
        case notRegular(FileKind)
        case read(errno: Int32)
        case shrank
        /// The file is larger than the memory this process can still get (`HostMemory`).
        case tooLarge(bytes: Int, available: Int, limit: String)
    }

    /// The file's bytes; refused before reading when `copies` times its size does not fit in `HostMemory.available()`.
    package static func read(_ path: String, holding copies: Int = 1) throws(Failure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw .open(errno: errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .read(errno: errno) }
        let kind = FileKind(mode: info.st_mode)
        guard kind == .regular else { throw .notRegular(kind) }
        // NOTE: the whole file is read into memory: a file (perhaps sparse: large but nearly empty on disk) larger
        // than what the process can get would make the allocation trap.
        let (available, limit) = HostMemory.available()
        guard Double(info.st_size) * Double(copies) <= Double(available) else {
            throw .tooLarge(bytes: Int(info.st_size), available: available, limit: limit)
        }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            if n < 0 { throw .read(errno: errno) }
            guard n > 0 else { throw .shrank }
            done += n
        }
        return bytes
    }
}

/// What kind of thing a path names, for messages.
package enum FileKind: Sendable {
    case regular, folder, device, fifo, socket, link, other

    package init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .folder
        case S_IFCHR, S_IFBLK: self = .device
        case S_IFIFO: self = .fifo
        case S_IFSOCK: self = .socket
        case S_IFLNK: self = .link
        default: self = .other
        }
    }

    package var phrase: String {
        switch self {
        case .regular: return "a regular file"
        case .folder: return "a folder"
        case .device: return "a device"
        case .fifo: return "a FIFO (named pipe)"
        case .socket: return "a socket"
        case .link: return "a symbolic link"
        case .other: return "a special file"
        }
    }
}
