// 2-D pooling over NCHW input (Sources/Device/Ops/Pool.swift): the largest or the mean value under a window that
// slides over the two spatial axes. `dims` = (N, C, H, W, OH, OW), `window` = (kh, kw, stride h, stride w, pad h,
// pad w, dilation h, dilation w), as conv.cl's. Each backward kernel is a gather over the window positions that read
// an input element (as col2im), so no two work-items write one element.

// The tap of window position (oh, ow) that holds the largest value of channel plane `plane` (the first such tap; a NaN
// wins and stays), as h·W + w, or −1 when every tap lies in the padding.
static int window_argmax(const int8 dims, const int8 window, __global const float* plane, const int oh, const int ow)
{
    const int H = dims.s2, W = dims.s3;
    int best = -1;
    float m = 0.0f;
    for (int i = 0; i < window.s0; ++i) {
        const int h = oh * window.s2 - window.s4 + i * window.s6;
        if (h < 0 || h >= H) continue;
        for (int j = 0; j < window.s1; ++j) {
            const int w = ow * window.s3 - window.s5 + j * window.s7;
            if (w < 0 || w >= W) continue;
            const float v = plane[h * W + w];
            if (best < 0 || (!isnan(m) && (v > m || isnan(v)))) {
                best = h * W + w;
                m = v;
            }
        }
    }
    return best;
}

// The largest value of the 2x2 window whose first tap is t0 (every tap inside the plane, rows W apart), and in *at
// the tap it came from: window_argmax's rule (the first largest; a NaN wins and stays), unrolled.
static float window_max_2x2(__global const float* xp, const int t0, const int W, int* at)
{
    float m = xp[t0];
    int best = t0;
#define CLNN_TAKE(tap) { const float v = xp[tap]; const bool wins = !isnan(m) && (v > m || isnan(v)); \
                         best = wins ? (tap) : best; m = wins ? v : m; }
    CLNN_TAKE(t0 + 1)
    CLNN_TAKE(t0 + W)
    CLNN_TAKE(t0 + W + 1)
#undef CLNN_TAKE
    *at = best;
    return m;
}

// Each work-item of these kernels takes `width` neighbouring outputs (a CPU-type device: long runs in order; a GPU:
// 1); global = ⌈outputs / width⌉.

// The output of window position reading element (h, w) of a plane through tap (i, j), as oh·OW + ow, or −1 when no
// window position reads it through that tap.
static int reader(const int8 dims, const int8 window, const int h, const int w, const int i, const int j)
{
    const int t = h + window.s4 - i * window.s6, u = w + window.s5 - j * window.s7;
    if (t < 0 || t % window.s2 != 0 || t / window.s2 >= dims.s4) return -1;
    if (u < 0 || u % window.s3 != 0 || u / window.s3 >= dims.s5) return -1;
    return t / window.s2 * dims.s5 + u / window.s3;
}

// y[n, c, oh, ow] = the largest x under window position (oh, ow), and `indices` the element it came from (h·W + w in
// its plane, the int's bits stored in a float; −1 when every tap lies in the padding). Outputs: N·C·OH·OW.
__kernel void max_pool2d(const int8 dims, const int8 window, const int width, __global const float* x,
                         __global float* y, __global float* indices)
{
    const int H = dims.s2, W = dims.s3, OH = dims.s4, OW = dims.s5, total = dims.s0 * dims.s1 * OH * OW;
    const int first = get_global_id(0) * width;
    if (first >= total) return;
    int ow = first % OW, oh = (first / OW) % OH, plane = first / (OW * OH);
    // The common 2x2 window without padding or dilation: every tap inside, four loads (the same rule unrolled).
    const bool two = window.s0 == 2 && window.s1 == 2 && window.s4 == 0 && window.s5 == 0 && window.s6 == 1
        && window.s7 == 1;
    for (int index = first; index < min(first + width, total); ++index) {
        __global const float* xp = x + (size_t)plane * H * W;
        int at;
        if (two) {
            window_max_2x2(xp, oh * window.s2 * W + ow * window.s3, W, &at);
        } else {
            at = window_argmax(dims, window, xp, oh, ow);
        }
        y[index] = at < 0 ? -INFINITY : xp[at];
        indices[index] = as_float(at);
        if (++ow == OW) {
            ow = 0;
            if (++oh == OH) { oh = 0; ++plane; }
        }
    }
}

// max_pool2d for the common 2x2 window without padding or dilation (any stride), on CPU-type devices: each
// work-item takes `width` whole output rows (plane·OH + oh), reading the two input rows under them in order — no
// division per output, every tap inside. The same rule as max_pool2d's. global = ⌈N·C·OH / width⌉.
__kernel void max_pool2d_2x2_rows(const int8 dims, const int8 window, const int width, __global const float* x,
                                  __global float* y, __global float* indices)
{
    const int H = dims.s2, W = dims.s3, OH = dims.s4, OW = dims.s5, rows = dims.s0 * dims.s1 * OH;
    const int sy = window.s2, sx = window.s3;
    const int first = get_global_id(0) * width, last = min(first + width, rows);
    for (int row = first; row < last; ++row) {
        const int plane = row / OH, oh = row - plane * OH;
        __global const float* xp = x + (size_t)plane * H * W;
        __global float* yr = y + (size_t)row * OW;
        __global float* ir = indices + (size_t)row * OW;
        const int top = oh * sy * W;
        int ow = 0;
        if (sx == 2) {
            // Four windows at a time from two rows of eight: the taps of window q are lanes 2q and 2q + 1. Vector
            // selects, not branches: which tap wins is data (a scalar select compiles to jumps that mispredict).
            for (; ow + 4 <= OW; ow += 4) {
                const int t0 = top + 2 * ow;
                const float8 upper = vload8(0, xp + t0), lower = vload8(0, xp + t0 + W);
                const int4 base = (int4)(t0, t0 + 2, t0 + 4, t0 + 6);
                float4 m = upper.even;
                int4 at = base;
#define CLNN_TAKE4(v, tap) { const int4 wins = (isnan(m) == 0) & (isgreater(v, m) | isnan(v)); \
                             at = select(at, (tap), wins); m = select(m, (v), wins); }
                CLNN_TAKE4(upper.odd, base + 1)
                CLNN_TAKE4(lower.even, base + W)
                CLNN_TAKE4(lower.odd, base + W + 1)
#undef CLNN_TAKE4
                vstore4(m, 0, yr + ow);
                vstore4(as_float4(at), 0, ir + ow);
            }
        }
        for (; ow < OW; ++ow) {
            int at;
            yr[ow] = window_max_2x2(xp, top + ow * sx, W, &at);
            ir[ow] = as_float(at);
        }
    }
}

// dx[n, c, h, w] = Σ g[n, c, oh, ow] over the window positions whose largest value came from x[n, c, h, w] (their
// `indices` say so). Outputs: N·C·H·W.
__kernel void max_pool2d_backward(const int8 dims, const int8 window, const int width, __global const float* indices,
                                  __global const float* g, __global float* dx)
{
    const int H = dims.s2, W = dims.s3, OH = dims.s4, OW = dims.s5, total = dims.s0 * dims.s1 * H * W;
    const int first = get_global_id(0) * width;
    if (first >= total) return;
    int w = first % W, h = (first / W) % H, plane = first / (W * H);
    for (int index = first; index < min(first + width, total); ++index) {
        float acc = 0.0f;
        for (int i = 0; i < window.s0; ++i) {
            for (int j = 0; j < window.s1; ++j) {
                const int o = reader(dims, window, h, w, i, j);
                if (o < 0) continue;
                const size_t at = (size_t)plane * OH * OW + o;
                if (as_int(indices[at]) == h * W + w) acc += g[at];
            }
        }
        dx[index] = acc;
        if (++w == W) {
            w = 0;
            if (++h == H) { h = 0; ++plane; }
        }
    }
}

// y[n, c, oh, ow] = the mean of the kh·kw taps of window position (oh, ow), the padding's zeros counted (PyTorch's
// count_include_pad). Outputs: N·C·OH·OW.
__kernel void avg_pool2d(const int8 dims, const int8 window, const int width, __global const float* x,
                         __global float* y)
{
    const int H = dims.s2, W = dims.s3, OH = dims.s4, OW = dims.s5, total = dims.s0 * dims.s1 * OH * OW;
    const int first = get_global_id(0) * width;
    if (first >= total) return;
    int ow = first % OW, oh = (first / OW) % OH, plane = first / (OW * OH);
    for (int index = first; index < min(first + width, total); ++index) {
        __global const float* xp = x + (size_t)plane * H * W;
        float acc = 0.0f;
        for (int i = 0; i < window.s0; ++i) {
            const int h = oh * window.s2 - window.s4 + i;
            if (h < 0 || h >= H) continue;
            for (int j = 0; j < window.s1; ++j) {
                const int w = ow * window.s3 - window.s5 + j;
                if (w >= 0 && w < W) acc += xp[h * W + w];
            }
        }
        y[index] = acc / (float)(window.s0 * window.s1);
        if (++ow == OW) {
            ow = 0;
            if (++oh == OH) { oh = 0; ++plane; }
        }
    }
}

// dx[n, c, h, w] = Σ g[n, c, oh, ow] / (kh·kw) over the window positions that read x[n, c, h, w].
// Outputs: N·C·H·W.
__kernel void avg_pool2d_backward(const int8 dims, const int8 window, const int width, __global const float* g,
                                  __global float* dx)
{
    const int H = dims.s2, W = dims.s3, OH = dims.s4, OW = dims.s5, total = dims.s0 * dims.s1 * H * W;
    const int first = get_global_id(0) * width;
    if (first >= total) return;
    int w = first % W, h = (first / W) % H, plane = first / (W * H);
    for (int index = first; index < min(first + width, total); ++index) {
        float acc = 0.0f;
        for (int i = 0; i < window.s0; ++i) {
            for (int j = 0; j < window.s1; ++j) {
                const int o = reader(dims, window, h, w, i, j);
                if (o >= 0) acc += g[(size_t)plane * OH * OW + o];
            }
        }
        dx[index] = acc / (float)(window.s0 * window.s1);
        if (++w == W) {
            w = 0;
            if (++h == H) { h = 0; ++plane; }
        }
    }
}

// max_pool2d_backward as a scatter, for CPU-type devices: one work-item per channel plane (no division per tap)
// zeroes its plane of dx, then adds each output's gradient where that output's largest value came from. Planes are
// disjoint, so no two work-items write one element. global = (N·C).
__kernel void max_pool2d_backward_planes(const int8 dims, const int8 window, const int width,
                                         __global const float* indices, __global const float* g, __global float* dx)
{
    const int plane = get_global_id(0), HW = dims.s2 * dims.s3, outputs = dims.s4 * dims.s5;
    if (plane >= dims.s0 * dims.s1) return;
    __global float* d = dx + (size_t)plane * HW;
    for (int i = 0; i < HW; ++i) d[i] = 0.0f;
    __global const float* gp = g + (size_t)plane * outputs;
    __global const float* ip = indices + (size_t)plane * outputs;
    for (int o = 0; o < outputs; ++o) {
        const int at = as_int(ip[o]);
        if (at >= 0) d[at] += gp[o];
    }
}
