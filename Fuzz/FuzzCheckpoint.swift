// libFuzzer entry point for the checkpoint reader: safetensors, then clnn's metadata (layer sizes, loss, classes,
// normalisation, image shape) and its agreement with the tensors present. Sizes in metadata come from the file, so
// this is where overflowing arithmetic or a metadata-sized allocation would show.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let vocabulary = Checkpoint.Vocabulary(lossOutputs: { name, classes in
        switch name {
        case "cross-entropy": return classes
        case "mse": return 1
        default: return nil
        }
    }, activations: ["relu", "tanh"])
    _ = try? Checkpoint.verified(bytes, path: "fuzz-input", vocabulary: vocabulary)
    return 0
}
