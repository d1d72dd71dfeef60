/// Compares hand-written backward passes with central finite differences of a Double-precision reference, as the
/// fast.ai lessons compared theirs with autograd.
public enum GradientCheck {
    /// One compared gradient: its name, the analytic values from backward, and the numeric ones.
    public struct Result {
        /// What was compared: `input`, or a parameter's state-dict name (`0.weight` in a `Sequential`).
        public let name: String
        /// The gradient from the module’s backward (at `indices` when sampled).
        public let analytic: [Double]
        /// The gradient by central finite differences of the Double reference (at `indices` when sampled).
        public let numeric: [Double]
        /// The flat indices compared, when a sample of them was; nil when every entry was.
        public let indices: [Int]?

        /// A comparison of `analytic` and `numeric` at `indices` (nil: every entry).
        public init(name: String, analytic: [Double], numeric: [Double], indices: [Int]? = nil) {
            (self.name, self.analytic, self.numeric, self.indices) = (name, analytic, numeric, indices)
        }

        /// The largest |analytic − numeric| / (atol + rtol·|numeric|); ≤ 1 passes.
        public func worstRatio(rtol: Double, atol: Double) -> Double {
            zip(analytic, numeric).map { abs($0 - $1) / (atol + rtol * abs($1)) }.max() ?? 0
        }
    }

    /// Checks `module` at input `x` (on the module's device) under L = Σ y ∘ r for a fixed random r: the input gradient
    /// and every parameter gradient (but a frozen one's). With `samples`, each tensor's gradient is compared at that
    /// many entries (drawn with `seed`; every entry of a smaller tensor): each entry costs two forward passes of the
    /// Double reference, so a 784-50 layer's 39,250 take a minute and 64 of them a moment. `step` defaults to 1e-6 for
    /// a Double reference and 3e-3 for an fp32 one (`hasDoubleReference` false: a `TapeModule`'s default), whose
    /// differences at 1e-6 would be rounding noise (measured on a small CNN: worst ratio 0.03 at 3e-3, 0.18 at 1e-2,
    /// 0.06 at 1e-3). At such a step a ReLU input near 0 or a max pool's near-tie is crossed now and then, and the
    /// finite difference there is wrong, not the gradient: check such models with smooth activations and average
    /// pooling, or give Double references. Any rank of input: its rows are the first axis ([N, C, H, W] for a CNN). The
    /// module's buffers (a batch norm's running statistics) are as before when it returns, and a dropout draws the same
    /// masks in every evaluation (the random streams are placed at one point first, and left there).
    /// - Throws: `DeviceError.invalidArgument` when the reference gives another count of values than the forward (a
    ///   layer's reference does not fit its input).
    public static func check(_ module: any Module, input x: Tensor, seed: UInt64 = 1, step: Double? = nil,
                             samples: Int? = nil) throws -> [Result] {
        let step = step ?? (module.hasDoubleReference ? 1e-6 : 3e-3)
        let buffers = try module.namedBuffers.map { ($0.name, try $0.value.cloned()) }
        defer { try? module.loadBuffers(Dictionary(buffers, uniquingKeysWith: { a, _ in a })) }
        let streams = seed ^ 0x6C0C_4EC4_0000_0000
        module.setRandomStream(seed: streams, draw: 0)
        let y = try ModuleTape.callerRunsBackward { try module.forward(x) }  // (its backward is called below)
        let r = try Tensor.randn(y.shape, seed: seed, on: x.device)
        try module.zeroGrad()
        let dx = try module.backward(r)

        let rows = x.shape.first ?? 1
        let xd = DoubleMatrix(flat: try x.toArray().map(Double.init), rows: rows)
        let rd = try r.toArray().map(Double.init)
        let params = try module.parameters.map { try $0.value.toArray().map(Double.init) }
        func loss(_ x: DoubleMatrix, _ params: [[Double]]) -> Double {
            module.setRandomStream(seed: streams, draw: 0)
            return zip(module.referenceForward(x, params).values, rd).reduce(0) { $0 + $1.0 * $1.1 }
        }
        module.setRandomStream(seed: streams, draw: 0)
        let reference = module.referenceForward(xd, params).values.count
        guard reference == rd.count else {
            throw DeviceError.invalidArgument(op: "GradientCheck", "the module's reference forward gives \(reference) "
                + "values for an output of \(rd.count) (shape \(y.shape)): a layer's referenceForward does not fit "
                + "its input")
        }

        var rng = SeededGenerator(seed: seed &+ 0x5eed)
        func chosen(_ count: Int) -> [Int]? {
            guard let samples, samples < count else { return nil }
            var all = Array(0..<count)
            for i in 0..<samples { all.swapAt(i, i + Int(rng.next() % UInt64(count - i))) }
            return all.prefix(samples).sorted()
        }
        func result(_ name: String, _ analytic: [Double], _ at: [Double],
                    _ f: @escaping ([Double]) -> Double) -> Result {
            let indices = chosen(at.count)
            return Result(name: name, analytic: indices.map { $0.map { analytic[$0] } } ?? analytic,
                          numeric: finiteDifferences(at, step: step, at: indices, f), indices: indices)
        }
        var results = [result("input", try dx.toArray().map(Double.init), xd.values) {
            loss(DoubleMatrix(flat: $0, rows: rows), params)
        }]
        // (A frozen parameter has no gradient to check.)
        for (index, (name, p)) in module.namedParameters.enumerated() where !p.isFrozen {
            results.append(result(name, try p.grad.toArray().map(Double.init), params[index]) { values in
                var perturbed = params
                perturbed[index] = values
                return loss(xd, perturbed)
            })
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

    /// Central differences of `f` at `x`, for the entries at `indices` (nil: all).
    public static func finiteDifferences(_ x: [Double], step: Double, at indices: [Int]? = nil,
                                         _ f: ([Double]) -> Double) -> [Double] {
        var probe = x
        return (indices ?? Array(x.indices)).map { i in
            probe[i] = x[i] + step
            let up = f(probe)
            probe[i] = x[i] - step
            let down = f(probe)
            probe[i] = x[i]
            return (up - down) / (2 * step)
        }
    }
}
