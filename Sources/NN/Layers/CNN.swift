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

    /// The model, its weights drawn as PyTorch's layers draw them by default (U(±1/√fanIn)), from `seed`.
    public static func make(_ kind: Kind = .plain, classes: Int = 10, seed: UInt64,
                            on device: DeviceTag = .cpu) throws -> Sequential {
        func block(_ inputs: Int, _ outputs: Int, seed: UInt64) throws -> [any Module] {
            [try Conv2d(inputs, outputs, kernel: 3, padding: 1, seed: seed, on: device)]
                + (kind == .batchNorm ? [try BatchNorm2d(outputs, on: device)] : [])
                + [ActivationLayer(.relu), MaxPool2d(kernel: 2)]
        }
        return Sequential([try ImageInput(channels: 1, height: 28, width: 28)]
            + (try block(1, 32, seed: seed)) + (try block(32, 64, seed: seed &+ 2))
            + [Flatten(),
               try Linear(64 * 7 * 7, 128, activation: .relu, initializer: .pytorchDefault, seed: seed &+ 4,
                          on: device),
               try Linear(128, classes, initializer: .pytorchDefault, seed: seed &+ 6, on: device)])
    }
}
