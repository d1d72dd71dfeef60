import CGemm
import Foundation

/// The host pool's threads, caller included: every online core, or CLNN_THREADS's cap. A CLNN_THREADS the pool
/// ignores (not decimal digits making a number ≥ 1, as pool.c reads it) is reported once, as a warning, so that a
/// library user learns it was not taken (the command line refuses it before this).
let hostThreads: Int = {
    if let cap = ProcessInfo.processInfo.environment["CLNN_THREADS"], !cap.isEmpty,
       !(cap.allSatisfy { ("0"..."9").contains($0) } && (Int(cap).map { $0 >= 1 } ?? false)) {
        CLNNLog.logger.warning("""
            CLNN_THREADS='\(cap.prefix(40))' is not a thread count (a whole number ≥ 1): ignored, the cpu device \
            uses every online core
            """)
    }
    return Int(clnn_pool_threads())
}()

/// Runs `body` over `0..<count` split into contiguous ranges, one per core, when there is enough work to be worth
/// waking threads (`count · costPerItem` at least about 64k element operations); otherwise in one call on this
/// thread. The ranges are disjoint: a body that writes only its own items' outputs needs no locks. (The cost is a
/// Double: a window's taps times its positions may pass Int's range.)
func hostParallel(_ count: Int, costPerItem: Double = 1, _ body: @Sendable (Range<Int>) -> Void) {
    let cores = hostThreads
    let work = Double(count) * Swift.max(costPerItem, 1) / 65_536
    let chunks = Swift.min(cores, count, work >= Double(cores) ? cores : Swift.max(1, Int(work)))
    guard chunks > 1 else {
        if count > 0 { body(0..<count) }
        return
    }
    let per = (count + chunks - 1) / chunks
    poolRun(chunks) { chunk in
        let range = chunk * per..<Swift.min(count, (chunk + 1) * per)
        if !range.isEmpty { body(range) }
    }
}

/// Runs `body` for every chunk in 0..<chunks on the host's worker pool (CGemm's pool.c: workers that spin a while
/// between jobs before they park, so that work of tens of microseconds — a batch-sized product — is worth
/// splitting; GCD's concurrentPerform woke its threads too late for that) and on this thread; returns when all are
/// done. Chunks are claimed as threads come free.
func poolRun(_ chunks: Int, _ body: @Sendable (Int) -> Void) {
    withoutActuallyEscaping(body) { body in
        var body = body
        withUnsafeMutablePointer(to: &body) { pointer in
            clnn_pool_run(Int32(chunks), { context, chunk in
                context!.assumingMemoryBound(to: (@Sendable (Int) -> Void).self).pointee(Int(chunk))
            }, pointer)
        }
    }
}
