/// The small convolutional net of `shared/anchors/cnn.py`, for 28x28 grey images (Fashion-MNIST):
/// Conv(1,32,3,p1)-ReLU-MaxPool2-Conv(32,64,3,p1)-ReLU-MaxPool2-Flatten-Linear(3136,128)-ReLU-Linear(128,10), with a
/// BatchNorm2d after each convolution in its `batchNorm` form. The parameters are named as that PyTorch
/// `nn.Sequential` names them (`0.weight` … `9.bias`; with batch norm `0.weight`, `1.weight`, `1.running_mean`, …
/// `11.bias`); the flat rows of a dataset are read as images first (`ImageInput`, which takes no index).
public enum CNN {
    /// With or without batch normalisation.
    public enum Kind: String, Sendable, CaseIterable {
        /// Convolution, ReLU, max pooling, twice.
        case plain = "cnn"
        /// Convolution, BatchNorm2d, ReLU, max pooling, twice.
        case batchNorm = "cnn-bn"
    }

    /// The architecture as `clnn train --arch` reads it (`LayerSpec.resolve`), ending in `classes` outputs.
    public static func text(_ kind: Kind, classes: Int = 10) -> String {
        let norm = kind == .batchNorm ? " bn" : ""
        return "conv(32,3,p=1)\(norm) relu maxpool(2) conv(64,3,p=1)\(norm) relu maxpool(2) flatten linear(128) relu "
            + "linear(\(classes))"
    }

    /// The entries of the model over images of `height` × `width` (one channel).
    /// - Throws: `LayerSpec.Mismatch` when the images are too small for it.
    public static func specs(_ kind: Kind, classes: Int = 10, height: Int = 28, width: Int = 28) throws -> [LayerSpec] {
        try LayerSpec.resolve(text(kind, classes: classes), input: [1, height, width])
    }

    /// The model, its weights drawn as PyTorch's layers draw them by default (U(±1/√fanIn)), from `seed`.
    public static func make(_ kind: Kind = .plain, classes: Int = 10, seed: UInt64,
                            on device: DeviceTag = .cpu) throws -> Sequential {
        try LayerSpec.modules(try specs(kind, classes: classes), initializer: .pytorchDefault, seed: seed, on: device)
    }
}
