/// Architectures as a user writes them (`clnn train --arch`): a preset name, or entries in the order of PyTorch's
/// `nn.Sequential`, separated by spaces or commas, each size that the entry before implies left out:
///
/// ```text
/// conv(32,3,p=1) bn relu maxpool(2) conv(64,3,p=1) bn relu maxpool(2) flatten linear(128) relu linear(10)
/// ```
///
/// `conv(OUT,K[,s=S][,p=P][,d=D][,bias=false])` (K, S, P, D as `3` or `3x5`), `linear(OUT)` (also `fc`), `bn` (1d or
/// 2d from its input), `maxpool(K[,s=S][,p=P][,d=D])`, `avgpool(K[,s=S][,p=P])`, `gap` (global average pooling),
/// `dropout` (p 0.5) or `dropout(P)`, `flatten`, an activation, and an optional first `image(C,H,W)` (otherwise the
/// data's images, one channel). Every entry of a checkpoint's `clnn.architecture` (`conv2d(1,32,3,p=1)`,
/// `batchnorm2d(32)`, …) is accepted as well.
extension LayerSpec {
    /// The presets `clnn train --arch` names: `mlp` (shaped by `--hidden` and `--activation`, built elsewhere),
    /// `cnn` and `cnn-bn` (`CNN.Kind`).
    public static let presets = ["mlp"] + CNN.Kind.allCases.map(\.rawValue)

    /// What `--arch` gives over examples of `input` ([C, H, W] or [F]): a preset's entries (`cnn`, `cnn-bn`, ending in
    /// `outputs`) or those `text` spells (`resolve`); nil for `mlp`, which `--hidden` and `--activation` shape.
    /// - Throws: `Mismatch` naming the entry and what is wrong, and the input it was read over.
    public static func requested(_ text: String, input: [Int], outputs: Int) throws -> [LayerSpec]? {
        guard text != "mlp" else { return nil }
        do {
            return try resolve(CNN.Kind(rawValue: text).map { CNN.text($0, classes: outputs) } ?? text, input: input)
        } catch let error as Mismatch {
            throw Mismatch("\(error.message) (over examples of \(input.map(String.init).joined(separator: "×")))")
        }
    }

    /// The entries `text` spells over examples of `input` ([C, H, W] images, or [F] values), each size its input
    /// implies filled in, checked to chain (`shapes`).
    /// - Throws: `Mismatch` naming the entry and what is wrong.
    public static func resolve(_ text: String, input: [Int]) throws -> [LayerSpec] {
        let calls = try Call.entries(text)
        guard !calls.isEmpty else { throw Mismatch("has no entries") }
        var specs: [LayerSpec] = []
        var shape = input
        // Flat input for a model that starts with a linear layer; images for any other.
        if input.count == 3, let first = calls.first, first.name != "image",
           ["linear", "fc"].contains(first.name) {
            shape = [input.reduce(1, *)]
        }
        if shape.count == 3, calls.first?.name != "image" {
            specs.append(.image(channels: shape[0], height: shape[1], width: shape[2]))
        }
        let start = shape
        for (i, call) in calls.enumerated() {
            do {
                let spec = try entry(call, shape: shape, first: i == 0)
                specs.append(spec)
                shape = try shapes(specs, input: start, endsFlat: false).last ?? start
            } catch let error as Mismatch {
                // Named by the user's own entry (the walk counts an image entry this function may have added).
                throw Mismatch("entry \(i) '\(call.text.prefix(80))' \(error.detail)")
            }
        }
        _ = try shapes(specs)
        return specs
    }

    /// One entry over an input of `shape`.
    private static func entry(_ call: Call, shape: [Int], first: Bool) throws -> LayerSpec {
        let channels = shape.first ?? 0
        switch (call.name, call.positional.count) {
        case ("conv", 2), ("conv2d", 2):
            try call.expect(positional: 2...2, named: ["s", "p", "d", "bias"])
            return .conv2d(inChannels: channels, outChannels: try call.size(0),
                           window: try call.window(kernel: 1, defaultStride: (1, 1)), bias: try call.flag("bias") ?? true)
        case ("linear", 1), ("fc", 1):
            guard shape.count == 1 else {
                throw Mismatch("takes flat input but gets \(shape) (a flatten before it?)")
            }
            return .linear(inFeatures: channels, outFeatures: try call.size(0))
        case ("bn", _), ("batchnorm", _), ("bn1d", _), ("bn2d", _):
            try call.expect(positional: 0...1, named: ["eps", "momentum"])
            let twoD = call.name == "bn2d" || (call.name != "bn1d" && shape.count == 3)
            return try call.batchNorm(features: call.positional.isEmpty ? channels : try call.size(0), twoD: twoD)
        case ("gap", _), ("globalavgpool", _):
            try call.expect(positional: 0...0)
            return .globalAvgPool2d
        case ("dropout", 0):
            try call.expect(positional: 0...0)
            return .dropout(p: 0.5)
        case ("linear", let n) where n != 2, ("fc", let n) where n != 2:
            throw Mismatch("takes linear(OUT) (its inputs are what the layer before gives) or linear(IN,OUT), "
                + "got \(n) arguments")
        case ("conv", let n) where n != 3, ("conv2d", let n) where n != 3:
            throw Mismatch("takes conv(OUT,K[,s=S][,p=P][,d=D]) (its input channels are what the layer before "
                + "gives) or conv(IN,OUT,K,…), got \(n) positional arguments")
        case ("image", _) where !first:
            throw Mismatch("must come first (it says how the input is read)")
        default:
            let exactName = ["conv": "conv2d", "fc": "linear", "maxpool": "maxpool2d", "avgpool": "avgpool2d"]
            guard let spec = try exact(call.renamed(exactName[call.name] ?? call.name)) else {
                throw Mismatch("is not a layer CLNN knows: conv(OUT,K,…), linear(OUT), bn, maxpool(K,…), "
                    + "avgpool(K,…), gap, dropout(P), flatten, image(C,H,W) or an activation "
                    + "(\(Activation.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            if case let .image(c, h, w) = spec {
                // (First: how the data's values are read, as many as each example has.)
                // (Each size is below 2²⁰: the product cannot overflow.)
                let has = shape.reduce(1, *)
                guard c * h * w == has else {
                    throw Mismatch("reads images of \(c)·\(h)·\(w) = \(c * h * w) values, but the data's examples "
                        + "have \(has)")
                }
                // Data that knows its images' shape (an IDX file of [N, rows, columns]) is read with its own row
                // width (C planes of H rows stacked as the file's rows is the same layout), not rows of another
                // width that happen to hold as many values.
                guard shape.count != 3 || w == shape[2] else {
                    throw Mismatch("reads images of \(c)×\(h)×\(w), but the data's are "
                        + "\(shape.map(String.init).joined(separator: "×")) (channels × rows × columns)")
                }
            }
            return spec
        }
    }
}
