import COpenCL
import Foundation

/// Freed buffers kept for reuse, by element count (a caching allocator, as PyTorch's): a chain of tensor ops or a
/// training step that frees and allocates the same sizes reuses memory the process already holds — no page faults
/// on the host, no driver allocation on a device. At most `limit` bytes are kept; an allocation that fails empties the
/// pool and tries again; `DeviceTag.releaseCachedMemory()` empties it.
final class BufferPool<Handle>: @unchecked Sendable {
    private let lock = NSLock()
    // NOTE: a bin is a class so that taking and keeping a buffer reads the dictionary and mutates the bin: a
    // dictionary's in-place mutation of an array value allocates its accessor's frame on every call.
    private final class Bin { var handles: [Handle] = [] }
    private var free: [Int: Bin] = [:]
    private var bytes = 0
    let limit: Int
    private let release: (Handle) -> Void

    init(limit: Int, release: @escaping (Handle) -> Void) {
        self.limit = limit
        self.release = release
    }

    /// A kept buffer of exactly `count` floats, or nil.
    func take(_ count: Int) -> Handle? {
        lock.withLock {
            guard let handle = free[count]?.handles.popLast() else { return nil }
            bytes -= Self.size(count)
            return handle
        }
    }

    /// Keeps `handle` (of `count` floats) for reuse; false (the caller frees it) when the pool is full.
    func put(_ handle: Handle, count: Int) -> Bool {
        lock.withLock {
            guard bytes + Self.size(count) <= limit else { return false }
            if let bin = free[count] {
                bin.handles.append(handle)
            } else {
                let bin = Bin()
                bin.handles.append(handle)
                free[count] = bin
            }
            bytes += Self.size(count)
            return true
        }
    }

    /// Frees every kept buffer.
    func drain() {
        let all = lock.withLock { () -> [Handle] in
            defer { (free, bytes) = ([:], 0) }
            return free.values.flatMap(\.handles)
        }
        all.forEach(release)
    }

    /// The bytes kept now.
    var keptBytes: Int { lock.withLock { bytes } }

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
