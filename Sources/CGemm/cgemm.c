// Cache-blocked SGEMM for the CPU fallback, in the style of BLIS/GotoBLAS: B is packed into KC×NR column panels
// (kept in L2), A into MR×KC row panels (kept in L1), and an MR×NR register-blocked micro-kernel does the FMAs with
// SIMD vector types. The micro-kernel is compiled three times: AVX-512, AVX2+FMA and the baseline; the widest the
// CPU runs is chosen at run time.
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

typedef float v16f __attribute__((vector_size(64)));

// The same with one 16-lane register per row (AVX-512: half the instructions of the AVX2 kernel).
__attribute__((target("avx512f"))) static void micro_avx512(int kc, const float *ap, const float *bp, float *out)
{
    v16f acc[MR];
    for (int r = 0; r < MR; r++) acc[r] = (v16f){0};
    for (int p = 0; p < kc; p++) {
        v16f b;
        memcpy(&b, bp + p * NR, sizeof b);
        _Pragma("GCC unroll 6")
        for (int r = 0; r < MR; r++) acc[r] += ap[p * MR + r] * b;
    }
    for (int r = 0; r < MR; r++) memcpy(out + r * NR, &acc[r], sizeof acc[r]);
}

static void micro_portable(int kc, const float *ap, const float *bp, float *out)
{
    MICRO_KERNEL_BODY
}

typedef void (*micro_kernel)(int, const float *, const float *, float *);

/// The widest micro-kernel this CPU runs: AVX-512, else AVX2+FMA, else portable (checked once, at run time).
static micro_kernel pick_micro(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("avx512f")) return micro_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return micro_avx2;
#endif
    return micro_portable;
}

size_t clnn_sgemm_pack_floats(void)
{
    return (size_t)KC * (NC + NR) + (size_t)KC * (MC + MR);
}

void clnn_sgemm_rows(int m, int n, int k, const float *A, ptrdiff_t a_row, ptrdiff_t a_col,
                     const float *B, ptrdiff_t b_row, ptrdiff_t b_col, float *C, float beta,
                     int row_begin, int row_end, float *pack)
{
    (void)m;
    if (row_begin >= row_end || n <= 0) return;
    static micro_kernel micro;
    if (!micro) micro = pick_micro();
    if (k <= 0) {  // C = beta·C
        for (int i = row_begin; i < row_end; i++)
            for (int j = 0; j < n; j++) C[(size_t)i * n + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * n + j];
        return;
    }
    float *bpack = pack, *apack = pack + (size_t)KC * (NC + NR);
    float tile[MR * NR];
    for (int jc = 0; jc < n; jc += NC) {
        const int nc = n - jc < NC ? n - jc : NC;
        for (int pc = 0; pc < k; pc += KC) {
            const int kc = k - pc < KC ? k - pc : KC;
            // Pack B[pc..pc+kc, jc..jc+nc] as panels of NR columns, zero-padded on the right.
            for (int jr = 0; jr < nc; jr += NR) {
                float *dst = bpack + (size_t)jr * kc;
                const int w = nc - jr < NR ? nc - jr : NR;
                for (int p = 0; p < kc; p++) {
                    const float *src = B + (size_t)(pc + p) * b_row + (size_t)(jc + jr) * b_col;
                    if (b_col == 1 && w == NR) {
                        memcpy(dst + p * NR, src, sizeof(float) * NR);  // a contiguous row of B
                    } else {
                        for (int j = 0; j < NR; j++) dst[p * NR + j] = j < w ? src[(size_t)j * b_col] : 0.0f;
                    }
                }
            }
            for (int ic = row_begin; ic < row_end; ic += MC) {
                const int mc = row_end - ic < MC ? row_end - ic : MC;
                // Pack A[ic..ic+mc, pc..pc+kc] as panels of MR rows, zero-padded at the bottom.
                for (int ir = 0; ir < mc; ir += MR) {
                    float *dst = apack + (size_t)ir * kc;
                    const int h = mc - ir < MR ? mc - ir : MR;
                    for (int p = 0; p < kc; p++) {
                        const float *src = A + (size_t)(ic + ir) * a_row + (size_t)(pc + p) * a_col;
                        for (int r = 0; r < MR; r++) dst[p * MR + r] = r < h ? src[(size_t)r * a_row] : 0.0f;
                    }
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
}
