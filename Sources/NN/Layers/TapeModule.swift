/// What a `TapeModule` keeps from its last forward for its backward: the input it recorded from and the output.
public final class TapeRecord {
    var input: Tensor?
    var output: Tensor?
    /// An empty record (a module's stored property: `let tape = TapeRecord()`).
    public init() {}
}

/// A module whose forward is written with tensor ops (`matmul`, `+`, `exp`, `clamped`, `logSoftmax`, …) and whose
/// backward is the tape's: no hand-written backward, no kernel of its own. It trains with `Trainer`, `SGD` and `Adam`
/// and saves into checkpoints by its parameters' names and shapes, like any custom module.
///
/// Conform with `parameters`, `tape` (a stored `TapeRecord()`) and `compute(_:)`:
///
/// ```swift
/// final class Dense: TapeModule {
///     let weight: Parameter, bias: Parameter
///     let tape = TapeRecord()
///     var parameters: [Parameter] { [weight, bias] }
///     init(_ inputs: Int, _ outputs: Int, seed: UInt64, on device: DeviceTag) throws {
///         weight = try Parameter(name: "weight", value: try Initializer.kaimingNormal().tensor(
///             [inputs, outputs], fanIn: inputs, fanOut: outputs, seed: seed, on: device))
///         bias = try Parameter(name: "bias", value: try Tensor.zeros([outputs], on: device))
///     }
///     func compute(_ x: Tensor) throws -> Tensor { try (x.matmul(weight.value) + bias.value).clamped(min: 0) }
/// }
/// ```
///
/// `forward` records `compute` on the tape (inside `Tensor.withoutGradients`, as when evaluating, it records
/// nothing); `backward` replays the tape from the output's gradient, adds each parameter's gradient to the
/// parameter's (`Parameter.grad`, as the built-in layers do) and returns the input's. The built-in fused layers stay
/// the fast path; a tape module pays a launch and a buffer per op.
public protocol TapeModule: Module {
    /// Holds the last forward's input and output until backward.
    var tape: TapeRecord { get }
    /// The forward pass, in tensor ops on `parameters`' values: x: [batch, in] → [batch, out].
    func compute(_ x: Tensor) throws -> Tensor
}

extension TapeModule {
    public func forward(_ x: Tensor) throws -> Tensor {
        guard Tensor.isRecordingGradients else {
            (tape.input, tape.output) = (nil, nil)
            return try compute(x)
        }
        let input = x.detached()
        input.requiresGrad = true
        for p in parameters where !p.value.requiresGrad { p.value.requiresGrad = true }
        let y = try compute(input)
        (tape.input, tape.output) = (input, y)
        return y
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        guard let input = tape.input, let y = tape.output else {
            throw DeviceError.invalidArgument(op: "\(Self.self).backward", "called before forward (or after a forward "
                + "inside Tensor.withoutGradients, which records nothing)")
        }
        (tape.input, tape.output) = (nil, nil)
        // An input that needs no gradient is one product fewer on the way back.
        input.requiresGrad = needsInputGradient
        // Each parameter's gradient goes straight into the parameter's gradient buffer (added, or written after
        // zeroGrad), not into its value's `grad`.
        for p in parameters {
            p.value.sendGradients { g in
                let (target, accumulate) = p.gradientForBackward()
                if accumulate { try target.elementwise(.add, g, into: target) } else { try target.copy(from: g) }
            }
        }
        defer { for p in parameters { p.value.sendGradients(to: nil) } }
        if y.requiresGrad { try y.backward(seed: dy) }
        guard needsInputGradient else { return nil }
        return try input.grad ?? Tensor.zeros(input.shape, on: input.device)
    }

    /// The default reference: `compute` in fp32 on the module's device with `params` loaded into the parameters
    /// (and put back after). A gradient check against it needs fp32's tolerances; give a Double forward of your own
    /// for a tight check. On an error, a matrix of no columns.
    public func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix {
        let failed = DoubleMatrix(rows: x.rows, cols: 0, values: [])
        return (try? Tensor.withoutGradients { () throws -> DoubleMatrix in
            let saved = try parameters.map { try $0.value.toArray() }
            defer { for (p, v) in zip(parameters, saved) { try? p.value.upload(v) } }
            for (p, v) in zip(parameters, params) { try p.value.upload(v.map(Float.init)) }
            let device = parameters.first?.device ?? .cpu
            let y = try compute(try Tensor(x.values.map(Float.init), shape: [x.rows, x.cols], on: device))
            guard y.shape.count == 2 else { return failed }
            return DoubleMatrix(rows: y.shape[0], cols: y.shape[1], values: try y.toArray().map(Double.init))
        }) ?? failed
    }
}
