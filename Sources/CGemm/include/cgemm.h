#ifndef CLNN_CGEMM_H
#define CLNN_CGEMM_H
#include <stddef.h>

/// C[i][j] = beta·C[i][j] + Σ_p op(A)[i][p]·op(B)[p][j] for rows row_begin..<row_end of C (row-major, n columns).
/// op(A)[i][p] = A[i*a_row + p*a_col] and op(B)[p][j] = B[p*b_row + j*b_col], so transposes are strides.
/// beta is 0 (C is not read) or any other value. Cache-blocked and packed, with an AVX-512 or AVX2+FMA micro-kernel when the
/// CPU has it (checked at run time) and a portable one otherwise. Call it from several threads on disjoint rows.
void clnn_sgemm_rows(int m, int n, int k, const float *A, ptrdiff_t a_row, ptrdiff_t a_col,
                     const float *B, ptrdiff_t b_row, ptrdiff_t b_col, float *C, float beta,
                     int row_begin, int row_end);
#endif
