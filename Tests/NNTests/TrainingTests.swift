import Foundation
import NN
import TestSupport
import XCTest

/// A slice of the real Fashion-MNIST, normalised with its training statistics; skips when it is not installed.
func fashionSlice(train: Int, test: Int) throws -> (Dataset, Dataset) {
    guard let (fullTrain, fullTest) = try fashionMNIST.get() else {
        throw XCTSkip("Fashion-MNIST is not installed at \(MNISTFolder.defaultPath) "
            + "(apt-get install dataset-fashion-mnist)")
    }
    let norm = Normalization.fit(fullTrain)
    return (norm.apply(fullTrain.prefix(train)), norm.apply(fullTest.prefix(test)))
}

/// Loaded once for the whole suite.
let fashionMNIST: Result<(Dataset, Dataset)?, Error> = Result {
    let folder = MNISTFolder()
    guard FileManager.default.fileExists(atPath: folder.path) else { return nil }
    return try folder.load()
}

final class TrainingTests: XCTestCase {
    func testShortTrainingRunCrossesTheAccuracyBarOnEveryDevice() throws {
        let (train, test) = try fashionSlice(train: 4000, test: 1000)
        var options = TrainingOptions()
        (options.epochs, options.batchSize, options.lr, options.seed) = (3, 32, 0.1, 5)
        for device in testDevices {
            let model = try MLP.make(sizes: [784, 32, 10], seed: 5, on: device)
            let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), classes: 10, options: options,
                                      device: device)
            let before = try trainer.evaluate(test).accuracy
            for epoch in 1...options.epochs { _ = try trainer.trainEpoch(train, epoch: epoch) }
            let (loss, accuracy) = try trainer.evaluate(test)
            XCTAssertGreaterThan(accuracy, 0.75, "\(device): test accuracy after 3 epochs on 4000 images")
            XCTAssertLessThan(before, 0.5, "\(device): the untrained model should be far worse")
            XCTAssertLessThan(loss, 0.8, "\(device)")
        }
    }

    func testMaxStepsTakesExactlyTheFirstStepsOfTheFullRunOnEveryDevice() throws {
        // The cosine schedule is laid over the whole run: an epoch cut short by maxSteps must take the same learning
        // rates as the full epoch's first steps (here the full epoch is stopped after step 7 by its progress callback).
        let (train, _) = try fashionSlice(train: 32 * 20, test: 1)
        var options = TrainingOptions()
        (options.epochs, options.batchSize, options.lr, options.seed, options.schedule) = (3, 32, 0.2, 9, .cosine)
        for device in testDevices {
            func weights(maxSteps: Int?) throws -> [[Float]] {
                let model = try MLP.make(sizes: [784, 16, 10], seed: 9, on: device)
                let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options, device: device)
                let data = try DeviceDataset(train, on: device)
                if let maxSteps {
                    _ = try trainer.trainEpoch(data, epoch: 2, maxSteps: maxSteps, progress: { _ in })
                } else {
                    var stop = false
                    XCTAssertThrowsError(try trainer.trainEpoch(data, epoch: 2, reportEvery: 7, shouldStop: { stop },
                                                                progress: { stop = $0.step == 7 }))
                }
                return try model.parameters.map { try $0.value.toArray() }
            }
            func largestDifference(_ a: [[Float]], _ b: [[Float]]) -> Float {
                zip(a, b).map { zip($0, $1).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 0
            }
            let seven = try weights(maxSteps: 7)
            XCTAssertEqual(largestDifference(seven, try weights(maxSteps: nil)), 0,
                           "\(device): max |Δw| against the full epoch's first 7 steps")
            XCTAssertGreaterThan(largestDifference(seven, try weights(maxSteps: 6)), 0,
                                 "\(device): the check can tell steps apart")
        }
    }

    func testSameSeedGivesTheSameLossesOnCPUAndOpenCL() throws {
        try requireOpenCL()
        let (train, _) = try fashionSlice(train: 640, test: 1)
        var options = TrainingOptions()
        (options.epochs, options.batchSize, options.seed) = (2, 64, 11)
        func losses(_ device: DeviceTag) throws -> [Float] {
            let model = try MLP.make(sizes: [784, 20, 10], seed: 11, on: device)
            let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), classes: 10, options: options,
                                      device: device)
            var out: [Float] = []
            for epoch in 1...2 {
                _ = try trainer.trainEpoch(train, epoch: epoch, reportEvery: 1,
                                           progress: { out.append($0.runningLoss) })
            }
            return out
        }
        let cpu = try losses(.cpu)
        XCTAssertEqual(cpu.count, 20)
        for device in openCLDevices {
            // fp32 sums in a different order drift slowly over 20 steps; 1e-3 relative is far tighter than any
            // real divergence (a wrong gradient changes the losses in the first digit).
            assertClose(try losses(device), cpu, rtol: 1e-3, atol: 1e-4, "per-step losses on \(device) vs cpu")
        }
    }

    func testMSERegressionOnTheLabelLearns() throws {
        let (train, test) = try fashionSlice(train: 2000, test: 500)
        var options = TrainingOptions()
        (options.epochs, options.batchSize, options.lr) = (2, 32, 0.01)
        let model = try MLP.make(sizes: [784, 16, 1], seed: 2, on: .cpu)
        let trainer = try Trainer(model: model, loss: MSELoss(), classes: 10, options: options, device: .cpu)
        let before = try trainer.evaluate(test).loss
        for epoch in 1...2 { _ = try trainer.trainEpoch(train, epoch: epoch) }
        let after = try trainer.evaluate(test).loss
        XCTAssertLessThan(after, before / 3, "MSE on the label should fall well below its starting value")
    }

    func testOutOfRangeLabelsAreRejected() throws {
        let model = try MLP.make(sizes: [2, 3], seed: 1, on: .cpu)
        let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), classes: 3, options: TrainingOptions(),
                                  device: .cpu)
        let data = try Dataset(images: [0, 0, 1, 1], labels: [1, 7], features: 2)
        XCTAssertThrowsError(try trainer.validateLabels(data, source: "labels.idx")) { error in
            XCTAssertEqual("\(error)", "labels.idx: label 7 of example 1 is out of range for a model of 3 classes")
        }
    }

    func testNonFiniteLossNamesTheFirstBadStepWhateverTheReportInterval() throws {
        let data = try Dataset(images: (0..<64).map { Float($0) * 1e3 }, labels: (0..<32).map { Float($0 % 2) },
                           features: 2)
        var options = TrainingOptions()
        (options.batchSize, options.lr, options.schedule) = (4, 1e30, .constant)
        func firstBadStep(reportEvery: Int) -> (Int, String)? {
            guard let model = try? MLP.make(sizes: [2, 8, 2], seed: 1, on: .cpu),
                  let trainer = try? Trainer(model: model, loss: CrossEntropyLoss(), classes: 2, options: options,
                                             device: .cpu)
            else { return nil }
            do {
                _ = try trainer.trainEpoch(data, epoch: 1, reportEvery: reportEvery)
            } catch let error as TrainingError {
                if case .nonFiniteLoss(let epoch, let step, _, let hint) = error, epoch == 1 { return (step, hint) }
            } catch {}
            return nil
        }
        // Reporting every step finds the first bad step by construction; every 50 steps must name the same one.
        let exact = try XCTUnwrap(firstBadStep(reportEvery: 1))
        XCTAssertGreaterThan(exact.0, 1)
        XCTAssertEqual(firstBadStep(reportEvery: 50)?.0, exact.0)
        XCTAssertEqual(firstBadStep(reportEvery: 3)?.0, exact.0)
        XCTAssertTrue(exact.1.contains("learning rate"), exact.1)
    }

    func testHugeWeightDecayIsBlamedOnTheDecayAndLabelsAreCheckedFirst() throws {
        let data = try Dataset(images: (0..<64).map { Float($0 % 7) / 7 }, labels: (0..<32).map { Float($0 % 2) },
                           features: 2)
        var options = TrainingOptions()
        (options.batchSize, options.lr, options.weightDecay, options.schedule) = (4, 0.1, 1e6, .constant)
        let model = try MLP.make(sizes: [2, 8, 2], seed: 1, on: .cpu)
        let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), classes: 2, options: options, device: .cpu)
        XCTAssertThrowsError(try (1...20).forEach { _ = try trainer.trainEpoch(data, epoch: $0) }) { error in
            XCTAssertTrue("\(error)".contains("weight decay"), "\(error)")
        }
        let bad = try Dataset(images: [0, 0, 1, 1], labels: [1, 7], features: 2)
        XCTAssertThrowsError(try trainer.trainEpoch(bad, epoch: 1)) { error in
            XCTAssertTrue(error is DataError, "a label out of range is a data error, not a divergence: \(error)")
        }
    }

    func testDivergenceLeavesTheLastGoodCheckpointIntact() throws {
        let (train, _) = try fashionSlice(train: 256, test: 1)
        var options = TrainingOptions()
        (options.batchSize, options.schedule) = (32, .constant)
        let model = try MLP.make(sizes: [784, 8, 10], seed: 3, on: .cpu)
        let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), classes: 10, options: options, device: .cpu)
        _ = try trainer.trainEpoch(train, epoch: 1)
        let path = try temporaryFolder(self).appendingPathComponent("good.safetensors").path
        let checkpoint = Checkpoint(sizes: [784, 8, 10], loss: "cross-entropy", classes: 10,
                                    normalization: Normalization(mean: 0, std: 1))
        try checkpoint.save(model, to: path)
        let good = try Data(contentsOf: URL(fileURLWithPath: path))

        let diverging = try Trainer(model: model, loss: CrossEntropyLoss(), classes: 10,
                                    options: { var o = options; o.lr = 1e30; return o }(), device: .cpu)
        XCTAssertThrowsError(try diverging.trainEpoch(train, epoch: 2, reportEvery: 1)) { error in
            XCTAssertTrue("\(error)".contains("at epoch 2, step"), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), good)
        XCTAssertNoThrow(try Checkpoint.load(path, on: .cpu))
    }

    func testLearningRateSchedules() {
        XCTAssertEqual(LearningRateSchedule.constant.rate(base: 0.1, step: 50, totalSteps: 100), 0.1)
        XCTAssertEqual(LearningRateSchedule.cosine.rate(base: 0.1, step: 0, totalSteps: 100), 0.1)
        XCTAssertEqual(LearningRateSchedule.cosine.rate(base: 0.1, step: 50, totalSteps: 100), 0.05, accuracy: 1e-7)
        XCTAssertEqual(LearningRateSchedule.cosine.rate(base: 0.1, step: 100, totalSteps: 100), 0, accuracy: 1e-7)
    }

    func testAutoDevicePrefersAGPUElseMeasuresCPUAgainstCPUTypeOpenCL() throws {
        let decision = try DeviceChoice.fastest(sizes: [20, 8, 3], batchSize: 16, steps: 3)
        let devices = OpenCLRuntime.shared.devices
        if let gpu = devices.first(where: { !$0.isCPU }) {
            XCTAssertEqual(decision.device, .opencl(gpu.index))
            XCTAssertTrue(decision.stepSeconds.isEmpty)
        } else if devices.isEmpty {
            XCTAssertEqual(decision.device, .cpu)
            XCTAssertTrue(decision.reason.contains("no OpenCL device"), decision.reason)
        } else {
            XCTAssertEqual(decision.stepSeconds.map(\.device), [.cpu, .opencl(0)])
            XCTAssertTrue(decision.stepSeconds.allSatisfy { $0.seconds > 0 })
            let fastest = decision.stepSeconds.min { $0.seconds < $1.seconds }!.device
            XCTAssertEqual(decision.device, fastest, "the faster measured device wins: \(decision.reason)")
        }
    }

    func testEpochsCountFromOneAndProgressIsTheTrailingClosure() throws {
        let data = try Dataset(images: (0..<32).map { Float($0 % 5) / 5 }, labels: (0..<16).map { Float($0 % 2) },
                           features: 2)
        var options = TrainingOptions()
        (options.epochs, options.batchSize) = (2, 4)
        let trainer = try Trainer(model: try MLP.make(sizes: [2, 3, 2], seed: 1, on: .cpu), loss: CrossEntropyLoss(),
                                  classes: 2, options: options, device: .cpu)
        // A loop from 0 would run the cosine schedule backwards: it is an error naming the rule, not a silent result.
        XCTAssertThrowsError(try trainer.trainEpoch(data, epoch: 0)) {
            XCTAssertTrue("\($0)".contains("counts from 1"), "\($0)")
        }
        XCTAssertThrowsError(try trainer.trainEpoch(data, epoch: 3))
        var steps: [Int] = []
        _ = try trainer.trainEpoch(data, epoch: 1, reportEvery: 1) { report in steps.append(report.step) }
        XCTAssertEqual(steps, [1, 2, 3, 4], "the trailing closure is the progress callback")
        XCTAssertNoThrow(try trainer.trainEpoch(data, epoch: 2))
    }
}
