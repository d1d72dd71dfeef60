// A module of your own with a hand-written backward, checked against finite differences, then trained by a loop
// written out: forward → loss → backward → step.
//   swift run hand-written-loop [DEVICE]
import CLNN
import Foundation

/// y = x + f(x): a residual block around any module of matching width. Its backward adds the skip path's gradient.
final class Residual: Module {
    let inner: any Module
    private var output: Tensor?
    init(_ inner: any Module) { self.inner = inner }

    var parameters: [Parameter] { inner.parameters }

    func forward(_ x: Tensor) throws -> Tensor {
        try inner.forward(x).elementwise(.add, x)
    }

    func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        // dL/dx = dL/dy · (∂f/∂x + 1): the inner module's input gradient plus dy itself.
        try inner.backward(dy, needsInputGradient: true)!.elementwise(.add, dy)
    }

    /// The same forward in Double, which GradientCheck differentiates numerically.
    func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix {
        let f = inner.referenceForward(x, params)
        return DoubleMatrix(rows: x.rows, cols: x.cols, values: zip(f.values, x.values).map { $0 + $1 })
    }
}

func run() throws {
    let device = try CommandLine.arguments.count > 1 ? DeviceTag(parsing: CommandLine.arguments[1]) : .cpu

    // 1. The hand-written backward agrees with finite differences (in Double).
    let block = Residual(try Linear(6, 6, activation: .tanh, seed: 7, on: device))
    let checks = try GradientCheck.check(block, input: try Tensor.randn([5, 6], seed: 8, on: device))
    for check in checks {
        let ratio = check.worstRatio(rtol: 1e-2, atol: 1e-3)
        print("gradient check \(check.name): worst ratio \(String(format: "%.3f", ratio)) "
              + "\(ratio <= 1 ? "ok" : "FAILED")")
        if ratio > 1 { throw DeviceError.invalidArgument(op: "Residual", "backward disagrees with finite differences") }
    }

    // 2. Two noisy blobs in 8 dimensions, one per class; a model with the residual block learns to tell them apart.
    let (n, features) = (512, 8)
    var random = SystemRandomNumberGenerator()
    let labels = (0..<n).map { Float($0 % 2) }
    let points = labels.flatMap { label in
        (0..<features).map { _ in label * 2 - 1 + Float.random(in: -1...1, using: &random) }
    }
    let x = try Tensor(points, shape: [n, features], on: device)
    let y = try Tensor(labels, shape: [n], on: device)
    let model = Sequential([
        try Linear(features, 16, activation: .relu, seed: 1, on: device),
        Residual(try Linear(16, 16, activation: .tanh, seed: 2, on: device)),
        try Linear(16, 2, seed: 3, on: device),
    ])
    let optimizer = try SGD(model.parameters, lr: 0.1, momentum: 0.9)
    let loss = CrossEntropyLoss()
    let grad = try Tensor.zeros([n, 2], on: device), meanLoss = try Tensor.zeros([1], on: device)
    var first: Float = 0, last: Float = 0
    for step in 1...100 {
        let pred = try model.forward(x)                                  // forward
        try loss.mean(pred, y, grad: grad, into: meanLoss, at: 0)        // loss and dL/dpred in one kernel
        try model.zeroGrad()
        _ = try model.backward(grad, needsInputGradient: false)          // backward
        try optimizer.step()                                             // step
        last = try meanLoss.item()
        if step == 1 { first = last }
        if step % 25 == 0 { print("step \(step): loss \(last)") }
    }
    print("loss \(first) → \(last) on \(device)")
    if !(last < first / 2) { throw DeviceError.invalidArgument(op: "training", "the loss did not fall") }
}

do {
    try run()
} catch {
    print("hand-written-loop: \(error)")
    exit(1)
}
