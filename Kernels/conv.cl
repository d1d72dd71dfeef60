// 2-D convolution's data movement (Sources/Device/Ops/Conv.swift): im2col unfolds the patches a window slides
// over an NCHW input into the columns of a matrix, so that a convolution is one matrix product; col2im is its
// gradient (each input element sums the column entries that read it), written as a gather so no two work-items write
// one element. `dims` = (N, C, H, W, OH, OW), `window` = (kh, kw, stride h, stride w, pad h, pad w, dilation h,
// dilation w); cols is [C·kh·kw, N·OH·OW]: row (c, i, j), column (n, oh, ow).

// cols[(c·kh + i)·kw + j, (n·OH + oh)·OW + ow] = x[n, c, oh·sh − ph + i·dh, ow·sw − pw + j·dw] (0 outside x),
// for `width` neighbouring columns per work-item (a CPU-type device: long runs written in order; a GPU: 1).
// global = (⌈N·OH·OW / width⌉, C·kh·kw).
__kernel void im2col(const int8 dims, const int8 window, const int width, __global const float* x,
                     __global float* cols)
{
    const int N = dims.s0, C = dims.s1, H = dims.s2, W = dims.s3, OH = dims.s4, OW = dims.s5;
    const int kh = window.s0, kw = window.s1;
    const int first = get_global_id(0) * width, row = get_global_id(1), columns = N * OH * OW;
    if (first >= columns || row >= C * kh * kw) return;
    const int j = row % kw, i = (row / kw) % kh, c = row / (kw * kh);
    int ow = first % OW, oh = (first / OW) % OH, n = first / (OW * OH);
    const int last = min(first + width, columns);
    __global float* out = cols + (size_t)row * columns;
    // Segment by segment: the columns up to the end of one output row (n, oh) read one input row (or the padding).
    const int sw = window.s3, base = j * window.s7 - window.s5;
    for (int col = first; col < last;) {
        const int seg = min(last - col, OW - ow);
        const int h = oh * window.s2 - window.s4 + i * window.s6;
        __global float* o = out + col;
        if (h < 0 || h >= H) {
            for (int t = 0; t < seg; ++t) o[t] = 0.0f;
        } else {
            // The taps t in [lo, hi) fall inside the row (w = offset + t·sw in 0..<W): zeros, a strided copy, zeros.
            const int offset = ow * sw + base;
            __global const float* src = x + (((size_t)n * C + c) * H + h) * W;
            const int lo = min(offset >= 0 ? 0 : (-offset + sw - 1) / sw, seg);
            const int hi = W - 1 - offset < 0 ? 0 : min((W - 1 - offset) / sw + 1, seg);
            for (int t = 0; t < lo; ++t) o[t] = 0.0f;
            if (sw == 1) {
                for (int t = lo; t < hi; ++t) o[t] = src[offset + t];
            } else {
                for (int t = lo; t < hi; ++t) o[t] = src[offset + t * sw];
            }
            for (int t = max(lo, hi); t < seg; ++t) o[t] = 0.0f;
        }
        col += seg;
        ow += seg;
        if (ow == OW) {
            ow = 0;
            if (++oh == OH) { oh = 0; ++n; }
        }
    }
}

// x[n, c, h, w] = Σ over the taps (i, j) whose window position (oh, ow) reads it of cols[(c, i, j), (n, oh, ow)],
// for `width` neighbouring elements per work-item. global = (⌈N·C·H·W / width⌉).
__kernel void col2im(const int8 dims, const int8 window, const int width, __global const float* cols,
                     __global float* x)
{
    const int N = dims.s0, C = dims.s1, H = dims.s2, W = dims.s3, OH = dims.s4, OW = dims.s5;
    const int kh = window.s0, kw = window.s1, sh = window.s2, sw = window.s3;
    const int first = get_global_id(0) * width, total = N * C * H * W;
    if (first >= total) return;
    const int columns = N * OH * OW;
    int w = first % W, h = (first / W) % H, c = (first / (W * H)) % C, n = first / (W * H * C);
    const int last = min(first + width, total);
    for (int index = first; index < last; ++index) {
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
        if (++w == W) {
            w = 0;
            if (++h == H) {
                h = 0;
                if (++c == C) { c = 0; ++n; }
            }
        }
    }
}

// col2im as a scatter, for CPU-type devices: one work-item per channel plane of x (no division per tap) zeroes it,
// then adds every column entry that reads it, tap by tap. Planes are disjoint. global = (N·C).
__kernel void col2im_planes(const int8 dims, const int8 window, const int width, __global const float* cols,
                            __global float* x)
{
    const int N = dims.s0, C = dims.s1, H = dims.s2, W = dims.s3, OH = dims.s4, OW = dims.s5;
    const int kh = window.s0, kw = window.s1;
    const int plane = get_global_id(0), columns = N * OH * OW;
    if (plane >= N * C) return;
    const int c = plane % C, n = plane / C;
    __global float* xp = x + (size_t)plane * H * W;
    for (int e = 0; e < H * W; ++e) xp[e] = 0.0f;
    for (int i = 0; i < kh; ++i) {
        for (int j = 0; j < kw; ++j) {
            __global const float* row = cols + (size_t)((c * kh + i) * kw + j) * columns + (size_t)n * OH * OW;
            for (int oh = 0; oh < OH; ++oh) {
                const int h = oh * window.s2 - window.s4 + i * window.s6;
                if (h < 0 || h >= H) continue;
                for (int ow = 0; ow < OW; ++ow) {
                    const int w = ow * window.s3 - window.s5 + j * window.s7;
                    if (w >= 0 && w < W) xp[h * W + w] += row[oh * OW + ow];
                }
            }
        }
    }
}
