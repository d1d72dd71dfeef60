import COpenCL
import Foundation

/// Freed buffers kept for reuse, by element count (a caching allocator, as PyTorch's): a chain of tensor ops or a
/// training step that frees and allocates the same sizes reuses memory the process already holds — no page faults
/// on the host, no driver allocation on a device. At most `limit` bytes are kept; an allocation that fails empties the
/// pool and tries again; `DeviceTag.releaseCachedMemory()` empties it.
final class BufferPool<Handle>: @unchecked Sendable {
    // NOTE: take and put run for every op's result (a chain of small ops is host-bound: `clnn bench launch`), so the
    // hot path is a plain mutex and a look through the few bins used last before the dictionary (no hashing when a
    // loop frees and allocates the same few sizes).
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    // A bin is a class so that taking and keeping a buffer reads the dictionary and mutates the bin: a dictionary's
    // in-place mutation of an array value allocates its accessor's frame on every call.
    private final class Bin {
        let count: Int
        @exclusivity(unchecked) var handles: [Handle] = []
        init(count: Int) { self.count = count }
    }
    @exclusivity(unchecked) private var free: [Int: Bin] = [:]
    @exclusivity(unchecked) private var recent: (Bin?, Bin?, Bin?, Bin?) = (nil, nil, nil, nil)
    @exclusivity(unchecked) private var bytes = 0
    let limit: Int
    private let release: (Handle) -> Void

    init(limit: Int, release: @escaping (Handle) -> Void) {
        self.limit = limit
        self.release = release
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    private func locked<R>(_ body: () -> R) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// The bin of `count`, from the recent ones or the dictionary (made when `create`), moved to the front of the
    /// recent ones.
    private func bin(_ count: Int, create: Bool) -> Bin? {
        if let b = recent.0, b.count == count { return b }
        let found: Bin
        if let b = recent.1, b.count == count {
            found = b
        } else if let b = recent.2, b.count == count {
            found = b
        } else if let b = recent.3, b.count == count {
            found = b
        } else if let b = free[count] {
            found = b
        } else {
            guard create else { return nil }
            found = Bin(count: count)
            free[count] = found
        }
        // Most recent first; the bin pushed out stays in the dictionary.
        if recent.1 === found {
            recent = (found, recent.0, recent.2, recent.3)
        } else if recent.2 === found {
            recent = (found, recent.0, recent.1, recent.3)
        } else {
            recent = (found, recent.0, recent.1, recent.2)
        }
        return found
    }

    /// A kept buffer of exactly `count` floats, or nil.
    func take(_ count: Int) -> Handle? {
        locked {
            guard let handle = bin(count, create: false)?.handles.popLast() else { return nil }
            bytes -= Self.size(count)
            return handle
        }
    }

    /// Keeps `handle` (of `count` floats) for reuse; false (the caller frees it) when the pool is full.
    func put(_ handle: Handle, count: Int) -> Bool {
        locked {
            guard bytes + Self.size(count) <= limit else { return false }
            bin(count, create: true)!.handles.append(handle)
            bytes += Self.size(count)
            return true
        }
    }

    /// Frees every kept buffer.
    func drain() {
        let all = locked { () -> [Handle] in
            defer { (free, recent, bytes) = ([:], (nil, nil, nil, nil), 0) }
            return free.values.flatMap(\.handles)
        }
        all.forEach(release)
    }

    /// The bytes kept now.
    var keptBytes: Int { locked { bytes } }

    private static func size(_ count: Int) -> Int { max(count, 1) * MemoryLayout<Float>.size }

    /// The host's pool: up to 1 GiB or an eighth of the memory the process may use, whichever is less.
    static var hostLimit: Int { min(1 << 30, HostMemory.available().bytes / 8) }
}

/// Host memory freed by tensors, for reuse.
let hostBufferPool = BufferPool<UnsafeMutablePointer<Float>>(limit: BufferPool<UnsafeMutablePointer<Float>>.hostLimit) {
    free($0)
}

extension DeviceTag {
    /// Frees the memory CLNN keeps for reuse on this device (buffers of freed tensors); tensors in use are untouched.
    public func releaseCachedMemory() throws {
        switch kind {
        case .cpu: hostBufferPool.drain()
        case .opencl:
            guard let device = try Backend(self).openCLDevice else { return }
            try device.finish()
            device.bufferPool.drain()
        }
    }

    /// The bytes of freed tensors' memory CLNN keeps for reuse on this device.
    public var cachedMemory: Int {
        switch kind {
        case .cpu: return hostBufferPool.keptBytes
        case .opencl: return (try? Backend(self).openCLDevice?.bufferPool.keptBytes) ?? 0
        }
    }
}
