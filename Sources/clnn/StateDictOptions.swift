import ArgumentParser
import Device
import Foundation
@_spi(CLI) import NN

/// `--normalization MEAN,STD` or `none`, for models whose file does not record it (a plain PyTorch state dict).
func parseNormalization(_ text: String?) throws -> Normalization? {
    guard let text else { return nil }
    if text == "none" { return Normalization(mean: 0, std: 1) }
    let parts = text.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
    guard parts.count == 2, let mean = parts[0], let std = parts[1], mean.isFinite, abs(mean) <= 1e6,
          std.isFinite, std >= 1e-6, std <= 1e6 else {
        throw ValidationError("--normalization must be MEAN,STD (|mean| ≤ 1e6, 1e-6 ≤ std ≤ 1e6) or none, "
            + "got '\(text)'")
    }
    return Normalization(mean: mean, std: std)
}

/// `--activation`, `--loss` and `--classes` as `train` and `eval` take them (for a model whose file does not say).
func validateModelOptions(activation: String?, loss: String?, classes: Int?) throws {
        if let activation, Activation(rawValue: activation) == nil {
            throw ValidationError("--activation must be one of "
                + "\(Activation.allCases.map(\.rawValue).joined(separator: ", ")), got '\(activation)'")
        }
        if let loss, Losses.named(loss) == nil {
            throw ValidationError("--loss must be cross-entropy or mse, got '\(loss)'")
        }
        if let classes, !(1...(1 << 16)).contains(classes) {
            throw ValidationError("--classes must be in 1...65536, got \(classes)")
        }
}

extension StateDictAssumptions {
    /// The assumptions a command's options give for a plain PyTorch state dict; without `--normalization`, the
    /// training set's statistics (`training`, read only when needed).
    init(activation: String?, loss: String?, classes: Int?, normalization: String?,
         training: () throws -> Normalization) throws {
        self.init(activation: Activation(rawValue: activation ?? "relu") ?? .relu, loss: loss ?? "cross-entropy",
                  classes: classes)
        if let given = try parseNormalization(normalization) {
            (self.normalization, normalizationOrigin) = (given, "--normalization")
        } else {
            (self.normalization, normalizationOrigin)
                = (try training(), "the training set's statistics; --normalization to change")
        }
    }
}
