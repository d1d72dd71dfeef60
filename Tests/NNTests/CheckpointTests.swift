import Foundation
@_spi(CLI) import NN
import TestSupport
import XCTest

final class CheckpointTests: XCTestCase {
    let meta = Checkpoint(sizes: [6, 4, 3], loss: "cross-entropy", classes: 3,
                          normalization: Normalization(mean: 0.25, std: 0.5))

    func testCheckpointRoundTripsWithPyTorchLayouts() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("model.safetensors").path
        let model = try MLP.make(sizes: meta.sizes, seed: 3, on: .cpu)
        try meta.save(model, to: path)

        let (tensors, metadata) = try SafeTensors.decode(Array(try Data(contentsOf: URL(fileURLWithPath: path))),
                                                         path: path)
        XCTAssertEqual(Set(tensors.keys), ["0.weight", "0.bias", "2.weight", "2.bias"])
        XCTAssertEqual(tensors["0.weight"]?.shape, [4, 6], "PyTorch Linear weights are [out, in]")
        XCTAssertEqual(tensors["2.bias"]?.shape, [3])
        let w = try (model.layers[0] as! Linear).weight.value.toArray()  // [in, out]
        XCTAssertEqual(tensors["0.weight"]!.values[1 * 6 + 2], w[2 * 4 + 1], "weight[out 1, in 2]")
        XCTAssertEqual(metadata["clnn.sizes"], "6,4,3")

        for device in testDevices {
            let (loaded, copy) = try Checkpoint.load(path, on: device)
            XCTAssertEqual(loaded, meta)
            XCTAssertEqual(try copy.parameters.map { try $0.value.toArray() },
                           try model.parameters.map { try $0.value.toArray() })
            XCTAssertTrue(copy.parameters.allSatisfy { $0.device == device })
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["model.safetensors"],
                       "no temporary file is left behind")
    }

    func testBadCheckpointsAreClearErrors() throws {
        let folder = try temporaryFolder(self)
        let good = folder.appendingPathComponent("good.safetensors").path
        try meta.save(try MLP.make(sizes: meta.sizes, seed: 3, on: .cpu), to: good)
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: good)))

        func expect(_ data: [UInt8], _ fragment: String, line: UInt = #line) throws {
            let path = folder.appendingPathComponent("bad\(line).safetensors").path
            try Data(data).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try Checkpoint.load(path, on: .cpu), line: line) { error in
                XCTAssertTrue("\(error)".hasPrefix(path + ": "), "\(error)", line: line)
                XCTAssertTrue("\(error)".contains(fragment), "\(error)", line: line)
            }
        }
        try expect([], "truncated safetensors file")
        try expect(Array(bytes.prefix(5)), "truncated safetensors file")
        try expect([255, 255, 255, 255, 0, 0, 0, 0] + bytes.dropFirst(8), "corrupt safetensors header")
        var garbled = bytes
        for i in 8..<20 { garbled[i] = 0x7B }
        try expect(garbled, "corrupt safetensors header")
        try expect(Array(bytes.dropLast(10)), "truncated file")

        // Saving refuses metadata that does not describe the model; nothing is written.
        let other = try MLP.make(sizes: [6, 5, 3], seed: 1, on: .cpu)
        let wrong = folder.appendingPathComponent("wrong.safetensors").path
        XCTAssertThrowsError(try meta.save(other, to: wrong)) { error in
            XCTAssertTrue("\(error)".contains("entry 0 is linear(6,4) in the checkpoint and linear(6,5) in the model"),
                          "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: wrong))
        // A file whose tensors disagree with its metadata (written by another tool).
        let (tensors, _) = try SafeTensors.decode(Array(try Data(contentsOf: URL(fileURLWithPath: good))), path: good)
        var swapped = tensors
        swapped["0.weight"] = SafeTensors.Entry(shape: [5, 6], values: .init(repeating: 0, count: 30))
        try Data(try SafeTensors.encode(swapped, metadata: ["clnn.sizes": "6,4,3", "clnn.loss": "cross-entropy",
            "clnn.classes": "3", "clnn.mean": "0.25", "clnn.std": "0.5"])).write(to: URL(fileURLWithPath: wrong))
        XCTAssertThrowsError(try Checkpoint.load(wrong, on: .cpu)) { error in
            XCTAssertTrue("\(error)".contains("tensor '0.weight' has shape [5, 6] but the architecture "
                                              + "linear(6,4),relu,linear(4,3) needs [4, 6]"), "\(error)")
        }
        XCTAssertThrowsError(try Checkpoint.load(folder.appendingPathComponent("none").path, on: .cpu)) {
            XCTAssertTrue("\($0)".contains("no such checkpoint file"), "\($0)")
        }
    }

    func testFailedSaveLeavesThePreviousCheckpointIntact() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("model.safetensors").path
        try meta.save(try MLP.make(sizes: meta.sizes, seed: 3, on: .cpu), to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))

        setenv(AtomicFile.failAfterVariable, "100", 1)
        defer { unsetenv(AtomicFile.failAfterVariable) }
        XCTAssertThrowsError(try meta.save(try MLP.make(sizes: meta.sizes, seed: 4, on: .cpu), to: path)) { error in
            XCTAssertTrue("\(error)".contains("write failed after 100 bytes"), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["model.safetensors"])
    }
}

final class HostileCheckpointTests: XCTestCase {
    /// Safetensors bytes with `header` as the JSON header and `data` after it.
    private func file(_ header: String, data: [UInt8] = []) -> [UInt8] {
        let json = Array(header.utf8)
        return withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) } + json + data
    }

    func testShapesWhoseSizeOverflowsAreErrorsNotTraps() {
        for shape in ["[2305843009213693952]", "[1099511627776, 1099511627776]", "[4611686018427387904, 4]",
                      "[9223372036854775807, 9223372036854775807]"] {
            let bytes = file(#"{"t": {"dtype": "F32", "shape": \#(shape), "data_offsets": [0, 4]}}"#,
                             data: [0, 0, 0, 0])
            XCTAssertThrowsError(try SafeTensors.decode(bytes, path: "x.safetensors")) { error in
                XCTAssertTrue("\(error)".contains("needs more bytes than any file can hold"), "\(error)")
            }
        }
    }

    func testMetadataIsCheckedAgainstTheTensorsBeforeAnythingIsAllocated() throws {
        // 46000·46000 floats would be 8 GB: the tensors are missing, and that is found before any allocation.
        let meta = #"{"__metadata__": {"clnn.sizes": "46000,46000,10", "clnn.loss": "cross-entropy", "#
            + #""clnn.classes": "10", "clnn.mean": "0.2", "clnn.std": "0.3"}}"#
        let start = Date()
        XCTAssertThrowsError(try Checkpoint.decode(file(meta), path: "m.safetensors", on: .cpu)) { error in
            XCTAssertTrue("\(error)".contains("missing tensor '0.weight' for the architecture "
                                              + "linear(46000,46000),relu,linear(46000,10)"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 1, "nothing metadata-sized was built")
        for (sizes, fragment) in [("784,-1,10", "clnn.sizes"), ("784,50,", "clnn.sizes"),
                                  ("99999999999999999999,1", "clnn.sizes"),
                                  (String(repeating: "1,", count: 70) + "1", "clnn.sizes")] {
            let m = #"{"__metadata__": {"clnn.sizes": "\#(sizes)", "clnn.loss": "mse", "#
                + #""clnn.classes": "1", "clnn.mean": "0", "clnn.std": "1"}}"#
            XCTAssertThrowsError(try Checkpoint.decode(file(m), path: "m", on: .cpu)) {
                XCTAssertTrue("\($0)".contains(fragment), "\($0)")
            }
        }
    }

    func testNonFiniteWeightsAreNeverSaved() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("m.safetensors").path
        let model = try MLP.make(sizes: [3, 2], seed: 1, on: .cpu)
        try model.parameters[0].load(try Tensor([1, .nan, 2, 3, 4, 5], shape: [3, 2]))
        let meta = Checkpoint(sizes: [3, 2], loss: "cross-entropy", classes: 2,
                              normalization: Normalization(mean: 0, std: 1))
        XCTAssertThrowsError(try meta.save(model, to: path)) {
            XCTAssertTrue("\($0)".contains("'0.weight' holds NaN"), "\($0)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [])
    }
}
