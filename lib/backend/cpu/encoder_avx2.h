/*
 * encoder_avx2.h — AVX2+FMA kernels for the CPU backend's encoder ops (backend.h: attention_full,
 * gelu, layernorm, add_bias) and the vector expf / erff they are built on.
 *
 * cpu_backend.c calls them when pg_gemm_avx2_usable() (the CPU has AVX2 and FMA; the library is
 * built for baseline x86-64, so nothing here may run otherwise); its portable ops stay the
 * reference and the fallback, and the tests run both (pg_backend_cpu_set_encoder_kernel).
 *
 * attention_full, blocked (encoder_avx2.c): the work is (head, block of PG_ATTN_QB queries)
 * items, head-major. A thread packs the keys and values of a head once into its scratch (keys
 * transposed in strips of 16, values in strips of 16 dims), then for each of its query blocks
 * computes the scores S = (scale·Q)·Kᵀ with a 6 x 16 register-tiled microkernel, takes the
 * softmax of each row in float32 (max subtracted, vector expf, sum over 8 float lanes) and
 * multiplies the unnormalised P by V with the same microkernel, scaling each output row by
 * 1/sum. Sums therefore run in another order than the portable op's (which adds exp in double
 * and scales P before V): results agree to rounding.
 */
#ifndef PG_ENCODER_AVX2_H
#define PG_ENCODER_AVX2_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

/* ---- attention_full ----------------------------------------------------------------------- */

/* The operands of one attention_full call (backend.h), as the op received them. */
typedef struct pg_attn_full_args {
    float *out;             /* [n_q][n_head*head_dim], contiguous */
    const float *q, *k, *v; /* row t at q + t*q_stride; k, v rows kv_stride apart */
    int n_q, n_kv, n_head, head_dim, causal;
    size_t q_stride, kv_stride;
    float scale; /* 1/sqrt(head_dim) */
} pg_attn_full_args;

#define PG_ATTN_QB 24 /* queries per work item: a multiple of the microkernel's 6 rows */

/* Work items of a call: n_head x ceil(n_q / PG_ATTN_QB). */
int64_t pg_attn_full_items(int n_q, int n_head);

/* Floats of scratch one thread needs for a call with n_kv keys of head_dim: the packed keys and
 * values of one head, the scores of one query block and its scaled queries. */
size_t pg_attn_full_scratch_floats(int n_kv, int head_dim);

/* Computes items [i0, i1) (head h = item / blocks, queries from PG_ATTN_QB * (item % blocks)),
 * repacking keys and values whenever the head changes. scratch holds
 * pg_attn_full_scratch_floats(n_kv, head_dim) floats, 32-byte aligned, and is this thread's
 * alone. Threads given disjoint item ranges write disjoint parts of out. */
void pg_attn_full_avx2(const pg_attn_full_args *a, int64_t i0, int64_t i1, float *scratch);

/* ---- elementwise and rows ----------------------------------------------------------------- */

/* x[i] = x[i]·0.5·(1 + erf(x[i]·(float)√½)) for i < n, in torch's order, erf by pg_erff_avx2. */
void pg_gelu_avx2(float *x, size_t n);

/* One LayerNorm row, as cpu_backend.c's layernorm_row: mean and biased variance in double
 * (two passes, four double lanes), y = (float)((x - mean)·rstd)·w + b (multiply, then add).
 * y may equal x. */
void pg_layernorm_row_avx2(float *y, const float *x, const float *w, const float *bias, int dim,
                           float eps);

/* y[i] += bias[i] for i < n. */
void pg_add_avx2(float *y, const float *bias, size_t n);

/* ---- vector math (exported for the tests) ----------------------------------------------------- */

/* y[i] = expf(x[i]) for i < n: range reduction by ln 2 (split in two for FMA) and a degree-7
 * polynomial (Cephes' expf coefficients), scaled by 2^n in two steps so that results down to
 * the subnormals round once. Relative error below 2e-7 wherever the result is normal (see
 * test_cpu_ops); +inf above 88.72, +0 below -103.9, NaN for NaN. y may equal x. */
void pg_expf_avx2(const float *x, float *y, size_t n);

/* y[i] = erff(x[i]) for i < n: x + x·R(x²) (degree 5 in x²) for |x| <= 0.921875, else
 * ±(1 - exp(Q(|x|))) with Q a degree-6 fit of log(erfc) on [0.921875, 4] (|x| clamped to 4,
 * where erf rounds to ±1). Relative error below 2e-7 against double erf wherever the result is
 * normal; erf(±0) = ±0, erf(±inf) = ±1, NaN for NaN. y may equal x. */
void pg_erff_avx2(const float *x, float *y, size_t n);

/* ---- test hook ------------------------------------------------------------------------------- */

/* Internal, for tests and benchmarks: which kernels the CPU backend's encoder ops use. */
typedef enum pg_encoder_kernel {
    PG_ENCODER_AUTO = 0,    /* AVX2+FMA where usable (pg_gemm_avx2_usable), else portable */
    PG_ENCODER_GENERIC = 1, /* the portable ops in cpu_backend.c */
    PG_ENCODER_AVX2 = 2,    /* the kernels above (only where usable, else PG_ERR_UNSUPPORTED) */
} pg_encoder_kernel;

/* Makes the CPU backend b run attention_full, gelu, layernorm and add_bias with kernel k. Call
 * between ops, never concurrently with them. PG_ERR_INVALID_ARGUMENT (not a CPU backend,
 * unknown kernel), PG_ERR_UNSUPPORTED (AVX2 asked for, not usable). */
pg_status pg_backend_cpu_set_encoder_kernel(pg_backend *b, pg_encoder_kernel k);

#endif
