// Minibatch gathering on the device: rows of a resident dataset picked by a shuffled order. The gradient of a
// gather (a scatter-add) is not needed for training inputs, so this family has only the forward.

// dst[r, :] = src[order[offset + r], :] for r < rows; order holds row indices as floats (exact below 2^24).
// An index outside 0..<src_rows is clamped, so a bad order can never read outside src. global = (cols, rows).
__kernel void gather_rows(const int rows, const int cols, __global const float* src, const int src_rows,
                          __global const float* order, const int offset, __global float* dst)
{
    const int c = get_global_id(0);
    const int r = get_global_id(1);
    if (r >= rows || c >= cols) return;
    const size_t from = (size_t)clamp((int)order[offset + r], 0, src_rows - 1);
    dst[(size_t)r * cols + c] = src[from * cols + c];
}
