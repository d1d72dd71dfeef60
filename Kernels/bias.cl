// Row-broadcast bias: forward adds b[cols] to every row of x[rows, cols]; backward sums the rows of dy into db.

// y[i,j] = x[i,j] + b[j]. global = (cols, rows).
__kernel void bias_forward(const int rows, const int cols,
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
__kernel void bias_backward(const int rows, const int cols, __global const float* dy, __global float* db,
                            const float beta)
{
    const int j = get_global_id(0);
    if (j >= cols) return;
    float acc = 0.0f;
    for (int i = 0; i < rows; i++) acc += dy[(size_t)i * cols + j];
    db[j] = beta == 0.0f ? acc : acc + beta * db[j];
}

// The bias of a layer followed by ReLU, fused: y = max(x + b, 0). global = (cols, rows).
__kernel void bias_relu_forward(const int rows, const int cols,
                                __global const float* x, __global const float* b, __global float* y)
{
    const int j = get_global_id(0);
    const int i = get_global_id(1);
    if (i < rows && j < cols) {
        const size_t k = (size_t)i * cols + j;
        y[k] = fmax(x[k] + b[j], 0.0f);
    }
}

// Its backward, with the ReLU mask applied inside the gradient path: from y (the forward output; y > 0 exactly
// where x + b > 0) and dy, dx = dy where y > 0 else 0, and db = beta·db + Σ_rows dx. global = (cols).
__kernel void bias_relu_backward(const int rows, const int cols, __global const float* y, __global const float* dy,
                                 __global float* dx, __global float* db, const float beta)
{
    const int j = get_global_id(0);
    if (j >= cols) return;
    float acc = 0.0f;
    for (int i = 0; i < rows; i++) {
        const size_t k = (size_t)i * cols + j;
        const float g = y[k] > 0.0f ? dy[k] : 0.0f;
        dx[k] = g;
        acc += g;
    }
    db[j] = beta == 0.0f ? acc : acc + beta * db[j];
}
