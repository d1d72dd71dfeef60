// The small-product path of the CPU fallback: batch-sized products (a training step's 64×784·784×50) spend more time
// packing than multiplying in the cache-blocked path, so here B is read in place, row by row, and A's rows may be
// picked through an index list (the batch's rows of the resident dataset: no gather copy). One thread; no packing.
// An MR-row × NV-vector block of C stays in registers over the whole K loop; column edges use masked loads and
// stores (AVX-512, AVX2) or a zero-padded copy of the edge (portable).
#include "cgemm.h"
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#define SMALL_MR 6
#define SMALL_MAX_K CLNN_SGEMM_SMALL_MAX_K

typedef struct {
    int n, k;
    const float *A;
    const ptrdiff_t *koff;  // op(A)[i][p] = A[roff[i] + koff[p]]
    const float *B;
    ptrdiff_t b_row;
    float *C;
    float beta;
} small_problem;

static inline float finish(float acc, const float *c, float beta)
{
    return beta == 0.0f ? acc : acc + beta * *c;
}

#if defined(__x86_64__) || defined(__i386__)
// C[rows][j0 .. j0+16·NV) of the block whose A rows start at roff[0..MR); rows ≥ `rows` are computed from a clamped
// row and not stored. `last` masks the last vector's columns.
__attribute__((always_inline, target("avx512f"))) static inline void
block_avx512(const int NV, const small_problem *p, const ptrdiff_t *roff, int i0, int rows, int j0, __mmask16 last)
{
    __m512 acc[SMALL_MR][4];
    for (int r = 0; r < SMALL_MR; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    for (int q = 0; q < p->k; q++) {
        const float *brow = p->B + (size_t)q * p->b_row + j0;
        __m512 b[4];
        for (int v = 0; v < NV; v++)
            b[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(last, brow + 16 * v) : _mm512_loadu_ps(brow + 16 * v);
        const float *a = p->A + p->koff[q];
        for (int r = 0; r < SMALL_MR; r++) {
            const __m512 ar = _mm512_set1_ps(a[roff[r]]);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(ar, b[v], acc[r][v]);
        }
    }
    for (int r = 0; r < rows; r++) {
        float *c = p->C + (size_t)(i0 + r) * p->n + j0;
        for (int v = 0; v < NV; v++) {
            const __mmask16 mask = v == NV - 1 ? last : (__mmask16)0xFFFF;
            __m512 out = acc[r][v];
            if (p->beta != 0.0f)
                out = _mm512_fmadd_ps(_mm512_set1_ps(p->beta), _mm512_maskz_loadu_ps(mask, c + 16 * v), out);
            _mm512_mask_storeu_ps(c + 16 * v, mask, out);
        }
    }
}

__attribute__((target("avx512f")))
static void rows_avx512(const small_problem *p, const ptrdiff_t *roff, int i0, int rows)
{
    for (int j0 = 0; j0 < p->n; j0 += 64) {
        const int w = p->n - j0 < 64 ? p->n - j0 : 64;
        const int nv = (w + 15) / 16;
        const __mmask16 last = (__mmask16)(w % 16 == 0 ? 0xFFFF : (1u << (w % 16)) - 1);
        switch (nv) {
        case 1: block_avx512(1, p, roff, i0, rows, j0, last); break;
        case 2: block_avx512(2, p, roff, i0, rows, j0, last); break;
        case 3: block_avx512(3, p, roff, i0, rows, j0, last); break;
        default: block_avx512(4, p, roff, i0, rows, j0, last); break;
        }
    }
}
#endif

#if defined(__x86_64__) || defined(__i386__)
// The same with 8-lane vectors (AVX2+FMA): MR rows × NV ≤ 2 vectors; a partial last vector (MASKED) is read and
// written through a lane mask. NOTE: a zero-padded copy of B's edge columns, made per row block, cost as much as the
// product itself for n = 50 (117 µs against 72 µs for n = 48; masked: 82 µs), and masked loads of full vectors made
// the K = 64 weight gradient 30% slower than plain ones: hence MASKED.
__attribute__((always_inline, target("avx2,fma"))) static inline void
block_avx2(const int NV, const int MASKED, const small_problem *p, const ptrdiff_t *roff, int i0, int rows, int j0,
           __m256i last)
{
    __m256 acc[SMALL_MR][2];
    for (int r = 0; r < SMALL_MR; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
    const float *brow = p->B + j0;
    const ptrdiff_t r0 = roff[0], r1 = roff[1], r2 = roff[2], r3 = roff[3], r4 = roff[4], r5 = roff[5];
    for (int q = 0; q < p->k; q++, brow += p->b_row) {
        __m256 b[2];
        for (int v = 0; v < NV; v++)
            b[v] = MASKED && v == NV - 1 ? _mm256_maskload_ps(brow + 8 * v, last) : _mm256_loadu_ps(brow + 8 * v);
        const float *a = p->A + p->koff[q];
        const __m256 a0 = _mm256_broadcast_ss(a + r0), a1 = _mm256_broadcast_ss(a + r1);
        for (int v = 0; v < NV; v++) acc[0][v] = _mm256_fmadd_ps(a0, b[v], acc[0][v]);
        for (int v = 0; v < NV; v++) acc[1][v] = _mm256_fmadd_ps(a1, b[v], acc[1][v]);
        const __m256 a2 = _mm256_broadcast_ss(a + r2), a3 = _mm256_broadcast_ss(a + r3);
        for (int v = 0; v < NV; v++) acc[2][v] = _mm256_fmadd_ps(a2, b[v], acc[2][v]);
        for (int v = 0; v < NV; v++) acc[3][v] = _mm256_fmadd_ps(a3, b[v], acc[3][v]);
        const __m256 a4 = _mm256_broadcast_ss(a + r4), a5 = _mm256_broadcast_ss(a + r5);
        for (int v = 0; v < NV; v++) acc[4][v] = _mm256_fmadd_ps(a4, b[v], acc[4][v]);
        for (int v = 0; v < NV; v++) acc[5][v] = _mm256_fmadd_ps(a5, b[v], acc[5][v]);
    }
    const __m256 beta = _mm256_set1_ps(p->beta);
    for (int r = 0; r < SMALL_MR; r++) {
        if (r >= rows) break;
        float *c = p->C + (size_t)(i0 + r) * p->n + j0;
        for (int v = 0; v < NV; v++) {
            __m256 out = acc[r][v];
            if (MASKED && v == NV - 1) {
                if (p->beta != 0.0f) out = _mm256_fmadd_ps(beta, _mm256_maskload_ps(c + 8 * v, last), out);
                _mm256_maskstore_ps(c + 8 * v, last, out);
            } else {
                if (p->beta != 0.0f) out = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c + 8 * v), out);
                _mm256_storeu_ps(c + 8 * v, out);
            }
        }
    }
}

__attribute__((target("avx2,fma")))
static void rows_avx2(const small_problem *p, const ptrdiff_t *roff, int i0, int rows)
{
    for (int j0 = 0; j0 < p->n; j0 += 16) {
        const int w = p->n - j0 < 16 ? p->n - j0 : 16;
        const int tail = w % 8 == 0 ? 8 : w % 8;
        const __m256i last = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        if (w == 16) block_avx2(2, 0, p, roff, i0, rows, j0, last);
        else if (w > 8) block_avx2(2, 1, p, roff, i0, rows, j0, last);
        else if (w == 8) block_avx2(1, 0, p, roff, i0, rows, j0, last);
        else block_avx2(1, 1, p, roff, i0, rows, j0, last);
    }
}
#endif

// The baseline's (no AVX2): two 8-lane vectors of columns per block; the column edge reads from a zero-padded copy
// of B's edge columns made once per block.
typedef float v8 __attribute__((vector_size(32)));
static _Thread_local float *edge_tls;

static void rows_portable(const small_problem *p, const ptrdiff_t *roff, int i0, int rows)
{
    if (!edge_tls) edge_tls = aligned_alloc(64, sizeof(float) * SMALL_MAX_K * 16);
    float *edge = edge_tls;
    if (!edge) abort();
    for (int j0 = 0; j0 < p->n; j0 += 16) {
        const int w = p->n - j0 < 16 ? p->n - j0 : 16;
        const float *bsrc = p->B + j0;
        ptrdiff_t bstride = p->b_row;
        if (w < 16) {
            for (int q = 0; q < p->k; q++)
                for (int j = 0; j < 16; j++) edge[q * 16 + j] = j < w ? p->B[(size_t)q * p->b_row + j0 + j] : 0.0f;
            bsrc = edge;
            bstride = 16;
        }
        v8 acc[SMALL_MR][2];
        for (int r = 0; r < SMALL_MR; r++) acc[r][0] = acc[r][1] = (v8){0};
        for (int q = 0; q < p->k; q++) {
            v8 b0, b1;
            memcpy(&b0, bsrc + (size_t)q * bstride, sizeof b0);
            memcpy(&b1, bsrc + (size_t)q * bstride + 8, sizeof b1);
            const float *a = p->A + p->koff[q];
            _Pragma("GCC unroll 6")
            for (int r = 0; r < SMALL_MR; r++) {
                const float ar = a[roff[r]];
                acc[r][0] += ar * b0;
                acc[r][1] += ar * b1;
            }
        }
        /* NOTE: every row's registers to a tile first, at constant indices: indexing acc by a run-time row
           count kept the accumulators in memory, stored on every step of the K loop (2x slower). */
        float tile[SMALL_MR][16];
        _Pragma("GCC unroll 6")
        for (int r = 0; r < SMALL_MR; r++) {
            memcpy(tile[r], &acc[r][0], 32);
            memcpy(tile[r] + 8, &acc[r][1], 32);
        }
        for (int r = 0; r < rows; r++) {
            float *c = p->C + (size_t)(i0 + r) * p->n + j0;
            for (int j = 0; j < w; j++) c[j] = finish(tile[r][j], c + j, p->beta);
        }
    }
}

typedef void (*rows_kernel)(const small_problem *, const ptrdiff_t *, int, int);

static rows_kernel pick_rows(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("avx512f")) return rows_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return rows_avx2;
#endif
    return rows_portable;
}

/// The stored row of A that logical row `s` of an indexed operand reads: order[offset + s], clamped (NaN → 0).
static inline ptrdiff_t indexed(const float *order, int offset, int index_rows, int s)
{
    const float v = order[offset + s];
    return v >= (float)(index_rows - 1) ? index_rows - 1 : (v > 0.0f ? (ptrdiff_t)v : 0);
}

int clnn_sgemm_small(int m, int n, int k, const float *A, ptrdiff_t a_row, ptrdiff_t a_col, int a_transposed,
                     const float *order, int offset, int index_rows,
                     const float *B, ptrdiff_t b_row, float *C, float beta)
{
    if (k > SMALL_MAX_K || k <= 0 || m <= 0 || n <= 0) return 0;
    // (Picked on the first call, which the pool's threads may make at once: loaded and stored atomically.)
    static rows_kernel chosen;
    rows_kernel kernel = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (!kernel) {
        kernel = pick_rows();
        __atomic_store_n(&chosen, kernel, __ATOMIC_RELEASE);
    }
    // The stored rows of A are its logical rows (A·B) or its columns (A stored transposed: Aᵀ·B); an index list
    // picks among them.
    const int rows_are_stored = !a_transposed;
    ptrdiff_t koff[SMALL_MAX_K];
    for (int q = 0; q < k; q++)
        koff[q] = (order && !rows_are_stored ? indexed(order, offset, index_rows, q) : q) * a_col;
    small_problem p = {n, k, A, koff, B, b_row, C, beta};
    for (int i0 = 0; i0 < m; i0 += SMALL_MR) {
        const int rows = m - i0 < SMALL_MR ? m - i0 : SMALL_MR;
        ptrdiff_t roff[SMALL_MR];
        for (int r = 0; r < SMALL_MR; r++) {
            const int i = i0 + (r < rows ? r : rows - 1);
            roff[r] = (order && rows_are_stored ? indexed(order, offset, index_rows, i) : i) * a_row;
        }
        kernel(&p, roff, i0, rows);
    }
    return 1;
}
