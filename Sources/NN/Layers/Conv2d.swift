/// A 2-D convolution layer, as PyTorch's `nn.Conv2d` with one group: x [N, C, H, W] → [N, O, OH, OW] by
/// `Tensor.conv2d` (im2col and one matrix product), its gradients from the tape. The weight is [O, C, kh, kw] and the
/// bias [O], PyTorch's layout and names (`N.weight`, `N.bias` in a `Sequential`), both drawn as PyTorch draws them
/// by default (U(±1/√fanIn), fanIn = C·kh·kw) unless `initializer` says otherwise.
///
/// ```swift
/// let conv = try Conv2d(1, 32, kernel: 3, padding: 1, seed: 1, on: device)
/// let y = try conv(try Tensor.randn([64, 1, 28, 28], seed: 2, on: device))   // [64, 32, 28, 28]
/// ```
public final class Conv2d: TapeModule {
    /// Input channels C and output channels O.
    public let inChannels: Int, outChannels: Int
    /// The kernel's size, stride, padding and dilation.
    public let window: Window2d
    /// [O, C, kh, kw].
    public let weight: Parameter
    /// [O], or nil for a convolution without bias.
    public let bias: Parameter?
    public let tape = TapeRecord()

    /// - Parameters:
    ///   - inChannels: C, the input's channels.
    ///   - outChannels: O, the filters.
    ///   - kernel: the window's height and width (square; `init(_:_:window:…)` takes others).
    ///   - stride: how far the window moves, along both axes.
    ///   - padding: zeros added on each side, along both axes.
    ///   - dilation: the spacing of the window's taps, along both axes.
    ///   - bias: whether the layer adds a bias per filter.
    ///   - initializer: the weight's distribution (fanIn = C·kh·kw, fanOut = O·kh·kw); PyTorch's by default.
    ///   - seed: draws the weight (the bias from a stream of its own: seed + 1 is the next layer's).
    ///   - device: where the parameters live.
    /// - Throws: `DeviceError.invalidArgument` naming Conv2d for a channel count below 1 or a window outside
    ///   `Window2d`'s bounds.
    public convenience init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                            dilation: Int = 1, bias: Bool = true, initializer: Initializer = .pytorchDefault,
                            seed: UInt64, on device: DeviceTag = .cpu) throws {
        try self.init(inChannels, outChannels, window: Window2d(kernel: kernel, stride: stride, padding: padding,
                                                                dilation: dilation),
                      bias: bias, initializer: initializer, seed: seed, on: device)
    }

    /// The same with a window that may differ between height and width.
    public init(_ inChannels: Int, _ outChannels: Int, window: Window2d, bias: Bool = true,
                initializer: Initializer = .pytorchDefault, seed: UInt64, on device: DeviceTag = .cpu) throws {
        guard inChannels >= 1, outChannels >= 1 else {
            throw DeviceError.invalidArgument(op: "Conv2d", "needs at least one input and one output channel, got "
                + "\(inChannels) and \(outChannels)")
        }
        try window.check(op: "Conv2d")
        // (Before the fans, which are products of these sizes: sizes from a caller may overflow them.)
        let shape = [outChannels, inChannels, window.kernelHeight, window.kernelWidth]
        guard (try? Tensor.checkedCount(shape)) != nil else {
            throw DeviceError.invalidArgument(op: "Conv2d", "a weight of shape \(shape) has too many elements (a "
                + "tensor holds at most 2^31 − 1)")
        }
        (self.inChannels, self.outChannels, self.window) = (inChannels, outChannels, window)
        let taps = window.kernelHeight * window.kernelWidth
        weight = try Parameter(name: "weight", value: try initializer.tensor(shape, fanIn: inChannels * taps,
            fanOut: outChannels * taps, seed: seed, on: device))
        self.bias = bias ? try Parameter(name: "bias", value: try Initializer.uniform(
            [outChannels], bound: 1 / Double(inChannels * taps).squareRoot(), seed: seed ^ 0x9E37_79B9_7F4A_7C15, on: device)) : nil
    }

    public var parameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }
    public var layerSpecs: [LayerSpec]? {
        [.conv2d(inChannels: inChannels, outChannels: outChannels, window: window, bias: bias != nil)]
    }

    /// x: [N, C, H, W] → [N, O, OH, OW].
    public func compute(_ x: Tensor) throws -> Tensor {
        try x.conv2d(weight.value, bias: bias?.value, stride: (window.strideHeight, window.strideWidth),
                     padding: (window.paddingHeight, window.paddingWidth),
                     dilation: (window.dilationHeight, window.dilationWidth))
    }
}
