import Foundation

/// An advisory lock on a file a run writes or reads (`flock` on `.NAME.lock` beside the real file, links followed):
/// one writer at a time, or any number of readers. The kernel releases it when the process ends however it ends, so
/// a lock left by a killed process is never in force (the file that remains is reused); the holder's PID is written
/// in the file to name it to whoever is refused.
@_spi(CLI) public final class FileLock {
    /// The lock file.
    public let path: String
    private var fd: Int32

    /// The lock file of `lockedPath`: `.NAME.lock` beside the real file (links followed).
    public static func path(locking lockedPath: String) throws -> String {
        let url = URL(fileURLWithPath: try AtomicFile.resolve(lockedPath).resolved)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).lock").path
    }

    /// Takes the lock on `lockedPath` at once, or throws; `file` names what is locked in messages.
    /// - Parameters:
    ///   - exclusive: a writer's lock (no other holder), else a reader's (no writer). A reader in a folder it cannot
    ///     write (a read-only mount) takes an existing lock file read-only, or goes without: no one writes there.
    ///   - purpose: what this process does with the file, for the message of a process refused later.
    /// - Throws: `DataError` naming `file` and the process that holds it (its PID and command line) when it is in
    ///   use; or why the lock file cannot be made.
    public init(_ lockedPath: String, for file: String, exclusive: Bool, purpose: String) throws {
        path = try Self.path(locking: lockedPath)
        fd = -1
        // NOTE: a holder that releases removes the file; one opened just before is then stale: retry on a new one.
        for _ in 0..<100 {
            var opened = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            if opened < 0, !exclusive, errno == EROFS || errno == EACCES {
                opened = open(path, O_RDONLY | O_CLOEXEC)
                if opened < 0 { return }  // nothing to lock against: no clnn can write in this folder either
            }
            guard opened >= 0 else {
                throw DataError(file, "cannot create its lock file \(path): \(String(cString: strerror(errno)))")
            }
            if flock(opened, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
                let code = errno
                let holder = Self.holder(opened)
                close(opened)
                guard code == EWOULDBLOCK else {
                    throw DataError(file, "cannot lock \(path): \(String(cString: strerror(code)))")
                }
                throw DataError(file, "is in use by \(holder ?? "another process") (lock \(path)): "
                    + "two runs writing one "
                    + "checkpoint would mix their files; wait for it to finish, or give another file")
            }
            var held = stat(), current = stat()
            if fstat(opened, &held) == 0, stat(path, &current) == 0, held.st_ino == current.st_ino,
               held.st_dev == current.st_dev {
                fd = opened
                break
            }
            close(opened)
        }
        guard fd >= 0 else { throw DataError(file, "cannot lock \(path): it keeps being replaced") }
        var info = stat()
        if exclusive || (fstat(fd, &info) == 0 && info.st_size == 0) {
            let text = Array("\(getpid()) \(purpose)\n".utf8)
            _ = ftruncate(fd, 0)
            _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        }
    }

    /// Releases the lock; the lock file is removed when no other process holds it.
    public func release() {
        guard fd >= 0 else { return }
        // Only the last holder removes the file: taking it exclusively proves no one else holds it.
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { unlink(path) }
        close(fd)
        fd = -1
    }

    deinit { release() }

    /// "process PID (what it does: its command line)" from the lock file's text, when that process still exists.
    private static func holder(_ fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = pread(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = text.split(separator: " ", maxSplits: 1)
        guard let first = parts.first, let pid = Int32(first) else { return nil }
        var command = ""
        if let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty {
            command = ": "
                + String(decoding: data, as: UTF8.self).split(separator: "\0").joined(separator: " ").prefix(200)
        }
        return "process \(pid) (\(parts.count > 1 ? String(parts[1]) : "clnn")\(command))"
    }
}
