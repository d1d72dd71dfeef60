import Foundation
import TestSupport
import XCTest
@testable import Device

final class EinsumTests: XCTestCase {
    /// An independent reference in Double: recursion over a dictionary of subscript values.
    private func reference(_ spec: String, _ a: [Float], _ aShape: [Int], _ b: [Float],
                           _ bShape: [Int]) throws -> [Double] {
        let parsed = try EinsumSpec(spec)
        var sizes: [Character: Int] = [:]
        for (s, shape) in zip(parsed.inputs, [aShape, bShape]) { for (c, n) in zip(s, shape) { sizes[c] = n } }
        let contracted = Set(parsed.inputs.joined()).subtracting(parsed.output).sorted()
        func offset(_ s: [Character], _ shape: [Int], _ v: [Character: Int]) -> Int {
            zip(s, shape).reduce(0) { $0 * $1.1 + v[$1.0]! }
        }
        var out: [Double] = []
        func outer(_ k: Int, _ v: [Character: Int]) {
            if k == parsed.output.count {
                var total = 0.0
                func inner(_ c: Int, _ v: [Character: Int]) {
                    if c == contracted.count {
                        total += Double(a[offset(parsed.inputs[0], aShape, v)])
                            * Double(b[offset(parsed.inputs[1], bShape, v)])
                        return
                    }
                    for x in 0..<sizes[contracted[c]]! { var w = v; w[contracted[c]] = x; inner(c + 1, w) }
                }
                inner(0, v)
                out.append(total)
                return
            }
            for x in 0..<sizes[parsed.output[k]]! { var w = v; w[parsed.output[k]] = x; outer(k + 1, w) }
        }
        outer(0, [:])
        return out
    }

    func testEverySpecMatchesTheReferenceOnEveryDeviceIncludingOddShapes() throws {
        // (spec, a's shape, b's shape, runs as a product)
        let cases: [(String, [Int], [Int], Bool)] = [
            ("ik,kj->ij", [5, 7], [7, 3], true), ("bi,ij->bj", [65, 129], [129, 33], true),
            ("ij,kj->ik", [5, 7], [3, 7], true), ("ji,jk->ik", [7, 5], [7, 3], true),
            ("ki,jk->ij", [7, 5], [3, 7], true),
            ("ik,kj->ji", [5, 7], [7, 3], true), ("ik,jk->ji", [1, 9], [4, 9], true), ("ik,kj", [2, 3], [3, 4], true),
            ("ij,ij->", [5, 7], [5, 7], false), ("i,i->", [13], [13], false), ("i,j->ij", [3], [4], false),
            ("ij,j->i", [5, 7], [7], false), ("bij,jk->bik", [2, 3, 4], [4, 5], false),
            ("ij,kl->ijkl", [2, 1], [3, 2], false),
        ]
        for (spec, aShape, bShape, isProduct) in cases {
            XCTAssertEqual(try EinsumSpec(spec).product != nil, isProduct, spec)
            let av = testValues(aShape.reduce(1, *), seed: 1), bv = testValues(bShape.reduce(1, *), seed: 2)
            let expected = try reference(spec, av, aShape, bv, bShape)
            for device in testDevices {
                let c = try Tensor.einsum(spec, try Tensor(av, shape: aShape, on: device),
                                          try Tensor(bv, shape: bShape, on: device))
                XCTAssertEqual(c.device, device, spec)
                assertClose(try c.toArray(), expected, rtol: 1e-4, atol: 1e-5, "\(spec) on \(device)")
            }
        }
    }

    func testBadSpecsNameTheSubscript() throws {
        let a = try Tensor.zeros([2, 3]), b = try Tensor.zeros([3, 4])
        for (spec, fragment) in [("ik,kj->iz", "output subscript 'z' appears in no operand"),
                                 ("i1,kj->ij", "operand 1 has subscript '1'"),
                                 ("ikk,kj->ij", "subscript 'k' repeats in operand 1 ('ikk')"),
                                 ("ik->ik", "einsum takes two operands"),
                                 ("ik,kj->ii", "output subscript 'i' repeats"),
                                 ("ijk,kj->ij", "operand 1 has 3 subscripts ('ijk') but shape [2, 3]"),
                                 ("ik,jk->ij", "subscript 'k' is 3 in operand 1 but 4 in operand 2"),
                                 ("ik,kj->i-j", "the output has subscript '-'")] {
            XCTAssertThrowsError(try Tensor.einsum(spec, a, b)) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(spec): \(error)")
            }
        }
    }
}
