import Foundation
@testable import NN
import TestSupport
import XCTest

/// Architectures as text (`--arch`, `clnn.architecture`), CNN checkpoints with PyTorch's names and batch-norm
/// statistics, plain PyTorch CNN state dicts read with their architecture told.
final class ArchitectureTextTests: XCTestCase {
    func testEveryEntryRoundTripsThroughItsText() throws {
        let specs: [LayerSpec] = [
            .image(channels: 3, height: 17, width: 9),
            .conv2d(inChannels: 3, outChannels: 5, window: Window2d(kernel: (3, 2), stride: (2, 1), padding: (2, 1),
                                                                     dilation: (2, 1)), bias: false),
            .batchNorm(features: 5, twoD: true, eps: 1e-3, momentum: 0.2),
            .activation(.gelu),
            .maxPool2d(Window2d(kernel: (2, 3), stride: (1, 2), padding: (1, 1))),
            .avgPool2d(Window2d(kernel: 2, stride: 2)),
            .globalAvgPool2d, .dropout(p: 0.25), .flatten,
            .linear(inFeatures: 5, outFeatures: 7), .batchNorm(features: 7, twoD: false, eps: 1e-5, momentum: 0.1),
            .activation(.leakyReLU), .linear(inFeatures: 7, outFeatures: 4),
        ]
        let text = LayerSpec.text(specs)
        XCTAssertEqual(text, "image(3,17,9),conv2d(3,5,3x2,s=2x1,p=2x1,d=2x1,bias=false),"
            + "batchnorm2d(5,eps=0.001,momentum=0.2),gelu,maxpool2d(2x3,s=1x2,p=1),avgpool2d(2),"
            + "adaptiveavgpool2d(1),dropout(0.25),flatten,linear(5,7),batchnorm1d(7),leaky-relu,linear(7,4)")
        XCTAssertEqual(try LayerSpec.parse(text), specs)
        for spec in specs { XCTAssertEqual(LayerSpec(parsing: Substring(spec.description)), spec) }
        // [3,17,9] → conv (17+4−5)/2+1 = 9, (9+2−2)/1+1 = 10 → pool (9+2−2)/1+1 = 10, (10+2−3)/2+1 = 5 → avg 5, 2.
        XCTAssertEqual(try LayerSpec.shapes(specs),
                       [[3, 17, 9], [5, 9, 10], [5, 9, 10], [5, 9, 10], [5, 10, 5], [5, 5, 2], [5, 1, 1], [5, 1, 1],
                        [5], [7], [7], [7], [4]])
        XCTAssertEqual(LayerSpec.tensorShapes(specs).map(\.name),
                       ["0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
                        "8.weight", "8.bias", "9.weight", "9.bias", "9.running_mean", "9.running_var",
                        "9.num_batches_tracked", "11.weight", "11.bias"])
    }

    func testTheShortFormResolvesOverTheDataAndThePresetsAreCNNPy() throws {
        let bn = try LayerSpec.resolve("conv(32, 3, p=1) bn relu maxpool(2), conv(64,3,p=1) bn relu maxpool(2) "
                                       + "flatten linear(128) relu linear(10)", input: [1, 28, 28])
        XCTAssertEqual(LayerSpec.text(bn), "image(1,28,28),conv2d(1,32,3,p=1),batchnorm2d(32),relu,maxpool2d(2),"
            + "conv2d(32,64,3,p=1),batchnorm2d(64),relu,maxpool2d(2),flatten,linear(3136,128),relu,linear(128,10)")
        XCTAssertEqual(try CNN.specs(.batchNorm), bn)
        XCTAssertEqual(try LayerSpec.requested("cnn-bn", input: [1, 28, 28], outputs: 10), bn)
        XCTAssertNil(try LayerSpec.requested("mlp", input: [1, 28, 28], outputs: 10))
        // PyTorch's names for the plain model: 0 conv, 3 conv, 7 and 9 linear.
        XCTAssertEqual(LayerSpec.tensorShapes(try CNN.specs(.plain)).map(\.name),
                       ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias", "9.weight", "9.bias"])
        // A model that starts with a linear layer reads the rows flat; `bn` over flat input is a BatchNorm1d.
        XCTAssertEqual(try LayerSpec.resolve("fc(20) bn gelu dropout linear(3)", input: [1, 4, 5]),
                       [.linear(inFeatures: 20, outFeatures: 20),
                        .batchNorm(features: 20, twoD: false, eps: 1e-5, momentum: 0.1), .activation(.gelu),
                        .dropout(p: 0.5), .linear(inFeatures: 20, outFeatures: 3)])
        XCTAssertEqual(try LayerSpec.resolve("conv(4,3,s=2) gap flatten linear(2)", input: [1, 7, 5]).first,
                       .image(channels: 1, height: 7, width: 5))
    }

    /// The exact forms (`linear(IN,OUT)`, `conv(IN,OUT,K)`) and the text clnn prints of a model read back as given.
    func testTheExactFormsAndAPrintedArchitectureReadBack() throws {
        XCTAssertEqual(try LayerSpec.resolve("linear(784,10)", input: [1, 28, 28]),
                       [.linear(inFeatures: 784, outFeatures: 10)])
        let printed = "image(1,8,8),conv2d(1,4,3),relu,flatten,linear(144,3)"
        let specs = try LayerSpec.resolve(printed, input: [1, 8, 8])
        XCTAssertEqual(LayerSpec.text(specs), printed)
        XCTAssertEqual(try LayerSpec.resolve("conv(1,4,3) relu flatten fc(144,3)", input: [1, 8, 8]), specs)
    }

    func testBadArchitecturesAreErrorsNamingTheEntryAndTheSizes() {
        let cases: [(String, String)] = [
            ("conv(8,30)", "entry 0 'conv(8,30)' has a window larger than its padded input [1, 28, 28]"),
            ("conv(8,3,s=0) flatten linear(10)", "has stride '0', not a whole number in 1...1048576"),
            ("conv(8,3) linear(10)", "entry 1 'linear(10)' takes flat input but gets [8, 26, 26] (a flatten before it?)"),
            ("conv2d(3,8,3) flatten linear(10)", "entry 0 'conv2d(3,8,3)' takes 3 channels but the entry before gives 1"),
            ("conv(8,3) batchnorm2d(4) flatten linear(2)", "entry 1 'batchnorm2d(4)' normalises 4 channels but "
                + "the entry before gives [8, 26, 26]"),
            ("conv(8,3) relu", "ends with [8, 26, 26] per example; a classifier ends flat"),
            ("conv(8,3) pool(2)", "entry 1 'pool(2)' is not a layer CLNN knows"),
            ("conv(8,3 relu", "has a '(' that is not closed"),
            ("flatten linear(10) image(1,2,2)", "must come first"),
            ("conv(8,3,q=1)", "has no option 'q'"),
            ("maxpool(2,p=2) flatten linear(3)", "pads by more than half its kernel"),
            ("dropout(1.5) flatten linear(2)", "not a probability in 0...1"),
            // Found by a hostile probe: the documented forms, the whole bad text, an image of other sizes.
            ("flatten linear()", "entry 1 'linear()' takes linear(OUT) (its inputs are what the layer before gives) "
                + "or linear(IN,OUT), got 0 arguments"),
            ("conv() flatten linear(2)", "takes conv(OUT,K[,s=S][,p=P][,d=D])"),
            ("conv(4,3,p=1x) flatten linear(2)", "has padding '1x', not N or HxW, each a whole number in 0...1048576"),
            ("image(3,28,28) flatten linear(10)", "entry 0 'image(3,28,28)' reads images of 3·28·28 = 2352 values, "
                + "but the data's examples have 784"),
            // Found by a later probe: as many values, read with another row width.
            ("image(1,14,56) flatten linear(10)", "entry 0 'image(1,14,56)' reads images of 1×14×56, but the data's "
                + "are 1×28×28 (channels × rows × columns)"),
        ]
        for (text, fragment) in cases {
            XCTAssertThrowsError(try LayerSpec.resolve(text, input: [1, 28, 28]), text) {
                XCTAssertTrue("\($0)".contains(fragment), "\(text): \($0)")
            }
        }
        // Planes of the file's row width stacked as its rows: the same layout, accepted.
        XCTAssertEqual(try LayerSpec.resolve("image(2,14,28) flatten linear(10)", input: [1, 28, 28]).first,
                       .image(channels: 2, height: 14, width: 28))
        XCTAssertThrowsError(try LayerSpec.shapes(try LayerSpec.parse("linear(4,3),conv2d(3,2,1),flatten"))) {
            XCTAssertTrue("\($0)".contains("entry 1 conv2d(3,2,1) needs images [C, H, W] but the entry before gives [3]"),
                          "\($0)")
        }
    }

    /// A CNN with batch norm saved after training steps (the running statistics moved) reads back on every device,
    /// named and shaped as PyTorch's state dict (num_batches_tracked an int64 of shape []), and computes the same.
    func testACNNCheckpointKeepsItsRunningStatisticsAsPyTorchNamesThem() throws {
        let model = try smallCNN(seed: 4, on: .cpu)
        let x = try Tensor.randn([6, 1 * 9 * 8], seed: 5, on: .cpu)
        for _ in 0..<3 { _ = try model.forward(x) }   // training mode: the statistics move
        model.eval()
        let expected = try model.forward(x).toArray()
        let path = try temporaryFolder(self).appendingPathComponent("cnn.safetensors").path
        try Checkpoint(model: model, loss: "cross-entropy", classes: 3, normalization: Normalization(mean: 0, std: 1))
            .save(model, to: path)
        let header = try SafeTensors.metadata(ofFileAt: path)
        XCTAssertNil(header["clnn.sizes"], "an MLP's field only")
        XCTAssertTrue(header["clnn.architecture"]!.hasPrefix("image(1,9,8),conv2d(1,4,3,p=1),batchnorm2d(4)"))
        let raw = try Data(contentsOf: URL(fileURLWithPath: path))
        let json = String(decoding: raw[8..<(8 + Int(raw[0]) + Int(raw[1]) << 8)], as: UTF8.self)
        XCTAssertTrue(json.contains("\"1.num_batches_tracked\":{\"data_offsets\""), json)
        XCTAssertTrue(json.contains("\"dtype\":\"I64\",\"shape\":[]"), json)
        let (tensors, _) = try SafeTensors.decode(Array(raw), path: path)
        XCTAssertEqual(tensors["1.num_batches_tracked"]?.values, [3])
        XCTAssertEqual(tensors["0.weight"]?.shape, [4, 1, 3, 3])
        XCTAssertEqual(tensors["8.weight"]?.shape, [3, 4 * 2 * 2], "a linear weight [out, in] as PyTorch keeps it")
        XCTAssertNotEqual(tensors["1.running_mean"]?.values, [0, 0, 0, 0])
        for device in testDevices {
            let (checkpoint, loaded) = try Checkpoint.load(path, on: device)
            XCTAssertEqual(checkpoint.layers, model.layerSpecs)
            XCTAssertEqual(checkpoint.inputFeatures, 72)
            loaded.eval()
            assertClose(try loaded.forward(try x.to(device)).toArray(), expected, rtol: 1e-4, atol: 1e-5,
                        "evaluation after loading on \(device)")
            let bn = try XCTUnwrap(loaded.layers.compactMap { $0 as? BatchNorm }.first)
            XCTAssertEqual(bn.batchesTracked, 3)
        }
    }

    /// PyTorch's save_file of a CNN (no clnn metadata) evaluates as the model it came from once the architecture is
    /// told; a missing statistic, a wrong shape, an extra tensor are each named.
    func testAPlainCNNStateDictReadsWithItsArchitectureAndEveryMismatchIsNamed() throws {
        let model = try smallCNN(seed: 8, on: .cpu)
        let x = try Tensor.randn([5, 72], seed: 9, on: .cpu)
        _ = try model.forward(x)
        model.eval()
        let expected = try model.forward(x).toArray()
        let path = try temporaryFolder(self).appendingPathComponent("cnn.safetensors").path
        try Checkpoint(model: model, loss: "cross-entropy", classes: 3, normalization: Normalization(mean: 0, std: 1))
            .save(model, to: path)
        let (tensors, _) = try SafeTensors.decode(Array(try Data(contentsOf: URL(fileURLWithPath: path))), path: path)
        func plain(_ edit: (inout [String: SafeTensors.Entry]) -> Void = { _ in }) -> [UInt8] {
            var t = tensors
            edit(&t)
            return pyTorchSaveFile(t.map { name, entry in
                let counter = name.hasSuffix("num_batches_tracked")
                return (name, counter ? "I64" : "F32", entry.shape,
                        counter ? entry.values.flatMap { withUnsafeBytes(of: Int64($0).littleEndian) { Array($0) } }
                            : bytes(entry.values, "F32"))
            })
        }
        let architecture = try XCTUnwrap(model.layerSpecs)
        let told = StateDictAssumptions(architecture: architecture)
        for device in testDevices {
            let (checkpoint, loaded) = try Checkpoint.decode(plain(), path: "torch.safetensors", on: device,
                                                              assuming: told)
            XCTAssertTrue(checkpoint.note?.contains("(the architecture given)") ?? false, checkpoint.note ?? "")
            XCTAssertFalse(checkpoint.note?.contains("I64") ?? true, "a counter is no conversion worth a note")
            loaded.eval()
            assertClose(try loaded.forward(try x.to(device)).toArray(), expected, rtol: 1e-4, atol: 1e-5,
                        "the PyTorch state dict on \(device)")
            // Without the counters (a state dict written without them), as PyTorch's load_state_dict: counted from 0.
            let uncountedFile = plain { $0 = $0.filter { !$0.key.hasSuffix("num_batches_tracked") } }
            let (_, uncounted) = try Checkpoint.decode(uncountedFile, path: "torch.safetensors", on: device,
                                                       assuming: told)
            XCTAssertEqual(uncounted.layers.compactMap { ($0 as? BatchNorm)?.batchesTracked }, [0])
            uncounted.eval()
            assertClose(try uncounted.forward(try x.to(device)).toArray(), expected, rtol: 1e-4, atol: 1e-5,
                        "the PyTorch state dict without counters on \(device)")
        }
        let cases: [([UInt8], String)] = [
            (plain { $0["1.running_var"] = nil }, "missing tensor '1.running_var' for the architecture image(1,9,8),"),
            (plain { $0["4.weight"] = SafeTensors.Entry(shape: [5, 4, 3, 3], values: .init(repeating: 0, count: 180)) },
             "tensor '4.weight' has shape [5, 4, 3, 3] but the architecture"),
            (plain { $0["2.weight"] = SafeTensors.Entry(shape: [4], values: [1, 1, 1, 1]) },
             "unexpected tensor '2.weight'"),
        ]
        for (file, fragment) in cases {
            XCTAssertThrowsError(try Checkpoint.decode(file, path: "torch.safetensors", on: .cpu, assuming: told)) {
                XCTAssertTrue("\($0)".hasPrefix("torch.safetensors: "), "\($0)")
                XCTAssertTrue("\($0)".contains(fragment), "\($0)")
            }
        }
        // Without the architecture, the 4-D weight says what it is and what to give.
        XCTAssertThrowsError(try Checkpoint.decode(plain(), path: "torch.safetensors", on: .cpu)) {
            XCTAssertTrue("\($0)".contains("a 4-D weight is a convolution's; without an architecture (--arch)"), "\($0)")
        }
    }

    /// A CNN's run saved inside an epoch and resumed in a fresh model and trainer reaches the weights (and batch-norm
    /// statistics) of the run never stopped, bit for bit, on every device.
    func testAResumedCNNEqualsAnUninterruptedRunOnEveryDevice() throws {
        let (train, _) = try fashionSlice(train: 16 * 5, test: 1)
        let folder = try temporaryFolder(self)
        // The dropout model: the resumed model is rebuilt from its checkpoint (its streams seeded from nothing of
        // the run) and must still draw the masks of the uninterrupted run's steps.
        for text in ["avgpool(2) flatten linear(10)", "conv(4,3,p=1) bn relu maxpool(2) flatten linear(10)",
                     "flatten linear(24) relu dropout(0.3) linear(10)"] {
            let specs = try LayerSpec.resolve(text, input: [1, 28, 28])
            for device in testDevices {
                var options = TrainingOptions()
                (options.epochs, options.batchSize, options.seed, options.momentum) = (1, 16, 3, 0.9)
                let data = try DeviceDataset(train, on: device)
                func model() throws -> Sequential {
                    try LayerSpec.modules(specs, initializer: .pytorchDefault, seed: 4, on: device)
                }
                let whole = try Trainer(model: try model(), loss: CrossEntropyLoss(), options: options)
                try whole.prepare(data)
                _ = try whole.trainEpoch(data, epoch: 1)
                for stop in 1...3 {
                    let first = try Trainer(model: try model(), loss: CrossEntropyLoss(), options: options)
                    try first.prepare(data)
                    _ = try first.trainEpoch(data, epoch: 1, maxSteps: stop)
                    var at = RunPosition(epoch: 0, step: stop)
                    at.lossSum = first.lastLossSum
                    let path = folder.appendingPathComponent("resume-\(stop).safetensors").path
                    try SavedRun.save(first, checkpoint: try Checkpoint(model: first.model, loss: "cross-entropy",
                                                                        classes: 10,
                                                                        normalization: Normalization(mean: 0, std: 1)),
                                      at: at, to: path)
                    let loaded = try SavedRun.load(path)
                    let (_, model) = try Checkpoint.decode(loaded.bytes, path: path, on: device)
                    let resumed = try Trainer(model: model, loss: CrossEntropyLoss(), options: loaded.state.options)
                    try loaded.state.restore(into: resumed, path: path)
                    try resumed.prepare(data)
                    _ = try resumed.trainEpoch(data, epoch: 1, firstStep: stop)
                    for (a, b) in zip(whole.model.namedParameters, resumed.model.namedParameters) {
                        XCTAssertEqual(try a.parameter.value.toArray(), try b.parameter.value.toArray(),
                                       "\(text) on \(device) resumed after step \(stop): \(a.name)")
                    }
                    for (a, b) in zip(whole.model.namedBuffers, resumed.model.namedBuffers) {
                        XCTAssertEqual(try a.value.toArray(), try b.value.toArray(),
                                       "\(text) on \(device) resumed after step \(stop): \(a.name)")
                    }
                }
            }
        }
    }

    /// image, conv(4,3,p=1), bn, relu, maxpool(2), conv(4,3,p=1), relu, avgpool(2), flatten, linear(16→3): 9×8 images
    /// ([4, 9, 8] → [4, 4, 4] → [4, 2, 2]).
    private func smallCNN(seed: UInt64, on device: DeviceTag) throws -> Sequential {
        try LayerSpec.modules(try LayerSpec.resolve("conv(4,3,p=1) bn relu maxpool(2) conv(4,3,p=1) relu avgpool(2) "
                                                    + "flatten linear(3)", input: [1, 9, 8]),
                              initializer: .pytorchDefault, seed: seed, on: device)
    }
}

final class ArchitectureTextCLITests: CLITestCase {
    /// `clnn train --arch` trains a CNN preset and a model written as layers, saves it, `clnn eval` reads it back; a
    /// contradicting or impossible architecture is an error naming the entry and sizes, with nothing written.
    func testTrainAndEvalTakeAnArchitecture() throws {
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 40, testCount: 12, rows: 12, cols: 10)
        let saved = out.appendingPathComponent("cnn.safetensors").path
        let common = ["--data", data.path, "--device", "cpu", "--epochs", "1", "--batch-size", "8"]
        let t = try run(["train", "--arch", "conv(4,3,p=1) bn relu maxpool(2) flatten linear(3)", "--save", saved]
                        + common)
        XCTAssertEqual(t.status, 0, t.stderr)
        XCTAssertTrue(t.stdout.contains("model image(1,12,10),conv2d(1,4,3,p=1),batchnorm2d(4),relu,maxpool2d(2),"
                                        + "flatten,linear(120,3)"), t.stdout)
        let e = try run(["eval", "--model", saved, "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(e.status, 0, e.stderr)
        let accuracy = { (s: String) in s.split(separator: "\n").first { $0.hasPrefix("test loss") }.map(String.init) }
        XCTAssertNotNil(accuracy(e.stdout), e.stdout)
        XCTAssertTrue(t.stdout.contains(String(accuracy(e.stdout)!.split(separator: " ")[5])),
                      "eval gives the accuracy training reported: \(t.stdout) / \(e.stdout)")

        let contradicting = try run(["eval", "--model", saved, "--arch", "conv(4,3,p=1) relu maxpool(2) flatten "
                                     + "linear(3)", "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(contradicting.status, 64, contradicting.stderr)
        XCTAssertTrue(contradicting.stderr.contains("entry 2 is batchnorm2d(4) in the checkpoint and relu in the model"),
                      contradicting.stderr)

        let bad = out.appendingPathComponent("bad.safetensors").path
        for (arch, fragment) in [("conv(4,13)", "entry 0 'conv(4,13)' has a window larger than its padded input "
                                  + "[1, 12, 10]"),
                                 ("conv(4,3) flatten linear(5)", "the model ends with 5 outputs but cross-entropy "
                                  + "over 3 classes needs 3"),
                                 ("image(1,10,10) flatten linear(3)", "entry 0 'image(1,10,10)' reads images of "
                                  + "1·10·10 = 100 values, but the data's examples have 120")] {
            let r = try run(["train", "--arch", arch, "--save", bad] + common)
            XCTAssertEqual(r.status, 64, r.stderr)
            XCTAssertTrue(r.stderr.contains(fragment), r.stderr)
            // A usage error found by the run names the subcommand's usage, as the parser's own errors do.
            XCTAssertTrue(r.stderr.contains("Usage: clnn train <options>"), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: bad), "nothing written")
        }
        let mixed = try run(["train", "--arch", "cnn", "--hidden", "30"] + common)
        XCTAssertEqual(mixed.status, 64)
        XCTAssertTrue(mixed.stderr.contains("--hidden shapes the mlp preset; --arch cnn gives every layer itself"),
                      mixed.stderr)
    }
}
