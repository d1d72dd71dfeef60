import CGemm
@testable import Device
import Foundation
import XCTest

/// The host's worker pool (CGemm's pool.c, `poolRun`): every chunk runs exactly once, whether the job comes from
/// one thread, from several at once (one gets the pool, the others run inline), or from inside a chunk (inline);
/// and after a pause long enough for the workers to park, they wake for the next job.
final class HostPoolTests: XCTestCase {
    /// Runs `chunks` chunks through the pool, each adding one to its own counter; returns the counters.
    private static func counts(_ chunks: Int, nested: Int = 0) -> [Int] {
        let counters = UnsafeMutablePointer<Int>.allocate(capacity: chunks)
        counters.initialize(repeating: 0, count: chunks)
        defer { counters.deallocate() }
        nonisolated(unsafe) let shared = counters
        poolRun(chunks) { chunk in
            shared[chunk] += 1
            if nested > 0 {
                let inner = UnsafeMutablePointer<Int>.allocate(capacity: nested)
                inner.initialize(repeating: 0, count: nested)
                nonisolated(unsafe) let innerShared = inner
                poolRun(nested) { innerShared[$0] += 1 }
                if (0..<nested).contains(where: { inner[$0] != 1 }) { shared[chunk] += 100 }
                inner.deallocate()
            }
        }
        return Array(UnsafeBufferPointer(start: counters, count: chunks))
    }

    func testEveryChunkRunsOnceFromOneThread() {
        XCTAssertGreaterThanOrEqual(clnn_pool_threads(), 1)
        for chunks in [0, 1, 2, 3, 7, 64, 1000] {
            for _ in 0..<50 { XCTAssertEqual(Self.counts(chunks), [Int](repeating: 1, count: chunks), "\(chunks) chunks") }
        }
    }

    func testNestedJobsRunInline() {
        for _ in 0..<20 { XCTAssertEqual(Self.counts(5, nested: 9), [Int](repeating: 1, count: 5)) }
    }

    func testJobsFromSeveralThreadsAtOnce() {
        let failures = ManagedCounter()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for round in 0..<200 where HostPoolTests.counts(3 + round % 5) != [Int](repeating: 1, count: 3 + round % 5) {
                failures.add()
            }
        }
        XCTAssertEqual(failures.value, 0)
    }

    func testParkedWorkersWakeForTheNextJob() {
        for _ in 0..<3 {
            usleep(5_000)  // past the workers' spin: they park
            XCTAssertEqual(Self.counts(8), [Int](repeating: 1, count: 8))
        }
    }
}

private final class ManagedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
