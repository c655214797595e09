/*
 * gemm.h — the CPU backend's batched-matmul kernel: a panel of m weight rows, already expanded
 * to float32, times n input rows.
 *
 *   y[t][j] = Σ_k x[t][k] · w[j][k]          (add: y[t][j] += the sum)
 *   x  [n][k] rows ldx floats apart          w  [m][k] rows ldw floats apart (the panel)
 *   y  [n][m] rows ldy floats apart
 *
 * cpu_backend.c dequantises (or, for F32, uses in place) a block of weight rows and hands it
 * here; so every weight type reaches the kernel as the same F32 panel. The kernel walks K in
 * slices of PG_GEMM_KC. For each slice it packs the panel k-major in strips of PG_GEMM_NR
 * outputs (wp[strip][k][16], the last strip zero-padded), then, for each block of input rows
 * (PG_GEMM_MC of them in the AVX2 kernel), copies the block's slice of x into a compact buffer
 * (so that rows a power of two apart do not fight over the same cache sets) and multiplies it strip after strip in tiles of
 * a few input rows, keeping the tile of y in registers over the slice. The sum over k is
 * therefore k-ascending within a slice and slice after slice: not the order of pg_vec_dot, so
 * results differ from the n = 1 path by rounding only.
 *
 * Two implementations with one contract: pg_gemm_generic (portable C, the reference and the
 * fallback) and pg_gemm_avx2 (gemm_avx2.c, AVX2+FMA, only when pg_gemm_avx2_usable()). Both
 * keep no state and may run on any number of threads at once, each with its own pack buffer and
 * its own part of y.
 */
#ifndef PG_GEMM_H
#define PG_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

#define PG_GEMM_KC 256 /* k per slice: a 16-output strip of it (16 kB) stays in L1 */
#define PG_GEMM_NR 16  /* outputs per strip: two 8-float registers */
#define PG_GEMM_MC 72  /* x block: 72 rows x 256 floats (72 kB) stay in L2 */

/* Floats of pack buffer a call with a panel of m rows needs: the packed panel slice and the
 * copied block of x (64-byte aligned is best). */
size_t pg_gemm_pack_floats(int64_t m);

/* y = x · wᵀ (add = 0) or y += x · wᵀ (add = 1) as above, for n >= 1, m >= 1, k >= 1; pack
 * holds pg_gemm_pack_floats(m) floats and overlaps nothing else. x, w and y do not overlap. */
typedef void (*pg_gemm_fn)(int64_t n, int64_t m, int64_t k, const float *x, size_t ldx,
                           const float *w, size_t ldw, float *y, size_t ldy, int add, float *pack);
void pg_gemm_generic(int64_t n, int64_t m, int64_t k, const float *x, size_t ldx, const float *w,
                     size_t ldw, float *y, size_t ldy, int add, float *pack);
void pg_gemm_avx2(int64_t n, int64_t m, int64_t k, const float *x, size_t ldx, const float *w,
                  size_t ldw, float *y, size_t ldy, int add, float *pack);

/* 1 when pg_gemm_avx2 may run: this build has it (x86-64, GCC or Clang) and the CPU has AVX2 and
 * FMA. Asked of the CPU once per process; safe from any thread. */
int pg_gemm_avx2_usable(void);

/* Internal, for tests and benchmarks: which kernel the CPU backend's batched matmul uses. */
typedef enum pg_gemm_kernel {
    PG_GEMM_AUTO = 0,    /* AVX2 where usable, else generic; small n on the matrix-vector path */
    PG_GEMM_GENERIC = 1, /* pg_gemm_generic */
    PG_GEMM_AVX2 = 2,    /* pg_gemm_avx2 (only where usable, else PG_ERR_UNSUPPORTED) */
} pg_gemm_kernel;

/* Makes the CPU backend b run batched matmuls of n >= min_rows rows with kernel k, and those of
 * fewer rows on the matrix-vector path (pg_vec_dot); min_rows 0 restores the measured default
 * thresholds (by weight type). Call between ops, never concurrently with them. PG_ERR_INVALID_ARGUMENT (not a CPU
 * backend, min_rows < 0, unknown kernel), PG_ERR_UNSUPPORTED (AVX2 asked for, not usable). */
pg_status pg_backend_cpu_set_gemm(pg_backend *b, pg_gemm_kernel k, int min_rows);

#endif
