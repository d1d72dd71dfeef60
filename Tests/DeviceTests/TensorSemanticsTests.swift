import Device
import Foundation
import TestSupport
import XCTest

/// What numpy and PyTorch users expect of the tensor ops at the edges, on every device — each case a finding of a
/// hostile probe that gave another answer (a silent wrong value, a trap or a message naming an inner step).
final class TensorSemanticsTests: XCTestCase {
    private func message(_ body: () throws -> Any) -> String {
        do { _ = try body(); return "" } catch { return "\(error)" }
    }

    func testReluKeepsNaNAsPyTorchDoesInEveryForm() throws {
        let values: [Float] = [.nan, -.infinity, .infinity, -1, 0, 1]
        for device in testDevices {
            let x = try Tensor(values, shape: [1, 6], on: device)
            let alone = try x.activation(.relu).toArray()
            let fused = try (try x.cloned()).biasActivation(try Tensor.zeros([6], on: device), .relu).toArray()
            let (z, y) = (try Tensor.empty([1, 6], on: device), try Tensor.empty([1, 6], on: device))
            try Tensor.linear(Rows(try Tensor([1], shape: [1, 1], on: device)),
                              weight: try Tensor(values, shape: [1, 6], on: device),
                              bias: try Tensor.zeros([6], on: device), activation: .relu, preActivation: z, output: y)
            for (form, out) in [("activation", alone), ("biasActivation", fused), ("linear", try y.toArray())] {
                XCTAssertTrue(out[0].isNaN, "\(form) on \(device): \(out)")
                XCTAssertEqual(Array(out[1...]), [0, .infinity, 0, 0, 1], "\(form) on \(device)")
            }
        }
    }

    /// biasActivation writes its input in place: an op that saved the input sees the change (it gave a wrong
    /// gradient), and a tracked input or bias is refused, naming the recorded form; addBias is recorded as x + b.
    func testBiasOpsAndTheTape() throws {
        for device in testDevices {
            let p = try Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3], on: device)
            p.requiresGrad = true
            let q = try p * 1
            let r = try (q * q).sum()
            let detachedQ = q.detached()
            try detachedQ.biasActivation(try Tensor.full([3], value: 100, on: device), .relu)
            XCTAssertTrue(message { try r.backward() }.contains("modified in place"), "\(device)")

            let b = try Tensor([0.5, -1, 2], shape: [3], on: device)
            b.requiresGrad = true
            XCTAssertTrue(message { try p.biasActivation(b, .tanh) }.contains(
                "biasActivation: its input requires a gradient, but this op writes the pre-activation into its input "
                + "in place and is not recorded: use (x + bias).activation(.tanh)"), "\(device)")
            XCTAssertTrue(message { try p.detached().biasActivation(b, .relu) }.contains("the bias requires"))

            let x = try Tensor(testValues(6, seed: 3), shape: [2, 3], on: device)
            x.requiresGrad = true
            try (try x.addBias(b).pow(2)).sum().backward()
            let (gx, gb) = (try XCTUnwrap(x.grad).toArray(), try XCTUnwrap(b.grad).toArray())
            x.grad = nil
            b.grad = nil
            try (try (x + b).pow(2)).sum().backward()
            assertClose(gx, try XCTUnwrap(x.grad).toArray(), "addBias's x gradient on \(device)")
            assertClose(gb, try XCTUnwrap(b.grad).toArray(), "addBias's bias gradient on \(device)")
        }
    }

    /// A copy or elementwise op whose source overlaps its destination elsewhere gives numpy's result (the source
    /// read as it was); an op in place still works.
    func testOverlappingSourceAndDestinationGiveNumpysResult() throws {
        for device in testDevices {
            let x = try Tensor([0, 1, 2, 3], shape: [4], on: device)
            try x[1..<4].copy(from: try x[0..<3])
            XCTAssertEqual(try x.toArray(), [0, 0, 1, 2], "shifted slice on \(device)")

            let rows = try Tensor([0, 1, 2, 3, 4, 5], shape: [3, 2], on: device)
            try rows[1..<3].copy(from: try rows[0..<2])
            XCTAssertEqual(try rows.toArray(), [0, 1, 0, 1, 2, 3], "shifted rows on \(device)")

            let m = try Tensor((1...9).map(Float.init), shape: [3, 3], on: device)
            try m.copy(from: try m.transposed())
            XCTAssertEqual(try m.toArray(), [1, 4, 7, 2, 5, 8, 3, 6, 9], "x[:] = x.T on \(device)")

            let n = try Tensor((1...9).map(Float.init), shape: [3, 3], on: device)
            try n.transposed().elementwise(.add, try Tensor.zeros([3, 3], on: device), into: n)
            XCTAssertEqual(try n.toArray(), [1, 4, 7, 2, 5, 8, 3, 6, 9], "elementwise into its own transpose")

            let back = try Tensor([0, 1, 2, 3], shape: [4], on: device)
            try back[0..<3].copy(from: try back[1..<4])
            XCTAssertEqual(try back.toArray(), [1, 2, 3, 3], "shifted the other way on \(device)")

            let same = try Tensor([1, 2, 3], shape: [3], on: device)
            try same.elementwise(.mul, same, into: same)
            XCTAssertEqual(try same.toArray(), [1, 4, 9], "in place on \(device)")
        }
    }

    func testExpandedUploadAndArgmaxOutOfRange() throws {
        let row = try Tensor.ones([1, 3])
        XCTAssertEqual(try row.expanded(to: [4, -1]).shape, [4, 3], "-1 keeps the axis, as PyTorch")
        XCTAssertTrue(message { try row.expanded(to: [-2, 3]) }.contains("size -2 at axis 0 of [-2, 3]: negative"))
        XCTAssertTrue(message { try row.expanded(to: [-1, 2, 3]) }.contains("a new leading axis has none"))
        XCTAssertTrue(message { try row.expanded(to: [Int.max, Int.max]) }.contains("too many elements"))
        XCTAssertTrue(message { try row.expanded(to: [1 << 40, 1 << 40]) }.contains("too many elements"))

        let values: [Float] = [1, 2]
        try values.withUnsafeBufferPointer { buffer in
            XCTAssertTrue(message { try row.upload(buffer, at: Int.max) }.contains(
                "2 values from element \(Int.max) exceed the tensor's 3"))
        }

        let n = (1 << 24) + 2
        XCTAssertTrue(message { try Tensor.zeros([n]).argmax() }.contains("longer than 2^24"))
        XCTAssertTrue(message { try Tensor.zeros([2, n]).argmaxRows() }.contains("longer than 2^24"))
    }

    func testDivisionByATinyScalarIsAQuotient() throws {
        for device in testDevices {
            let out = try (try Tensor([0, 1e-10, 1, -1], shape: [4], on: device) / 1e-39).toArray()
            XCTAssertEqual(out[0], 0, "0 / b on \(device)")
            XCTAssertEqual(Double(out[1]), 1e29, accuracy: 1e23, "\(device)")
            XCTAssertEqual(Array(out[2...]), [.infinity, -.infinity], "\(device)")
            XCTAssertEqual(try (try Tensor([3], shape: [1], on: device) / 4).toArray(), [0.75])
            let huge = try (try Tensor([0, 1e30, -2e38], shape: [3], on: device) / 3e38).toArray()
            XCTAssertEqual(huge[0], 0, "0 / huge on \(device)")
            XCTAssertEqual(Double(huge[1]), 1e30 / 3e38, accuracy: 1e-14, "\(device)")
            XCTAssertEqual(Double(huge[2]), -2 / 3, accuracy: 1e-6, "\(device)")
            XCTAssertEqual(try (try Tensor([1, -1, 0], shape: [3], on: device) / 0).toArray().prefix(2),
                           [.infinity, -.infinity], "x / 0 on \(device)")
        }
    }

    /// Softmax and its kin over an empty axis answer as PyTorch does (an empty result; logSumExp −inf), and a bad
    /// axis is named by the op the caller called.
    func testSoftmaxFamilyOverEmptyOrMissingAxes() throws {
        for device in testDevices {
            let empty = try Tensor.zeros([3, 0], on: device)
            XCTAssertEqual(try empty.softmax(axis: 1).shape, [3, 0])
            XCTAssertEqual(try empty.logSoftmax().shape, [3, 0])
            XCTAssertEqual(try empty.logSumExp(axis: 1).toArray(), [-.infinity, -.infinity, -.infinity])
            XCTAssertEqual(try empty.logSumExp(axis: 1, keepDims: true).shape, [3, 1])
            XCTAssertEqual(try empty.logSumExp().toArray(), [-.infinity])
            let x = try Tensor.zeros([2, 3], on: device)
            XCTAssertTrue(message { try x.softmax(axis: Int.max) }.hasPrefix("softmax: axis"), "\(device)")
            XCTAssertTrue(message { try x.logSumExp(axis: 5) }.hasPrefix("logSumExp: axis 5"), "\(device)")
            // On the tape as PyTorch's (they dropped it: backward() said the input needed no gradient): the input's
            // gradient is empty, beside a term that has one.
            for (name, op) in [("softmax", { (t: Tensor) in try t.softmax(axis: 1) }),
                               ("logSoftmax", { try $0.logSoftmax(axis: 1) }),
                               ("logSumExp", { try $0.logSumExp(axis: 1) })] {
                let z = try Tensor.zeros([3, 0], on: device), w = try Tensor([2], shape: [1], on: device)
                (z.requiresGrad, w.requiresGrad) = (true, true)
                let y = try op(z)
                XCTAssertTrue(y.requiresGrad, "\(name) on \(device)")
                try (try y.sum() + w.sum()).backward()
                XCTAssertEqual(try XCTUnwrap(z.grad, "\(name) on \(device)").shape, [3, 0])
                XCTAssertEqual(try XCTUnwrap(w.grad).toArray(), [1], "\(name) on \(device)")
            }
        }
    }

    /// A correction or a shape from the caller that would overflow Int is an answer or an error, never a trap
    /// (helper-27: `variance(correction: Int.min)`, `zeros([0, Int.max, 2])` trapped); an empty shape is refused by
    /// the product of its other sizes, whatever their order, as numpy's.
    func testHugeCorrectionsAndEmptyShapesWithHugeAxes() throws {
        for device in testDevices {
            let x = try Tensor((0..<12).map(Float.init), shape: [3, 4], on: device)
            // (Σ deviations² = 143 over all, 5 along each row, divided by n − correction.)
            assertClose(try x.variance(correction: Int.min).toArray(), [143 / (12 + 0x1p63)], rtol: 1e-6, atol: 0,
                        "\(device)")
            assertClose(try x.std(axis: 1, correction: -Int.max).toArray(),
                        [Double](repeating: (5 / (4 + Double(Int.max))).squareRoot(), count: 3), rtol: 1e-6, atol: 0,
                        "\(device)")
            XCTAssertEqual(try x.variance(correction: Int.max).toArray(), [.infinity], "\(device)")
            XCTAssertEqual(try x.variance(axis: 1, correction: -1).toArray()[0], 1, "n + 1 = 5, on \(device)")
            for shape in [[0, Int.max, 2], [Int.max, 0], [0, 1 << 40, 1 << 40], [2, 0, 1 << 31]] {
                XCTAssertTrue(message { try Tensor.zeros(shape, on: device) }.contains(
                    "shape \(shape) has too many elements along its axes of nonzero size"), "\(shape) on \(device)")
            }
            XCTAssertTrue(message { try Tensor.zeros([0, 3], on: device).reshaped([0, Int.max, 2]) }.contains(
                "too many elements"), "\(device)")
            XCTAssertTrue(message { try Tensor.zeros([1, 1, 1], on: device).expanded(to: [0, Int.max, 2]) }
                .contains("too many elements"), "\(device)")
            let wide = try Tensor.zeros([0, Int(Int32.max)], on: device)
            XCTAssertEqual(try (try wide.transposed() + 1).shape, [Int(Int32.max), 0], "\(device)")
            XCTAssertEqual(try wide.transposed().sum(axis: 0).shape, [0], "\(device)")
        }
    }

    /// An `into:` output on another device than the operands is an error for every op (an einsum run as a host
    /// loop wrote across devices silently: helper-27).
    func testAnOutputOnAnotherDeviceIsAnError() throws {
        let devices = testDevices
        guard devices.count > 1 else { throw XCTSkip("needs an OpenCL device beside cpu") }
        for (a, b) in zip(devices, devices.dropFirst()) + [(devices[1], devices[0])] {
            let x = try Tensor([1, 2, 3], shape: [3], on: a)
            let out = try Tensor.zeros([3, 3], on: b)
            XCTAssertTrue(message { try Tensor.einsum("i,j->ij", x, x, into: out) }.contains(
                "einsum (output): operands are on different devices (\(a) and \(b))"), "\(a) → \(b)")
            let m = try Tensor([1, 2, 3, 4], shape: [2, 2], on: a)
            XCTAssertTrue(message { try Tensor.einsum("ij,jk->ik", m, m, into: try Tensor.zeros([2, 2], on: b)) }
                .hasPrefix("einsum (output): operands are on different devices"), "a product's spec, \(a) → \(b)")
            XCTAssertEqual(try out.toArray(), [Float](repeating: 0, count: 9), "\(a) → \(b): untouched")
        }
    }

    /// A backward whose seed is on another device, or into a grad set by hand to another shape or device, is an
    /// error naming it, and no leaf's gradient changes.
    func testBackwardRefusesASeedOrGradThatDoesNotFit() throws {
        for device in openCLDevices {
            let x = try Tensor([1, 2, 3], shape: [3], on: device)
            x.requiresGrad = true
            let y = try x * 2
            XCTAssertEqual(message { try y.backward(seed: try Tensor.ones([3])) },
                           "backward: the seed is on cpu but the tensor on \(device): pass seed.to(\(device))")
        }
        let a = try Tensor([1, 2, 3], shape: [3]), b = try Tensor([4, 5], shape: [2])
        a.requiresGrad = true
        b.requiresGrad = true
        b.grad = try Tensor.zeros([2])
        a.grad = try Tensor.zeros([2])
        let loss = try a.sum() + b.sum()
        XCTAssertTrue(message { try loss.backward() }.contains(
            "the grad of a tensor of shape [3] on cpu was set to one of shape [2] on cpu"))
        XCTAssertEqual(try XCTUnwrap(b.grad).toArray(), [0, 0], "nothing added before the refusal")
    }

    /// A class label that is not a whole class index gives a NaN loss in both loss forms (0.5 and 1.9 were read as
    /// classes 0 and 1), and a NaN gradient row (helper-27); the whole ones beside it are unchanged.
    func testAFractionalClassLabelGivesANaNLossAndGradient() throws {
        for device in testDevices {
            let logits = try Tensor(testValues(12, seed: 4), shape: [4, 3], on: device)
            let losses = try logits.softmaxCrossEntropy(labels: try Tensor([0.5, 1, 1.9, 2], shape: [4], on: device))
                .toArray()
            XCTAssertTrue(losses[0].isNaN && losses[2].isNaN, "\(losses) on \(device)")
            let whole = try logits.softmaxCrossEntropy(labels: try Tensor([0, 1, 1, 2], shape: [4], on: device))
            XCTAssertEqual([losses[1], losses[3]], [try whole.toArray()[1], try whole.toArray()[3]])
            let mean = try Tensor.zeros([1], on: device)
            try logits.meanLoss(.softmaxCrossEntropy, labels: try Tensor([0, 1, 2.25, 2], shape: [4], on: device),
                                into: mean)
            XCTAssertTrue(try mean.item().isNaN, "meanLoss on \(device)")
            // The gradient rows of such labels are NaN too, by each path (finite, they trained the row towards no
            // class, silently); the others are the whole labels' rows.
            let bad = try Tensor([0, 7, .nan, 1.5], shape: [4], on: device)
            let good = try Tensor([0, 1, 1, 2], shape: [4], on: device)
            func rowsAreNaN(_ g: [Float], _ path: String) {
                XCTAssertTrue(g[3..<12].allSatisfy(\.isNaN), "\(path): \(g) on \(device)")
            }
            let (badGrad, goodGrad) = (try Tensor.empty([4, 3], on: device), try Tensor.empty([4, 3], on: device))
            try logits.softmaxCrossEntropy(labels: bad, grad: badGrad)
            try logits.softmaxCrossEntropy(labels: good, grad: goodGrad)
            rowsAreNaN(try badGrad.toArray(), "softmaxCrossEntropy(grad:)")
            XCTAssertEqual(try badGrad.toArray()[0..<3], try goodGrad.toArray()[0..<3], "\(device)")
            try logits.meanLoss(.softmaxCrossEntropy, labels: bad, grad: badGrad, into: mean)
            rowsAreNaN(try badGrad.toArray(), "meanLoss")
            let tracked = try logits.cloned()
            tracked.requiresGrad = true
            try tracked.softmaxCrossEntropy(labels: bad).mean().backward()
            rowsAreNaN(try XCTUnwrap(tracked.grad).toArray(), "the tape")
            // A row masked out of the loss (a label to ignore) takes no gradient, NaN or not (helper-29).
            tracked.grad = nil
            let masked = try Tensor.where(try Tensor([1, 0, 0, 1], shape: [4], on: device),
                                          try tracked.softmaxCrossEntropy(labels: try Tensor([0, -1, 7, 2], shape: [4],
                                                                                             on: device)),
                                          try Tensor.zeros([], on: device))
            XCTAssertFalse(try masked.toArray().contains { $0.isNaN }, "\(device)")
            try masked.sum().backward()
            let maskedGrad = try XCTUnwrap(tracked.grad).toArray()
            XCTAssertEqual(Array(maskedGrad[3..<9]), [Float](repeating: 0, count: 6), "\(device)")
            XCTAssertEqual(Array(maskedGrad[0..<3]), try goodGrad.toArray()[0..<3].map { $0 }, "\(device)")
        }
    }

    /// An op that reads one element to write another refuses an output sharing an input's memory (a·a into a
    /// overwrote a while reading it); an elementwise op still runs in place.
    func testAProductOrLossWritingOverItsInputIsRefused() throws {
        for device in testDevices {
            let a = try Tensor([1, 2, 3, 4], shape: [2, 2], on: device)
            XCTAssertTrue(message { try a.matmul(a, into: a) }.contains(
                "matmul: the output (shape [2, 2]) shares memory with an input (shape [2, 2])"), "\(device)")
            XCTAssertTrue(message { try Tensor.einsum("ij,jk->ik", a, a, into: a) }.hasPrefix(
                "einsum: the output (shape [2, 2]) shares memory"), "\(device)")
            let logits = try Tensor([1, 2, 3, 4], shape: [4, 1], on: device)
            XCTAssertTrue(message {
                try logits.softmaxCrossEntropy(labels: try Tensor.zeros([4], on: device),
                                               into: try logits.reshaped([4]))
            }.contains("softmaxCrossEntropy (losses): the output"))
            XCTAssertEqual(try a.toArray(), [1, 2, 3, 4], "unchanged on \(device)")
            XCTAssertEqual(try a.matmul(a).toArray(), [7, 10, 15, 22])
            try a.affine(scale: 2, into: a)
            XCTAssertEqual(try a.toArray(), [2, 4, 6, 8], "in place on \(device)")
        }
    }

    /// The logits' gradient may be written over the logits (llm.c's in-place form): the loss is read first, so
    /// both equal the separate computation's; an output sharing an input's memory is refused.
    func testALossGradientWrittenOverTheLogitsIsRight() throws {
        for device in testDevices {
            let values = testValues(5 * 4, seed: 8).map { $0 * 3 }
            let labels = try Tensor([3, 0, 2, 1, 3], shape: [5], on: device)
            let logits = try Tensor(values, shape: [5, 4], on: device)
            let grad = try Tensor.empty([5, 4], on: device)
            let losses = try logits.softmaxCrossEntropy(labels: labels, grad: grad,
                                                        into: try Tensor.empty([5], on: device))
            let inPlace = try Tensor(values, shape: [5, 4], on: device)
            let lossesInPlace = try inPlace.softmaxCrossEntropy(labels: labels, grad: inPlace,
                                                                into: try Tensor.empty([5], on: device))
            XCTAssertEqual(try lossesInPlace.toArray(), try losses.toArray(), "losses on \(device)")
            XCTAssertEqual(try inPlace.toArray(), try grad.toArray(), "gradient on \(device)")

            let (mean, meanInPlace) = (try Tensor.zeros([1], on: device), try Tensor.zeros([1], on: device))
            try logits.meanLoss(.softmaxCrossEntropy, labels: labels, grad: grad, into: mean)
            let again = try Tensor(values, shape: [5, 4], on: device)
            try again.meanLoss(.softmaxCrossEntropy, labels: labels, grad: again, into: meanInPlace)
            XCTAssertEqual(try meanInPlace.toArray(), try mean.toArray(), "mean on \(device)")
            XCTAssertEqual(try again.toArray(), try grad.toArray(), "mean's gradient on \(device)")
            XCTAssertTrue(message {
                try logits.meanLoss(.softmaxCrossEntropy, labels: labels, into: try logits.reshaped([20]))
            }.contains("meanLoss: the output shares memory with the predictions"))
        }
    }

    /// As PyTorch: softmax and logSoftmax of a row holding +inf are NaN throughout (softmax gave [nan, 0, 0]),
    /// logSumExp of it +inf and of an all −inf row −inf; a NaN clamp bound gives NaN (it was ignored); finite rows
    /// are unchanged.
    func testInfiniteLogitsAndNaNBoundsAnswerAsPyTorch() throws {
        for device in testDevices {
            let x = try Tensor([.infinity, 0, 1, -.infinity, -.infinity, -.infinity, 1, 2, 3], shape: [3, 3],
                               on: device)
            let soft = try x.softmax(axis: 1).toArray(), logSoft = try x.logSoftmax(axis: 1).toArray()
            XCTAssertTrue(soft[0..<6].allSatisfy(\.isNaN) && logSoft[0..<6].allSatisfy(\.isNaN), "\(soft) \(device)")
            let e = [1, 2, 3].map { Foundation.exp(Double($0)) }, total = e.reduce(0, +)
            assertClose(Array(soft[6...]), e.map { $0 / total }, "finite row on \(device)")
            let lse = try x.logSumExp(axis: 1).toArray()
            XCTAssertEqual(Array(lse[0..<2]), [.infinity, -.infinity], "\(device)")
            let clamped = try (try Tensor([-1, 0.5, 2], shape: [3], on: device)).clamped(min: .nan).toArray()
            XCTAssertTrue(clamped.allSatisfy(\.isNaN), "\(clamped) on \(device)")
        }
    }

    func testSGDStepRefusesANegativeMomentum() throws {
        let p = try Tensor([1, 2], shape: [2]), g = try Tensor([1, 1], shape: [2])
        for momentum: Float in [-0.5, .nan] {
            XCTAssertTrue(message { try p.sgdStep(grad: g, velocity: nil, lr: 0.1, momentum: momentum) }
                .contains("momentum must be ≥ 0"))
        }
        XCTAssertEqual(try p.toArray(), [1, 2])
    }
}
