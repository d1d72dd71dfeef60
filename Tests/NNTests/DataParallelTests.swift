import Foundation
import NN
import TestSupport
import XCTest

final class DataParallelTests: XCTestCase {
    /// The weights after `steps` steps of a 784-32-10 model, on `devices` (the first holds the model).
    private func weights(_ devices: [DeviceTag], optimizer: OptimizerKind, steps: Int,
                         data: Dataset) throws -> [[Float]] {
        var options = TrainingOptions()
        (options.epochs, options.batchSize, options.seed, options.optimizer) = (1, 48, 7, optimizer)
        (options.lr, options.momentum) = optimizer == .adam ? (0.003, 0) : (0.1, 0.9)
        let model = try MLP.make(sizes: [784, 32, 10], seed: 7, on: devices[0])
        let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options,
                                  replicas: Array(devices.dropFirst()))
        let device = try DeviceDataset(data, on: devices[0])
        try trainer.prepare(device)
        _ = try trainer.trainEpoch(device, epoch: 1, maxSteps: steps)
        XCTAssertEqual(trainer.exchangeSteps, devices.count > 1 ? steps : 0, "one exchange per step with replicas")
        XCTAssertEqual(trainer.exchangeSeconds > 0, devices.count > 1)
        return try model.parameters.map { try $0.value.toArray() }
    }

    /// The same run on 1 device and on 2 or 3 (the last batch of 13 examples split unevenly), for SGD with momentum and
    /// for Adam: after 20 steps the weights differ by at most 1e-5 (only the summation order differs).
    func testReplicasGiveTheWeightsOfOneDevice() throws {
        let (train, _) = try fashionSlice(train: 48 * 19 + 13, test: 1)
        var layouts: [[DeviceTag]] = [[.cpu, .cpu], [.cpu, .cpu, .cpu]]
        if let first = openCLDevices.first { layouts += [[first, .cpu], [.cpu, first]] }
        if openCLDevices.count >= 2 { layouts.append(Array(openCLDevices.prefix(2))) }
        for optimizer in OptimizerKind.allCases {
            for devices in layouts {
                let single = try weights([devices[0]], optimizer: optimizer, steps: 20, data: train)
                let replicated = try weights(devices, optimizer: optimizer, steps: 20, data: train)
                let worst = zip(single, replicated).map { zip($0, $1).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-5, "\(optimizer) on \(devices)")
                print("data parallel \(optimizer) on \(devices.map(\.description).joined(separator: ",")): "
                      + "max |Δw| after 20 steps = \(worst)")
            }
        }
    }

    /// Weights loaded into the model after its trainer was made reach the replicas: the run equals one device's
    /// from those weights (the replicas kept the weights they were copied with, and the first step's gradient came
    /// from them: 0.07 apart after 3 steps).
    func testWeightsLoadedAfterTheTrainerWasMadeReachTheReplicas() throws {
        let (train, _) = try fashionSlice(train: 48 * 4, test: 1)
        var options = TrainingOptions()
        (options.epochs, options.batchSize, options.momentum) = (1, 48, 0.9)
        let loaded = try MLP.make(sizes: [784, 32, 10], seed: 9, on: .cpu)
        func trained(_ devices: [DeviceTag]) throws -> [[Float]] {
            let model = try MLP.make(sizes: [784, 32, 10], seed: 7, on: .cpu)
            let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options,
                                      replicas: Array(devices.dropFirst()))
            for (p, source) in zip(model.parameters, loaded.parameters) { try p.load(source.value) }
            _ = try trainer.trainEpoch(try DeviceDataset(train, on: .cpu), epoch: 1, maxSteps: 3) { _ in }
            return try model.parameters.map { try $0.value.toArray() }
        }
        let (single, replicated) = (try trained([.cpu]), try trained([.cpu, .cpu]))
        let worst = zip(single, replicated).map { zip($0, $1).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, 1e-5)
    }

    /// A CNN (convolution, pooling, flatten, linear) trained data-parallel ends at the weights of one device; with
    /// batch norm each replica keeps its own running statistics and the model (the first device's) keeps those of
    /// its share of each batch, as PyTorch's DistributedDataParallel without SyncBatchNorm.
    func testACNNTrainsDataParallelAndEachReplicaKeepsItsOwnStatistics() throws {
        let (train, _) = try fashionSlice(train: 16 * 6, test: 1)
        var options = TrainingOptions()
        (options.epochs, options.batchSize, options.seed, options.momentum) = (1, 16, 3, 0.9)
        var layouts: [[DeviceTag]] = [[.cpu, .cpu]]
        if let first = openCLDevices.first { layouts.append([first, .cpu]) }
        func trained(_ text: String, on devices: [DeviceTag]) throws -> Sequential {
            let model = try LayerSpec.modules(try LayerSpec.resolve(text, input: [1, 28, 28]),
                                              initializer: .pytorchDefault, seed: 5, on: devices[0])
            let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options,
                                      replicas: Array(devices.dropFirst()))
            let data = try DeviceDataset(train, on: devices[0])
            try trainer.prepare(data)
            _ = try trainer.trainEpoch(data, epoch: 1, maxSteps: 6)
            return model
        }
        let plain = "conv(4,5,s=3) relu maxpool(2) flatten linear(10)"
        for devices in layouts {
            let single = try trained(plain, on: [devices[0]]), replicated = try trained(plain, on: devices)
            for (a, b) in zip(single.parameters, replicated.parameters) {
                assertClose(try b.value.toArray(), try a.value.toArray(), rtol: 1e-4, atol: 1e-5,
                            "data-parallel CNN on \(devices)")
            }
            // Batch norm: the first device saw the first half of each batch.
            let bn = try trained("conv(4,5,s=3) bn relu flatten linear(10)", on: devices)
            let statistics = try XCTUnwrap(bn.layers.compactMap { $0 as? BatchNorm }.first)
            XCTAssertEqual(statistics.batchesTracked, 6)
            XCTAssertNotEqual(try statistics.runningMean.toArray(), [0, 0, 0, 0])
        }
    }

    /// Data-parallel training with dropout, stopped and resumed from a checkpoint (the replica rebuilt, the last
    /// batch of 3 leaving the third copy out), ends at the bytes of the run never stopped; each model copy draws its
    /// own masks (two copies drawing one stream would drop the same rows of their shares).
    func testADataParallelRunWithDropoutResumesToTheSameWeights() throws {
        let (train, _) = try fashionSlice(train: 12 * 5 + 2, test: 1)
        let folder = try temporaryFolder(self)
        var options = TrainingOptions()
        (options.epochs, options.batchSize, options.seed, options.momentum) = (1, 12, 3, 0.9)
        let specs = try LayerSpec.resolve("flatten linear(16) relu dropout(0.5) linear(10)", input: [1, 28, 28])
        let devices: [DeviceTag] = [.cpu, .cpu, .cpu]
        func trainer(_ model: Sequential, _ options: TrainingOptions) throws -> Trainer {
            try Trainer(model: model, loss: CrossEntropyLoss(), options: options, replicas: Array(devices.dropFirst()))
        }
        let data = try DeviceDataset(train, on: .cpu)
        let whole = try trainer(try LayerSpec.modules(specs, seed: 8, on: .cpu), options)
        _ = try whole.trainEpoch(data, epoch: 1)
        let first = try trainer(try LayerSpec.modules(specs, seed: 8, on: .cpu), options)
        _ = try first.trainEpoch(data, epoch: 1, maxSteps: 2)
        var at = RunPosition(epoch: 0, step: 2)
        at.lossSum = first.lastLossSum
        let path = folder.appendingPathComponent("dp.safetensors").path
        try SavedRun.save(first, checkpoint: try Checkpoint(model: first.model, loss: "cross-entropy", classes: 10,
                                                            normalization: Normalization(mean: 0, std: 1)),
                          at: at, to: path)
        let loaded = try SavedRun.load(path)
        let resumed = try trainer(try Checkpoint.decode(loaded.bytes, path: path, on: .cpu).1, loaded.state.options)
        try loaded.state.restore(into: resumed, path: path)
        _ = try resumed.trainEpoch(data, epoch: 1, firstStep: 2)
        for (a, b) in zip(whole.model.namedParameters, resumed.model.namedParameters) {
            XCTAssertEqual(try a.parameter.value.toArray(), try b.parameter.value.toArray(), a.name)
        }
        // Each copy's stream differs: the masks a copy would draw at one step are not another's.
        let x = try Tensor.ones([4, 16])
        let masks = try (0..<3).map { worker -> [Float] in
            let dropout = try Dropout(0.5, seed: 0)
            let copy = Sequential.streamSeed(run: 3, worker: worker)
            dropout.setRandomStream(seed: Sequential.streamSeed(copy, child: 4), draw: 1)
            return try dropout.forward(x).toArray()
        }
        XCTAssertEqual(Set(masks).count, 3)
    }

    func testABatchThatCannotBeSplitIsAnErrorNamingTheDevices() throws {
        var options = TrainingOptions()
        options.batchSize = 64
        let model = try MLP.make(sizes: [4, 3], seed: 1, on: .cpu)
        XCTAssertThrowsError(try Trainer(model: model, loss: CrossEntropyLoss(), options: options,
                                         replicas: [.cpu, .cpu])) {
            XCTAssertTrue("\($0)".contains("the batch size 64 cannot be split evenly across 3 devices (cpu, cpu, cpu)"),
                          "\($0)")
        }
    }
}
