/// One entry of a model's architecture, as one index of PyTorch's `nn.Sequential`: a linear layer or an
/// activation. A checkpoint records the list (`clnn.architecture`, e.g. `linear(784,50),relu,linear(50,10)`), so a
/// model is rebuilt exactly as it was trained, or a mismatch is named.
///
/// NOTE: this file and CheckpointFormat.swift need nothing but `Activation`, so the fuzzer builds them alone
/// (Fuzz/run, with Fuzz/ActivationNames.swift standing in for Device's enum).
public enum LayerSpec: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// `nn.Linear(inFeatures, outFeatures)`; the weight and bias are `N.weight` [out, in] and `N.bias` [out].
    case linear(inFeatures: Int, outFeatures: Int)
    /// An activation module (no parameters).
    case activation(Activation)

    /// `linear(784,50)`, `relu`, `tanh`, ...
    public var description: String {
        switch self {
        case let .linear(i, o): return "linear(\(i),\(o))"
        case let .activation(f): return f.rawValue
        }
    }

    /// Parses one entry as `description` writes it; nil when it is not one.
    public init?(parsing text: Substring) {
        if let f = Activation(rawValue: String(text)) {
            self = .activation(f)
            return
        }
        guard text.hasPrefix("linear("), text.hasSuffix(")") else { return nil }
        let sizes = text.dropFirst(7).dropLast().split(separator: ",", omittingEmptySubsequences: false)
        guard sizes.count == 2, let i = Int(sizes[0]), let o = Int(sizes[1]) else { return nil }
        self = .linear(inFeatures: i, outFeatures: o)
    }

    /// An architecture as a checkpoint writes it: the entries' descriptions joined by commas.
    public static func text(_ specs: [LayerSpec]) -> String { specs.map(\.description).joined(separator: ",") }

    /// The layer sizes of an MLP's architecture: `[inputs, hidden..., outputs]`, from its linear entries.
    public static func sizes(_ specs: [LayerSpec]) -> [Int] {
        var sizes: [Int] = []
        for case let .linear(i, o) in specs {
            if sizes.isEmpty { sizes.append(i) }
            sizes.append(o)
        }
        return sizes
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
}
