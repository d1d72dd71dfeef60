#ifndef CLNN_CGEMM_H
#define CLNN_CGEMM_H
#include <stddef.h>

/// C[i][j] = beta·C[i][j] + Σ_p op(A)[i][p]·op(B)[p][j] for rows row_begin..<row_end of C (row-major, n columns).
/// op(A)[i][p] = A[i*a_row + p*a_col] and op(B)[p][j] = B[p*b_row + j*b_col], so transposes are strides.
/// beta is 0 (C is not read) or any other value. Cache-blocked and packed (A read in place when B is narrow), with an
/// AVX-512 or AVX2+FMA micro-kernel when the CPU has it (checked at run time) and a portable one otherwise. Call it
/// from several threads on disjoint rows, each with its own `pack` buffer of clnn_sgemm_pack_floats() floats
/// (64-byte aligned).
void clnn_sgemm_rows(int m, int n, int k, const float *A, ptrdiff_t a_row, ptrdiff_t a_col,
                     const float *B, ptrdiff_t b_row, ptrdiff_t b_col, float *C, float beta,
                     int row_begin, int row_end, float *pack);

/// The same for the block rows row_begin..<row_end × columns col_begin..<col_end of C: threads may split C by rows
/// (each then packs all of B), or by columns (each packs only its columns of B: the split for wide, short products).
/// col_begin should be a multiple of 16 for whole tiles. When `a_rows_at` (m entries) or `a_cols_at` (k entries) is
/// not NULL, row i or column p of op(A) starts at A + a_rows_at[i] or A + a_cols_at[p] instead of at i·a_row or
/// p·a_col: a batch's rows read in place from a resident dataset, packed straight from there.
void clnn_sgemm_block(int m, int n, int k, const float *A, ptrdiff_t a_row, ptrdiff_t a_col,
                      const ptrdiff_t *a_rows_at, const ptrdiff_t *a_cols_at,
                      const float *B, ptrdiff_t b_row, ptrdiff_t b_col, float *C, float beta,
                      int row_begin, int row_end, int col_begin, int col_end, float *pack);

/// The floats of one caller's pack buffer for clnn_sgemm_rows and clnn_sgemm_block.
size_t clnn_sgemm_pack_floats(void);

/// The small-product path: the same product for op(B) row-major (b_col = 1), unpacked and on the calling thread,
/// for batch-sized shapes. When `order` is not NULL, A's stored rows are picked through it: stored row s is
/// order[offset + s] (a float index, clamped to 0..<index_rows) — the rows of op(A) for A·B (a_transposed 0), the
/// columns of op(A) for Aᵀ·B (a_transposed 1; said outright, as a_row = a_col = 1 when m is 1). Returns 0 (and
/// computes nothing) when the shape is outside this path (k > 2048).
#define CLNN_SGEMM_SMALL_MAX_K 2048
int clnn_sgemm_small(int m, int n, int k, const float *A, ptrdiff_t a_row, ptrdiff_t a_col, int a_transposed,
                     const float *order, int offset, int index_rows,
                     const float *B, ptrdiff_t b_row, float *C, float beta);

/// A chunk of a job for the CPU products' worker pool (pool.c).
typedef void (*clnn_pool_body)(void *context, int chunk);

/// Runs body(context, c) for every c in 0..<chunks, on the pool's workers and the calling thread, and returns when
/// all have finished. The workers spin a while between jobs (batch-sized products come every few microseconds in
/// training) before they park. A call made while the pool runs another job (another thread's, or from inside a
/// chunk) runs its chunks on the calling thread.
void clnn_pool_run(int chunks, clnn_pool_body body, void *context);

/// The threads a job runs on: the workers and the caller (the online cores).
int clnn_pool_threads(void);

/// One SGD update of n parameters in place (g = grad + weight_decay·p; with v: v = momentum·v + g, p −= lr·v;
/// without: p −= lr·g), the new parameters written with non-temporal stores (update.c says why). Returns 0 (and
/// changes nothing) where the CPU has no such path (no AVX2+FMA): the caller's loop then does it.
int clnn_sgd_streaming(float *p, const float *g, float *v, ptrdiff_t n, float lr, float momentum, float weight_decay);
#endif
