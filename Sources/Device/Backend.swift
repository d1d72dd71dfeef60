/// Elementwise binary operations.
public enum BinaryOp: String, Sendable {
    case add, sub, mul
}

/// The op list a device must provide. Two conformers: `CPUBackend` (the plain reference) and `OpenCLBackend`.
///
/// Callers (only `Ops.swift`) have already checked devices and shapes and allocated the outputs; a backend only
/// computes. Names follow the kernels in `Kernels/*.cl` in camelCase, with the same argument order.
protocol Backend {
    /// c[m,n] = op(a)·op(b) + beta·c, op = transpose when the flag is set (see matmul.cl).
    func matmul(_ a: Tensor, _ b: Tensor, _ c: Tensor, m: Int, n: Int, k: Int,
                transA: Bool, transB: Bool, beta: Float) throws
    /// The same product through the naive reference kernel.
    func matmulNaive(_ a: Tensor, _ b: Tensor, _ c: Tensor, m: Int, n: Int, k: Int,
                     transA: Bool, transB: Bool, beta: Float) throws
    func reluForward(_ x: Tensor, _ y: Tensor) throws
    func reluBackward(_ x: Tensor, _ dy: Tensor, _ dx: Tensor) throws
    func biasForward(_ x: Tensor, _ b: Tensor, _ y: Tensor, rows: Int, cols: Int) throws
    func biasBackward(_ dy: Tensor, _ db: Tensor, rows: Int, cols: Int, beta: Float) throws
    /// y = max(x + b, 0) (bias then ReLU, fused).
    func biasReluForward(_ x: Tensor, _ b: Tensor, _ y: Tensor, rows: Int, cols: Int) throws
    /// dx = dy·[y > 0], db = beta·db + Σ_rows dx.
    func biasReluBackward(_ y: Tensor, _ dy: Tensor, _ dx: Tensor, _ db: Tensor, rows: Int, cols: Int, beta: Float) throws
    func softmaxXent(_ logits: Tensor, _ labels: Tensor, _ losses: Tensor, _ grad: Tensor?,
                     rows: Int, cols: Int, gradScale: Float) throws
    func mse(_ pred: Tensor, _ target: Tensor, _ losses: Tensor, _ grad: Tensor?, gradScale: Float) throws
    func sumAll(_ x: Tensor, _ out: Tensor) throws
    func argmaxRows(_ x: Tensor, _ out: Tensor, rows: Int, cols: Int) throws
    func elementwise(_ op: BinaryOp, _ x: Tensor, _ y: Tensor, _ out: Tensor) throws
    func affine(_ x: Tensor, alpha: Float, beta: Float, _ out: Tensor) throws
    func fill(_ x: Tensor, _ value: Float) throws
    /// dst[r, :] = src[order[offset + r], :] for r < rows.
    func gatherRows(_ src: Tensor, _ order: Tensor, offset: Int, _ dst: Tensor, rows: Int, cols: Int) throws
    func sgdStep(_ param: Tensor, _ grad: Tensor, _ velocity: Tensor?,
                 lr: Float, momentum: Float, weightDecay: Float) throws
}
