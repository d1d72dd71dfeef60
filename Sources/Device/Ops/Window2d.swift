// NOTE: this file needs nothing else of Device: the checkpoint reader's fuzz build (Fuzz/run) compiles it with
// LayerSpec.swift, whose architectures hold windows.

/// A window sliding over the two spatial axes of NCHW input: its size, step (stride), zero padding on each side and
/// dilation (the spacing of its taps), each given for height and width.
public struct Window2d: Sendable, Hashable {
    /// The window's height (taps along the height axis).
    public let kernelHeight: Int
    /// The window's width (taps along the width axis).
    public let kernelWidth: Int
    /// How far the window moves between output rows.
    public let strideHeight: Int
    /// How far the window moves between output columns.
    public let strideWidth: Int
    /// Zeros added above and below the input.
    public let paddingHeight: Int
    /// Zeros added left and right of the input.
    public let paddingWidth: Int
    /// The spacing of the window's taps along the height (1: adjacent).
    public let dilationHeight: Int
    /// The spacing of the window's taps along the width (1: adjacent).
    public let dilationWidth: Int

    /// A window of `kernel` (height, width), moved by `stride`, over input padded by `padding` zeros on each side,
    /// its taps `dilation` apart.
    public init(kernel: (Int, Int), stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                dilation: (Int, Int) = (1, 1)) {
        (kernelHeight, kernelWidth) = kernel
        (strideHeight, strideWidth) = stride
        (paddingHeight, paddingWidth) = padding
        (dilationHeight, dilationWidth) = dilation
    }

    /// A square window with the same stride, padding and dilation along both axes.
    public init(kernel: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1) {
        self.init(kernel: (kernel, kernel), stride: (stride, stride), padding: (padding, padding),
                  dilation: (dilation, dilation))
    }

    /// The output's length along the height (`alongHeight`) or the width over an input of `size` (PyTorch's
    /// formula), or nil when the (dilated) window spans more than the padded input. The window's own values must be in
    /// range (`isInRange`), or the arithmetic may overflow.
    public func outputLength(_ size: Int, alongHeight: Bool) -> Int? {
        let (k, s, p, d) = alongHeight ? (kernelHeight, strideHeight, paddingHeight, dilationHeight)
                                       : (kernelWidth, strideWidth, paddingWidth, dilationWidth)
        let extent = d * (k - 1) + 1
        return size + 2 * p >= extent ? (size + 2 * p - extent) / s + 1 : nil
    }

    /// Whether kernel, stride and dilation are in 1...2²⁰ and padding in 0...2²⁰ along both axes: what `check(op:)`
    /// requires.
    public var isInRange: Bool {
        let limit = 1 << 20
        return [kernelHeight, kernelWidth, strideHeight, strideWidth, dilationHeight, dilationWidth]
            .allSatisfy { (1...limit).contains($0) }
            && [paddingHeight, paddingWidth].allSatisfy { (0...limit).contains($0) }
    }
}
