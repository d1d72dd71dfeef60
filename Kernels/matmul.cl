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

// C = op(A)·B, B row-major [K,N]: each work-item computes RM rows × RN·VW columns. global = (⌈M/RM⌉, ⌈N/(RN·VW)⌉).
void matmul_columns(const int M, const int N, const int K,
                    __global const float* A, __global const float* B, __global float* C, const float beta,
                    const bool TRANS_A)
{
    const bool TRANS_B = false;
    const int i0 = get_global_id(0) * RM;
    const int j0 = get_global_id(1) * (RN * VW);
    if (i0 >= M || j0 >= N) return;
    if (j0 + RN * VW <= N) {
        floatV acc[RM][RN];
        for (int r = 0; r < RM; r++)
            for (int v = 0; v < RN; v++) acc[r][v] = (floatV)(0.0f);
        // Rows past M are clamped to M-1 for loading (no branch in the loop) and never stored.
        int rows[RM];
        for (int r = 0; r < RM; r++) rows[r] = min(i0 + r, M - 1);
        for (int k = 0; k < K; k++) {
            floatV b[RN];
            for (int v = 0; v < RN; v++) b[v] = vloadV(0, B + (size_t)k * N + j0 + v * VW);
            for (int r = 0; r < RM; r++) {
                const floatV a = (floatV)(A_AT(rows[r], k));
                for (int v = 0; v < RN; v++) acc[r][v] = fma(a, b[v], acc[r][v]);
            }
        }
        for (int r = 0; r < RM && i0 + r < M; r++) {
            for (int v = 0; v < RN; v++) {
                __global float* c = C + (size_t)(i0 + r) * N + j0 + v * VW;
                vstoreV(beta == 0.0f ? acc[r][v] : acc[r][v] + beta * vloadV(0, c), 0, c);
            }
        }
    } else {
        // The right edge: fewer than RN·VW columns remain.
        for (int r = 0; r < RM && i0 + r < M; r++) {
            for (int j = j0; j < N; j++) {
                float acc = 0.0f;
                for (int k = 0; k < K; k++) acc = fma(A_AT(i0 + r, k), B_AT(k, j), acc);
                const size_t c = (size_t)(i0 + r) * N + j;
                C[c] = beta == 0.0f ? acc : acc + beta * C[c];
            }
        }
    }
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

// C = A·Bᵀ with A [M,K] and B stored [N,K]: both operands are contiguous along K, so each output is a vector dot
// product. Each work-item computes DM × DN outputs. global = (⌈M/DM⌉, ⌈N/DN⌉).
__kernel void matmul_backward_input_dots(const int M, const int N, const int K, __global const float* A,
                                         __global const float* B, __global float* C, const float beta)
{
    const int i0 = get_global_id(0) * DM;
    const int j0 = get_global_id(1) * DN;
    if (i0 >= M || j0 >= N) return;
    __global const float* a[DM];
    __global const float* b[DN];
    for (int r = 0; r < DM; r++) a[r] = A + (size_t)min(i0 + r, M - 1) * K;
    for (int c = 0; c < DN; c++) b[c] = B + (size_t)min(j0 + c, N - 1) * K;
    floatV acc[DM][DN];
    for (int r = 0; r < DM; r++)
        for (int c = 0; c < DN; c++) acc[r][c] = (floatV)(0.0f);
    const int kv = K / VW * VW;
    for (int k = 0; k < kv; k += VW) {
        floatV bv[DN];
        for (int c = 0; c < DN; c++) bv[c] = vloadV(0, b[c] + k);
        for (int r = 0; r < DM; r++) {
            const floatV av = vloadV(0, a[r] + k);
            for (int c = 0; c < DN; c++) acc[r][c] = fma(av, bv[c], acc[r][c]);
        }
    }
    for (int r = 0; r < DM && i0 + r < M; r++) {
        for (int c = 0; c < DN && j0 + c < N; c++) {
            float lanes[VW];
            vstoreV(acc[r][c], 0, lanes);
            float s = 0.0f;
            for (int e = 0; e < VW; e++) s += lanes[e];
            for (int k = kv; k < K; k++) s = fma(a[r][k], b[c][k], s);
            const size_t o = (size_t)(i0 + r) * N + j0 + c;
            C[o] = beta == 0.0f ? s : s + beta * C[o];
        }
    }
}
