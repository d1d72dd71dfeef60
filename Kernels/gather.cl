// Minibatch gathering on the device: rows of a resident dataset picked by a shuffled order. The gradient of a
// gather (a scatter-add) is not needed for training inputs, so this family has only the forward.

#include "rows.cl"

// dst[r, :] = src[order[offset + r], :] for r < rows; order holds row indices as floats (exact below 2^24).
// An index outside 0..<src_rows is clamped, so a bad order can never read outside src. One work-item copies one
// whole row (a contiguous run the compiler vectorises); one float per work-item was 3-4x slower on POCL.
// global = (rows).
__kernel void gather_rows(const int rows, const int cols, __global const float* src, const int src_rows,
                          __global const float* order, const int offset, __global float* dst)
{
    const int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* s = src + stored_row(order, offset, r, src_rows) * cols;
    __global float* d = dst + (size_t)r * cols;
    for (int c = 0; c < cols; c++) d[c] = s[c];
}
