// libFuzzer entry point for the IDX/gzip reader. Built by Fuzz/run with the reader's sources as module NN.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // Any input may be rejected, but only with a thrown DataError: a trap or a sanitizer report is a finding.
    _ = try? IDX.decode(bytes, path: "fuzz-input")
    return 0
}
