import Foundation

/// Writes files so that a reader sees either the old contents or the new, never a half-written file:
/// the bytes go to a temporary file in the same folder, are flushed to disk, then renamed over the target.
///
/// What a target may be (decided here, checked before a byte is written):
/// - a name that does not exist yet in an existing, writable folder: created with mode 0666 less the umask;
/// - a regular file: replaced; its permission bits (and, where allowed, its owner) are kept;
/// - a symbolic link to a regular file, or to a new name in an existing folder: the link stays and the file it
///   points to is written, as editors do;
/// - anything else — a folder, a device such as `/dev/null` or `/dev/full`, a FIFO, a socket, a loop of links —
///   is refused: replacing it would destroy it, and writing through it would not keep the file.
///
/// The temporary file is `.NAME.tmp-PID` beside the target. It is removed when a write fails; a process that is
/// killed mid-write leaves one behind, which the next write to the same target removes once that PID is gone.
@_spi(CLI) public enum AtomicFile {
    /// Test hook: when set to N, a write fails after N bytes, as if the process died mid-write.
    public static let failAfterVariable = "CLNN_FAIL_WRITE_AFTER_BYTES"

    /// Where a write to `path` will land: the final file (links followed) and its mode when it exists.
    public struct Target: Sendable, Equatable {
        /// The path the user gave.
        public let path: String
        /// The file that will be replaced or created (symbolic links resolved).
        public let resolved: String
        /// Permission bits of the existing file, nil for a new one.
        let mode: mode_t?
        let owner: (uid: uid_t, gid: gid_t)?
        /// Device and inode of the existing file; of the folder plus the name for a new one.
        let identity: FileIdentity

        public static func == (a: Target, b: Target) -> Bool { a.identity == b.identity }
    }

    /// Checks that `path` can be written by `write(_:to:)`, changing nothing but removing the probe files a process
    /// that no longer exists left for it (a probe file is created and removed in its folder, which proves the folder
    /// writable even where permission bits say otherwise, e.g. on a read-only mount). Call it before long work whose
    /// result goes to `path`.
    @discardableResult
    public static func checkWritable(_ path: String) throws -> Target {
        let target = try resolve(path)
        // (A path that is checked but never written itself — a training state, which is staged under another
        // name — would otherwise keep a killed run's probe for good.) Only probes: a temporary file may be a live
        // writer's that `kill(pid, 0)` cannot see (another PID namespace sharing the folder), and this run holds no
        // lock yet; a probe lives only between its creation and its removal a line later.
        removeStaleTemporaries(of: target.resolved, probesOnly: true)
        let probe = temporaryPath(for: target.resolved) + "-probe"
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw cannotWrite(path, in: target.resolved, errno) }
        close(fd)
        unlink(probe)
        return target
    }

    /// The error for a file that cannot be created beside `resolved`; `code` is the errno, taken at once (building
    /// the message makes system calls that overwrite errno).
    private static func cannotWrite(_ path: String, in resolved: String, _ code: Int32) -> DataError {
        let why = code == EROFS ? "the file system is read-only" : String(cString: strerror(code))
        return DataError(path, "cannot write in folder \(folder(of: resolved)): \(why)")
    }

    /// Whether writing `a` and writing `b` would write the same file (links followed; a name not created yet
    /// compared by its folder and name).
    public static func sameTarget(_ a: String, _ b: String) -> Bool {
        guard let x = try? resolve(a), let y = try? resolve(b) else { return false }
        return x == y
    }

    public static func write(_ bytes: [UInt8], to path: String) throws {
        let target = try resolve(path)
        removeStaleTemporaries(of: target.resolved)
        let temp = temporaryPath(for: target.resolved)
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, target.mode ?? 0o666)
        guard fd >= 0 else { throw cannotWrite(path, in: target.resolved, errno) }
        PendingTemporary.set(temp)
        var ok = false
        defer {
            if !ok { unlink(temp) }
            PendingTemporary.clear()
        }
        if let mode = target.mode {
            // NOTE: open's mode is filtered by the umask; the old file's bits are restored exactly.
            fchmod(fd, mode)
            if let owner = target.owner { _ = fchown(fd, owner.uid, owner.gid) }  // allowed for root only; best effort
        }
        let limit = ProcessInfo.processInfo.environment[failAfterVariable].flatMap(Int.init)
        do {
            FileSteps.reached()
            try writeAll(fd, bytes, limit: limit, path: path)
        } catch {
            close(fd)
            throw error
        }
        FileSteps.reached()
        guard fsync(fd) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw DataError(path, "cannot flush to disk: \(why)")
        }
        guard close(fd) == 0 else { throw DataError(path, "cannot flush to disk: \(String(cString: strerror(errno)))") }
        FileSteps.reached()
        guard rename(temp, target.resolved) == 0 else {
            throw DataError(path, "cannot replace: \(String(cString: strerror(errno)))")
        }
        ok = true
        FileSteps.reached()
        syncFolder(of: target.resolved)
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], limit: Int?, path: String) throws {
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                if let limit, done >= limit {
                    throw DataError(path, "write failed after \(done) bytes (injected by \(failAfterVariable))")
                }
                let chunk = min(raw.count - done, limit.map { max($0 - done, 1) } ?? raw.count, 1 << 20)
                let n = Foundation.write(fd, raw.baseAddress! + done, chunk)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw DataError(path, "cannot write: \(String(cString: strerror(n < 0 ? errno : EIO)))")
                }
                done += n
            }
        }
    }

    /// The target of a write to `path`, or a `DataError` saying why `path` cannot be one.
    static func resolve(_ path: String) throws -> Target {
        guard !path.isEmpty else { throw DataError(path, "empty file name") }
        var info = stat()
        var resolved = path
        if lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK {
            guard let real = realPath(path, allowMissingLast: true) else {
                throw DataError(path, "is a symbolic link that cannot be followed: \(String(cString: strerror(errno)))")
            }
            resolved = real
        }
        let name = URL(fileURLWithPath: resolved).lastPathComponent
        guard !name.isEmpty, name != ".", name != "..", !resolved.hasSuffix("/") else {
            throw DataError(path, "names a folder, not a file")
        }
        // The temporary name adds `.` and `.tmp-PID-probe` to the name.
        guard name.utf8.count + 24 <= Int(NAME_MAX) else {
            throw DataError(path, "the file name is too long (\(name.utf8.count) bytes; "
                + "at most \(Int(NAME_MAX) - 24) here)")
        }
        if stat(resolved, &info) == 0 {
            let kind = FileKind(mode: info.st_mode)
            guard kind == .regular else {
                throw DataError(path, "is \(kind.phrase); clnn writes only regular files (give a file name)")
            }
            return Target(path: path, resolved: resolved, mode: info.st_mode & 0o7777,
                          owner: (info.st_uid, info.st_gid),
                          identity: FileIdentity(info))
        }
        let code = errno
        guard code == ENOENT else { throw DataError(path, openFailure(code, what: "file")) }
        let dir = folder(of: resolved)
        var dirInfo = stat()
        guard stat(dir, &dirInfo) == 0 else {
            throw DataError(path, errno == ENOENT ? "cannot write: folder \(dir) does not exist"
                : "cannot write: folder \(dir): \(openFailure(errno, what: "folder"))")
        }
        guard FileKind(mode: dirInfo.st_mode) == .folder else {
            throw DataError(path, "cannot write: \(dir) is not a folder")
        }
        return Target(path: path, resolved: resolved, mode: nil, owner: nil,
                      identity: FileIdentity(folder: dirInfo, name: name))
    }

    static func folder(of path: String) -> String {
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return dir.isEmpty ? "." : dir
    }

    static func temporaryPath(for resolved: String) -> String {
        let url = URL(fileURLWithPath: resolved)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path
    }

    /// Removes `.NAME.tmp-PID` files (and `-probe` ones) of earlier writes to `resolved` whose process no longer
    /// exists; with `probesOnly`, only the probes.
    static func removeStaleTemporaries(of resolved: String, probesOnly: Bool = false) {
        let url = URL(fileURLWithPath: resolved)
        let prefix = ".\(url.lastPathComponent).tmp-"
        let dir = url.deletingLastPathComponent()
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { return }
        for name in names where name.hasPrefix(prefix) && (!probesOnly || name.hasSuffix("-probe")) {
            let rest = name.dropFirst(prefix.count)
            let digits = rest.hasSuffix("-probe") ? rest.dropLast(6) : rest
            guard let pid = pid_t(digits), pid > 0, pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { unlink(dir.appendingPathComponent(name).path) }
        }
    }

    /// Makes the rename itself durable (best effort: not every file system can sync a folder).
    static func syncFolder(of path: String) {
        let fd = open(folder(of: path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    /// Call from a signal handler that is about to `_exit`: removes the temporary file of a write in progress.
    /// Async-signal-safe (one `unlink` of a path prepared in advance) once `prepareForSignalHandlers` has run.
    public static func removePendingTemporaryFromSignalHandler() {
        PendingTemporary.unlinkFromSignalHandler()
    }

    /// Call before installing a signal handler that uses `removePendingTemporaryFromSignalHandler`: makes the memory
    /// it reads (lazily made statics, whose first use takes a lock) ready outside the handler.
    public static func prepareForSignalHandlers() {
        PendingTemporary.prepare()
    }
}

/// The path of the temporary file being written, in memory a signal handler may read without allocating.
enum PendingTemporary {
    private static let capacity = Int(PATH_MAX) + 1
    nonisolated(unsafe) private static let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: capacity)
    nonisolated(unsafe) private static var active: sig_atomic_t = 0

    static func set(_ path: String) {
        active = 0
        let bytes = Array(path.utf8CString)
        guard bytes.count <= capacity else { return }
        bytes.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress!, count: bytes.count) }
        active = 1
    }

    static func clear() { active = 0 }

    /// Makes both statics now (their first use is not async-signal-safe).
    static func prepare() {
        _ = buffer
        active = 0
    }

    static func unlinkFromSignalHandler() {
        if active != 0 { unlink(buffer) }
    }
}

/// A file's identity (device, inode), or for a file not yet created, its folder's identity and its name: two
/// paths with equal identities write the same file (hard links and `./x` versus `/abs/x` included).
struct FileIdentity: Hashable, Sendable {
    let device: UInt64
    let inode: UInt64
    let name: String?

    init(_ info: stat) {
        (device, inode, name) = (UInt64(info.st_dev), UInt64(info.st_ino), nil)
    }

    init(folder info: stat, name: String) {
        (device, inode, self.name) = (UInt64(info.st_dev), UInt64(info.st_ino), name)
    }

    /// The identity of an existing file at `path` (links followed), or nil.
    init?(existing path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        self.init(info)
    }
}

/// `realpath(3)`, also for a path whose last component does not exist yet (its folder is resolved instead).
func realPath(_ path: String, allowMissingLast: Bool) -> String? {
    if let resolved = realpath(path, nil) {
        defer { free(resolved) }
        return String(cString: resolved)
    }
    guard allowMissingLast, errno == ENOENT else { return nil }
    // A link to a name that does not exist yet: follow the link text once, relative to the link's folder.
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink(path, &buffer, buffer.count - 1)
    guard n > 0 else { return nil }
    let text = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let full = text.hasPrefix("/") ? text : AtomicFile.folder(of: path) + "/" + text
    let url = URL(fileURLWithPath: full)
    guard let dir = realpath(url.deletingLastPathComponent().path, nil) else { return nil }
    defer { free(dir) }
    return String(cString: dir) + "/" + url.lastPathComponent
}

/// Test hook for crash safety: with `CLNN_KILL_AT_FILE_STEP=N` in the environment, the process kills itself
/// (SIGKILL, as `kill -9` or the OOM killer would) at the N-th step of its file writes — before each write, fsync and
/// rename of `AtomicFile` and between the steps of `SavedRun.save` — so a test can stop a save at every instant and
/// check what is left on disk. `CLNN_KILL_WITH=TERM,TERM` sends those signals instead (Ctrl-C twice during a save).
enum FileSteps {
    static let variable = "CLNN_KILL_AT_FILE_STEP"
    nonisolated(unsafe) private static var remaining: Int? =
        ProcessInfo.processInfo.environment[variable].flatMap(Int.init)

    static func reached() {
        guard let left = remaining else { return }
        remaining = left - 1
        guard left == 1 else { return }
        let names = ProcessInfo.processInfo.environment["CLNN_KILL_WITH"]?.split(separator: ",") ?? ["KILL"]
        let numbers = ["KILL": SIGKILL, "TERM": SIGTERM, "INT": SIGINT]
        for name in names { kill(getpid(), numbers[String(name)] ?? SIGKILL) }
    }
}
