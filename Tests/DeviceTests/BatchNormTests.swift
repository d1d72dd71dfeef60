@testable import Device
import Foundation
import TestSupport
import XCTest

/// `Tensor.batchNorm` beyond its op checks (odd sizes against Double, in `clnn check`): long channels far from zero
/// (the sums' accuracy) and the errors bad input gets, on every device.
final class BatchNormTests: XCTestCase {
    /// 40·317 values per channel around 100 (a float's sum of them loses digits unless it is blocked): the mean and
    /// variance, y and the gradients, against Double.
    func testLongChannelsFarFromZeroAgainstDoubleOnEveryDevice() throws {
        let (n, c, l) = (40, 3, 317)
        let xv = testValues(n * c * l, seed: 140).map { 100 + $0 * 2 }, rv = testValues(n * c * l, seed: 141)
        let gv: [Float] = [1.5, -0.5, 2], bv: [Float] = [0.25, 1, -3]
        let count = Double(n * l), eps = 1e-5
        var mean = [Double](repeating: 0, count: c), variance = mean
        for ch in 0..<c {
            let values = (0..<n).flatMap { b in (0..<l).map { Double(xv[(b * c + ch) * l + $0]) } }
            mean[ch] = values.reduce(0, +) / count
            variance[ch] = values.reduce(0) { $0 + ($1 - mean[ch]) * ($1 - mean[ch]) } / count
        }
        for device in testDevices {
            let x = try Tensor(xv, shape: [n, c, l], on: device)
            let gamma = try Tensor(gv, shape: [c], on: device), beta = try Tensor(bv, shape: [c], on: device)
            for t in [x, gamma, beta] { t.requiresGrad = true }
            let (y, m, v) = try x.batchNorm(weight: gamma, bias: beta, eps: Float(eps))
            let (ms, vs, ys) = (try m.toArray(), try v.toArray(), try y.toArray())
            for ch in 0..<c {
                XCTAssertEqual(Double(ms[ch]), mean[ch], accuracy: 1e-5 * abs(mean[ch]), "\(device) mean \(ch)")
                XCTAssertEqual(Double(vs[ch]), variance[ch], accuracy: 1e-4 * variance[ch], "\(device) var \(ch)")
            }
            var worst = 0.0
            for (i, value) in ys.enumerated() {
                let ch = (i / l) % c
                let expected = (Double(xv[i]) - mean[ch]) / (variance[ch] + eps).squareRoot() * Double(gv[ch])
                    + Double(bv[ch])
                worst = max(worst, abs(Double(value) - expected))
            }
            XCTAssertLessThan(worst, 2e-4, "\(device): y")
            try (y * (try Tensor(rv, shape: [n, c, l], on: device))).sum().backward()
            // dβ = Σ r, dγ = Σ r·x̂ per channel; dx = γ/σ·(r − mean(r) − x̂·mean(r·x̂)).
            let (dx, dg, db) = (try XCTUnwrap(x.grad).toArray(), try XCTUnwrap(gamma.grad).toArray(),
                                try XCTUnwrap(beta.grad).toArray())
            for ch in 0..<c {
                let sigma = (variance[ch] + eps).squareRoot()
                let at = (0..<n).flatMap { b in (0..<l).map { (b * c + ch) * l + $0 } }
                let sumR = at.reduce(0.0) { $0 + Double(rv[$1]) }
                let sumRX = at.reduce(0.0) { $0 + Double(rv[$1]) * (Double(xv[$1]) - mean[ch]) / sigma }
                XCTAssertEqual(Double(db[ch]), sumR, accuracy: 1e-3, "\(device) dβ \(ch)")
                XCTAssertEqual(Double(dg[ch]), sumRX, accuracy: 1e-3, "\(device) dγ \(ch)")
                var worstDx = 0.0
                for i in at {
                    let xhat = (Double(xv[i]) - mean[ch]) / sigma
                    let expected = Double(gv[ch]) / sigma * (Double(rv[i]) - sumR / count - xhat * sumRX / count)
                    worstDx = max(worstDx, abs(Double(dx[i]) - expected))
                }
                XCTAssertLessThan(worstDx, 1e-4, "\(device) dx \(ch)")
            }
        }
    }

    /// A channel holding an infinity has that infinity as its mean (and NaN as its variance), as PyTorch's, on every
    /// device: the kernel's compensated sum made the mean NaN (inf − inf in the compensation). One of each sign
    /// makes it NaN; the other channels stay finite.
    func testAnInfiniteValueGivesAnInfiniteMeanOnEveryDevice() throws {
        for device in testDevices {
            for (values, expected) in [([Float.infinity], Float.infinity), ([-.infinity], -.infinity),
                                       ([.infinity, -.infinity], .nan)] {
                var xv = testValues(5 * 2 * 11, seed: 142)
                for (i, value) in values.enumerated() { xv[(3 * 2 + 1) * 11 + 4 + 5 * i] = value }  // channel 1
                let x = try Tensor(xv, shape: [5, 2, 11], on: device)
                let ones = try Tensor.ones([2], on: device), zeros = try Tensor.zeros([2], on: device)
                let (_, mean, variance) = try x.batchNorm(weight: ones, bias: zeros, eps: 1e-5)
                let (m, v) = (try mean.toArray(), try variance.toArray())
                XCTAssertTrue(m[0].isFinite && v[0].isFinite, "\(device) \(values): the other channel \(m) \(v)")
                XCTAssertTrue(expected.isNaN ? m[1].isNaN : m[1] == expected, "\(device) \(values): mean \(m[1])")
                XCTAssertTrue(v[1].isNaN, "\(device) \(values): variance \(v[1])")
            }
        }
    }

    /// A long channel at 1e6 ± 1 (64·784 values): the mean to within a float's spacing there (1/16), the variance
    /// to 1e-4 and y accordingly, against Double. (Terms scaled by 1/count before adding, nearly equal, were all
    /// rounded one way: the mean was 0.9 off, the variance 1.10 for 0.34, y 2.4 off.)
    func testAChannelFarFromZeroKeepsItsDigitsOnEveryDevice() throws {
        let (n, c, l) = (64, 2, 784)
        let xv = testValues(n * c * l, seed: 144).map { 1e6 + $0 }
        let channel = (0..<n).flatMap { b in (0..<l).map { Double(xv[b * c * l + $0]) } }
        let mean = channel.reduce(0, +) / Double(n * l)
        let variance = channel.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n * l)
        for device in testDevices {
            let x = try Tensor(xv, shape: [n, c, l], on: device)
            let (y, m, v) = try x.batchNorm(weight: try Tensor([1.5, 1], shape: [2], on: device),
                                            bias: try Tensor([0.25, 0], shape: [2], on: device), eps: 1e-5)
            let (ms, vs, ys) = (try m.toArray(), try v.toArray(), try y.toArray())
            XCTAssertEqual(Double(ms[0]), mean, accuracy: 0.07, "\(device): mean")
            XCTAssertEqual(Double(vs[0]), variance, accuracy: variance * 1e-4, "\(device): variance")
            let own = (0..<n).flatMap { b in (0..<l).map { ys[b * c * l + $0] } }
            let expected = channel.map { 1.5 * ($0 - mean) / (variance + 1e-5).squareRoot() + 0.25 }
            XCTAssertLessThan(zip(own, expected).map { abs(Double($0) - $1) }.max() ?? .nan, 0.15, "\(device): y")
        }
    }

    /// Values whose sum (or sum of squares) overflows a float while their mean (and variance) do not: a channel of
    /// 3e37 everywhere has that mean, no spread and y = β (the kernel's sum was inf, y NaN: x·scale overflowed too),
    /// and one spread over ±1e19 has its variance (~1e38; the squares' sum overflowed), on every device as in Double.
    /// (The kernel sums the spread about the channel's first value, and scales the squares' terms first.)
    func testValuesNearTheLargestFloatOnEveryDevice() throws {
        let (n, c, l) = (5, 2, 11)
        for device in testDevices {
            for spread in [false, true] {
                var xv = testValues(n * c * l, seed: 143)
                for b in 0..<n {
                    for q in 0..<l { xv[(b * c + 1) * l + q] = spread ? 1e19 * xv[(b * c + 1) * l + q] : 3e37 }
                }
                let channel = (0..<n).flatMap { b in (0..<l).map { Double(xv[(b * c + 1) * l + $0]) } }
                let mean = channel.reduce(0, +) / Double(n * l)
                let variance = channel.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n * l)
                let x = try Tensor(xv, shape: [n, c, l], on: device)
                let (y, m, v) = try x.batchNorm(weight: try Tensor([1, 2], shape: [2], on: device),
                                                bias: try Tensor([0.5, 0.25], shape: [2], on: device), eps: 1e-5)
                let (ms, vs, ys) = (try m.toArray(), try v.toArray(), try y.toArray())
                XCTAssertEqual(Double(ms[1]), mean, accuracy: abs(mean) * 1e-5, "\(device) spread \(spread): mean")
                XCTAssertEqual(Double(vs[1]), variance, accuracy: variance * 1e-4, "\(device) spread \(spread): var")
                let own = (0..<n).flatMap { b in (0..<l).map { ys[(b * c + 1) * l + $0] } }
                if spread {
                    let expected = channel.map { 2 * ($0 - mean) / (variance + 1e-5).squareRoot() + 0.25 }
                    XCTAssertLessThan(zip(own, expected).map { abs(Double($0) - $1) }.max() ?? .nan, 1e-4,
                                      "\(device): y")
                } else {
                    XCTAssertEqual(own, [Float](repeating: 0.25, count: n * l), "\(device): y = β")
                }
            }
        }
    }

    func testBadInputIsAnErrorNamingTheOpAndTheSizes() throws {
        for device in testDevices {
            let x = try Tensor.zeros([2, 3, 4], on: device)
            let (g3, b3) = (try Tensor.ones([3], on: device), try Tensor.zeros([3], on: device))
            let cases: [(String, () throws -> Any)] = [
                ("expects input of shape [N, C, L], got [2, 12]",
                 { try Tensor.zeros([2, 12], on: device).batchNorm(weight: g3, bias: b3, eps: 1e-5) }),
                ("the weight has shape [4], the input's 3 channels need [3]",
                 { try x.batchNorm(weight: try Tensor.ones([4], on: device), bias: b3, eps: 1e-5) }),
                ("the variance has shape [2]",
                 { try x.batchNorm(weight: g3, bias: b3, eps: 1e-5,
                                   statistics: (b3, try Tensor.ones([2], on: device))) }),
                ("eps must be finite and ≥ 0, got -1.0", { try x.batchNorm(weight: g3, bias: b3, eps: -1) }),
                ("eps must be finite and ≥ 0, got nan", { try x.batchNorm(weight: g3, bias: b3, eps: .nan) }),
                ("more than one value per channel, got input of shape [1, 3, 1]",
                 { try Tensor.zeros([1, 3, 1], on: device).batchNorm(weight: g3, bias: b3, eps: 1e-5) }),
            ]
            for (expected, body) in cases {
                XCTAssertThrowsError(try body(), expected) { error in
                    XCTAssertTrue("\(error)".contains("batch_norm") && "\(error)".contains(expected), "\(error)")
                }
            }
            // One value per channel is fine with given statistics (evaluation).
            let one = try Tensor([1, 2, 3], shape: [1, 3, 1], on: device)
            let (y, _, _) = try one.batchNorm(weight: g3, bias: b3, eps: 0, statistics: (b3, g3))
            XCTAssertEqual(try y.toArray(), [1, 2, 3], "\(device)")
        }
        guard let device = testDevices.first(where: \.isOpenCL) else { return }
        let x = try Tensor.zeros([2, 3, 4], on: device)
        XCTAssertThrowsError(try x.batchNorm(weight: try Tensor.ones([3], on: .cpu),
                                             bias: try Tensor.zeros([3], on: device), eps: 1e-5)) { error in
            XCTAssertTrue("\(error)".contains("batch_norm") && "\(error)".contains("cpu"), "\(error)")
        }
    }
}
