import Foundation

/// Normalisation with the training set's statistics: x ← (x − mean) / std, the same values for every split.
public struct Normalization: Equatable, Sendable, Codable {
    public let mean: Float
    public let std: Float

    public init(mean: Float, std: Float) {
        self.mean = mean
        self.std = std
    }
}
