// einsum for two operands: the lessons' step between broadcasting and BLAS. A spec that is a matrix product
// ("ik,kj->ij",
// "bi,ij->bj", "ij,kj->ik", "ji,jk->ik", ... and their transposed outputs) runs as `matmul` with the transposes read
// through the GEMM kernels' forms — never copied; any other contraction ("ij,ij->", "i,j->ij", "bij,jk->bik", ...)
// is a plain loop on the host, the reference the product forms are tested against.
import Foundation

/// A parsed two-operand einsum spec: each operand's subscripts (one letter per dimension) and the output's.
public struct EinsumSpec: Equatable, Sendable, CustomStringConvertible {
    /// The two operands' subscripts.
    public let inputs: [[Character]]
    /// The output's subscripts (every letter in it appears in an operand).
    public let output: [Character]

    /// Parses `ik,kj->ij`. Without `->` the output is numpy's implicit one: the letters that appear once, sorted.
    /// - Throws: `DeviceError.invalidArgument` naming the bad subscript or part.
    public init(_ spec: String) throws {
        func fail(_ why: String) -> DeviceError { .invalidArgument(op: "einsum", "'\(spec)': \(why)") }
        let text = spec.filter { $0 != " " }
        let sides = text.components(separatedBy: "->")
        guard sides.count <= 2 else { throw fail("more than one '->'") }
        let operands = sides[0].split(separator: ",", omittingEmptySubsequences: false).map(Array.init)
        guard operands.count == 2 else { throw fail("einsum takes two operands ('ik,kj->ij'), got \(operands.count)") }
        for (n, subscripts) in operands.enumerated() {
            if let bad = subscripts.first(where: { !($0.isASCII && $0.isLetter) }) {
                throw fail("operand \(n + 1) has subscript '\(bad)'; subscripts are letters a-z, A-Z")
            }
            if let repeated = subscripts.first(where: { c in subscripts.filter { $0 == c }.count > 1 }) {
                throw fail("subscript '\(repeated)' repeats in operand \(n + 1) ('\(String(subscripts))'): "
                    + "diagonals and traces are not supported")
            }
        }
        var output: [Character]
        if sides.count == 2 {
            output = Array(sides[1])
            if let bad = output.first(where: { !($0.isASCII && $0.isLetter) }) {
                throw fail("the output has subscript '\(bad)'; subscripts are letters a-z, A-Z")
            }
            if let unknown = output.first(where: { c in !operands.joined().contains(c) }) {
                throw fail("output subscript '\(unknown)' appears in no operand")
            }
            if let repeated = output.first(where: { c in output.filter { $0 == c }.count > 1 }) {
                throw fail("output subscript '\(repeated)' repeats")
            }
        } else {
            let all = operands.joined()
            output = Set(all).filter { c in all.filter { $0 == c }.count == 1 }.sorted()
        }
        inputs = operands
        self.output = output
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var parsed: [String: EinsumSpec] = [:]

    /// The parsed spec, parsed once per distinct text (a few microseconds that a small product would notice).
    static func cached(_ spec: String) throws -> EinsumSpec {
        if let hit = lock.withLock({ parsed[spec] }) { return hit }
        let value = try EinsumSpec(spec)
        lock.withLock { if parsed.count < 256 { parsed[spec] = value } }
        return value
    }

    /// `ik,kj->ij`
    public var description: String { inputs.map { String($0) }.joined(separator: ",") + "->" + String(output) }

    /// The matrix product this spec is, when it is one: op(a)·op(b), or the same for the transposed output computed
    /// as op(b)·op(a).
    var product: (swap: Bool, transA: Bool, transB: Bool)? {
        guard inputs[0].count == 2, inputs[1].count == 2, output.count == 2 else { return nil }
        let (a, b) = (inputs[0], inputs[1])
        let shared = a.filter { b.contains($0) }
        guard shared.count == 1, let k = shared.first, !output.contains(k) else { return nil }
        guard let i = a.first(where: { $0 != k }), let j = b.first(where: { $0 != k }), i != j else { return nil }
        let transA = a[0] == k, transB = b[1] == k
        if output == [i, j] { return (false, transA, transB) }
        // out[j][i] = Σ_k op(b)ᵀ[j][k] · op(a)ᵀ[k][i]: b first, each transpose flag flipped.
        if output == [j, i] { return (true, !transB, !transA) }
        return nil
    }
}

extension Tensor {
    /// Einstein summation over two operands, e.g. `Tensor.einsum("bi,ij->bj", x, w)`: every output element is the
    /// sum, over the subscripts missing from the output, of the operands' products. Matrix-product specs run as
    /// `matmul` on the operands' device; the rest run as a loop on the host (on an OpenCL device the operands are
    /// read back and the result uploaded).
    /// - Throws: `DeviceError.invalidArgument` for a bad spec (naming the subscript) or a subscript whose sizes
    ///   differ between the operands; `DeviceError.deviceMismatch` when the operands live on different devices.
    @discardableResult
    public static func einsum(_ spec: String, _ a: Tensor, _ b: Tensor, into out: Tensor? = nil) throws -> Tensor {
        let parsed = try EinsumSpec.cached(spec)
        guard a.device == b.device else { throw DeviceError.deviceMismatch(op: "einsum", a.device, b.device) }
        var sizes: [Character: Int] = [:]
        for (n, (subscripts, tensor)) in zip(parsed.inputs, [a, b]).enumerated() {
            guard subscripts.count == tensor.shape.count else {
                throw DeviceError.invalidArgument(op: "einsum", "'\(spec)': operand \(n + 1) has \(subscripts.count) "
                    + "subscripts "
                    + "('\(String(subscripts))') but shape \(tensor.shape)")
            }
            for (c, size) in zip(subscripts, tensor.shape) {
                if let known = sizes[c], known != size {
                    throw DeviceError.invalidArgument(op: "einsum", "'\(spec)': subscript '\(c)' is \(known) "
                        + "in operand 1 "
                        + "but \(size) in operand 2")
                }
                sizes[c] = size
            }
        }
        let shape = parsed.output.map { sizes[$0]! }
        let result = try withoutGradients { () throws -> Tensor in
            if let product = parsed.product {
                // (The output checked here first, so that its errors name einsum, not the product it runs as.)
                if let out { _ = try output("einsum", out, shape, on: a.device, reading: [a, b]) }
                let (x, y) = product.swap ? (b, a) : (a, b)
                return try x.matmul(y, transposeSelf: product.transA, transposeOther: product.transB, into: out)
            }
            let result = try output("einsum", out, shape, on: a.device, reading: [a, b])
            let (ha, hb) = (try a.toArray(), try b.toArray())
            try result.upload(einsumLoop(parsed, ha, a.shape, hb, b.shape, sizes: sizes))
            return result
        }
        guard out == nil else { return result }
        let (x, y) = (a.detached(), b.detached())
        return result.recorded("einsum", from: [a, b], saving: [x, y]) { g in
            [try einsumGradient(parsed, g, y, parsed.inputs[1], into: parsed.inputs[0], shape: a.shape),
             try einsumGradient(parsed, g, x, parsed.inputs[0], into: parsed.inputs[1], shape: b.shape)]
        }
    }

    /// The gradient of one operand (subscripts `target`, `shape`): the output's gradient contracted with the other
    /// operand; along a subscript only the target has (summed away in the forward), it is the same everywhere.
    private static func einsumGradient(_ spec: EinsumSpec, _ g: Tensor, _ other: Tensor, _ otherSubscripts: [Character],
                                       into target: [Character], shape: [Int]) throws -> Tensor {
        let reachable = target.filter { spec.output.contains($0) || otherSubscripts.contains($0) }
        let partial = try einsum(String(spec.output) + "," + String(otherSubscripts) + "->" + String(reachable),
                                 g, other)
        guard reachable.count < target.count else { return partial }
        let kept = zip(target, shape).map { reachable.contains($0) ? $1 : 1 }
        return try partial.reshaped(kept).expanded(to: shape)
    }
}

/// The plain loop: every combination of the output's and the contracted subscripts, one multiply-add each.
func einsumLoop(_ spec: EinsumSpec, _ a: [Float], _ aShape: [Int], _ b: [Float], _ bShape: [Int],
                sizes: [Character: Int]) -> [Float] {
    let letters = spec.output + Set(spec.inputs.joined()).subtracting(spec.output).sorted()
    let extents = letters.map { sizes[$0]! }
    func strides(_ subscripts: [Character], _ shape: [Int]) -> [Int] {
        var own = [Int](repeating: 0, count: shape.count)
        var s = 1
        for d in shape.indices.reversed() { own[d] = s; s *= shape[d] }
        return letters.map { c in subscripts.firstIndex(of: c).map { own[$0] } ?? 0 }
    }
    let (sa, sb) = (strides(spec.inputs[0], aShape), strides(spec.inputs[1], bShape))
    let so = strides(spec.output, spec.output.map { sizes[$0]! })
    var out = [Float](repeating: 0, count: spec.output.reduce(1) { $0 * sizes[$1]! })
    guard extents.allSatisfy({ $0 > 0 }) else { return out }
    var index = [Int](repeating: 0, count: letters.count)
    var (ia, ib, io) = (0, 0, 0)
    while true {
        out[io] += a[ia] * b[ib]
        // Odometer: advance the last subscript, carrying into the ones before.
        var d = letters.count - 1
        while d >= 0 {
            index[d] += 1
            ia += sa[d]; ib += sb[d]; io += so[d]
            if index[d] < extents[d] { break }
            ia -= sa[d] * extents[d]; ib -= sb[d] * extents[d]; io -= so[d] * extents[d]
            index[d] = 0
            d -= 1
        }
        if d < 0 { break }
    }
    return out
}
