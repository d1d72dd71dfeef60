import Foundation

/// A trained MLP on disk, as safetensors with PyTorch `nn.Sequential` state-dict names and layouts
/// (`0.weight` [out, in], `0.bias` [out], `2.weight`, ...), plus the metadata needed to rebuild and use it.
public struct Checkpoint: Equatable, Sendable {
    /// [inputs, hidden..., outputs]
    public var sizes: [Int]
    public var loss: String
    public var classes: Int
    public var normalization: Normalization
    /// [rows, cols] of the images the model was trained on, when known (older checkpoints lack it).
    public var imageShape: [Int]?
    /// The hidden layers' activation by name (`relu`, `tanh`, ...); checkpoints without it are ReLU models.
    public var activation: String

    public init(sizes: [Int], loss: String, classes: Int, normalization: Normalization, imageShape: [Int]? = nil,
                activation: String = "relu") {
        self.activation = activation
        self.sizes = sizes
        self.loss = loss
        self.classes = classes
        self.normalization = normalization
        self.imageShape = imageShape
    }

    var metadata: [String: String] {
        var out = ["format": "pt", "clnn.sizes": sizes.map(String.init).joined(separator: ","), "clnn.loss": loss,
                   "clnn.classes": String(classes), "clnn.mean": String(normalization.mean), "clnn.std": String(normalization.std)]
        out["clnn.activation"] = activation
        if let imageShape { out["clnn.image"] = imageShape.map(String.init).joined(separator: ",") }
        return out
    }

    /// The names `clnn.loss` and `clnn.activation` may take, given by the caller (the format knows no modules).
    public struct Vocabulary: Sendable {
        public var lossOutputs: @Sendable (_ name: String, _ classes: Int) -> Int?
        public var activations: Set<String>
        public init(lossOutputs: @escaping @Sendable (String, Int) -> Int?, activations: Set<String>) {
            self.lossOutputs = lossOutputs
            self.activations = activations
        }
    }

    /// Parses a checkpoint's bytes: its metadata, and every tensor the metadata implies, present with its shape
    /// (PyTorch layout). Nothing is allocated beyond the file's own size, whatever the metadata claims.
    public static func verified(_ bytes: [UInt8], path: String, vocabulary: Vocabulary)
        throws -> (checkpoint: Checkpoint, tensors: [String: SafeTensors.Entry]) {
        let (tensors, metadata) = try SafeTensors.decode(bytes, path: path)
        let checkpoint = try parse(metadata, path: path, vocabulary: vocabulary)
        let sizes = checkpoint.sizes
        var expected: [(name: String, shape: [Int])] = []  // PyTorch layout: weight [out, in], bias [out]
        for i in 0..<(sizes.count - 1) {
            expected += [("\(2 * i).weight", [sizes[i + 1], sizes[i]]), ("\(2 * i).bias", [sizes[i + 1]])]
        }
        if let extra = Set(tensors.keys).subtracting(expected.map(\.name)).sorted().first {
            throw DataError(path, "unexpected tensor '\(extra.prefix(80))' for layer sizes \(sizes)")
        }
        for (name, shape) in expected {
            guard let entry = tensors[name] else { throw DataError(path, "missing tensor '\(name)' for layer sizes \(sizes)") }
            guard entry.shape == shape else {
                throw DataError(path, "tensor '\(name)' has shape \(entry.shape) but layer sizes \(sizes) need \(shape)")
            }
        }
        return (checkpoint, tensors)
    }

    static func parse(_ metadata: [String: String], path: String, vocabulary: Vocabulary) throws -> Checkpoint {
        let lossOutputs = vocabulary.lossOutputs
        func field(_ key: String) throws -> String {
            guard let value = metadata[key] else { throw DataError(path, "metadata lacks '\(key)': not a clnn checkpoint?") }
            return value
        }
        func sizeList(_ key: String, _ text: String, count: ClosedRange<Int>) throws -> [Int] {
            let parts = text.split(separator: ",", omittingEmptySubsequences: false)
            let values = parts.compactMap { Int($0) }
            guard count.contains(parts.count), values.count == parts.count, values.allSatisfy({ $0 > 0 && $0 < 1 << 20 }) else {
                throw DataError(path, "metadata '\(key)' is not a list of \(count.lowerBound)...\(count.upperBound) sizes in 1...\((1 << 20) - 1): '\(text.prefix(80))'")
            }
            return values
        }
        let sizes = try sizeList("clnn.sizes", try field("clnn.sizes"), count: 2...64)
        let loss = try field("clnn.loss")
        guard lossOutputs(loss, 1) != nil else { throw DataError(path, "metadata names an unknown loss '\(loss.prefix(80))'") }
        guard let classes = Int(try field("clnn.classes")), classes > 0, classes <= 1 << 16,
              lossOutputs(loss, classes) == sizes.last else {
            throw DataError(path, "metadata 'clnn.classes' disagrees with the output size \(sizes.last!) for loss \(loss)")
        }
        guard let mean = Float(try field("clnn.mean")), let std = Float(try field("clnn.std")),
              abs(mean) <= 1e6, std >= 1e-6, std <= 1e6 else {
            // NOTE: pixels are scaled to [0, 1]; a std far outside that range would turn them into infinities.
            throw DataError(path, "metadata 'clnn.mean'/'clnn.std' are not pixel statistics (|mean| ≤ 1e6, 1e-6 ≤ std ≤ 1e6)")
        }
        var imageShape: [Int]?
        if let text = metadata["clnn.image"] {
            let shape = try sizeList("clnn.image", text, count: 2...2)
            guard shape[0].multipliedReportingOverflow(by: shape[1]) == (sizes[0], false) else {
                throw DataError(path, "metadata 'clnn.image' \(shape) disagrees with the input size \(sizes[0])")
            }
            imageShape = shape
        }
        let activation = metadata["clnn.activation"] ?? "relu"
        guard vocabulary.activations.contains(activation) else {
            throw DataError(path, "metadata names an unknown activation '\(activation.prefix(80))' (known: \(vocabulary.activations.sorted().joined(separator: ", ")))")
        }
        return Checkpoint(sizes: sizes, loss: loss, classes: classes, normalization: Normalization(mean: mean, std: std),
                          imageShape: imageShape, activation: activation)
    }
}

