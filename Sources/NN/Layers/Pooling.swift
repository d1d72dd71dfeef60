/// Max pooling as a layer, PyTorch's `nn.MaxPool2d`: x [N, C, H, W] → [N, C, OH, OW] by `Tensor.maxPool2d`, the
/// gradient routed to each window's largest element. No parameters.
public final class MaxPool2d: TapeModule {
    /// The window (its stride is the kernel size unless given).
    public let window: Window2d
    public let tape = TapeRecord()

    /// A square window of `kernel`, moved by `stride` (nil: `kernel`, PyTorch's default).
    public init(kernel: Int, stride: Int? = nil, padding: Int = 0, dilation: Int = 1) {
        window = Window2d(kernel: kernel, stride: stride ?? kernel, padding: padding, dilation: dilation)
    }

    /// Any window.
    public init(_ window: Window2d) { self.window = window }

    public var parameters: [Parameter] { [] }
    public var layerSpecs: [LayerSpec]? { [.maxPool2d(window)] }

    /// x: [N, C, H, W] → [N, C, OH, OW].
    public func compute(_ x: Tensor) throws -> Tensor { try x.maxPool2d(window) }
}

/// Average pooling as a layer, PyTorch's `nn.AvgPool2d` (the padding's zeros counted): x [N, C, H, W] →
/// [N, C, OH, OW] by `Tensor.avgPool2d`. No parameters.
public final class AvgPool2d: TapeModule {
    /// The window (its stride is the kernel size unless given).
    public let window: Window2d
    public let tape = TapeRecord()

    /// A square window of `kernel`, moved by `stride` (nil: `kernel`, PyTorch's default).
    public init(kernel: Int, stride: Int? = nil, padding: Int = 0) {
        window = Window2d(kernel: kernel, stride: stride ?? kernel, padding: padding)
    }

    /// Any window (dilation 1).
    public init(_ window: Window2d) { self.window = window }

    public var parameters: [Parameter] { [] }
    public var layerSpecs: [LayerSpec]? { [.avgPool2d(window)] }

    /// x: [N, C, H, W] → [N, C, OH, OW].
    public func compute(_ x: Tensor) throws -> Tensor { try x.avgPool2d(window) }
}

/// The mean of each channel's whole plane, PyTorch's `nn.AdaptiveAvgPool2d(1)` (global average pooling): x
/// [N, C, H, W] → [N, C, 1, 1]. Output sizes other than 1 are not supported (an error at construction).
public final class AdaptiveAvgPool2d: TapeModule {
    /// The output's height and width: 1.
    public let outputSize: Int
    public let tape = TapeRecord()

    /// - Throws: `DeviceError.invalidArgument` for an output size other than 1.
    public init(_ outputSize: Int) throws {
        guard outputSize == 1 else {
            throw DeviceError.invalidArgument(op: "AdaptiveAvgPool2d", "supports output size 1 (global average "
                + "pooling), got \(outputSize)")
        }
        self.outputSize = outputSize
    }

    public var parameters: [Parameter] { [] }
    public var layerSpecs: [LayerSpec]? { [.globalAvgPool2d] }

    /// x: [N, C, H, W] → [N, C, 1, 1].
    public func compute(_ x: Tensor) throws -> Tensor {
        let (n, c, h, w) = try x.nchwShape("AdaptiveAvgPool2d")
        guard c * h * w > 0 else {
            // (The mean of no values would be NaN: PyTorch refuses the input.)
            throw DeviceError.invalidArgument(op: "AdaptiveAvgPool2d", "expects non-empty channels, height and "
                + "width, got shape \(x.shape)")
        }
        return try x.reshaped([n, c, h * w]).mean(axis: 2).reshaped([n, c, 1, 1])
    }
}

extension Tensor {
    /// (N, C, H, W) of a 4-d tensor, or an error naming `op` and the shape.
    func nchwShape(_ op: String) throws -> (Int, Int, Int, Int) {
        guard shape.count == 4 else {
            throw DeviceError.invalidArgument(op: op, "expects NCHW input (4 axes: batch, channels, height, width), "
                + "got shape \(shape)")
        }
        return (shape[0], shape[1], shape[2], shape[3])
    }
}
