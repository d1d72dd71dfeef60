// The activation family, forward and backward, alone and fused with a layer's bias.
// Each activation is F(x) with its derivative DF(x, y) (y = F(x)), chosen at build time by -D ACTIVATION_<NAME>.
// Adding one: a block below, a case in Sources/Device/Ops/Activation.swift, and its test.
#if defined(ACTIVATION_RELU)
#define F(x) ((x) < 0.0f ? 0.0f : (x))  // NaN passes (fmax would turn it into 0), as the CPU's loop
#define DF(x, y) ((x) > 0.0f ? 1.0f : 0.0f)
#elif defined(ACTIVATION_LEAKY_RELU)
#define F(x) ((x) > 0.0f ? (x) : 0.01f * (x))
#define DF(x, y) ((x) > 0.0f ? 1.0f : 0.01f)
#elif defined(ACTIVATION_TANH)
#define F(x) tanh(x)
#define DF(x, y) (1.0f - (y) * (y))
#elif defined(ACTIVATION_SIGMOID)
#define F(x) (1.0f / (1.0f + exp(-(x))))
#define DF(x, y) ((y) * (1.0f - (y)))
#elif defined(ACTIVATION_GELU)
#define F(x) (0.5f * (x) * (1.0f + erf((x) * 0.70710678f)))
#define DF(x, y) (0.5f * (1.0f + erf((x) * 0.70710678f)) + (x) * 0.39894228f * exp(-0.5f * (x) * (x)))
#else
#error "activation.cl needs -D ACTIVATION_<NAME>"
#endif

// y = F(x). global = (n).
__kernel void activation(const int n, __global const float* x, __global float* y)
{
    const int i = get_global_id(0);
    if (i < n) y[i] = F(x[i]);
}

// dx = dy · F'(x), x the forward input. global = (n).
__kernel void activation_backward(const int n, __global const float* x, __global const float* dy, __global float* dx)
{
    const int i = get_global_id(0);
    if (i < n) {
        const float v = x[i];
        dx[i] = dy[i] * DF(v, F(v));
    }
}

// A layer's bias and activation in one pass: z (x·w on entry) becomes the pre-activation z + b, and y = F(z + b).
// global = (cols, rows).
__kernel void bias_activation(const int rows, const int cols, __global float* z, __global const float* b,
                              __global float* y)
{
    const int j = get_global_id(0);
    const int i = get_global_id(1);
    if (i < rows && j < cols) {
        const size_t k = (size_t)i * cols + j;
        const float v = z[k] + b[j];
        z[k] = v;
        y[k] = F(v);
    }
}

// Its backward: dz = dy · F'(z) from the pre-activation z, and db = beta·db + Σ_rows dz. global = (cols).
__kernel void bias_activation_backward(const int rows, const int cols, __global const float* z,
                                       __global const float* dy, __global float* dz, __global float* db,
                                       const float beta)
{
    const int j = get_global_id(0);
    if (j >= cols) return;
    float acc = 0.0f;
    for (int i = 0; i < rows; i++) {
        const size_t k = (size_t)i * cols + j;
        const float v = z[k];
        const float g = dy[k] * DF(v, F(v));
        dz[k] = g;
        acc += g;
    }
    db[j] = beta == 0.0f ? acc : acc + beta * db[j];
}

// The same over a tall batch (the full batch's 60000 rows: one work-item per column walked them all on one core):
// rows in blocks of BIAS_ROW_BLOCK, work-item (j, b) doing column j of block b and writing its partial sum to
// partial[b·cols + j]; the bias gradient is then those partials' column sums (bias.cl's add_bias_backward, the
// blocks in order). global = (cols, blocks).
#define BIAS_ROW_BLOCK 256
__kernel void bias_activation_backward_blocks(const int rows, const int cols, __global const float* z,
                                              __global const float* dy, __global float* dz,
                                              __global float* partial)
{
    const int j = get_global_id(0), b = get_global_id(1);
    if (j >= cols) return;
    const int end = min(rows, (b + 1) * BIAS_ROW_BLOCK);
    float acc = 0.0f;
    for (int i = b * BIAS_ROW_BLOCK; i < end; i++) {
        const size_t k = (size_t)i * cols + j;
        const float v = z[k];
        const float g = dy[k] * DF(v, F(v));
        dz[k] = g;
        acc += g;
    }
    partial[(size_t)b * cols + j] = acc;
}
