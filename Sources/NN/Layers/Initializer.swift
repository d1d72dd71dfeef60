import Foundation

/// How a layer's weights start. `fanIn`/`fanOut` are a weight's input and output sizes.
public enum Initializer: Sendable, Equatable {
    /// Which of a weight's sizes scales its variance (PyTorch's `mode`).
    public enum FanMode: Sendable, Equatable {
        /// The input size: keeps the forward activations’ variance.
        case fanIn
        /// The output size: keeps the backward gradients’ variance.
        case fanOut
    }

    /// Plain N(0, std²): the lessons' first attempt, `randn`.
    case normal(std: Float = 1)
    /// Glorot/Xavier normal: std = gain·√(2 / (fanIn + fanOut)).
    case xavierNormal(gain: Float = 1)
    /// Glorot/Xavier uniform: U(−a, a), a = gain·√(6 / (fanIn + fanOut)).
    case xavierUniform(gain: Float = 1)
    /// The lessons' "Xavier": N(0, 1/fanIn), i.e. randn / √fanIn (LeCun normal).
    case scaledByFanIn
    /// Kaiming/He normal: std = gain / √fan, gain √2 for relu.
    case kaimingNormal(mode: FanMode = .fanIn, gain: Float = Float(2).squareRoot())

    /// A [fanIn, fanOut]-style weight of `shape`, drawn on the host from `seed` and placed on `device`.
    public func tensor(_ shape: [Int], fanIn: Int, fanOut: Int, seed: UInt64, on device: DeviceTag) throws -> Tensor {
        let fi = Float(fanIn), fo = Float(fanOut)
        switch self {
        case .normal(let std): return try Tensor.randn(shape, seed: seed, std: std, on: device)
        case .xavierNormal(let gain):
            return try Tensor.randn(shape, seed: seed, std: gain * (2 / (fi + fo)).squareRoot(), on: device)
        case .scaledByFanIn: return try Tensor.randn(shape, seed: seed, std: 1 / fi.squareRoot(), on: device)
        case .kaimingNormal(let mode, let gain):
            return try Tensor.randn(shape, seed: seed, std: gain / (mode == .fanIn ? fi : fo).squareRoot(), on: device)
        case .xavierUniform(let gain):
            let a = Double(gain) * (6 / Double(fanIn + fanOut)).squareRoot()
            var rng = SeededGenerator(seed: seed)
            let count = shape.reduce(1, *)
            return try Tensor((0..<count).map { _ in Float((rng.nextUniform() * 2 - 1) * a) }, shape: shape, on: device)
        }
    }
}
