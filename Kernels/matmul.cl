// Matrix products for linear layers: the forward product and the two gradient products.
// All matrices are row-major fp32. In GEMM terms every kernel computes C[M,N] = op(A)·op(B) + beta·C, where
//   matmul_forward          C = A·B      A is [M,K], B is [K,N]           (y = x·w)
//   matmul_backward_input   C = A·Bᵀ     A is [M,K], B is stored [N,K]    (dx = dy·wᵀ)
//   matmul_backward_weight  C = Aᵀ·B     A is stored [K,M], B is [K,N]    (dw = xᵀ·dy)
// Transposed operands are read through index arithmetic; nothing is copied. beta is 0 (overwrite; C is not read)
// or 1 (accumulate, for gradients).
//
// Tuning knobs (-D): TS_M, TS_N tile of C per work-group; TS_K depth of a tile step; WPT_M, WPT_N outputs per
// work-item in each direction. The work-group is (TS_N/WPT_N, TS_M/WPT_M). Edges are handled by zero-filled tile
// loads and guarded stores, so every shape is correct.

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

// op(A)[i,k] and op(B)[k,j] for the two storage orders.
#define A_AT(i, k) (TRANS_A ? A[(size_t)(k) * M + (i)] : A[(size_t)(i) * K + (k)])
#define B_AT(k, j) (TRANS_B ? B[(size_t)(j) * K + (k)] : B[(size_t)(k) * N + (j)])

// The readable reference: one work-item per output, any transposition. global = (N, M).
__kernel void matmul_naive(const int M, const int N, const int K,
                           __global const float* A, __global const float* B, __global float* C,
                           const int TRANS_A, const int TRANS_B, const float beta)
{
    const int j = get_global_id(0);
    const int i = get_global_id(1);
    if (i >= M || j >= N) return;
    float acc = 0.0f;
    for (int k = 0; k < K; k++) acc += A_AT(i, k) * B_AT(k, j);
    const size_t c = (size_t)i * N + j;
    C[c] = beta == 0.0f ? acc : acc + beta * C[c];
}

// Register-blocked, local-memory tiled product. TRANS_A/TRANS_B are compile-time constants at every call site,
// so the compiler specialises the loads of each kernel below.
void matmul_tiled(const int M, const int N, const int K,
                  __global const float* A, __global const float* B, __global float* C, const float beta,
                  const bool TRANS_A, const bool TRANS_B,
                  __local float* Asub, __local float* Bsub)
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

    for (int k0 = 0; k0 < K; k0 += TS_K) {
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
        barrier(CLK_LOCAL_MEM_FENCE);

        for (int kk = 0; kk < TS_K; kk++) {
            float breg[WPT_N];
            for (int wn = 0; wn < WPT_N; wn++) breg[wn] = Bsub[kk * TS_N + tn + wn * RTS_N];
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
            C[c] = beta == 0.0f ? acc[wm][wn] : acc[wm][wn] + beta * C[c];
        }
    }
}

__kernel __attribute__((reqd_work_group_size(RTS_N, RTS_M, 1)))
void matmul_forward(const int M, const int N, const int K,
                    __global const float* A, __global const float* B, __global float* C, const float beta)
{
    __local float Asub[TS_K * TS_M];
    __local float Bsub[TS_K * TS_N];
    matmul_tiled(M, N, K, A, B, C, beta, false, false, Asub, Bsub);
}

__kernel __attribute__((reqd_work_group_size(RTS_N, RTS_M, 1)))
void matmul_backward_input(const int M, const int N, const int K,
                           __global const float* A, __global const float* B, __global float* C, const float beta)
{
    __local float Asub[TS_K * TS_M];
    __local float Bsub[TS_K * TS_N];
    matmul_tiled(M, N, K, A, B, C, beta, false, true, Asub, Bsub);
}

__kernel __attribute__((reqd_work_group_size(RTS_N, RTS_M, 1)))
void matmul_backward_weight(const int M, const int N, const int K,
                            __global const float* A, __global const float* B, __global float* C, const float beta)
{
    __local float Asub[TS_K * TS_M];
    __local float Bsub[TS_K * TS_N];
    matmul_tiled(M, N, K, A, B, C, beta, true, false, Asub, Bsub);
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

// Writes the first `valid` lanes of v to p (accumulating with beta).
void store_columns(__global float* p, const int valid, const floatV v, const float beta)
{
    if (valid >= VW) {
        vstoreV(beta == 0.0f ? v : v + beta * vloadV(0, p), 0, p);
        return;
    }
    float lanes[VW];
    vstoreV(v, 0, lanes);
    for (int e = 0; e < valid; e++) p[e] = beta == 0.0f ? lanes[e] : lanes[e] + beta * p[e];
}

#define COL_DECL(r, v) floatV c##r##_##v = (floatV)(0.0f);
#define COL_DECL_ROW(r) VECS(COL_DECL, r) const int row##r = min(i0 + r, M - 1);
#define COL_LOAD_B(r, v) const floatV b##v = load_columns(B + (size_t)k * N + j0 + v * VW, N - j0 - v * VW);
#define COL_FMA(r, v) c##r##_##v = fma(a##r, b##v, c##r##_##v);
#define COL_FMA_ROW(r) const floatV a##r = (floatV)(A_AT(row##r, k)); VECS(COL_FMA, r)
#define COL_STORE(r, v) store_columns(C + (size_t)(i0 + r) * N + j0 + v * VW, N - j0 - v * VW, c##r##_##v, beta);
#define COL_STORE_ROW(r) if (i0 + r < M) { VECS(COL_STORE, r) }

// C = op(A)·B, B row-major [K,N]: each work-item computes RM rows × RN·VW columns. global = (⌈M/RM⌉, ⌈N/(RN·VW)⌉).
// Rows past M are clamped to M-1 for loading (no branch in the loop) and never stored; columns past N read as 0.
void matmul_columns(const int M, const int N, const int K,
                    __global const float* A, __global const float* B, __global float* C, const float beta,
                    const bool TRANS_A)
{
    const bool TRANS_B = false;
    const int i0 = get_global_id(0) * RM;
    const int j0 = get_global_id(1) * (RN * VW);
    if (i0 >= M || j0 >= N) return;
    ROWS(COL_DECL_ROW)
    for (int k = 0; k < K; k++) {
        VECS(COL_LOAD_B, 0)
        ROWS(COL_FMA_ROW)
    }
    ROWS(COL_STORE_ROW)
}

__kernel void matmul_forward_columns(const int M, const int N, const int K, __global const float* A,
                                     __global const float* B, __global float* C, const float beta)
{
    matmul_columns(M, N, K, A, B, C, beta, false);
}

__kernel void matmul_backward_weight_columns(const int M, const int N, const int K, __global const float* A,
                                             __global const float* B, __global float* C, const float beta)
{
    matmul_columns(M, N, K, A, B, C, beta, true);
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

#define DOT_PTR_A(r) __global const float* a##r = A + (size_t)min(i0 + r, M - 1) * K;
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
        C[o] = beta == 0.0f ? s : s + beta * C[o]; \
    }

// C = A·Bᵀ with A [M,K] and B stored [N,K]: both operands are contiguous along K, so each output is a vector dot
// product. Each work-item computes DM × DN outputs; rows and columns past the edge are clamped for loading and
// never stored. global = (⌈M/DM⌉, ⌈N/DN⌉).
__kernel void matmul_backward_input_dots(const int M, const int N, const int K, __global const float* A,
                                         __global const float* B, __global float* C, const float beta)
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
