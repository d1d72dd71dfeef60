// Compiler-derived gradients (Swift's differentiable programming) of the CPU reference forward passes: the check the
// fast.ai lessons make against PyTorch's autograd. Each module's and each loss's forward is written once, in Double,
// as a `@differentiable(reverse)` function; `gradient(at:of:)` derives its backward. Only the zip that pairs two
// arrays for a dot product has a pullback written by hand (it routes each pair's tangent back; no calculus).
//
// `_Differentiation` is not in every toolchain (Xcode's lacks it): everything here is behind
// `#if canImport(_Differentiation)`, and `-D CLNN_NO_DIFFERENTIATION` hides it to prove the rest builds without it
// (scripts/check-no-differentiation). `Autograd.isAvailable` says which build this is.
import Device

#if canImport(_Differentiation) && !CLNN_NO_DIFFERENTIATION
import _Differentiation
import Foundation

public enum Autograd {
    /// Whether this build has Swift's differentiable programming.
    public static let isAvailable = true

    /// One Linear layer's parameters as the references take them: w [in, out] row-major (as CLNN stores it), b [out].
    public struct Layer {
        public var w: [Double]
        public var b: [Double]
        public let inFeatures: Int
        public let outFeatures: Int
        /// The activation after the bias, or nil.
        public let activation: Activation?
        public init(w: [Double], b: [Double], inFeatures: Int, outFeatures: Int, activation: Activation?) {
            (self.w, self.b, self.inFeatures, self.outFeatures, self.activation)
                = (w, b, inFeatures, outFeatures, activation)
        }
    }

    /// Gradients of one scalar loss: w.r.t. the input (row-major, the input's shape) and each layer's w and b.
    public struct Gradients {
        public let value: Double
        public let input: [Double]
        public let weights: [[Double]]
        public let biases: [[Double]]
    }

    /// What the stack's output feeds: L = Σ y∘r (a fixed random r, as `GradientCheck` uses), or a mean loss.
    public enum Objective {
        case weightedSum(r: [Double])
        case meanSquaredError(labels: [Double])
        case softmaxCrossEntropy(labels: [Double])
    }

    /// The gradients of `objective` after a stack of Linear layers (an activation-only layer is a Linear-free
    /// entry: pass `activationsBefore`) applied to `x` ([rows, in] row-major).
    public static func gradients(x: [Double], rows: Int, layers: [Layer], activationFirst: Activation? = nil,
                                 objective: Objective) -> Gradients {
        let inputs = layers.first?.inFeatures ?? 0
        let xm = (0..<rows).map { Array(x[$0 * inputs..<($0 + 1) * inputs]) }
        let params = layers.map { Params(wT: transposed($0.w, rows: $0.inFeatures, cols: $0.outFeatures), b: $0.b) }
        let activations = layers.map(\.activation)
        let (value, (gx, gp)) = valueWithGradient(at: xm, params) { x, p in
            objectiveOf(x, p, activations, activationFirst, objective)
        }
        let gxFull = gx.base.isEmpty ? [[Double]](repeating: [Double](repeating: 0, count: inputs), count: rows)
                                     : gx.base.map { $0.base.isEmpty ? [Double](repeating: 0, count: inputs) : $0.base }
        var weights: [[Double]] = [], biases: [[Double]] = []
        for (k, layer) in layers.enumerated() {
            let g = k < gp.base.count ? gp.base[k] : Params.TangentVector.zero
            let wT = g.wT.base.isEmpty ? [[Double]](repeating: [], count: layer.outFeatures) : g.wT.base.map(\.base)
            var w = [Double](repeating: 0, count: layer.inFeatures * layer.outFeatures)
            for o in 0..<layer.outFeatures where !wT[o].isEmpty {
                for i in 0..<layer.inFeatures { w[i * layer.outFeatures + o] = wT[o][i] }
            }
            weights.append(w)
            biases.append(g.b.base.isEmpty ? [Double](repeating: 0, count: layer.outFeatures) : g.b.base)
        }
        return Gradients(value: value, input: gxFull.flatMap { $0 }, weights: weights, biases: biases)
    }

    /// The value and gradient of a loss objective w.r.t. the predictions `pred` ([rows, cols] row-major).
    public static func lossGradient(pred: [Double], rows: Int, cols: Int,
                                    objective: Objective) -> (value: Double, grad: [Double]) {
        let pm = (0..<rows).map { Array(pred[$0 * cols..<($0 + 1) * cols]) }
        let (value, g) = valueWithGradient(at: pm) { p in lossOf(p, objective) }
        return (value, (0..<rows).flatMap { i in
            i < g.base.count && !g.base[i].base.isEmpty ? g.base[i].base : [Double](repeating: 0, count: cols)
        })
    }

    // MARK: The references, written once

    struct Params: Differentiable {
        /// w transposed: one row of `in` weights per output.
        var wT: [[Double]]
        var b: [Double]
    }

    struct Pair: Differentiable {
        var a: Double
        var b: Double
    }

    /// Plumbing for `dot`: its pullback only hands each pair's tangents back to the two arrays.
    static func pairs(_ a: [Double], _ b: [Double]) -> [Pair] { zip(a, b).map { Pair(a: $0, b: $1) } }

    @derivative(of: pairs)
    static func pairsVJP(_ a: [Double], _ b: [Double])
        -> (value: [Pair],
            pullback: (Array<Pair>.TangentVector) -> (Array<Double>.TangentVector, Array<Double>.TangentVector)) {
        (pairs(a, b), { v in
            v.base.isEmpty ? (.zero, .zero)
                : (Array<Double>.TangentVector(v.base.map(\.a)), Array<Double>.TangentVector(v.base.map(\.b)))
        })
    }

    @differentiable(reverse)
    static func dot(_ a: [Double], _ b: [Double]) -> Double {
        pairs(a, b).differentiableReduce(0) { $0 + $1.a * $1.b }
    }

    /// f(x) for one activation, in Double: the same definitions as `Activation`'s.
    @differentiable(reverse)
    static func activate(_ x: Double, _ f: Activation) -> Double {
        switch f {
        case .relu: return x > 0 ? x : 0
        case .leakyReLU: return x > 0 ? x : x / 100
        case .tanh: return Foundation.tanh(x)
        case .sigmoid: return 1 / (1 + Foundation.exp(-x))
        case .gelu: return x * (1 + Foundation.erf(x / 2.0.squareRoot())) / 2
        }
    }

    @differentiable(reverse)
    static func applyRows(_ x: [[Double]], _ f: Activation) -> [[Double]] {
        x.differentiableMap { row in row.differentiableMap { activate($0, f) } }
    }

    /// x·w + b, then f: x [rows][in] → [rows][out].
    @differentiable(reverse)
    static func linear(_ x: [[Double]], _ p: Params, _ f: Activation?) -> [[Double]] {
        var y: [[Double]] = []
        for i in 0..<withoutDerivative(at: x.count) {
            let xi = x[i]
            var row: [Double] = []
            for o in 0..<withoutDerivative(at: p.wT.count) {
                let z = dot(xi, p.wT[o]) + p.b[o]
                if let f { row.append(activate(z, f)) } else { row.append(z) }
            }
            y.append(row)
        }
        return y
    }

    @differentiable(reverse)
    static func stack(_ x: [[Double]], _ params: [Params], _ activations: [Activation?]) -> [[Double]] {
        var h = x
        for k in 0..<withoutDerivative(at: params.count) { h = linear(h, params[k], activations[k]) }
        return h
    }

    @differentiable(reverse)
    static func objectiveOf(_ x: [[Double]], _ p: [Params], _ activations: [Activation?], _ first: Activation?,
                            _ objective: Objective) -> Double {
        var h = x
        if let first { h = applyRows(x, first) }
        return lossOf(stack(h, p, activations), objective)
    }

    @differentiable(reverse)
    static func lossOf(_ y: [[Double]], _ objective: Objective) -> Double {
        var total = 0.0
        let rows = withoutDerivative(at: y.count)
        for i in 0..<rows {
            let row = y[i]
            let cols = withoutDerivative(at: row.count)
            switch objective {
            case let .weightedSum(r):
                for j in 0..<cols { total = total + row[j] * r[i * cols + j] }
            case let .meanSquaredError(labels):
                let d = row[0] - labels[i]
                total = total + d * d / Double(rows)
            case let .softmaxCrossEntropy(labels):
                // log-sum-exp shifted by the row's max (a constant: the result does not depend on it).
                let m = withoutDerivative(at: row.max() ?? 0)
                var s = 0.0
                for j in 0..<cols { s = s + Foundation.exp(row[j] - m) }
                total = total + (m + Foundation.log(s) - row[Int(labels[i])]) / Double(rows)
            }
        }
        return total
    }

    static func transposed(_ w: [Double], rows: Int, cols: Int) -> [[Double]] {
        (0..<cols).map { c in (0..<rows).map { w[$0 * cols + c] } }
    }
}
#else
public enum Autograd {
    /// Whether this build has Swift's differentiable programming (this one does not: `_Differentiation` is missing
    /// from the toolchain, or hidden with `-D CLNN_NO_DIFFERENTIATION`).
    public static let isAvailable = false
}
#endif
