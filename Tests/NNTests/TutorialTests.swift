import Foundation
import NN
import TestSupport
import XCTest

/// The code of the DocC article "From the foundations" (Sources/NN/NN.docc/FromTheFoundations.md), step by step,
/// so that every listing there compiles and does what the article says.
final class TutorialTests: XCTestCase {
    func testTheFromTheFoundationsArticleRuns() throws {
        let (train, test) = try fashionSlice(train: 2000, test: 500)
        let device = DeviceTag.preferred

        // 1. Matrix multiplication, from loops to the library.
        let a = try Tensor.randn([5, 784], seed: 1, on: device)
        let w = try Tensor.randn([784, 10], seed: 2, on: device)
        let (av, wv) = (try a.toArray(), try w.toArray())
        var loops = [Float](repeating: 0, count: 5 * 10)
        for i in 0..<5 {
            for j in 0..<10 { for k in 0..<784 { loops[i * 10 + j] += av[i * 784 + k] * wv[k * 10 + j] } }
        }
        let product = try a.matmul(w)
        assertClose(try product.toArray(), loops, rtol: 1e-4, atol: 1e-3, "loops vs matmul")

        // 2. Normalise with the training set's statistics — the same ones for the test set.
        let stats = Normalization.fit(train)
        let trainN = stats.apply(train), testN = stats.apply(test)
        let x = try Tensor(trainN.images, shape: [trainN.count, 784], on: device)
        let (mean, std) = try x.statistics()
        XCTAssertEqual(mean, 0, accuracy: 1e-3)
        XCTAssertEqual(std, 1, accuracy: 1e-3)

        // 3. Initialisation: Kaiming keeps a ReLU layer's output at a useful scale; N(0, 1) does not.
        let batch = try Tensor(Array(trainN.images.prefix(256 * 784)), shape: [256, 784], on: device)
        for initializer in [Initializer.normal(std: 1), .kaimingNormal()] {
            let layer = try Linear(784, 50, activation: .relu, initializer: initializer, seed: 3, on: device)
            let (_, s) = try layer.forward(batch).statistics()
            if case .normal = initializer { XCTAssertGreaterThan(s, 5) } else { XCTAssertLessThan(s, 2) }
        }

        // 4. Forward and a hand-written backward, checked against finite differences in Double.
        let small = try MLP.make(sizes: [8, 6, 4], activation: .tanh, seed: 4, on: device)
        for result in try GradientCheck.check(small, input: try Tensor.randn([3, 8], seed: 5, on: device)) {
            XCTAssertLessThan(result.worstRatio(rtol: 1e-2, atol: 1e-3), 1, result.name)
        }

        // 5. Modules compose; the loss and the loop read top to bottom.
        let model = Sequential([try Linear(784, 50, activation: .relu, seed: 5, on: device),
                                try Linear(50, 10, seed: 6, on: device)])
        let loss = CrossEntropyLoss()
        let optimizer = try SGD(model.parameters, lr: 0.1)
        let sampler = BatchSampler(count: trainN.count, batchSize: 64, seed: 7)
        let order = sampler.order(epoch: 1)
        for range in sampler.batchRanges {
            let rows = order[range]
            let xb = try Tensor(rows.flatMap { trainN.images[$0 * 784..<($0 + 1) * 784] }, shape: [rows.count, 784],
                                on: device)
            let yb = try Tensor(rows.map { trainN.labels[$0] }, shape: [rows.count], on: device)
            let pred = try model(xb)
            let grad = try Tensor.empty(pred.shape, on: device)
            _ = try loss(pred, yb, grad: grad)
            try model.zeroGrad()
            _ = try model.backward(grad)
            try optimizer.step()
        }
        let (_, manual) = try Evaluator(model: model, loss: loss).evaluate(testN)
        XCTAssertGreaterThan(manual, 0.6)

        // 6. Training with the library's loop.
        var options = TrainingOptions()
        (options.epochs, options.optimizer, options.lr) = (2, .adam, 3e-3)
        let trainer = try Trainer(model: try MLP.make(sizes: [784, 50, 10], seed: 8, on: device), loss: loss,
                                  options: options)
        let data = try DeviceDataset(trainN, on: device)
        for epoch in 1...options.epochs { _ = try trainer.trainEpoch(data, epoch: epoch) }
        let (_, accuracy) = try trainer.evaluate(testN)
        XCTAssertGreaterThan(accuracy, 0.7)
    }
}
