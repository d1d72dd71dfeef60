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
                let metadata = try Checkpoint(model: model, loss: "cross-entropy", classes: 10,
                                              normalization: Normalization(mean: 0, std: 1))
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
            XCTAssertThrowsError(try stopping.run(shouldStop: { seen >= 30 },
                                                  onStep: { seen = ($0.epoch - 1) * $0.steps + $0.step })) {
                guard case TrainingError.interrupted(epoch: 2, step: 10) = $0 else {
                    return XCTFail("\(device): \($0)")
                }
            }
            XCTAssertEqual(stopping.saved, RunPosition(epoch: 1, step: 10, lossSum: stopping.saved?.lossSum ?? -1))

            let loaded = try SavedRun.load(part)
            let (_, model) = try Checkpoint.decode(loaded.bytes, path: part, on: device)
            options = loaded.state.options
            let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options)
            try loaded.state.restore(into: trainer, path: part)
            let resumed = try TrainingRun(trainer: trainer, train: train, test: test, checkpoint: loaded.checkpoint,
                                          save: part,
                                          from: loaded.state.position)
            XCTAssertEqual(resumed.stepsTaken, 30)
            try resumed.run()
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: part)),
                           try Data(contentsOf: URL(fileURLWithPath: whole)),
                           "\(device): the resumed run's checkpoint is the uninterrupted run's")

            // A callback's error ends the run with that error.
            XCTAssertThrowsError(try newRun(folder.appendingPathComponent("cb-\(device).safetensors").path)
                .run(onStep: { _ in throw Stop() })) { XCTAssertTrue($0 is Stop, "\($0)") }
        }
    }

    /// A whole run from a request, as `clnn train` builds it: the library settles the options, saves, plots, resumes
    /// a stopped run to the same bytes, and names a contradiction of the saved run before any training.
    func testARunStartedFromARequestTrainsSavesPlotsAndResumes() throws {
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 50, testCount: 10)
        for device in testDevices {
            var request = RunRequest()
            (request.data, request.devices, request.hidden, request.epochs, request.batchSize)
                = (data.path, .one(device), [6], 2, 8)
            request.optimizer = .adam
            request.save = out.appendingPathComponent("whole-\(device).safetensors").path
            request.plot = out.appendingPathComponent("curves-\(device).svg").path
            var said: [String] = []
            let whole = try TrainingRun.start(request, say: { said.append($0) }, note: { _ in })
            XCTAssertEqual(whole.trainer.options.lr, 1e-3, "Adam's own default rate")
            XCTAssertTrue(said.contains { $0.contains("model 6-6-3 relu, cross-entropy, Adam lr 0.001") }, "\(said)")
            var epochs: [Int] = []
            try whole.run(onEpoch: { epochs.append($0.epoch) })
            XCTAssertEqual(epochs, [1, 2])
            XCTAssertEqual(whole.curves.epochs.map(\.0), [1, 2])
            XCTAssertTrue(try String(contentsOfFile: request.plot!, encoding: .utf8).contains("<svg"))
            XCTAssertEqual(whole.closingLines, ["saved \(request.save!)", "plotted \(request.plot!)"])

            // Stopped after epoch 1, then resumed from its files: the same checkpoint as the whole run's.
            var first = request
            (first.save, first.plot, first.stopAfter)
                = (out.appendingPathComponent("part-\(device).safetensors").path, nil, 1)
            let stopped = try TrainingRun.start(first, say: { _ in }, note: { _ in })
            try stopped.run()
            stopped.close()
            var resume = RunRequest()
            (resume.data, resume.devices, resume.resume) = (data.path, .one(device), first.save)
            let resumed = try TrainingRun.start(resume, say: { _ in }, note: { _ in })
            XCTAssertEqual(resumed.position, RunPosition(epoch: 1))
            try resumed.run()
            resumed.close()
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: first.save!)),
                           try Data(contentsOf: URL(fileURLWithPath: request.save!)), "\(device)")

            resume.lr = 0.5
            XCTAssertThrowsError(try TrainingRun.start(resume, say: { _ in }, note: { _ in })) {
                XCTAssertEqual(($0 as? RunRequest.Invalid)?.description ?? "\($0)",
                               "--lr 0.5 contradicts --resume \(first.save!), which records lr 0.001")
            }
        }
    }
}
