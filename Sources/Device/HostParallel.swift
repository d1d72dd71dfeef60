import Foundation

/// Runs `body` over `0..<count` split into contiguous ranges, one per core, when there is enough work to be worth
/// waking threads (`count · costPerItem` at least about 64k element operations); otherwise in one call on this
/// thread. The ranges are disjoint: a body that writes only its own items' outputs needs no locks. (The cost is a
/// Double: a window's taps times its positions may pass Int's range.)
func hostParallel(_ count: Int, costPerItem: Double = 1, _ body: @Sendable (Range<Int>) -> Void) {
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let work = Double(count) * Swift.max(costPerItem, 1) / 65_536
    let chunks = Swift.min(cores, count, work >= Double(cores) ? cores : Swift.max(1, Int(work)))
    guard chunks > 1 else {
        if count > 0 { body(0..<count) }
        return
    }
    let per = (count + chunks - 1) / chunks
    DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
        let range = chunk * per..<Swift.min(count, (chunk + 1) * per)
        if !range.isEmpty { body(range) }
    }
}
