// Reductions along one axis of any layout. The table REDUCTION_OPS(X): X(name, identity, combine(acc, v)) comes
// before this text from Sources/Device/Ops/Reduction.swift. Output element j of row `row` (x's other axes; `out` in
// its own layout, x in x's) combines the n elements of x that start there and lie `stride` apart; the result is
// scaled by `scale` (1/n for a mean). Sums are blocked (each block of 64 combined on its own first, so the rounding
// error grows with n/64 + 64 rather than n) or pairwise (a tree).
#include "strided.cl"

#define DEFINE_COMBINE(name, identity, combine) \
inline float combine_##name(const float acc, const float v) { return (combine); } \
inline float8 combine8_##name(const float8 acc, const float8 v) { return (combine); }
REDUCTION_OPS(DEFINE_COMBINE)

#define BLOCK 64

#ifdef CLNN_ROW_LOOP
// CPU-type devices. A reduced axis that is not contiguous: work-item (c, row) keeps `width` (at most COLUMNS)
// outputs of its row and walks the reduced axis once, adding a row of neighbouring elements at a time (a wide row
// reads whole pages in order). Neighbouring outputs (x_step 1, the common case: a column sum) eight at a time in
// float8 lanes, the rest one by one; each output's elements combine in the same order either way.
// global = (⌈inner / width⌉, rows).
#define REDUCE_LOOP(name, identity, combine) \
__kernel void reduce_##name(AXES, __global const float* x, LAYOUT(x), const int n, const int stride, \
                            const int width, __global float* out, LAYOUT(out), const float scale) \
{ \
    ROW; BASE(x); BASE(out); \
    const int j0 = get_global_id(0) * width, m = min(inner - j0, width); \
    if (x_step == 1 && m >= 8) { \
        const int m8 = m / 8; \
        float8 total8[COLUMNS / 8], block8[COLUMNS / 8]; \
        float tail[8], tailBlock[8]; \
        for (int i = 0; i < m8; ++i) total8[i] = (float8)(identity); \
        for (int i = 8 * m8; i < m; ++i) tail[i - 8 * m8] = (identity); \
        for (int k0 = 0; k0 < n; k0 += BLOCK) { \
            for (int i = 0; i < m8; ++i) block8[i] = (float8)(identity); \
            for (int i = 8 * m8; i < m; ++i) tailBlock[i - 8 * m8] = (identity); \
            for (int k = k0; k < min(n, k0 + BLOCK); ++k) { \
                __global const float* r = x + x_base + k * stride + j0; \
                for (int i = 0; i < m8; ++i) block8[i] = combine8_##name(block8[i], vload8(i, r)); \
                for (int i = 8 * m8; i < m; ++i) tailBlock[i - 8 * m8] = combine_##name(tailBlock[i - 8 * m8], r[i]); \
            } \
            for (int i = 0; i < m8; ++i) total8[i] = combine8_##name(total8[i], block8[i]); \
            for (int i = 8 * m8; i < m; ++i) tail[i - 8 * m8] = combine_##name(tail[i - 8 * m8], tailBlock[i - 8 * m8]); \
        } \
        for (int i = 0; i < m8; ++i) { \
            const float8 t = total8[i] * scale; \
            const float l[8] = {t.s0, t.s1, t.s2, t.s3, t.s4, t.s5, t.s6, t.s7}; \
            for (int e = 0; e < 8; ++e) { const int j = j0 + 8 * i + e; AT(out) = l[e]; } \
        } \
        for (int i = 8 * m8; i < m; ++i) { const int j = j0 + i; AT(out) = tail[i - 8 * m8] * scale; } \
        return; \
    } \
    float total[COLUMNS], block[COLUMNS]; \
    for (int i = 0; i < m; ++i) total[i] = (identity); \
    for (int k0 = 0; k0 < n; k0 += BLOCK) { \
        for (int i = 0; i < m; ++i) block[i] = (identity); \
        for (int k = k0; k < min(n, k0 + BLOCK); ++k) { \
            __global const float* r = x + x_base + k * stride + j0 * x_step; \
            for (int i = 0; i < m; ++i) block[i] = combine_##name(block[i], r[i * x_step]); \
        } \
        for (int i = 0; i < m; ++i) total[i] = combine_##name(total[i], block[i]); \
    } \
    for (int i = 0; i < m; ++i) { const int j = j0 + i; AT(out) = total[i] * scale; } \
}

// Outputs contiguous in x and many of them (x_step 1 and a wide row: a column sum of a matrix): work-item (b, row)
// combines rows b·BLOCK ..< (b+1)·BLOCK of the reduced axis, for all `inner` outputs of its row, into its partial
// row partial[(row·blocks + b)·inner …] — reading x in order, whole rows one after another, where a strip of
// outputs per work-item jumps a row's length at every step. The strided loop then combines the blocks (in the
// same order as the loop alone would). global = (blocks, rows).
#define REDUCE_BLOCKS(name, identity, combine) \
__kernel void reduce_##name##_blocks(AXES, __global const float* x, LAYOUT(x), const int n, const int stride, \
                                     const int blocks, __global float* partial) \
{ \
    ROW; BASE(x); \
    const int b = get_global_id(0); \
    if (b >= blocks) return; \
    __global float* p = partial + ((size_t)row * blocks + b) * inner; \
    const int k1 = min(n, (b + 1) * BLOCK), inner8 = inner / 8; \
    for (int i = 0; i < inner; ++i) p[i] = (identity); \
    int k = b * BLOCK; \
    for (; k + 4 <= k1; k += 4) { /* four rows per pass over the partial row, combined one after another */ \
        __global const float* r = x + x_base + k * stride; \
        for (int i = 0; i < inner8; ++i) { \
            float8 acc = combine8_##name(vload8(i, p), vload8(i, r)); \
            acc = combine8_##name(acc, vload8(i, r + stride)); \
            acc = combine8_##name(acc, vload8(i, r + 2 * stride)); \
            vstore8(combine8_##name(acc, vload8(i, r + 3 * stride)), i, p); \
        } \
        for (int i = 8 * inner8; i < inner; ++i) { \
            float acc = combine_##name(p[i], r[i]); \
            acc = combine_##name(acc, r[i + stride]); \
            acc = combine_##name(acc, r[i + 2 * stride]); \
            p[i] = combine_##name(acc, r[i + 3 * stride]); \
        } \
    } \
    for (; k < k1; ++k) { \
        __global const float* r = x + x_base + k * stride; \
        for (int i = 0; i < inner8; ++i) vstore8(combine8_##name(vload8(i, p), vload8(i, r)), i, p); \
        for (int i = 8 * inner8; i < inner; ++i) p[i] = combine_##name(p[i], r[i]); \
    } \
}

// A contiguous reduced axis: one work-item per output, eight lanes at a time. Output j reads at most
// `total - j·n` elements (a ragged last chunk when one long axis is split into chunks). global = (inner, rows).
#define REDUCE_GROUP(name, identity, combine) \
__kernel void reduce_##name##_group(AXES, __global const float* x, LAYOUT(x), const int n, const int stride, \
                                    const int total, __global float* out, LAYOUT(out), const float scale, \
                                    __local float* scratch) \
{ \
    ROW; BASE(x); BASE(out); \
    const int j = get_global_id(0); \
    if (j >= inner) return; \
    __global const float* r = x + x_base + j * x_step; \
    const int end = min(n, total - j * n); \
    float8 lanes = (float8)(identity); \
    int k = 0; \
    for (; k + 8 * BLOCK <= end; k += 8 * BLOCK) { \
        float8 block = (float8)(identity); \
        for (int b = 0; b < 8 * BLOCK; b += 8) block = combine8_##name(block, vload8(0, r + k + b)); \
        lanes = combine8_##name(lanes, block); \
    } \
    for (; k + 8 <= end; k += 8) lanes = combine8_##name(lanes, vload8(0, r + k)); \
    float acc = (identity); \
    for (; k < end; ++k) acc = combine_##name(acc, r[k]); \
    const float l[8] = {lanes.s0, lanes.s1, lanes.s2, lanes.s3, lanes.s4, lanes.s5, lanes.s6, lanes.s7}; \
    for (int i = 0; i < 8; ++i) acc = combine_##name(acc, l[i]); \
    AT(out) = acc * scale; \
}
#else
// GPUs. A reduced axis that is not contiguous: one work-item per output (neighbouring work-items read neighbouring
// elements), blocked; `width` is 1. global = (inner, rows).
#define REDUCE_LOOP(name, identity, combine) \
__kernel void reduce_##name(AXES, __global const float* x, LAYOUT(x), const int n, const int stride, \
                            const int width, __global float* out, LAYOUT(out), const float scale) \
{ \
    ROW; BASE(x); BASE(out); \
    EACH_ELEMENT { \
        const int base = x_base + j * x_step; \
        float total = (identity); \
        for (int k0 = 0; k0 < n; k0 += BLOCK) { \
            float acc = (identity); \
            const int end = min(n, k0 + BLOCK); \
            for (int k = k0; k < end; ++k) acc = combine_##name(acc, x[base + k * stride]); \
            total = combine_##name(total, acc); \
        } \
        AT(out) = total * scale; \
    } \
}

// A contiguous reduced axis: one work-group per output; work-item t combines elements t, t + L, …, then a tree in
// local memory (pairwise). Output j reads at most `total - j·n` elements (a ragged last chunk when one long axis is
// split into chunks). global = (inner · L, rows), local = (L, 1), L a power of two.
#define REDUCE_GROUP(name, identity, combine) \
__kernel void reduce_##name##_group(AXES, __global const float* x, LAYOUT(x), const int n, const int stride, \
                                    const int total, __global float* out, LAYOUT(out), const float scale, \
                                    __local float* scratch) \
{ \
    const int j = get_group_id(0), row = get_global_id(1), t = get_local_id(0), size = get_local_size(0); \
    if (row >= rows) return; \
    BASE(x); BASE(out); \
    const int end = min(n, total - j * n); \
    float acc = (identity); \
    for (int k = t; k < end; k += size) acc = combine_##name(acc, x[x_base + j * x_step + k * stride]); \
    scratch[t] = acc; \
    barrier(CLK_LOCAL_MEM_FENCE); \
    for (int width = size / 2; width > 0; width /= 2) { \
        if (t < width) scratch[t] = combine_##name(scratch[t], scratch[t + width]); \
        barrier(CLK_LOCAL_MEM_FENCE); \
    } \
    if (t == 0) AT(out) = scratch[0] * scale; \
}
#endif

REDUCTION_OPS(REDUCE_LOOP)
REDUCTION_OPS(REDUCE_GROUP)
#ifdef CLNN_ROW_LOOP
REDUCTION_OPS(REDUCE_BLOCKS)
#endif

// The index (as a float) of the largest of the n elements, the first on ties; NaN counts as largest.
// global = (inner, rows) on every device.
__kernel void argmax(AXES, __global const float* x, LAYOUT(x), const int n, const int stride,
                     __global float* out, LAYOUT(out))
{
    ROW; BASE(x); BASE(out);
    const int j = get_global_id(0);
    if (j >= inner) return;
    const int base = x_base + j * x_step;
    int best = 0;
    float top = x[base];
    for (int k = 1; k < n && !isnan(top); ++k) {
        const float v = x[base + k * stride];
        if (v > top || isnan(v)) { top = v; best = k; }
    }
    AT(out) = (float)best;
}
