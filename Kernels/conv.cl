// 2-D convolution's data movement (Sources/Device/Ops/Conv.swift): im2col unfolds the patches a window slides
// over an NCHW input into the columns of a matrix, so that a convolution is one matrix product; col2im is its
// gradient (each input element sums the column entries that read it), written as a gather so no two work-items write
// one element. `dims` = (N, C, H, W, OH, OW), `window` = (kh, kw, stride h, stride w, pad h, pad w, dilation h,
// dilation w); cols is [C·kh·kw, N·OH·OW]: row (c, i, j), column (n, oh, ow).

// cols[(c·kh + i)·kw + j, (n·OH + oh)·OW + ow] = x[n, c, oh·sh − ph + i·dh, ow·sw − pw + j·dw] (0 outside x).
// global = (N·OH·OW, C·kh·kw).
__kernel void im2col(const int8 dims, const int8 window, __global const float* x, __global float* cols)
{
    const int N = dims.s0, C = dims.s1, H = dims.s2, W = dims.s3, OH = dims.s4, OW = dims.s5;
    const int kh = window.s0, kw = window.s1;
    const int col = get_global_id(0), row = get_global_id(1), columns = N * OH * OW;
    if (col >= columns || row >= C * kh * kw) return;
    const int ow = col % OW, oh = (col / OW) % OH, n = col / (OW * OH);
    const int j = row % kw, i = (row / kw) % kh, c = row / (kw * kh);
    const int h = oh * window.s2 - window.s4 + i * window.s6, w = ow * window.s3 - window.s5 + j * window.s7;
    cols[(size_t)row * columns + col] =
        h >= 0 && h < H && w >= 0 && w < W ? x[(((size_t)n * C + c) * H + h) * W + w] : 0.0f;
}

// x[n, c, h, w] = Σ over the taps (i, j) whose window position (oh, ow) reads it of cols[(c, i, j), (n, oh, ow)].
// global = (N·C·H·W).
__kernel void col2im(const int8 dims, const int8 window, __global const float* cols, __global float* x)
{
    const int N = dims.s0, C = dims.s1, H = dims.s2, W = dims.s3, OH = dims.s4, OW = dims.s5;
    const int kh = window.s0, kw = window.s1, sh = window.s2, sw = window.s3;
    const int index = get_global_id(0);
    if (index >= N * C * H * W) return;
    const int w = index % W, h = (index / W) % H, c = (index / (W * H)) % C, n = index / (W * H * C);
    const int columns = N * OH * OW;
    float acc = 0.0f;
    for (int i = 0; i < kh; ++i) {
        const int t = h + window.s4 - i * window.s6;
        if (t < 0 || t % sh != 0 || t / sh >= OH) continue;
        for (int j = 0; j < kw; ++j) {
            const int u = w + window.s5 - j * window.s7;
            if (u < 0 || u % sw != 0 || u / sw >= OW) continue;
            acc += cols[(size_t)((c * kh + i) * kw + j) * columns + (n * OH + t / sh) * OW + u / sw];
        }
    }
    x[index] = acc;
}
