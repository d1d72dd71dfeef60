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
// outputs of its row and walks the reduced axis once, adding a row of neighbouring elements at a time (a loop the
// compiler vectorises; a wide row reads whole pages in order). global = (⌈inner / width⌉, rows).
#define REDUCE_LOOP(name, identity, combine) \
__kernel void reduce_##name(AXES, __global const float* x, LAYOUT(x), const int n, const int stride, \
                            const int width, __global float* out, LAYOUT(out), const float scale) \
{ \
    ROW; BASE(x); BASE(out); \
    const int j0 = get_global_id(0) * width, m = min(inner - j0, width); \
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
