import Device
import Foundation
@testable import NN
import TestSupport
import XCTest

/// Modules used in ways PyTorch users do (one instance twice, backward twice, an input changed before backward, a
/// gradient check of a CNN): each an error naming it before any gradient changes, or the right answer — where a
/// hostile probe of the NN layer found silent wrong gradients and a trap.
final class ModuleSemanticsTests: XCTestCase {
    private func message(_ body: () throws -> Any) -> String {
        do { _ = try body(); return "" } catch { return "\(error)" }
    }

    func testOneModuleInstanceTwiceInAModelIsRefusedNamingBothPlaces() throws {
        let x = try Tensor(testValues(8 * 6, seed: 1), shape: [8, 6])
        let act = ActivationLayer(.tanh)
        let shared = Sequential([try Linear(6, 5, seed: 1), act, try Linear(5, 5, seed: 2), act,
                                 try Linear(5, 3, seed: 3)])
        XCTAssertTrue(message { try shared.forward(x) }.contains(
            "Sequential: the same ActivationLayer is layer 1 and layer 3: a Sequential's own backward (the trainer's) "
            + "goes back through each layer's last forward"))
        let lin = try Linear(6, 6, seed: 4)
        let nested = Sequential([lin, Sequential([ActivationLayer(.relu), lin])])
        XCTAssertTrue(message { try nested.forward(x) }.contains("the same Linear is layer 0 and layer 1.1"))
        var options = TrainingOptions()
        (options.epochs, options.batchSize) = (1, 4)
        let data = try Dataset(images: testValues(8 * 6, seed: 2), labels: [0, 1, 2, 0, 1, 2, 0, 1], features: 6)
        let trainer = try Trainer(model: shared, loss: CrossEntropyLoss(), options: options)
        XCTAssertTrue(message { try trainer.trainEpoch(data, epoch: 1) }.contains("the same ActivationLayer"))
        // Two instances of the same layer are fine.
        XCTAssertEqual(try Sequential([try Linear(6, 5, seed: 1), ActivationLayer(.tanh), try Linear(5, 5, seed: 2),
                                       ActivationLayer(.tanh)]).forward(x).shape, [8, 5])
    }

    /// A second backward after one forward is refused before any gradient is added (the last layer added its
    /// gradient again, then a batch norm refused); so is a backward after a forward that failed.
    func testBackwardTwiceAfterOneForwardChangesNothing() throws {
        for device in testDevices {
            let model = Sequential([try Linear(4, 5, seed: 1, on: device), try BatchNorm1d(5, on: device),
                                    try Linear(5, 3, seed: 2, on: device)])
            let x = try Tensor(testValues(6 * 4, seed: 3), shape: [6, 4], on: device)
            let dy = try Tensor.ones([6, 3], on: device)
            _ = try model.forward(x)
            try model.zeroGrad()
            _ = try model.backward(dy)
            let grads = try model.parameters.map { try $0.grad.toArray() }
            XCTAssertTrue(message { try model.backward(dy) }.contains(
                "Sequential.backward: no forward to go back through"), "\(device)")
            XCTAssertEqual(try model.parameters.map { try $0.grad.toArray() }, grads, "unchanged on \(device)")
            XCTAssertThrowsError(try model.forward(try Tensor.zeros([6, 7], on: device)))
            XCTAssertTrue(message { try model.backward(dy) }.contains("after a forward that failed"))
            let lone = try Linear(4, 3, seed: 1, on: device)
            _ = try lone.forward(x)
            _ = try lone.backward(dy)
            XCTAssertTrue(message { try lone.backward(dy) }.contains("Linear.backward: no forward to go back "
                + "through: called before forward, twice after one"))

            // The tape and a hand-called backward go through one forward once between them: either order, the
            // second is refused and the gradients stay the first's (each added them again).
            // (A batch norm alone: a module whose backward is a tape of its own.)
            for (m, dy) in [(model as any Module, dy), (try BatchNorm1d(4, on: device), try Tensor.ones([6, 4],
                                                                                                    on: device))] {
                for tapeFirst in [true, false] {
                    try m.zeroGrad()
                    let y = try m(x)
                    if tapeFirst { try y.sum().backward() } else { _ = try m.backward(dy) }
                    let once = try m.parameters.map { try $0.grad.toArray() }
                    let second = message { if tapeFirst { _ = try m.backward(dy) } else { try y.sum().backward() } }
                    XCTAssertTrue(second.contains(tapeFirst ? "after loss.backward() went back through it"
                                                            : "a hand-called backward (module.backward(dy)) went back"),
                                  "tape first \(tapeFirst), \(type(of: m)) on \(device): \(second)")
                    XCTAssertEqual(try m.parameters.map { try $0.grad.toArray() }, once, "\(tapeFirst) on \(device)")
                }
            }
        }
    }

    /// An input changed in place between forward and backward is refused, as the tape refuses it (Linear's weight
    /// gradient came from the new values).
    func testAnInputModifiedInPlaceBeforeBackwardIsRefused() throws {
        for device in testDevices {
            let x = try Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3], on: device)
            let lin = try Linear(3, 2, seed: 1, on: device)
            _ = try lin.forward(x)
            try x.upload([Float](repeating: 100, count: 6))
            try lin.zeroGrad()
            XCTAssertTrue(message { try lin.backward(try Tensor.ones([2, 2], on: device)) }.contains(
                "Linear.backward: its input was modified in place after forward used it (a tensor of shape [2, 3]"))
            // In a model the refusal comes before the last layer writes its gradients (it wrote them first).
            let model = Sequential([try Linear(3, 4, seed: 2, on: device), try Linear(4, 2, seed: 3, on: device)])
            let y = try Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3], on: device)
            _ = try model.forward(y)
            try model.zeroGrad()
            try y.fill(7)
            XCTAssertTrue(message { try model.backward(try Tensor.ones([2, 2], on: device)) }.contains(
                "Linear.backward: its input"), "\(device)")
            XCTAssertTrue(model.parameters.allSatisfy { $0.gradientIfComputed == nil }, "no gradient on \(device)")

            let act = ActivationLayer(.sigmoid)
            _ = try act.forward(x)
            try x.fill(0)
            XCTAssertTrue(message { try act.backward(try Tensor.ones([2, 3], on: device)) }.contains(
                "ActivationLayer.backward: its input"))

            // A weight stepped between forward and backward (the optimiser's one launch over the model's block, or
            // a parameter's own step) is refused where the backward reads it — for the input's gradient, dz·wᵀ — by
            // hand and on the tape; the first layer's input takes none, so its weight is not read (as PyTorch).
            let x2 = try Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3], on: device)
            for byHand in [true, false] {
                let stepped = Sequential([try Linear(3, 4, activation: .tanh, seed: 4, on: device),
                                          try Linear(4, 2, seed: 5, on: device)])
                let optimizers: [any Optimizer] = [try SGD(stepped.parameters, lr: 0.1),
                                                   try SGD([stepped.parameters[2]], lr: 0.1)]
                for optimizer in optimizers {
                    try stepped.zeroGrad()
                    let out = byHand ? try stepped.forward(Rows(x2)) : try stepped(x2)
                    // (A gradient for each, written as a backward does: a read is not one for the optimisers.)
                    for p in stepped.parameters { try p.gradientForBackward().tensor.fill(0) }
                    try optimizer.step()
                    XCTAssertTrue(message {
                        if byHand { _ = try stepped.backward(try Tensor.ones([2, 2], on: device)) }
                        else { try out.sum().backward() }
                    }.contains("Linear.backward: its weight, which dx = dz·wᵀ reads, was modified in place after "
                               + "forward used it"), "by hand \(byHand), \(optimizer.parameters.count) on \(device)")
                }
            }
            for alone in [false, true] {  // (by hand, asked for no input gradient: the weight is not read)
                let layer = try Linear(3, 2, seed: 6, on: device)
                let model: any Module = alone ? layer : Sequential([layer])
                _ = try model.forward(x2)
                try SGD(layer.parameters, lr: 0.1).step()
                try model.zeroGrad()
                _ = try model.backward(try Tensor.ones([2, 2], on: device), needsInputGradient: false)
                XCTAssertEqual(try layer.weight.grad.toArray(), [5, 5, 7, 7, 9, 9], "alone \(alone) on \(device)")
            }
            let first = try Linear(3, 2, seed: 6, on: device)
            let out = try first(x2)
            try first.weight.value.upload(try first.weight.value.toArray().map { $0 + 1 })
            try first.zeroGrad()
            try out.sum().backward()
            XCTAssertEqual(try first.weight.grad.toArray(), [5, 5, 7, 7, 9, 9], "xᵀ·1 on \(device)")
        }
    }

    /// A CNN (image input, convolution, batch norm, pooling, dropout) and a convolution alone pass the gradient
    /// check with its default step (fp32 references: 3e-3) — it trapped on the CNN and refused the convolution —
    /// and the check leaves the running statistics as they were. (Tanh and average pooling: a finite step crosses a
    /// ReLU's kink or a max pool's near-tie now and then, where the difference, not the gradient, is wrong.)
    func testAGradientCheckOfACNNPassesAndLeavesItsBuffersAlone() throws {
        for device in testDevices {
            let cnn = Sequential([try ImageInput(channels: 1, height: 5, width: 5),
                                  try Conv2d(1, 2, kernel: 3, padding: 1, seed: 1, on: device),
                                  try BatchNorm2d(2, on: device), ActivationLayer(.tanh), try Dropout(0.3, seed: 5),
                                  AvgPool2d(kernel: 2), Flatten(), try Linear(8, 3, seed: 2, on: device)])
            XCTAssertFalse(cnn.hasDoubleReference)
            let before = try cnn.namedBuffers.map { try $0.value.toArray() }
            let x = try Tensor(testValues(3 * 25, seed: 4), shape: [3, 25], on: device)
            for result in try GradientCheck.check(cnn, input: x, samples: 12) {
                XCTAssertLessThan(result.worstRatio(rtol: 5e-2, atol: 5e-3), 1, "\(result.name) on \(device)")
            }
            XCTAssertEqual(try cnn.namedBuffers.map { try $0.value.toArray() }, before, "buffers on \(device)")

            let conv = try Conv2d(2, 3, kernel: 3, seed: 3, on: device)
            let images = try Tensor(testValues(2 * 2 * 5 * 5, seed: 6), shape: [2, 2, 5, 5], on: device)
            for result in try GradientCheck.check(conv, input: images, samples: 10) {
                XCTAssertLessThan(result.worstRatio(rtol: 5e-2, atol: 5e-3), 1, "conv \(result.name) on \(device)")
            }
        }
    }

    /// As PyTorch's optimisers skip a parameter whose grad is None: one that no backward gave a gradient since its
    /// zeroGrad (or since it was made) is left as it is — weight decay and momentum included — and the others step
    /// as they would.
    func testAParameterWithoutAGradientIsNotStepped() throws {
        for device in testDevices {
            let model = Sequential([try Linear(2, 2, seed: 1, on: device)])
            let before = try model.parameters.map { try $0.value.toArray() }
            for optimizer in [try SGD(model.parameters, lr: 0.1, momentum: 0.9, weightDecay: 0.5) as any Optimizer,
                              try Adam(model.parameters, weightDecay: 0.5) as any Optimizer] {
                try optimizer.step()
                try model.zeroGrad()
                try optimizer.step()
                XCTAssertEqual(try model.parameters.map { try $0.value.toArray() }, before,
                               "\(optimizer.name) on \(device)")
            }
            // Only the weight's gradient computed: the bias stays, the weight steps as alone.
            let sgd = try SGD(model.parameters, lr: 0.1, weightDecay: 0.5)
            let weight = model.parameters[0]
            let (dw, _) = weight.gradientForBackward()
            try dw.fill(1)
            try sgd.step()
            let expected = before[0].map { $0 - 0.1 * (1 + 0.5 * $0) }
            assertClose(try weight.value.toArray(), expected, "weight on \(device)")
            XCTAssertEqual(try model.parameters[1].value.toArray(), before[1], "bias on \(device)")
        }
    }

    /// A loss over a batch of no rows is NaN (it was 0), a Linear reads a row slice (it refused a view), a trainer
    /// whose model moved says so, and specs that do not chain are refused when the model is built.
    func testSmallerEdgesAnswerAsPyTorchDoes() throws {
        for device in testDevices {
            let empty = try Tensor.zeros([0, 3], on: device), labels = try Tensor.zeros([0], on: device)
            XCTAssertTrue(try CrossEntropyLoss()(empty, labels).item().isNaN, "\(device)")
            XCTAssertTrue(try MSELoss()(try Tensor.zeros([0, 1], on: device), labels).item().isNaN, "\(device)")

            let big = try Tensor(testValues(8 * 3, seed: 9), shape: [8, 3], on: device)
            let lin = try Linear(3, 2, seed: 1, on: device)
            XCTAssertEqual(try lin.forward(try big[2..<5]).toArray(),
                           try lin.forward(try big[2..<5].cloned()).toArray(), "a row slice on \(device)")
        }
        let model = try MLP.make(sizes: [3, 4, 2], seed: 1, on: .cpu)
        let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: TrainingOptions())
        if let other = openCLDevices.first {
            try model.to(other)
            let data = try Dataset(images: testValues(4 * 3, seed: 2), labels: [0, 1, 0, 1], features: 3)
            XCTAssertTrue(message { try trainer.trainEpoch(data, epoch: 1) }.contains(
                "Trainer (made for cpu): the model's parameter 0.weight is on \(other), not cpu"))
        }
        XCTAssertTrue(message {
            try LayerSpec.modules([.linear(inFeatures: 3, outFeatures: 4), .linear(inFeatures: 5, outFeatures: 2)],
                                  seed: 1, on: .cpu)
        }.hasPrefix("LayerSpec.modules: the architecture"))
    }
}

/// PyTorch's `loss_fn(model(x), y).backward()`: a module's forward output is one op on the tape, so a loss computed
/// from it with tensor ops sends its gradient through the module's own backward — into the parameters' gradients the
/// optimisers read, and into `x.grad` — as `model.backward(dL/dy)` would. (A probe found the CNN case training
/// nothing: the tape stopped at the parameters' values, and the optimiser saw no gradient.)
final class ModuleOnTapeTests: XCTestCase {
    func testALossOnAModelsOutputGoesBackThroughTheModulesOwnBackward() throws {
        for device in testDevices {
            func cnn() throws -> Sequential {
                Sequential([try Conv2d(2, 3, kernel: 3, padding: 1, seed: 1, on: device), ActivationLayer(.relu),
                            MaxPool2d(kernel: 2), Flatten(), try BatchNorm1d(3 * 2 * 2, on: device),
                            try Linear(3 * 2 * 2, 4, activation: .tanh, seed: 2, on: device),
                            try Linear(4, 3, seed: 3, on: device)])
            }
            let (taped, byHand) = (try cnn(), try cnn())
            let x = try Tensor(testValues(5 * 2 * 5 * 4, seed: 3), shape: [5, 2, 5, 4], on: device)
            let weights = try Tensor(testValues(5 * 3, seed: 4), shape: [5, 3], on: device)
            // By hand: the gradient of sum(y · weights) is the weights.
            x.requiresGrad = false
            _ = try byHand.forward(x)
            let dx = try byHand.backward(weights, needsInputGradient: true)!
            // On the tape.
            x.requiresGrad = true
            let loss = try (try taped.forward(x) * weights).sum()
            XCTAssertTrue(loss.requiresGrad)
            try loss.backward()
            for (a, b) in zip(taped.parameters, byHand.parameters) {
                assertClose(try a.grad.toArray(), try b.grad.toArray(), rtol: 1e-6, atol: 1e-7,
                            "\(a.name) on \(device)")
            }
            assertClose(try XCTUnwrap(x.grad).toArray(), try dx.toArray(), rtol: 1e-6, atol: 1e-7, "x on \(device)")
            // The optimiser sees the gradients and moves every parameter.
            let before = try taped.parameters.map { try $0.value.toArray() }
            try SGD(taped.parameters, lr: 0.1).step()
            for (p, old) in zip(taped.parameters, before) where p.name == "weight" {
                XCTAssertNotEqual(try p.value.toArray(), old, "\(p.name) on \(device)")
            }
            // keepGraph reaches into the modules: a second backward through one forward adds the same gradients
            // again (a batch norm's and a convolution's tapes kept too); a third, after one without it, is refused
            // before any gradient changes.
            try taped.zeroGrad()
            let again = try (try taped.forward(x) * weights).sum()
            try again.backward(keepGraph: true)
            let grads = try taped.parameters.map { try $0.grad.toArray() }
            try again.backward()
            for (p, once) in zip(taped.parameters, grads) {
                assertClose(try p.grad.toArray(), once.map { 2 * $0 }, rtol: 1e-5, atol: 1e-6,
                            "\(p.name) after a second backward on \(device)")
            }
            let twice = try taped.parameters.map { try $0.grad.toArray() }
            XCTAssertThrowsError(try again.backward()) {
                XCTAssertTrue("\($0)".contains("was released by an earlier backward()"), "\($0)")
            }
            for (p, old) in zip(taped.parameters, twice) {
                XCTAssertEqual(try p.grad.toArray(), old, "\(p.name) after a refused third backward on \(device)")
            }
        }
    }

    /// A layer called alone is one op too; a container's children are not recorded (the container is the op);
    /// nothing is recorded inside `withoutGradients`, and a module without parameters only when its input needs a
    /// gradient.
    func testLayersAloneAndWhatIsNotRecorded() throws {
        for device in testDevices {
            let x = try Tensor(testValues(4 * 6, seed: 5), shape: [4, 6], on: device)
            for layer in [try Linear(6, 3, activation: .relu, seed: 6, on: device) as any Module,
                          try TapeLinear(6, 3, activation: .relu, seed: 6, on: device)] {
                try layer.zeroGrad()
                try (try layer.forward(x)).sum().backward()
                for p in layer.parameters {
                    XCTAssertNotNil(p.gradientIfComputed, "\(type(of: layer)).\(p.name) on \(device)")
                }
                XCTAssertFalse(try Tensor.withoutGradients { try layer.forward(x) }.requiresGrad)
            }
            XCTAssertFalse(try ActivationLayer(.tanh).forward(x).requiresGrad)
            let tracked = try x.cloned()
            tracked.requiresGrad = true
            try ActivationLayer(.tanh).forward(tracked).sum().backward()
            assertClose(try XCTUnwrap(tracked.grad).toArray(), try x.toArray().map { 1 - tanh($0) * tanh($0) },
                        rtol: 1e-5, atol: 1e-6, "tanh' on \(device)")
        }
    }

    /// Each output goes back through its own forward, as in PyTorch: an output after a later forward of the same
    /// model (another batch), a siamese pair `f(m(a), m(b))`, and one layer applied at every step of a loop (a
    /// recurrent cell) give the gradients of a copy of the model per use, summed — on a model with a convolution,
    /// a batch norm, pooling and fused layers.
    func testEachOutputGoesBackThroughItsOwnForward() throws {
        for device in testDevices {
            func model() throws -> Sequential {
                Sequential([try Conv2d(2, 3, kernel: 3, padding: 1, seed: 1, on: device), ActivationLayer(.tanh),
                            AvgPool2d(kernel: 2), Flatten(), try BatchNorm1d(3 * 2 * 2, on: device),
                            try Linear(3 * 2 * 2, 4, activation: .relu, seed: 2, on: device),
                            try Linear(4, 3, seed: 3, on: device)])
            }
            let a = try Tensor(testValues(5 * 2 * 5 * 4, seed: 1), shape: [5, 2, 5, 4], on: device)
            let b = try Tensor(testValues(5 * 2 * 5 * 4, seed: 2), shape: [5, 2, 5, 4], on: device)
            func gradients(_ m: Sequential) throws -> [[Float]] { try m.parameters.map { try $0.grad.toArray() } }

            let shared = try model(), alone = try model()
            for m in [shared, alone] { try m.zeroGrad() }
            let first = try shared(a)
            _ = try shared(b)
            try first.pow(2).sum().backward()
            try alone(a).pow(2).sum().backward()
            for (g, expected) in zip(try gradients(shared), try gradients(alone)) {
                assertClose(g, expected, rtol: 1e-5, atol: 1e-6, "an earlier forward's output on \(device)")
            }

            let (left, right) = (try model(), try model())
            for m in [shared, left, right] { try m.zeroGrad() }
            let (ta, tb, la, rb) = try (a.cloned(), b.cloned(), a.cloned(), b.cloned())
            for t in [ta, tb, la, rb] { t.requiresGrad = true }
            try (try shared(ta) - shared(tb)).pow(2).sum().backward()
            try (try left(la) - right(rb)).pow(2).sum().backward()
            for (g, (l, r)) in zip(try gradients(shared), zip(try gradients(left), try gradients(right))) {
                assertClose(g, zip(l, r).map(+), rtol: 1e-4, atol: 1e-5, "siamese on \(device)")
            }
            assertClose(try XCTUnwrap(ta.grad).toArray(), try XCTUnwrap(la.grad).toArray(), rtol: 1e-5, atol: 1e-6,
                        "siamese a's gradient on \(device)")
            assertClose(try XCTUnwrap(tb.grad).toArray(), try XCTUnwrap(rb.grad).toArray(), rtol: 1e-5, atol: 1e-6,
                        "siamese b's gradient on \(device)")

            // h ← tanh(input(x_t) + hidden(h)) for 4 steps with one pair of layers, against 4 copies of them.
            func cell() throws -> (Linear, Linear) {
                (try Linear(3, 2, seed: 4, on: device), try Linear(2, 2, activation: .relu, seed: 5, on: device))
            }
            let (input, hidden) = try cell()
            let copies = try (0..<4).map { _ in try cell() }
            let xs = try (0..<4).map { t in
                try Tensor(testValues(6 * 3, seed: 10 + UInt64(t)), shape: [6, 3], on: device)
            }
            for m in [input, hidden] + copies.flatMap({ [$0.0, $0.1] }) { try m.zeroGrad() }
            func unrolled(_ layers: (Int) -> (Linear, Linear)) throws -> Tensor {
                try (0..<4).reduce(try Tensor.full([6, 2], value: 0.5, on: device)) { h, t in
                    let (i, r) = layers(t)
                    return try (try i(xs[t]) + r(h)).activation(.tanh)
                }
            }
            try unrolled { _ in (input, hidden) }.sum().backward()
            try unrolled { copies[$0] }.sum().backward()
            for (k, layer) in [input, hidden].enumerated() {
                for (i, p) in layer.parameters.enumerated() {
                    let summed = try copies.map { try (k == 0 ? $0.0 : $0.1).parameters[i].grad.toArray() }
                        .reduce([Float](repeating: 0, count: p.value.count)) { zip($0, $1).map(+) }
                    assertClose(try p.grad.toArray(), summed, rtol: 1e-5, atol: 1e-6,
                                "the cell's layer \(k) \(p.name), \(device)")
                }
            }
        }
    }

    /// A tape module whose compute calls built-in layers trains inside a `Sequential` (their outputs are recorded
    /// there, where a container's children's are not) — the same gradients as the layers themselves.
    func testATapeModuleOverBuiltInLayersGoesBackThroughThem() throws {
        final class Block: TapeModule {
            let inner: Linear, act = ActivationLayer(.tanh)
            let tape = TapeRecord()
            var parameters: [Parameter] { inner.parameters }
            init(on device: DeviceTag) throws { inner = try Linear(3, 4, seed: 3, on: device) }
            func compute(_ x: Tensor) throws -> Tensor { try act.forward(try inner.forward(x)) }
        }
        for device in testDevices {
            let block = try Block(on: device)
            let wrapped = Sequential([block, try Linear(4, 2, seed: 4, on: device)])
            let plain = Sequential([try Linear(3, 4, seed: 3, on: device), ActivationLayer(.tanh),
                                    try Linear(4, 2, seed: 4, on: device)])
            let x = try Tensor(testValues(5 * 3, seed: 5), shape: [5, 3], on: device)
            let dy = try Tensor(testValues(5 * 2, seed: 6), shape: [5, 2], on: device)
            for model in [wrapped, plain] {
                _ = try model.forward(x)
                try model.zeroGrad()
                _ = try model.backward(dy, needsInputGradient: false)
            }
            for (a, b) in zip(wrapped.parameters, plain.parameters) {
                assertClose(try a.grad.toArray(), try b.grad.toArray(), rtol: 1e-6, atol: 1e-7,
                            "\(a.name) on \(device)")
            }
        }
    }

    /// A `Loss` called on a model's output is on the tape too (`loss(model(x), y).backward()`), with the fused
    /// gradient; and a module applied to its own output (`m(m(x))`) is freed with it (no cycle through the tape).
    func testALossOnTheTapeAndNoCycle() throws {
        for device in testDevices {
            let (taped, byHand) = try (0..<2).map { _ in
                Sequential([try Linear(3, 4, activation: .tanh, seed: 7, on: device),
                            try Linear(4, 3, seed: 8, on: device)])
            }.pair()
            let x = try Tensor(testValues(6 * 3, seed: 9), shape: [6, 3], on: device)
            let labels = try Tensor([0, 1, 2, 2, 1, 0], shape: [6], on: device)
            try CrossEntropyLoss()(try taped(x), labels).backward()
            let grad = try Tensor.empty([6, 3], on: device)
            _ = try CrossEntropyLoss()(try byHand.forward(x), labels, grad: grad)
            _ = try byHand.backward(grad, needsInputGradient: false)
            for (a, b) in zip(taped.parameters, byHand.parameters) {
                assertClose(try a.grad.toArray(), try b.grad.toArray(), rtol: 1e-6, atol: 1e-7,
                            "\(a.name) on \(device)")
            }
            for make in [{ try Linear(3, 3, seed: 1, on: device) as any Module },
                         { try TapeLinear(3, 3, seed: 1, on: device) },
                         { Sequential([try Linear(3, 3, activation: .tanh, seed: 1, on: device), Flatten()]) }] {
                weak var freed: (any Module)?
                try {
                    let m = try make()
                    freed = m
                    let tracked = try x.cloned()
                    tracked.requiresGrad = true
                    _ = try m(try m(tracked))
                }()
                XCTAssertNil(freed, "a module applied to its own output outlived it on \(device)")
            }
        }
    }
}

/// The second hostile probe of modules on the tape: a layer shared between two models, a module of your own called
/// directly, a shared loss-gradient buffer, keepGraph, a penalty on a tape module's weight.
final class ModuleOnTapeProbeTests: XCTestCase {
    /// A layer shared between two models (an encoder with two heads) goes back through each model's forward on
    /// the tape (the gradients of an encoder per head, summed); going back by hand (`model.backward`) reads the
    /// layers' last forward, so there one that ran another forward since is refused, naming the layer.
    func testASharedLayerGoesBackThroughEachForward() throws {
        for device in testDevices {
            func heads(_ encoder: Linear, _ other: Linear) throws -> (Sequential, Sequential) {
                (Sequential([encoder, try Linear(3, 2, seed: 2, on: device)]),
                 Sequential([other, try Linear(3, 2, seed: 3, on: device)]))
            }
            let encoder = try Linear(4, 3, activation: .tanh, seed: 1, on: device)
            let (a, b) = try heads(encoder, encoder)
            let (encoderA, encoderB) = try (0..<2).map { _ in
                try Linear(4, 3, activation: .tanh, seed: 1, on: device)
            }.pair()
            let (a2, b2) = try heads(encoderA, encoderB)
            let x1 = try Tensor(testValues(5 * 4, seed: 4), shape: [5, 4], on: device)
            let x2 = try Tensor(testValues(5 * 4, seed: 5), shape: [5, 4], on: device)
            for model in [a, b, a2, b2] { try model.zeroGrad() }
            let ya = try a(x1)
            let yb = try b(x2)
            try (try ya.pow(2).sum() + yb.sum()).backward()
            try (try a2(x1).pow(2).sum() + b2(x2).sum()).backward()
            for (i, p) in encoder.parameters.enumerated() {
                assertClose(try p.grad.toArray(), try zip(encoderA.parameters[i].grad.toArray(),
                                                          encoderB.parameters[i].grad.toArray()).map(+),
                            rtol: 1e-5, atol: 1e-6, "the shared encoder's \(p.name) on \(device)")
            }
            _ = try a.forward(x1)
            _ = try encoder(x2)
            XCTAssertThrowsError(try a.backward(try Tensor.ones([5, 2], on: device))) {
                XCTAssertTrue("\($0)".contains("layer 0 (Linear) ran another forward"), "\($0)")
            }
        }
    }

    /// `m(x)` puts a module of your own on the tape with its hand-written backward (a gradient reversal here);
    /// `keepGraph` does not reach into such a module, whose backward reads its last forward's state (a clear error,
    /// nothing changed) — it does into the built-in ones; one `grad:` buffer written by a
    /// second loss is refused by the first's backward; a penalty on a tape module's weight reaches `Parameter.grad`.
    func testCustomModulesKeepGraphSharedGradBuffersAndPenalties() throws {
        final class Keeper: Module {
            var input: Tensor?
            var parameters: [Parameter] { [] }
            func forward(_ x: Tensor) throws -> Tensor {
                input = x
                return try x * 1
            }
            func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? { dy }
            func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix { x }
        }
        final class Reversal: Module {
            var parameters: [Parameter] { [] }
            func forward(_ x: Tensor) throws -> Tensor { try x * 1 }
            func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? { try dy * -1 }
            func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix { x }
        }
        for device in testDevices {
            let x = try Tensor(testValues(4 * 3, seed: 6), shape: [4, 3], on: device)
            x.requiresGrad = true
            try (try Reversal()(x)).sum().backward()
            XCTAssertEqual(try XCTUnwrap(x.grad).toArray(), [Float](repeating: -1, count: 12), "on \(device)")

            let model = Sequential([Reversal(), try Linear(3, 2, seed: 7, on: device)])
            try model.zeroGrad()
            let loss = try (try model(x)).sum()
            try loss.backward(keepGraph: true)
            let grads = try model.parameters.map { try $0.grad.toArray() }
            XCTAssertThrowsError(try loss.backward()) {
                XCTAssertTrue("\($0)".contains("Reversal.backward: went back through the forward that made this "
                    + "output already"), "\($0)")
            }
            XCTAssertEqual(try model.parameters.map { try $0.grad.toArray() }, grads)

            // Its backward reads its last forward's state: an output of an earlier forward is refused (a siamese
            // use, an output kept over a later forward), not given the later forward's gradients.
            let y1 = try model(x), y2 = try model(try x * 2)
            try model.zeroGrad()
            for refused in [try (y1 - y2).sum(), try y1.sum()] {
                XCTAssertThrowsError(try refused.backward()) {
                    XCTAssertTrue("\($0)".contains("Reversal.backward: this module ran another forward since the one "
                        + "that made this output"), "\($0)")
                }
            }
            XCTAssertTrue(model.parameters.allSatisfy { $0.gradientIfComputed == nil }, "nothing changed, \(device)")
            try y2.sum().backward()

            // A Sequential of modules of your own only goes back through one forward once too: by the tape, then
            // by hand, or the other way round, the second is refused (each added the gradients again).
            let own = Sequential([Reversal()])
            for tapeFirst in [true, false] {
                x.grad = nil
                let y = try own(x), ones = try Tensor.ones([4, 3], on: device)
                if tapeFirst { try y.sum().backward() } else { _ = try own.backward(ones) }
                var second = ""
                do {
                    if tapeFirst { _ = try own.backward(ones) } else { try y.sum().backward() }
                } catch { second = "\(error)" }
                XCTAssertTrue(second.contains(tapeFirst ? "layer 0 (Reversal) went back through this model's forward "
                                                        : "Reversal.backward: went back through the forward that made"),
                              "tape first \(tapeFirst) on \(device): \(second)")
                if tapeFirst { XCTAssertEqual(try XCTUnwrap(x.grad).toArray(), [Float](repeating: -1, count: 12)) }
            }

            // A module of your own that keeps its input, applied in a loop (a recurrent cell) with the input on the
            // tape: it keeps the input detached (its output's tape node holds the module, and the input as recorded
            // would hold that node), so the module goes when the outputs do (the loop's backward is refused: it
            // keeps one forward's state).
            weak var gone: Keeper?
            do {
                let cell = Keeper()
                gone = cell
                var h = x
                for _ in 0..<3 { h = try cell(h) }
                XCTAssertThrowsError(try h.sum().backward(), "it keeps one forward's state, \(device)")
            }
            XCTAssertNil(gone, "the cell was freed, \(device)")

            let labels = try Tensor([0, 1, 1, 0], shape: [4], on: device)
            let shared = try Tensor.empty([4, 2], on: device)
            let (m1, m2) = (Sequential([try Linear(3, 2, seed: 8, on: device)]),
                            Sequential([try Linear(3, 2, seed: 9, on: device)]))
            let l1 = try CrossEntropyLoss()(try m1(x), labels, grad: shared)
            let l2 = try CrossEntropyLoss()(try m2(x), labels, grad: shared)
            XCTAssertThrowsError(try (l1 + l2).backward()) {
                XCTAssertTrue("\($0)".contains("was modified in place"), "\($0)")
            }

            let tapeLinear = try TapeLinear(3, 2, seed: 10, on: device)
            try tapeLinear.zeroGrad()
            let w = tapeLinear.parameters[0]
            let penalized = try (try tapeLinear(x)).sum() + (w.value * w.value).sum() * 0.5
            try penalized.backward()
            let plain = try TapeLinear(3, 2, seed: 10, on: device)
            try plain.zeroGrad()
            try (try plain(x)).sum().backward()
            assertClose(try w.grad.toArray(), try zip(plain.parameters[0].grad.toArray(), w.value.toArray()).map(+),
                        rtol: 1e-5, atol: 1e-6, "the penalty's gradient on \(device)")
        }
    }

    /// Every layer's parameters are leaves on the tape from the moment they exist, as PyTorch's: an L2 and an L1
    /// penalty over `model.parameters` — built-in `Linear` and `BatchNorm1d`, computed before the first forward —
    /// add their gradients to `Parameter.grad` beside the model's own; a penalty alone gives 2w. A layer's own
    /// backward called by hand records nothing (its input gradient is not a tape result).
    func testPenaltiesOnEveryLayersParametersReachTheirGradients() throws {
        for device in testDevices {
            func model() throws -> Sequential {
                Sequential([try Linear(3, 4, activation: .relu, seed: 11, on: device), try BatchNorm1d(4, on: device),
                            try Linear(4, 2, seed: 12, on: device)])
            }
            let x = try Tensor(testValues(5 * 3, seed: 13), shape: [5, 3], on: device)
            let (penalized, plain) = (try model(), try model())
            for m in [penalized, plain] { try m.zeroGrad() }
            var penalty = try Tensor.zeros([], on: device)
            for p in penalized.parameters {
                penalty = try penalty + (p.value * p.value).sum() * 0.5 + p.value.abs().sum() * 0.25
            }
            try (try (try penalized(x)).sum() + penalty).backward()
            try (try plain(x)).sum().backward()
            for (p, q) in zip(penalized.parameters, plain.parameters) {
                let w = try p.value.toArray()
                let expected = try zip(q.grad.toArray(), w).map { g, w in g + w + 0.25 * (w > 0 ? 1 : w < 0 ? -1 : 0) }
                assertClose(try p.grad.toArray(), expected, rtol: 1e-5, atol: 1e-6, "\(p.name) on \(device)")
            }

            let alone = try Linear(3, 2, seed: 14, on: device)
            try alone.zeroGrad()
            try (try alone.weight.value * alone.weight.value).sum().backward()
            assertClose(try alone.weight.grad.toArray(), try alone.weight.value.toArray().map { 2 * $0 },
                        rtol: 1e-6, atol: 0, "a penalty alone on \(device)")
            XCTAssertNil(alone.bias.gradientIfComputed, "the bias took no part, on \(device)")

            _ = try alone(x)
            let dx = try XCTUnwrap(try alone.backward(try Tensor.ones([5, 2], on: device), needsInputGradient: true))
            XCTAssertFalse(dx.requiresGrad, "a hand-called backward's input gradient is not on the tape, \(device)")

            // A parameter made from another's value by ops (a copy, a move) is a leaf of its own, as nn.Parameter(t):
            // its gradient reaches it, not the value it was copied from.
            for made in [try alone.weight.value.cloned(), try alone.weight.value.to(.cpu)] {
                let copy = try Parameter(name: "copy", value: made)
                XCTAssertTrue(copy.value.isLeaf, "a parameter's value has no history, \(device)")
                try alone.zeroGrad()
                try (try copy.value * copy.value).sum().backward()
                assertClose(try copy.grad.toArray(), try copy.value.toArray().map { 2 * $0 }, rtol: 1e-6, atol: 0,
                            "a copied parameter's penalty on \(device)")
                XCTAssertNil(alone.weight.gradientIfComputed, "the original took no part, on \(device)")
                XCTAssertFalse(made.isLeaf, "the tensor passed in keeps its history, \(device)")
            }
            // Nor does a parameter over another's value take that one's gradients (nn.Parameter(p.data)).
            let over = try Parameter(name: "over", value: alone.weight.value)
            try alone.zeroGrad()
            try (try alone.weight.value * 3).sum().backward()
            XCTAssertEqual(try alone.weight.grad.toArray(), [Float](repeating: 3, count: 6), "on \(device)")
            XCTAssertNil(over.gradientIfComputed, "on \(device)")
        }
    }

    /// A parameter whose value's `requiresGrad` is turned off is frozen, as in PyTorch: no backward writes its
    /// gradient (each fused-layer case: with and without an activation, weight or bias frozen; a batch norm's), the
    /// others' and the input's are what they are without freezing, and neither an optimiser with momentum and weight
    /// decay nor the trainer (one device, and with a replica) moves it.
    /// Whether a parameter takes a gradient from a forward is fixed at that forward, in the fused layers as on the
    /// tape (a `TapeModule`'s ops): one frozen then and unfrozen before `backward()` gets none from it, as PyTorch's
    /// graph has no edge to it (the fused `Linear` decided at its backward; helper-29).
    func testAParameterUnfrozenAfterTheForwardTakesNoGradientFromIt() throws {
        for device in testDevices {
            let x = try Tensor(testValues(5 * 3, seed: 26), shape: [5, 3], on: device)
            for layer in [try Linear(3, 4, activation: .tanh, seed: 27, on: device) as any Module,
                          try TapeLinear(3, 4, seed: 27, on: device)] {
                let (weight, bias) = (layer.parameters[0], layer.parameters[1])
                weight.value.requiresGrad = false
                let y = try layer(x)
                weight.value.requiresGrad = true
                weight.zeroGrad()
                bias.zeroGrad()
                try y.sum().backward()
                XCTAssertNil(weight.gradientIfComputed, "\(type(of: layer)) on \(device)")
                XCTAssertNotNil(bias.gradientIfComputed, "\(type(of: layer)) on \(device)")
                // By hand (the trainer's backward) the same.
                weight.value.requiresGrad = false
                _ = try layer.forward(x)
                weight.value.requiresGrad = true
                weight.zeroGrad()
                _ = try layer.backward(try Tensor.ones([5, 4], on: device), needsInputGradient: false)
                XCTAssertNil(weight.gradientIfComputed, "\(type(of: layer)) by hand on \(device)")
            }
        }
    }

    func testFrozenParametersTakeNoGradientAndStayPut() throws {
        for device in testDevices {
            func model() throws -> Sequential {
                Sequential([try Linear(3, 4, activation: .relu, seed: 21, on: device), try BatchNorm1d(4, on: device),
                            try Linear(4, 5, activation: .tanh, seed: 22, on: device),
                            try Linear(5, 6, seed: 23, on: device), try Linear(6, 2, seed: 24, on: device)])
            }
            let (frozen, plain) = (try model(), try model())
            let still = [0, 3, 5, 6, 9]  // weight, bias · bn bias · bias · weight · bias
            for i in still { frozen.parameters[i].value.requiresGrad = false }
            let x = try Tensor(testValues(7 * 3, seed: 25), shape: [7, 3], on: device)
            let x2 = try x.detached().cloned()
            for (m, input) in [(frozen, x), (plain, x2)] {
                try m.zeroGrad()
                input.requiresGrad = true
                try (try m(input)).pow(2).sum().backward()
            }
            for (i, (p, q)) in zip(frozen.parameters, plain.parameters).enumerated() {
                if still.contains(i) {
                    XCTAssertNil(p.gradientIfComputed, "parameter \(i) (\(p.name)) on \(device)")
                } else {
                    assertClose(try p.grad.toArray(), try q.grad.toArray(), rtol: 1e-5, atol: 1e-6,
                                "parameter \(i) (\(p.name)) on \(device)")
                }
            }
            assertClose(try XCTUnwrap(x.grad).toArray(), try XCTUnwrap(x2.grad).toArray(), rtol: 1e-5, atol: 1e-6,
                        "the input's gradient on \(device)")
            // A frozen first layer (a backbone) by hand: the layers behind it get their gradients, it none, and
            // nothing asks it for its input's.
            let (backbone, reference) = (try model(), try model())
            for p in backbone.layers[0].parameters { p.value.requiresGrad = false }
            for m in [backbone, reference] {
                _ = try m.forward(x.detached())
                try m.zeroGrad()
                XCTAssertNil(try m.backward(try Tensor.ones([7, 2], on: device), needsInputGradient: false))
            }
            for (i, (p, q)) in zip(backbone.parameters, reference.parameters).enumerated().dropFirst(2) {
                assertClose(try p.grad.toArray(), try q.grad.toArray(), rtol: 1e-5, atol: 1e-6, "\(i) on \(device)")
            }
            XCTAssertTrue(backbone.parameters.prefix(2).allSatisfy { $0.gradientIfComputed == nil }, "\(device)")
            // (Reading a frozen parameter's `grad`, as a user printing gradients does, makes its zero real: the
            // optimisers still leave it alone, as PyTorch's leave a parameter whose grad is None.)
            for optimizer in [try SGD(frozen.parameters, lr: 0.1, momentum: 0.9, weightDecay: 0.01) as any Optimizer,
                              try Adam(frozen.parameters, lr: 0.01, weightDecay: 0.01)] {
                let before = try frozen.parameters.map { try $0.value.toArray() }
                for _ in 0..<2 {
                    for p in frozen.parameters { _ = try p.grad }
                    try optimizer.step()
                    try frozen.zeroGrad()
                    try (try frozen(x)).sum().backward()
                }
                for (i, p) in frozen.parameters.enumerated() where p.name != "running_mean" {
                    if still.contains(i) {
                        XCTAssertEqual(try p.value.toArray(), before[i], "\(optimizer.name): parameter \(i) moved on "
                                       + "\(device)")
                    } else {
                        XCTAssertNotEqual(try p.value.toArray(), before[i], "\(optimizer.name): parameter \(i) "
                                          + "trained on \(device)")
                    }
                }
            }
        }
        let (train, _) = try fashionSlice(train: 128, test: 1)
        for device in testDevices {
            for replicas in [[], [DeviceTag.cpu]] {
                var options = TrainingOptions()
                (options.epochs, options.batchSize, options.optimizer, options.weightDecay) = (1, 32, .adam, 0.01)
                let model = try MLP.make(sizes: [784, 8, 10], seed: 26, on: device)
                model.parameters[0].value.requiresGrad = false
                let before = try model.parameters.map { try $0.value.toArray() }
                let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options, replicas: replicas)
                _ = try trainer.trainEpoch(train, epoch: 1)
                XCTAssertEqual(try model.parameters[0].value.toArray(), before[0], "frozen, \(device) \(replicas)")
                for i in 1..<4 {
                    XCTAssertNotEqual(try model.parameters[i].value.toArray(), before[i], "\(device) \(replicas)")
                }
            }
        }
    }

    /// `loss.backward()` through a model on the tape does only the work PyTorch's graph holds: a network's first
    /// module (a convolution, its input an image that takes no gradient) and a frozen backbone compute no input
    /// gradient, where their tapes of their own used to go back to their copy of the input (a col2im per step for
    /// nothing); the gradients are those of the same model whose input takes one. A model with every parameter frozen
    /// fed such an input has nothing to differentiate: `backward()` refuses, as PyTorch does, and changes nothing —
    /// while with an input that takes a gradient the input gets it through the frozen modules.
    func testTheTapeDoesNoWorkForAGradientNobodyAskedFor() throws {
        for device in testDevices {
            func model(frozen: Int) throws -> Sequential {
                let layers: [any Module] = [try ImageInput(channels: 1, height: 6, width: 5),
                                            try Conv2d(1, 3, kernel: 3, padding: 1, seed: 31, on: device),
                                            try BatchNorm2d(3, on: device), ActivationLayer(.relu), Flatten(),
                                            try Linear(3 * 6 * 5, 4, seed: 32, on: device)]
                for layer in layers.prefix(frozen) { for p in layer.parameters { p.value.requiresGrad = false } }
                return Sequential(layers)
            }
            let x = try Tensor(testValues(2 * 30, seed: 33), shape: [2, 30], on: device)
            for frozen in [0, 3] {  // nothing frozen; the convolution and batch norm (a backbone)
                let (plain, reference) = (try model(frozen: frozen), try model(frozen: frozen))
                let tracked = try x.detached().cloned()
                tracked.requiresGrad = true
                try (try plain(x)).pow(2).sum().backward()
                try (try reference(tracked)).pow(2).sum().backward()
                for (i, (p, q)) in zip(plain.parameters, reference.parameters).enumerated() {
                    if i < 2 * frozen - 2 {  // (ImageInput has no parameters)
                        XCTAssertNil(p.gradientIfComputed, "frozen \(frozen), parameter \(i) on \(device)")
                    } else {
                        assertClose(try p.grad.toArray(), try q.grad.toArray(), rtol: 1e-5, atol: 1e-6,
                                    "frozen \(frozen), parameter \(i) on \(device)")
                    }
                }
                for (i, layer) in plain.layers.prefix(2).enumerated() {
                    let record = try XCTUnwrap((layer as? any TapeModule)?.tape)
                    XCTAssertNil(record.input?.grad, "layer \(i)'s copy of its input took a gradient: frozen "
                                 + "\(frozen) on \(device)")
                }
                XCTAssertNotNil(tracked.grad, "frozen \(frozen) on \(device)")
            }
            let (all, unfrozen) = (try model(frozen: 6), try model(frozen: 0))
            let y = try all(x)
            XCTAssertThrowsError(try y.sum().backward(), "\(device)") {
                XCTAssertTrue("\($0)".contains("needs no gradient"), "\($0)")
            }
            XCTAssertTrue(all.parameters.allSatisfy { $0.gradientIfComputed == nil }, "\(device)")
            let (t1, t2) = (try x.detached().cloned(), try x.detached().cloned())
            for (m, t) in [(all, t1), (unfrozen, t2)] {
                t.requiresGrad = true
                try (try m(t)).pow(2).sum().backward()
            }
            assertClose(try XCTUnwrap(t1.grad).toArray(), try XCTUnwrap(t2.grad).toArray(), rtol: 1e-5, atol: 1e-6,
                        "the input's gradient through a frozen model on \(device)")
            XCTAssertTrue(all.parameters.allSatisfy { $0.gradientIfComputed == nil }, "\(device)")
        }
    }

    /// What a `TapeModule`'s own tape reaches takes its gradient whatever the module's input takes: a tensor it
    /// captured, behind a module with no parameters (Flatten) and inside a block that is the first layer; an output
    /// with nothing to differentiate takes no gradient (`requiresGrad` false, as PyTorch's) and is the caller's own
    /// leaf when asked to take one (eval-mode dropout's output is its input). Each against the same ops outside any
    /// module. (helper-23's probe: the first commit of this change lost the first two, refused the third.)
    func testWhatATapeModuleCapturedTakesItsGradient() throws {
        final class Scale: TapeModule {
            let c: Tensor
            let tape = TapeRecord()
            init(_ c: Tensor) { self.c = c }
            var parameters: [Parameter] { [] }
            func compute(_ x: Tensor) throws -> Tensor { try x * c }
        }
        final class Block: TapeModule {
            let scale: Scale, p: Parameter
            let tape = TapeRecord()
            init(_ c: Tensor) throws {
                scale = Scale(c)
                p = try Parameter(name: "p", value: try Tensor.full([6], value: 0.5, on: c.device))
            }
            var parameters: [Parameter] { [p] }
            func compute(_ x: Tensor) throws -> Tensor { try scale(x) * p.value }
        }
        for device in testDevices {
            let x = try Tensor(testValues(2 * 6, seed: 41), shape: [2, 2, 3], on: device)
            let c = try Tensor(testValues(2 * 6, seed: 42), shape: [2, 6], on: device)
            c.requiresGrad = true
            let flat = try x.reshaped([2, 6])
            let head = try TapeLinear(6, 3, seed: 43, on: device)
            let copy = try TapeLinear(6, 3, seed: 43, on: device)
            for (name, model) in [("Flatten, Scale", Sequential([Flatten(), Scale(c)])),
                                  ("Flatten, Scale, TapeLinear", Sequential([Flatten(), Scale(c), head])),
                                  ("Flatten, Block", Sequential([Flatten(), try Block(c)]))] {
                c.grad = nil
                try (try model(x)).pow(2).sum().backward()
                let reference = try c.detached().cloned()
                reference.requiresGrad = true
                var y = try flat * reference
                if model.layers.count == 3 { y = try copy(y) }
                if model.layers[1] is Block { y = try y * 0.5 }
                try y.pow(2).sum().backward()
                assertClose(try XCTUnwrap(c.grad, "\(name) on \(device)").toArray(),
                            try XCTUnwrap(reference.grad).toArray(), rtol: 1e-5, atol: 1e-6, "\(name) on \(device)")
            }
            XCTAssertFalse(try Flatten()(x).requiresGrad, "\(device)")
            let dropout = try Dropout(0.5, seed: 44)
            dropout.setTraining(false)
            let h = try dropout(flat)
            XCTAssertFalse(h.requiresGrad, "\(device)")
            h.requiresGrad = true
            try (h * h).sum().backward()
            XCTAssertEqual(try XCTUnwrap(h.grad).toArray(), try (flat * 2).toArray(), "\(device)")
        }
    }

    /// Where neither a module's input nor its parameters take a gradient, its output is the graph of the ops its
    /// forward recorded, as PyTorch's (helper-24's probe of this change's second version, which recorded a node of
    /// the module there instead): a parameterless module reading a captured state, applied 2000 times in a loop,
    /// goes back in one pass (nested backwards overflowed the stack); a module of your own that borrows a weight
    /// it does not list gives that weight its gradient whatever its input takes (its backward, or with an input that
    /// takes none its forward's ops, which detaching lost); a leaf frozen after the forward
    /// takes no gradient, and `backward()` runs (PyTorch's).
    func testLoopsBorrowedWeightsAndLateFreezingGoBackAsPyTorchsGraph() throws {
        final class AddState: TapeModule {
            let tape = TapeRecord()
            var state: Tensor
            init(_ state: Tensor) { self.state = state }
            var parameters: [Parameter] { [] }
            func compute(_ x: Tensor) throws -> Tensor { try x + state }
        }
        final class Borrower: Module {
            let w: Parameter
            var x: Tensor?
            init(_ w: Parameter) { self.w = w }
            var parameters: [Parameter] { [] }
            func forward(_ x: Tensor) throws -> Tensor {
                self.x = x
                return try x.matmul(w.value)
            }
            func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
                try Tensor.withoutGradients {
                    let (dw, accumulate) = w.gradientForBackward()
                    let g = try XCTUnwrap(x).transposed().matmul(dy)
                    try dw.copy(from: accumulate ? try dw + g : g)
                    return needsInputGradient ? try dy.matmul(try w.value.transposed()) : nil
                }
            }
            func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix { x }
        }
        for device in testDevices {
            let h0 = try Tensor.zeros([1, 4], on: device)
            h0.requiresGrad = true
            let x = try Tensor.full([1, 4], value: 0.001, on: device)
            let cell = AddState(h0)
            var h = h0
            for _ in 0..<2000 {
                h = try cell(x)
                cell.state = h
            }
            try (h * 2).sum().backward()
            XCTAssertEqual(try XCTUnwrap(h0.grad).toArray(), [2, 2, 2, 2], "\(device)")

            let values = testValues(3 * 2, seed: 45), input = testValues(4 * 3, seed: 46)
            let reference = try Tensor(values, shape: [3, 2], on: device)
            reference.requiresGrad = true
            try (try Tensor(input, shape: [4, 3], on: device).matmul(reference)).sum().backward()
            for tracked in [false, true] {
                let w = try Parameter(name: "w", value: try Tensor(values, shape: [3, 2], on: device))
                let borrowed = try Tensor(input, shape: [4, 3], on: device)
                borrowed.requiresGrad = tracked
                try (try Borrower(w)(borrowed)).sum().backward()
                assertClose(try w.grad.toArray(), try XCTUnwrap(reference.grad).toArray(), rtol: 1e-6, atol: 1e-6,
                            "input takes a gradient: \(tracked), on \(device)")
            }

            let leaf = try Tensor([1, 2, 3], shape: [3], on: device)
            leaf.requiresGrad = true
            let y = try (leaf * leaf).sum()
            leaf.requiresGrad = false
            try y.backward()
            XCTAssertNil(leaf.grad, "\(device)")
        }
    }

    /// A `TapeModule` that reads a tensor with a history of its own (a recurrent cell's state kept in a property, a
    /// tensor computed before its forward) hands that tensor's gradient back to `backward()`, which carries on in one
    /// pass: a cell with a weight over 3000 steps, its state kept by the caller or by the cell itself, gets the
    /// gradients of the same ops written without modules (it went back through one nested backward per step and ran
    /// out of stack past about 1000; kept by the cell, each forward walked every earlier step's ops — helper-26),
    /// and a tensor read by
    /// the module and by the loss gets both gradients (it was refused halfway, its history released by the
    /// module's backward, with a partial gradient left; helper-25's probe).
    func testACapturedHistoryGoesBackOnceInOnePass() throws {
        final class Cell: TapeModule {
            let tape = TapeRecord()
            let w: Parameter
            var state: Tensor
            init(_ state: Tensor, _ w: Tensor) throws {
                self.state = state
                self.w = try Parameter(name: "w", value: w)
            }
            var parameters: [Parameter] { [w] }
            /// Keeps its state itself (the tensor it computed), rather than the caller keeping the module's output.
            var keepsState = false
            func compute(_ x: Tensor) throws -> Tensor {
                let h = try (x + state.matmul(w.value)).activation(.tanh)
                if keepsState { state = h }
                return h
            }
        }
        for device in testDevices {
            // The depth is the tape's host code, the same on every device: 3000 steps on cpu, 40 elsewhere (a driver
            // that takes milliseconds an op, Mesa's rusticl on llvmpipe, spent 8 minutes of CI on 3000).
            let values = testValues(16, seed: 47).map { $0 * 0.3 }, steps = device == .cpu ? 3000 : 40
            let x = try Tensor(testValues(4, seed: 48), shape: [1, 4], on: device)
            let w = try Tensor(values, shape: [4, 4], on: device), r0 = try Tensor.full([1, 4], value: 0.1, on: device)
            (w.requiresGrad, r0.requiresGrad) = (true, true)
            var r = r0
            for _ in 0..<steps { r = try (x + r.matmul(w)).activation(.tanh) }
            try r.sum().backward()
            // (Kept by the cell, each forward reads a tensor of the last one's tape: only its own ops are walked.)
            for keepsState in [false, true] {
                let h0 = try Tensor.full([1, 4], value: 0.1, on: device)
                h0.requiresGrad = true
                let cell = try Cell(h0, try Tensor(values, shape: [4, 4], on: device))
                cell.keepsState = keepsState
                var h = h0
                for _ in 0..<steps {
                    h = try cell(x)
                    if !keepsState { cell.state = h }
                }
                try h.sum().backward()
                assertClose(try cell.w.grad.toArray(), try XCTUnwrap(w.grad).toArray(), rtol: 1e-4, atol: 1e-6,
                            "the weight, state kept by the cell: \(keepsState), on \(device)")
                assertClose(try XCTUnwrap(h0.grad).toArray(), try XCTUnwrap(r0.grad).toArray(), rtol: 1e-4,
                            atol: 1e-6, "the first state, kept by the cell: \(keepsState), on \(device)")
            }

            let p = try Tensor([1, 2, 3], shape: [1, 3], on: device)
            p.requiresGrad = true
            let c = try p * 2
            let scale = try Cell(c, try Tensor.full([3, 3], value: 0.5, on: device))
            let z = try Tensor.zeros([1, 3], on: device)
            try (try scale(z).sum() + c.sum()).backward()
            let q = try Tensor([1, 2, 3], shape: [1, 3], on: device)
            let v = try Tensor.full([3, 3], value: 0.5, on: device)
            q.requiresGrad = true
            let d = try q * 2
            try ((try (z + d.matmul(v)).activation(.tanh)).sum() + d.sum()).backward()
            assertClose(try XCTUnwrap(p.grad).toArray(), try XCTUnwrap(q.grad).toArray(), rtol: 1e-5, atol: 1e-6,
                        "a tensor read by the module and the loss on \(device)")
        }
    }

    /// A module of your own whose `backward` gives no input gradient (nil) where one was asked for: `backward(dy)`,
    /// which returns one, is an error naming it (it trapped); on the tape nil is no contribution, as PyTorch's None
    /// (an output that does not depend on the input).
    func testAModuleThatGivesNoInputGradientWhenAsked() throws {
        final class Constant: Module {
            var parameters: [Parameter] { [] }
            func forward(_ x: Tensor) throws -> Tensor { try Tensor.ones(x.shape, on: x.device) * 3 }
            func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? { nil }
            func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix { x }
        }
        for device in testDevices {
            let x = try Tensor(testValues(4 * 3, seed: 8), shape: [4, 3], on: device)
            let constant = Constant()
            _ = try constant.forward(x)
            XCTAssertThrowsError(try constant.backward(x)) {
                XCTAssertTrue("\($0)".contains("Constant.backward: returned no input gradient although one was "
                    + "asked for"), "\($0)")
            }
            x.requiresGrad = true
            try (try constant(x) + x * 2).sum().backward()
            XCTAssertEqual(try XCTUnwrap(x.grad).toArray(), [Float](repeating: 2, count: 12), "\(device)")
        }
    }
}

private extension Array {
    func pair() -> (Element, Element) { (self[0], self[1]) }
}
