import Foundation

/// A loss over a batch: its mean value, with the gradient of that mean w.r.t. the predictions fused in.
public protocol Loss: Sendable {
    /// The name used on the command line and in checkpoints.
    var name: String { get }
    /// How many model outputs the loss needs for `classes` classes.
    func outputs(classes: Int) -> Int
    /// The class count a model with `outputs` outputs predicts, when the outputs say it (nil: they do not, as for
    /// a single regressed output).
    func classes(outputs: Int) -> Int?
    /// The batch's mean loss into element `slot` of `out`; when `grad` (pred's shape) is given it receives
    /// dL/dpred of that mean. pred: [batch, outputs], labels: [batch] (class indices as floats), read in place
    /// through the batch's index list. One kernel.
    func mean(_ pred: Tensor, _ labels: Rows, grad: Tensor?, into out: Tensor, at slot: Int) throws
    /// The predicted class of each row. pred: [batch, outputs] → host array of class indices.
    func predictedClasses(_ pred: Tensor, classes: Int) throws -> [Int]
    /// The mean loss in Double on the host: the reference the gradient check differentiates.
    func reference(_ pred: DoubleMatrix, _ labels: [Double]) -> Double
}

extension Loss {
    /// None by default.
    public func classes(outputs: Int) -> Int? { nil }

    /// `mean` with the labels as a tensor of their own. labels: [batch]
    public func mean(_ pred: Tensor, _ labels: Tensor, grad: Tensor?, into out: Tensor, at slot: Int) throws {
        try mean(pred, Rows(labels), grad: grad, into: out, at: slot)
    }

    /// Mean loss over the batch → [1] on the predictions' device; `grad` receives dL/dpred of the mean. Recorded
    /// on the tape when `pred` requires a gradient (a model's output does): `loss(model(x), y).backward()` goes back
    /// through the model, the fused gradient scaled by the loss's.
    public func callAsFunction(_ pred: Tensor, _ labels: Tensor, grad: Tensor? = nil) throws -> Tensor {
        let out = try Tensor.empty([1], on: pred.device)
        let recorded = pred.requiresGrad && Tensor.isRecordingGradients
        let grad = try grad ?? (recorded ? Tensor.empty(pred.shape, on: pred.device) : nil)
        try mean(pred, labels, grad: grad, into: out, at: 0)
        guard recorded, let grad else { return out }
        return out.recorded(name, from: [pred], saving: [grad]) { g in [try grad * g] }
    }
}

/// Softmax cross-entropy, log-sum-exp stable, with its gradient (softmax − one-hot) / batch fused in.
public struct CrossEntropyLoss: Loss {
    /// The loss (it has no settings).
    public init() {}
    public var name: String { "cross-entropy" }
    public func outputs(classes: Int) -> Int { classes }
    /// One output per class.
    public func classes(outputs: Int) -> Int? { outputs }

    public func mean(_ pred: Tensor, _ labels: Rows, grad: Tensor?, into out: Tensor, at slot: Int) throws {
        try pred.meanLoss(.softmaxCrossEntropy, labels: labels, grad: grad, into: out, at: slot)
    }

    public func predictedClasses(_ pred: Tensor, classes: Int) throws -> [Int] {
        try pred.argmaxRows().toArray().map { Int($0) }
    }

    public func reference(_ pred: DoubleMatrix, _ labels: [Double]) -> Double {
        var total = 0.0
        for i in 0..<pred.rows {
            let row = (0..<pred.cols).map { pred[i, $0] }
            let m = row.max() ?? 0
            let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
            total += lse - row[Int(labels[i])]
        }
        return total / Double(max(pred.rows, 1))
    }
}

/// The fast.ai lessons' mean squared error: a single output regressed on the class label, mean((pred − label)²).
/// Its predicted class is the output rounded to the nearest valid label.
public struct MSELoss: Loss {
    /// The loss (it has no settings).
    public init() {}
    public var name: String { "mse" }
    public func outputs(classes: Int) -> Int { 1 }

    public func mean(_ pred: Tensor, _ labels: Rows, grad: Tensor?, into out: Tensor, at slot: Int) throws {
        try pred.meanLoss(.squaredError, labels: labels, grad: grad, into: out, at: slot)
    }

    public func predictedClasses(_ pred: Tensor, classes: Int) throws -> [Int] {
        guard classes >= 1 else {
            throw DeviceError.invalidArgument(op: "MSELoss.predictedClasses", "classes must be ≥ 1, got \(classes)")
        }
        return try pred.toArray().map { value in
            guard value.isFinite else { return 0 }
            return min(max(Int(value.rounded()), 0), classes - 1)
        }
    }

    public func reference(_ pred: DoubleMatrix, _ labels: [Double]) -> Double {
        var total = 0.0
        for i in 0..<pred.rows { total += (pred[i, 0] - labels[i]) * (pred[i, 0] - labels[i]) }
        return total / Double(max(pred.rows, 1))
    }
}

/// The losses this library knows, by the names the command line and checkpoints use.
public enum Losses {
    /// Every known loss.
    public static let all: [any Loss] = [CrossEntropyLoss(), MSELoss()]

    /// The loss named `name` (`cross-entropy` or `mse`), or nil.
    public static func named(_ name: String) -> (any Loss)? { all.first { $0.name == name } }
}
