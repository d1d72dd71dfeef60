import Foundation

/// A trained MLP on disk, as safetensors with PyTorch `nn.Sequential` state-dict names and layouts
/// (`0.weight` [out, in], `0.bias` [out], `2.weight`, ...), plus the metadata needed to rebuild and use it.
public struct Checkpoint: Equatable, Sendable {
    /// [inputs, hidden..., outputs]
    public var sizes: [Int]
    public var loss: String
    public var classes: Int
    public var normalization: Normalization

    public init(sizes: [Int], loss: String, classes: Int, normalization: Normalization) {
        self.sizes = sizes
        self.loss = loss
        self.classes = classes
        self.normalization = normalization
    }

    var metadata: [String: String] {
        ["format": "pt", "clnn.sizes": sizes.map(String.init).joined(separator: ","), "clnn.loss": loss,
         "clnn.classes": String(classes), "clnn.mean": String(normalization.mean), "clnn.std": String(normalization.std)]
    }

    /// Writes `model` with this metadata to `path`, atomically: a failed write leaves any earlier file intact.
    public func save(_ model: Sequential, to path: String) throws {
        var tensors: [String: SafeTensors.Entry] = [:]
        for (name, p) in model.namedParameters {
            let values = try p.value.toArray()
            if p.value.shape.count == 2 {
                // CLNN keeps w as [in, out] (x·w); PyTorch's Linear keeps [out, in].
                let (rows, cols) = (p.value.shape[0], p.value.shape[1])
                let transposed = (0..<rows * cols).map { values[($0 % rows) * cols + $0 / rows] }
                tensors[name] = SafeTensors.Entry(shape: [cols, rows], values: transposed)
            } else {
                tensors[name] = SafeTensors.Entry(shape: p.value.shape, values: values)
            }
        }
        try AtomicFile.write(try SafeTensors.encode(tensors, metadata: metadata), to: path)
    }

    /// Reads a checkpoint and rebuilds its model on `device`.
    public static func load(_ path: String, on device: DeviceTag) throws -> (Checkpoint, Sequential) {
        let (tensors, metadata) = try SafeTensors.decode(try readFileBytes(path, what: "checkpoint file"), path: path)
        let checkpoint = try parse(metadata, path: path)
        let model = try MLP.make(sizes: checkpoint.sizes, seed: 0, on: device)
        let expected = Set(model.namedParameters.map(\.name))
        if let extra = Set(tensors.keys).subtracting(expected).sorted().first {
            throw DataError(path, "unexpected tensor '\(extra)' for layer sizes \(checkpoint.sizes)")
        }
        for (name, p) in model.namedParameters {
            guard let entry = tensors[name] else { throw DataError(path, "missing tensor '\(name)' for layer sizes \(checkpoint.sizes)") }
            let want = p.value.shape.count == 2 ? [p.value.shape[1], p.value.shape[0]] : p.value.shape
            guard entry.shape == want else {
                throw DataError(path, "tensor '\(name)' has shape \(entry.shape) but layer sizes \(checkpoint.sizes) need \(want)")
            }
            var values = entry.values
            if want.count == 2 {
                let (rows, cols) = (want[0], want[1])  // [out, in] → [in, out]
                values = (0..<rows * cols).map { entry.values[($0 % rows) * cols + $0 / rows] }
            }
            try p.load(try Tensor(values, shape: p.value.shape))
        }
        return (checkpoint, model)
    }

    static func parse(_ metadata: [String: String], path: String) throws -> Checkpoint {
        func field(_ key: String) throws -> String {
            guard let value = metadata[key] else { throw DataError(path, "metadata lacks '\(key)': not a clnn checkpoint?") }
            return value
        }
        let sizesText = try field("clnn.sizes")
        let sizes = sizesText.split(separator: ",").compactMap { Int($0) }
        guard sizes.count >= 2, sizes.count == sizesText.split(separator: ",").count, sizes.allSatisfy({ $0 > 0 && $0 < 1 << 20 }) else {
            throw DataError(path, "metadata 'clnn.sizes' is not a list of positive layer sizes: '\(sizesText)'")
        }
        let loss = try field("clnn.loss")
        guard let lossFunction = makeLoss(named: loss) else { throw DataError(path, "metadata names an unknown loss '\(loss)'") }
        guard let classes = Int(try field("clnn.classes")), classes > 0,
              lossFunction.outputs(classes: classes) == sizes.last else {
            throw DataError(path, "metadata 'clnn.classes' disagrees with the output size \(sizes.last!) for loss \(loss)")
        }
        guard let mean = Float(try field("clnn.mean")), let std = Float(try field("clnn.std")),
              mean.isFinite, std.isFinite, std > 0 else {
            throw DataError(path, "metadata 'clnn.mean'/'clnn.std' are not finite numbers with std > 0")
        }
        return Checkpoint(sizes: sizes, loss: loss, classes: classes, normalization: Normalization(mean: mean, std: std))
    }
}
