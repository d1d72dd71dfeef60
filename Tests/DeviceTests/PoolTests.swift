@testable import Device
import Foundation
import TestSupport
import XCTest

/// Max and average pooling: values and gradients against Double loops and finite differences on every device (the op
/// checks cover ties and NaN-free grids), a non-contiguous input, zero-size batches, and the errors a wrong window
/// gets.
final class PoolTests: XCTestCase {
    /// Pooling in Double: `reduce` over the in-bounds taps of each window position (with `count` the divisor for the
    /// mean).
    private func reference(_ x: [Double], n: Int, c: Int, h: Int, w: Int, k: Int, s: Int, p: Int, d: Int,
                           max: Bool) -> [Double] {
        let oh = (h + 2 * p - d * (k - 1) - 1) / s + 1, ow = (w + 2 * p - d * (k - 1) - 1) / s + 1
        var y: [Double] = []
        for plane in 0..<(n * c) {
            for py in 0..<oh {
                for px in 0..<ow {
                    var taps: [Double] = []
                    for i in 0..<k {
                        for j in 0..<k {
                            let (r, q) = (py * s - p + i * d, px * s - p + j * d)
                            if r >= 0 && r < h && q >= 0 && q < w { taps.append(x[(plane * h + r) * w + q]) }
                        }
                    }
                    y.append(max ? taps.max()! : taps.reduce(0, +) / Double(k * k))
                }
            }
        }
        return y
    }

    func testPoolingGradientsMatchFiniteDifferencesOnEveryDevice() throws {
        // A 5x7 image of 3 channels, a batch of 1, stride 2, padding 1, dilation 2; overlapping 3x3 windows.
        let cases: [(n: Int, c: Int, h: Int, w: Int, k: Int, s: Int, p: Int, d: Int)] = [
            (1, 3, 5, 7, 2, 2, 1, 2), (2, 2, 6, 5, 3, 1, 1, 1), (2, 1, 4, 4, 2, 2, 0, 1),
        ]
        for (n, c, h, w, k, s, p, d) in cases {
            try checkTapeGradients("max_pool2d \(n)x\(c)x\(h)x\(w) k\(k) s\(s) p\(p) d\(d)", [
                GradientInput([n, c, h, w], seed: 120),
            ], build: { t in
                try t[0].maxPool2d(kernel: k, stride: s, padding: p, dilation: d)
            }, reference: { v in
                self.reference(v[0], n: n, c: c, h: h, w: w, k: k, s: s, p: p, d: d, max: true)
            })
            guard d == 1 else { continue }
            try checkTapeGradients("avg_pool2d \(n)x\(c)x\(h)x\(w) k\(k) s\(s) p\(p)", [
                GradientInput([n, c, h, w], seed: 121),
            ], build: { t in
                try t[0].avgPool2d(kernel: k, stride: s, padding: p)
            }, reference: { v in
                self.reference(v[0], n: n, c: c, h: h, w: w, k: k, s: s, p: p, d: 1, max: false)
            })
        }
    }

    /// PyTorch's rule in a 2x2 window (the unrolled cpu path and the kernels): the first largest wins a tie, a NaN
    /// wins over any number, and the gradient goes to the winner.
    func testMaxPoolTiesAndNaNInTwoByTwoWindowsOnEveryDevice() throws {
        for device in testDevices {
            // Seven windows — a NaN, a largest first tap, a tie, repeated —: CPU-type devices take
            // windows 0-3 four at a time and 4-6 one at a time, so each path meets a NaN (windows 0, 3 and 6), a
            // tie (2 and 5) and a largest first tap (1 and 4).
            let x = try Tensor([1, 3, 3, 2, 5, 5, 1, 3, 3, 2, 5, 5, 1, 3,
                                3, .nan, 0, 0, 5, 5, 3, .nan, 0, 0, 5, 5, 3, .nan], shape: [1, 1, 2, 14], on: device)
            x.requiresGrad = true
            let y = try x.maxPool2d(kernel: 2)
            let values = try y.toArray()
            XCTAssertTrue(values[0].isNaN && values[3].isNaN && values[6].isNaN, "\(device): \(values)")
            XCTAssertEqual([values[1], values[2], values[4], values[5]], [3, 5, 3, 5], "\(device)")
            try y.backward(seed: try Tensor([1, 2, 4, 8, 16, 32, 64], shape: [1, 1, 1, 7], on: device))
            XCTAssertEqual(try x.grad?.toArray(), [0, 0, 2, 0, 4, 0, 0, 0, 16, 0, 32, 0, 0, 0,
                                                   0, 1, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 64], "\(device)")
        }
    }

    /// A transposed (non-contiguous) input is read through a contiguous copy; its gradient reaches the base.
    func testPoolingOfAViewOnEveryDevice() throws {
        let (n, c, h, w) = (2, 2, 5, 4)
        try checkTapeGradients("max_pool2d of a tensor transposed along H and W", [GradientInput([n, c, w, h], seed: 122)],
                               build: { t in try t[0].permuted([0, 1, 3, 2]).maxPool2d(kernel: 2) },
                               reference: { v in
            let x = (0..<(n * c)).flatMap { plane in
                (0..<h).flatMap { y in (0..<w).map { z in v[0][(plane * w + z) * h + y] } }
            }
            return self.reference(x, n: n, c: c, h: h, w: w, k: 2, s: 2, p: 0, d: 1, max: true)
        })
    }

    func testZeroSizeBatchAndBadWindowsOnEveryDevice() throws {
        for device in testDevices {
            let empty = try Tensor.zeros([0, 2, 4, 4], on: device)
            empty.requiresGrad = true
            let y = try empty.maxPool2d(kernel: 2)
            XCTAssertEqual(y.shape, [0, 2, 2, 2])
            try y.sum().backward()
            XCTAssertEqual(try XCTUnwrap(empty.grad).shape, [0, 2, 4, 4])
            XCTAssertEqual(try empty.avgPool2d(kernel: 3, stride: 1, padding: 1).shape, [0, 2, 4, 4])

            let x = try Tensor.zeros([1, 3, 5, 7], on: device)
            let cases: [(String, () throws -> Tensor)] = [
                ("more than the padded input's 5", { try x.maxPool2d(kernel: 6) }),
                ("kernel, stride and dilation in 1...", { try x.maxPool2d(kernel: 2, stride: 0) }),
                ("padding 2 along the height is more than half the kernel 3", { try x.maxPool2d(kernel: 3, padding: 2) }),
                ("padding 2 along the height is more than half the kernel 3", { try x.avgPool2d(kernel: 3, padding: 2) }),
                ("average pooling has no dilation", { try x.avgPool2d(Window2d(kernel: 2, dilation: 2)) }),
                ("expects NCHW input", { try Tensor.zeros([3, 5, 7], on: device).maxPool2d(kernel: 2) }),
            ]
            for (expected, body) in cases {
                XCTAssertThrowsError(try body(), expected) { error in
                    XCTAssertTrue("\(error)".contains(expected), "\(error)")
                }
            }
        }
    }
}
