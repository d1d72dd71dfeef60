import Foundation

/// The host memory this process can still get: the least of what its address-space limit (`ulimit -v`) leaves, what
/// its cgroup's `memory.max` leaves, and the machine's available RAM. Sizes that come from a file or an option are
/// checked against it before anything is allocated, so that too large a request is an error naming the limit, not
/// a trap in the allocator or a visit from the OOM killer.
public enum HostMemory {
    /// Bytes the process can still allocate, and which limit says so (in words).
    public static func available() -> (bytes: Int, limit: String) {
        var best = (bytes: Int.max, limit: "no limit found")
        func consider(_ bytes: Int, _ limit: String) {
            if bytes < best.bytes { best = (max(bytes, 0), limit) }
        }
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
            let used = statusField("VmSize:") ?? 0
            consider(Int(clamping: limit.rlim_cur) - used,
                     "the address-space limit (ulimit -v) of \(gib(Int(clamping: limit.rlim_cur))) "
                     + "with \(gib(used)) mapped already")
        }
        if let (max, current, path) = cgroupMemory() {
            consider(max - current, "the cgroup's memory.max (\(path)) of \(gib(max)) with \(gib(current)) in use")
        }
        if let free = meminfoField("MemAvailable:") {
            consider(free, "the machine's available RAM")
        }
        if best.bytes == Int.max { best = (Int(clamping: ProcessInfo.processInfo.physicalMemory), "the machine's RAM") }
        return best
    }

    /// More host memory asked for than the process can get.
    public struct Shortfall: Error, CustomStringConvertible, Equatable {
        /// What the memory is for.
        public let what: String
        /// Bytes asked for.
        public let bytes: Double
        /// Bytes the process can still get.
        public let available: Int
        /// The limit that says so, in words.
        public let limit: String

        /// The request and the limit, in one line.
        public var description: String {
            "\(what) needs \(HostMemory.gib(bytes)) but this process can get \(HostMemory.gib(available)) more "
                + "(limited by \(limit))"
        }
    }

    /// Throws unless `bytes` more fit in what `available()` reports; `what` says what they are for.
    /// - Throws: `Shortfall` naming the request and the limit.
    public static func require(_ bytes: Double, for what: String) throws {
        let (free, limit) = available()
        if bytes > Double(free) { throw Shortfall(what: what, bytes: bytes, available: free, limit: limit) }
    }

    /// `n` bytes in GiB, for messages.
    public static func gib(_ n: Int) -> String { gib(Double(n)) }
    /// `n` bytes in GiB, for messages.
    public static func gib(_ n: Double) -> String { String(format: "%.2f GiB", n / 1_073_741_824) }

    /// A `kB` field of `/proc/self/status`, in bytes.
    private static func statusField(_ name: String) -> Int? { kilobytes(in: "/proc/self/status", name) }
    /// A `kB` field of `/proc/meminfo`, in bytes.
    private static func meminfoField(_ name: String) -> Int? { kilobytes(in: "/proc/meminfo", name) }

    private static func kilobytes(in file: String, _ name: String) -> Int? {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            let digits = line.dropFirst(name.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first
            return digits.flatMap { Int($0) }.map { $0 * 1024 }
        }
        return nil
    }

    /// The cgroup v2 `memory.max` and `memory.current` of this process (nil without a limit).
    private static func cgroupMemory() -> (max: Int, current: Int, path: String)? {
        guard let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) else { return nil }
        var folder = "/sys/fs/cgroup" + line.dropFirst(3)
        // The limit may sit on a parent group: walk up to the root.
        while folder.hasPrefix("/sys/fs/cgroup") {
            if let max = read(folder + "/memory.max").flatMap(Int.init),
               let current = read(folder + "/memory.current").flatMap(Int.init) {
                return (max, current, folder + "/memory.max")
            }
            guard let slash = folder.lastIndex(of: "/"), folder != "/sys/fs/cgroup" else { break }
            folder = String(folder[..<slash])
        }
        return nil
    }

    private static func read(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
