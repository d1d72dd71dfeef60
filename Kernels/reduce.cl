// Reductions.

// out[0] = Σ x[i], by one work-group of any power-of-two size; scratch holds one float per work-item.
// global = local = (work-group size).
__kernel void sum(const int n, __global const float* x, __global float* out, __local float* scratch)
{
    const int lid = get_local_id(0);
    const int size = get_local_size(0);
    // Kahan-compensated partial sums: long reductions (e.g. 47M pixels) stay accurate in fp32.
    float acc = 0.0f, carry = 0.0f;
    for (int i = lid; i < n; i += size) {
        const float y = x[i] - carry;
        const float t = acc + y;
        carry = (t - acc) - y;
        acc = t;
    }
    scratch[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = size / 2; stride > 0; stride /= 2) {
        if (lid < stride) scratch[lid] += scratch[lid + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) out[0] = scratch[0];
}

// out[i] = index of the largest entry of row i of x[rows, cols] (the first one on ties). global = (rows).
__kernel void argmax_rows(const int rows, const int cols, __global const float* x, __global float* out)
{
    const int i = get_global_id(0);
    if (i >= rows) return;
    __global const float* r = x + (size_t)i * cols;
    int best = 0;
    for (int j = 1; j < cols; j++) if (r[j] > r[best]) best = j;
    out[i] = (float)best;
}
