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
