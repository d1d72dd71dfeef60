/// A stable 64-bit FNV-1a hash of bytes (Swift's hashValue changes between processes): cache keys, and the digests
/// that bind a training state to its checkpoint.
@_spi(CLI) public func fnv1a<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return hash
}

/// The same, of a string's UTF-8, in hex: for file names and cache keys.
func fnv1a(_ text: String) -> String { String(fnv1a(text.utf8), radix: 16) }
