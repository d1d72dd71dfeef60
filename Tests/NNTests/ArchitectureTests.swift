import Foundation
import NN
import TestSupport
import XCTest

/// A module a checkpoint cannot describe.
private final class Doubler: Module {
    var parameters: [Parameter] { [] }
    func forward(_ x: Tensor) throws -> Tensor { try x.affine(scale: 2) }
    func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? { try dy.affine(scale: 2) }
    func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix {
        DoubleMatrix(rows: x.rows, cols: x.cols, values: x.values.map { 2 * $0 })
    }
}

final class ArchitectureTests: XCTestCase {
    private let normalization = Normalization(mean: 0.25, std: 0.5)

    /// linear(6,4),gelu,linear(4,5),sigmoid,linear(5,3) built from separate and fused activations.
    private func mixedModel(seed: UInt64, on device: DeviceTag, fused: Bool) throws -> Sequential {
        let first = try Linear(6, 4, activation: fused ? .gelu : nil, seed: seed, on: device)
        let rest: [any Module] = [try Linear(4, 5, activation: .sigmoid, seed: seed + 1, on: device),
                                  try Linear(5, 3, seed: seed + 2, on: device)]
        return Sequential(fused ? [first] + rest : [first, ActivationLayer(.gelu)] + rest)
    }

    func testAMixedArchitectureRoundTripsAndRebuildsTheSameModelOnEveryDevice() throws {
        let path = try temporaryFolder(self).appendingPathComponent("mixed.safetensors").path
        let model = try mixedModel(seed: 7, on: .cpu, fused: false)
        let meta = try Checkpoint(model: model, loss: "cross-entropy", classes: 3, normalization: normalization,
                                  epoch: 4)
        XCTAssertEqual(LayerSpec.text(meta.layers), "linear(6,4),gelu,linear(4,5),sigmoid,linear(5,3)")
        XCTAssertEqual(meta.activation, "mixed")
        try meta.save(model, to: path)
        let (_, metadata) = try SafeTensors.decode(Array(try Data(contentsOf: URL(fileURLWithPath: path))), path: path)
        XCTAssertEqual(metadata["clnn.architecture"], "linear(6,4),gelu,linear(4,5),sigmoid,linear(5,3)")
        XCTAssertNil(metadata["clnn.activation"], "no single activation to tell older readers")
        let x = testValues(2 * 6, seed: 3)
        let expected = try model.forward(try Tensor(x, shape: [2, 6])).toArray()
        for device in testDevices {
            let (loaded, rebuilt) = try Checkpoint.load(path, on: device)
            XCTAssertEqual(loaded, meta)
            XCTAssertEqual(rebuilt.layerSpecs, model.layerSpecs)
            assertClose(try rebuilt.forward(try Tensor(x, shape: [2, 6], on: device)).toArray(), expected,
                        rtol: 1e-5, atol: 1e-6, "rebuilt model on \(device)")
        }
    }

    func testLoadIntoAModelTheUserBuiltAndMismatchesAreNamed() throws {
        let path = try temporaryFolder(self).appendingPathComponent("m.safetensors").path
        let source = try mixedModel(seed: 7, on: .cpu, fused: false)
        try Checkpoint(model: source, loss: "cross-entropy", classes: 3, normalization: normalization)
            .save(source, to: path)
        for device in testDevices {
            // A fused Linear(…, activation: .gelu) is the same two entries as Linear then ActivationLayer(.gelu).
            let mine = try mixedModel(seed: 99, on: device, fused: true)
            let checkpoint = try mine.load(from: path)
            XCTAssertEqual(checkpoint.classes, 3)
            XCTAssertEqual(try mine.parameters.map { try $0.value.toArray() },
                           try source.parameters.map { try $0.value.toArray() })

            let different = Sequential([try Linear(6, 4, activation: .tanh, seed: 1, on: device),
                                        try Linear(4, 5, activation: .sigmoid, seed: 2, on: device),
                                        try Linear(5, 3, seed: 3, on: device)])
            let before = try different.parameters.map { try $0.value.toArray() }
            XCTAssertThrowsError(try different.load(from: path)) { error in
                XCTAssertTrue("\(error)".hasPrefix(path + ": "), "\(error)")
                XCTAssertTrue("\(error)".contains("entry 1 is gelu in the checkpoint and tanh in the model"),
                              "\(error)")
            }
            XCTAssertEqual(try different.parameters.map { try $0.value.toArray() }, before,
                           "nothing loaded on a mismatch")
            let shorter = try MLP.make(sizes: [6, 4], seed: 1, on: device)
            XCTAssertThrowsError(try shorter.load(from: path)) {
                XCTAssertTrue("\($0)".contains("the checkpoint has 5 entries and the model 1"), "\($0)")
            }
        }
    }

    func testSaveChecksItsMetadataAndRefusesModulesItCannotDescribe() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("m.safetensors").path
        let model = try MLP.make(sizes: [6, 4, 3], seed: 1, on: .cpu)
        let cases: [(Checkpoint, String)] = [
            (Checkpoint(sizes: [6, 4, 3], loss: "cross-entropy", classes: 4, normalization: normalization),
             "disagrees with the output size 3"),
            (Checkpoint(sizes: [6, 4, 3], loss: "hinge", classes: 3, normalization: normalization),
             "unknown loss 'hinge'"),
            (Checkpoint(sizes: [6, 4, 3], loss: "cross-entropy", classes: 3,
                        normalization: Normalization(mean: 0, std: 0)), "clnn.std"),
            (Checkpoint(sizes: [6, 4, 3], loss: "cross-entropy", classes: 3, normalization: normalization,
                        imageShape: [2, 2]), "clnn.image"),
            (Checkpoint(sizes: [6, 4, 3], loss: "cross-entropy", classes: 3, normalization: normalization,
                        activation: .tanh), "entry 1 is tanh in the checkpoint and relu in the model"),
        ]
        for (meta, fragment) in cases {
            XCTAssertThrowsError(try meta.save(model, to: path)) { XCTAssertTrue("\($0)".contains(fragment), "\($0)") }
        }
        let custom = Sequential([try Linear(6, 3, seed: 1), Doubler()])
        XCTAssertThrowsError(try Checkpoint(model: custom, loss: "cross-entropy", classes: 3,
                                            normalization: normalization)) {
            XCTAssertTrue("\($0)".contains("Doubler"), "\($0)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [], "nothing was written")
    }

    func testACheckpointWithoutArchitectureIsAnMLPOfItsSizesAndActivation() throws {
        let model = try MLP.make(sizes: [3, 2, 2], activation: .leakyReLU, seed: 1, on: .cpu)
        var tensors: [String: SafeTensors.Entry] = [:]
        for (name, p) in model.namedParameters {
            let shape = p.value.shape.count == 2 ? [p.value.shape[1], p.value.shape[0]] : p.value.shape
            tensors[name] = SafeTensors.Entry(shape: shape, values: .init(repeating: 0.5, count: p.value.count))
        }
        let bytes = try SafeTensors.encode(tensors, metadata: ["clnn.sizes": "3,2,2", "clnn.loss": "cross-entropy",
            "clnn.classes": "2", "clnn.mean": "0", "clnn.std": "1", "clnn.activation": "leaky-relu"])
        let (checkpoint, rebuilt) = try Checkpoint.decode(bytes, path: "old.safetensors", on: .cpu)
        XCTAssertEqual(LayerSpec.text(checkpoint.layers), "linear(3,2),leaky-relu,linear(2,2)")
        XCTAssertEqual(rebuilt.layerSpecs, model.layerSpecs)
        for (architecture, fragment) in [("linear(3,2),swish,linear(2,2)", "entry 1 'swish'"),
                                         ("linear(3,2),relu,linear(3,2)",
                                          "entry 2 linear(3,2) takes 3 inputs but the entry before gives 2"),
                                         ("linear(3,2),relu,linear(2,2),linear(3,2)", "disagrees with 'clnn.sizes'")] {
            let bad = try SafeTensors.encode(tensors, metadata: ["clnn.sizes": "3,2,2", "clnn.loss": "cross-entropy",
                "clnn.classes": "2", "clnn.mean": "0", "clnn.std": "1", "clnn.architecture": architecture])
            XCTAssertThrowsError(try Checkpoint.decode(bad, path: "bad", on: .cpu)) {
                XCTAssertTrue("\($0)".contains(fragment), "\($0)")
            }
        }
    }
}

final class APIContractTests: XCTestCase {
    func testForwardAndBackwardReturnTensorsTheCallerOwnsOnEveryDevice() throws {
        for device in testDevices {
            let model = try MLP.make(sizes: [5, 4, 3], seed: 2, on: device)
            let y1 = try model.forward(try Tensor(testValues(10, seed: 1), shape: [2, 5], on: device))
            let kept = try y1.toArray()
            let dx1 = try model.backward(try Tensor(testValues(6, seed: 3), shape: [2, 3], on: device))
            let keptDx = try dx1.toArray()
            _ = try model.forward(try Tensor(testValues(10, seed: 2), shape: [2, 5], on: device))
            _ = try model.backward(try Tensor(testValues(6, seed: 4), shape: [2, 3], on: device))
            XCTAssertEqual(try y1.toArray(), kept,
                           "a second forward must not change the first one's result on \(device)")
            XCTAssertEqual(try dx1.toArray(), keptDx,
                           "a second backward must not change the first one's result on \(device)")
            XCTAssertFalse(model.reusesBuffers)
        }
    }

    func testTrainerReusesBuffersOnlyDuringItsStepsAndRestoresTheSetting() throws {
        let model = try MLP.make(sizes: [4, 3], seed: 1, on: .cpu)
        let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: TrainingOptions())
        let data = try Dataset(images: testValues(8, seed: 1), labels: [0, 2], features: 4)
        _ = try trainer.trainEpoch(data, epoch: 1)
        _ = try trainer.evaluate(data)
        XCTAssertFalse(model.reusesBuffers)
        model.setBufferReuse(true)
        _ = try trainer.trainEpoch(data, epoch: 2)
        XCTAssertTrue(model.reusesBuffers, "an opt-in made by the user stays")
    }

    func testTrainerAndEvaluatorTakeClassesFromTheModelAndCheckItsDeviceAtConstruction() throws {
        let model = try MLP.make(sizes: [4, 6, 3], seed: 1, on: .cpu)
        XCTAssertEqual(try Trainer(model: model, loss: CrossEntropyLoss(), options: TrainingOptions()).classes, 3)
        XCTAssertEqual(try Evaluator(model: model, loss: CrossEntropyLoss()).classes, 3)
        XCTAssertThrowsError(try Evaluator(model: model, loss: CrossEntropyLoss(), classes: 5)) {
            XCTAssertTrue("\($0)".contains("a model with 3 outputs cannot predict 5 classes"), "\($0)")
        }
        let regression = try MLP.make(sizes: [4, 1], seed: 1, on: .cpu)
        XCTAssertThrowsError(try Trainer(model: regression, loss: MSELoss(), options: TrainingOptions())) {
            XCTAssertTrue("\($0)".contains("pass classes:"), "\($0)")
        }
        XCTAssertEqual(try Trainer(model: regression, loss: MSELoss(), classes: 10,
                                   options: TrainingOptions()).classes, 10)

        let data = try Dataset(images: testValues(8, seed: 1), labels: [0, 2], features: 4)
        let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: TrainingOptions())
        let evaluated = try Evaluator(model: model, loss: CrossEntropyLoss()).evaluate(data)
        XCTAssertEqual(evaluated.loss, try trainer.evaluate(data).loss)

        try requireOpenCL()
        XCTAssertThrowsError(try Trainer(model: model, loss: CrossEntropyLoss(), options: TrainingOptions(),
                                         device: .opencl(0))) {
            XCTAssertTrue("\($0)".contains("is on cpu, not opencl:0"), "\($0)")
        }
        try model.layers[1].to(.opencl(0))
        XCTAssertThrowsError(try Evaluator(model: model, loss: CrossEntropyLoss())) {
            XCTAssertTrue("\($0)".contains("parameter 2.weight is on opencl:0, not cpu"), "\($0)")
        }
    }
}

final class FuzzShimTests: XCTestCase {
    /// Fuzz/ActivationNames.swift stands in for Device's `Activation` when the fuzzer builds the checkpoint reader.
    func testTheFuzzersActivationNamesAreDevices() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("Fuzz/ActivationNames.swift"), encoding: .utf8)
        let names = text.split(separator: "\n").compactMap { line -> String? in
            let parts = line.trimmingCharacters(in: .whitespaces).split(separator: " ")
            guard parts.first == "case", parts.count >= 2 else { return nil }
            return parts.count >= 4 ? String(parts[3].dropFirst().dropLast()) : String(parts[1])
        }
        XCTAssertEqual(names, Activation.allCases.map(\.rawValue))
    }
}

extension FuzzShimTests {
    /// The fuzzers start from seeds that reach each check of the readers (issue "Reliability III"): each seed here
    /// is refused, or read, as its name says.
    func testTheFuzzSeedsReachTheReadersChecks() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        func seed(_ name: String) throws -> [UInt8] {
            Array(try Data(contentsOf: root.appendingPathComponent("Fuzz/seeds/" + name)))
        }
        for (name, fragment) in [("checkpoint/nonfinite.safetensors", "tensor '0.weight' holds nan at [0, 5]"),
                                 ("checkpoint/overlap.safetensors", "tensors '0.bias' and '2.bias' overlap"),
                                 ("checkpoint/contradiction.safetensors",
                                  "'clnn.activation' relu contradicts 'clnn.architecture'"),
                                 ("checkpoint/leading-zero.safetensors",
                                  "has index '02', which nn.Sequential never writes"),
                                 ("checkpoint/batchnorm-counter.safetensors", "(this is a BatchNorm's)"),
                                 ("safetensors/gap.safetensors", "belong to no tensor")] {
            XCTAssertThrowsError(try Checkpoint.verified(try seed(name), path: name, vocabulary: Checkpoint.vocabulary),
                                 name) {
                XCTAssertTrue("\($0)".contains(fragment), "\(name): \($0)")
            }
        }
        let bound = try Checkpoint.verified(try seed("checkpoint/bound-state.safetensors"), path: "bound",
                                            vocabulary: Checkpoint.vocabulary)
        XCTAssertEqual(bound.checkpoint.trainingStateDigest, 0x9c2e51fa0b3d7e11)
        let (tensors, metadata) = try SafeTensors.decode(try seed("safetensors/training-state.safetensors"),
                                                         path: "state")
        XCTAssertEqual(metadata["clnn.step"], "5")
        XCTAssertEqual(tensors.count, 2)
    }
}
