// For the fuzz builds only: the checkpoint reader (CheckpointFormat.swift, LayerSpec.swift) needs Device's
// `Activation` for its names, and the fuzzer builds those files without the Device module. Same cases and raw values
// as Sources/Device/Ops/Activation.swift (FuzzShimTests.testTheFuzzersActivationNamesAreDevices checks).
public enum Activation: String, CaseIterable, Sendable {
    case relu
    case leakyReLU = "leaky-relu"
    case tanh
    case sigmoid
    case gelu
}
