@testable import Device
import Foundation
import TestSupport
import XCTest

/// conv2d and im2col: values and gradients against a direct Double convolution (the op checks, on every device)
/// and finite differences; non-contiguous input; the errors a wrong shape or window gets.
final class ConvTests: XCTestCase {
    /// y[n, f, oy, ox] = b[f] + Σ_{c,i,j} x[n, c, oy·s − p + i·d, ox·s − p + j·d] · w[f, c, i, j], in Double.
    private func reference(_ x: [Double], _ w: [Double], _ b: [Double]?, n: Int, c: Int, h: Int, wd: Int, o: Int,
                           k: (Int, Int), s: (Int, Int), p: (Int, Int), d: (Int, Int)) -> [Double] {
        let oh = (h + 2 * p.0 - d.0 * (k.0 - 1) - 1) / s.0 + 1, ow = (wd + 2 * p.1 - d.1 * (k.1 - 1) - 1) / s.1 + 1
        var y: [Double] = []
        for bi in 0..<n {
            for f in 0..<o {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var acc = b?[f] ?? 0
                        for ch in 0..<c {
                            for i in 0..<k.0 {
                                for j in 0..<k.1 {
                                    let (r, q) = (oy * s.0 - p.0 + i * d.0, ox * s.1 - p.1 + j * d.1)
                                    guard r >= 0, r < h, q >= 0, q < wd else { continue }
                                    acc += x[((bi * c + ch) * h + r) * wd + q] * w[((f * c + ch) * k.0 + i) * k.1 + j]
                                }
                            }
                        }
                        y.append(acc)
                    }
                }
            }
        }
        return y
    }

    func testConvGradientsMatchFiniteDifferencesOnEveryDevice() throws {
        // A 5x7 image of 3 channels, a batch of 1, stride 2, padding 2, dilation 2; and a plain 3x3 "same" conv.
        let cases: [(n: Int, c: Int, h: Int, w: Int, o: Int, k: (Int, Int), s: (Int, Int), p: (Int, Int),
                     d: (Int, Int))] = [
            (1, 3, 5, 7, 2, (3, 3), (2, 2), (2, 2), (2, 2)),
            (2, 2, 4, 5, 3, (3, 3), (1, 1), (1, 1), (1, 1)),
        ]
        for (n, c, h, w, o, k, s, p, d) in cases {
            try checkTapeGradients("conv2d \(n)x\(c)x\(h)x\(w) k\(k) s\(s) p\(p) d\(d)", [
                GradientInput([n, c, h, w], seed: 110), GradientInput([o, c, k.0, k.1], seed: 111),
                GradientInput([o], seed: 112),
            ], build: { t in
                try t[0].conv2d(t[1], bias: t[2], stride: s, padding: p, dilation: d)
            }, reference: { v in
                self.reference(v[0], v[1], v[2], n: n, c: c, h: h, wd: w, o: o, k: k, s: s, p: p, d: d)
            })
        }
    }

    /// A frozen weight (no gradient at the forward): the input's gradient is the trained one's, and the weight takes
    /// none even when it asks for one before the backward (PyTorch's graph has no edge to it), on every device.
    func testAFrozenWeightsConvGivesTheSameGradients() throws {
        for device in testDevices {
            func run(frozen: Bool) throws -> (dx: [Float], dw: [Float]?) {
                let x = try Tensor.randn([3, 2, 6, 5], seed: 120, on: device)
                let w = try Tensor.randn([4, 2, 3, 3], seed: 121, on: device)
                x.requiresGrad = true
                w.requiresGrad = !frozen
                let y = try x.conv2d(w, stride: (1, 2), padding: (1, 1), dilation: (1, 1))
                w.requiresGrad = true
                try (y * y).sum().backward()
                return (try XCTUnwrap(x.grad).toArray(), try w.grad?.toArray())
            }
            let (trained, frozen) = (try run(frozen: false), try run(frozen: true))
            XCTAssertEqual(frozen.dx, trained.dx, "\(device)")
            XCTAssertNotNil(trained.dw, "\(device)")
            XCTAssertNil(frozen.dw, "\(device)")
        }
        // On OpenCL the forward unfolds the batch's patches ([2·3·3, 3·6·3] floats): with a frozen weight they are
        // freed (back to the device's pool) as soon as the forward ends, not held by the tape.
        for device in openCLDevices {
            func keptAfterForward(frozen: Bool) throws -> Int {
                let x = try Tensor.randn([3, 2, 6, 5], seed: 120, on: device)
                let w = try Tensor.randn([4, 2, 3, 3], seed: 121, on: device)
                x.requiresGrad = true
                w.requiresGrad = !frozen
                try device.releaseCachedMemory()
                let y = try x.conv2d(w, stride: (1, 2), padding: (1, 1), dilation: (1, 1))
                defer { withExtendedLifetime(y) {} }
                return device.cachedMemory
            }
            let patches = 2 * 3 * 3 * 3 * 6 * 3 * MemoryLayout<Float>.size
            XCTAssertGreaterThanOrEqual(try keptAfterForward(frozen: true),
                                        try keptAfterForward(frozen: false) + patches, "\(device)")
        }
    }

    /// A permuted (non-contiguous) input is read through a contiguous copy; its gradient reaches the base.
    func testConvOfAViewAndWithoutBiasOnEveryDevice() throws {
        let (n, c, h, w, o) = (2, 3, 4, 5, 2)
        try checkTapeGradients("conv2d of an NHWC tensor permuted to NCHW", [
            GradientInput([n, h, w, c], seed: 113), GradientInput([o, c, 2, 2], seed: 114),
        ], build: { t in
            try t[0].permuted([0, 3, 1, 2]).conv2d(t[1], padding: 1)
        }, reference: { v in
            // NHWC → NCHW by hand.
            let x = (0..<n).flatMap { b in (0..<c).flatMap { ch in (0..<h).flatMap { y in (0..<w).map { z in
                v[0][((b * h + y) * w + z) * c + ch]
            } } } }
            return self.reference(x, v[1], nil, n: n, c: c, h: h, wd: w, o: o, k: (2, 2), s: (1, 1), p: (1, 1),
                                  d: (1, 1))
        })
    }

    func testBadShapesAndWindowsAreErrorsNamingThem() throws {
        for device in testDevices {
            let x = try Tensor.zeros([1, 3, 5, 7], on: device)
            let cases: [(String, () throws -> Tensor)] = [
                ("more than the padded input's 5", { try x.conv2d(try Tensor.zeros([2, 3, 8, 3], on: device)) }),
                ("kernel, stride and dilation in 1...", {
                    try x.conv2d(try Tensor.zeros([2, 3, 3, 3], on: device), stride: 0)
                }),
                ("got kernel 3, stride 4294967296", {
                    try x.conv2d(try Tensor.zeros([2, 3, 3, 3], on: device), stride: 1 << 32)
                }),
                ("padding in 0...", { try x.conv2d(try Tensor.zeros([2, 3, 3, 3], on: device), padding: Int.max) }),
                ("the input has 3 channels", { try x.conv2d(try Tensor.zeros([2, 4, 3, 3], on: device)) }),
                ("expects NCHW input", { try Tensor.zeros([3, 5, 7], on: device).conv2d(x) }),
                ("the bias has shape [3]", {
                    try x.conv2d(try Tensor.zeros([2, 3, 3, 3], on: device), bias: try Tensor.zeros([3], on: device))
                }),
                ("expects a weight of shape", { try x.conv2d(try Tensor.zeros([2, 3, 3], on: device)) }),
                // (It named a "tensor" the caller never made: helper-28.)
                ("conv2d: the output [1, 1, 60001, 60001] has too many elements", {
                    try Tensor.zeros([1, 1, 1, 1], on: device).conv2d(try Tensor.zeros([1, 1, 1, 1], on: device),
                                                                      padding: 30000)
                }),
            ]
            for (expected, body) in cases {
                XCTAssertThrowsError(try body(), expected) { error in
                    XCTAssertTrue("\(error)".contains(expected), "\(error)")
                }
            }
        }
    }

    /// On OpenCL the batch's patches are one tensor: past a tensor's limit the error names conv2d and the batch that
    /// fits (it named a [225, 9610000] tensor the caller never made). The cpu, image by image, has no such limit.
    func testPatchesPastATensorsLimitAreAnErrorNamingConv() throws {
        for device in openCLDevices {
            let x = try Tensor.empty([1, 1, 3100, 3100], on: device)  // 225 taps × 9.6M positions > 2^31
            XCTAssertThrowsError(try x.conv2d(try Tensor.zeros([1, 1, 15, 15], on: device), padding: 7)) {
                XCTAssertTrue("\($0)".contains("conv2d: on OpenCL a convolution unfolds the batch's patches into one "
                    + "[C·kh·kw, N·OH·OW] = [225, 1·9610000] matrix"), "\($0)")
            }
        }
    }

    /// conv2d's doc-comment example, as written there.
    func testTheDocExampleRunsOnEveryDevice() throws {
        for device in testDevices {
            let x = try Tensor.randn([64, 1, 28, 28], seed: 1, on: device)
            let w = try Tensor.randn([32, 1, 3, 3], seed: 2, std: 0.3, on: device), b = try Tensor.zeros([32], on: device)
            w.requiresGrad = true
            let y = try x.conv2d(w, bias: b, padding: 1)        // [64, 32, 28, 28]
            try y.clamped(min: 0).mean().backward()             // w.grad: [32, 1, 3, 3]
            XCTAssertEqual(y.shape, [64, 32, 28, 28])
            XCTAssertEqual(try XCTUnwrap(w.grad).shape, [32, 1, 3, 3])
        }
    }

    func testZeroSizeBatchGivesAnEmptyOutput() throws {
        for device in testDevices {
            let x = try Tensor.zeros([0, 2, 4, 4], on: device)
            x.requiresGrad = true
            let y = try x.conv2d(try Tensor.ones([3, 2, 3, 3], on: device), padding: 1)
            XCTAssertEqual(y.shape, [0, 3, 4, 4])
            try y.sum().backward()
            XCTAssertEqual(try XCTUnwrap(x.grad).shape, [0, 2, 4, 4])
        }
    }
}
