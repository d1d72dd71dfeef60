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
