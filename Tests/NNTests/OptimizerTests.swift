import Foundation
@testable import NN
import TestSupport
import XCTest

final class OptimizerTests: XCTestCase {
    /// torch.optim.Adam([p], lr=0.01, weight_decay=0.1) from p = [0.5, -1, 2, 0], three steps with the gradients
    /// below; the figures were printed by PyTorch 2.x (torch.float32) and are copied here.
    func testAdamMatchesPyTorchOnEveryDevice() throws {
        let expected: [[Float]] = [[0.49000001, -0.99000001, 1.99000001, -0.00999989919],
                                   [0.4801687, -0.980000913, 1.98024583, -0.0167004615],
                                   [0.470394582, -0.970003247, 1.97066569, -0.0174437407]]
        let expAvg: [Float] = [0.0693616942, -0.0810100138, 0.101712465, 1.3996294e-05]
        let expAvgSq: [Float] = [0.000205509787, 0.000267935771, 0.000459998148, 1.4469631e-09]
        for device in testDevices {
            let p = try Parameter(name: "p", value: try Tensor([0.5, -1, 2, 0], shape: [4], on: device))
            let adam = try Adam([p], lr: 0.01, weightDecay: 0.1)
            for t in 1...3 {
                let g: [Float] = [0.1 * Float(t), -0.2, 0.3 / Float(t), 1e-3]
                p.zeroGrad()
                let (grad, _) = p.gradientForBackward()
                try grad.copy(from: try Tensor(g, shape: [4], on: device))
                try adam.step()
                assertClose(try p.value.toArray(), expected[t - 1], rtol: 2e-6, atol: 1e-7,
                            "Adam step \(t) on \(device)")
            }
            XCTAssertEqual(adam.stepCount, 3)
            let state = try adam.state(of: p)
            assertClose(try state["exp_avg"]!.toArray(), expAvg, rtol: 1e-5, atol: 1e-9, "exp_avg on \(device)")
            assertClose(try state["exp_avg_sq"]!.toArray(), expAvgSq, rtol: 1e-4, atol: 1e-12,
                        "exp_avg_sq on \(device)")
        }
    }

    /// One launch over the arena (the model's parameters share a device) gives the per-parameter update.
    func testAdamArenaStepEqualsStepsOfSeparateParameters() throws {
        for device in testDevices {
            let model = try MLP.make(sizes: [5, 7, 3], seed: 4, on: device)
            let copy = try MLP.make(sizes: [5, 7, 3], seed: 4, on: device)
            let arena = try Adam(model.parameters, lr: 0.01)
            // One optimiser per parameter: no arena (each sees a single tensor), the same rule.
            let separate = try copy.parameters.map { try Adam([$0], lr: 0.01) }
            let x = try Tensor(testValues(4 * 5, seed: 8), shape: [4, 5], on: device)
            let dy = try Tensor(testValues(4 * 3, seed: 9), shape: [4, 3], on: device)
            for _ in 0..<3 {
                for (m, optimizers) in [(model, [arena as any Optimizer]), (copy, separate)] {
                    _ = try m.forward(x)
                    try m.zeroGrad()
                    _ = try m.backward(dy)
                    for o in optimizers { try o.step() }
                }
            }
            for (a, b) in zip(model.parameters, copy.parameters) {
                assertClose(try a.value.toArray(), try b.value.toArray(), rtol: 1e-6, atol: 1e-7,
                            "\(a.name) on \(device)")
            }
        }
    }

    /// Parameters of one block that are not all stepped — the first layer frozen (fine-tuning), one parameter
    /// without a gradient, Adam's step counts apart after one — step in one launch per run of consecutive ones
    /// that are (with Adam, at the same count), and the values are those of one optimiser per parameter.
    func testRunsOfTheBlocksParametersStepInOneLaunchEachAsOneByOne() throws {
        for device in testDevices {
            for adam in [false, true] {
                let model = try MLP.make(sizes: [5, 7, 6, 3], seed: 4, on: device)
                let copy = try MLP.make(sizes: [5, 7, 6, 3], seed: 4, on: device)
                func optimizer(_ parameters: [Parameter]) throws -> any Optimizer {
                    adam ? try Adam(parameters, lr: 0.01, weightDecay: 0.1)
                         : try SGD(parameters, lr: 0.1, momentum: 0.9, weightDecay: 0.01)
                }
                let together = try optimizer(model.parameters)
                let separate = try copy.parameters.map { try optimizer([$0]) }
                XCTAssertNotNil(model.parameterBlock)
                for m in [model, copy] { m.parameters[0].value.requiresGrad = false }
                let x = try Tensor(testValues(4 * 5, seed: 8), shape: [4, 5], on: device)
                let dy = try Tensor(testValues(4 * 3, seed: 9), shape: [4, 3], on: device)
                // Step 1: the first weight frozen; 2: the second layer's weight without a gradient too; 3: as 1.
                var expectedRuns: [[Range<Int>]] = [[1..<6], [1..<2, 3..<6], adam ? [1..<2, 2..<3, 3..<6] : [1..<6]]
                for step in 0..<3 {
                    for (m, optimizers) in [(model, [together]), (copy, separate)] {
                        _ = try m.forward(x)
                        try m.zeroGrad()
                        _ = try m.backward(dy)
                        if step == 1 { m.parameters[2].zeroGrad() }
                        if m === model {
                            var state = OptimizerState(slots: adam ? 2 : 1)
                            let steps = together.parameterSteps
                            let runs = try state.runs(m.parameters, together: { !adam || steps[$0] == steps[$1] })
                            XCTAssertEqual(runs.map(\.range), expectedRuns.removeFirst(), "step \(step) on \(device)")
                        }
                        for o in optimizers { try o.step() }
                    }
                    for (a, b) in zip(model.parameters, copy.parameters) {
                        assertClose(try a.value.toArray(), try b.value.toArray(), rtol: 1e-6, atol: 1e-7,
                                    "\(a.name) after step \(step), adam \(adam), on \(device)")
                    }
                }
                XCTAssertEqual(together.parameterSteps, [0, 3, 2, 3, 3, 3], "adam \(adam) on \(device)")
            }
        }
    }

    /// Adam's bias correction counts each parameter's own steps, as PyTorch's per-parameter `step` does: a bias
    /// skipped on step 2 (no gradient computed) takes step 3 with t = 2. Checked against PyTorch's rule in Double —
    /// step 1 in one launch over the model's parameters, the others one by one (their counts differ) — and through a
    /// training state saved and restored with counts that differ.
    func testAdamCountsEachParametersOwnSteps() throws {
        let (lr, b1, b2, eps, decay) = (0.01, 0.9, 0.999, 1e-8, 0.1)
        for device in testDevices {
            let model = try MLP.make(sizes: [3, 2], seed: 5, on: device)
            let adam = try Adam(model.parameters, lr: Float(lr), weightDecay: Float(decay))
            // The reference: each parameter's value, moments and step.
            var reference = try model.parameters.map { p in
                (value: try p.value.toArray().map(Double.init), m: [Double](repeating: 0, count: p.value.count),
                 v: [Double](repeating: 0, count: p.value.count), t: 0)
            }
            for step in 1...3 {
                for (i, p) in model.parameters.enumerated() {
                    p.zeroGrad()
                    // The bias has no gradient on step 2: it is skipped there, though its grad was read (to log a
                    // norm, to clip: PyTorch's None stays None; reading stepped it, weight decay and all: helper-28).
                    if i == 1 && step == 2 {
                        XCTAssertEqual(try p.grad.toArray(), [0, 0], "\(device)")
                        continue
                    }
                    let g = testValues(p.value.count, seed: UInt64(10 * step + i))
                    try p.gradientForBackward().tensor.copy(from: try Tensor(g, shape: p.value.shape, on: device))
                    reference[i].t += 1
                    let t = Double(reference[i].t)
                    for k in g.indices {
                        let gk = Double(g[k]) + decay * reference[i].value[k]
                        reference[i].m[k] = b1 * reference[i].m[k] + (1 - b1) * gk
                        reference[i].v[k] = b2 * reference[i].v[k] + (1 - b2) * gk * gk
                        let mHat = reference[i].m[k] / (1 - pow(b1, t)), vHat = reference[i].v[k] / (1 - pow(b2, t))
                        reference[i].value[k] -= lr * mHat / (vHat.squareRoot() + eps)
                    }
                }
                try adam.step()
                for (p, r) in zip(model.parameters, reference) {
                    assertClose(try p.value.toArray(), r.value, rtol: 1e-5, atol: 1e-6,
                                "\(p.name) after step \(step) on \(device)")
                }
            }
            XCTAssertEqual(adam.stepCount, 3)
            XCTAssertEqual(adam.parameterSteps, [3, 2])

            // Saved and restored: the counts come back, and the next step matches one never saved.
            var options = TrainingOptions()
            (options.optimizer, options.lr, options.weightDecay) = (.adam, Float(lr), Float(decay))
            let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), classes: 2, options: options,
                                      optimizer: adam)
            let path = try temporaryFolder(self).appendingPathComponent("adam-\(device).safetensors").path
            try SavedRun.save(trainer, checkpoint: try Checkpoint(model: model, loss: "cross-entropy", classes: 2,
                                                                  normalization: Normalization(mean: 0, std: 1),
                                                                  epoch: 1),
                              at: RunPosition(epoch: 1), to: path)
            let loaded = try SavedRun.load(path)
            XCTAssertEqual(loaded.state.parameterSteps, [3, 2])
            let (_, copy) = try Checkpoint.decode(loaded.bytes, path: path, on: device)
            let resumed = try Trainer(model: copy, loss: CrossEntropyLoss(), classes: 2, options: loaded.state.options)
            try loaded.state.restore(into: resumed, path: path)
            XCTAssertEqual(resumed.optimizer.parameterSteps, [3, 2])
            XCTAssertEqual(resumed.optimizer.stepCount, 3)
            for (a, b) in zip(model.parameters, copy.parameters) {
                a.zeroGrad()
                b.zeroGrad()
                let g = try Tensor(testValues(a.value.count, seed: 99), shape: a.value.shape, on: device)
                try a.gradientForBackward().tensor.copy(from: g)
                try b.gradientForBackward().tensor.copy(from: g)
            }
            try adam.step()
            try resumed.optimizer.step()
            for (a, b) in zip(model.parameters, copy.parameters) {
                XCTAssertEqual(try a.value.toArray(), try b.value.toArray(), "\(a.name) resumed on \(device)")
            }

            // Counts at Int.max (settable) stay there rather than trap (helper-28).
            (adam.parameterSteps, adam.stepCount) = ([Int.max, Int.max], Int.max)
            for p in model.parameters { try p.gradientForBackward().tensor.fill(0.5) }
            try adam.step()
            XCTAssertEqual(adam.parameterSteps + [adam.stepCount], [Int.max, Int.max, Int.max])
            // Counts that do not fit are errors naming them.
            adam.parameterSteps = [1]
            XCTAssertThrowsError(try adam.step()) {
                XCTAssertTrue("\($0)".contains("parameterSteps has 1 counts for 2 parameters"), "\($0)")
            }
        }
    }

    func testBadHyperparametersAreErrors() throws {
        let p = try Parameter(name: "p", value: try Tensor.zeros([2], on: .cpu))
        XCTAssertThrowsError(try Adam([p], beta1: 1)) { XCTAssertTrue("\($0)".contains("beta1"), "\($0)") }
        XCTAssertThrowsError(try Adam([p], lr: -.infinity)) { XCTAssertTrue("\($0)".contains("lr"), "\($0)") }
        XCTAssertThrowsError(try SGD([p], lr: .nan)) { XCTAssertTrue("\($0)".contains("lr"), "\($0)") }
        // Set afterwards (a schedule of one's own): refused at the step, before any parameter moves.
        try p.gradientForBackward().tensor.fill(1)
        for optimizer in [try SGD([p], lr: 0.1, momentum: 0.9) as Optimizer, try Adam([p])] {
            for lr in [Float.nan, -0.1, .infinity] {
                optimizer.lr = lr
                XCTAssertThrowsError(try optimizer.step()) {
                    XCTAssertEqual("\($0)", "\(optimizer.name): lr must be a finite number ≥ 0, got \(lr); "
                        + "no parameter was stepped")
                }
            }
            XCTAssertEqual(try p.value.toArray(), [0, 0])
            XCTAssertEqual(optimizer.parameterSteps + [optimizer.stepCount], [0, 0])
        }
        var options = TrainingOptions()
        (options.optimizer, options.momentum) = (.adam, 0.9)
        XCTAssertThrowsError(try options.makeOptimizer([p])) { XCTAssertTrue("\($0)".contains("momentum"), "\($0)") }
    }

    /// Training 2 epochs, or 1 epoch, a save of model and training state, a fresh trainer restored from them and
    /// the 2nd epoch, give the same weights — for SGD with momentum and for Adam, on every device.
    func testResumedTrainingEqualsAnUninterruptedRunOnEveryDevice() throws {
        let (train, _) = try fashionSlice(train: 640, test: 1)
        let folder = try temporaryFolder(self)
        for device in testDevices {
            for kind in OptimizerKind.allCases {
                var options = TrainingOptions()
                (options.epochs, options.batchSize, options.seed, options.optimizer) = (2, 64, 3, kind)
                (options.lr, options.momentum) = kind == .adam ? (0.002, 0) : (0.05, 0.9)
                let data = try DeviceDataset(train, on: device)
                func trainer(_ model: Sequential) throws -> Trainer {
                    try Trainer(model: model, loss: CrossEntropyLoss(), options: options)
                }
                let whole = try trainer(try MLP.make(sizes: [784, 16, 10], activation: .tanh, seed: 3, on: device))
                for epoch in 1...2 { _ = try whole.trainEpoch(data, epoch: epoch) }

                // Saved at an epoch's end, and 4 steps into the first epoch (10 steps each).
                for stop in [RunPosition(epoch: 1), RunPosition(epoch: 0, step: 4)] {
                    let first = try trainer(try MLP.make(sizes: [784, 16, 10], activation: .tanh, seed: 3, on: device))
                    _ = try first.trainEpoch(data, epoch: 1, maxSteps: stop.step == 0 ? nil : stop.step)
                    var at = stop
                    at.lossSum = stop.step == 0 ? 0 : first.lastLossSum
                    let path = folder.appendingPathComponent("\(kind)-\(device)-\(stop.step).safetensors").path
                    try SavedRun.save(first,
                                      checkpoint: try Checkpoint(model: first.model, loss: "cross-entropy", classes: 10,
                                                                 normalization: Normalization(mean: 0, std: 1),
                                                                 epoch: stop.epoch > 0 ? stop.epoch : nil),
                                      at: at, to: path)

                    let loaded = try SavedRun.load(path)
                    let (checkpoint, model) = try Checkpoint.decode(loaded.bytes, path: path, on: device)
                    let state = loaded.state
                    XCTAssertEqual(checkpoint.epoch, stop.epoch > 0 ? stop.epoch : nil)
                    XCTAssertEqual(state.position, at)
                    XCTAssertEqual(state.options.optimizer, kind)
                    let resumed = try Trainer(model: model, loss: CrossEntropyLoss(), options: state.options)
                    try state.restore(into: resumed, path: path)
                    XCTAssertEqual(resumed.optimizer.stepCount, stop.step == 0 ? 10 : stop.step)
                    if stop.step > 0 { _ = try resumed.trainEpoch(data, epoch: 1, firstStep: stop.step) }
                    _ = try resumed.trainEpoch(data, epoch: 2)
                    for (a, b) in zip(whole.model.parameters, resumed.model.parameters) {
                        XCTAssertEqual(try a.value.toArray(), try b.value.toArray(),
                                       "\(kind) on \(device) from \(stop): \(a.name)")
                    }
                }
            }
        }
    }
}
