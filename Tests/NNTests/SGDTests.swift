import Foundation
import NN
import TestSupport
import XCTest

final class SGDTests: XCTestCase {
    func testArenaViewsShareTheFlatBufferOnEveryDevice() throws {
        for device in testDevices {
            let shapes = [[3, 5], [5], [1, 1], [7, 2]]
            let (flat, views) = try Tensor.arena(shapes, on: device)
            for (i, v) in views.enumerated() { try v.fill(Float(i + 1)) }
            let all = try flat.toArray()
            for (i, shape) in shapes.enumerated() {
                XCTAssertEqual(all.filter { $0 == Float(i + 1) }.count, shape.reduce(1, *), "view \(i) on \(device)")
            }
            XCTAssertEqual(all.filter { $0 == 0 }.count, all.count - 15 - 5 - 1 - 14, "the gaps stay zero on \(device)")
            try flat.affine(scale: 2, into: flat)  // an op on the flat tensor is seen through every view
            XCTAssertEqual(try views[3].toArray(), Array(repeating: 8, count: 14), "\(device)")
        }
    }

    /// One launch over the arena gives exactly the per-parameter update (PyTorch's SGD with momentum and decay).
    func testArenaStepEqualsThePerParameterReferenceOnEveryDevice() throws {
        for device in testDevices {
            let model = try MLP.make(sizes: [5, 7, 3], seed: 4, on: device)
            let start = try model.parameters.map { try $0.value.toArray() }
            let sgd = try SGD(model.parameters, lr: 0.1, momentum: 0.9, weightDecay: 0.01)
            var velocity = start.map { [Float](repeating: 0, count: $0.count) }
            var expected = start
            let x = try Tensor(testValues(4 * 5, seed: 8), shape: [4, 5], on: device)
            for _ in 0..<3 {
                let y = try model.forward(x)
                try model.zeroGrad()
                _ = try model.backward(try Tensor(testValues(y.count, seed: 9), shape: y.shape, on: device))
                let grads = try model.parameters.map { try $0.grad.toArray() }
                for i in expected.indices {
                    for j in expected[i].indices {
                        let g = grads[i][j] + 0.01 * expected[i][j]
                        velocity[i][j] = 0.9 * velocity[i][j] + g
                        expected[i][j] -= 0.1 * velocity[i][j]
                    }
                }
                // The reference update above uses the values the model had; keep the model on them too.
                try sgd.step()
                for (p, e) in zip(model.parameters, expected) {
                    assertClose(try p.value.toArray(), e, rtol: 1e-5, atol: 1e-6, "SGD step on \(device)")
                }
            }
        }
    }

    /// A parameter no backward reached since zeroGrad is left as it is — momentum and weight decay included — even
    /// when its grad was read (reading made a real zero that counted as a gradient: helper-28); step counts at Int.max
    /// stay there rather than trap.
    func testAParameterWhoseGradientWasOnlyReadIsLeftAsItIs() throws {
        for device in testDevices {
            let p = try Parameter(name: "p", value: try Tensor([0.5, -1], shape: [2], on: device))
            let q = try Parameter(name: "q", value: try Tensor([1, -2], shape: [2], on: device))
            let sgd = try SGD([p, q], lr: 0.1, momentum: 0.9, weightDecay: 0.5)
            p.zeroGrad()
            q.zeroGrad()
            try p.gradientForBackward().tensor.fill(1)
            XCTAssertEqual(try q.grad.toArray(), [0, 0])
            XCTAssertNil(q.gradientIfComputed, "\(device)")
            try sgd.step()
            assertClose(try p.value.toArray(), [0.5 - 0.1 * (1 + 0.25), -1 - 0.1 * (1 - 0.5)], "\(device)")
            XCTAssertEqual(try q.value.toArray(), [1, -2], "\(device)")
            XCTAssertEqual(sgd.parameterSteps, [1, 0])
            // A gradient written after the read counts.
            try q.gradientForBackward().tensor.fill(2)
            XCTAssertNotNil(q.gradientIfComputed)
            (sgd.parameterSteps, sgd.stepCount) = ([Int.max, Int.max], Int.max)
            try sgd.step()
            XCTAssertEqual(sgd.parameterSteps + [sgd.stepCount], [Int.max, Int.max, Int.max])
            XCTAssertNotEqual(try q.value.toArray(), [1, -2], "\(device)")
            // Gradients written into a block's flat buffer by hand (an all-reduce of your own) go after
            // materialiseGradients(), which counts them as written (as its documentation says: helper-29).
            let r = try Parameter(name: "r", value: try Tensor([1, 2], shape: [2], on: device))
            let block = try ParameterBlock([r])
            r.zeroGrad()
            try block.materialiseGradients()
            try block.grads.fill(1)
            try SGD([r], lr: 0.1).step()
            assertClose(try r.value.toArray(), [0.9, 1.9], "\(device)")
        }
    }

    func testAModelMovedAfterItsOptimiserWasMadeStillTrains() throws {
        try requireOpenCL()
        let model = try MLP.make(sizes: [4, 3], seed: 1, on: .cpu)
        let sgd = try SGD(model.parameters, lr: 0.5)
        try model.to(.opencl(0))
        let before = try model.parameters[0].value.toArray()
        let x = try Tensor(testValues(8, seed: 2), shape: [2, 4], on: .opencl(0))
        _ = try model.forward(x)
        try model.zeroGrad()
        _ = try model.backward(try Tensor.randn([2, 3], seed: 3, on: .opencl(0)))
        try sgd.step()
        XCTAssertNotEqual(try model.parameters[0].value.toArray(), before, "the step reached the moved parameters")
        XCTAssertEqual(model.parameters[0].device, .opencl(0))
    }
}
