import CGemm
@testable import Device
import XCTest

/// The CPU's streaming SGD update (CGemm's update.c) gives the reference loop's floats exactly — the same roundings,
/// nothing fused — at every alignment of the block's start and with a ragged end, with and without momentum.
final class SGDStreamingTests: XCTestCase {
    func testStreamingUpdateEqualsTheReferenceLoopBitForBit() throws {
        let n = 1_000 + 5
        let (lr, momentum, decay): (Float, Float, Float) = (0.1, 0.9, 0.01)
        for withVelocity in [false, true] {
            for start in 0..<8 {
                var p = OpCheck.values(n + start, seed: 11), v = OpCheck.values(n + start, seed: 13)
                let g = OpCheck.values(n + start, seed: 12)
                var expectP = p, expectV = v
                for i in start..<n + start {
                    if withVelocity {
                        expectV[i] = momentum * expectV[i] + (g[i] + decay * expectP[i])
                        expectP[i] -= lr * expectV[i]
                    } else {
                        expectP[i] -= lr * (g[i] + decay * expectP[i])
                    }
                }
                let streamed = p.withUnsafeMutableBufferPointer { p in
                    v.withUnsafeMutableBufferPointer { v in
                        g.withUnsafeBufferPointer { g in
                            clnn_sgd_streaming(p.baseAddress! + start, g.baseAddress! + start,
                                               withVelocity ? v.baseAddress! + start : nil, n, lr, momentum, decay)
                        }
                    }
                }
                guard streamed != 0 else { throw XCTSkip("this CPU has no streaming update (no AVX2+FMA)") }
                XCTAssertEqual(p.map(\.bitPattern), expectP.map(\.bitPattern), "start \(start), velocity \(withVelocity)")
                XCTAssertEqual(v.map(\.bitPattern), expectV.map(\.bitPattern), "start \(start), velocity \(withVelocity)")
            }
        }
    }
}
