#if canImport(Device)
@_spi(CLI) import Device  // fnv1a (the fuzz builds compile this file and Device's FNV1a.swift as one module)
#endif
import Foundation

/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header naming each tensor's
/// dtype, shape and byte range, then the raw little-endian data. It writes F32 (and I64 for a counter such as a batch
/// norm's `num_batches_tracked`, an entry stored as `I64`); it reads F32 as is and converts F16,
/// BF16, F64 and I64 (what PyTorch saves for a half or double model) to F32, recording the tensor's original dtype.
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

        /// Whether `name` is a batch norm's `num_batches_tracked` (an int64 count, which a state dict may lack:
        /// `fillingMissingCounters`).
        static func isCounter(_ name: String) -> Bool {
            name == "num_batches_tracked" || name.hasSuffix(".num_batches_tracked")
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
            let (elements, overflow) = entry.shape.reduce((1, false)) { product, d in
                let (value, over) = product.0.multipliedReportingOverflow(by: d)
                return (value, product.1 || over || d < 0)
            }
            guard !overflow, elements == entry.values.count else {
                throw DataError("SafeTensors.encode", "tensor '\(name.prefix(80))' has shape \(entry.shape) but "
                    + "\(entry.values.count) values")
            }
            let counter = entry.storedAs == "I64"
            let bytes = entry.values.count * (counter ? 8 : 4)
            header[name] = ["dtype": counter ? "I64" : "F32", "shape": entry.shape,
                            "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = Array(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        while json.count % 8 != 0 { json.append(0x20) }  // pad so the data starts 8-byte aligned
        var out = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) } + json
        out.reserveCapacity(out.count + offset)
        for name in tensors.keys.sorted() {
            if tensors[name]!.storedAs == "I64" {
                for v in tensors[name]!.values {
                    guard v.isFinite, abs(v) < 9e18 else {
                        throw DataError("safetensors", "tensor '\(name)' is an int64 counter but holds \(v)")
                    }
                    withUnsafeBytes(of: Int64(v).littleEndian) { out += $0 }
                }
            } else {
                for v in tensors[name]!.values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
            }
        }
        return out
    }

    /// Parses a safetensors file's bytes; `path` names the file in errors. `copies` is how many float copies of the
    /// tensors the caller will hold at once (its layouts, the model it builds): their memory is checked against what
    /// the process can get (`HostMemory`) before any is made, from the header's shapes alone.
    public static func decode(_ bytes: [UInt8], path: String,
                              copies: Int = 1) throws -> (tensors: [String: Entry], metadata: [String: String]) {
        guard bytes.count >= 8 else {
            throw DataError(path, "truncated safetensors file: \(bytes.count) bytes, no header length")
        }
        let headerLength = bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard headerLength <= UInt64(maxHeaderBytes), Int(headerLength) <= bytes.count - 8 else {
            throw DataError(path, "corrupt safetensors header: it claims \(headerLength) bytes but the file has "
                + "\(bytes.count - 8) after the length")
        }
        let headerEnd = 8 + Int(headerLength)
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd])),
              let header = object as? [String: Any] else {
            throw DataError(path, "corrupt safetensors header: not a JSON object")
        }
        let dataSize = bytes.count - headerEnd
        var metadata: [String: String] = [:]
        var tensors: [String: Entry] = [:]
        var spans: [(begin: Int, end: Int, name: String)] = []
        var pending: [(name: String, dtype: String, shape: [Int], begin: Int, end: Int, elements: Int)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let dict = value as? [String: String] else {
                    throw DataError(path, "corrupt safetensors header: __metadata__ is not a map of strings")
                }
                metadata = dict
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int],
                  offsets.count == 2 else {
                throw DataError(path, "corrupt safetensors header: tensor '\(name)' lacks dtype, shape or data_offsets")
            }
            guard let width = elementBytes[dtype] else {
                throw DataError(path, "tensor '\(name)' has dtype \(dtype.prefix(20)); "
                    + "CLNN reads F32, F16, BF16, F64 and I64")
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
                throw DataError(path, "tensor '\(name)' spans bytes \(begin)..<\(end) but the data section has "
                    + "\(dataSize) (truncated file?)")
            }
            guard let byteCount, byteCount == end - begin else {
                let needs = byteCount.map { "\($0) bytes" } ?? "more bytes than any file can hold"
                throw DataError(path, "tensor '\(name)' of shape \(shape) needs \(needs) but spans \(end - begin)")
            }
            spans.append((begin, end, name))
            pending.append((name, dtype, shape, begin, end, (end - begin) / width))
        }
        try checkLayout(spans, dataSize: dataSize, path: path)
        // Only now, with every size checked against the file, are the values made.
        try requireMemory(elements: pending.reduce(0.0) { $0 + Double($1.elements) }, copies: copies, path: path)
        for t in pending {
            // NOTE: the format is little-endian, as is every platform Swift on Linux runs on.
            let values = bytes.withUnsafeBytes { src in
                floats(UnsafeRawBufferPointer(rebasing: src[(headerEnd + t.begin)..<(headerEnd + t.end)]),
                       dtype: t.dtype)
            }
            tensors[t.name] = Entry(shape: t.shape, values: values, storedAs: t.dtype)
        }
        return (tensors, metadata)
    }

    /// Throws unless `copies` float copies of `elements` values fit in the memory this process can still get.
    static func requireMemory(elements: Double, copies: Int, path: String) throws {
        do {
            try HostMemory.require(4 * elements * Double(copies), for: "reading its \(Int(elements)) values"
                                   + (copies > 1 ? " (\(copies) copies while loading)" : ""))
        } catch let error as HostMemory.Shortfall {
            throw DataError(path, "\(error)")
        }
    }

    /// The safetensors library's rule: the tensors' byte ranges tile the data section exactly, in order of their
    /// offsets — no overlap (two tensors reading the same bytes), no gap, nothing after the last.
    static func checkLayout(_ spans: [(begin: Int, end: Int, name: String)], dataSize: Int, path: String) throws {
        var position = 0
        var previous: String?
        for span in spans.sorted(by: { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }) {
            if span.begin < position, let previous {
                throw DataError(path, "tensors '\(previous)' and '\(span.name)' overlap "
                    + "(bytes \(span.begin)..<\(position) "
                    + "belong to both): a corrupt or hand-made file (the safetensors library refuses it too)")
            }
            if span.begin > position {
                throw DataError(path, "bytes \(position)..<\(span.begin) of the data section belong to no tensor "
                    + "(before '\(span.name)'): "
                    + "a corrupt file (the safetensors library refuses it too)")
            }
            position = span.end
            previous = span.name
        }
        if position != dataSize {
            throw DataError(path, "the data section has \(dataSize) bytes but the tensors cover \(position): "
                + "trailing bytes belong to no tensor (a corrupt file; the safetensors library refuses it too)")
        }
    }

    /// The position of the first NaN or infinity of each tensor that holds one, by name order: `(name, flat index,
    /// index per axis)`; nil when every value is finite.
    public static func firstNonFinite(_ tensors: [String: Entry])
        -> (name: String, index: Int, position: [Int], value: Float)? {
        for name in tensors.keys.sorted() {
            let entry = tensors[name]!
            guard let i = entry.values.firstIndex(where: { !$0.isFinite }) else { continue }
            var position = [Int](repeating: 0, count: entry.shape.count)
            var rest = i
            for axis in entry.shape.indices.reversed() where entry.shape[axis] > 0 {
                position[axis] = rest % entry.shape[axis]
                rest /= entry.shape[axis]
            }
            return (name, i, position, entry.values[i])
        }
        return nil
    }

    /// Throws unless every value of every tensor is finite, naming the first tensor and element that is not.
    static func requireFinite(_ tensors: [String: Entry], path: String, what: String) throws {
        guard let bad = firstNonFinite(tensors) else { return }
        throw DataError(path, "tensor '\(bad.name)' holds \(bad.value) at \(bad.position) (element \(bad.index)): "
            + "\(what) with "
            + "NaN or infinite values is diverged or corrupt, and would give meaningless results")
    }

    /// FNV-1a over the tensors' names, shapes and F32 values in name order: what binds a training state to the
    /// weights it was saved with (the same value however the file's header is laid out). Streamed: no copy.
    public static func digest(_ tensors: [String: Entry]) -> UInt64 {
        var hash = fnv1a([UInt8]())
        func mix<C: Collection<UInt8>>(_ bytes: C) {
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        }
        for name in tensors.keys.sorted() {
            let entry = tensors[name]!
            mix(name.utf8)
            mix([0])
            for d in entry.shape { withUnsafeBytes(of: UInt64(d).littleEndian) { mix($0) } }
            entry.values.withUnsafeBytes { mix($0) }
        }
        return hash
    }

    /// The `__metadata__` of a safetensors file's `bytes` (its header alone is parsed); `path` names it in errors.
    public static func metadata(of bytes: [UInt8], path: String) throws -> [String: String] {
        guard bytes.count >= 8 else { throw DataError(path, "truncated safetensors file: no header length") }
        let length = bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard length <= UInt64(min(maxHeaderBytes, bytes.count - 8)),
              let object = try? JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + Int(length))]))
                as? [String: Any] else {
            throw DataError(path, "corrupt safetensors header")
        }
        return object["__metadata__"] as? [String: String] ?? [:]
    }

    /// The `__metadata__` of the safetensors file at `path`, reading its header only.
    public static func metadata(ofFileAt path: String) throws -> [String: String] {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw DataError(path, "cannot open") }
        defer { try? handle.close() }
        guard let lengthBytes = try handle.read(upToCount: 8), lengthBytes.count == 8 else {
            throw DataError(path, "truncated safetensors file: no header length")
        }
        let length = lengthBytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard length <= UInt64(maxHeaderBytes), let header = try handle.read(upToCount: Int(length)),
              header.count == Int(length),
              let object = try? JSONSerialization.jsonObject(with: header) as? [String: Any] else {
            throw DataError(path, "corrupt safetensors header")
        }
        return object["__metadata__"] as? [String: String] ?? [:]
    }

    /// Bytes per element of the dtypes CLNN reads.
    static let elementBytes = ["F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8]

    /// The elements of `raw` (little-endian `dtype`) as Float: F16 and BF16 exactly, F64 rounded to nearest.
    static func floats(_ raw: UnsafeRawBufferPointer, dtype: String) -> [Float] {
        switch dtype {
        case "F16":
            return (0..<raw.count / 2).map {
                Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)))
            }
        case "BF16":
            // bfloat16 is the top half of a float32.
            return (0..<raw.count / 2).map {
                Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) << 16)
            }
        case "F64":
            return (0..<raw.count / 8).map { Float(raw.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self)) }
        case "I64":
            // A counter such as BatchNorm's num_batches_tracked: read as a number, so the model's reader can say
            // what the tensor is.
            return (0..<raw.count / 8).map { Float(raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
        default:
            var values = [Float](repeating: 0, count: raw.count / 4)
            values.withUnsafeMutableBytes { $0.copyMemory(from: raw) }
            return values
        }
    }
}
