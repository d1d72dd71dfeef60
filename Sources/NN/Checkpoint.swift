import Foundation

extension Checkpoint {
    /// The losses and activations this library knows.
    public static let vocabulary = Vocabulary(lossOutputs: { makeLoss(named: $0)?.outputs(classes: $1) },
                                              activations: Set(Activation.allCases.map(\.rawValue)))

    /// Writes `model` with this metadata to `path`, atomically: a failed write leaves any earlier file intact.
    /// - Throws: `DataError` when a parameter holds a NaN or an infinity (nothing is written), or the write fails.
    public func save(_ model: Sequential, to path: String) throws {
        var tensors: [String: SafeTensors.Entry] = [:]
        for (name, p) in model.namedParameters {
            let values = try p.value.toArray()
            guard values.allSatisfy(\.isFinite) else {
                throw DataError(path, "not written: parameter '\(name)' holds NaN or infinite values")
            }
            if p.value.shape.count == 2 {
                // CLNN keeps w as [in, out] (x·w); PyTorch's Linear keeps [out, in].
                let (rows, cols) = (p.value.shape[0], p.value.shape[1])
                tensors[name] = SafeTensors.Entry(shape: [cols, rows], values: transpose(values, rows: rows, cols: cols))
            } else {
                tensors[name] = SafeTensors.Entry(shape: p.value.shape, values: values)
            }
        }
        try AtomicFile.write(try SafeTensors.encode(tensors, metadata: metadata), to: path)
    }

    /// Reads a checkpoint and rebuilds its model on `device`.
    public static func load(_ path: String, on device: DeviceTag) throws -> (Checkpoint, Sequential) {
        try decode(try readFileBytes(path, what: "checkpoint file"), path: path, on: device)
    }

    /// Parses a checkpoint's bytes and rebuilds its model on `device`. Every tensor the metadata implies must be
    /// present with its shape before anything is allocated, so the memory used is bounded by the file's size.
    public static func decode(_ bytes: [UInt8], path: String, on device: DeviceTag) throws -> (Checkpoint, Sequential) {
        let (checkpoint, tensors) = try verified(bytes, path: path, vocabulary: vocabulary)
        let model = try MLP.make(sizes: checkpoint.sizes, activation: Activation(rawValue: checkpoint.activation) ?? .relu,
                                 seed: 0, on: device)
        for (name, p) in model.namedParameters {
            let entry = tensors[name]!
            let values = entry.shape.count == 2
                ? transpose(entry.values, rows: entry.shape[0], cols: entry.shape[1])  // [out, in] → [in, out]
                : entry.values
            try p.load(try Tensor(values, shape: p.value.shape))
        }
        return (checkpoint, model)
    }
}

/// The transpose of a row-major rows×cols matrix.
func transpose(_ values: [Float], rows: Int, cols: Int) -> [Float] {
    var out = [Float](repeating: 0, count: values.count)
    for r in 0..<rows {
        for c in 0..<cols { out[c * rows + r] = values[r * cols + c] }
    }
    return out
}
