import Foundation

/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header naming each tensor's
/// dtype, shape and byte range, then the raw little-endian data. It writes F32; it reads F32 as is and converts F16,
/// BF16 and F64 (what PyTorch saves for a half or double model) to F32, recording the tensor's original dtype.
public enum SafeTensors {
    /// One F32 tensor of a file.
    public struct Entry: Equatable, Sendable {
        /// Its shape.
        public let shape: [Int]
        /// Its elements, row-major.
        public let values: [Float]
        /// The dtype it was stored as (`F32`, or `F16`, `BF16`, `F64` converted on reading).
        public let storedAs: String
        /// A tensor of `shape` holding `values`.
        public init(shape: [Int], values: [Float], storedAs: String = "F32") {
            self.shape = shape
            self.values = values
            self.storedAs = storedAs
        }
    }

    /// The largest header accepted when reading.
    static let maxHeaderBytes = 100 << 20

    /// The file's bytes: tensors laid out contiguously in name order.
    public static func encode(_ tensors: [String: Entry], metadata: [String: String]) throws -> [UInt8] {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for name in tensors.keys.sorted() {
            let entry = tensors[name]!
            precondition(entry.shape.reduce(1, *) == entry.values.count, "SafeTensors: \(name) shape and data disagree")
            let bytes = entry.values.count * 4
            header[name] = ["dtype": "F32", "shape": entry.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = Array(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        while json.count % 8 != 0 { json.append(0x20) }  // pad so the data starts 8-byte aligned
        var out = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) } + json
        out.reserveCapacity(out.count + offset)
        for name in tensors.keys.sorted() {
            for v in tensors[name]!.values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
        }
        return out
    }

    /// Parses a safetensors file's bytes; `path` names the file in errors.
    public static func decode(_ bytes: [UInt8], path: String) throws -> (tensors: [String: Entry], metadata: [String: String]) {
        guard bytes.count >= 8 else { throw DataError(path, "truncated safetensors file: \(bytes.count) bytes, no header length") }
        let headerLength = bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard headerLength <= UInt64(maxHeaderBytes), Int(headerLength) <= bytes.count - 8 else {
            throw DataError(path, "corrupt safetensors header: it claims \(headerLength) bytes but the file has \(bytes.count - 8) after the length")
        }
        let headerEnd = 8 + Int(headerLength)
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd])),
              let header = object as? [String: Any] else {
            throw DataError(path, "corrupt safetensors header: not a JSON object")
        }
        let dataSize = bytes.count - headerEnd
        var metadata: [String: String] = [:]
        var tensors: [String: Entry] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let dict = value as? [String: String] else {
                    throw DataError(path, "corrupt safetensors header: __metadata__ is not a map of strings")
                }
                metadata = dict
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw DataError(path, "corrupt safetensors header: tensor '\(name)' lacks dtype, shape or data_offsets")
            }
            guard let width = elementBytes[dtype] else {
                throw DataError(path, "tensor '\(name)' has dtype \(dtype.prefix(20)); CLNN reads F32, F16, BF16 and F64")
            }
            guard shape.allSatisfy({ $0 >= 0 }), shape.count <= 8 else {
                throw DataError(path, "tensor '\(name)' has an invalid shape \(shape)")
            }
            // NOTE: sizes come from the file: every product is checked (a shape of [2^61] must not trap).
            var byteCount: Int? = width
            for d in shape {
                guard let b = byteCount else { break }
                let (product, overflow) = b.multipliedReportingOverflow(by: d)
                byteCount = overflow ? nil : product
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw DataError(path, "tensor '\(name)' spans bytes \(begin)..<\(end) but the data section has \(dataSize) (truncated file?)")
            }
            guard let byteCount, byteCount == end - begin else {
                let needs = byteCount.map { "\($0) bytes" } ?? "more bytes than any file can hold"
                throw DataError(path, "tensor '\(name)' of shape \(shape) needs \(needs) but spans \(end - begin)")
            }
            // NOTE: the format is little-endian, as is every platform Swift on Linux runs on.
            let values = bytes.withUnsafeBytes { src in
                floats(UnsafeRawBufferPointer(rebasing: src[(headerEnd + begin)..<(headerEnd + end)]), dtype: dtype)
            }
            tensors[name] = Entry(shape: shape, values: values, storedAs: dtype)
        }
        return (tensors, metadata)
    }

    /// Bytes per element of the dtypes CLNN reads.
    static let elementBytes = ["F32": 4, "F16": 2, "BF16": 2, "F64": 8]

    /// The elements of `raw` (little-endian `dtype`) as Float: F16 and BF16 exactly, F64 rounded to nearest.
    static func floats(_ raw: UnsafeRawBufferPointer, dtype: String) -> [Float] {
        switch dtype {
        case "F16":
            return (0..<raw.count / 2).map { Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
        case "BF16":
            // bfloat16 is the top half of a float32.
            return (0..<raw.count / 2).map { Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) << 16) }
        case "F64":
            return (0..<raw.count / 8).map { Float(raw.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self)) }
        default:
            var values = [Float](repeating: 0, count: raw.count / 4)
            values.withUnsafeMutableBytes { $0.copyMemory(from: raw) }
            return values
        }
    }
}
