import CZlib
import Foundation

/// An array read from an IDX file (the MNIST format): unsigned bytes with their dimensions.
public struct IDXArray: Equatable, Sendable {
    public let dims: [Int]
    public let bytes: [UInt8]

    public init(dims: [Int], bytes: [UInt8]) {
        self.dims = dims
        self.bytes = bytes
    }
}

/// Reads IDX files, gzip-compressed (`.gz`) or plain. Only the unsigned-byte type is accepted, as in MNIST:
/// magic 0x00000801 (one dimension, labels) or 0x00000803 (three dimensions, images).
public enum IDX {
    /// The largest decompressed file accepted, so a corrupt or hostile `.gz` cannot exhaust memory.
    public static let maxBytes = 1 << 31

    public static func read(_ path: String) throws -> IDXArray {
        try parse(try readDecompressed(path), path: path)
    }

    /// The bytes of `path`, decompressed if gzip (zlib reads plain files as they are).
    static func readDecompressed(_ path: String) throws -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError(path, "no such file")
        }
        guard !isDirectory.boolValue else { throw DataError(path, "is a folder, not a file") }
        guard let file = gzopen(path, "rb") else {
            throw DataError(path, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { gzclose_r(file) }
        gzbuffer(file, 1 << 17)
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
            if n < 0 { throw DataError(path, "cannot decompress: \(gzErrorMessage(file))") }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<Int(n)])
            if out.count > maxBytes { throw DataError(path, "larger than \(maxBytes) bytes once decompressed") }
        }
        var code: Int32 = 0
        let message = String(cString: gzerror(file, &code))
        // NOTE: a truncated .gz ends with Z_BUF_ERROR ("unexpected end of file") rather than a failed read.
        if code != Z_OK && code != Z_STREAM_END { throw DataError(path, "cannot decompress: \(message)") }
        return out
    }

    private static func gzErrorMessage(_ file: gzFile) -> String {
        var code: Int32 = 0
        return String(cString: gzerror(file, &code))
    }

    /// Parses the IDX header and checks the dimensions against the payload size.
    public static func parse(_ data: [UInt8], path: String) throws -> IDXArray {
        guard !data.isEmpty else { throw DataError(path, "empty file") }
        guard data.count >= 4 else { throw DataError(path, "too short for an IDX header (\(data.count) bytes)") }
        let magic = data[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard magic == 0x0000_0801 || magic == 0x0000_0803 else {
            throw DataError(path, String(format: "not an unsigned-byte IDX file: magic 0x%08X, expected 0x00000801 or 0x00000803", magic))
        }
        let rank = Int(magic & 0xFF)
        let headerSize = 4 + 4 * rank
        guard data.count >= headerSize else {
            throw DataError(path, "truncated IDX header: \(data.count) bytes, the header needs \(headerSize)")
        }
        var dims: [Int] = []
        var expected = 1
        for d in 0..<rank {
            let start = 4 + 4 * d
            let dim = Int(data[start..<start + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            dims.append(dim)
            let (product, overflow) = expected.multipliedReportingOverflow(by: dim)
            guard !overflow, product <= maxBytes else { throw DataError(path, "IDX dimensions \(dims) are too large") }
            expected = product
        }
        let payload = data.count - headerSize
        guard payload == expected else {
            throw DataError(path, "IDX dimensions \(dims) need \(expected) data bytes but the file has \(payload)")
        }
        return IDXArray(dims: dims, bytes: Array(data[headerSize...]))
    }

    /// Encodes an IDX file (for tests and tools): magic 0x0801/0x0803 by rank.
    public static func encode(_ array: IDXArray) -> [UInt8] {
        var out: [UInt8] = [0, 0, 8, UInt8(array.dims.count)]
        for d in array.dims { out += [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: d >> $0) } }
        return out + array.bytes
    }

    /// Writes `bytes` gzip-compressed to `path`.
    public static func writeGzip(_ bytes: [UInt8], to path: String) throws {
        guard let file = gzopen(path, "wb") else { throw DataError(path, "cannot create") }
        let written = bytes.withUnsafeBytes { gzwrite(file, $0.baseAddress, UInt32($0.count)) }
        let closed = gzclose_w(file)
        guard written == bytes.count || bytes.isEmpty, closed == Z_OK else { throw DataError(path, "cannot write gzip") }
    }
}
