import Device
import Foundation
import NN
import TestSupport
import XCTest

/// A module written with tensor ops and no backward of its own: softplus, log(1 + eˣ), shifted down by log 2.
/// x + c, a tensor the module holds (not a parameter).
final class Shift: TapeModule {
    let c: Tensor
    let tape = TapeRecord()
    init(_ c: Tensor) { self.c = c }
    var parameters: [Parameter] { [] }
    func compute(_ x: Tensor) throws -> Tensor { try x + c }
}

final class ShiftedSoftplus: TapeModule {
    let tape = TapeRecord()
    var parameters: [Parameter] { [] }
    func compute(_ x: Tensor) throws -> Tensor { try (x.exp() + 1).log() - Float(M_LN2) }
}

/// Modules from tensor ops train with the library's loop, to the same curve as the fused layers, and save like them.
final class TapeModuleTests: XCTestCase {
    private func models(_ sizes: [Int], seed: UInt64, on device: DeviceTag) throws -> (fused: Sequential,
                                                                                         tape: Sequential) {
        let fused = try MLP.make(sizes: sizes, seed: seed, on: device)
        let last = sizes.count - 2
        let tape = Sequential(try (0...last).map { i in
            try TapeLinear(sizes[i], sizes[i + 1], activation: i < last ? .relu : nil, seed: seed &+ UInt64(i),
                           on: device)
        })
        return (fused, tape)
    }

    func testTapeLayersTrainToTheFusedLayersCurveWithSGDAndAdamOnEveryDevice() throws {
        let (train, test) = try fashionSlice(train: 64 * 6, test: 200)
        for kind in OptimizerKind.allCases {
            var options = TrainingOptions()
            (options.epochs, options.batchSize, options.seed, options.optimizer) = (2, 64, 4, kind)
            for device in testDevices {
                let (fused, tape) = try models([784, 20, 10], seed: 4, on: device)
                var curves: [[Double]] = []
                var weights: [[[Float]]] = []
                for model in [fused, tape] {
                    let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options, device: device)
                    let data = try DeviceDataset(train, on: device)
                    var curve: [Double] = []
                    for epoch in 1...options.epochs {
                        curve.append(Double(try trainer.trainEpoch(data, epoch: epoch, reportEvery: 1) { _ in }))
                    }
                    curve.append(try trainer.evaluate(test).loss)
                    curves.append(curve)
                    weights.append(try model.parameters.map { try $0.value.toArray() })
                }
                assertClose(curves[1], curves[0], rtol: 1e-4, atol: 1e-5, "\(kind) loss curve, tape vs fused, \(device)")
                for (t, f) in zip(weights[1], weights[0]) {
                    assertClose(t, f, rtol: 1e-3, atol: 1e-4, "\(kind) weights, tape vs fused, on \(device)")
                }
            }
        }
    }

    func testATapeModuleNeedsNoBackwardAndPassesTheGradientCheck() throws {
        let x = try Tensor(testValues(6 * 5, seed: 70).map { $0 < 0 ? $0 - 0.1 : $0 + 0.1 }, shape: [6, 5])
        for device in testDevices {
            // (A module without parameters that reads a tensor on the device: its reference runs there too — it
            // ran on cpu, where that tensor could not be read, and the check threw.)
            let shift = Shift(try Tensor(testValues(4, seed: 71), shape: [4], on: device))
            let model = Sequential([try TapeLinear(5, 4, seed: 1, on: device), shift, ShiftedSoftplus(),
                                    try TapeLinear(4, 3, seed: 2, on: device)])
            // The default reference runs compute in fp32: fp32 tolerances.
            for result in try GradientCheck.check(model, input: try x.to(device), step: 1e-2) {
                XCTAssertLessThan(result.worstRatio(rtol: 2e-2, atol: 2e-3), 1, "\(result.name) on \(device)")
            }
        }
    }

    func testATapeModelSavesAsACheckpointAndLoadsAsTheFusedLayers() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("clnn-tape-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let x = try Tensor(testValues(4 * 6, seed: 71), shape: [4, 6])
        for device in testDevices {
            let (_, tape) = try models([6, 5, 3], seed: 8, on: device)
            let path = folder.appendingPathComponent("\(device).safetensors").path
            let checkpoint = try Checkpoint(model: tape, loss: "cross-entropy", classes: 3,
                                            normalization: Normalization(mean: 0, std: 1))
            try checkpoint.save(tape, to: path)
            let (_, loaded) = try Checkpoint.load(path, on: device)
            XCTAssertTrue(loaded.layers.first is Linear, "loads as the fused layer")
            let input = try x.to(device)
            assertClose(try loaded.forward(input).toArray(), try tape.forward(input).toArray(), rtol: 1e-5,
                        atol: 1e-6, "\(device)")
            // And back into a tape model by its parameter names.
            let (_, other) = try models([6, 5, 3], seed: 9, on: device)
            try other.load(from: path)
            assertClose(try other.forward(input).toArray(), try tape.forward(input).toArray(), rtol: 1e-5,
                        atol: 1e-6, "\(device)")
        }
    }

    /// A dataset's minibatch read in place (`compute(rows:)`, `Rows.matmul`) gives the output and parameter
    /// gradients of the same rows gathered into a tensor, accumulates like it, and says it has no input gradient.
    func testRowsReadInPlaceGiveTheGradientsOfTheGatheredRowsOnEveryDevice() throws {
        let (n, inputs) = (23, 9)
        let source = testValues(n * inputs, seed: 72), order = (0..<n).map { Float(($0 * 7) % n) }
        for device in testDevices {
            let layers = try (0..<2).map { _ in try TapeLinear(inputs, 4, activation: .relu, seed: 3, on: device) }
            let rows = try Rows(try Tensor(source, shape: [n, inputs], on: device),
                                order: try Tensor(order, shape: [n], on: device), offset: 5, count: 11)
            let dy = try Tensor(testValues(11 * 4, seed: 73), shape: [11, 4], on: device)
            let inPlace = try layers[0].forward(rows), gathered = try layers[1].forward(try rows.gathered())
            assertClose(try inPlace.toArray(), try gathered.toArray(), rtol: 1e-5, atol: 1e-6, "forward on \(device)")
            for step in 1...2 {  // the second backward adds to the first's gradients
                if step == 2 { _ = try layers[0].forward(rows); _ = try layers[1].forward(try rows.gathered()) }
                XCTAssertNil(try layers[0].backward(dy, needsInputGradient: false))
                _ = try layers[1].backward(dy, needsInputGradient: false)
                for (a, b) in zip(layers[0].parameters, layers[1].parameters) {
                    assertClose(try a.grad.toArray(), try b.grad.toArray(), rtol: 1e-5, atol: 1e-6,
                                "\(a.name) gradient after \(step) backward(s) on \(device)")
                }
            }
            _ = try layers[0].forward(rows)
            XCTAssertThrowsError(try layers[0].backward(dy, needsInputGradient: true)) {
                XCTAssertTrue("\($0)".contains("read a dataset's rows in place"), "\($0)")
            }
            // Reshuffling the order between forward and backward is an error, not a wrong gradient.
            _ = try layers[0].forward(rows)
            try XCTUnwrap(rows.order).fill(0)
            XCTAssertThrowsError(try layers[0].backward(dy, needsInputGradient: false)) {
                XCTAssertTrue("\($0)".contains("modified in place"), "\($0)")
            }
        }
    }

    func testEvaluationRecordsNothing() throws {
        let layer = try TapeLinear(3, 2, seed: 1)
        let y = try Tensor.withoutGradients { try layer.forward(try Tensor.ones([2, 3])) }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertThrowsError(try layer.backward(try Tensor.ones([2, 2]), needsInputGradient: true)) {
            XCTAssertTrue("\($0)".contains("called before forward"), "\($0)")
        }
    }
}
