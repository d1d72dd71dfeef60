// The optimisers' updates, one work-item per element, over a whole model's flat parameter arena at once.

// Stochastic gradient descent with optional momentum and weight decay (PyTorch's formulation):
//   g = grad + weight_decay · param
//   velocity = momentum · velocity + g      (when momentum > 0)
//   param -= lr · (momentum > 0 ? velocity : g)
// global = (n).
__kernel void sgd_step(const int n, __global float* param, __global const float* grad, __global float* velocity,
                       const float lr, const float momentum, const float weight_decay)
{
    const int i = get_global_id(0);
    if (i >= n) return;
    float g = grad[i] + weight_decay * param[i];
    if (momentum > 0.0f) {
        g = momentum * velocity[i] + g;
        velocity[i] = g;
    }
    param[i] -= lr * g;
}

// Adam (PyTorch's torch.optim.Adam, amsgrad off; weight decay is L2 added to the gradient):
//   g = grad + weight_decay · param
//   m = beta1 · m + (1 − beta1) · g;  v = beta2 · v + (1 − beta2) · g²
//   param −= step_size · m / (sqrt(v) / bias2_sqrt + eps)
// with step_size = lr / (1 − beta1^t) and bias2_sqrt = sqrt(1 − beta2^t), computed on the host in double.
// global = (n).
__kernel void adam_step(const int n, __global float* param, __global const float* grad, __global float* m,
                        __global float* v, const float step_size, const float beta1, const float beta2,
                        const float eps, const float weight_decay, const float bias2_sqrt)
{
    const int i = get_global_id(0);
    if (i >= n) return;
    const float g = grad[i] + weight_decay * param[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= step_size * mi / (sqrt(vi) / bias2_sqrt + eps);
}
