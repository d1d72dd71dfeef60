import Foundation

/// A trained model on disk (an MLP, a CNN: any architecture `LayerSpec` describes), as safetensors with PyTorch
/// `nn.Sequential` state-dict names and layouts (`0.weight` [out, in], `0.bias` [out], a convolution's weight
/// [out, in, kh, kw], a batch norm's `running_mean`, `running_var` and `num_batches_tracked`, …), plus the metadata
/// needed to rebuild and use it.
public struct Checkpoint: Equatable, Sendable {
    /// The model, one entry per `nn.Sequential` index (`linear(784,50)`, `relu`, `conv2d(1,32,3,p=1)`, ...), after
    /// an `image(C,H,W)` entry (no index) when the model reads images.
    public var layers: [LayerSpec]
    /// The loss’s name (`cross-entropy`, `mse`).
    public var loss: String
    /// The classes the model predicts.
    public var classes: Int
    /// The input statistics the model was trained with; inputs must be normalised with them.
    public var normalization: Normalization
    /// [rows, cols] of the images the model was trained on, when known (older checkpoints lack it).
    public var imageShape: [Int]?
    /// The epochs completed by the run that wrote it, when known (a training state beside it must agree).
    public var epoch: Int?
    /// How this metadata was obtained when the file did not hold it all — a plain PyTorch state dict's architecture
    /// inferred from its tensor shapes, what was assumed, tensors converted from F16/BF16/F64 — in one line; nil for
    /// a clnn checkpoint read as written.
    public var note: String?
    /// Whether the architecture was inferred from a plain state dict's tensor shapes (its activations then assumed).
    public internal(set) var inferredFromShapes = false
    /// The FNV-1a digest of the training state file saved with these weights (`SavedRun`), nil when none was: a
    /// state file beside the checkpoint belongs to it only when its bytes have this digest.
    public internal(set) var trainingStateDigest: UInt64?

    /// The metadata of a model of `layers`; `save` checks it against the model and itself.
    public init(layers: [LayerSpec], loss: String, classes: Int, normalization: Normalization,
                imageShape: [Int]? = nil, epoch: Int? = nil) {
        self.layers = layers
        self.loss = loss
        self.classes = classes
        self.normalization = normalization
        self.imageShape = imageShape
        self.epoch = epoch
    }

    /// The metadata of an MLP made by `MLP.make(sizes:activation:)`.
    public init(sizes: [Int], loss: String, classes: Int, normalization: Normalization, imageShape: [Int]? = nil,
                activation: Activation = .relu, epoch: Int? = nil) {
        self.init(layers: LayerSpec.mlp(sizes: sizes, activation: activation), loss: loss, classes: classes,
                  normalization: normalization, imageShape: imageShape, epoch: epoch)
    }

    /// [inputs, hidden..., outputs]: the linear layers' sizes (an MLP's whole description).
    public var sizes: [Int] { LayerSpec.sizes(layers) }

    /// The values one example holds: the input's pixel count.
    public var inputFeatures: Int { LayerSpec.inputShape(layers)?.reduce(1, *) ?? 0 }

    /// The model's output width (the last linear layer's outputs).
    public var outputs: Int { sizes.last ?? 0 }

    /// The activation's name when every activation entry is the same one; `none` without any; else `mixed`.
    public var activation: String {
        let names = Set(layers.compactMap { spec -> String? in
            if case let .activation(f) = spec { return f.rawValue }
            return nil
        })
        return names.count == 1 ? names.first! : names.isEmpty ? "none" : "mixed"
    }

    /// The state-dict names and PyTorch shapes of the tensors: `N.weight` [out, in] and `N.bias` [out] for each
    /// linear entry N, a convolution's [out, in, kh, kw], a batch norm's statistics (`LayerSpec.tensorShapes`).
    public var tensorShapes: [(name: String, shape: [Int])] {
        LayerSpec.tensorShapes(layers).map { ($0.name, $0.shape) }
    }

    var metadata: [String: String] {
        var out = ["format": "pt", "clnn.architecture": LayerSpec.text(layers), "clnn.loss": loss,
                   "clnn.classes": String(classes), "clnn.mean": String(normalization.mean),
                   "clnn.std": String(normalization.std)]
        // NOTE: older readers (and tools/check_checkpoint.py before clnn.architecture) build an MLP from
        // sizes + activation: write the sizes for an MLP only, the activation only when that MLP is this model.
        if LayerSpec.isMLP(layers) { out["clnn.sizes"] = sizes.map(String.init).joined(separator: ",") }
        if let f = Activation(rawValue: activation), layers == LayerSpec.mlp(sizes: sizes, activation: f) {
            out["clnn.activation"] = activation
        }
        if let imageShape { out["clnn.image"] = imageShape.map(String.init).joined(separator: ",") }
        if let epoch { out["clnn.epoch"] = String(epoch) }
        if let trainingStateDigest { out["clnn.training-state"] = String(trainingStateDigest, radix: 16) }
        return out
    }

    /// The names `clnn.loss` and `clnn.activation` may take, given by the caller (the format knows no modules).
    public struct Vocabulary: Sendable {
        /// The outputs a loss of that name needs for a class count; nil for an unknown name.
        public var lossOutputs: @Sendable (_ name: String, _ classes: Int) -> Int?
        /// The activation names a checkpoint may record.
        public var activations: Set<String>
        /// A vocabulary of these losses and activations.
        public init(lossOutputs: @escaping @Sendable (String, Int) -> Int?, activations: Set<String>) {
            self.lossOutputs = lossOutputs
            self.activations = activations
        }
    }

    /// Parses a checkpoint's bytes: its metadata, and every tensor the metadata implies, present with its shape
    /// (PyTorch layout). Nothing is allocated beyond the file's own size, whatever the metadata claims.
    ///
    /// A file with no clnn metadata is read as a plain PyTorch `nn.Sequential` state dict of Linear layers (what
    /// `save_file(model.state_dict(), …)` writes): the architecture comes from the tensor shapes, and what they
    /// cannot say from `assumptions`; `note` then says what was inferred and assumed.
    public static func verified(_ bytes: [UInt8], path: String, vocabulary: Vocabulary,
                                assuming assumptions: StateDictAssumptions = StateDictAssumptions())
        throws -> (checkpoint: Checkpoint, tensors: [String: SafeTensors.Entry]) {
        // Held at once while a model loads: the decoded values, their clnn layout, the model's own copy on cpu.
        var (tensors, metadata) = try SafeTensors.decode(bytes, path: path, copies: 3)
        // Checked under the file's own names (a plain state dict's may be renumbered below).
        try SafeTensors.requireFinite(tensors, path: path, what: "a model")
        var checkpoint: Checkpoint
        if isPlainStateDict(metadata) {
            (checkpoint, tensors) = try inferred(tensors, path: path, vocabulary: vocabulary, assuming: assumptions)
        } else {
            checkpoint = try parse(metadata, path: path, vocabulary: vocabulary)
        }
        // (A batch norm's int64 counter is read as a number: not a conversion worth a note.)
        let converted = Dictionary(grouping: tensors.filter { $0.value.storedAs != "F32"
                                                               && !SafeTensors.Entry.isCounter($0.key) }.values,
                                   by: \.storedAs)
        if !converted.isEmpty {
            let what = converted.keys.sorted().map { "\(converted[$0]!.count) \($0)" }.joined(separator: " and ")
            checkpoint.note = (checkpoint.note.map { $0 + "; " } ?? "") + "converted \(what) tensors to F32 on load"
        }
        let expected = checkpoint.tensorShapes  // PyTorch layout: weight [out, in], bias [out]
        let model = LayerSpec.text(checkpoint.layers)
        if let extra = Set(tensors.keys).subtracting(expected.map(\.name)).sorted().first {
            throw DataError(path, "unexpected tensor '\(extra.prefix(80))' for the architecture \(model)")
        }
        // (A missing batch-norm counter is the model's own when it loads: `fillingMissingCounters`.)
        for (name, shape) in expected where tensors[name] != nil || !SafeTensors.Entry.isCounter(name) {
            guard let entry = tensors[name] else {
                let statistics = name.hasSuffix(".running_mean") || name.hasSuffix(".running_var")
                throw DataError(path, "missing tensor '\(name)' for the architecture \(model)"
                    + (statistics ? " (a batch norm's running statistics, which evaluation normalises with)" : ""))
            }
            guard entry.shape == shape else {
                throw DataError(path, "tensor '\(name)' has shape \(entry.shape) but the architecture \(model) "
                    + "needs \(shape)")
            }
        }
        return (checkpoint, tensors)
    }

    static func parse(_ metadata: [String: String], path: String, vocabulary: Vocabulary) throws -> Checkpoint {
        let lossOutputs = vocabulary.lossOutputs
        func field(_ key: String) throws -> String {
            guard let value = metadata[key] else {
                throw DataError(path, "metadata lacks '\(key)': not a clnn checkpoint?")
            }
            return value
        }
        func sizeList(_ key: String, _ text: String, count: ClosedRange<Int>) throws -> [Int] {
            let parts = text.split(separator: ",", omittingEmptySubsequences: false)
            let values = parts.compactMap { Int($0) }
            guard count.contains(parts.count), values.count == parts.count,
                  values.allSatisfy({ $0 > 0 && $0 < 1 << 20 }) else {
                throw DataError(path, "metadata '\(key)' is not a list of \(count.lowerBound)...\(count.upperBound) "
                    + "sizes in 1...\((1 << 20) - 1): '\(text.prefix(80))'")
            }
            return values
        }
        // An MLP's checkpoint holds 'clnn.sizes' (older ones hold nothing else); another model's, its architecture.
        let sizes = try (metadata["clnn.architecture"] == nil || metadata["clnn.sizes"] != nil)
            ? sizeList("clnn.sizes", try field("clnn.sizes"), count: 2...64) : nil
        let activationName = metadata["clnn.activation"] ?? "relu"
        guard vocabulary.activations.contains(activationName),
              let activation = Activation(rawValue: activationName) else {
            throw DataError(path, "metadata names an unknown activation '\(activationName.prefix(80))' "
                + "(known: \(vocabulary.activations.sorted().joined(separator: ", ")))")
        }
        var layers = LayerSpec.mlp(sizes: sizes ?? [], activation: activation)
        if let text = metadata["clnn.architecture"] {
            layers = try architecture(text, sizes: sizes, path: path)
            // clnn writes 'clnn.activation' only for the MLP of its sizes and that activation (for older readers):
            // both present and describing different models is a file edited by hand, or another tool's.
            // (Without 'clnn.sizes', the sizes are the architecture's own when it is an MLP.)
            let mlpSizes = sizes ?? (LayerSpec.isMLP(layers) ? LayerSpec.sizes(layers) : [])
            if metadata["clnn.activation"] != nil, layers != LayerSpec.mlp(sizes: mlpSizes, activation: activation) {
                throw DataError(path, "metadata 'clnn.activation' \(activationName) contradicts 'clnn.architecture' "
                    + "\(text.prefix(120)) (which is not that MLP): the file describes two models; remove one field")
            }
        }
        let loss = try field("clnn.loss")
        guard lossOutputs(loss, 1) != nil else {
            throw DataError(path, "metadata names an unknown loss '\(loss.prefix(80))'")
        }
        let outputs = LayerSpec.sizes(layers).last ?? 0
        guard let classes = Int(try field("clnn.classes")), classes > 0, classes <= 1 << 16,
              lossOutputs(loss, classes) == outputs else {
            throw DataError(path, "metadata 'clnn.classes' disagrees with the output size \(outputs) "
                + "for loss \(loss)")
        }
        guard let mean = Float(try field("clnn.mean")), let std = Float(try field("clnn.std")),
              abs(mean) <= 1e6, std >= 1e-6, std <= 1e6 else {
            // NOTE: pixels are scaled to [0, 1]; a std far outside that range would turn them into infinities.
            throw DataError(path, "metadata 'clnn.mean'/'clnn.std' are not pixel statistics "
                + "(|mean| ≤ 1e6, 1e-6 ≤ std ≤ 1e6)")
        }
        var imageShape: [Int]?
        if let text = metadata["clnn.image"] {
            let shape = try sizeList("clnn.image", text, count: 2...2)
            if case let .image(_, height, width)? = layers.first {
                guard shape == [height, width] else {
                    throw DataError(path, "metadata 'clnn.image' \(shape) disagrees with the architecture's input "
                        + "\(layers[0])")
                }
            } else if let inputs = LayerSpec.inputShape(layers)?.first,
                      shape[0].multipliedReportingOverflow(by: shape[1]) != (inputs, false) {
                throw DataError(path, "metadata 'clnn.image' \(shape) disagrees with the input size \(inputs)")
            }
            imageShape = shape
        }
        var epoch: Int?
        if let text = metadata["clnn.epoch"] {
            guard let value = Int(text), value >= 1, value <= 1_000_000 else {
                throw DataError(path, "metadata 'clnn.epoch' is not an epoch count in 1...1000000: "
                    + "'\(text.prefix(80))'")
            }
            epoch = value
        }
        var checkpoint = Checkpoint(layers: layers, loss: loss, classes: classes,
                                    normalization: Normalization(mean: mean, std: std),
                                    imageShape: imageShape, epoch: epoch)
        if let text = metadata["clnn.training-state"] {
            guard let digest = UInt64(text, radix: 16) else {
                throw DataError(path, "metadata 'clnn.training-state' is '\(text.prefix(40))', not a digest")
            }
            checkpoint.trainingStateDigest = digest
        }
        return checkpoint
    }

    /// Parses `clnn.architecture`: known entries whose sizes chain (`LayerSpec.shapes`), and for an MLP the same
    /// sizes as `clnn.sizes` when that is present.
    static func architecture(_ text: String, sizes: [Int]?, path: String) throws -> [LayerSpec] {
        do {
            let layers = try LayerSpec.parse(text)
            if let sizes, LayerSpec.sizes(layers) != sizes {
                throw DataError(path, "metadata 'clnn.architecture' (\(text.prefix(120))) disagrees with "
                    + "'clnn.sizes' \(sizes)")
            }
            _ = try LayerSpec.shapes(layers)
            return layers
        } catch let error as LayerSpec.Mismatch {
            throw DataError(path, "metadata 'clnn.architecture' \(error.message)")
        }
    }

    /// Whether `metadata` (a safetensors header's) holds no clnn fields: a state dict saved by another tool.
    public static func isPlainStateDict(_ metadata: [String: String]) -> Bool {
        !metadata.keys.contains { $0.hasPrefix("clnn.") }
    }

    /// A plain `nn.Sequential` state dict's checkpoint: `N.weight` [out, in] and `N.bias` [out] for each Linear,
    /// one activation (`assumptions.activation`) for each single index without parameters between two of them,
    /// parameterless modules before the first Linear (`nn.Flatten`) read as identity. Returns the tensors renamed to
    /// the indices of the architecture read (the same names unless such leading modules were dropped).
    /// With `assumptions.architecture` the tensors are taken as that model's, under their own names (the caller then
    /// checks each against it).
    static func inferred(_ tensors: [String: SafeTensors.Entry], path: String, vocabulary: Vocabulary,
                         assuming assumptions: StateDictAssumptions)
        throws -> (Checkpoint, [String: SafeTensors.Entry]) {
        let (layers, renamed, leading) = try assumptions.architecture.map { ($0, tensors, "") }
            ?? inferredMLP(tensors, path: path, activation: assumptions.activation)
        let outputs = LayerSpec.sizes(layers).last ?? 0
        let loss = assumptions.loss, lossOutputs = vocabulary.lossOutputs
        guard lossOutputs(loss, 1) != nil else {
            throw DataError(path, "unknown loss '\(loss.prefix(40))' assumed for a plain state dict")
        }
        let classes: Int
        if let explicit = assumptions.classes {
            classes = explicit
        } else if lossOutputs(loss, 2) == 2, lossOutputs(loss, 3) == 3 {  // one output per class
            classes = outputs
        } else {
            throw DataError(path, "a plain state dict with \(outputs) output(s) and loss \(loss): "
                + "its class count cannot be read "
                + "from the shapes; state it (--classes)")
        }
        guard lossOutputs(loss, classes) == outputs else {
            throw DataError(path, "the last Linear gives \(outputs) outputs but \(loss) over \(classes) classes "
                + "needs \(lossOutputs(loss, classes) ?? 0)")
        }
        let normalization = assumptions.normalization ?? Normalization(mean: 0, std: 1)
        var checkpoint = Checkpoint(layers: layers, loss: loss, classes: classes, normalization: normalization)
        // The same checks as for a clnn checkpoint's metadata.
        _ = try parse(checkpoint.metadata, path: path, vocabulary: vocabulary)
        let activations = layers.contains { if case .activation = $0 { return true } else { return false } }
        let given = assumptions.architecture != nil
        checkpoint.inferredFromShapes = !given
        checkpoint.note = "a plain PyTorch state dict (no clnn metadata): "
            + (given ? "read as \(LayerSpec.text(layers)) (the architecture given); assumed "
                : "inferred \(LayerSpec.text(layers)) from the tensor shapes\(leading); assumed "
                    + (activations ? "activation \(assumptions.activation.rawValue), " : ""))
            + "loss \(loss), \(classes) classes" + (assumptions.classes == nil ? " (the output width)" : "")
            + String(format: ", input normalisation mean %.4f std %.4f", normalization.mean, normalization.std)
            + (assumptions.normalizationOrigin.map { " (\($0))" }
                ?? (assumptions.normalization == nil ? " (none)" : ""))
        return (checkpoint, renamed)
    }

    /// The MLP a plain state dict's shapes describe (see `inferred`): its entries, the tensors renamed to them, and
    /// a note on leading modules read as identity.
    static func inferredMLP(_ tensors: [String: SafeTensors.Entry], path: String, activation: Activation)
        throws -> ([LayerSpec], [String: SafeTensors.Entry], String) {
        var byIndex: [Int: (weight: SafeTensors.Entry?, bias: SafeTensors.Entry?)] = [:]
        for name in tensors.keys.sorted() {
            let entry = tensors[name]!
            let parts = name.split(separator: ".", omittingEmptySubsequences: false)
            if parts.count == 2, let index = Int(parts[0]), String(index) != parts[0] {
                // NOTE: "02" and "2" would both be index 2: one layer's tensors silently replaced by another's.
                throw DataError(path, "tensor '\(name.prefix(80))' has index '\(parts[0].prefix(20))', "
                    + "which nn.Sequential never "
                    + "writes (it would be read as \(index)"
                    + "\(tensors["\(index).\(parts[1])"] != nil ? ", which '\(index).\(parts[1])' names too" : "")); "
                    + "PyTorch's strict load refuses it as well")
            }
            guard parts.count == 2, let index = Int(parts[0]), index >= 0, index < 1 << 16,
                  parts[1] == "weight" || parts[1] == "bias" else {
                throw DataError(path, "tensor '\(name.prefix(80))' is not N.weight or N.bias of an nn.Sequential: "
                    + "without an architecture (--arch) CLNN reads "
                    + "stacks of nn.Linear and activations"
                    + (name.hasSuffix("running_mean") || SafeTensors.Entry.isCounter(name)
                        ? " (this is a BatchNorm's)" : ""))
            }
            if parts[1] == "weight" {
                guard entry.shape.count == 2 else {
                    let kind = entry.shape.count == 1 ? "a normalisation layer's (LayerNorm, BatchNorm)"
                        : entry.shape.count >= 3 ? "a convolution's" : "not a Linear's"
                    throw DataError(path, "tensor '\(name)' has shape \(entry.shape): "
                        + "a \(entry.shape.count)-D weight is \(kind); "
                        + "without an architecture (--arch) CLNN reads stacks of nn.Linear [out, in] weights")
                }
                byIndex[index, default: (nil, nil)].weight = entry
            } else {
                byIndex[index, default: (nil, nil)].bias = entry
            }
        }
        let indices = byIndex.keys.sorted()
        guard !indices.isEmpty else { throw DataError(path, "holds no tensors: not a model") }
        guard indices.count <= 64 else { throw DataError(path, "holds \(indices.count) layers; CLNN reads at most 64") }
        var layers: [LayerSpec] = []
        var renamed: [String: SafeTensors.Entry] = [:]
        var width: Int?
        var leading = ""
        for (k, index) in indices.enumerated() {
            guard let weight = byIndex[index]!.weight else {
                throw DataError(path, "tensor '\(index).bias' has no '\(index).weight' beside it: not an nn.Linear")
            }
            guard let bias = byIndex[index]!.bias else {
                throw DataError(path, "tensor '\(index).weight' has no '\(index).bias': "
                    + "a Linear without bias (bias=False) is not supported")
            }
            let (outputs, inputs) = (weight.shape[0], weight.shape[1])
            guard (1..<(1 << 20)).contains(outputs), (1..<(1 << 20)).contains(inputs) else {
                throw DataError(path, "tensor '\(index).weight' has shape \(weight.shape); "
                    + "each size must be in 1...\((1 << 20) - 1)")
            }
            guard bias.shape == [outputs] else {
                throw DataError(path, "tensor '\(index).bias' has shape \(bias.shape) "
                    + "but '\(index).weight' \(weight.shape) needs [\(outputs)]")
            }
            if k == 0 {
                if index > 0 {
                    leading = "; \(index == 1 ? "index 0" : "indices 0...\(index - 1)") before the first Linear "
                        + "\(index == 1 ? "holds" : "hold") no parameters (nn.Flatten?): read as identity"
                }
            } else {
                let gap = index - indices[k - 1] - 1
                guard gap <= 1 else {
                    throw DataError(path, "indices \(indices[k - 1]) and \(index) have \(gap) modules "
                        + "without parameters between them; "
                        + "CLNN reads exactly one there, as the activation (a Dropout beside it cannot be told apart)")
                }
                if gap == 1 { layers.append(.activation(activation)) }
                if let width, width != inputs {
                    throw DataError(path, "tensor '\(index).weight' takes \(inputs) inputs "
                        + "but the layer before gives \(width)")
                }
            }
            renamed["\(layers.count).weight"] = weight
            renamed["\(layers.count).bias"] = bias
            layers.append(.linear(inFeatures: inputs, outFeatures: outputs))
            width = outputs
        }
        return (layers, renamed, leading)
    }
}

/// What a plain PyTorch state dict's tensors cannot say, to be assumed when reading one.
public struct StateDictAssumptions: Sendable, Equatable {
    /// The activation of each single parameterless index between two Linear layers.
    public var activation: Activation
    /// The loss the model was trained with (`cross-entropy` or `mse`).
    public var loss: String
    /// The class count; by default the output width (cross-entropy). An `mse` model needs it.
    public var classes: Int?
    /// The input normalisation the model expects; by default none (mean 0, std 1).
    public var normalization: Normalization?
    /// Where `normalization` came from, for the note (e.g. `the training set's statistics`).
    public var normalizationOrigin: String?
    /// The model's architecture when the caller knows it (`--arch`): the tensors are then read as that model's, each
    /// checked against it, instead of an MLP being inferred from their shapes.
    public var architecture: [LayerSpec]?

    /// ReLU and cross-entropy (PyTorch's usual), classes from the output width, no normalisation unless given.
    public init(activation: Activation = .relu, loss: String = "cross-entropy", classes: Int? = nil,
                normalization: Normalization? = nil, normalizationOrigin: String? = nil,
                architecture: [LayerSpec]? = nil) {
        self.activation = activation
        self.loss = loss
        self.classes = classes
        self.normalization = normalization
        self.normalizationOrigin = normalizationOrigin
        self.architecture = architecture
    }
}
