import Foundation
import NN
import TestSupport
import XCTest

/// A trainer kept in an actor: the isolation story the documentation gives.
actor TrainingJob {
    private let trainer: Trainer
    init(seed: UInt64, device: DeviceTag) throws {
        var options = TrainingOptions()
        (options.epochs, options.batchSize, options.seed) = (1, 16, seed)
        trainer = try Trainer(model: try MLP.make(sizes: [784, 8, 10], seed: seed, on: device),
                              loss: CrossEntropyLoss(), options: options)
    }
    func run(_ data: DeviceDataset) throws -> [Float] {
        _ = try trainer.trainEpoch(data, epoch: 1)
        return try trainer.model.parameters[0].value.toArray()
    }
}

final class ConcurrencyTests: XCTestCase {
    /// Two trainers in two tasks at once, sharing one device dataset, give what each gives alone.
    func testTrainersInConcurrentTasksShareADatasetAndMatchSerialRunsOnEveryDevice() async throws {
        let (train, _) = try fashionSlice(train: 320, test: 1)
        for device in testDevices {
            let data = try DeviceDataset(train, on: device)
            let alone = try await TrainingJob(seed: 1, device: device).run(data)
            let aloneOther = try await TrainingJob(seed: 2, device: device).run(data)
            async let first = TrainingJob(seed: 1, device: device).run(data)
            async let second = Task.detached { try await TrainingJob(seed: 2, device: device).run(data) }.value
            let (a, b) = try await (first, second)
            XCTAssertEqual(a, alone, "\(device)")
            XCTAssertEqual(b, aloneOther, "\(device)")
        }
    }
}
