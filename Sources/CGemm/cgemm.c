// Cache-blocked SGEMM for the CPU fallback, in the style of BLIS/GotoBLAS: B is packed into KC×NR column panels
// (kept in L2), A into MR×KC row panels (kept in L1), and an MR×NR register-blocked micro-kernel does the FMAs with
// SIMD vector types. The micro-kernel is compiled twice: for AVX2+FMA, chosen at run time, and for the baseline.
#include "cgemm.h"
#include <stdlib.h>
#include <string.h>

#define MR 6
#define NR 16
#define KC 256
#define MC 96
#define NC 512

typedef float v8f __attribute__((vector_size(32)));

#define MICRO_KERNEL_BODY                                                                          \
    v8f acc[MR][2];                                                                                \
    for (int r = 0; r < MR; r++) { acc[r][0] = (v8f){0}; acc[r][1] = (v8f){0}; }                   \
    for (int p = 0; p < kc; p++) {                                                                 \
        v8f b0, b1;                                                                                \
        memcpy(&b0, bp + p * NR, sizeof b0);                                                       \
        memcpy(&b1, bp + p * NR + 8, sizeof b1);                                                   \
        _Pragma("GCC unroll 6")                                                                    \
        for (int r = 0; r < MR; r++) {                                                             \
            const float a = ap[p * MR + r];                                                        \
            acc[r][0] += a * b0;                                                                   \
            acc[r][1] += a * b1;                                                                   \
        }                                                                                          \
    }                                                                                              \
    for (int r = 0; r < MR; r++) { memcpy(out + r * NR, &acc[r][0], 32); memcpy(out + r * NR + 8, &acc[r][1], 32); }

// out[MR][NR] = Σ_p ap[p][0..MR) ⊗ bp[p][0..NR)
__attribute__((target("avx2,fma"))) static void micro_avx2(int kc, const float *ap, const float *bp, float *out)
{
    MICRO_KERNEL_BODY
}

static void micro_portable(int kc, const float *ap, const float *bp, float *out)
{
    MICRO_KERNEL_BODY
}

static int has_avx2(void)
{
#if defined(__x86_64__) || defined(__i386__)
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return cached;
#else
    return 0;
#endif
}

void clnn_sgemm_rows(int m, int n, int k, const float *A, ptrdiff_t a_row, ptrdiff_t a_col,
                     const float *B, ptrdiff_t b_row, ptrdiff_t b_col, float *C, float beta,
                     int row_begin, int row_end)
{
    (void)m;
    if (row_begin >= row_end || n <= 0) return;
    void (*micro)(int, const float *, const float *, float *) = has_avx2() ? micro_avx2 : micro_portable;
    if (k <= 0) {  // C = beta·C
        for (int i = row_begin; i < row_end; i++)
            for (int j = 0; j < n; j++) C[(size_t)i * n + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * n + j];
        return;
    }
    float *bpack = aligned_alloc(64, sizeof(float) * KC * (NC + NR));
    float *apack = aligned_alloc(64, sizeof(float) * KC * (MC + MR));
    float tile[MR * NR];
    for (int jc = 0; jc < n; jc += NC) {
        const int nc = n - jc < NC ? n - jc : NC;
        for (int pc = 0; pc < k; pc += KC) {
            const int kc = k - pc < KC ? k - pc : KC;
            // Pack B[pc..pc+kc, jc..jc+nc] as panels of NR columns, zero-padded on the right.
            for (int jr = 0; jr < nc; jr += NR) {
                float *dst = bpack + (size_t)jr * kc;
                for (int p = 0; p < kc; p++)
                    for (int j = 0; j < NR; j++)
                        dst[p * NR + j] = jr + j < nc ? B[(size_t)(pc + p) * b_row + (size_t)(jc + jr + j) * b_col] : 0.0f;
            }
            for (int ic = row_begin; ic < row_end; ic += MC) {
                const int mc = row_end - ic < MC ? row_end - ic : MC;
                // Pack A[ic..ic+mc, pc..pc+kc] as panels of MR rows, zero-padded at the bottom.
                for (int ir = 0; ir < mc; ir += MR) {
                    float *dst = apack + (size_t)ir * kc;
                    for (int p = 0; p < kc; p++)
                        for (int r = 0; r < MR; r++)
                            dst[p * MR + r] = ir + r < mc ? A[(size_t)(ic + ir + r) * a_row + (size_t)(pc + p) * a_col] : 0.0f;
                }
                for (int jr = 0; jr < nc; jr += NR) {
                    for (int ir = 0; ir < mc; ir += MR) {
                        micro(kc, apack + (size_t)ir * kc, bpack + (size_t)jr * kc, tile);
                        const int rows = mc - ir < MR ? mc - ir : MR, cols = nc - jr < NR ? nc - jr : NR;
                        for (int r = 0; r < rows; r++) {
                            float *c = C + (size_t)(ic + ir + r) * n + jc + jr;
                            const float *t = tile + r * NR;
                            if (pc > 0) {
                                for (int j = 0; j < cols; j++) c[j] += t[j];
                            } else if (beta == 0.0f) {
                                for (int j = 0; j < cols; j++) c[j] = t[j];
                            } else {
                                for (int j = 0; j < cols; j++) c[j] = beta * c[j] + t[j];
                            }
                        }
                    }
                }
            }
        }
    }
    free(bpack);
    free(apack);
}
