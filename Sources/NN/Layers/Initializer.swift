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
    /// Kaiming/He uniform over fanIn, PyTorch's `kaiming_uniform_(a:)`: U(−b, b), b = √(6 / ((1 + a²)·fanIn)). With
    /// a = √5 (`pytorchDefault`) b is 1/√fanIn: how PyTorch's `nn.Linear` and `nn.Conv2d` start.
    case kaimingUniform(a: Float)

    /// What PyTorch's `nn.Linear` and `nn.Conv2d` start their weights with: `kaimingUniform(a: √5)`.
    public static let pytorchDefault = Initializer.kaimingUniform(a: Float(5).squareRoot())

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
            return try Self.uniform(shape, bound: Double(gain) * (6 / Double(fanIn + fanOut)).squareRoot(), seed: seed,
                                    on: device)
        case .kaimingUniform(let a):
            return try Self.uniform(shape, bound: (6 / ((1 + Double(a * a)) * Double(fanIn))).squareRoot(), seed: seed,
                                    on: device)
        }
    }

    /// U(−bound, bound) values of `shape`, drawn on the host from `seed` (PyTorch's bias initialisation with bound
    /// 1/√fanIn).
    public static func uniform(_ shape: [Int], bound: Double, seed: UInt64, on device: DeviceTag) throws -> Tensor {
        var rng = SeededGenerator(seed: seed)
        let count = try Tensor.checkedCount(shape)
        return try Tensor((0..<count).map { _ in Float((rng.nextUniform() * 2 - 1) * bound) }, shape: shape, on: device)
    }
}
