extension Tensor {
    /// Mean and (population) standard deviation of every element, computed with the tensor's own device ops
    /// (a sum and a sum of squares) and finished on the host in Double.
    public func statistics() throws -> (mean: Double, std: Double) {
        let n = Double(Swift.max(count, 1))
        let mean = Double(try sum().item()) / n
        let meanSquare = Double(try elementwise(.mul, self).sum().item()) / n
        return (mean, Swift.max(meanSquare - mean * mean, 0).squareRoot())
    }
}
