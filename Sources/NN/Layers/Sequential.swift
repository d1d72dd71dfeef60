/// Layers applied in order; backward runs them in reverse. It knows nothing of its children's types.
///
/// It owns its parameters' memory: when they share a device they are laid out in one `ParameterBlock` (flat values
/// and gradients, each parameter a view), made when the model is built and again when it moves (`to(_:)`).
public final class Sequential: Module, CountsForwards, ChecksBackwardByNeed {
    /// The children, in forward order.
    public let layers: [any Module]
    /// The flat buffers of the parameters, nil when they do not share a device (or the model has none).
    public private(set) var parameterBlock: ParameterBlock?

    /// `layers` applied in order, their parameters laid out in one block when they share a device (should that
    /// allocation fail, each keeps its own memory and optimisers step them one by one). Layers whose parameters
    /// already live in another model's block (a `Sequential` of part of a model) leave them there: this model then
    /// has no block of its own until `layoutParameters()` is called.
    public init(_ layers: [any Module]) {
        self.layers = layers
        if !parameters.contains(where: { $0.block != nil }) { try? layoutParameters() }
    }

    /// Lays the parameters out in one block again (views aligned to `alignment` floats, at least the device's), or
    /// drops the block when they no longer share a device. The parameters' tensors stay the same objects.
    public func layoutParameters(alignment: Int = 1) throws {
        let all = parameters
        guard !all.isEmpty, all.allSatisfy({ $0.device == all[0].device }) else {
            parameterBlock = nil
            return
        }
        if let block = parameterBlock, block.holds(all), block.alignment >= alignment,
           block.alignment % max(alignment, 1) == 0 { return }
        // NOTE: the old buffers live on until every parameter has moved out (the views hold them): at the peak, the
        // values and gradients are held twice.
        parameterBlock = try ParameterBlock(all, alignment: alignment)
    }

    /// Moves every child to `device` (parameters and any state of their own, such as a batch norm's running
    /// statistics) and lays the parameters out there in one block.
    public func to(_ device: DeviceTag) throws {
        for layer in layers { try layer.to(device) }
        try layoutParameters(alignment: 1)
    }

    public var parameters: [Parameter] { layers.flatMap(\.parameters) }
    /// The children's entries in order; nil when a child has none (a custom module).
    public var layerSpecs: [LayerSpec]? {
        var specs: [LayerSpec] = []
        for layer in layers {
            guard let own = layer.layerSpecs else { return nil }
            specs += own
        }
        return specs
    }
    /// The last child's output width that is known.
    public var outputFeatures: Int? { layers.lazy.reversed().compactMap(\.outputFeatures).first }
    /// Sets every child's buffer reuse.
    public func setBufferReuse(_ enabled: Bool) { for layer in layers { layer.setBufferReuse(enabled) } }
    /// Whether any child reuses its buffers.
    public var reusesBuffers: Bool { layers.contains(where: \.reusesBuffers) }
    /// Whether the model was last put in training mode (`train()`, the start) rather than evaluation (`eval()`).
    public private(set) var isTraining = true
    /// Sets every child's mode.
    public func setTraining(_ training: Bool) {
        isTraining = training
        for layer in layers { layer.setTraining(training) }
    }
    /// Places every child's stream: the child whose entries start at index k of the model's `layerSpecs` takes
    /// `streamSeed(seed, child: k)` — the seed `LayerSpec.modules` gives a dropout it builds, so a model placed at
    /// draw 0 draws what it drew when new. A `Sequential` inside passes its children the seeds of their entries in
    /// the whole model, so every module with specs has a stream of its own at any depth. A child without specs (a
    /// module of your own; a container holding one) counts as one entry and takes that entry's seed mixed
    /// (`streamSeed(mixing:)`): whatever it adds for its own children lands far from every other entry's stream.
    /// NOTE: by index, not state-dict index: an image entry has no state-dict index (`sequentialWidth` 0) but an
    /// entry.
    public func setRandomStream(seed: UInt64, draw: UInt64) {
        for (layer, entry) in zip(layers, entries) {
            let own = Sequential.streamSeed(seed, child: entry.index)
            layer.setRandomStream(seed: entry.hasSpecs ? own : Sequential.streamSeed(mixing: own), draw: draw)
        }
    }

    /// Where each child's entries start in `layerSpecs`, and whether it has specs (made once: the trainer places
    /// the streams every step, and a layer's specs are built on each call).
    private lazy var entries: [(index: Int, hasSpecs: Bool)] = {
        var index = 0
        return layers.map { layer in
            let width = layer.layerSpecs?.count
            defer { index += width ?? 1 }
            return (index, width != nil)
        }
    }()

    /// The seed of the random streams of a run of seed `seed` on its `worker`-th model copy (0: the only one, or
    /// the first device's; data-parallel replicas and processes count on in order), so each copy drops its own
    /// share of the batch independently.
    public static func streamSeed(run seed: UInt64, worker: Int = 0) -> UInt64 {
        (seed ^ 0xD50F_0000_0000_0000) &+ UInt64(truncatingIfNeeded: worker) << 32
    }

    /// The stream seed of the child whose entries start at index `index` of a container whose stream seed is
    /// `seed`.
    public static func streamSeed(_ seed: UInt64, child index: Int) -> UInt64 {
        seed &+ UInt64(truncatingIfNeeded: index)
    }

    /// `seed` mixed (SplitMix64's finaliser): the seed of a child without specs, whose own children's offsets from
    /// it then never reach the stream of another entry of the model.
    public static func streamSeed(mixing seed: UInt64) -> UInt64 {
        var z = seed ^ 0xA076_1D64_78BD_642F
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Parameters with PyTorch `nn.Sequential` state-dict names: `0.weight`, `0.bias`, `2.weight`, ... A layer
    /// counts as many indices as its `sequentialWidth` (a Linear with a fused activation is two, as in PyTorch).
    public var namedParameters: [(name: String, parameter: Parameter)] {
        var index = 0
        var named: [(String, Parameter)] = []
        for layer in layers {
            named += layer.parameters.map { ("\(index).\($0.name)", $0) }
            index += layer.sequentialWidth
        }
        return named
    }

    /// The children's buffers under the same index prefixes (`1.running_mean`, …).
    public var namedBuffers: [(name: String, value: Tensor)] {
        var index = 0
        var named: [(String, Tensor)] = []
        for layer in layers {
            named += layer.namedBuffers.map { ("\(index).\($0.name)", $0.value) }
            index += layer.sequentialWidth
        }
        return named
    }

    /// Hands each child the values under its index prefix.
    public func loadBuffers(_ values: [String: Tensor]) throws {
        var index = 0
        for layer in layers {
            let prefix = "\(index)."
            let own = values.filter { $0.key.hasPrefix(prefix) }
            if !own.isEmpty {
                try layer.loadBuffers(Dictionary(uniqueKeysWithValues: own.map { (String($0.key.dropFirst(prefix.count)), $0.value) }))
            }
            index += layer.sequentialWidth
        }
    }

    /// Each child's output is on the tape as its own op (a module of your own with its own backward, as `m(x)`),
    /// unless the caller runs the backward itself (`backward(_:needsInputGradient:)` after `forward`, the trainer):
    /// then none is.
    public func forward(_ x: Tensor) throws -> Tensor {
        try beginForward()
        let y = try ModuleTape.callerRunsBackward(!Sequential.recordsChildren) {
            try layers.reduce(x) { try Sequential.recordsChildren ? $1($0) : $1.countedForward($0) }
        }
        finishForward()
        return y
    }

    /// The first layer reads the rows in place (when it can); the rest take the tensor before them.
    public func forward(_ x: Rows) throws -> Tensor {
        try beginForward()
        guard let first = layers.first else {
            let y = try x.gathered()
            finishForward()
            return y
        }
        let y = try ModuleTape.callerRunsBackward(!Sequential.recordsChildren) {
            try layers.dropFirst().reduce(try Sequential.recordsChildren ? first(x) : first.countedForward(x)) {
                try Sequential.recordsChildren ? $1($0) : $1.countedForward($0)
            }
        }
        finishForward()
        return y
    }

    /// Whether a forward now puts the children's outputs on the tape (recording is on, and the caller does not run
    /// the backward itself).
    private static var recordsChildren: Bool { !ModuleTape.backwardByCaller && Tensor.isRecordingGradients }

    /// Whether the last forward ran to its end and no backward has gone through it yet.
    private var forwardDone = false
    let forwards = CallCount()
    /// The children's forward counts, and a module of your own's backward count, when this model's forward ended
    /// (`children`' order).
    private var childCallsSeen: [(forwards: Int, backwards: Int?)] = []

    private func finishForward() {
        forwardDone = true
        childCallsSeen = children.map { ($0.forwards.value, $0.own?.backwards.value) }
    }

    /// The modules inside (nested models' too), with where each is, their forward counts and what CLNN counts of a
    /// module of your own. A child that ran another forward since this model's — it is shared with another model,
    /// or was called on its own — holds that forward's state, which this model's backward would read; a module of
    /// your own that went back since (the tape went through this forward) would add its gradients again.
    private lazy var children: [(path: String, layer: String, forwards: CallCount, own: OwnModuleCalls?)] = {
        var found: [(String, String, CallCount, OwnModuleCalls?)] = []
        func walk(_ model: Sequential, _ path: String) {
            for (index, layer) in model.layers.enumerated() {
                let here = path.isEmpty ? "\(index)" : "\(path).\(index)"
                found.append((here, "\(type(of: layer))", CallCount.forwards(of: layer), OwnModuleCalls.of(layer)))
                if let inner = layer as? Sequential { walk(inner, here) }
            }
        }
        walk(self, "")
        return found
    }()

    private func beginForward() throws {
        forwardDone = false
        forwards.next()
        if let reusedLayer {
            throw DeviceError.invalidArgument(op: "Sequential", "\(reusedLayer): a Sequential's own backward (the "
                + "trainer's) goes back through each layer's last forward, and its parameters would be listed twice, "
                + "so each place needs an instance of its own (PyTorch may reuse a module here; CLNN may not — "
                + "outside a Sequential, m(m(x)) goes back through each)")
        }
    }

    /// A module found twice in this model — among its children and those of a `Sequential` inside — described by
    /// where; nil when each is there once. Found once (the children are fixed).
    private lazy var reusedLayer: String? = {
        var seen: [ObjectIdentifier: String] = [:]
        func walk(_ model: Sequential, _ path: String) -> String? {
            for (index, layer) in model.layers.enumerated() {
                let here = path.isEmpty ? "\(index)" : "\(path).\(index)"
                if let first = seen[ObjectIdentifier(layer)] {
                    return "the same \(type(of: layer)) is layer \(first) and layer \(here)"
                }
                seen[ObjectIdentifier(layer)] = here
                if let inner = layer as? Sequential, let found = walk(inner, here) { return found }
            }
            return nil
        }
        return walk(self, "")
    }()

    /// No forward to go back through, or what a child's backward would refuse.
    public func checkBackward() throws { try checkBackward(needsInputGradient: true) }

    /// The same, each child checked with whether its backward will be asked for its input's gradient.
    func checkBackward(needsInputGradient: Bool) throws {
        guard forwardDone else {
            throw DeviceError.invalidArgument(op: "Sequential.backward", "no forward to go back through: backward "
                + "was called before forward, twice after one, or after a forward that failed")
        }
        for (child, seen) in zip(children, childCallsSeen) {
            if child.forwards.value != seen.forwards {
                throw DeviceError.invalidArgument(op: "Sequential.backward", "layer \(child.path) (\(child.layer)) "
                    + "ran another forward since this model's — it is shared with another model or was called on its "
                    + "own — and its backward would read that forward's state: forward this model again, or give each "
                    + "use a layer of its own")
            }
            if let own = child.own, own.backwards.value != seen.backwards {
                throw DeviceError.invalidArgument(op: "Sequential.backward", "layer \(child.path) (\(child.layer)) "
                    + "went back through this model's forward already (loss.backward() went through it): forward "
                    + "this model again")
            }
        }
        for (index, layer) in layers.enumerated() {
            let needs = childNeedsInputGradient(index, needsInputGradient)
            if let byNeed = layer as? any ChecksBackwardByNeed {
                try byNeed.checkBackward(needsInputGradient: needs)
            } else {
                try layer.checkBackward()
            }
        }
    }

    /// Whether child `index`'s backward is asked for its input's gradient: no layer up to the first with parameters
    /// that train needs it, unless our caller asks for it (a CNN's first convolution sits behind ImageInput).
    private func childNeedsInputGradient(_ index: Int, _ needsInputGradient: Bool) -> Bool {
        // (Up to the first layer that trains: frozen layers in front of it — a frozen backbone — need none either.)
        let first = layers.firstIndex { $0.parameters.contains { !$0.isFrozen } } ?? layers.count
        return index > first || needsInputGradient
    }

    /// Runs the children's backward in reverse. Refused, before any gradient changes, without a forward that ran to
    /// its end since the last backward (a second backward would add the same gradients again), or when a child's
    /// backward would refuse (`checkBackward`).
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        try checkBackward(needsInputGradient: needsInputGradient)
        forwardDone = false
        var grad = dy
        for (index, layer) in layers.enumerated().reversed() {
            guard let next = try layer.countedBackward(grad, needsInputGradient: childNeedsInputGradient(
                index, needsInputGradient)) else {
                return nil
            }
            grad = next
        }
        return grad
    }

    /// In fp32 when any child's is.
    public var hasDoubleReference: Bool { layers.allSatisfy(\.hasDoubleReference) }

    public func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix {
        var rest = params[...]
        return layers.reduce(x) { x, layer in
            let n = layer.parameters.count
            defer { rest = rest.dropFirst(n) }
            return layer.referenceForward(x, Array(rest.prefix(n)))
        }
    }
}
