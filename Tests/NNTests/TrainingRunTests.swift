import Foundation
import NN
import TestSupport
import XCTest

/// The run as library code: `TrainingRun` trains, evaluates and saves; a run stopped mid-epoch saves the steps taken
/// and one resumed from its files ends where a run never stopped ends, byte for byte.
final class TrainingRunTests: XCTestCase {
    struct Stop: Error {}

    func testARunStoppedMidEpochAndResumedEndsAsARunNeverStoppedOnEveryDevice() throws {
        let (trainSet, testSet) = try fashionSlice(train: 640, test: 100)
        let folder = try temporaryFolder(self)
        for device in testDevices {
            var options = TrainingOptions()
            (options.epochs, options.batchSize, options.optimizer, options.lr) = (2, 32, .adam, 0.003)
            let train = try DeviceDataset(trainSet, on: device), test = try DeviceDataset(testSet, on: device)
            func newRun(_ path: String, from model: Sequential? = nil) throws -> TrainingRun {
                let model = try model ?? MLP.make(sizes: [784, 12, 10], activation: .tanh, seed: 5, on: device)
                let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options)
                let metadata = try Checkpoint(model: model, loss: "cross-entropy", classes: 10, normalization: Normalization(mean: 0, std: 1))
                return try TrainingRun(trainer: trainer, train: train, test: test, checkpoint: metadata, save: path)
            }
            let whole = folder.appendingPathComponent("whole-\(device).safetensors").path
            var epochs: [TrainingRun.EpochReport] = []
            try newRun(whole).run(onEpoch: { epochs.append($0) })
            XCTAssertEqual(epochs.map(\.epoch), [1, 2])
            XCTAssertEqual(epochs.map(\.steps), [20, 20])

            // Stopped at the report after step 30 (step 10 of epoch 2, reports every 5 steps).
            let part = folder.appendingPathComponent("part-\(device).safetensors").path
            let stopping = try newRun(part)
            stopping.reportEvery = 5
            var seen = 0
            XCTAssertThrowsError(try stopping.run(shouldStop: { seen >= 30 }, onStep: { seen = ($0.epoch - 1) * $0.steps + $0.step })) {
                guard case TrainingError.interrupted(epoch: 2, step: 10) = $0 else { return XCTFail("\(device): \($0)") }
            }
            XCTAssertEqual(stopping.saved, RunPosition(epoch: 1, step: 10, lossSum: stopping.saved?.lossSum ?? -1))

            let loaded = try SavedRun.load(part)
            let (_, model) = try Checkpoint.decode(loaded.bytes, path: part, on: device)
            options = loaded.state.options
            let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options)
            try loaded.state.restore(into: trainer, path: part)
            let resumed = try TrainingRun(trainer: trainer, train: train, test: test, checkpoint: loaded.checkpoint, save: part,
                                          from: loaded.state.position)
            XCTAssertEqual(resumed.stepsTaken, 30)
            try resumed.run()
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: part)), try Data(contentsOf: URL(fileURLWithPath: whole)),
                           "\(device): the resumed run's checkpoint is the uninterrupted run's")

            // A callback's error ends the run with that error.
            XCTAssertThrowsError(try newRun(folder.appendingPathComponent("cb-\(device).safetensors").path)
                .run(onStep: { _ in throw Stop() })) { XCTAssertTrue($0 is Stop, "\($0)") }
        }
    }
}
