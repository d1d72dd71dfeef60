import Device
import Foundation
import NN
import TestSupport
import XCTest

/// Library calls given sizes, indices and options no run could use: each throws an error naming the problem, or
/// answers with nothing, where they trapped (found by a hostile probe of the library's API).
final class LibraryInputTests: XCTestCase {
    func testTrainingOptionsAndSamplersOutOfRangeThrowOrAreEmpty() throws {
        let data = try Dataset(images: testValues(4 * 6, seed: 1), labels: [0, 1, 2, 1], features: 6)
        for (batch, epochs, fragment) in [(0, 1, "the batch size is 0"), (-3, 1, "the batch size is -3"),
                                          (8, 0, "the run has 0 epochs")] {
            var options = TrainingOptions()
            (options.batchSize, options.epochs) = (batch, epochs)
            let model = try MLP.make(sizes: [6, 5, 3], seed: 1, on: .cpu)
            XCTAssertThrowsError(try Trainer(model: model, loss: CrossEntropyLoss(), options: options)) {
                XCTAssertTrue("\($0)".contains(fragment), "\($0)")
            }
        }
        XCTAssertEqual(BatchSampler(count: 10, batchSize: 0, seed: 1).batchRanges, [])
        XCTAssertEqual(BatchSampler(count: -3, batchSize: 4, seed: 1).order(epoch: 0), [])
        XCTAssertEqual(BatchSampler(count: 3, batchSize: 4, seed: 1).order(epoch: -1).sorted(), [0, 1, 2])
        XCTAssertEqual(data.prefix(-1).count, 0)
        XCTAssertEqual(try Dataset(images: [1, 2], labels: [.nan, 1e30], features: 1).classCount, 0)
        XCTAssertEqual(try Dataset(images: [1, 2], labels: [.nan, 4], features: 1).classCount, 5)
    }

    func testOptimizerStateOfAParameterIndexOutsideTheModelThrows() throws {
        let model = try MLP.make(sizes: [6, 5, 3], seed: 1, on: .cpu)
        for optimizer in [try SGD(model.parameters, lr: 0.1, momentum: 0.9) as any Optimizer,
                          try Adam(model.parameters) as any Optimizer] {
            for index in [-1, 4, 99] {
                XCTAssertThrowsError(try optimizer.stateTensors(of: index)) {
                    XCTAssertTrue("\($0)".contains("parameter index \(index) is outside 0..<4"), "\($0)")
                }
            }
            XCTAssertEqual(try optimizer.stateTensors(of: 3).count, optimizer.stateNames.count)
        }
    }

    func testSizesThatOverflowThrow() throws {
        XCTAssertThrowsError(try Tensor.arange(1 << 40)) {
            XCTAssertTrue("\($0)".contains("too many elements"), "\($0)")
        }
        // Allocated before a value is made: more than an OpenCL device can hold is refused at once (they filled a
        // host array of 8 GB first, for a minute).
        for device in openCLDevices {
            XCTAssertThrowsError(try Tensor.rand([Int(Int32.max)], seed: 1, on: device)) {
                XCTAssertTrue("\($0)".contains("cannot allocate 8589934588 bytes on \(device)"), "\($0)")
            }
            XCTAssertThrowsError(try Tensor.randn([Int(Int32.max)], seed: 1, on: device))
        }
        let x = try Tensor.zeros([2, 3])
        XCTAssertThrowsError(try x.reshaped([Int.max, Int.max, -1])) {
            XCTAssertTrue("\($0)".contains("too many elements"), "\($0)")
        }
        let out = try Tensor.zeros([2, 3])
        XCTAssertThrowsError(try out.gatherRows(from: try Tensor.zeros([4, 3]), order: try Tensor([0, 1], shape: [2]),
                                                offset: Int.max)) {
            XCTAssertTrue("\($0)".contains("exceed an order of 2"), "\($0)")
        }
        XCTAssertThrowsError(try Rows(try Tensor.zeros([4, 3]), order: try Tensor([0, 1], shape: [2]), offset: Int.max,
                                      count: 2)) {
            XCTAssertTrue("\($0)".contains("2 rows from \(Int.max) exceed an order of 2"), "\($0)")
        }
        XCTAssertThrowsError(try MLP.checkFits(sizes: [Int.max, Int.max], rows: Int.max, on: .cpu))
        XCTAssertThrowsError(try SafeTensors.encode(["a": .init(shape: [3], values: [1])], metadata: [:])) {
            XCTAssertTrue("\($0)".contains("tensor 'a' has shape [3] but 1 values"), "\($0)")
        }
        XCTAssertThrowsError(try SafeTensors.encode(["a": .init(shape: [Int.max, 2], values: [1])], metadata: [:]))
        XCTAssertThrowsError(try SafeTensors.encode(["a": .init(shape: [-1, -1], values: [1])], metadata: [:]))
    }
}

extension LibraryInputTests {
    /// Writing through an expanded view (stride 0) would write one place several times: refused, on every device;
    /// reading one, and writing a permuted view, still work.
    func testWritingIntoAnExpandedViewIsRefused() throws {
        for device in testDevices {
            let b = try Tensor([1, 2, 3], shape: [1, 3], on: device)
            let wide = try b.expanded(to: [4, 3])
            XCTAssertThrowsError(try wide.copy(from: try Tensor.full([4, 3], value: 7, on: device))) {
                XCTAssertTrue("\($0)".contains("writes into an expanded view"), "\($0)")
            }
            XCTAssertEqual(try b.toArray(), [1, 2, 3], "unchanged on \(device)")
            XCTAssertEqual(try (wide + 1).toArray(), [2, 3, 4, 2, 3, 4, 2, 3, 4, 2, 3, 4])
            let m = try Tensor.zeros([2, 3], on: device)
            try m.transposed().copy(from: try Tensor([1, 2, 3, 4, 5, 6], shape: [3, 2], on: device))
            XCTAssertEqual(try m.toArray(), [1, 3, 5, 2, 4, 6])
        }
    }
}

extension LibraryInputTests {
    /// A dataset whose counts disagree, data of no examples, a chunk or a step count no run could use, and a
    /// parameter given to an optimiser twice: each an error naming it (the datasets trapped; the rest ran as
    /// something else: no epoch, a loss of 0, every update made twice).
    func testDatasetsRunsAndOptimizersGivenWhatNoRunCanUseThrow() throws {
        func expect(_ fragment: String, _ body: () throws -> Any) {
            XCTAssertThrowsError(try body()) { XCTAssertTrue("\($0)".contains(fragment), "\($0)") }
        }
        expect("5 images for 2 labels of 3 features (expected labels × features = 6)") {
            try Dataset(images: [1, 2, 3, 4, 5], labels: [0, 1], features: 3)
        }
        expect("features must be at least 0, got -2") { try Dataset(images: [], labels: [], features: -2) }
        expect("expected labels × features = more than Int.max") {
            try Dataset(images: [1], labels: [0, 1], features: Int.max)
        }
        expect("7 pixels for 2 labels of 3 features") {
            try RawDataset(pixels: [UInt8](repeating: 0, count: 7), labels: [0, 1], features: 3)
        }
        expect("an image shape of [2, 2] does not hold 6 features") {
            try RawDataset(pixels: [UInt8](repeating: 0, count: 12), labels: [0, 1], features: 6, imageShape: [2, 2])
        }
        expect("an image shape of [-2, -3] does not hold 6 features") {
            try RawDataset(pixels: [UInt8](repeating: 0, count: 12), labels: [0, 1], features: 6,
                           imageShape: [-2, -3])
        }
        XCTAssertEqual(try RawDataset(pixels: [UInt8](repeating: 0, count: 12), labels: [0, 1], features: 6,
                                      imageShape: [2, 3]).count, 2)

        let data = try Dataset(images: testValues(4 * 6, seed: 1), labels: [0, 1, 2, 1], features: 6)
        let empty = try Dataset(images: [], labels: [], features: 6)
        let model = try MLP.make(sizes: [6, 5, 3], seed: 1, on: .cpu)
        let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: TrainingOptions())
        expect("the training data holds no examples") { try trainer.trainEpoch(empty, epoch: 1) }
        expect("maxSteps must be at least 0, got -1") { try trainer.trainEpoch(data, epoch: 1, maxSteps: -1) }
        XCTAssertEqual(try trainer.trainEpoch(data, epoch: 1, maxSteps: 0), 0, "an epoch of no steps")
        expect("the data holds no examples") { try trainer.evaluate(empty) }
        expect("chunk must be at least 1, got 0") { try trainer.evaluate(data, chunk: 0) }
        XCTAssertEqual(try trainer.evaluate(data, chunk: 3).accuracy, try trainer.evaluate(data).accuracy)

        let p = model.parameters
        expect("parameter '\(p[1].name)' is listed twice (at 1 and 3)") { try SGD([p[0], p[1], p[2], p[1]], lr: 0.1) }
        expect("is listed twice (at 0 and 1)") { try Adam([p[0], p[0]]) }
        expect("classes must be ≥ 1, got 0") {
            try MSELoss().predictedClasses(try Tensor([0.4, 2.6], shape: [2, 1]), classes: 0)
        }
    }
}
