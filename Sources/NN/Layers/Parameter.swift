/// A trainable tensor with its gradient and its optimiser's state.
///
/// A backward pass writes or adds into the gradient (see ``gradientForBackward()``); ``zeroGrad()`` is lazy — it
/// marks the stored gradient as zero instead of filling it — so reading it goes through ``grad`` (which makes the
/// zero real) or ``gradientIfComputed`` (which does not).
public final class Parameter {
    /// The name within its layer, e.g. `weight`.
    public let name: String
    /// The current value. An optimiser may move it into a flat buffer of its own (the value is kept).
    public private(set) var value: Tensor
    /// The optimiser's per-parameter state (velocity; Adam's moments), on the parameter's device, in the order the
    /// optimiser names them.
    var state: [Tensor] = []
    private var gradStorage: Tensor
    /// Set by `zeroGrad`: the stored gradient is to be read as zero. The next backward then overwrites instead of
    /// accumulating, which saves a fill kernel per parameter per step.
    private var gradIsZero = false

    /// A parameter holding `value`, with a zero gradient on the same device.
    public init(name: String, value: Tensor) throws {
        self.name = name
        self.value = value
        self.gradStorage = try Tensor.zeros(value.shape, on: value.device)
    }

    /// dL/dvalue, accumulated by backward until `zeroGrad`. Reading it after `zeroGrad` fills it with zeros first.
    public var grad: Tensor {
        get throws {
            if gradIsZero {
                try gradStorage.fill(0)
                gradIsZero = false
            }
            return gradStorage
        }
    }

    /// The gradient when a backward has written it since the last `zeroGrad`, else nil (read as zero) — without
    /// the fill that ``grad`` does.
    public var gradientIfComputed: Tensor? { gradIsZero ? nil : gradStorage }

    /// Makes the gradient zero (lazily: the next backward overwrites it instead of adding).
    public func zeroGrad() { gradIsZero = true }

    /// For a module's backward pass: the gradient tensor to write, and whether to add to it (`false` right after
    /// `zeroGrad`, when the backward should overwrite it). Every op with an `accumulate:` argument takes the pair.
    ///
    /// ```swift
    /// let (dw, accumulate) = weight.gradientForBackward()
    /// try Tensor.linearBackward(Rows(x), dy, weightGradient: dw, biasGradient: nil, accumulate: accumulate)
    /// ```
    public func gradientForBackward() -> (tensor: Tensor, accumulate: Bool) {
        defer { gradIsZero = false }
        return (gradStorage, !gradIsZero)
    }

    /// The device the value lives on.
    public var device: DeviceTag { value.device }

    /// Moves the value, gradient and optimiser state to `device`.
    public func to(_ device: DeviceTag) throws {
        guard device != value.device else { return }
        value = try value.to(device)
        gradStorage = try gradStorage.to(device)
        state = try state.map { try $0.to(device) }
    }

    /// Overwrites the value (same element count), from any device.
    public func load(_ source: Tensor) throws {
        try value.copy(from: source)
    }

    /// Gives the parameter `count` optimiser state tensors, zero-filled, unless it has that many already.
    func ensureState(_ count: Int) throws {
        guard state.count != count else { return }
        state = try (0..<count).map { _ in try Tensor.zeros(value.shape, on: device) }
    }

    /// Moves the value, gradient and optimiser state into these tensors — views into an optimiser's flat buffers —
    /// keeping their contents.
    func adopt(value newValue: Tensor, grad newGrad: Tensor, state newState: [Tensor]) throws {
        try newValue.copy(from: value)
        try newGrad.copy(from: gradStorage)
        for (new, old) in zip(newState, state) { try new.copy(from: old) }
        (value, gradStorage, state) = (newValue, newGrad, newState)
    }

    /// Whether this parameter's value, gradient and state are exactly these tensors.
    func lives(in value: Tensor, _ grad: Tensor, _ state: [Tensor]) -> Bool {
        self.value === value && gradStorage === grad && self.state.count == state.count
            && zip(self.state, state).allSatisfy { $0 === $1 }
    }

    /// Makes a pending lazy zero real (fills the stored gradient), for readers of the raw storage.
    func materialiseGrad() throws { _ = try grad }
}
