// libFuzzer entry point for the safetensors reader.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // Any input may be rejected, but only with a thrown DataError: a trap or a sanitizer report is a finding.
    _ = try? SafeTensors.decode(bytes, path: "fuzz-input")
    return 0
}
