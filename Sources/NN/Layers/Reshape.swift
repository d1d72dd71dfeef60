/// PyTorch's `nn.Flatten()`: x [N, d₁, d₂, …] → [N, d₁·d₂·…] (a view where the layout allows), the gradient
/// reshaped back.
public final class Flatten: TapeModule {
    public let tape = TapeRecord()
    /// Flattens every axis after the first.
    public init() {}
    public var parameters: [Parameter] { [] }
    public var layerSpecs: [LayerSpec]? { [.flatten] }

    /// x [N, …] → [N, product of the rest].
    public func compute(_ x: Tensor) throws -> Tensor {
        guard x.shape.count >= 2, let n = x.shape.first else {
            throw DeviceError.invalidArgument(op: "Flatten", "expects [N, …] with at least one axis after the batch's "
                + "(as PyTorch's nn.Flatten), got shape \(x.shape)")
        }
        return try x.reshaped([n, x.shape.dropFirst().reduce(1, *)])
    }
}

/// How a dataset's flat rows are read as images: [N, C·H·W] → [N, C, H, W], before a model's first convolution.
/// Not a layer of the PyTorch model (which takes images), so it takes no `nn.Sequential` index: a `Sequential` that
/// starts with it names its parameters as the PyTorch model does (`0.weight` is the first convolution's).
public final class ImageInput: TapeModule {
    /// C, H and W.
    public let channels: Int, height: Int, width: Int
    public let tape = TapeRecord()

    /// - Throws: `DeviceError.invalidArgument` naming ImageInput for a size below 1.
    public init(channels: Int, height: Int, width: Int) throws {
        guard channels >= 1, height >= 1, width >= 1,
              (try? Tensor.checkedCount([channels, height, width])) != nil else {
            throw DeviceError.invalidArgument(op: "ImageInput", "needs sizes ≥ 1 whose product fits a tensor, got "
                + "channels \(channels), height \(height), width \(width)")
        }
        (self.channels, self.height, self.width) = (channels, height, width)
    }

    public var parameters: [Parameter] { [] }
    public var sequentialWidth: Int { 0 }
    public var layerSpecs: [LayerSpec]? { [.image(channels: channels, height: height, width: width)] }

    /// x [N, C·H·W] (or already [N, C, H, W]) → [N, C, H, W].
    public func compute(_ x: Tensor) throws -> Tensor {
        let image = [channels, height, width]
        if x.shape.count == 4 && Array(x.shape.dropFirst()) == image { return x }
        guard x.shape.count == 2, x.shape[1] == channels * height * width else {
            throw DeviceError.invalidArgument(op: "ImageInput", "expects rows of \(channels)·\(height)·\(width) = "
                + "\(channels * height * width) values (or images \(image)), got shape \(x.shape)")
        }
        return try x.reshaped([x.shape[0]] + image)
    }
}
