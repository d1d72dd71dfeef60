import Foundation

/// One entry of a model's architecture, as one index of PyTorch's `nn.Sequential` (a layer, an activation, a
/// pooling, `flatten`), or — `image`, which takes no index — how the input's flat rows are read as images. A
/// checkpoint records the list (`clnn.architecture`, e.g. `linear(784,50),relu,linear(50,10)` or
/// `image(1,28,28),conv2d(1,32,3,p=1),relu,maxpool2d(2),…,flatten,linear(3136,128),relu,linear(128,10)`), so a model
/// is rebuilt exactly as it was trained, or a mismatch is named.
///
/// NOTE: this file and CheckpointFormat.swift need nothing but `Activation` and `Window2d`, so the fuzzer builds them
/// alone (Fuzz/run, with Fuzz/ActivationNames.swift standing in for Device's enum and Device's Window2d.swift).
public enum LayerSpec: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// `nn.Linear(inFeatures, outFeatures)`; the weight and bias are `N.weight` [out, in] and `N.bias` [out].
    case linear(inFeatures: Int, outFeatures: Int)
    /// An activation module (no parameters).
    case activation(Activation)
    /// The input's flat rows read as images [channels, height, width] (`ImageInput`); first, and takes no index.
    case image(channels: Int, height: Int, width: Int)
    /// `nn.Conv2d(inChannels, outChannels, …)` of one group: `N.weight` [out, in, kh, kw] and, with `bias`, `N.bias`.
    case conv2d(inChannels: Int, outChannels: Int, window: Window2d, bias: Bool)
    /// `nn.BatchNorm2d(features)` (`twoD`) or `nn.BatchNorm1d(features)`: `N.weight`, `N.bias`, `N.running_mean`,
    /// `N.running_var` [features] and `N.num_batches_tracked` [] (an int64).
    case batchNorm(features: Int, twoD: Bool, eps: Float, momentum: Float)
    /// `nn.MaxPool2d`.
    case maxPool2d(Window2d)
    /// `nn.AvgPool2d` (the padding's zeros counted, PyTorch's default).
    case avgPool2d(Window2d)
    /// `nn.AdaptiveAvgPool2d(1)`: each channel's mean.
    case globalAvgPool2d
    /// `nn.Dropout(p)`.
    case dropout(p: Float)
    /// `nn.Flatten()`.
    case flatten

    /// PyTorch's batch norm defaults.
    public static let batchNormEps: Float = 1e-5, batchNormMomentum: Float = 0.1

    /// `linear(784,50)`, `relu`, `conv2d(1,32,3,p=1)`, `batchnorm2d(32)`, `maxpool2d(2)`, …: what `init(parsing:)`
    /// reads. Values at their defaults are left out (a convolution's stride 1, padding 0, dilation 1; a pooling's
    /// stride, which is its kernel).
    public var description: String {
        func size(_ h: Int, _ w: Int) -> String { h == w ? "\(h)" : "\(h)x\(w)" }
        func options(_ window: Window2d, stride defaultStride: (Int, Int)) -> String {
            var out = ""
            if (window.strideHeight, window.strideWidth) != defaultStride {
                out += ",s=" + size(window.strideHeight, window.strideWidth)
            }
            if window.paddingHeight != 0 || window.paddingWidth != 0 {
                out += ",p=" + size(window.paddingHeight, window.paddingWidth)
            }
            if window.dilationHeight != 1 || window.dilationWidth != 1 {
                out += ",d=" + size(window.dilationHeight, window.dilationWidth)
            }
            return out
        }
        switch self {
        case let .linear(i, o): return "linear(\(i),\(o))"
        case let .activation(f): return f.rawValue
        case let .image(c, h, w): return "image(\(c),\(h),\(w))"
        case let .conv2d(i, o, window, bias):
            return "conv2d(\(i),\(o),\(size(window.kernelHeight, window.kernelWidth))"
                + options(window, stride: (1, 1)) + (bias ? "" : ",bias=false") + ")"
        case let .batchNorm(features, twoD, eps, momentum):
            return "batchnorm\(twoD ? "2d" : "1d")(\(features)" + (eps == Self.batchNormEps ? "" : ",eps=\(eps)")
                + (momentum == Self.batchNormMomentum ? "" : ",momentum=\(momentum)") + ")"
        case let .maxPool2d(window):
            return "maxpool2d(\(size(window.kernelHeight, window.kernelWidth))"
                + options(window, stride: (window.kernelHeight, window.kernelWidth)) + ")"
        case let .avgPool2d(window):
            return "avgpool2d(\(size(window.kernelHeight, window.kernelWidth))"
                + options(window, stride: (window.kernelHeight, window.kernelWidth)) + ")"
        case .globalAvgPool2d: return "adaptiveavgpool2d(1)"
        case let .dropout(p): return "dropout(\(p))"
        case .flatten: return "flatten"
        }
    }

    /// How many `nn.Sequential` indices the entry takes: 1, or 0 for `image`.
    public var indexWidth: Int { if case .image = self { return 0 } else { return 1 } }

    /// Parses one entry as `description` writes it (every size given); nil when it is not one.
    public init?(parsing text: Substring) {
        guard let call = Call(text) else { return nil }
        guard let spec = try? Self.exact(call) else { return nil }
        self = spec
    }

    /// The entry a fully given call spells, or nil for another name; throws a message for a known name with wrong
    /// arguments.
    static func exact(_ call: Call) throws -> LayerSpec? {
        switch call.name {
        case "linear":
            try call.expect(positional: 2...2)
            return .linear(inFeatures: try call.size(0), outFeatures: try call.size(1))
        case "image":
            try call.expect(positional: 3...3)
            return .image(channels: try call.size(0), height: try call.size(1), width: try call.size(2))
        case "conv2d":
            try call.expect(positional: 3...3, named: ["s", "p", "d", "bias"])
            return .conv2d(inChannels: try call.size(0), outChannels: try call.size(1),
                           window: try call.window(kernel: 2, defaultStride: (1, 1)), bias: try call.flag("bias") ?? true)
        case "batchnorm1d", "batchnorm2d":
            try call.expect(positional: 1...1, named: ["eps", "momentum"])
            return try call.batchNorm(features: try call.size(0), twoD: call.name == "batchnorm2d")
        case "maxpool2d":
            try call.expect(positional: 1...1, named: ["s", "p", "d"])
            return .maxPool2d(try call.pooling(kernel: 0))
        case "avgpool2d":
            try call.expect(positional: 1...1, named: ["s", "p"])
            return .avgPool2d(try call.pooling(kernel: 0))
        case "adaptiveavgpool2d":
            try call.expect(positional: 1...1)
            guard try call.size(0) == 1 else { throw Mismatch("\(call.name) supports an output size of 1 only") }
            return .globalAvgPool2d
        case "dropout":
            try call.expect(positional: 1...1)
            return .dropout(p: try call.probability(0))
        case "flatten":
            try call.expect(positional: 0...0)
            return .flatten
        default:
            guard let f = Activation(rawValue: call.name) else { return nil }
            try call.expect(positional: 0...0)
            return .activation(f)
        }
    }

    /// An architecture as a checkpoint writes it: the entries' descriptions joined by commas.
    public static func text(_ specs: [LayerSpec]) -> String { specs.map(\.description).joined(separator: ",") }

    /// Parses an architecture as `text` writes it (entries may also be separated by spaces).
    /// - Throws: `Mismatch` naming the entry and what is wrong.
    public static func parse(_ text: String) throws -> [LayerSpec] {
        let calls = try Call.entries(text)
        return try calls.enumerated().map { i, call in
            do {
                guard let spec = try exact(call) else {
                    throw Mismatch("is not a layer CLNN knows (linear(IN,OUT), conv2d(IN,OUT,K,…), batchnorm1d(F), "
                        + "batchnorm2d(F), maxpool2d(K,…), avgpool2d(K,…), adaptiveavgpool2d(1), dropout(P), flatten, "
                        + "image(C,H,W) or an activation: "
                        + "\(Activation.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return spec
            } catch let error as Mismatch {
                throw Mismatch("entry \(i) '\(call.text.prefix(80))' \(error.message)")
            }
        }
    }

    /// The layer sizes of an MLP's architecture: `[inputs, hidden..., outputs]`, from its linear entries.
    public static func sizes(_ specs: [LayerSpec]) -> [Int] {
        var sizes: [Int] = []
        for case let .linear(i, o) in specs {
            if sizes.isEmpty { sizes.append(i) }
            sizes.append(o)
        }
        return sizes
    }

    /// Whether `specs` is a stack of linear layers and activations (an MLP, which older checkpoints describe by
    /// `clnn.sizes` alone).
    public static func isMLP(_ specs: [LayerSpec]) -> Bool {
        specs.allSatisfy { if case .linear = $0 { return true } else if case .activation = $0 { return true }
                           else { return false } }
    }

    /// The architecture `MLP.make(sizes:activation:)` builds.
    public static func mlp(sizes: [Int], activation: Activation) -> [LayerSpec] {
        var specs: [LayerSpec] = []
        for i in 0..<max(sizes.count - 1, 0) {
            if i > 0 { specs.append(.activation(activation)) }
            specs.append(.linear(inFeatures: sizes[i], outFeatures: sizes[i + 1]))
        }
        return specs
    }

    /// The state-dict names and PyTorch shapes of the tensors of `specs` (`N.weight` [out, in] of a linear entry N,
    /// [out, in, kh, kw] of a convolution, a batch norm's running statistics and its `num_batches_tracked` [], …),
    /// with whether each is an int64 counter.
    public static func tensorShapes(_ specs: [LayerSpec]) -> [(name: String, shape: [Int], isCounter: Bool)] {
        var index = 0
        var shapes: [(name: String, shape: [Int], isCounter: Bool)] = []
        for spec in specs {
            func add(_ name: String, _ shape: [Int], counter: Bool = false) {
                shapes.append(("\(index).\(name)", shape, counter))
            }
            switch spec {
            case let .linear(i, o):
                add("weight", [o, i])
                add("bias", [o])
            case let .conv2d(i, o, window, bias):
                add("weight", [o, i, window.kernelHeight, window.kernelWidth])
                if bias { add("bias", [o]) }
            case let .batchNorm(features, _, _, _):
                for name in ["weight", "bias", "running_mean", "running_var"] { add(name, [features]) }
                add("num_batches_tracked", [], counter: true)
            default: break
            }
            index += spec.indexWidth
        }
        return shapes
    }

    /// The input one example of `specs` takes: [C, H, W] after an `image` entry, else [F] with F the first linear
    /// entry's inputs; nil when neither says (a convolution needs an `image` entry before it).
    public static func inputShape(_ specs: [LayerSpec]) -> [Int]? {
        if case let .image(c, h, w)? = specs.first { return [c, h, w] }
        for spec in specs {
            switch spec {
            case let .linear(i, _): return [i]
            case .activation, .dropout, .flatten: continue
            default: return nil
            }
        }
        return nil
    }

    /// The shape of one example after each entry of `specs`, from `input` (by default `inputShape`): where sizes do
    /// not chain (channels, widths), a window does not fit, or the model does not end flat (unless `endsFlat` is
    /// false), the error names the entry and both sizes.
    public static func shapes(_ specs: [LayerSpec], input: [Int]? = nil, endsFlat: Bool = true) throws -> [[Int]] {
        guard var shape = input ?? inputShape(specs) else {
            throw Mismatch(specs.isEmpty ? "has no entries"
                : "does not say its input: an architecture with convolutions or pooling starts with image(C,H,W)")
        }
        var shapes: [[Int]] = []
        func fail(_ i: Int, _ spec: LayerSpec, _ what: String) -> Mismatch {
            Mismatch("entry \(i) \(spec) \(what)", entry: i, detail: what)
        }
        func image(_ i: Int, _ spec: LayerSpec) throws -> (c: Int, h: Int, w: Int) {
            guard shape.count == 3 else {
                throw fail(i, spec, "needs images [C, H, W] but the entry before gives \(shape)")
            }
            return (shape[0], shape[1], shape[2])
        }
        func slide(_ i: Int, _ spec: LayerSpec, _ window: Window2d, channels: Int) throws -> [Int] {
            let (_, h, w) = try image(i, spec)
            guard let oh = window.outputLength(h, alongHeight: true),
                  let ow = window.outputLength(w, alongHeight: false) else {
                throw fail(i, spec, "has a window larger than its padded input \(shape)")
            }
            return [channels, oh, ow]
        }
        for (i, spec) in specs.enumerated() {
            switch spec {
            case let .image(c, h, w):
                guard i == 0 else { throw fail(i, spec, "must come first (it says how the input is read)") }
                shape = [c, h, w]
            case let .linear(inputs, outputs):
                guard shape == [inputs] else {
                    throw fail(i, spec, shape.count == 1 ? "takes \(inputs) inputs but the entry before gives "
                        + "\(shape[0])" : "takes \(inputs) inputs but gets \(shape) (a flatten before it?)")
                }
                shape = [outputs]
            case let .conv2d(inputs, outputs, window, _):
                let (c, _, _) = try image(i, spec)
                guard c == inputs else {
                    throw fail(i, spec, "takes \(inputs) channels but the entry before gives \(c)")
                }
                shape = try slide(i, spec, window, channels: outputs)
            case let .batchNorm(features, twoD, _, _):
                let channels = twoD ? (try image(i, spec)).c : shape[0]
                guard twoD || shape.count <= 2, channels == features else {
                    throw fail(i, spec, "normalises \(features) \(twoD ? "channels" : "features") but the entry "
                        + "before gives \(shape)")
                }
            case let .maxPool2d(window), let .avgPool2d(window):
                guard 2 * window.paddingHeight <= window.kernelHeight, 2 * window.paddingWidth <= window.kernelWidth
                else { throw fail(i, spec, "pads by more than half its kernel (PyTorch's limit)") }
                shape = try slide(i, spec, window, channels: (try image(i, spec)).c)
            case .globalAvgPool2d:
                shape = [(try image(i, spec)).c, 1, 1]
            case .activation, .dropout: break
            case .flatten:
                shape = [shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }]
            }
            guard shape.allSatisfy({ (1..<(1 << 31)).contains($0) }) else {
                throw fail(i, spec, "gives \(shape), more than a tensor holds")
            }
            shapes.append(shape)
        }
        guard shape.count == 1 || !endsFlat else {
            throw Mismatch("ends with \(shape) per example; a classifier ends flat (flatten, linear)")
        }
        return shapes
    }

    /// What is wrong with an architecture, in words (the caller names the file or option).
    public struct Mismatch: Error, CustomStringConvertible {
        /// The words.
        public let message: String
        /// The entry at fault, when one is, and what is wrong with it (the message without the entry's name).
        public let entry: Int?, detail: String
        init(_ message: String, entry: Int? = nil, detail: String? = nil) {
            (self.message, self.entry, self.detail) = (message, entry, detail ?? message)
        }
        public var description: String { message }
    }

    /// One entry of an architecture's text: `name` or `name(arguments)`, the arguments positional (`32`, `3x5`) or
    /// named (`p=1`).
    struct Call {
        /// The entry as written.
        let text: Substring
        /// The name, lowercased.
        private(set) var name: String
        /// The positional arguments, in order.
        let positional: [Substring]
        /// The named arguments.
        let named: [String: Substring]

        /// The same arguments under another name.
        func renamed(_ name: String) -> Call {
            var call = self
            call.name = name
            return call
        }

        /// Parses `name` or `name(a,b,k=v)`; nil when it is neither.
        init?(_ text: Substring) {
            self.text = text
            guard let open = text.firstIndex(of: "(") else {
                guard !text.isEmpty, text.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
                else { return nil }
                (name, positional, named) = (text.lowercased(), [], [:])
                return
            }
            guard text.hasSuffix(")"), open > text.startIndex else { return nil }
            name = text[..<open].lowercased()
            var positional: [Substring] = [], named: [String: Substring] = [:]
            let inside = text[text.index(after: open)..<text.index(before: text.endIndex)]
            if !inside.isEmpty {
                for argument in inside.split(separator: ",", omittingEmptySubsequences: false) {
                    let argument = Substring(argument.trimmingCharacters(in: .whitespaces))
                    if let equals = argument.firstIndex(of: "=") {
                        let key = argument[..<equals].lowercased()
                        guard named[key] == nil else { return nil }
                        named[key] = argument[argument.index(after: equals)...]
                    } else {
                        guard named.isEmpty else { return nil }  // positional after named
                        positional.append(argument)
                    }
                }
            }
            (self.positional, self.named) = (positional, named)
        }

        /// The entries of an architecture's text: split at commas and spaces outside parentheses.
        static func entries(_ text: String) throws -> [Call] {
            guard text.count <= 16_384 else { throw Mismatch("is \(text.count) characters; at most 16384") }
            var entries: [Substring] = []
            var depth = 0, start = text.startIndex
            for index in text.indices {
                switch text[index] {
                case "(": depth += 1
                case ")":
                    depth -= 1
                    guard depth >= 0 else { throw Mismatch("has a ')' without its '('") }
                case ",", " ", "\n", "\t":
                    guard depth == 0 else { break }
                    if start < index { entries.append(text[start..<index]) }
                    start = text.index(after: index)
                default: break
                }
            }
            guard depth == 0 else { throw Mismatch("has a '(' that is not closed") }
            if start < text.endIndex { entries.append(text[start...]) }
            guard entries.count <= 256 else { throw Mismatch("has \(entries.count) entries; at most 256") }
            return try entries.enumerated().map { i, entry in
                guard let call = Call(entry) else {
                    throw Mismatch("entry \(i) '\(entry.prefix(80))' is not NAME or NAME(ARGUMENTS) (positional "
                        + "arguments first, each named one once)")
                }
                return call
            }
        }

        /// Throws unless the call has a count of positional arguments in `positional` and only `named` names.
        func expect(positional counts: ClosedRange<Int>, named names: Set<String> = []) throws {
            guard counts.contains(positional.count) else {
                throw Mismatch("takes " + (counts.lowerBound == counts.upperBound ? "\(counts.lowerBound)"
                    : "\(counts.lowerBound) to \(counts.upperBound)") + " positional arguments, got \(positional.count)")
            }
            if let unknown = Set(named.keys).subtracting(names).sorted().first {
                throw Mismatch("has no option '\(unknown.prefix(20))'"
                    + (names.isEmpty ? "" : " (it takes \(names.sorted().joined(separator: ", ")))"))
            }
        }

        /// A whole number in `range` from `text`.
        static func number(_ text: Substring, _ range: ClosedRange<Int>, _ what: String) throws -> Int {
            guard let value = Int(text), range.contains(value) else {
                throw Mismatch("has \(what) '\(text.prefix(20))', not a whole number in "
                    + "\(range.lowerBound)...\(range.upperBound)")
            }
            return value
        }

        /// Positional argument `i` as a size in 1...2²⁰ − 1.
        func size(_ i: Int) throws -> Int { try Call.number(positional[i], 1...((1 << 20) - 1), "size") }

        /// `3` or `3x5`: (height, width), each in `range`.
        static func pair(_ text: Substring, _ range: ClosedRange<Int>, _ what: String) throws -> (Int, Int) {
            let parts = text.split(separator: "x", omittingEmptySubsequences: false)
            let values = parts.compactMap { Int($0) }.filter(range.contains)
            guard parts.count <= 2, values.count == parts.count else {
                // (The whole text: '1x' is named as given, not as its empty second half.)
                throw Mismatch("has \(what) '\(text.prefix(20))', not "
                    + (parts.count == 1 ? "a whole number" : "N or HxW, each a whole number")
                    + " in \(range.lowerBound)...\(range.upperBound)")
            }
            return (values[0], values.last!)
        }

        /// A window whose kernel is positional argument `kernel`, with `s=`, `p=` and `d=`; the stride `defaultStride`
        /// when not given (nil: the kernel's).
        func window(kernel: Int, defaultStride: (Int, Int)?) throws -> Window2d {
            let limit = 1 << 20
            let k = try Call.pair(positional[kernel], 1...limit, "kernel")
            let s = try named["s"].map { try Call.pair($0, 1...limit, "stride") } ?? defaultStride ?? k
            let p = try named["p"].map { try Call.pair($0, 0...limit, "padding") } ?? (0, 0)
            let d = try named["d"].map { try Call.pair($0, 1...limit, "dilation") } ?? (1, 1)
            return Window2d(kernel: k, stride: s, padding: p, dilation: d)
        }

        /// A pooling window: stride the kernel's unless given.
        func pooling(kernel: Int) throws -> Window2d { try window(kernel: kernel, defaultStride: nil) }

        /// `name=true|false` (also 1|0), or nil when absent.
        func flag(_ name: String) throws -> Bool? {
            guard let text = named[name] else { return nil }
            switch text.lowercased() {
            case "true", "1": return true
            case "false", "0": return false
            default: throw Mismatch("has \(name)='\(text.prefix(20))', not true or false")
            }
        }

        /// Positional argument `i` as a probability in 0...1.
        func probability(_ i: Int) throws -> Float {
            guard let p = Float(positional[i]), p >= 0, p <= 1 else {
                throw Mismatch("has p '\(positional[i].prefix(20))', not a probability in 0...1")
            }
            return p
        }

        /// A batch norm with `eps=` (0...1) and `momentum=` (0...1) when given.
        func batchNorm(features: Int, twoD: Bool) throws -> LayerSpec {
            func value(_ name: String, _ fallback: Float) throws -> Float {
                guard let text = named[name] else { return fallback }
                guard let v = Float(text), v >= 0, v <= 1 else {
                    throw Mismatch("has \(name)='\(text.prefix(20))', not a number in 0...1")
                }
                return v
            }
            return .batchNorm(features: features, twoD: twoD, eps: try value("eps", LayerSpec.batchNormEps),
                              momentum: try value("momentum", LayerSpec.batchNormMomentum))
        }
    }
}
