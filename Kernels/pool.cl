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

// y[n, c, oh, ow] = the largest x under window position (oh, ow). global = (N·C·OH·OW).
__kernel void max_pool2d(const int8 dims, const int8 window, __global const float* x, __global float* y)
{
    const int C = dims.s1, H = dims.s2, W = dims.s3, OH = dims.s4, OW = dims.s5;
    const int index = get_global_id(0);
    if (index >= dims.s0 * C * OH * OW) return;
    const int ow = index % OW, oh = (index / OW) % OH, plane = index / (OW * OH);
    __global const float* xp = x + (size_t)plane * H * W;
    const int at = window_argmax(dims, window, xp, oh, ow);
    y[index] = at < 0 ? -INFINITY : xp[at];
}

// dx[n, c, h, w] = Σ g[n, c, oh, ow] over the window positions whose largest value is x[n, c, h, w].
// global = (N·C·H·W).
__kernel void max_pool2d_backward(const int8 dims, const int8 window, __global const float* x,
                                  __global const float* g, __global float* dx)
{
    const int C = dims.s1, H = dims.s2, W = dims.s3, OH = dims.s4, OW = dims.s5;
    const int sh = window.s2, sw = window.s3;
    const int index = get_global_id(0);
    if (index >= dims.s0 * C * H * W) return;
    const int w = index % W, h = (index / W) % H, plane = index / (W * H);
    __global const float* xp = x + (size_t)plane * H * W;
    float acc = 0.0f;
    for (int i = 0; i < window.s0; ++i) {
        const int t = h + window.s4 - i * window.s6;
        if (t < 0 || t % sh != 0 || t / sh >= OH) continue;
        for (int j = 0; j < window.s1; ++j) {
            const int u = w + window.s5 - j * window.s7;
            if (u < 0 || u % sw != 0 || u / sw >= OW) continue;
            if (window_argmax(dims, window, xp, t / sh, u / sw) == h * W + w)
                acc += g[((size_t)plane * OH + t / sh) * OW + u / sw];
        }
    }
    dx[index] = acc;
}

// y[n, c, oh, ow] = the mean of the kh·kw taps of window position (oh, ow), the padding's zeros counted (PyTorch's
// count_include_pad). global = (N·C·OH·OW).
__kernel void avg_pool2d(const int8 dims, const int8 window, __global const float* x, __global float* y)
{
    const int C = dims.s1, H = dims.s2, W = dims.s3, OH = dims.s4, OW = dims.s5;
    const int index = get_global_id(0);
    if (index >= dims.s0 * C * OH * OW) return;
    const int ow = index % OW, oh = (index / OW) % OH, plane = index / (OW * OH);
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
}

// dx[n, c, h, w] = Σ g[n, c, oh, ow] / (kh·kw) over the window positions that read x[n, c, h, w].
// global = (N·C·H·W).
__kernel void avg_pool2d_backward(const int8 dims, const int8 window, __global const float* g, __global float* dx)
{
    const int C = dims.s1, H = dims.s2, W = dims.s3, OH = dims.s4, OW = dims.s5;
    const int sh = window.s2, sw = window.s3;
    const int index = get_global_id(0);
    if (index >= dims.s0 * C * H * W) return;
    const int w = index % W, h = (index / W) % H, plane = index / (W * H);
    float acc = 0.0f;
    for (int i = 0; i < window.s0; ++i) {
        const int t = h + window.s4 - i;
        if (t < 0 || t % sh != 0 || t / sh >= OH) continue;
        for (int j = 0; j < window.s1; ++j) {
            const int u = w + window.s5 - j;
            if (u < 0 || u % sw != 0 || u / sw >= OW) continue;
            acc += g[((size_t)plane * OH + t / sh) * OW + u / sw];
        }
    }
    dx[index] = acc / (float)(window.s0 * window.s1);
}
