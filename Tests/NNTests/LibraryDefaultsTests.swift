import Foundation
import NN
import TestSupport
import XCTest

/// A custom module with a parameter of its own: a per-feature scale.
private final class Scale: Module {
    let scale: Parameter
    init(_ features: Int, on device: DeviceTag) throws {
        scale = try Parameter(name: "scale",
                              value: try Tensor(testValues(features, seed: 11), shape: [features], on: device))
    }
    var parameters: [Parameter] { [scale] }
    func forward(_ x: Tensor) throws -> Tensor { x }
    func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? { dy }
    func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix { x }
}

/// What a library user gets without reading the CLI (issue "The run belongs to the library").
final class LibraryDefaultsTests: XCTestCase {
    func testAdamTrainsWithItsOwnDefaultLearningRate() throws {
        var options = TrainingOptions()
        XCTAssertEqual(options.lr, 0.1)
        options.optimizer = .adam
        XCTAssertEqual(options.lr, 0.001, "Adam's default, not SGD's")
        options.lr = 0.01
        XCTAssertEqual(options.lr, 0.01)

        let (train, test) = try fashionSlice(train: 2000, test: 500)
        var adam = TrainingOptions()
        (adam.optimizer, adam.epochs) = (.adam, 2)
        let trainer = try Trainer(model: try MLP.make(sizes: [784, 32, 10], seed: 1, on: .cpu),
                                  loss: CrossEntropyLoss(), options: adam)
        for epoch in 1...2 { _ = try trainer.trainEpoch(train, epoch: epoch) }
        let (_, accuracy) = try trainer.evaluate(test)
        XCTAssertGreaterThan(accuracy, 0.7, "Adam with the library's defaults learns")
    }

    func testTensorsMadeInTheProgressCallbackBelongToTheCaller() throws {
        let (train, _) = try fashionSlice(train: 256, test: 1)
        for device in testDevices {
            var options = TrainingOptions()
            (options.epochs, options.batchSize) = (1, 32)
            let model = try MLP.make(sizes: [784, 8, 10], seed: 1, on: device)
            let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options)
            let probe = try Tensor(Array(train.images.prefix(784 * 2)), shape: [2, 784], on: device)
            var outputs: [(Tensor, [Float])] = []
            _ = try trainer.trainEpoch(train, epoch: 1, reportEvery: 2) { _ in
                let y = try model(probe)
                outputs.append((y, try y.toArray()))
            }
            XCTAssertEqual(Set(outputs.map { ObjectIdentifier($0.0) }).count, outputs.count,
                           "\(device): a new tensor each time")
            for (tensor, values) in outputs {
                XCTAssertEqual(try tensor.toArray(), values, "\(device): and its values stay")
            }
            XCTAssertFalse(model.reusesBuffers, "the setting is the model's again after the epoch")
        }
    }

    func testAnyModuleSavesAndLoadsAPlainStateDict() throws {
        let folder = try temporaryFolder(self)
        for device in testDevices {
            let model = Sequential([try Linear(6, 4, activation: .relu, seed: 1, on: device), try Scale(4, on: device),
                                    try Linear(4, 3, seed: 2, on: device)])
            let path = folder.appendingPathComponent("custom-\(device).safetensors").path
            try model.saveStateDict(to: path)
            let copy = Sequential([try Linear(6, 4, activation: .relu, seed: 7, on: device), try Scale(4, on: device),
                                   try Linear(4, 3, seed: 8, on: device)])
            try copy.parameters[2].load(try Tensor.zeros([4], on: device))
            try copy.loadStateDict(from: path)
            for (a, b) in zip(model.namedParameters, copy.namedParameters) {
                XCTAssertEqual(a.name, b.name)
                XCTAssertEqual(try a.parameter.value.toArray(), try b.parameter.value.toArray(), "\(device): \(a.name)")
            }
            XCTAssertEqual(model.namedParameters.map(\.name), ["0.weight", "0.bias", "2.scale", "3.weight", "3.bias"])
            let other = Sequential([try Linear(6, 5, seed: 1, on: device)])
            XCTAssertThrowsError(try other.loadStateDict(from: path)) {
                XCTAssertTrue("\($0)".contains("unexpected tensor '2.scale'"), "\($0)")
            }
        }
    }

    func testGradientCheckSamplesEntriesAndNamesThemByLayer() throws {
        let model = Sequential([try Linear(784, 50, activation: .tanh, seed: 1, on: .cpu),
                                try Linear(50, 1, seed: 2, on: .cpu)])
        let x = try Tensor.randn([4, 784], seed: 3, on: .cpu)
        let results = try GradientCheck.check(model, input: x, samples: 16)
        XCTAssertEqual(results.map(\.name), ["input", "0.weight", "0.bias", "2.weight", "2.bias"])
        for r in results {
            XCTAssertEqual(r.analytic.count, r.name == "2.bias" ? 1 : 16, r.name)
            XCTAssertLessThanOrEqual(r.worstRatio(rtol: 1e-3, atol: 1e-4), 1, r.name)
        }
        XCTAssertNil(results.last?.indices, "a tensor smaller than the sample is checked whole")
    }
}

extension LibraryDefaultsTests {
    /// The model owns its parameters: the flat buffers are laid out when it is built, and neither an optimiser, nor a
    /// data-parallel trainer, nor a move to another device changes which tensor a parameter's value is.
    func testAParameterTensorCapturedBeforeTrainingShowsTheTrainedValues() throws {
        let (train, _) = try fashionSlice(train: 256, test: 1)
        for device in testDevices {
            for replicas in [[], [DeviceTag.cpu]] {
                var options = TrainingOptions()
                (options.epochs, options.batchSize, options.optimizer) = (1, 32, .adam)
                let model = try MLP.make(sizes: [784, 8, 10], seed: 1, on: device)
                let captured = model.parameters.map(\.value)
                let before = try captured.map { try $0.toArray() }
                XCTAssertNotNil(model.parameterBlock, "\(device): laid out when built")
                let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options, replicas: replicas)
                _ = try trainer.trainEpoch(train, epoch: 1)
                for (i, p) in model.parameters.enumerated() {
                    XCTAssertTrue(p.value === captured[i], "\(device) \(replicas): the same tensor")
                    XCTAssertNotEqual(try captured[i].toArray(), before[i],
                                      "\(device) \(replicas): showing the trained values")
                }
            }
            // A move keeps the tensors too, and the optimiser's state follows.
            let model = try MLP.make(sizes: [6, 4, 3], seed: 2, on: device)
            let captured = model.parameters.map(\.value)
            let optimizer = try SGD(model.parameters, lr: 0.1, momentum: 0.9)
            try model.to(.cpu)
            XCTAssertTrue(zip(model.parameters, captured).allSatisfy { $0.value === $1 })
            XCTAssertEqual(captured[0].device, .cpu)
            try model.zeroGrad()
            _ = try model.forward(try Tensor.randn([2, 6], seed: 4, on: .cpu))
            _ = try model.backward(try Tensor.randn([2, 3], seed: 3, on: .cpu))
            try optimizer.step()
            XCTAssertEqual(try optimizer.state(of: model.parameters[0])["momentum_buffer"]?.device, .cpu)
        }
    }
}

extension LibraryDefaultsTests {
    /// A `Sequential` of part of a model leaves the parameters in the model's block; a parameter moved alone and
    /// back is laid out again at the next epoch, data-parallel training included.
    func testTheModelsBlockStaysItsOwn() throws {
        let (train, _) = try fashionSlice(train: 128, test: 1)
        let model = try MLP.make(sizes: [784, 8, 10], seed: 1, on: .cpu)
        let part = Sequential(Array(model.layers.dropLast()))
        XCTAssertNil(part.parameterBlock, "built over another model's parameters: no block of its own")
        XCTAssertTrue(try XCTUnwrap(model.parameterBlock).holds(model.parameters))
        var options = TrainingOptions()
        (options.epochs, options.batchSize) = (2, 32)
        let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options, replicas: [.cpu])
        _ = try trainer.trainEpoch(train, epoch: 1)
        try part.layoutParameters()  // takes the first layer's parameters into a block of its own
        XCTAssertFalse(try XCTUnwrap(model.parameterBlock).holds(model.parameters))
        _ = try trainer.trainEpoch(train, epoch: 2)  // laid out again: still one model's data-parallel step
        let other = try MLP.make(sizes: [784, 8, 10], seed: 1, on: .cpu)
        let reference = try Trainer(model: other, loss: CrossEntropyLoss(), options: options, replicas: [.cpu])
        for epoch in 1...2 { _ = try reference.trainEpoch(train, epoch: epoch) }
        for (a, b) in zip(model.parameters, other.parameters) {
            XCTAssertEqual(try a.value.toArray(), try b.value.toArray())
        }
        XCTAssertTrue(try XCTUnwrap(model.parameterBlock).holds(model.parameters))
    }
}
