// Row-broadcast bias: forward adds b[cols] to every row of x[rows, cols]; backward sums the rows of dy into db.
// (A bias followed by an activation runs fused: bias_activation in activation.cl.)

// y[i,j] = x[i,j] + b[j]. global = (cols, rows).
__kernel void add_bias(const int rows, const int cols,
                       __global const float* x, __global const float* b, __global float* y)
{
    const int j = get_global_id(0);
    const int i = get_global_id(1);
    if (i < rows && j < cols) {
        const size_t k = (size_t)i * cols + j;
        y[k] = x[k] + b[j];
    }
}

// db[j] = beta·db[j] + Σ_i dy[i,j]: the column sums of dy. global = (cols).
__kernel void add_bias_backward(const int rows, const int cols, __global const float* dy, __global float* db,
                                const float beta)
{
    const int j = get_global_id(0);
    if (j >= cols) return;
    float acc = 0.0f;
    for (int i = 0; i < rows; i++) acc += dy[(size_t)i * cols + j];
    db[j] = beta == 0.0f ? acc : acc + beta * db[j];
}
