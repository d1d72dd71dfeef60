extension LayerSpec {
    /// The modules for `specs`: each linear entry followed by an activation becomes one `Linear` with that activation
    /// fused (the same two indices, as PyTorch counts them); any other activation becomes an `ActivationLayer`; the
    /// rest their layers (`Conv2d`, `BatchNorm2d`, `MaxPool2d`, `Flatten`, `ImageInput`, …).
    /// The k-th layer with weights draws them from `seed + k` (as `MLP.make` draws its layers'), a dropout its masks
    /// from a stream of its own.
    /// - Throws: `DeviceError.invalidArgument` naming the entry whose sizes do not chain (when the entries say their
    ///   input: a first linear or image entry), before anything is built.
    public static func modules(_ specs: [LayerSpec], initializer: Initializer = .kaimingNormal(), seed: UInt64,
                               on device: DeviceTag) throws -> Sequential {
        if inputShape(specs) != nil {
            do { _ = try shapes(specs, endsFlat: false) } catch let error as Mismatch {
                throw DeviceError.invalidArgument(op: "LayerSpec.modules", "the architecture \(error.message)")
            }
        }
        var layers: [any Module] = []
        var index = 0, weighted: UInt64 = 0
        func nextSeed() -> UInt64 {
            defer { weighted += 1 }
            return seed &+ weighted
        }
        while index < specs.count {
            var width = 1
            switch specs[index] {
            case let .linear(i, o):
                var fused: Activation?
                if index + 1 < specs.count, case let .activation(f) = specs[index + 1] { fused = f }
                layers.append(try Linear(i, o, activation: fused, initializer: initializer, seed: nextSeed(),
                                         on: device))
                width = fused == nil ? 1 : 2
            case let .activation(f): layers.append(ActivationLayer(f))
            case let .image(c, h, w): layers.append(try ImageInput(channels: c, height: h, width: w))
            case let .conv2d(i, o, window, bias):
                layers.append(try Conv2d(i, o, window: window, bias: bias, initializer: initializer, seed: nextSeed(),
                                         on: device))
            case let .batchNorm(features, twoD, eps, momentum):
                layers.append(twoD ? try BatchNorm2d(features, eps: eps, momentum: momentum, on: device)
                                   : try BatchNorm1d(features, eps: eps, momentum: momentum, on: device))
            case let .maxPool2d(window): layers.append(MaxPool2d(window))
            case let .avgPool2d(window): layers.append(AvgPool2d(window))
            case .globalAvgPool2d: layers.append(try AdaptiveAvgPool2d(1))
            case let .dropout(p):
                layers.append(try Dropout(p, seed: Sequential.streamSeed(Sequential.streamSeed(run: seed),
                                                                         child: index)))
            case .flatten: layers.append(Flatten())
            }
            index += width
        }
        return Sequential(layers)
    }
}

extension LayerSpec {
    /// Checks, before anything is allocated, that a model of `specs` fits `device` when run on batches of up to
    /// `rows` examples: its sizes chain (`shapes`), every activation (and a convolution's unfolded input, `im2col`)
    /// fits one tensor, and parameters, gradients, optimiser state and activations fit its memory. An MLP's check is
    /// `MLP.checkFits`.
    /// - Throws: `DeviceError.invalidArgument` naming the entry and the sizes.
    /// With `training` false, only the values and a forward pass's largest activations are counted (evaluation).
    public static func checkFits(_ specs: [LayerSpec], rows: Int, on device: DeviceTag, training: Bool = true) throws {
        if isMLP(specs) {
            try MLP.checkFits(sizes: sizes(specs), rows: rows, on: device, training: training)
            return
        }
        let shapes: [[Int]]
        do { shapes = try self.shapes(specs) } catch let error as Mismatch {
            throw DeviceError.invalidArgument(op: "model", "the architecture \(error.message)")
        }
        let maxElements = Double(min(Int(Int32.max), device.memoryLimits.maxBuffer / 4))
        var input = Double(inputShape(specs)?.reduce(1, *) ?? 0)
        var activations = 0.0, largest = 0.0
        for (i, (spec, shape)) in zip(specs, shapes).enumerated() {
            var tensors = [("its output", Double(rows) * Double(shape.reduce(1, *)))]
            if case let .conv2d(c, _, window, _) = spec {
                // im2col: [C·kh·kw, N·OH·OW].
                tensors.append(("its unfolded input", Double(c * window.kernelHeight * window.kernelWidth)
                                * Double(rows) * Double(shape[1] * shape[2])))
            }
            for (what, count) in tensors where count > maxElements {
                throw DeviceError.invalidArgument(op: "model", "entry \(i) \(spec) needs \(what) of "
                    + String(format: "%.0f", count) + " elements on batches of \(rows); \(device) allows at most "
                    + "\(Int(maxElements)) per tensor")
            }
            let step = tensors.reduce(0) { $0 + $1.1 }
            activations += step
            largest = max(largest, input * Double(rows) + step)
            input = Double(shape.reduce(1, *))
        }
        let parameters = tensorShapes(specs).reduce(0.0) { $0 + Double($1.shape.reduce(1, *)) }
        // Training: values, gradients, optimiser state; every activation kept for backward and its gradient.
        let bytes = training ? 4 * (3 * parameters + 2 * activations) : 4 * (parameters + largest)
        let memory = Double(device.memoryLimits.total)
        if bytes > memory {
            throw DeviceError.invalidArgument(op: "model", "\(text(specs).prefix(200)) needs about "
                + "\(HostMemory.gib(bytes)) for \(training ? "training" : "evaluation") on batches of \(rows) but "
                + "\(device) can give \(HostMemory.gib(memory))")
        }
    }
}
