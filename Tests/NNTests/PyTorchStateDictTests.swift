import Foundation
import NN
import TestSupport
import XCTest

/// The bytes `safetensors.torch.save_file(state_dict, path)` writes: no `__metadata__`, keys sorted, each tensor's
/// data in key order, the header padded with spaces to a multiple of 8 — written here by hand, so the tests need no
/// PyTorch.
func pyTorchSaveFile(_ tensors: [(name: String, dtype: String, shape: [Int], data: [UInt8])]) -> [UInt8] {
    var entries: [String] = []
    var offset = 0
    var body: [UInt8] = []
    for t in tensors.sorted(by: { $0.name < $1.name }) {
        entries.append("\"\(t.name)\":{\"dtype\":\"\(t.dtype)\",\"shape\":\(t.shape),"
            + "\"data_offsets\":[\(offset),\(offset + t.data.count)]}")
        offset += t.data.count
        body += t.data
    }
    var header = Array(("{" + entries.joined(separator: ",") + "}").utf8)
    while header.count % 8 != 0 { header.append(0x20) }
    return withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + header + body
}

/// Little-endian bytes of `values` in `dtype` (F32, F16, BF16 by truncation of exactly representable values, F64).
func bytes(_ values: [Float], _ dtype: String) -> [UInt8] {
    values.flatMap { v -> [UInt8] in
        switch dtype {
        case "F16": return withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { Array($0) }
        case "BF16": return withUnsafeBytes(of: UInt16(v.bitPattern >> 16).littleEndian) { Array($0) }
        case "F64": return withUnsafeBytes(of: Double(v).bitPattern.littleEndian) { Array($0) }
        default: return withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) }
        }
    }
}

final class PyTorchStateDictTests: XCTestCase {
    /// A CLNN model's weights as PyTorch's state dict of `nn.Sequential(nn.Flatten(), Linear, Tanh, Linear)`:
    /// indices 1 and 3, weights [out, in].
    private func stateDict(of model: Sequential, dtype: String = "F32", firstIndex: Int = 1) throws -> [UInt8] {
        var tensors: [(String, String, [Int], [UInt8])] = []
        var index = firstIndex
        for layer in model.layers {
            guard let linear = layer as? Linear else { continue }
            let w = try linear.weight.value.toArray()   // [in, out]
            var t = [Float](repeating: 0, count: w.count)
            for i in 0..<linear.inFeatures {
                for o in 0..<linear.outFeatures { t[o * linear.inFeatures + i] = w[i * linear.outFeatures + o] }
            }
            tensors.append(("\(index).weight", dtype, [linear.outFeatures, linear.inFeatures], bytes(t, dtype)))
            tensors.append(("\(index).bias", dtype, [linear.outFeatures],
                            bytes(try linear.bias.value.toArray(), dtype)))
            index += 2
        }
        return pyTorchSaveFile(tensors)
    }

    func testAPlainStateDictEvaluatesLikeTheSameCLNNModelOnEveryDevice() throws {
        let model = try MLP.make(sizes: [6, 5, 3], activation: .tanh, seed: 3, on: .cpu)
        try model.parameters[1].value.upload((0..<5).map { Float($0) / 10 })   // a bias that is not zero
        let file = try stateDict(of: model)
        let x = testValues(4 * 6, seed: 2)
        let expected = try model.forward(try Tensor(x, shape: [4, 6])).toArray()
        let data = try Dataset(images: x, labels: [0, 1, 2, 1], features: 6)
        let expectedEval = try Evaluator(model: model, loss: CrossEntropyLoss()).evaluate(data)
        for device in testDevices {
            let (checkpoint, loaded) = try Checkpoint.decode(file, path: "torch.safetensors", on: device,
                                                            assuming: StateDictAssumptions(activation: .tanh))
            XCTAssertEqual(LayerSpec.text(checkpoint.layers), "linear(6,5),tanh,linear(5,3)")
            XCTAssertTrue(checkpoint.inferredFromShapes)
            XCTAssertEqual(checkpoint.classes, 3)
            let note = try XCTUnwrap(checkpoint.note)
            XCTAssertTrue(note.contains("inferred linear(6,5),tanh,linear(5,3) from the tensor shapes"), note)
            XCTAssertTrue(note.contains("index 0 before the first Linear holds no parameters"), note)
            XCTAssertTrue(note.contains("assumed activation tanh, loss cross-entropy, 3 classes (the output width)"),
                          note)
            assertClose(try loaded.forward(try Tensor(x, shape: [4, 6], on: device)).toArray(), expected,
                        rtol: 1e-5, atol: 1e-6,
                        "the state dict's model on \(device)")
            let got = try Evaluator(model: loaded, loss: CrossEntropyLoss()).evaluate(data)
            XCTAssertEqual(got.accuracy, expectedEval.accuracy, "\(device)")
            XCTAssertEqual(got.loss, expectedEval.loss, accuracy: 1e-5, "\(device)")
            // Into a model the user built: the activation between the Linears is the model's own.
            let mine = try MLP.make(sizes: [6, 5, 3], activation: .tanh, seed: 9, on: device)
            try mine.load(from: try write(file))
            XCTAssertEqual(try mine.parameters.map { try $0.value.toArray() },
                           try model.parameters.map { try $0.value.toArray() })
        }
    }

    func testHalfBFloatAndDoubleTensorsAreConvertedWithANote() throws {
        let model = try MLP.make(sizes: [4, 3], seed: 1, on: .cpu)
        // Values every dtype holds exactly, so the conversion is checked to the bit.
        try model.parameters[0].value.upload([0.5, -1.25, 2, 0.125, -0.75, 1.5, 3, -2, 0.25, 1, -0.5, 0.0625])
        try model.parameters[1].value.upload([0.5, -0.25, 1])
        for dtype in ["F16", "BF16", "F64"] {
            let (checkpoint, loaded) = try Checkpoint.decode(try stateDict(of: model, dtype: dtype, firstIndex: 0),
                                                             path: "half", on: .cpu)
            XCTAssertTrue(checkpoint.note?.contains("converted 2 \(dtype) tensors to F32 on load") == true,
                          "\(checkpoint.note ?? "")")
            XCTAssertEqual(try loaded.parameters.map { try $0.value.toArray() },
                           try model.parameters.map { try $0.value.toArray() }, dtype)
        }
        let odd = pyTorchSaveFile([("0.weight", "I64", [1, 1], [UInt8](repeating: 0, count: 8)),
                                   ("0.bias", "F32", [1], bytes([0], "F32"))])
        // Integers are converted as PyTorch's load_state_dict copies them into float parameters; other dtypes are
        // refused.
        XCTAssertTrue(try Checkpoint.decode(odd, path: "ints", on: .cpu).0.note?
            .contains("converted 1 I64 tensors to F32") == true)
        let bools = pyTorchSaveFile([("0.weight", "BOOL", [1, 1], [0]), ("0.bias", "F32", [1], bytes([0], "F32"))])
        XCTAssertThrowsError(try Checkpoint.decode(bools, path: "bools", on: .cpu)) {
            XCTAssertTrue("\($0)".contains("tensor '0.weight' has dtype BOOL; CLNN reads F32, F16, BF16, F64 and I64"),
                          "\($0)")
        }
    }

    func testWhatIsNotALinearStackIsNamed() throws {
        func f32(_ name: String, _ shape: [Int]) -> (String, String, [Int], [UInt8]) {
            (name, "F32", shape, bytes(.init(repeating: 0.5, count: shape.reduce(1, *)), "F32"))
        }
        let cases: [([(String, String, [Int], [UInt8])], String)] = [
            ([f32("0.weight", [8, 1, 3, 3]), f32("0.bias", [8])],
             "tensor '0.weight' has shape [8, 1, 3, 3]: a 4-D weight is a convolution's"),
            ([f32("0.weight", [4, 3]), f32("0.bias", [4]), f32("1.weight", [4]), f32("1.bias", [4])],
             "tensor '1.weight' has shape [4]: a 1-D weight is a normalisation layer's (LayerNorm, BatchNorm)"),
            ([f32("0.weight", [4, 3]), f32("0.bias", [4]), f32("1.running_mean", [4])],
             "tensor '1.running_mean' is not N.weight or N.bias"),
            ([f32("0.weight", [4, 3]), f32("0.bias", [4]), f32("3.weight", [2, 4]), f32("3.bias", [2])],
             "indices 0 and 3 have 2 modules without parameters between them"),
            ([f32("0.weight", [4, 3])], "a Linear without bias (bias=False) is not supported"),
            ([f32("0.weight", [4, 3]), f32("0.bias", [4]), f32("2.weight", [2, 5]), f32("2.bias", [2])],
             "tensor '2.weight' takes 5 inputs but the layer before gives 4"),
            ([f32("encoder.weight", [4, 3])], "tensor 'encoder.weight' is not N.weight or N.bias"),
        ]
        for (tensors, fragment) in cases {
            XCTAssertThrowsError(try Checkpoint.decode(pyTorchSaveFile(tensors), path: "t.safetensors",
                                                       on: .cpu)) { error in
                XCTAssertTrue("\(error)".hasPrefix("t.safetensors: "), "\(error)")
                XCTAssertTrue("\(error)".contains(fragment), "\(error)")
            }
        }
        let regression = pyTorchSaveFile([f32("0.weight", [1, 3]), f32("0.bias", [1])])
        XCTAssertThrowsError(try Checkpoint.decode(regression, path: "r", on: .cpu,
                                                   assuming: StateDictAssumptions(loss: "mse"))) {
            XCTAssertTrue("\($0)".contains("state it (--classes)"), "\($0)")
        }
        XCTAssertEqual(try Checkpoint.decode(regression, path: "r", on: .cpu,
                                             assuming: StateDictAssumptions(loss: "mse", classes: 10)).0.classes, 10)
    }

    private func write(_ bytes: [UInt8]) throws -> String {
        let path = try temporaryFolder(self).appendingPathComponent("torch.safetensors").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}

final class PyTorchStateDictCLITests: CLITestCase {
    func testEvalAndInitFromTakeAPlainStateDict() throws {
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 60, testCount: 20)
        let model = try MLP.make(sizes: [6, 5, 3], activation: .tanh, seed: 3, on: .cpu)
        let norm = Normalization(mean: 0.5, std: 0.25)
        let clnnFile = out.appendingPathComponent("clnn.safetensors").path
        try Checkpoint(model: model, loss: "cross-entropy", classes: 3, normalization: norm).save(model, to: clnnFile)
        // The same weights as PyTorch's save_file writes them (no metadata, nn.Flatten at index 0).
        let (tensors, _) = try SafeTensors.decode(Array(try Data(contentsOf: URL(fileURLWithPath: clnnFile))),
                                                  path: clnnFile)
        let plain = out.appendingPathComponent("torch.safetensors").path
        try Data(pyTorchSaveFile(tensors.map { name, entry in
            let parts = name.split(separator: ".")
            return ("\(Int(parts[0])! + 1).\(parts[1])", "F32", entry.shape, bytes(entry.values, "F32"))
        })).write(to: URL(fileURLWithPath: plain))

        for device in testDevices.map(\.description) {
            let reference = try run(["eval", "--model", clnnFile, "--data", data.path, "--device", device])
            XCTAssertEqual(reference.status, 0, reference.stderr)
            let r = try run(["eval", "--model", plain, "--data", data.path, "--device", device, "--activation", "tanh",
                             "--normalization", "0.5,0.25"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("a plain PyTorch state dict (no clnn metadata): "
                                            + "inferred linear(6,5),tanh,linear(5,3)"), r.stderr)
            XCTAssertTrue(r.stderr.contains("mean 0.5000 std 0.2500 (--normalization)"), r.stderr)
            let line = { (s: String) in s.split(separator: "\n").first { $0.hasPrefix("test loss") }.map(String.init) }
            XCTAssertEqual(line(r.stdout), line(reference.stdout),
                           "same loss and accuracy as the CLNN checkpoint on \(device)")
        }
        let defaults = try run(["eval", "--model", plain, "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(defaults.status, 0, defaults.stderr)
        XCTAssertTrue(defaults.stderr.contains("assumed activation relu"), defaults.stderr)
        XCTAssertTrue(defaults.stderr.contains("(the training set's statistics; --normalization to change)"),
                      defaults.stderr)

        let mixed = try run(["eval", "--model", clnnFile, "--data", data.path, "--device", "cpu",
                             "--activation", "relu"])
        XCTAssertEqual(mixed.status, 64)
        XCTAssertTrue(mixed.stderr.contains("--activation is for a plain PyTorch state dict"), mixed.stderr)

        let tuned = out.appendingPathComponent("tuned.safetensors").path
        let t = try run(["train", "--init-from", plain, "--activation", "tanh", "--epochs", "1", "--batch-size", "8",
                         "--data", data.path, "--device", "cpu", "--save", tuned])
        XCTAssertEqual(t.status, 0, t.stderr)
        XCTAssertTrue(t.stdout.contains("starting from the weights of \(plain)"), t.stdout)
        let (saved, _) = try Checkpoint.load(tuned, on: .cpu)
        XCTAssertEqual(LayerSpec.text(saved.layers), "linear(6,5),tanh,linear(5,3)")
        XCTAssertFalse(saved.inferredFromShapes, "the fine-tuned model is saved as a clnn checkpoint")
    }
}
