/// Compares hand-written backward passes with central finite differences of a Double-precision reference, as the
/// fast.ai lessons compared theirs with autograd.
public enum GradientCheck {
    /// One compared gradient: its name, the analytic values from backward, and the numeric ones.
    public struct Result {
        /// What was compared: `input`, or a parameter's name.
        public let name: String
        /// The gradient from the module’s backward.
        public let analytic: [Double]
        /// The gradient by central finite differences of the Double reference.
        public let numeric: [Double]

        /// The largest |analytic − numeric| / (atol + rtol·|numeric|); ≤ 1 passes.
        public func worstRatio(rtol: Double, atol: Double) -> Double {
            zip(analytic, numeric).map { abs($0 - $1) / (atol + rtol * abs($1)) }.max() ?? 0
        }
    }

    /// Checks `module` at input `x` (on the module's device) under L = Σ y ∘ r for a fixed random r:
    /// the input gradient and every parameter gradient.
    public static func check(_ module: any Module, input x: Tensor, seed: UInt64 = 1, step: Double = 1e-6) throws -> [Result] {
        let y = try module.forward(x)
        let r = try Tensor.randn(y.shape, seed: seed, on: x.device)
        try module.zeroGrad()
        let dx = try module.backward(r)

        let xd = try DoubleMatrix(x)
        let rd = try r.toArray().map(Double.init)
        let params = try module.parameters.map { try $0.value.toArray().map(Double.init) }
        func loss(_ x: DoubleMatrix, _ params: [[Double]]) -> Double {
            zip(module.referenceForward(x, params).values, rd).reduce(0) { $0 + $1.0 * $1.1 }
        }

        var results = [Result(
            name: "input",
            analytic: try dx.toArray().map(Double.init),
            numeric: finiteDifferences(xd.values, step: step) { loss(DoubleMatrix(rows: xd.rows, cols: xd.cols, values: $0), params) }
        )]
        for (index, p) in module.parameters.enumerated() {
            let numeric = finiteDifferences(params[index], step: step) { values in
                var perturbed = params
                perturbed[index] = values
                return loss(xd, perturbed)
            }
            results.append(Result(name: p.name, analytic: try p.grad.toArray().map(Double.init), numeric: numeric))
        }
        return results
    }

    /// Checks a loss's fused gradient at predictions `pred` and `labels`.
    public static func check(_ loss: any Loss, pred: Tensor, labels: Tensor, step: Double = 1e-6) throws -> Result {
        let grad = try Tensor.zeros(pred.shape, on: pred.device)
        _ = try loss(pred, labels, grad: grad)
        let pd = try DoubleMatrix(pred)
        let ld = try labels.toArray().map(Double.init)
        let numeric = finiteDifferences(pd.values, step: step) {
            loss.reference(DoubleMatrix(rows: pd.rows, cols: pd.cols, values: $0), ld)
        }
        return Result(name: loss.name, analytic: try grad.toArray().map(Double.init), numeric: numeric)
    }

    /// Central differences of `f` at `x`.
    public static func finiteDifferences(_ x: [Double], step: Double, _ f: ([Double]) -> Double) -> [Double] {
        var probe = x
        return x.indices.map { i in
            probe[i] = x[i] + step
            let up = f(probe)
            probe[i] = x[i] - step
            let down = f(probe)
            probe[i] = x[i]
            return (up - down) / (2 * step)
        }
    }
}
