/// Mean and (population) standard deviation of every element of `t`, computed with the tensor's own device ops
/// (a sum and a sum of squares) and finished on the host in Double.
public func statistics(_ t: Tensor) throws -> (mean: Double, std: Double) {
    let n = Double(max(t.count, 1))
    let mean = Double(try t.sum().item()) / n
    let meanSquare = Double(try t.elementwise(.mul, t).sum().item()) / n
    return (mean, max(meanSquare - mean * mean, 0).squareRoot())
}
