// ReLU and its gradient. global = (n).

// y = max(x, 0)
__kernel void relu_forward(const int n, __global const float* x, __global float* y)
{
    const int i = get_global_id(0);
    if (i < n) y[i] = fmax(x[i], 0.0f);
}

// dx = dy where x > 0, else 0. x is the forward input.
__kernel void relu_backward(const int n, __global const float* x, __global const float* dy, __global float* dx)
{
    const int i = get_global_id(0);
    if (i < n) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}
