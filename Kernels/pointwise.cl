// Strided N-d elementwise kernels: one kernel per row of the op table in Sources/Device/Ops/Pointwise.swift, which
// the host puts before this text as two X-macro lists:
//   UNARY_OPS(X):  X(name, f(x, p, q), df/dx(x, y, p, q))        y = f(x); p, q: the op's scalars
//   BINARY_OPS(X): X(name, f(a, b), df/da(a, b, y), df/db(a, b, y))
// Every operand is a layout over its buffer (strided.cl says how, and how work-items cover the elements).

#include "strided.cl"

#define UNARY_FORWARD(name, f, df) \
__kernel void unary_##name(AXES, __global const float* x, LAYOUT(x), __global float* out, LAYOUT(out), \
                           const float p, const float q) \
{ \
    ROW; BASE(x); BASE(out); \
    EACH_ELEMENT { const float x_ = AT(x); { const float x = x_; AT(out) = (f); } } \
}

// dx = g · df/dx (the host sums it over broadcast axes).
#define UNARY_BACKWARD(name, f, df) \
__kernel void unary_##name##_backward(AXES, __global const float* g, LAYOUT(g), __global const float* x, LAYOUT(x), \
                                      __global const float* y, LAYOUT(y), __global float* dx, LAYOUT(dx), \
                                      const float p, const float q) \
{ \
    ROW; BASE(g); BASE(x); BASE(y); BASE(dx); \
    EACH_ELEMENT { const float g_ = AT(g), x_ = AT(x), y_ = AT(y); { const float x = x_, y = y_; AT(dx) = g_ * (df); } } \
}

#define BINARY_FORWARD(name, f, da, db) \
__kernel void binary_##name(AXES, __global const float* a, LAYOUT(a), __global const float* b, LAYOUT(b), \
                            __global float* out, LAYOUT(out)) \
{ \
    ROW; BASE(a); BASE(b); BASE(out); \
    EACH_ELEMENT { const float a_ = AT(a), b_ = AT(b); { const float a = a_, b = b_; AT(out) = (f); } } \
}

#define BINARY_BACKWARD(name, f, da, db) \
__kernel void binary_##name##_backward(AXES, __global const float* g, LAYOUT(g), __global const float* a, LAYOUT(a), \
                                       __global const float* b, LAYOUT(b), __global const float* y, LAYOUT(y), \
                                       __global float* ga, LAYOUT(ga), __global float* gb, LAYOUT(gb)) \
{ \
    ROW; BASE(g); BASE(a); BASE(b); BASE(y); BASE(ga); BASE(gb); \
    EACH_ELEMENT { \
        const float g_ = AT(g), a_ = AT(a), b_ = AT(b), y_ = AT(y); \
        { const float a = a_, b = b_, y = y_; AT(ga) = g_ * (da); AT(gb) = g_ * (db); } \
    } \
}

UNARY_OPS(UNARY_FORWARD)
UNARY_OPS(UNARY_BACKWARD)
BINARY_OPS(BINARY_FORWARD)
BINARY_OPS(BINARY_BACKWARD)

// out = c != 0 ? a : b (the three broadcast to out's shape).
__kernel void choose(AXES, __global const float* c, LAYOUT(c), __global const float* a, LAYOUT(a),
                     __global const float* b, LAYOUT(b), __global float* out, LAYOUT(out))
{
    ROW; BASE(c); BASE(a); BASE(b); BASE(out);
    EACH_ELEMENT { AT(out) = AT(c) != 0.0f ? AT(a) : AT(b); }
}
