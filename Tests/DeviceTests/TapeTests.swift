import Device
import Foundation
import TestSupport
import XCTest

/// The tape's rules as PyTorch has them: accumulation, scopes, errors.
final class TapeTests: XCTestCase {
    func testGradientsAccumulateUntilReset() throws {
        for device in testDevices {
            let x = try Tensor([1, 2, 3], shape: [3], on: device)
            x.requiresGrad = true
            let y = try (x * x).sum()
            try y.backward(keepGraph: true)
            XCTAssertEqual(try x.grad?.toArray(), [2, 4, 6], "\(device)")
            try y.backward()
            XCTAssertEqual(try x.grad?.toArray(), [4, 8, 12], "accumulated on \(device)")
            x.grad = nil
            try (x * 3).sum().backward()
            XCTAssertEqual(try x.grad?.toArray(), [3, 3, 3], "after reset on \(device)")
            // A tensor used twice gets both contributions.
            x.grad = nil
            try (x * x + x).sum().backward()
            XCTAssertEqual(try x.grad?.toArray(), [3, 5, 7], "\(device)")
        }
    }

    /// Whether a leaf takes a gradient through an op is fixed when the op is recorded, as PyTorch's graph: a leaf
    /// that took none then and has `requiresGrad` set before `backward()` gets nothing through that op (it got the
    /// op's gradient), only through the ops recorded after; one turned off before `backward()` gets nothing at all.
    func testALeafTakesAGradientThroughTheOpsRecordedWhileItTookOne() throws {
        for device in testDevices {
            let x = try Tensor([1, 2, 3], shape: [3], on: device), w = try Tensor([4, 5, 6], shape: [3], on: device)
            x.requiresGrad = true
            let early = try (x * w).sum()
            w.requiresGrad = true
            let late = try (w * 2).sum()
            try (early + late).backward()
            XCTAssertEqual(try x.grad?.toArray(), [4, 5, 6], "\(device)")
            XCTAssertEqual(try w.grad?.toArray(), [2, 2, 2], "only the op recorded after on \(device)")
            // A product's weight: no gradient, and the rule is not asked for it.
            let a = try Tensor([1, 2, 3, 4], shape: [2, 2], on: device)
            let b = try Tensor.full([2, 2], value: 1, on: device)
            a.requiresGrad = true
            let product = try a.matmul(b).sum()
            b.requiresGrad = true
            try product.backward()
            XCTAssertEqual(try a.grad?.toArray(), [2, 2, 2, 2], "\(device)")
            XCTAssertNil(b.grad, "a weight that took no gradient when the product was recorded, on \(device)")
            // Only that leaf behind a result: the result itself still needs no gradient.
            let c = try Tensor([1, 2], shape: [2], on: device)
            let d = try c * 3
            c.requiresGrad = true
            XCTAssertFalse(d.requiresGrad, "\(device)")
        }
    }

    /// A leaf shared by tasks that each go back through ops on it gets every task's gradient: one backward at a time
    /// adds to it (two at once lost adds, and on OpenCL crashed the process: helper-30, under ThreadSanitizer).
    func testTasksGoingBackToOneLeafAddEveryGradient() throws {
        for device in testDevices {
            let w = try Tensor([1, -2, 3], shape: [3], on: device)
            w.requiresGrad = true
            let c = try Tensor([0.5, 1, -1.5], shape: [3], on: device)
            let (tasks, passes) = (4, 50)
            let failures = NSLock()
            nonisolated(unsafe) var failed: [String] = []
            DispatchQueue.concurrentPerform(iterations: tasks) { _ in
                do {
                    for _ in 0..<passes { try (w * c).sum().backward() }
                } catch {
                    failures.withLock { failed.append("\(error)") }
                }
            }
            XCTAssertEqual(failed, [], "\(device)")
            XCTAssertEqual(try XCTUnwrap(w.grad).toArray(), [0.5, 1, -1.5].map { Float(tasks * passes) * $0 },
                           "\(device)")
        }
    }

    func testALeafGradientSharesMemoryWithNothingElse() throws {
        for device in testDevices {
            // Rules that pass the gradient on unchanged (a copy, a reshape, an add): the leaf's gradient must be its
            // own memory, not the caller's seed nor a view of it. A rule's fresh result is kept without a copy.
            let x = try Tensor([1, 2, 3, 4], shape: [2, 2], on: device)
            x.requiresGrad = true
            let seed = try Tensor([5, 6, 7, 8], shape: [4], on: device)
            try x.cloned().reshaped([4]).backward(seed: seed)
            try seed.fill(0)
            XCTAssertEqual(try x.grad?.toArray(), [5, 6, 7, 8], "\(device)")
            x.grad = nil
            let s2 = try Tensor([1, 1, 1, 1], shape: [2, 2], on: device)
            try (x + x.detached()).backward(seed: s2)
            try s2.fill(9)
            XCTAssertEqual(try x.grad?.toArray(), [1, 1, 1, 1], "\(device)")
            // The gradient (a fresh product) is then the leaf's, and accumulates in place of a copy as before.
            x.grad = nil
            try (x * 2).backward(seed: try Tensor.ones([2, 2], on: device))
            try (x * 3).backward(seed: try Tensor.ones([2, 2], on: device))
            XCTAssertEqual(try x.grad?.toArray(), [5, 5, 5, 5], "\(device)")
        }
    }

    func testNoGradientScopeRecordsNothing() throws {
        let x = try Tensor([1, 2], shape: [2])
        x.requiresGrad = true
        let y = try Tensor.withoutGradients { try (x * 2).sum() }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertTrue(y.isLeaf)
        let z = try (x * 2).sum()
        XCTAssertTrue(z.requiresGrad)
        XCTAssertFalse(try x.detached().exp().requiresGrad)
    }

    func testBackwardErrorsNameTheProblem() throws {
        let x = try Tensor([1, 2, 3], shape: [3])
        XCTAssertThrowsError(try x.sum().backward()) { XCTAssertTrue("\($0)".contains("needs no gradient"), "\($0)") }
        x.requiresGrad = true
        let y = try x.exp()
        XCTAssertThrowsError(try y.backward()) { XCTAssertTrue("\($0)".contains("not a scalar"), "\($0)") }
        XCTAssertThrowsError(try y.backward(seed: try Tensor.ones([2]))) { XCTAssertTrue("\($0)".contains("seed")) }
        try y.backward(seed: try Tensor.ones([3]))
        XCTAssertThrowsError(try y.backward(seed: try Tensor.ones([3]))) {
            XCTAssertTrue("\($0)".contains("released"), "\($0)")
        }
    }

    func testModifyingASavedTensorInPlaceIsAnErrorAtBackward() throws {
        for device in testDevices {
            let x = try Tensor([0.5, 1, 2], shape: [3], on: device)
            x.requiresGrad = true
            let y = try x.exp()
            let loss = try y.sum()
            // exp saved its result: changing it (or its input) makes the gradient wrong, so backward refuses.
            try y.detached().fill(0)
            XCTAssertThrowsError(try loss.backward()) { error in
                XCTAssertTrue("\(error)".contains("exp saved"), "\(error)")
            }
            let z = try (x * x).sum()
            try x.detached()[0..<1].copy(from: try Tensor([7], shape: [1], on: device))
            XCTAssertThrowsError(try z.backward()) { XCTAssertTrue("\($0)".contains("mul saved"), "\($0)") }
        }
    }

    /// The hand-written backward of the fused layer (Tensor.linearBackward, the training loop's) and the tape
    /// written with tensor ops give the same gradients.
    func testTapeMatchesTheHandWrittenLinearBackward() throws {
        let (rows, inputs, outputs) = (7, 13, 5)
        let xv = testValues(rows * inputs, seed: 60), wv = testValues(inputs * outputs, seed: 61)
        let bv = testValues(outputs, seed: 62), labels: [Float] = [0, 4, 2, 1, 3, 3, 0]
        for device in testDevices {
            let x = try Tensor(xv, shape: [rows, inputs], on: device)
            let w = try Tensor(wv, shape: [inputs, outputs], on: device)
            let b = try Tensor(bv, shape: [outputs], on: device)
            let y = try Tensor(labels, shape: [rows], on: device)
            // Hand-written: forward, the fused loss gradient, then the two gradient products and the bias sum.
            let z = try x.matmul(w).addBias(b)
            let dz = try Tensor.empty([rows, outputs], on: device)
            _ = try z.softmaxCrossEntropy(labels: y, grad: dz, gradScale: 1 / Float(rows))
            let dw = try x.matmul(dz, transposeSelf: true)
            let db = try Tensor.zeros([outputs], on: device)
            try Tensor.addBiasBackward(dz, into: db)
            // Tape.
            w.requiresGrad = true
            b.requiresGrad = true
            let loss = try (x.matmul(w) + b).softmaxCrossEntropy(labels: y).mean()
            try loss.backward()
            assertClose(try XCTUnwrap(w.grad).toArray(), try dw.toArray(), rtol: 1e-5, atol: 1e-6, "dw on \(device)")
            assertClose(try XCTUnwrap(b.grad).toArray(), try db.toArray(), rtol: 1e-5, atol: 1e-6, "db on \(device)")
        }
    }

    /// A rows product large enough for the CPU's blocked path (its rows gathered into a scratch copy) equals the
    /// product of the gathered rows, and so does the weight's gradient.
    func testARowsProductOnTheBlockedPathEqualsTheGatheredProduct() throws {
        let (n, k, cols, rows) = (300, 784, 30, 250)
        let source = testValues(n * k, seed: 64), wv = testValues(k * cols, seed: 65)
        let order = (0..<n).map { Float(($0 * 7) % n) }
        for device in testDevices {
            let picked = try Rows(try Tensor(source, shape: [n, k], on: device),
                                  order: try Tensor(order, shape: [n], on: device), offset: 40, count: rows)
            let (a, b) = (try Tensor(wv, shape: [k, cols], on: device), try Tensor(wv, shape: [k, cols], on: device))
            a.requiresGrad = true
            b.requiresGrad = true
            let (y, reference) = (try picked.matmul(a), try picked.gathered().matmul(b))
            assertClose(try y.toArray(), try reference.toArray(), rtol: 1e-4, atol: 1e-4, "product on \(device)")
            try y.sum().backward()
            try reference.sum().backward()
            assertClose(try XCTUnwrap(a.grad).toArray(), try XCTUnwrap(b.grad).toArray(), rtol: 1e-4, atol: 1e-4,
                        "gradient on \(device)")
        }
    }

    /// Rows read through an index list pass no gradient to their source: a source that requires one is an error,
    /// not a silently missing gradient.
    func testARowsProductOfASourceThatRequiresAGradientIsAnError() throws {
        for device in testDevices {
            let x = try Tensor(testValues(5 * 3, seed: 63), shape: [5, 3], on: device)
            x.requiresGrad = true
            let rows = try Rows(x, order: try Tensor([4, 0, 2], shape: [3], on: device), offset: 0, count: 3)
            XCTAssertThrowsError(try rows.matmul(try Tensor.ones([3, 2], on: device))) {
                XCTAssertTrue("\($0)".contains("requires a gradient"), "\($0)")
            }
        }
    }

    /// The README's example ("Tensors you can compute with"), as written there.
    func testTheREADMEExampleRunsOnEveryDevice() throws {
        for device in testDevices {
            let x = try Tensor.randn([64, 784], seed: 1, on: device)
            let labels = try Tensor((0..<64).map { Float($0 % 10) }, shape: [64], on: device)
            let w = try Tensor.randn([784, 10], seed: 2, std: 0.05, on: device), b = try Tensor.zeros([10], on: device)
            w.requiresGrad = true
            b.requiresGrad = true
            let logits = try x.matmul(w) + b                                      // [64, 10]: b broadcast over the rows
            let loss = try logits.softmaxCrossEntropy(labels: labels).mean()      // shape []
            try loss.backward()                                                   // w.grad: [784, 10], b.grad: [10]
            let p = try logits.softmax(axis: 1), top = try p.argmax(axis: 1)      // [64, 10] and [64]
            XCTAssertEqual(loss.shape, [])
            XCTAssertEqual(w.grad?.shape, [784, 10])
            XCTAssertEqual(b.grad?.shape, [10])
            XCTAssertEqual(top.shape, [64])
            // b's gradient is the column sums of (softmax − one-hot) / 64: they add up to 0.
            XCTAssertEqual(try XCTUnwrap(b.grad).sum().item(), 0, accuracy: 1e-5)
            XCTAssertEqual(try p.sum().item(), 64, accuracy: 1e-3)
        }
    }

    /// Zero-size axes: gradients of the right (empty) shapes, and a reduction of nothing that still reaches a leaf.
    func testGradientsThroughZeroSizeAxesOnEveryDevice() throws {
        for device in testDevices {
            let x = try Tensor.zeros([0, 3], on: device), w = try Tensor.ones([3], on: device)
            x.requiresGrad = true
            w.requiresGrad = true
            try (x * w).sum().backward()
            XCTAssertEqual(x.grad?.shape, [0, 3], "\(device)")
            XCTAssertEqual(try x.grad?.toArray(), [])
            XCTAssertEqual(try w.grad?.toArray(), [0, 0, 0], "an empty batch adds nothing, on \(device)")
            let y = try Tensor.ones([2, 3], on: device)
            y.requiresGrad = true
            try y[1..<1].sum().backward()
            XCTAssertEqual(try y.grad?.toArray(), [0, 0, 0, 0, 0, 0], "\(device)")
        }
    }

    func testALongChainDoesNotOverflowTheStack() throws {
        let x = try Tensor([1], shape: [1])
        x.requiresGrad = true
        var y = x
        for _ in 0..<20_000 { y = try y + 0 }
        try y.sum().backward()
        XCTAssertEqual(try x.grad?.toArray(), [1])
    }
}
