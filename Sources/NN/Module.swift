/// A trainable tensor with its gradient (and, once an optimiser with momentum has used it, its velocity).
public final class Parameter {
    /// The name within its layer, e.g. `weight`.
    public let name: String
    public private(set) var value: Tensor
    /// Optimiser state, kept on the parameter's device.
    var velocity: Tensor?
    private var gradStorage: Tensor
    /// Set by `zeroGrad`: the stored gradient is to be read as zero. The next backward then overwrites instead of
    /// accumulating, which saves a fill kernel per parameter per step.
    private var gradIsZero = false

    public init(name: String, value: Tensor) throws {
        self.name = name
        self.value = value
        self.gradStorage = try Tensor.zeros(value.shape, on: value.device)
    }

    /// dL/dvalue, accumulated by backward until `zeroGrad`.
    public var grad: Tensor {
        get throws {
            if gradIsZero {
                try gradStorage.fill(0)
                gradIsZero = false
            }
            return gradStorage
        }
    }

    /// Makes the gradient zero (lazily: see `gradForBackward`).
    public func zeroGrad() { gradIsZero = true }

    /// For a backward pass: the gradient tensor, and whether to add to it (false right after `zeroGrad`, when the
    /// backward should overwrite it).
    func gradForBackward() -> (tensor: Tensor, accumulate: Bool) {
        defer { gradIsZero = false }
        return (gradStorage, !gradIsZero)
    }

    public var device: DeviceTag { value.device }

    /// Moves the value, gradient and optimiser state to `device`.
    public func to(_ device: DeviceTag) throws {
        guard device != value.device else { return }
        value = try value.to(device)
        gradStorage = try gradStorage.to(device)
        velocity = try velocity?.to(device)
    }

    /// Overwrites the value (same element count), from any device.
    public func load(_ source: Tensor) throws {
        try value.copy(from: source)
    }

    /// Moves the value, gradient and (when given) velocity into `value`, `grad` and `velocity` — views into an
    /// optimiser's flat buffers — keeping their contents.
    func adopt(value newValue: Tensor, grad newGrad: Tensor, velocity newVelocity: Tensor?) throws {
        try newValue.copy(from: value)
        try newGrad.copy(from: gradStorage)
        if let newVelocity, let velocity { try newVelocity.copy(from: velocity) }
        (value, gradStorage) = (newValue, newGrad)
        if newVelocity != nil { velocity = newVelocity }
    }

    /// Whether this parameter's value, gradient and velocity are exactly these tensors.
    func lives(in value: Tensor, _ grad: Tensor, _ velocity: Tensor?) -> Bool {
        self.value === value && gradStorage === grad && (velocity == nil || self.velocity === velocity)
    }

    /// Makes a pending lazy zero real (fills the stored gradient), for readers of the raw storage.
    func materialiseGrad() throws { _ = try grad }
}

/// A layer in the fast.ai lessons' pattern: `forward` keeps what `backward` needs; `backward` accumulates the
/// parameters' gradients and returns the input's. Gradients accumulate across calls until `zeroGrad()`.
public protocol Module: AnyObject {
    /// x: [batch, in] → [batch, out]
    func forward(_ x: Tensor) throws -> Tensor
    /// The same for a minibatch of a resident dataset, its rows read in place through the batch's index list where
    /// the module can (`Linear` can; the default gathers them into a new tensor first, then calls `forward`).
    func forward(_ rows: Rows) throws -> Tensor
    /// dy: [batch, out] → dx: [batch, in] (nil when `needsInputGradient` is false). Uses the last forward's input.
    func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor?
    /// The trainable parameters, in a fixed order.
    var parameters: [Parameter] { get }
    /// The same forward computed in Double on the host, with `params` in `parameters` order: the reference the
    /// gradient check differentiates numerically.
    func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix
    /// How many entries of a PyTorch `nn.Sequential` this module stands for, for state-dict names (1 by default).
    var sequentialWidth: Int { get }
}

extension Module {
    public var sequentialWidth: Int { 1 }

    public func forward(_ rows: Rows) throws -> Tensor {
        try forward(rows.order == nil ? rows.source : try rows.gathered())
    }

    /// dy → dx.
    public func backward(_ dy: Tensor) throws -> Tensor {
        guard let dx = try backward(dy, needsInputGradient: true) else {
            preconditionFailure("backward returned no input gradient although one was asked for")
        }
        return dx
    }

    /// Sets every parameter's gradient to zero.
    public func zeroGrad() throws {
        for p in parameters { p.zeroGrad() }
    }

    /// Moves every parameter to `device`.
    public func to(_ device: DeviceTag) throws {
        for p in parameters { try p.to(device) }
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try forward(x) }
}

/// A row-major matrix of Doubles, for reference computations.
public struct DoubleMatrix: Equatable, Sendable {
    public var rows: Int
    public var cols: Int
    public var values: [Double]

    public init(rows: Int, cols: Int, values: [Double]) {
        precondition(values.count == rows * cols, "DoubleMatrix: \(values.count) values for \(rows)x\(cols)")
        self.rows = rows
        self.cols = cols
        self.values = values
    }

    public init(_ tensor: Tensor) throws {
        guard tensor.shape.count == 2 else {
            throw DeviceError.invalidArgument(op: "DoubleMatrix", "expects a matrix, got shape \(tensor.shape)")
        }
        self.init(rows: tensor.shape[0], cols: tensor.shape[1], values: try tensor.toArray().map(Double.init))
    }

    public subscript(i: Int, j: Int) -> Double {
        get { values[i * cols + j] }
        set { values[i * cols + j] = newValue }
    }
}
