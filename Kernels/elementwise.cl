// Elementwise arithmetic used by losses, statistics and optimisers. global = (n).

// out = x + y
__kernel void add(const int n, __global const float* x, __global const float* y, __global float* out)
{
    const int i = get_global_id(0);
    if (i < n) out[i] = x[i] + y[i];
}

// out = x - y
__kernel void sub(const int n, __global const float* x, __global const float* y, __global float* out)
{
    const int i = get_global_id(0);
    if (i < n) out[i] = x[i] - y[i];
}

// out = x * y
__kernel void mul(const int n, __global const float* x, __global const float* y, __global float* out)
{
    const int i = get_global_id(0);
    if (i < n) out[i] = x[i] * y[i];
}

// out = alpha * x + beta_
__kernel void affine(const int n, __global const float* x, const float alpha, const float beta_, __global float* out)
{
    const int i = get_global_id(0);
    if (i < n) out[i] = alpha * x[i] + beta_;
}

// x = value
__kernel void fill(const int n, __global float* x, const float value)
{
    const int i = get_global_id(0);
    if (i < n) x[i] = value;
}
