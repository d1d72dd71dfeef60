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

extension Normalization {
    /// These statistics, of a training set, as what to normalise by: refused when every pixel has the same value
    /// (std 0: nothing to learn, nothing to divide by). `remedy` is the way round it the caller offers, if any.
    /// - Throws: `DataError` naming `imagesFile`.
    public func requireSpread(imagesFile: String,
                              remedy: String? = "pass --normalization none") throws -> Normalization {
        guard std >= 1e-6 else {
            throw DataError(imagesFile, String(format: "every training pixel has the same value (mean %.4f, std 0): "
                + "the images hold nothing to learn and cannot be normalised; check the file", mean)
                + (remedy.map { ", or \($0)" } ?? ""))
        }
        return self
    }
}
