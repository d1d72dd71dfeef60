// Reductions along one axis of any layout. The table REDUCTION_OPS(X): X(name, identity, combine(acc, v)) comes
// before this text from Sources/Device/Ops/Reduction.swift. Output element (j, row) of `out` (x's other axes, in
// x's layout) combines the n elements of x that start there and lie `stride` apart; the result is scaled by `scale`
// (1/n for a mean).
#include "strided.cl"

#define DEFINE_COMBINE(name, identity, combine) \
inline float combine_##name(const float acc, const float v) { return (combine); }
REDUCTION_OPS(DEFINE_COMBINE)

#define BLOCK 64

// One work-item per output element, for a reduced axis that is not contiguous (neighbouring work-items read
// neighbouring elements). Blocked: each block of 64 is combined on its own first, so a sum's rounding error grows
// with n/64 + 64 rather than n. global = (inner, rows).
#define REDUCE_LOOP(name, identity, combine) \
__kernel void reduce_##name(const int rank, const int8 shape, const int inner, \
                            __global const float* x, LAYOUT(x), const int n, const int stride, \
                            __global float* out, LAYOUT(out), const float scale) \
{ \
    INDEX; \
    const int base = x_offset + row_start(row, rank, shape, x_strides) + j * last_stride(rank, x_strides); \
    float total = (identity); \
    for (int k0 = 0; k0 < n; k0 += BLOCK) { \
        float acc = (identity); \
        const int end = min(n, k0 + BLOCK); \
        for (int k = k0; k < end; ++k) acc = combine_##name(acc, x[base + k * stride]); \
        total = combine_##name(total, acc); \
    } \
    AT(out) = total * scale; \
}

// One work-group per output element, for a contiguous reduced axis: work-item t combines elements t, t + L, …,
// then a tree in local memory (pairwise). Output j reads at most `total - j·n` elements (a ragged last chunk when
// one long axis is split into chunks). global = (inner · L, rows), local = (L, 1), L a power of two.
#define REDUCE_GROUP(name, identity, combine) \
__kernel void reduce_##name##_group(const int rank, const int8 shape, const int inner, \
                                    __global const float* x, LAYOUT(x), const int n, const int stride, \
                                    const int total, __global float* out, LAYOUT(out), const float scale, \
                                    __local float* scratch) \
{ \
    const int j = get_group_id(0), row = get_global_id(1), t = get_local_id(0), size = get_local_size(0); \
    const int base = x_offset + row_start(row, rank, shape, x_strides) + j * last_stride(rank, x_strides); \
    const int end = min(n, total - j * n); \
    float acc = (identity); \
    for (int k = t; k < end; k += size) acc = combine_##name(acc, x[base + k * stride]); \
    scratch[t] = acc; \
    barrier(CLK_LOCAL_MEM_FENCE); \
    for (int width = size / 2; width > 0; width /= 2) { \
        if (t < width) scratch[t] = combine_##name(scratch[t], scratch[t + width]); \
        barrier(CLK_LOCAL_MEM_FENCE); \
    } \
    if (t == 0) AT(out) = scratch[0] * scale; \
}

REDUCTION_OPS(REDUCE_LOOP)
REDUCTION_OPS(REDUCE_GROUP)

// The index (as a float) of the largest of the n elements, the first on ties; NaN counts as largest.
// global = (inner, rows).
__kernel void argmax(const int rank, const int8 shape, const int inner,
                     __global const float* x, LAYOUT(x), const int n, const int stride, __global float* out, LAYOUT(out))
{
    INDEX;
    const int base = x_offset + row_start(row, rank, shape, x_strides) + j * last_stride(rank, x_strides);
    int best = 0;
    float top = x[base];
    for (int k = 1; k < n && !isnan(top); ++k) {
        const float v = x[base + k * stride];
        if (v > top || isnan(v)) { top = v; best = k; }
    }
    AT(out) = (float)best;
}
