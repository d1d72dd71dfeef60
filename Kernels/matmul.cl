// Matrix products for linear layers: the forward product and the two gradient products.
// All matrices are row-major fp32. In GEMM terms every kernel computes C[M,N] = op(A)·op(B) + beta·C, where
//   matmul_forward          C = A·B      A is [M,K], B is [K,N]           (y = x·w)
//   matmul_backward_input   C = A·Bᵀ     A is [M,K], B is stored [N,K]    (dx = dy·wᵀ)
//   matmul_backward_weight  C = Aᵀ·B     A is stored [K,M], B is [K,N]    (dw = xᵀ·dy)
// Transposed operands are read through index arithmetic; nothing is copied. beta is 0 (overwrite; C is not read)
// or 1 (accumulate, for gradients).
//
// Tuning knobs (-D): TS_M, TS_N tile of C per work-group; TS_K depth of a tile step; WPT_M, WPT_N outputs per
// work-item in each direction; VEC_LOADS: tiles loaded 4 floats at a time (TS_M, TS_N, TS_K multiples of 4). The work-group is (TS_N/WPT_N, TS_M/WPT_M). Edges are handled by zero-filled tile
// loads and guarded stores, so every shape is correct.
//
// Fusions for a linear layer's training step (-D; each adds kernel arguments after beta, in this order):
//   GATHER_A        A's stored rows are picked through an index list: stored row s is order[offset + s], clamped to
//                   0..<a_rows — the rows of A for A·B, the columns of Aᵀ for Aᵀ·B.
//                   The first layer reads its batch
//                   straight from the resident dataset. Arguments: order, offset, a_rows.
//   BIAS_EPILOGUE   C = A·B + beta·C + bias[j]. Argument: bias.
//   ACTIVATION_EPILOGUE (with BIAS_EPILOGUE and activation.cl's -D ACTIVATION_<NAME>, its text before this file)
//                   also Y = F(C), C keeping the pre-activation for the backward pass. Argument: Y.
//   BIAS_GRADIENT   (Aᵀ·B) db[j] = beta·db[j] + Σ_k B[k][j]: the bias gradient beside the weight gradient.
//                   Argument: db.
//
// Split K (-D K_SPLIT, the column-vector kernels, without BIAS_EPILOGUE): a long-K product (the full batch's weight
// gradient: K = 60000, M·N = 784·50) done in one pass per output block streams all of A for each block of columns
// and keeps nothing in cache. With K_SPLIT, dimension 2 of the grid cuts K into chunks of k_chunk (an argument after
// the fusion's): work-item z sums k in [z·k_chunk, (z+1)·k_chunk) and writes its partial product to C + z·M·N (and,
// with BIAS_GRADIENT, its partial column sums to db + z·N), beta 0; bias.cl's add_bias_backward adds the parts in order
// (deterministic) into the real C and db with beta.
#include "rows.cl"
#ifdef GATHER_A
#define GATHER_PARAMS , __global const float* order, const int offset, const int a_rows
#define GATHER_ARGS , order, offset, a_rows
#define A_ROW(s) stored_row(order, offset, (s), a_rows)
#else
#define GATHER_PARAMS
#define GATHER_ARGS
#define A_ROW(s) ((size_t)(s))
#endif
#ifdef BIAS_EPILOGUE
#define BIAS_PARAMS , __global const float* bias
#define BIAS_ARGS , bias
#define PLUS_BIAS(j) + bias[j]
#else
#define BIAS_PARAMS
#define BIAS_ARGS
#define PLUS_BIAS(j)
#endif
#ifdef ACTIVATION_EPILOGUE
#define Y_PARAMS , __global float* Y
#define Y_ARGS , Y
#define STORE_Y(o, v) Y[o] = F(v);
#else
#define Y_PARAMS
#define Y_ARGS
#define STORE_Y(o, v)
#endif
#ifdef BIAS_GRADIENT
#define DB_PARAMS , __global float* db
#define DB_ARGS , db
#else
#define DB_PARAMS
#define DB_ARGS
#endif
#define FUSION_PARAMS GATHER_PARAMS BIAS_PARAMS Y_PARAMS DB_PARAMS
#define FUSION_ARGS GATHER_ARGS BIAS_ARGS Y_ARGS DB_ARGS
#if defined(BIAS_EPILOGUE) || defined(ACTIVATION_EPILOGUE)
#define EPILOGUE 1
#else
#define EPILOGUE 0
#endif
#ifdef K_SPLIT
#if EPILOGUE
#error "K_SPLIT writes partial products: an epilogue belongs after they are summed"
#endif
#define SPLIT_PARAMS , const int k_chunk
#define SPLIT_ARGS , k_chunk
#else
#define SPLIT_PARAMS
#define SPLIT_ARGS
#endif
// C[o] (column j) = acc + beta·C[o], then the epilogue.
#define STORE_C(o, j, acc) { \
        const float v_ = (beta == 0.0f ? (acc) : (acc) + beta * C[o]) PLUS_BIAS(j); \
        C[o] = v_; \
        STORE_Y(o, v_) \
    }

#ifndef TS_M
#define TS_M 32
#endif
#ifndef TS_N
#define TS_N 32
#endif
#ifndef TS_K
#define TS_K 16
#endif
#ifndef WPT_M
#define WPT_M 4
#endif
#ifndef WPT_N
#define WPT_N 4
#endif
#define RTS_M (TS_M / WPT_M)
#define RTS_N (TS_N / WPT_N)

// op(A)[i,k] and op(B)[k,j] for the two storage orders (A's stored rows through the index list with GATHER_A).
#define A_AT(i, k) (TRANS_A ? A[A_ROW(k) * M + (i)] : A[A_ROW(i) * K + (k)])
#define B_AT(k, j) (TRANS_B ? B[(size_t)(j) * K + (k)] : B[(size_t)(k) * N + (j)])
#define NAIVE_A_AT(i, k) (TRANS_A ? A[(size_t)(k) * M + (i)] : A[(size_t)(i) * K + (k)])

// The readable reference: one work-item per output, any transposition. global = (N, M).
__kernel void matmul_naive(const int M, const int N, const int K,
                           __global const float* A, __global const float* B, __global float* C,
                           const int TRANS_A, const int TRANS_B, const float beta)
{
    const int j = get_global_id(0);
    const int i = get_global_id(1);
    if (i >= M || j >= N) return;
    float acc = 0.0f;
    for (int k = 0; k < K; k++) acc += NAIVE_A_AT(i, k) * B_AT(k, j);
    const size_t c = (size_t)i * N + j;
    C[c] = beta == 0.0f ? acc : acc + beta * C[c];
}

// Register-blocked, local-memory tiled product. TRANS_A/TRANS_B are compile-time constants at every call site,
// so the compiler specialises the loads of each kernel below.
void matmul_tiled(const int M, const int N, const int K,
                  __global const float* A, __global const float* B, __global float* C, const float beta,
                  const bool TRANS_A, const bool TRANS_B,
                  __local float* Asub, __local float* Bsub FUSION_PARAMS)
{
    const int tn = get_local_id(0);
    const int tm = get_local_id(1);
    const int tid = tm * RTS_N + tn;
    const int nthreads = RTS_M * RTS_N;
    const int offM = get_group_id(1) * TS_M;
    const int offN = get_group_id(0) * TS_N;

    float acc[WPT_M][WPT_N];
    for (int wm = 0; wm < WPT_M; wm++)
        for (int wn = 0; wn < WPT_N; wn++) acc[wm][wn] = 0.0f;
#ifdef BIAS_GRADIENT
    // The first row of work-items of the first row of groups also sums B's columns (all of K passes through it).
    const bool sums = offM == 0 && tm == 0;
    float bsum[WPT_N];
    for (int wn = 0; wn < WPT_N; wn++) bsum[wn] = 0.0f;
#endif

    for (int k0 = 0; k0 < K; k0 += TS_K) {
#ifdef VEC_LOADS
        // Vector loads: each work-item reads 4 floats along the stored matrix's contiguous direction (vload4 needs
        // only a float's alignment); a vector that crosses an edge is read float by float, zero past it.
        for (int l = tid; l < TS_K * TS_M / 4; l += nthreads) {
            const int kk = TRANS_A ? l / (TS_M / 4) : (l % (TS_K / 4)) * 4;
            const int mm = TRANS_A ? (l % (TS_M / 4)) * 4 : l / (TS_K / 4);
            const int gi = offM + mm, gk = k0 + kk;
            if (TRANS_A ? (gk < K && gi + 3 < M) : (gi < M && gk + 3 < K)) {
                const float4 v = TRANS_A ? vload4(0, A + A_ROW(gk) * M + gi) : vload4(0, A + A_ROW(gi) * K + gk);
                const float e[4] = {v.s0, v.s1, v.s2, v.s3};
                for (int q = 0; q < 4; q++) Asub[TRANS_A ? kk * TS_M + mm + q : (kk + q) * TS_M + mm] = e[q];
            } else {
                for (int q = 0; q < 4; q++) {
                    const int i = TRANS_A ? gi + q : gi, k = TRANS_A ? gk : gk + q;
                    Asub[TRANS_A ? kk * TS_M + mm + q : (kk + q) * TS_M + mm] = (i < M && k < K) ? A_AT(i, k) : 0.0f;
                }
            }
        }
        for (int l = tid; l < TS_K * TS_N / 4; l += nthreads) {
            const int kk = TRANS_B ? (l % (TS_K / 4)) * 4 : l / (TS_N / 4);
            const int nn = TRANS_B ? l / (TS_K / 4) : (l % (TS_N / 4)) * 4;
            const int gj = offN + nn, gk = k0 + kk;
            if (TRANS_B ? (gj < N && gk + 3 < K) : (gk < K && gj + 3 < N)) {
                const float4 v = TRANS_B ? vload4(0, B + (size_t)gj * K + gk) : vload4(0, B + (size_t)gk * N + gj);
                const float e[4] = {v.s0, v.s1, v.s2, v.s3};
                for (int q = 0; q < 4; q++) Bsub[TRANS_B ? (kk + q) * TS_N + nn : kk * TS_N + nn + q] = e[q];
            } else {
                for (int q = 0; q < 4; q++) {
                    const int j = TRANS_B ? gj : gj + q, k = TRANS_B ? gk + q : gk;
                    Bsub[TRANS_B ? (kk + q) * TS_N + nn : kk * TS_N + nn + q] = (j < N && k < K) ? B_AT(k, j) : 0.0f;
                }
            }
        }
#else
        // Load the A tile [TS_K][TS_M], walking the stored matrix's contiguous direction.
        for (int l = tid; l < TS_K * TS_M; l += nthreads) {
            const int kk = TRANS_A ? l / TS_M : l % TS_K;
            const int mm = TRANS_A ? l % TS_M : l / TS_K;
            const int gi = offM + mm, gk = k0 + kk;
            Asub[kk * TS_M + mm] = (gi < M && gk < K) ? A_AT(gi, gk) : 0.0f;
        }
        // Load the B tile [TS_K][TS_N].
        for (int l = tid; l < TS_K * TS_N; l += nthreads) {
            const int kk = TRANS_B ? l % TS_K : l / TS_N;
            const int nn = TRANS_B ? l / TS_K : l % TS_N;
            const int gj = offN + nn, gk = k0 + kk;
            Bsub[kk * TS_N + nn] = (gj < N && gk < K) ? B_AT(gk, gj) : 0.0f;
        }
#endif
        barrier(CLK_LOCAL_MEM_FENCE);

        for (int kk = 0; kk < TS_K; kk++) {
            float breg[WPT_N];
            for (int wn = 0; wn < WPT_N; wn++) breg[wn] = Bsub[kk * TS_N + tn + wn * RTS_N];
#ifdef BIAS_GRADIENT
            if (sums)
                for (int wn = 0; wn < WPT_N; wn++) bsum[wn] += breg[wn];
#endif
            for (int wm = 0; wm < WPT_M; wm++) {
                const float a = Asub[kk * TS_M + tm + wm * RTS_M];
                for (int wn = 0; wn < WPT_N; wn++) acc[wm][wn] = fma(a, breg[wn], acc[wm][wn]);
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    for (int wm = 0; wm < WPT_M; wm++) {
        const int i = offM + tm + wm * RTS_M;
        if (i >= M) continue;
        for (int wn = 0; wn < WPT_N; wn++) {
            const int j = offN + tn + wn * RTS_N;
            if (j >= N) continue;
            const size_t c = (size_t)i * N + j;
            STORE_C(c, j, acc[wm][wn])
        }
    }
#ifdef BIAS_GRADIENT
    if (sums) {
        for (int wn = 0; wn < WPT_N; wn++) {
            const int j = offN + tn + wn * RTS_N;
            if (j < N) db[j] = beta == 0.0f ? bsum[wn] : bsum[wn] + beta * db[j];
        }
    }
#endif
}

__kernel __attribute__((reqd_work_group_size(RTS_N, RTS_M, 1)))
void matmul_forward(const int M, const int N, const int K,
                    __global const float* A, __global const float* B, __global float* C, const float beta
                    FUSION_PARAMS)
{
    __local float Asub[TS_K * TS_M];
    __local float Bsub[TS_K * TS_N];
    matmul_tiled(M, N, K, A, B, C, beta, false, false, Asub, Bsub FUSION_ARGS);
}

__kernel __attribute__((reqd_work_group_size(RTS_N, RTS_M, 1)))
void matmul_backward_input(const int M, const int N, const int K,
                           __global const float* A, __global const float* B, __global float* C, const float beta
                    FUSION_PARAMS)
{
    __local float Asub[TS_K * TS_M];
    __local float Bsub[TS_K * TS_N];
    matmul_tiled(M, N, K, A, B, C, beta, false, true, Asub, Bsub FUSION_ARGS);
}

__kernel __attribute__((reqd_work_group_size(RTS_N, RTS_M, 1)))
void matmul_backward_weight(const int M, const int N, const int K,
                            __global const float* A, __global const float* B, __global float* C, const float beta
                    FUSION_PARAMS)
{
    __local float Asub[TS_K * TS_M];
    __local float Bsub[TS_K * TS_N];
    matmul_tiled(M, N, K, A, B, C, beta, true, false, Asub, Bsub FUSION_ARGS);
}

// ---------------------------------------------------------------------------------------------------------------
// Register-blocked vector kernels, without local memory: each work-item keeps a block of C in vector registers.
// They suit CPU devices (POCL, rusticl/llvmpipe), where a work-item loop is cheap and caches replace local memory.
// Knobs (-D): VW vector width (4, 8 or 16); RM rows × RN vectors of C per work-item for the column-vector kernels;
// DM × DN outputs per work-item for the dot-product kernel.

#ifndef VW
#define VW 8
#endif
#ifndef RM
#define RM 6
#endif
#ifndef RN
#define RN 2
#endif
#ifndef DM
#define DM 3
#endif
#ifndef DN
#define DN 4
#endif
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define floatV CAT(float, VW)
#define vloadV CAT(vload, VW)
#define vstoreV CAT(vstore, VW)

// Compile-time unrolling, so each block of C lives in named vector registers rather than a private array (which
// CPU compilers may leave in memory). ROWS(X) expands X(0)..X(RM-1); VECS(X, r) expands X(r,0)..X(r,RN-1).
#define R_0(X) X(0)
#if RM > 1
#define R_1(X) X(1)
#else
#define R_1(X)
#endif
#if RM > 2
#define R_2(X) X(2)
#else
#define R_2(X)
#endif
#if RM > 3
#define R_3(X) X(3)
#else
#define R_3(X)
#endif
#if RM > 4
#define R_4(X) X(4)
#else
#define R_4(X)
#endif
#if RM > 5
#define R_5(X) X(5)
#else
#define R_5(X)
#endif
#if RM > 6
#define R_6(X) X(6)
#else
#define R_6(X)
#endif
#if RM > 7
#define R_7(X) X(7)
#else
#define R_7(X)
#endif
#define ROWS(X) R_0(X) R_1(X) R_2(X) R_3(X) R_4(X) R_5(X) R_6(X) R_7(X)
#define V_0(X, r) X(r, 0)
#if RN > 1
#define V_1(X, r) X(r, 1)
#else
#define V_1(X, r)
#endif
#if RN > 2
#define V_2(X, r) X(r, 2)
#else
#define V_2(X, r)
#endif
#if RN > 3
#define V_3(X, r) X(r, 3)
#else
#define V_3(X, r)
#endif
#define VECS(X, r) V_0(X, r) V_1(X, r) V_2(X, r) V_3(X, r)

// VW floats from p, of which only the first `valid` exist (the rest read as 0).
floatV load_columns(__global const float* p, const int valid)
{
    if (valid >= VW) return vloadV(0, p);
    float lanes[VW];
    for (int e = 0; e < VW; e++) lanes[e] = e < valid ? p[e] : 0.0f;
    return vloadV(0, lanes);
}

// Writes the first `valid` lanes of v to C at offset o, column j (accumulating with beta), through the epilogue.
void store_columns(__global float* C, const size_t o, const int j, const int valid, const floatV v, const float beta
                   FUSION_PARAMS)
{
    if (!EPILOGUE && valid >= VW) {
        vstoreV(beta == 0.0f ? v : v + beta * vloadV(0, C + o), 0, C + o);
        return;
    }
    float lanes[VW];
    vstoreV(v, 0, lanes);
    for (int e = 0; e < min(valid, VW); e++) STORE_C(o + e, j + e, lanes[e])
}

// db[j..j+valid) = beta·db + the lanes of s (the bias gradient's column sums).
void store_sums(__global float* db, const int valid, const floatV s, const float beta)
{
    float lanes[VW];
    vstoreV(s, 0, lanes);
    for (int e = 0; e < min(valid, VW); e++) db[e] = beta == 0.0f ? lanes[e] : lanes[e] + beta * db[e];
}

#define COL_DECL(r, v) floatV c##r##_##v = (floatV)(0.0f);
#define COL_DECL_ROW(r) VECS(COL_DECL, r) const int row##r = min(i0 + r, M - 1);
#define COL_LOAD_B(r, v) const floatV b##v = load_columns(B + (size_t)k * N + j0 + v * VW, N - j0 - v * VW);
#define COL_FMA(r, v) c##r##_##v = fma(a##r, b##v, c##r##_##v);
#define COL_FMA_ROW(r) const floatV a##r = (floatV)(A_AT(row##r, k)); VECS(COL_FMA, r)
#define COL_STORE(r, v) store_columns(C, (size_t)(i0 + r) * N + j0 + v * VW, j0 + v * VW, N - j0 - v * VW, c##r##_##v, \
                                      beta FUSION_ARGS);
#define COL_STORE_ROW(r) if (i0 + r < M) { VECS(COL_STORE, r) }
#define COL_SUM_DECL(r, v) floatV s##v = (floatV)(0.0f);
#define COL_SUM(r, v) s##v += b##v;
#define COL_SUM_STORE(r, v) store_sums(db + j0 + v * VW, N - j0 - v * VW, s##v, beta);

// C = op(A)·B, B row-major [K,N]: each work-item computes RM rows × RN·VW columns.
// global = (⌈M/RM⌉, ⌈N/(RN·VW)⌉), or (⌈N/(RN·VW)⌉, ⌈M/RM⌉) with -D COLUMNS_FIRST: a CPU driver runs neighbouring
// work-items one after the other, so the blocks of one row band share A's rows in cache (what pays when N is a few
// blocks wide and A is large: 60000x50x784). With K_SPLIT, dimension 2 is the chunk of K.
// Rows past M are clamped to M-1 for loading (no branch in the loop) and never stored; columns past N read as 0.
void matmul_columns(const int M, const int N, const int K,
                    __global const float* A, __global const float* B, __global float* C, const float beta,
                    const bool TRANS_A FUSION_PARAMS SPLIT_PARAMS)
{
    const bool TRANS_B = false;
#ifdef COLUMNS_FIRST
    const int i0 = get_global_id(1) * RM;
    const int j0 = get_global_id(0) * (RN * VW);
#else
    const int i0 = get_global_id(0) * RM;
    const int j0 = get_global_id(1) * (RN * VW);
#endif
    if (i0 >= M || j0 >= N) return;
#ifdef K_SPLIT
    const int k_begin = get_global_id(2) * k_chunk, k_end = min(K, k_begin + k_chunk);
    C += (size_t)get_global_id(2) * M * N;
#ifdef BIAS_GRADIENT
    db += (size_t)get_global_id(2) * N;
#endif
#else
    const int k_begin = 0, k_end = K;
#endif
    ROWS(COL_DECL_ROW)
#ifdef BIAS_GRADIENT
    // The first row block also sums B's columns: the bias gradient, from the loads it makes anyway.
    if (i0 == 0) {
        VECS(COL_SUM_DECL, 0)
        for (int k = k_begin; k < k_end; k++) {
            VECS(COL_LOAD_B, 0)
            VECS(COL_SUM, 0)
            ROWS(COL_FMA_ROW)
        }
        ROWS(COL_STORE_ROW)
        VECS(COL_SUM_STORE, 0)
        return;
    }
#endif
    for (int k = k_begin; k < k_end; k++) {
        VECS(COL_LOAD_B, 0)
        ROWS(COL_FMA_ROW)
    }
    ROWS(COL_STORE_ROW)
}

// (Also A·Bᵀ: the launcher transposes B into a scratch [K,N] first, matmul_transpose, when the tuner picks a
// column-vector kernel for it — a short K (the input gradient's 50) makes the dot-product kernel's per-output
// horizontal sums cost more than the multiply-adds.)
__kernel void matmul_forward_columns(const int M, const int N, const int K, __global const float* A,
                                     __global const float* B, __global float* C, const float beta FUSION_PARAMS
                                     SPLIT_PARAMS)
{
    matmul_columns(M, N, K, A, B, C, beta, false FUSION_ARGS SPLIT_ARGS);
}

__kernel void matmul_backward_weight_columns(const int M, const int N, const int K, __global const float* A,
                                             __global const float* B, __global float* C, const float beta
                                             FUSION_PARAMS SPLIT_PARAMS)
{
    matmul_columns(M, N, K, A, B, C, beta, true FUSION_ARGS SPLIT_ARGS);
}

// dst [cols, rows] = srcᵀ, src [rows, cols]. global = (rows, cols): neighbouring work-items (a CPU driver's vector
// lanes) write neighbouring floats and read a column.
__kernel void matmul_transpose(const int rows, const int cols, __global const float* src, __global float* dst)
{
    const int r = get_global_id(0), c = get_global_id(1);
    if (c < cols && r < rows) dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
}

// One ladder per bound: DOT_ROWS_(X, a) expands X(r, a) for every r < DM, DOT_COLS_(X, a) expands X(a, c) for
// every c < DN (DM, DN ≤ 4). The three forms the kernel uses are built from them.
#if DM > 1
#define DR1(X, a) X(1, a)
#else
#define DR1(X, a)
#endif
#if DM > 2
#define DR2(X, a) X(2, a)
#else
#define DR2(X, a)
#endif
#if DM > 3
#define DR3(X, a) X(3, a)
#else
#define DR3(X, a)
#endif
#if DN > 1
#define DC1(X, a) X(a, 1)
#else
#define DC1(X, a)
#endif
#if DN > 2
#define DC2(X, a) X(a, 2)
#else
#define DC2(X, a)
#endif
#if DN > 3
#define DC3(X, a) X(a, 3)
#else
#define DC3(X, a)
#endif
#define DOT_ROWS_(X, a) X(0, a) DR1(X, a) DR2(X, a) DR3(X, a)
#define DOT_COLS_(X, a) X(a, 0) DC1(X, a) DC2(X, a) DC3(X, a)
#define DOT_CALL_ROW(r, X) X(r)
#define DOT_CALL_COL(X, c) X(c)
#define DOT_ROW_COLS(r, X) DOT_COLS_(X, r)
// DOT_ROWS(X): X(r) for r < DM. DOT_COLS(X): X(c) for c < DN. DOTS(X): X(r, c) for both.
#define DOT_ROWS(X) DOT_ROWS_(DOT_CALL_ROW, X)
#define DOT_COLS(X) DOT_COLS_(DOT_CALL_COL, X)
#define DOTS(X) DOT_ROWS_(DOT_ROW_COLS, X)

#define DOT_PTR_A(r) __global const float* a##r = A + A_ROW(min(i0 + r, M - 1)) * K;
#define DOT_PTR_B(c) __global const float* b##c = B + (size_t)min(j0 + c, N - 1) * K;
#define DOT_DECL(r, c) floatV d##r##_##c = (floatV)(0.0f);
#define DOT_LOAD_B(c) const floatV bv##c = vloadV(0, b##c + k);
#define DOT_LOAD_A(r) const floatV av##r = vloadV(0, a##r + k);
#define DOT_FMA(r, c) d##r##_##c = fma(av##r, bv##c, d##r##_##c);
#define DOT_STORE(r, c) if (i0 + r < M && j0 + c < N) { \
        float lanes[VW]; \
        vstoreV(d##r##_##c, 0, lanes); \
        float s = 0.0f; \
        for (int e = 0; e < VW; e++) s += lanes[e]; \
        for (int k = kv; k < K; k++) s = fma(a##r[k], b##c[k], s); \
        const size_t o = (size_t)(i0 + r) * N + j0 + c; \
        STORE_C(o, j0 + c, s) \
    }

// C = A·Bᵀ with A [M,K] and B stored [N,K]: both operands are contiguous along K, so each output is a vector dot
// product. Each work-item computes DM × DN outputs; rows and columns past the edge are clamped for loading and
// never stored. global = (⌈M/DM⌉, ⌈N/DN⌉).
__kernel void matmul_backward_input_dots(const int M, const int N, const int K, __global const float* A,
                                         __global const float* B, __global float* C, const float beta FUSION_PARAMS)
{
    const int i0 = get_global_id(0) * DM;
    const int j0 = get_global_id(1) * DN;
    if (i0 >= M || j0 >= N) return;
    DOT_ROWS(DOT_PTR_A)
    DOT_COLS(DOT_PTR_B)
    DOTS(DOT_DECL)
    const int kv = K / VW * VW;
    for (int k = 0; k < kv; k += VW) {
        DOT_COLS(DOT_LOAD_B)
        DOT_ROWS(DOT_LOAD_A)
        DOTS(DOT_FMA)
    }
    DOTS(DOT_STORE)
}
