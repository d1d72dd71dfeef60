// Cache-blocked SGEMM for the CPU fallback, in the style of BLIS/GotoBLAS: B is packed into KC×NR column panels
// (kept in L2), A into MR×KC row panels (kept in L1) — or, when B is narrow, read in place — and an MR×NR
// register-blocked micro-kernel does the FMAs with SIMD vector types. The micro-kernels are compiled three times:
// AVX-512, AVX2+FMA and the baseline; the widest the CPU runs is chosen at run time.
#include "cgemm.h"
#include <stdlib.h>
#include <string.h>

#define MR 6
#define NR 16
#define KC 256
#define MC 96
#define NC 512
// Read A in place (no packing) when a block of C has at most this many column panels.
#ifndef DIRECT_MAX_PANELS
#define DIRECT_MAX_PANELS 4
#endif
// K per block for such a narrow product with A row-major (see clnn_sgemm_block); its B panels must fit the pack
// buffer (DIRECT_MAX_PANELS·NR·NARROW_KC ≤ KC·(NC + NR)) and L2 (256 KB).
#define NARROW_KC 1024
_Static_assert(DIRECT_MAX_PANELS * NR * NARROW_KC <= KC * (NC + NR), "a narrow product's B panels fit the pack");

typedef float v8f __attribute__((vector_size(32)));

// The micro-kernels: out[MR][NR] = beta·out + Σ_p A(p, r) ⊗ bp[p][0..NR), out's rows `ldc` floats apart (out is C
// itself for a whole tile, or a scratch tile). beta 0 does not read out. A(p, r) — element p of the panel's row r —
// is read from a packed panel (ap[p·MR + r]) or, unpacked, straight from A: a row-major A (ap[r·lda + p], the
// forward product x·w) or a transposed one (ap[p·lda + r], the weight gradient xᵀ·g). Packing A pays when a block of
// A meets many column panels of B; for a narrow B (a layer of 50 units: four panels) it costs more than it saves.
#define A_PACKED(p, r) ap[(p) * MR + (r)]
#define A_ROWS(p, r) ap[(r) * lda + (p)]
#define A_COLS(p, r) ap[(p) * lda + (r)]

#define MICRO_KERNEL_BODY(A_AT)                                                                    \
    v8f acc[MR][2];                                                                                \
    for (int r = 0; r < MR; r++) { acc[r][0] = (v8f){0}; acc[r][1] = (v8f){0}; }                   \
    for (int p = 0; p < kc; p++) {                                                                 \
        v8f b0, b1;                                                                                \
        memcpy(&b0, bp + p * NR, sizeof b0);                                                       \
        memcpy(&b1, bp + p * NR + 8, sizeof b1);                                                   \
        _Pragma("GCC unroll 6")                                                                    \
        for (int r = 0; r < MR; r++) {                                                             \
            const float a = A_AT(p, r);                                                            \
            acc[r][0] += a * b0;                                                                   \
            acc[r][1] += a * b1;                                                                   \
        }                                                                                          \
    }                                                                                              \
    _Pragma("GCC unroll 6")                                                                        \
    for (int r = 0; r < MR; r++) {                                                                 \
        float *o = out + r * ldc;                                                                  \
        if (beta != 0.0f) {                                                                        \
            v8f c0, c1;                                                                            \
            memcpy(&c0, o, 32);                                                                    \
            memcpy(&c1, o + 8, 32);                                                                \
            acc[r][0] += beta * c0;                                                                \
            acc[r][1] += beta * c1;                                                                \
        }                                                                                          \
        memcpy(o, &acc[r][0], 32);                                                                 \
        memcpy(o + 8, &acc[r][1], 32);                                                             \
    }

typedef float v16f __attribute__((vector_size(64)));

// The same with one vector of type V per row: V = 16 lanes (AVX-512: half the instructions of the AVX2 kernel), or
// 8 lanes for the last panel of a product whose width leaves it at most 8 columns (a layer of 50 units: 16 + 16 +
// 16 + 2; AVX2). Each lane does the same sequence of multiply-adds as in the two-vector kernel, so the same result.
#define MICRO_KERNEL_BODY_ONE(A_AT, V)                                                             \
    V acc[MR];                                                                                     \
    for (int r = 0; r < MR; r++) acc[r] = (V){0};                                                  \
    for (int p = 0; p < kc; p++) {                                                                 \
        V b;                                                                                       \
        memcpy(&b, bp + p * NR, sizeof b);                                                         \
        _Pragma("GCC unroll 6")                                                                    \
        for (int r = 0; r < MR; r++) acc[r] += A_AT(p, r) * b;                                     \
    }                                                                                              \
    _Pragma("GCC unroll 6")                                                                        \
    for (int r = 0; r < MR; r++) {                                                                 \
        float *o = out + r * ldc;                                                                  \
        if (beta != 0.0f) {                                                                        \
            V c;                                                                                   \
            memcpy(&c, o, sizeof c);                                                               \
            acc[r] += beta * c;                                                                    \
        }                                                                                          \
        memcpy(o, &acc[r], sizeof acc[r]);                                                         \
    }

#define MICRO_PARAMETERS int kc, const float *ap, ptrdiff_t lda, const float *bp, float *out, ptrdiff_t ldc, float beta
#define MICRO_KERNELS(A_AT, suffix)                                                                \
    __attribute__((target("avx2,fma"))) static void micro_avx2_##suffix(MICRO_PARAMETERS)          \
    {                                                                                              \
        (void)lda;                                                                                 \
        MICRO_KERNEL_BODY(A_AT)                                                                    \
    }                                                                                              \
    __attribute__((target("avx512f"))) static void micro_avx512_##suffix(MICRO_PARAMETERS)         \
    {                                                                                              \
        (void)lda;                                                                                 \
        MICRO_KERNEL_BODY_ONE(A_AT, v16f)                                                          \
    }                                                                                              \
    static void micro_portable_##suffix(MICRO_PARAMETERS)                                          \
    {                                                                                              \
        (void)lda;                                                                                 \
        MICRO_KERNEL_BODY(A_AT)                                                                    \
    }                                                                                              \
    __attribute__((target("avx2,fma"))) static void half_avx2_##suffix(MICRO_PARAMETERS)           \
    {                                                                                              \
        (void)lda;                                                                                 \
        MICRO_KERNEL_BODY_ONE(A_AT, v8f)                                                           \
    }

MICRO_KERNELS(A_PACKED, packed)
MICRO_KERNELS(A_ROWS, rows)
MICRO_KERNELS(A_COLS, cols)

typedef void (*micro_kernel)(MICRO_PARAMETERS);
// The full kernels for each form of A, and (AVX2 only, else NULL) their half-width column edges.
typedef struct { micro_kernel packed, rows, cols, half_packed, half_rows, half_cols; } micro_kernels;

/// The widest micro-kernels this CPU runs: AVX-512, else AVX2+FMA, else portable (checked once, at run time).
static micro_kernels pick_micro(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("avx512f"))
        return (micro_kernels){micro_avx512_packed, micro_avx512_rows, micro_avx512_cols, NULL, NULL, NULL};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return (micro_kernels){micro_avx2_packed, micro_avx2_rows, micro_avx2_cols,
                               half_avx2_packed, half_avx2_rows, half_avx2_cols};
#endif
    return (micro_kernels){micro_portable_packed, micro_portable_rows, micro_portable_cols, NULL, NULL, NULL};
}

size_t clnn_sgemm_pack_floats(void)
{
    return (size_t)KC * (NC + NR) + (size_t)KC * (MC + MR);
}

void clnn_sgemm_rows(int m, int n, int k, const float *A, ptrdiff_t a_row, ptrdiff_t a_col,
                     const float *B, ptrdiff_t b_row, ptrdiff_t b_col, float *C, float beta,
                     int row_begin, int row_end, float *pack)
{
    clnn_sgemm_block(m, n, k, A, a_row, a_col, NULL, NULL, B, b_row, b_col, C, beta, row_begin, row_end, 0, n, pack);
}

void clnn_sgemm_block(int m, int n, int k, const float *A, ptrdiff_t a_row, ptrdiff_t a_col,
                      const ptrdiff_t *a_rows_at, const ptrdiff_t *a_cols_at,
                      const float *B, ptrdiff_t b_row, ptrdiff_t b_col, float *C, float beta,
                      int row_begin, int row_end, int col_begin, int col_end, float *pack)
{
    (void)m;
    // Where row i and column p of op(A) start in A: strided, or listed (a batch's rows of a resident dataset).
#define ROW_AT(i) (a_rows_at ? a_rows_at[i] : (ptrdiff_t)(i) * a_row)
#define COL_AT(p) (a_cols_at ? a_cols_at[p] : (ptrdiff_t)(p) * a_col)
    if (row_begin >= row_end || col_begin >= col_end) return;
    const micro_kernels micro = pick_micro();
    if (k <= 0) {  // C = beta·C
        for (int i = row_begin; i < row_end; i++)
            for (int j = col_begin; j < col_end; j++)
                C[(size_t)i * n + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * n + j];
        return;
    }
    float *bpack = pack, *apack = pack + (size_t)KC * (NC + NR);
    float tile[MR * NR];
    // K in equal blocks of at most KC (784 = 4 × 196, not 3 × 256 + 16: a thin last block spends its time loading
    // and storing C). A narrow B times a row-major A read in place (the full batch's x·w, 60000×784·784×50) takes K
    // in blocks of up to NARROW_KC instead: C is then written once, not loaded and stored once per block (an A panel
    // of 6×784 stays in L1 and B's panels in L2: 54 → 69 GFLOP/s on one core). A transposed A (xᵀ·g) is read a
    // strided float at a time and wants its rows in L1: KC there (a longer block made it 22% slower). (Only A read in
    // place: a packed A panel holds KC columns.)
    // (Decided on the whole product's width, not this block's: the sums' grouping, and so their last bits, must not
    // depend on how many threads split the columns.)
    const int narrow_rows = n <= DIRECT_MAX_PANELS * NR && a_col == 1 && !a_rows_at && !a_cols_at;
    const int kmax = narrow_rows ? NARROW_KC : KC;
    const int kblocks = (k + kmax - 1) / kmax, kstep = (k + kblocks - 1) / kblocks;
    for (int jc = col_begin; jc < col_end; jc += NC) {
        const int nc = col_end - jc < NC ? col_end - jc : NC;
        // A read in place when B is narrow (see the micro-kernels) and A is row-major or transposed.
        const int unpacked = (nc + NR - 1) / NR <= DIRECT_MAX_PANELS && (a_col == 1 || a_row == 1) && !a_rows_at
                             && !a_cols_at;
        for (int pc = 0; pc < k; pc += kstep) {
            const int kc = k - pc < kstep ? k - pc : kstep;
            const float b = pc > 0 ? 1.0f : beta;  // later K blocks add to the first's
            // Pack B[pc..pc+kc, jc..jc+nc] as panels of NR columns, zero-padded on the right.
            for (int jr = 0; jr < nc; jr += NR) {
                float *dst = bpack + (size_t)jr * kc;
                const int w = nc - jr < NR ? nc - jr : NR;
                if (b_col == 1 && w == NR) {
                    for (int p = 0; p < kc; p++)  // contiguous rows of B
                        memcpy(dst + p * NR, B + (size_t)(pc + p) * b_row + jc + jr, sizeof(float) * NR);
                } else if (b_row == 1 && w == NR) {
                    // Bᵀ stored: column j of the panel is a contiguous run of kc floats.
                    for (int j = 0; j < NR; j++) {
                        const float *src = B + (size_t)(jc + jr + j) * b_col + pc;
                        for (int p = 0; p < kc; p++) dst[p * NR + j] = src[p];
                    }
                } else {
                    for (int p = 0; p < kc; p++) {
                        const float *src = B + (size_t)(pc + p) * b_row + (size_t)(jc + jr) * b_col;
                        for (int j = 0; j < NR; j++) dst[p * NR + j] = j < w ? src[(size_t)j * b_col] : 0.0f;
                    }
                }
            }
            for (int ic = row_begin; ic < row_end; ic += MC) {
                const int mc = row_end - ic < MC ? row_end - ic : MC;
                // Pack A[ic..ic+mc, pc..pc+kc] as panels of MR rows, zero-padded at the bottom (unpacked: only a
                // last panel of fewer than MR rows).
                for (int ir = 0; ir < mc; ir += MR) {
                    // (In place, only the last panel is packed, at the buffer's start: K may run to NARROW_KC.)
                    float *dst = apack + (unpacked ? 0 : (size_t)ir * kc);
                    const int h = mc - ir < MR ? mc - ir : MR;
                    if (unpacked && h == MR) continue;
                    if (a_col == 1 && !a_cols_at && h == MR) {
                        for (int r = 0; r < MR; r++) {  // row r of the panel is a contiguous run of kc floats
                            const float *src = A + ROW_AT(ic + ir + r) + pc;
                            for (int p = 0; p < kc; p++) dst[p * MR + r] = src[p];
                        }
                    } else {
                        for (int p = 0; p < kc; p++) {
                            const float *src = A + COL_AT(pc + p);
                            for (int r = 0; r < MR; r++) dst[p * MR + r] = r < h ? src[ROW_AT(ic + ir + r)] : 0.0f;
                        }
                    }
                }
                // Packed: a panel of B stays in L1 across the rows of A's block (BLIS's order). In place: a panel
                // of A stays in L1 across B's few panels.
                const int tiles = (mc + MR - 1) / MR * ((nc + NR - 1) / NR), row_tiles = (mc + MR - 1) / MR;
                for (int at = 0; at < tiles; at++) {
                    const int ir = (unpacked ? at / ((nc + NR - 1) / NR) : at % row_tiles) * MR;
                    const int jr = (unpacked ? at % ((nc + NR - 1) / NR) : at / row_tiles) * NR;
                    {
                        const int rows = mc - ir < MR ? mc - ir : MR, cols = nc - jr < NR ? nc - jr : NR;
                        // This panel of A: in place, or packed; a narrow last panel of B by the half kernel.
                        const int half = cols <= 8 && micro.half_packed != NULL;
                        micro_kernel kernel = half ? micro.half_packed : micro.packed;
                        const float *ap = apack + (unpacked ? 0 : (size_t)ir * kc);
                        ptrdiff_t lda = MR;
                        if (unpacked && rows == MR) {
                            ap = A + (size_t)(ic + ir) * a_row + (size_t)pc * a_col;
                            kernel = a_col == 1 ? (half ? micro.half_rows : micro.rows)
                                                : (half ? micro.half_cols : micro.cols);
                            lda = a_col == 1 ? a_row : a_col;
                        }
                        float *c = C + (size_t)(ic + ir) * n + jc + jr;
                        if (rows == MR && cols == NR) {  // a whole tile: straight into C
                            kernel(kc, ap, lda, bpack + (size_t)jr * kc, c, n, b);
                            continue;
                        }
                        kernel(kc, ap, lda, bpack + (size_t)jr * kc, tile, NR, 0.0f);
                        for (int r = 0; r < rows; r++) {
                            float *cr = c + (size_t)r * n;
                            const float *t = tile + r * NR;
                            if (b == 0.0f) {
                                for (int j = 0; j < cols; j++) cr[j] = t[j];
                            } else {
                                for (int j = 0; j < cols; j++) cr[j] = b * cr[j] + t[j];
                            }
                        }
                    }
                }
            }
        }
    }
}
#undef ROW_AT
#undef COL_AT
