// Batch normalisation of x [N, C, L] per channel (Sources/Device/Ops/BatchNorm.swift): one work-group per channel
// (global = C·G, local = G: 1 on a CPU-type device, which then walks its channel in order; up to BN_GROUP on a GPU,
// whose work-items stride over each row together). Each work-item reads eight neighbours at a time (eight
// independent sums: a single running sum is a chain of dependent additions), a row's sums are added into the
// channel's total with Kahan's compensation (blocked: the error grows with the rows, not the elements), and the
// work-group's totals are added in local memory.

#define BN_GROUP 256

// Σ (a − shift)·scale over the channel's N rows of L floats at `a` (with `b` non-null, Σ (a − shift)·scale·b; with
// `square`, Σ ((a − shift)·scale)²), the rows C·L floats apart. Every work-item of the group returns the same total.
// (The variance scales each term by 1/√count before squaring: a sum of squares of values far apart would overflow
// where their variance does not.)
static float channel_sum(const int n, const int stride, const int l, __global const float* a,
                         __global const float* b, const float shift, const float scale, const int square,
                         __local float* totals)
{
    const int t = get_local_id(0), group = get_local_size(0);
    float total = 0.0f, compensation = 0.0f;
    for (int row = 0; row < n; ++row) {
        __global const float* ar = a + (size_t)row * stride;
        __global const float* br = b ? b + (size_t)row * stride : 0;
        float8 acc = 0.0f;
        float rest = 0.0f;
        int j = 8 * t;
        for (; j + 8 <= l; j += 8 * group) {
            const float8 v = (vload8(0, ar + j) - shift) * scale;
            acc += br ? v * vload8(0, br + j) : square ? v * v : v;
        }
        for (int q = (l / 8) * 8 + t; q < l; q += group) {
            const float v = (ar[q] - shift) * scale;
            rest += br ? v * br[q] : square ? v * v : v;
        }
        const float4 h = acc.lo + acc.hi;
        const float2 p = h.lo + h.hi;
        // Kahan: what the rounding of the running total dropped is carried into the next row — while the total is
        // finite (an infinite one would make it inf − inf: NaN where the sum is ±inf, as PyTorch's is).
        const float value = (p.x + p.y + rest) - compensation;
        const float next = total + value;
        compensation = isfinite(next) ? (next - total) - value : 0.0f;
        total = next;
    }
    totals[t] = total;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int step = group / 2; step > 0; step /= 2) {
        if (t < step) totals[t] += totals[t + step];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float sum = totals[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return sum;
}

// y = (x − mean)·γ/√(var + eps) + β per channel. `batch` 1: the channel's mean and biased variance (two passes: the
// mean, then the squares about it) are computed and written to `mean` and `variance` first; 0: read from them.
// `dims` = (N, C, L). The work-group size is a power of two.
__kernel void batch_norm_forward(const int8 dims, const float eps, const int batch, __global const float* x,
                                 __global const float* gamma, __global const float* beta, __global float* mean,
                                 __global float* variance, __global float* y)
{
    __local float totals[BN_GROUP];
    const int n = dims.s0, c = dims.s1, l = dims.s2, ch = get_group_id(0);
    const int t = get_local_id(0), group = get_local_size(0);
    __global const float* xc = x + (size_t)ch * l;
    float m, v;
    if (batch) {
        const float count = (float)n * (float)l;
        // The mean as x₀ + Σ (x − x₀)/count, x₀ the channel's first value: the terms are the values' spread, so a
        // channel far from zero keeps its digits (and one near the float's largest, its values close together, does
        // not overflow; a spread of count·|x − x₀| beyond the float's largest still does). Not terms scaled by
        // 1/count: nearly equal ones are then all rounded the same way as they are added, a bias.
        const float x0 = isfinite(xc[0]) ? xc[0] : 0.0f;
        m = x0 + channel_sum(n, c * l, l, xc, 0, x0, 1.0f, 0, totals) / count;
        v = channel_sum(n, c * l, l, xc, 0, m, 1.0f / sqrt(count), 1, totals);
        if (t == 0) { mean[ch] = m; variance[ch] = v; }
    } else {
        m = mean[ch];
        v = variance[ch];
    }
    // (x − mean)·scale + β: x·scale − mean·scale would overflow for values near the float's largest.
    const float scale = gamma[ch] / sqrt(v + eps), beta_ = beta[ch];
    for (int row = 0; row < n; ++row) {
        const size_t at = ((size_t)row * c + ch) * l;
        int j = 8 * t;
        for (; j + 8 <= l; j += 8 * group) vstore8((vload8(0, x + at + j) - m) * scale + beta_, 0, y + at + j);
        for (int q = (l / 8) * 8 + t; q < l; q += group) y[at + q] = (x[at + q] - m) * scale + beta_;
    }
}

// The gradients from g: dβ = Σ g, dγ = Σ g·x̂ (x̂ = (x − mean)/σ, σ = √(var + eps)), each written or, with its
// `accumulate` flag, added; and dx = γ/σ·(g − Σg/count − x̂·Σg·x̂/count) with batch statistics (`batch` 1), γ/σ·g with
// given ones. `flags` = (needs dx, needs dγ, needs dβ, accumulate dγ, accumulate dβ) as 0/1; a buffer not needed is a
// placeholder.
__kernel void batch_norm_backward(const int8 dims, const float eps, const int batch, const int8 flags,
                                  __global const float* g, __global const float* x, __global const float* gamma,
                                  __global const float* mean, __global const float* variance, __global float* dx,
                                  __global float* dgamma, __global float* dbeta)
{
    __local float totals[BN_GROUP];
    const int n = dims.s0, c = dims.s1, l = dims.s2, ch = get_group_id(0);
    const int t = get_local_id(0), group = get_local_size(0);
    const int needX = flags.s0, needGamma = flags.s1, needBeta = flags.s2;
    const float m = mean[ch], inv = 1.0f / sqrt(variance[ch] + eps), count = (float)n * (float)l;
    float sumG = 0.0f, sumGX = 0.0f;
    if (needBeta || (needX && batch)) sumG = channel_sum(n, c * l, l, g + (size_t)ch * l, 0, 0.0f, 1.0f, 0, totals);
    if (needGamma || (needX && batch)) {
        // Σ g·(x − mean), then ·1/σ: Σ g·x̂. (channel_sum multiplies (a − shift) by b: a = x, b = g.)
        sumGX = channel_sum(n, c * l, l, x + (size_t)ch * l, g + (size_t)ch * l, m, 1.0f, 0, totals) * inv;
    }
    if (t == 0) {
        if (needGamma) dgamma[ch] = sumGX + (flags.s3 ? dgamma[ch] : 0.0f);
        if (needBeta) dbeta[ch] = sumG + (flags.s4 ? dbeta[ch] : 0.0f);
    }
    if (!needX) return;
    const float k = gamma[ch] * inv;
    // dx = k·g − k·Σg/count − k·x̂·Σg·x̂/count = k·g − a − b·(x − mean), with a = k·Σg/count, b = k·inv·Σg·x̂/count.
    const float a = batch ? k * sumG / count : 0.0f, b = batch ? k * inv * sumGX / count : 0.0f;
    for (int row = 0; row < n; ++row) {
        const size_t at = ((size_t)row * c + ch) * l;
        int j = 8 * t;
        for (; j + 8 <= l; j += 8 * group) {
            const float8 r = k * vload8(0, g + at + j) - a - b * (vload8(0, x + at + j) - m);
            vstore8(r, 0, dx + at + j);
        }
        for (int q = (l / 8) * 8 + t; q < l; q += group) dx[at + q] = k * g[at + q] - a - b * (x[at + q] - m);
    }
}
