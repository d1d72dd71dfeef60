import Foundation

extension Checkpoint {
    /// The metadata of a model of known modules: its architecture is read from the model.
    /// - Throws: `DataError` when the model holds a module a checkpoint cannot describe.
    public init(model: Sequential, loss: String, classes: Int, normalization: Normalization, imageShape: [Int]? = nil,
                epoch: Int? = nil) throws {
        guard let layers = model.layerSpecs else {
            let custom = model.layers.first { $0.layerSpecs == nil }.map { "\(type(of: $0))" } ?? "a module"
            throw DataError("checkpoint", "the model holds \(custom), which a checkpoint cannot describe "
                + "(it records CLNN's layers: Linear, Conv2d, BatchNorm, pooling, Dropout, Flatten, activations)")
        }
        self.init(layers: layers, loss: loss, classes: classes, normalization: normalization, imageShape: imageShape,
                  epoch: epoch)
    }

    /// The losses and activations this library knows.
    public static let vocabulary = Vocabulary(lossOutputs: { Losses.named($0)?.outputs(classes: $1) },
                                              activations: Set(Activation.allCases.map(\.rawValue)))

    /// Writes `model` with this metadata to `path`, atomically: a failed write leaves any earlier file intact.
    /// - Throws: `DataError`, with nothing written, when the metadata does not describe `model` (its architecture
    ///   differs, the loss is unknown, the class count disagrees with the outputs, the statistics are out of range)
    ///   or a parameter holds a NaN or an infinity; or when the write fails.
    ///
    /// This writes the model alone: a training state beside `path` no longer belongs to it (`SavedRun.save` writes
    /// both as one).
    public func save(_ model: Sequential, to path: String) throws {
        var plain = self
        plain.trainingStateDigest = nil
        try AtomicFile.write(try plain.encode(tensors: try tensors(of: model, path: path)), to: path)
    }

    /// The state-dict tensors of `model` (PyTorch layout), after checking that this metadata describes it, reads
    /// back as itself, and that every value is finite.
    func tensors(of model: Sequential, path: String) throws -> [String: SafeTensors.Entry] {
        try checkWritable(model, path: path)
        var tensors: [String: SafeTensors.Entry] = [:]
        for (name, p) in model.namedParameters {
            let values = try p.value.toArray()
            guard values.allSatisfy(\.isFinite) else {
                throw DataError(path, "not written: parameter '\(name)' holds NaN or infinite values")
            }
            tensors[name] = SafeTensors.Entry(pyTorchLayoutOf: values, shape: p.value.shape)
        }
        for (name, value) in model.namedBuffers {
            let values = try value.toArray()
            guard values.allSatisfy(\.isFinite) else {
                throw DataError(path, "not written: buffer '\(name)' holds NaN or infinite values")
            }
            tensors[name] = SafeTensors.Entry(bufferValues: values, shape: value.shape, name: name)
        }
        return tensors
    }

    /// The checkpoint file's bytes: `tensors` with this metadata.
    func encode(tensors: [String: SafeTensors.Entry]) throws -> [UInt8] {
        try SafeTensors.encode(tensors, metadata: metadata)
    }

    /// Reads a checkpoint and rebuilds its model on `device`, module by module as its architecture records. A plain
    /// PyTorch state dict (no clnn metadata) is read with `assumptions` (see `verified`; the checkpoint's `note`
    /// says what was inferred).
    public static func load(_ path: String, on device: DeviceTag,
                            assuming assumptions: StateDictAssumptions = StateDictAssumptions())
        throws -> (Checkpoint, Sequential) {
        try decode(try readFileBytes(path, what: "checkpoint file", holding: 4), path: path, on: device,
                   assuming: assumptions)
    }

    /// Parses a checkpoint's bytes and rebuilds its model on `device`. Every tensor the metadata implies must be
    /// present with its shape before anything is allocated, so the memory used is bounded by the file's size.
    public static func decode(_ bytes: [UInt8], path: String, on device: DeviceTag,
                              assuming assumptions: StateDictAssumptions = StateDictAssumptions())
        throws -> (Checkpoint, Sequential) {
        let (checkpoint, tensors) = try verified(bytes, path: path, vocabulary: vocabulary, assuming: assumptions)
        // The model and the transposed host copies made while loading must fit (sizes come from the file).
        let parameters = checkpoint.tensorShapes.reduce(0.0) { $0 + Double($1.shape.reduce(1, *)) }
        do {
            try LayerSpec.checkFits(checkpoint.layers, rows: 1, on: device, training: false)
        } catch let error as DeviceError {
            throw DataError(path, "\(error)".replacingOccurrences(of: "MLP: ", with: "")
                .replacingOccurrences(of: "model: ", with: ""))
        }
        try HostMemory.require(4 * parameters * (device == .cpu ? 2 : 1),
                               for: "loading the \(Int(parameters)) parameters of \(path)")
        let model = try LayerSpec.modules(checkpoint.layers, seed: 0, on: device)
        try model.assign(tensors, path: path)
        return (checkpoint, model)
    }

    /// Checks that `data` fits the model: as many pixels per image as its inputs and, when both are known, the image
    /// shape it was trained on. `imagesFile` and `model` name the two in the error.
    /// - Throws: `DataError` naming `imagesFile`.
    public func checkInputs(_ data: RawDataset, imagesFile: String, model: String) throws {
        guard data.features == inputFeatures else {
            throw DataError(imagesFile, "images have \(data.features) pixels but the model \(model) "
                + "expects \(inputFeatures)")
        }
        if let trained = imageShape, let shape = data.imageShape, trained != shape {
            throw DataError(imagesFile, "images are \(shape[0])×\(shape[1]) but the model \(model) was trained on "
                            + "\(trained[0])×\(trained[1]) images (the same pixel count, laid out differently)")
        }
    }

    /// Throws unless this metadata describes `model` and reads back as itself (the checks a reader makes): what a
    /// save checks first, and a `TrainingRun` before it trains.
    func checkWritable(_ model: Sequential, path: String) throws {
        try checkDescribes(model, path: path)
        _ = try Checkpoint.parse(metadata, path: path, vocabulary: Checkpoint.vocabulary)
    }

    /// Throws unless `model` is the architecture this metadata records.
    func checkDescribes(_ model: Sequential, path: String) throws {
        guard let specs = model.layerSpecs else {
            let custom = model.layers.first { $0.layerSpecs == nil }.map { "\(type(of: $0))" } ?? "a module"
            throw DataError(path, "the model holds \(custom), which a checkpoint cannot describe "
                + "(it records CLNN's layers: Linear, Conv2d, BatchNorm, pooling, Dropout, Flatten, activations)")
        }
        // A plain state dict cannot say which activation sits between two Linears: the model's own is taken.
        if let difference = LayerSpec.difference(file: layers, model: specs, anyActivation: inferredFromShapes) {
            throw DataError(path, "the checkpoint describes \(LayerSpec.text(layers)) but the model is "
                + "\(LayerSpec.text(specs)): \(difference)")
        }
    }
}

extension Sequential {
    /// Loads a checkpoint's weights into this model, which must have the architecture the checkpoint records (any
    /// `Sequential` of `Linear` and `ActivationLayer` modules that adds up to it: a fused `Linear(…, activation:)`
    /// and
    /// a `Linear` followed by an `ActivationLayer` are the same two entries). Returns the checkpoint's metadata.
    /// - Throws: `DataError` naming the first entry that differs; nothing is loaded then.
    /// A plain PyTorch state dict is read with `assumptions` (its activation matters here: it must be the model's).
    @discardableResult
    public func load(from path: String,
                     assuming assumptions: StateDictAssumptions = StateDictAssumptions()) throws -> Checkpoint {
        let (checkpoint, tensors) = try Checkpoint.verified(
            try readFileBytes(path, what: "checkpoint file", holding: 4), path: path,
            vocabulary: Checkpoint.vocabulary, assuming: assumptions)
        try checkpoint.checkDescribes(self, path: path)
        try assign(tensors, path: path)
        return checkpoint
    }

    /// Overwrites every parameter from `tensors` (state-dict names, PyTorch layouts), all checked before any is
    /// written.
    /// Buffers (a batch norm's running statistics) too.
    func assign(_ tensors: [String: SafeTensors.Entry], path: String) throws {
        let named = namedParameters, buffers = namedBuffers
        let tensors = try SafeTensors.Entry.fillingMissingCounters(tensors, buffers: buffers)
        for (name, p) in named {
            guard let entry = tensors[name] else { throw DataError(path, "missing tensor '\(name)'") }
            guard entry.shape == SafeTensors.Entry.pyTorchShape(p.value.shape) else {
                throw DataError(path, "tensor '\(name)' has shape \(entry.shape) but the model's needs "
                    + "\(SafeTensors.Entry.pyTorchShape(p.value.shape))")
            }
        }
        for (name, value) in buffers {
            guard let entry = tensors[name] else { throw DataError(path, "missing tensor '\(name)'") }
            guard entry.shape == value.shape else {
                throw DataError(path, "tensor '\(name)' has shape \(entry.shape) but the model's needs \(value.shape)")
            }
        }
        for (name, p) in named {
            try p.load(try Tensor(tensors[name]!.clnnLayout, shape: p.value.shape))
        }
        var values: [String: Tensor] = [:]
        for (name, value) in buffers {
            values[name] = try Tensor(tensors[name]!.values, shape: value.shape, on: value.device)
        }
        try loadBuffers(values)
    }
}

extension LayerSpec {
    /// Where two architectures first differ, in words; nil when they are the same (with `anyActivation`, two
    /// activations count as the same).
    public static func difference(file: [LayerSpec], model: [LayerSpec], anyActivation: Bool = false) -> String? {
        for (i, (a, b)) in zip(file, model).enumerated() where a != b {
            if anyActivation, case .activation = a, case .activation = b { continue }
            return "entry \(i) is \(a) in the checkpoint and \(b) in the model"
        }
        if file.count != model.count {
            return "the checkpoint has \(file.count) entries and the model \(model.count)"
        }
        return nil
    }
}

extension SafeTensors.Entry {
    /// `tensors` with each batch norm's `num_batches_tracked` among `buffers` that it lacks taken from the model's
    /// own, as PyTorch's `load_state_dict` fills one in (a fresh model's count is 0; the counter only counts).
    static func fillingMissingCounters(_ tensors: [String: SafeTensors.Entry],
                                       buffers: [(name: String, value: Tensor)]) throws -> [String: SafeTensors.Entry] {
        var filled = tensors
        for (name, value) in buffers where isCounter(name) && filled[name] == nil {
            filled[name] = SafeTensors.Entry(bufferValues: try value.toArray(), shape: value.shape, name: name)
        }
        return filled
    }

    /// A buffer as PyTorch stores it: as is, a count (`num_batches_tracked`) as an int64.
    init(bufferValues values: [Float], shape: [Int], name: String) {
        self.init(shape: shape, values: values, storedAs: SafeTensors.Entry.isCounter(name) ? "I64" : "F32")
    }

    /// A CLNN parameter as PyTorch stores it: a matrix transposed (CLNN keeps w as [in, out], for x·w; PyTorch's
    /// Linear keeps [out, in]); anything else as is.
    init(pyTorchLayoutOf values: [Float], shape: [Int]) {
        if shape.count == 2 {
            self.init(shape: [shape[1], shape[0]], values: transpose(values, rows: shape[0], cols: shape[1]))
        } else {
            self.init(shape: shape, values: values)
        }
    }

    /// The PyTorch shape of a CLNN parameter of `shape`.
    static func pyTorchShape(_ shape: [Int]) -> [Int] { shape.count == 2 ? [shape[1], shape[0]] : shape }

    /// The values in CLNN's layout (a matrix transposed back).
    var clnnLayout: [Float] { shape.count == 2 ? transpose(values, rows: shape[0], cols: shape[1]) : values }
}

/// The transpose of a row-major rows×cols matrix.
func transpose(_ values: [Float], rows: Int, cols: Int) -> [Float] {
    var out = [Float](repeating: 0, count: values.count)
    for r in 0..<rows {
        for c in 0..<cols { out[c * rows + r] = values[r * cols + c] }
    }
    return out
}
