import CZlib
import Foundation

/// An array read from an IDX file (the MNIST format): unsigned bytes with their dimensions.
public struct IDXArray: Equatable, Sendable {
    /// The sizes of each dimension, outermost first.
    public let dims: [Int]
    /// The elements (unsigned bytes), row-major.
    public let bytes: [UInt8]

    /// An array of `dims` holding `bytes`.
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

    /// Reads an IDX file, gzipped (`.gz`) or plain.
    public static func read(_ path: String) throws -> IDXArray {
        try decode(try readFileBytes(path), path: path)
    }

    /// Parses the bytes of an IDX file, gunzipping them first when they start with the gzip magic.
    public static func decode(_ bytes: [UInt8], path: String) throws -> IDXArray {
        try parse(isGzip(bytes) ? try gunzip(bytes, path: path) : bytes, path: path)
    }

    static func isGzip(_ bytes: [UInt8]) -> Bool { bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B }

    /// Decompresses gzip data (one or more members), refusing more than `maxBytes` of output.
    public static func gunzip(_ input: [UInt8], path: String) throws -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, 16 + MAX_WBITS, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DataError(path, "cannot start zlib")
        }
        defer { inflateEnd(&stream) }
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var offset = 0
        while true {
            let (status, consumed, produced) = input.withUnsafeBufferPointer { src in
                chunk.withUnsafeMutableBufferPointer { dst in
                    stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress! + offset)
                    stream.avail_in = UInt32(min(src.count - offset, Int(UInt32.max)))
                    stream.next_out = dst.baseAddress
                    stream.avail_out = UInt32(dst.count)
                    let before = stream.avail_in
                    let status = inflate(&stream, Z_NO_FLUSH)
                    return (status, Int(before - stream.avail_in), dst.count - Int(stream.avail_out))
                }
            }
            offset += consumed
            out.append(contentsOf: chunk[0..<produced])
            if out.count > maxBytes { throw DataError(path, "larger than \(maxBytes) bytes once decompressed") }
            switch status {
            case Z_STREAM_END:
                // Another gzip member may follow, as gzip itself allows.
                guard offset < input.count else { return out }
                guard isGzip(Array(input[offset..<min(offset + 2, input.count)])) else {
                    throw DataError(path, "unexpected data after the end of the gzip stream")
                }
                inflateReset(&stream)
            case Z_OK:
                continue
            case Z_BUF_ERROR where offset >= input.count:
                throw DataError(path, "truncated gzip data (unexpected end of file)")
            case Z_BUF_ERROR:
                continue
            default:
                let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                throw DataError(path, "corrupt gzip data: \(message)")
            }
        }
    }

    /// Parses the IDX header and checks the dimensions against the payload size.
    public static func parse(_ data: [UInt8], path: String) throws -> IDXArray {
        guard !data.isEmpty else { throw DataError(path, "empty file") }
        guard data.count >= 4 else { throw DataError(path, "too short for an IDX header (\(data.count) bytes)") }
        let magic = data[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard magic == 0x0000_0801 || magic == 0x0000_0803 else {
            let types: [UInt32: String] = [0x08: "unsigned-byte", 0x09: "signed-byte", 0x0B: "16-bit integer",
                                           0x0C: "32-bit integer", 0x0D: "float", 0x0E: "double"]
            if magic >> 16 == 0, let type = types[(magic >> 8) & 0xFF] {
                // An IDX file, but not one CLNN reads: say which part differs.
                let rank = Int(magic & 0xFF)
                throw DataError(path, String(format: "an IDX file (magic 0x%08X) of ", magic)
                    + "\(type) values with \(rank) "
                    + "dimension\(rank == 1 ? "" : "s"); CLNN reads unsigned-byte images of 3 dimensions "
                    + "(count, rows, columns) and labels of 1")
            }
            throw DataError(path, String(format: "not an IDX file: magic 0x%08X, expected 0x00000801 (labels) "
                                         + "or 0x00000803 (images)", magic))
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
        guard written == bytes.count || bytes.isEmpty, closed == Z_OK else {
            throw DataError(path, "cannot write gzip")
        }
    }
}
