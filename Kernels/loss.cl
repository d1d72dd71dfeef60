#if !defined(LOSS_SOFTMAX_CROSS_ENTROPY) || !defined(LOSS_SQUARED_ERROR)
#error "loss.cl needs LossKind's -D defines (Ops/Loss.swift)"
#endif
#include "rows.cl"

// Losses with their gradients fused into the same pass. Labels are class indices (or regression targets) in fp32.

// One row's softmax cross-entropy, log-sum-exp stable: logsumexp(z) - z[label]; with want_grad, g[j] receives
// grad_scale · (softmax(z)[j] - [j == label]).
// NOTE: the host validates labels; an out-of-range or fractional one still must not read out of bounds (nor be
// truncated to a class), so it gives NaN, loss and gradient.
float softmax_cross_entropy_row(__global const float* z, const int cols, const float label_value,
                                __global float* g, const float grad_scale, const int want_grad)
{
    float m = z[0];
    for (int j = 1; j < cols; j++) m = fmax(m, z[j]);
    float s = 0.0f;
    for (int j = 0; j < cols; j++) s += exp(z[j] - m);
    const float lse = m + log(s);
    // A label that is not a whole class index (fractional, negative, too large, NaN) is -1: no class, a NaN loss
    // and a NaN gradient row (a finite one would train the row towards no class, silently).
    const int label = label_value >= 0.0f && label_value < (float)cols && label_value == floor(label_value)
        ? (int)label_value : -1;
    // The loss is read before the gradient is written: g may be z itself (the logits' gradient written over them).
    const float loss = label >= 0 ? lse - z[label] : NAN;
    if (want_grad)
        for (int j = 0; j < cols; j++)
            g[j] = label >= 0 ? grad_scale * (exp(z[j] - lse) - (j == label ? 1.0f : 0.0f)) : NAN;
    return loss;
}

// Softmax cross-entropy over each row of logits[rows, cols]: losses[i] = the row's loss (above). global = (rows).
__kernel void softmax_cross_entropy(const int rows, const int cols,
                           __global const float* logits, __global const float* labels,
                           __global float* losses, __global float* grad, const float grad_scale, const int want_grad)
{
    const int i = get_global_id(0);
    if (i >= rows) return;
    losses[i] = softmax_cross_entropy_row(logits + (size_t)i * cols, cols, labels[i], grad + (size_t)i * cols,
                                          grad_scale, want_grad);
}

// Squared error of a single-output regression: losses[i] = (pred[i] - target[i])²;
// if want_grad: grad[i] = grad_scale · 2 · (pred[i] - target[i]). global = (n).
__kernel void squared_error(const int n, __global const float* pred, __global const float* target,
                  __global float* losses, __global float* grad, const float grad_scale, const int want_grad)
{
    const int i = get_global_id(0);
    if (i >= n) return;
    const float d = pred[i] - target[i];
    losses[i] = d * d;
    if (want_grad) grad[i] = grad_scale * 2.0f * d;
}

// The batch's mean loss, fused with its gradient, written to out[slot]; one work-group of any power-of-two size
// (scratch: one float per work-item). kind LOSS_SOFTMAX_CROSS_ENTROPY: softmax cross-entropy over rows of cols logits;
// LOSS_SQUARED_ERROR: squared error of one output per row (cols = 1). The numbering comes from Swift's `LossKind` as
// -D defines (Ops/Loss.swift). grad (when want_grad) receives (1/rows) · d(sum of losses)/dpred.
// Row i's label is labels[i], or with gathered != 0 labels[order[offset + i]] (clamped to label_rows): the batch's
// labels read in place from the resident dataset. global = local = (work-group size).
__kernel void mean_loss(const int kind, const int rows, const int cols, __global const float* pred,
                        __global const float* labels, __global float* grad, const int want_grad,
                        __global float* out, const int slot, __local float* scratch,
                        const int gathered, __global const float* order, const int offset, const int label_rows)
{
#define LABEL(i) labels[gathered ? stored_row(order, offset, (i), label_rows) : (size_t)(i)]
    const int lid = get_local_id(0);
    const int size = get_local_size(0);
    const float scale = 1.0f / (float)max(rows, 1);
    float acc = 0.0f;
    for (int i = lid; i < rows; i += size) {
        __global const float* z = pred + (size_t)i * cols;
        if (kind == LOSS_SOFTMAX_CROSS_ENTROPY) {
            acc += softmax_cross_entropy_row(z, cols, LABEL(i), grad + (size_t)i * cols, scale, want_grad);
        } else {
            const float d = z[0] - LABEL(i);
            acc += d * d;
            if (want_grad) grad[i] = scale * 2.0f * d;
        }
    }
    scratch[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = size / 2; stride > 0; stride /= 2) {
        if (lid < stride) scratch[lid] += scratch[lid + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) out[slot] = scratch[0] * scale;
}
