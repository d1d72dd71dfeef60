import Foundation

/// Normalisation with the training set's statistics: x ← (x − mean) / std, the same values for every split.
public struct Normalization: Equatable, Sendable, Codable {
    /// Subtracted from each scaled pixel.
    public let mean: Float
    /// Each centred pixel is divided by it.
    public let std: Float

    /// Statistics given as they are (see `fit` to measure them).
    public init(mean: Float, std: Float) {
        self.mean = mean
        self.std = std
    }
}
