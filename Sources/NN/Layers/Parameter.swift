/// A trainable tensor with its gradient and its optimiser's state.
///
/// A backward pass writes or adds into the gradient (see ``gradientForBackward()``); ``zeroGrad()`` is lazy — it
/// marks the stored gradient as zero instead of filling it — so reading it goes through ``grad`` (which makes the
/// zero real) or ``gradientIfComputed`` (which does not).
public final class Parameter {
    /// The name within its layer, e.g. `weight`.
    public let name: String
    /// The current value. The tensor stays this parameter's for its life: its model's flat buffer (`ParameterBlock`)
    /// and moves to another device rebind its memory, not the object, so a tensor captured before training shows the
    /// trained values after it.
    public let value: Tensor
    /// The model's flat buffers this parameter lives in, when it does.
    weak var block: ParameterBlock?
    private var gradStorage: Tensor { slot.tensor }
    /// Set by `zeroGrad` (and at the start): the stored gradient is to be read as zero — no backward has computed
    /// one since, which optimisers take as "no gradient" (PyTorch's None). The next backward then overwrites instead
    /// of accumulating, which saves a fill kernel per parameter per step.
    private var gradIsZero: Bool {
        get { slot.isZero }
        set { slot.isZero = newValue }
    }
    /// The gradient and its flag, shared with the value's tape gradients (see `init`).
    private let slot: GradientSlot

    /// A parameter holding `value`, with a zero gradient on the same device (not yet computed: an optimiser's step
    /// leaves it as it is until a backward gives it one). The value is `value` made a leaf that requires a gradient
    /// — or, when `value` has a history on the tape or is another parameter's value, a new tensor over its elements
    /// (`detached()`), so that `value` is left as it is (PyTorch's `nn.Parameter(t)`).
    public init(name: String, value given: Tensor) throws {
        // (Through `given`'s history, or another parameter's gradient buffer, gradients would never reach this one.)
        let value = given.isLeaf && !given.sendsGradientsElsewhere ? given : given.detached()
        self.name = name
        self.value = value
        let slot = GradientSlot(try Tensor.zeros(value.shape, on: value.device))
        self.slot = slot
        // A tape expression of the value (a TapeModule's forward, a penalty on it) gives its gradient here, where
        // the optimisers read it, not to the value's own `grad`. (The slot, not self: the value must not hold its
        // parameter.)
        value.sendGradients(to: GradientDestination { slot.forBackward() })
        // Every parameter's value is a leaf that takes a gradient from the moment it exists, as a PyTorch
        // parameter: a penalty on any layer's weight (`(w.value * w.value).sum()`) is on the tape, whatever the layer.
        value.requiresGrad = true
    }

    /// dL/dvalue, accumulated by backward until `zeroGrad`. Reading it after `zeroGrad` fills it with zeros first;
    /// that is not a gradient for the optimisers (PyTorch's None stays None when read): a parameter no backward
    /// reached since `zeroGrad` is left as it is, however often its `grad` was read (to log a norm, to clip). A
    /// gradient of your own goes in through ``gradientForBackward()``.
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
    public var gradientIfComputed: Tensor? { slot.written ? gradStorage : nil }

    /// The gradient an optimiser steps with: nil when no backward computed one since `zeroGrad`, or the parameter is
    /// frozen (its value's `requiresGrad` set to false) — PyTorch's optimisers skip a parameter whose `grad` is None,
    /// which a frozen one's stays, even when ``grad`` was read here (which makes a zero real).
    var gradientToStep: Tensor? { isFrozen ? nil : gradientIfComputed }

    /// Whether the parameter is frozen: its value's `requiresGrad` turned off (PyTorch's `p.requires_grad_(False)`).
    /// No backward writes its gradient, and the optimisers leave it as it is.
    var isFrozen: Bool { !value.requiresGrad }

    /// Makes the gradient zero (lazily: the next backward overwrites it instead of adding).
    public func zeroGrad() { (gradIsZero, slot.written) = (true, false) }

    /// For a module's backward pass: the gradient tensor to write, and whether to add to it (`false` right after
    /// `zeroGrad`, when the backward should overwrite it). Every op with an `accumulate:` argument takes the pair.
    ///
    /// ```swift
    /// let (dw, accumulate) = weight.gradientForBackward()
    /// try Tensor.linearBackward(Rows(x), dy, weightGradient: dw, biasGradient: nil, accumulate: accumulate)
    /// ```
    public func gradientForBackward() -> (tensor: Tensor, accumulate: Bool) { slot.forBackward() }

    /// The device the value lives on.
    public var device: DeviceTag { value.device }

    /// Moves the value and gradient to `device` (the same tensor objects; it leaves its model's flat buffer, which
    /// `Sequential.to(_:)` lays out again there). An optimiser's state follows at its next step.
    public func to(_ device: DeviceTag) throws {
        guard device != value.device else { return }
        try value.rebind(to: try Tensor.empty(value.shape, on: device))
        try gradStorage.rebind(to: try Tensor.empty(gradStorage.shape, on: device))
        block = nil
    }

    /// Overwrites the value (same element count), from any device.
    public func load(_ source: Tensor) throws {
        try value.copy(from: source)
    }

    /// Puts the value and gradient into these views of a block's flat buffers, keeping their contents.
    func join(value newValue: Tensor, grad newGrad: Tensor) throws {
        try value.rebind(to: newValue)
        try gradStorage.rebind(to: newGrad)
    }

    /// Whether the value and gradient show exactly these views' memory.
    func lives(in value: Tensor, _ grad: Tensor) -> Bool {
        self.value.sharesStorage(with: value) && gradStorage.sharesStorage(with: grad)
    }

    /// Makes a pending lazy zero real (fills the stored gradient) and counts it as written since `zeroGrad`, for
    /// writers of the raw storage (a gradient summed into it from elsewhere: another device's replica, an all-reduce
    /// of your own), whom the optimisers then follow.
    func materialiseGrad() throws {
        _ = try grad
        slot.written = true
    }
}

/// A parameter's gradient buffer and whether it is to be read as zero (`Parameter.zeroGrad`).
final class GradientSlot {
    let tensor: Tensor
    /// The stored gradient is to be read as zero (not filled since `zeroGrad`).
    var isZero = true
    /// A backward (or `forBackward`'s caller) wrote it since `zeroGrad`: a gradient the optimisers step with.
    var written = false
    init(_ tensor: Tensor) { self.tensor = tensor }

    /// The buffer to write, and whether to add to it (not right after a zeroGrad); counts as a write.
    func forBackward() -> (tensor: Tensor, accumulate: Bool) {
        defer { (isZero, written) = (false, true) }
        return (tensor, !isZero)
    }
}
