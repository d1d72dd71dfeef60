@testable import Device
import XCTest

/// The caching allocator's bookkeeping: a buffer comes back only for its own size, whichever of the recently used bins
/// or the dictionary holds it; the byte limit is kept; draining frees everything once.
final class BufferPoolTests: XCTestCase {
    func testTakesBackOnlyItsOwnSizeAcrossMoreSizesThanTheRecentBins() {
        var released: [Int] = []
        let pool = BufferPool<Int>(limit: 1 << 20) { released.append($0) }
        // Handles encode their size: handle = size * 1000 + serial.
        let sizes = [1, 7, 64, 3, 1000, 5, 9, 7, 1]
        for (serial, size) in sizes.enumerated() { XCTAssertTrue(pool.put(size * 1000 + serial, count: size)) }
        XCTAssertEqual(pool.keptBytes, sizes.reduce(0) { $0 + $1 * 4 })
        XCTAssertNil(pool.take(2))
        // Sizes in an order that pushes bins out of the recent ones and brings them back.
        for size in [1000, 1, 9, 3, 64, 5, 7, 7, 1] {
            guard let handle = pool.take(size) else { return XCTFail("no buffer of \(size) came back") }
            XCTAssertEqual(handle / 1000, size, "a buffer of \(handle / 1000) floats came back for \(size)")
        }
        XCTAssertNil(pool.take(1))
        XCTAssertNil(pool.take(7))
        XCTAssertEqual(pool.keptBytes, 0)
        XCTAssertTrue(released.isEmpty)
    }

    func testKeepsToItsLimitAndDrainsOnce() {
        var released: [Int] = []
        let pool = BufferPool<Int>(limit: 40) { released.append($0) }
        XCTAssertTrue(pool.put(1, count: 4))
        XCTAssertTrue(pool.put(2, count: 6))
        XCTAssertFalse(pool.put(3, count: 1), "over the limit of 40 bytes: the caller frees it")
        XCTAssertEqual(pool.keptBytes, 40)
        pool.drain()
        XCTAssertEqual(released.sorted(), [1, 2])
        XCTAssertEqual(pool.keptBytes, 0)
        XCTAssertNil(pool.take(4))
        XCTAssertNil(pool.take(6))
        // Usable again after draining, the recent bins included.
        XCTAssertTrue(pool.put(4, count: 6))
        XCTAssertEqual(pool.take(6), 4)
        XCTAssertEqual(released.count, 2)
    }
}
