/*
 * cpu_backend.c — the CPU implementation of backend.h: host memory, and every op as a
 * parallel-for over a pg_pool.
 *
 * Numerics follow llama.cpp's CPU path (ggml-cpu ops) wherever a choice changes results:
 *   - RMSNorm sums squares in double, takes the mean as float, scale = 1/sqrtf(mean + eps), and
 *     applies x*scale before multiplying by the weight (ggml_rms_norm followed by ggml_mul);
 *   - RoPE builds theta by repeated float multiplication from (float)pos with
 *     theta_scale = powf(base, -2/n_rot) and uses cosf/sinf (ggml_rope_cache_init, rope_yarn);
 *   - attention scores are float dots times scale, softmax subtracts the max, sums expf in
 *     double and scales by (float)(1/sum) (ggml_vec_soft_max_f32), and V is accumulated in float;
 *   - SiLU is x/(1+expf(-x)).
 * The encoder ops follow torch's CPU kernels where that is cheap:
 *   - LayerNorm takes mean and biased variance of the row in double (two passes), then
 *     y = float((x - mean) * rstd) * w + b; torch's float Welford differs by an ulp or two;
 *   - GELU is the exact 0.5*x*(1 + erff(x/sqrt(2)));
 *   - attention_full shares the causal op's softmax and V accumulation.
 * Where the CPU has AVX2+FMA, the encoder ops run encoder_avx2.h's kernels instead: the same
 * LayerNorm in double lanes, GELU with a vector erff (relative error < 1e-7 against double erf),
 * and attention_full blocked like a GEMM (per head and block of queries: Q·Kᵀ, softmax with a
 * vector expf summed in float, P·V): these agree with the portable ops to rounding, and the
 * portable ops stay the reference (pg_backend_cpu_set_encoder_kernel picks either).
 * Dot products accumulate in float over 8 interleaved lanes so that -O2 vectorises them without
 * -ffast-math. Batched matmul is a register-blocked GEMM (gemm.h) over weight rows expanded to
 * float, AVX2+FMA where the CPU has it: its sums run in another order than the dot products'.
 *
 * Memory discipline: ops never allocate. Scratch (one region per thread: the GEMM's expanded
 * and packed weights, attention scores, attention_full's packed keys and values of a head) is
 * sized by pg_backend_cpu_reserve; an op whose shape exceeds the reservation takes a slower path
 * that needs no scratch (per-row pg_vec_dot, online softmax), so results stay correct either
 * way.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sysconf(_SC_NPROCESSORS_ONLN) under -std=c11 */
#endif
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/error.h"
#include "backend/backend.h"
#include "backend/cpu/encoder_avx2.h"
#include "backend/cpu/encoder_ops.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/threadpool.h"
#include "gguf/dtype.h"

/* Batched matmul hands the GEMM blocks of this many weight rows; other types than F32 are
 * expanded to float one PG_GEMM_KC slice of the block at a time, so the scratch is
 * MATMUL_NC x PG_GEMM_KC floats of panel plus the GEMM's pack buffer (584 kB), whatever n_in. */
#define MATMUL_NC 256
/* Batches of fewer rows take the matrix-vector path (pg_vec_dot per output and row): below these
 * the GEMM's expanding and packing of the weights costs more than it saves. Measured crossovers
 * on 4096 x 4096 weights, 1 and 2 threads (docs/perf.md): F32 3-4, Q4_0 4, F16/BF16/Q8_0 6-9. */
#define MATMUL_GEMM_MIN_ROWS_CHEAP 4 /* F32, Q4_0 */
#define MATMUL_GEMM_MIN_ROWS 6
/* pg_backend_cpu_reserve sizes attention_full's blocked kernel (encoder_avx2.h) for up to
 * min(max_ctx, ATTN_RESERVE_KV) keys of up to ATTN_RESERVE_HEAD_DIM dims: ~590 kB per thread,
 * about the GEMM's own region, which it shares. ImageBind's towers need at most 258 keys of 80
 * dims. The cap on keys is there because a session reserves max_ctx = its LLaMA context (up to
 * 2^20) for the causal op, whose scores need max_ctx floats, while packing a head of that many
 * keys would need 2·max_ctx·head_dim. Larger calls use the kernel when the scratch happens to
 * hold them, else the portable path. */
#define ATTN_RESERVE_KV 512
#define ATTN_RESERVE_HEAD_DIM 128
/* Elementwise ops below these sizes run on the calling thread: a pool run costs ~1-2 µs. */
#define PAR_MIN_SILU 2048
#define PAR_MIN_COPY 32768
#define PAR_MIN_GELU 1024
/* Rows of one norm/bias job below this many floats run on the calling thread. */
#define PAR_MIN_ROWS_FLOATS 8192

typedef struct cpu_backend {
    pg_backend base;
    pg_pool *pool;
    int n_threads;
    float *scratch;        /* n_threads regions of scratch_stride floats, 64-byte aligned */
    size_t scratch_stride; /* floats per thread, a multiple of 16 */
    pg_gemm_fn gemm;       /* the batched-matmul kernel: pg_gemm_avx2 where usable */
    int gemm_min_rows;     /* batches of fewer rows take the matrix-vector path; 0: by type */
    int enc_avx2;          /* the encoder ops run encoder_avx2.c's kernels */
    int64_t max_n_in;      /* recorded: the GEMM's scratch does not depend on n_in */
    int max_ctx;           /* attention keeps scores for up to this many positions */
    int max_rows;
} cpu_backend;

static cpu_backend *cpu_of(pg_backend *b) { return (cpu_backend *)b->impl; }

static float *thread_scratch(cpu_backend *c, int ith) {
    return c->scratch ? c->scratch + (size_t)ith * c->scratch_stride : NULL;
}

/* [*i0, *i1): the share of thread ith among nth of n items, boundaries rounded to align. */
static void split_range(int64_t n, int ith, int nth, int64_t align, int64_t *i0, int64_t *i1) {
    int64_t blocks = (n + align - 1) / align;
    int64_t per = blocks / nth, extra = blocks % nth;
    int64_t b0 = ith * per + (ith < extra ? ith : extra);
    int64_t b1 = b0 + per + (ith < extra ? 1 : 0);
    *i0 = b0 * align < n ? b0 * align : n;
    *i1 = b1 * align < n ? b1 * align : n;
}

/* ---- dot kernels ---------------------------------------------------------------------- */

static inline float hsum8(const float a[8]) {
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

#if defined(__GNUC__)
/* GCC/Clang vector extension: with plain arrays gcc keeps the accumulators on the stack. Lane j
 * of (lo, hi) is accumulator j of the portable version below, so both round identically. */
typedef float v4f __attribute__((vector_size(16)));

static inline v4f v4_load(const float *p) {
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float v4_hsum8(v4f lo, v4f hi) {
    float a[8];
    memcpy(a, &lo, sizeof lo);
    memcpy(a + 4, &hi, sizeof hi);
    return hsum8(a);
}

static float dot_f32(const float *restrict w, const float *restrict x, int64_t n) {
    v4f lo = {0, 0, 0, 0}, hi = {0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        lo += v4_load(w + k) * v4_load(x + k);
        hi += v4_load(w + k + 4) * v4_load(x + k + 4);
    }
    float s = v4_hsum8(lo, hi);
    for (; k < n; k++) s += w[k] * x[k];
    return s;
}
#else
static float dot_f32(const float *restrict w, const float *restrict x, int64_t n) {
    float a[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) a[j] += w[k + j] * x[k + j];
    float s = hsum8(a);
    for (; k < n; k++) s += w[k] * x[k];
    return s;
}
#endif

/* ---- memory ----------------------------------------------------------------------------- */

static pg_status cpu_alloc(pg_backend *b, size_t bytes, void **out) {
    (void)b;
    *out = NULL;
    if (bytes > SIZE_MAX - 63)
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "cpu backend: cannot allocate %zu bytes",
                            bytes);
    size_t rounded = bytes ? (bytes + 63) & ~(size_t)63 : 64; /* aligned_alloc wants k*64 */
    void *p = aligned_alloc(64, rounded);
    if (!p)
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "cpu backend: cannot allocate %zu bytes",
                            bytes);
    memset(p, 0, rounded);
    *out = p;
    return PG_OK;
}

static void cpu_free(pg_backend *b, void *p) {
    (void)b;
    free(p);
}

static void cpu_copy_bytes(pg_backend *b, void *dst, const void *src, size_t bytes) {
    (void)b;
    if (bytes) memcpy(dst, src, bytes);
}

static pg_status cpu_sync(pg_backend *b) {
    (void)b;
    return PG_OK;
}

/* ---- matmul ----------------------------------------------------------------------------- */

typedef struct matmul_job {
    cpu_backend *c;
    const pg_weight *w;
    const float *x;
    float *y;
    int n;
    int add;  /* matmul_add: y += instead of y = */
    int gemm; /* the GEMM path (else matrix-vector) */
} matmul_job;

static inline void store(float *y, float v, int add) { *y = add ? *y + v : v; }

/* Floats of scratch the GEMM path needs per thread. */
static size_t matmul_scratch_floats(void) {
    return pg_gemm_pack_floats(MATMUL_NC) + (size_t)MATMUL_NC * PG_GEMM_KC;
}

/* A few tokens (decode): each output is one pg_vec_dot, streaming the weight rows once per
 * token. */
static void matmul_rows_vec(const matmul_job *j, int64_t r0, int64_t r1) {
    const pg_weight *w = j->w;
    const uint8_t *base = w->data;
    for (int t = 0; t < j->n; t++) {
        const float *x = j->x + (size_t)t * (size_t)w->n_in;
        float *y = j->y + (size_t)t * (size_t)w->n_out;
        for (int64_t r = r0; r < r1; r++)
            store(&y[r], pg_vec_dot(w->type, base + (size_t)r * w->row_bytes, x, w->n_in),
                  j->add);
    }
}

/* A batch: tokens [t0, t1) times weight rows [r0, r1), MATMUL_NC rows at a time. F32 rows go
 * to the GEMM in place; other types are expanded to float slice by slice (every weight element
 * once per call), and the slices' products accumulate into y. */
static void matmul_rows_gemm(const matmul_job *j, float *scratch, int64_t t0, int64_t t1,
                             int64_t r0, int64_t r1) {
    const pg_weight *w = j->w;
    const int64_t n_in = w->n_in, n_out = w->n_out, n = t1 - t0;
    const uint8_t *base = w->data;
    const float *x = j->x + (size_t)t0 * (size_t)n_in;
    float *y = j->y + (size_t)t0 * (size_t)n_out;
    float *pack = scratch, *panel = scratch + pg_gemm_pack_floats(MATMUL_NC);
    const int64_t be = pg_dtype_block_elems(w->type);
    const size_t bb = pg_dtype_block_bytes(w->type);
    for (int64_t rs = r0; rs < r1; rs += MATMUL_NC) {
        const int64_t nr = r1 - rs < MATMUL_NC ? r1 - rs : MATMUL_NC;
        const uint8_t *rows = base + (size_t)rs * w->row_bytes;
        if (w->type == PG_DTYPE_F32) {
            j->c->gemm(n, nr, n_in, x, (size_t)n_in, (const float *)rows,
                       w->row_bytes / sizeof(float), y + rs, (size_t)n_out, j->add, pack);
            continue;
        }
        for (int64_t k0 = 0; k0 < n_in; k0 += PG_GEMM_KC) {
            const int64_t kc = n_in - k0 < PG_GEMM_KC ? n_in - k0 : PG_GEMM_KC;
            const uint8_t *slice = rows + (size_t)(k0 / be) * bb; /* k0: a whole block */
            for (int64_t i = 0; i < nr; i++)
                pg_dequantize_row(w->type, slice + (size_t)i * w->row_bytes, panel + i * kc, kc);
            j->c->gemm(n, nr, kc, x + k0, (size_t)n_in, panel, (size_t)kc, y + rs,
                       (size_t)n_out, j->add || k0 > 0, pack);
        }
    }
}

static void matmul_task(void *ctx, int ith, int nth) {
    const matmul_job *j = ctx;
    const int64_t n_out = j->w->n_out;
    int64_t r0, r1, t0, t1;
    if (!j->gemm) {
        split_range(n_out, ith, nth, 1, &r0, &r1);
        matmul_rows_vec(j, r0, r1);
        return;
    }
    /* strips of 16 outputs go to the threads; with fewer strips than threads, tokens are split
     * too (each part expanding the same weights) */
    const int64_t strips = (n_out + PG_GEMM_NR - 1) / PG_GEMM_NR;
    const int row_parts = strips < nth ? (int)strips : nth, tok_parts = nth / row_parts;
    if (ith >= row_parts * tok_parts) return;
    split_range(n_out, ith % row_parts, row_parts, PG_GEMM_NR, &r0, &r1);
    split_range(j->n, ith / row_parts, tok_parts, 6, &t0, &t1);
    if (r0 < r1 && t0 < t1) matmul_rows_gemm(j, thread_scratch(j->c, ith), t0, t1, r0, r1);
}

static void matmul_run(pg_backend *b, const pg_weight *w, const float *x, float *y, int n,
                       int add) {
    if (n <= 0 || w->n_out <= 0) return;
    cpu_backend *c = cpu_of(b);
    const int cheap = w->type == PG_DTYPE_F32 || w->type == PG_DTYPE_Q4_0;
    const int min_rows = c->gemm_min_rows ? c->gemm_min_rows
                         : cheap          ? MATMUL_GEMM_MIN_ROWS_CHEAP
                                          : MATMUL_GEMM_MIN_ROWS;
    const int gemm = n >= min_rows && w->n_in > 0 && c->scratch_stride >= matmul_scratch_floats();
    matmul_job j = {c, w, x, y, n, add, gemm};
    pg_pool_run(c->pool, matmul_task, &j);
}

static void cpu_matmul(pg_backend *b, const pg_weight *w, const float *x, float *y, int n) {
    matmul_run(b, w, x, y, n, 0);
}

static void cpu_matmul_add(pg_backend *b, const pg_weight *w, const float *x, float *y, int n) {
    matmul_run(b, w, x, y, n, 1);
}

/* ---- embeddings, norms, rope ------------------------------------------------------------ */

/* Ids are validated by the model (tokenizer output, vocab bounds); an id outside the table
 * yields a zero row here rather than a read outside the weights. */
static void cpu_get_rows(pg_backend *b, const pg_weight *emb, const int32_t *ids, int n,
                         float *out) {
    (void)b;
    const uint8_t *base = emb->data;
    for (int i = 0; i < n; i++) {
        float *dst = out + (size_t)i * (size_t)emb->n_in;
        if (ids[i] < 0 || ids[i] >= emb->n_out) {
            memset(dst, 0, (size_t)emb->n_in * sizeof(float));
            continue;
        }
        pg_dequantize_row(emb->type, base + (size_t)ids[i] * emb->row_bytes, dst, emb->n_in);
    }
}

typedef struct rows_job {
    float *y;
    const float *x;
    const float *w;
    int n, dim;
    float eps;
    /* rope */
    int n_head, head_dim, n_rot, pos0;
    float freq_base;
} rows_job;

static void rmsnorm_row(float *y, const float *x, const float *w, int dim, float eps) {
    double s[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= dim; i += 4)
        for (int q = 0; q < 4; q++) s[q] += (double)(x[i + q] * x[i + q]);
    double sum = (s[0] + s[1]) + (s[2] + s[3]);
    for (; i < dim; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / dim);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (i = 0; i < dim; i++) y[i] = (x[i] * scale) * w[i];
}

static void rmsnorm_task(void *ctx, int ith, int nth) {
    const rows_job *j = ctx;
    int64_t r0, r1;
    split_range(j->n, ith, nth, 1, &r0, &r1);
    for (int64_t r = r0; r < r1; r++)
        rmsnorm_row(j->y + r * j->dim, j->x + r * j->dim, j->w, j->dim, j->eps);
}

static void cpu_rmsnorm(pg_backend *b, float *y, const float *x, const float *w, int n, int dim,
                        float eps) {
    if (n <= 0 || dim <= 0) return;
    rows_job j = {.y = y, .x = x, .w = w, .n = n, .dim = dim, .eps = eps};
    if (n == 1) rmsnorm_task(&j, 0, 1);
    else pg_pool_run(cpu_of(b)->pool, rmsnorm_task, &j);
}

static void layernorm_row(float *y, const float *x, const float *w, const float *bias, int dim,
                          float eps) {
    double s[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= dim; i += 4)
        for (int q = 0; q < 4; q++) s[q] += (double)x[i + q];
    double sum = (s[0] + s[1]) + (s[2] + s[3]);
    for (; i < dim; i++) sum += (double)x[i];
    const double mean = sum / dim;
    double v[4] = {0, 0, 0, 0};
    for (i = 0; i + 4 <= dim; i += 4)
        for (int q = 0; q < 4; q++) {
            const double d = (double)x[i + q] - mean;
            v[q] += d * d;
        }
    double var = (v[0] + v[1]) + (v[2] + v[3]);
    for (; i < dim; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
    const double rstd = 1.0 / sqrt(var / dim + (double)eps);
    for (i = 0; i < dim; i++) y[i] = (float)(((double)x[i] - mean) * rstd) * w[i] + bias[i];
}

typedef struct ln_job {
    float *y;
    const float *x, *w, *bias;
    int n, dim;
    float eps;
    int avx2; /* encoder_avx2.c's row kernels */
} ln_job;

static void layernorm_task(void *ctx, int ith, int nth) {
    const ln_job *j = ctx;
    int64_t r0, r1;
    split_range(j->n, ith, nth, 1, &r0, &r1);
    void (*row)(float *, const float *, const float *, const float *, int, float) =
        j->avx2 ? pg_layernorm_row_avx2 : layernorm_row;
    for (int64_t r = r0; r < r1; r++)
        row(j->y + r * j->dim, j->x + r * j->dim, j->w, j->bias, j->dim, j->eps);
}

static void cpu_layernorm(pg_backend *b, float *y, const float *x, const float *w,
                          const float *bias, int n, int dim, float eps) {
    if (n <= 0 || dim <= 0) return;
    ln_job j = {y, x, w, bias, n, dim, eps, cpu_of(b)->enc_avx2};
    if (n == 1 || (size_t)n * (size_t)dim < PAR_MIN_ROWS_FLOATS) layernorm_task(&j, 0, 1);
    else pg_pool_run(cpu_of(b)->pool, layernorm_task, &j);
}

static void add_bias_task(void *ctx, int ith, int nth) {
    const ln_job *j = ctx;
    int64_t r0, r1;
    split_range(j->n, ith, nth, 1, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        float *restrict y = j->y + r * j->dim;
        const float *restrict bias = j->bias;
        if (j->avx2) pg_add_avx2(y, bias, (size_t)j->dim);
        else
            for (int i = 0; i < j->dim; i++) y[i] += bias[i];
    }
}

static void cpu_add_bias(pg_backend *b, float *y, const float *bias, int n, int dim) {
    if (n <= 0 || dim <= 0) return;
    ln_job j = {.y = y, .bias = bias, .n = n, .dim = dim, .avx2 = cpu_of(b)->enc_avx2};
    if (n == 1 || (size_t)n * (size_t)dim < PAR_MIN_ROWS_FLOATS) add_bias_task(&j, 0, 1);
    else pg_pool_run(cpu_of(b)->pool, add_bias_task, &j);
}

/* One row at position pos: each pair's angle (and its cosf/sinf) is computed once and applied
 * to that pair of every head. */
static void rope_row(float *x, int n_head, int head_dim, int n_rot, int pos, float freq_base) {
    const float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i0 = 0; i0 + 1 < n_rot; i0 += 2) {
        const float c = cosf(theta), s = sinf(theta);
        for (int h = 0; h < n_head; h++) {
            float *p = x + (size_t)h * (size_t)head_dim + i0;
            const float x0 = p[0], x1 = p[1];
            p[0] = x0 * c - x1 * s;
            p[1] = x0 * s + x1 * c;
        }
        theta *= theta_scale;
    }
}

static void rope_task(void *ctx, int ith, int nth) {
    const rows_job *j = ctx;
    int64_t r0, r1;
    split_range(j->n, ith, nth, 1, &r0, &r1);
    const size_t row = (size_t)j->n_head * (size_t)j->head_dim;
    for (int64_t r = r0; r < r1; r++)
        rope_row(j->y + (size_t)r * row, j->n_head, j->head_dim, j->n_rot, j->pos0 + (int)r,
                 j->freq_base);
}

static void cpu_rope(pg_backend *b, float *x, int n, int n_head, int head_dim, int n_rot,
                     int pos0, float freq_base) {
    if (n <= 0 || n_head <= 0 || n_rot <= 0) return;
    if (n_rot > head_dim) n_rot = head_dim;
    rows_job j = {.y = x, .n = n, .n_head = n_head, .head_dim = head_dim, .n_rot = n_rot,
                  .pos0 = pos0, .freq_base = freq_base};
    if (n == 1) rope_task(&j, 0, 1);
    else pg_pool_run(cpu_of(b)->pool, rope_task, &j);
}

/* ---- attention -------------------------------------------------------------------------- */

typedef struct attn_job {
    cpu_backend *c;
    float *out;
    const float *q, *k, *v;
    int n, pos0, n_head, n_head_kv, head_dim;
    float scale;
} attn_job;

static inline void axpy(float *restrict y, float a, const float *restrict x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* Two passes over the scores kept in s[n_kv], as ggml's soft_max then mul_mat by V. */
static void attn_head_scores(const attn_job *j, float *o, const float *qh, const float *kh,
                             const float *vh, size_t kv_stride, int n_kv, float *s) {
    const int hd = j->head_dim;
    float mx = -INFINITY;
    for (int p = 0; p < n_kv; p++) {
        s[p] = dot_f32(qh, kh + (size_t)p * kv_stride, hd) * j->scale;
        if (s[p] > mx) mx = s[p];
    }
    double sum = 0.0;
    for (int p = 0; p < n_kv; p++) {
        const float e = expf(s[p] - mx);
        s[p] = e;
        sum += (double)e;
    }
    const float inv = (float)(1.0 / sum);
    memset(o, 0, (size_t)hd * sizeof(float));
    for (int p = 0; p < n_kv; p++) axpy(o, s[p] * inv, vh + (size_t)p * kv_stride, hd);
}

/* One pass with a running max, accumulating into o: used when pos0 + n exceeds the reserved
 * context, so that no scratch is needed. */
static void attn_head_online(const attn_job *j, float *o, const float *qh, const float *kh,
                             const float *vh, size_t kv_stride, int n_kv) {
    const int hd = j->head_dim;
    float mx = -INFINITY;
    double sum = 0.0;
    memset(o, 0, (size_t)hd * sizeof(float));
    for (int p = 0; p < n_kv; p++) {
        const float sc = dot_f32(qh, kh + (size_t)p * kv_stride, hd) * j->scale;
        if (sc > mx) {
            const float r = expf(mx - sc); /* 0 on the first position */
            for (int d = 0; d < hd; d++) o[d] *= r;
            sum *= (double)r;
            mx = sc;
        }
        const float e = expf(sc - mx);
        sum += (double)e;
        axpy(o, e, vh + (size_t)p * kv_stride, hd);
    }
    const float inv = (float)(1.0 / sum);
    for (int d = 0; d < hd; d++) o[d] *= inv;
}

static void attn_task(void *ctx, int ith, int nth) {
    const attn_job *j = ctx;
    const int hd = j->head_dim, group = j->n_head / j->n_head_kv;
    const size_t q_stride = (size_t)j->n_head * (size_t)hd;
    const size_t kv_stride = (size_t)j->n_head_kv * (size_t)hd;
    float *s = thread_scratch(j->c, ith);
    /* Items (query t, head h) dealt round-robin: later queries see more keys, and interleaving
     * spreads that causal imbalance evenly over the threads. */
    const int64_t items = (int64_t)j->n * j->n_head;
    for (int64_t it = ith; it < items; it += nth) {
        const int t = (int)(it / j->n_head), h = (int)(it % j->n_head);
        const int kvh = h / group;
        const int n_kv = j->pos0 + t + 1;
        const float *qh = j->q + (size_t)t * q_stride + (size_t)h * (size_t)hd;
        const float *kh = j->k + (size_t)kvh * (size_t)hd;
        const float *vh = j->v + (size_t)kvh * (size_t)hd;
        float *o = j->out + (size_t)t * q_stride + (size_t)h * (size_t)hd;
        if (s && n_kv <= j->c->max_ctx) attn_head_scores(j, o, qh, kh, vh, kv_stride, n_kv, s);
        else attn_head_online(j, o, qh, kh, vh, kv_stride, n_kv);
    }
}

static void cpu_attention(pg_backend *b, float *out, const float *q, const float *k,
                          const float *v, int n, int pos0, int n_head, int n_head_kv,
                          int head_dim) {
    if (n <= 0 || n_head <= 0 || head_dim <= 0 || n_head_kv <= 0 || n_head % n_head_kv) return;
    attn_job j = {cpu_of(b), out, q, k, v, n, pos0, n_head, n_head_kv, head_dim,
                  1.0f / sqrtf((float)head_dim)};
    pg_pool_run(j.c->pool, attn_task, &j);
}

/* attention_full: the job's n is n_q; n_kv, the strides and causal are its own. */
typedef struct attn_full_job {
    attn_job a;
    int n_kv, causal;
    size_t q_stride, kv_stride;
} attn_full_job;

static void attn_full_task(void *ctx, int ith, int nth) {
    const attn_full_job *f = ctx;
    const attn_job *j = &f->a;
    const int hd = j->head_dim;
    const size_t out_stride = (size_t)j->n_head * (size_t)hd;
    float *s = thread_scratch(j->c, ith);
    const int64_t items = (int64_t)j->n * j->n_head;
    for (int64_t it = ith; it < items; it += nth) {
        const int t = (int)(it / j->n_head), h = (int)(it % j->n_head);
        const int n_kv = f->causal ? t + 1 + (f->n_kv - j->n) : f->n_kv;
        const float *qh = j->q + (size_t)t * f->q_stride + (size_t)h * (size_t)hd;
        const float *kh = j->k + (size_t)h * (size_t)hd;
        const float *vh = j->v + (size_t)h * (size_t)hd;
        float *o = j->out + (size_t)t * out_stride + (size_t)h * (size_t)hd;
        if (s && n_kv <= j->c->max_ctx) attn_head_scores(j, o, qh, kh, vh, f->kv_stride, n_kv, s);
        else attn_head_online(j, o, qh, kh, vh, f->kv_stride, n_kv);
    }
}

/* The blocked AVX2 kernel (encoder_avx2.h): each thread a contiguous range of the (head,
 * query block) items, so that it packs a head's keys and values once for all its blocks. */
typedef struct attn_blocked_job {
    cpu_backend *c;
    pg_attn_full_args a;
    int64_t items;
} attn_blocked_job;

static void attn_blocked_task(void *ctx, int ith, int nth) {
    const attn_blocked_job *j = ctx;
    int64_t i0, i1;
    split_range(j->items, ith, nth, 1, &i0, &i1);
    if (i0 < i1) pg_attn_full_avx2(&j->a, i0, i1, thread_scratch(j->c, ith));
}

static void attention_full_one(pg_backend *b, float *out, const float *q, const float *k,
                               const float *v, int n_q, int n_kv, size_t q_stride,
                               size_t kv_stride, int n_head, int head_dim, int causal) {
    cpu_backend *c = cpu_of(b);
    const float scale = 1.0f / sqrtf((float)head_dim);
    if (c->enc_avx2 && c->scratch && n_kv <= c->max_ctx &&
        pg_attn_full_scratch_floats(n_kv, head_dim) <= c->scratch_stride) {
        attn_blocked_job j = {c,
                              {out, q, k, v, n_q, n_kv, n_head, head_dim, causal != 0, q_stride,
                               kv_stride, scale},
                              pg_attn_full_items(n_q, n_head)};
        pg_pool_run(c->pool, attn_blocked_task, &j);
        return;
    }
    attn_full_job f = {{c, out, q, k, v, n_q, 0, n_head, n_head, head_dim, scale},
                       n_kv, causal != 0, q_stride, kv_stride};
    pg_pool_run(c->pool, attn_full_task, &f);
}

/* The sequences of a batch one after another: each call already spreads over every thread. */
static void cpu_attention_full(pg_backend *b, float *out, const float *q, const float *k,
                               const float *v, int n_q, int n_kv, size_t q_stride,
                               size_t kv_stride, int n_batch, size_t batch_stride, int n_head,
                               int head_dim, int causal) {
    if (n_q <= 0 || n_kv <= 0 || n_head <= 0 || head_dim <= 0 || (causal && n_kv < n_q)) return;
    const size_t out_seq = (size_t)n_q * (size_t)n_head * (size_t)head_dim;
    for (int sq = 0; sq < n_batch; sq++) {
        const size_t o = (size_t)sq * batch_stride;
        attention_full_one(b, out + (size_t)sq * out_seq, q + o, k + o, v + o, n_q, n_kv,
                           q_stride, kv_stride, n_head, head_dim, causal);
    }
}

/* ---- the position-free decode step: backend memory is host memory, so the value is read ---- */

static void cpu_get_rows_at(pg_backend *b, const pg_weight *emb, const int32_t *ids, int n,
                            float *out) {
    cpu_get_rows(b, emb, ids, n, out);
}

static void cpu_rope_at(pg_backend *b, float *x, int n_head, int head_dim, int n_rot,
                        const int32_t *pos, float freq_base) {
    cpu_rope(b, x, 1, n_head, head_dim, n_rot, *pos, freq_base);
}

static void cpu_store_row_at(pg_backend *b, float *cache, const float *row, size_t row_floats,
                             const int32_t *pos, int n_rows) {
    (void)b;
    if (*pos >= 0 && *pos < n_rows)
        memcpy(cache + (size_t)*pos * row_floats, row, sizeof(float) * row_floats);
}

static void cpu_attention_at(pg_backend *b, float *out, const float *q, const float *k,
                             const float *v, const int32_t *pos, int n_ctx, int n_head,
                             int n_head_kv, int head_dim) {
    if (*pos >= 0 && *pos < n_ctx)
        cpu_attention(b, out, q, k, v, 1, *pos, n_head, n_head_kv, head_dim);
}

/* ---- ImageBind-only ops (encoder_ops.c) ------------------------------------------------------ */

static void cpu_im2col(pg_backend *b, float *out, const float *in, int n_items,
                       const pg_conv_geom *g) {
    (void)b;
    if (n_items > 0) pg_cpu_im2col(out, in, n_items, g);
}

static void cpu_l2norm_sum(pg_backend *b, float *out, const float *x, int n_rows, int dim,
                           float scale, float weight, int accumulate) {
    (void)b;
    if (dim > 0) pg_cpu_l2norm_sum(out, x, n_rows, dim, scale, weight, accumulate);
}

typedef struct project_job {
    const pg_weight *w;
    const float *bias, *u;
    float *y;
    int accumulate;
} project_job;

static void project_task(void *ctx, int ith, int nth) {
    const project_job *j = ctx;
    int64_t r0, r1;
    split_range(j->w->n_out, ith, nth, 16, &r0, &r1);
    pg_cpu_project_rows(j->w, j->bias, j->u, j->y, j->accumulate, r0, r1);
}

static void cpu_project(pg_backend *b, const pg_weight *w, const float *bias, const float *u,
                        float *y, int accumulate) {
    project_job j = {w, bias, u, y, accumulate};
    if (w->n_out > 0) pg_pool_run(cpu_of(b)->pool, project_task, &j);
}

/* ---- elementwise ------------------------------------------------------------------------ */

typedef struct elem_job {
    float *y;
    const float *x;
    size_t n;
    int kind; /* 0 silu_mul, 1 add, 2 copy, 3 gelu */
    int avx2; /* encoder_avx2.c's GELU */
} elem_job;

static void elem_range(const elem_job *j, size_t i0, size_t i1) {
    float *restrict y = j->y;
    const float *restrict x = j->x;
    switch (j->kind) {
    case 0:
        for (size_t i = i0; i < i1; i++) y[i] = y[i] / (1.0f + expf(-y[i])) * x[i];
        break;
    case 1:
        for (size_t i = i0; i < i1; i++) y[i] += x[i];
        break;
    case 3: /* torch's order: x * 0.5 * (1 + erf(x * float(M_SQRT1_2))) */
        if (j->avx2) {
            pg_gelu_avx2(y + i0, i1 - i0);
            break;
        }
        for (size_t i = i0; i < i1; i++)
            y[i] = y[i] * 0.5f * (1.0f + erff(y[i] * (float)M_SQRT1_2));
        break;
    default:
        if (i1 > i0) memmove(y + i0, x + i0, (i1 - i0) * sizeof(float));
        break;
    }
}

static void elem_task(void *ctx, int ith, int nth) {
    const elem_job *j = ctx;
    int64_t i0, i1;
    split_range((int64_t)j->n, ith, nth, 16, &i0, &i1); /* 64-byte chunks: no shared lines */
    elem_range(j, (size_t)i0, (size_t)i1);
}

static void elem_run(pg_backend *b, float *y, const float *x, size_t n, int kind,
                     size_t par_min) {
    elem_job j = {y, x, n, kind, kind == 3 && cpu_of(b)->enc_avx2};
    if (n < par_min || cpu_of(b)->n_threads == 1) elem_range(&j, 0, n);
    else pg_pool_run(cpu_of(b)->pool, elem_task, &j);
}

static void cpu_silu_mul(pg_backend *b, float *gate, const float *up, size_t n) {
    elem_run(b, gate, up, n, 0, PAR_MIN_SILU);
}

static void cpu_add(pg_backend *b, float *y, const float *x, size_t n) {
    elem_run(b, y, x, n, 1, PAR_MIN_COPY);
}

static void cpu_copy(pg_backend *b, float *dst, const float *src, size_t n) {
    if (dst == src) return;
    elem_run(b, dst, src, n, 2, PAR_MIN_COPY);
}

static void cpu_gelu(pg_backend *b, float *x, size_t n) {
    elem_run(b, x, NULL, n, 3, PAR_MIN_GELU);
}

/* ---- the backend -------------------------------------------------------------------------- */

static void cpu_destroy(pg_backend *b);

static const pg_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy_bytes,
    .download = cpu_copy_bytes,
    .sync = cpu_sync,
    .matmul = cpu_matmul,
    .matmul_add = cpu_matmul_add,
    .get_rows = cpu_get_rows,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .silu_mul = cpu_silu_mul,
    .add = cpu_add,
    .copy = cpu_copy,
    .layernorm = cpu_layernorm,
    .gelu = cpu_gelu,
    .add_bias = cpu_add_bias,
    .attention_full = cpu_attention_full,
    .im2col = cpu_im2col,
    .l2norm_sum = cpu_l2norm_sum,
    .project = cpu_project,
    .get_rows_at = cpu_get_rows_at,
    .rope_at = cpu_rope_at,
    .store_row_at = cpu_store_row_at,
    .attention_at = cpu_attention_at,
    /* no graphs: the decode step runs as it is queued */
};

pg_status pg_backend_cpu_new(int n_threads, pg_backend **out) {
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_backend_cpu_new: out is NULL");
    *out = NULL;
    if (n_threads < 0)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_backend_cpu_new: n_threads %d < 0",
                            n_threads);
    if (n_threads == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = online > 0 ? (online > 1024 ? 1024 : (int)online) : 1;
    }
    cpu_backend *c = calloc(1, sizeof *c);
    if (!c)
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "cpu backend: cannot allocate %zu bytes",
                            sizeof *c);
    pg_status st = pg_pool_new(n_threads, &c->pool);
    if (st != PG_OK) {
        free(c);
        return pg_error_prefix(st, "cpu backend");
    }
    c->n_threads = n_threads;
    c->gemm = pg_gemm_avx2_usable() ? pg_gemm_avx2 : pg_gemm_generic;
    c->enc_avx2 = pg_gemm_avx2_usable();
    c->base.ops = &cpu_ops;
    c->base.impl = c;
    *out = &c->base;
    return PG_OK;
}

pg_status pg_backend_cpu_reserve(pg_backend *b, int max_rows, int64_t max_n_in, int max_ctx) {
    if (!b || b->ops != &cpu_ops)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_backend_cpu_reserve: not a CPU backend");
    if (max_rows < 0 || max_n_in < 0 || max_ctx < 0 || max_n_in > ((int64_t)1 << 40))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT,
                            "pg_backend_cpu_reserve: bad sizes (rows %d, n_in %lld, ctx %d)",
                            max_rows, (long long)max_n_in, max_ctx);
    cpu_backend *c = cpu_of(b);
    if (max_n_in < c->max_n_in) max_n_in = c->max_n_in;
    if (max_ctx < c->max_ctx) max_ctx = c->max_ctx;
    if (max_rows < c->max_rows) max_rows = c->max_rows;

    size_t need = max_n_in > 0 ? matmul_scratch_floats() : 0;
    if ((size_t)max_ctx > need) need = (size_t)max_ctx;
    if (max_ctx > 0 && pg_gemm_avx2_usable()) {
        const size_t attn = pg_attn_full_scratch_floats(
            max_ctx < ATTN_RESERVE_KV ? max_ctx : ATTN_RESERVE_KV, ATTN_RESERVE_HEAD_DIM);
        if (attn > need) need = attn;
    }
    need = (need + 15) & ~(size_t)15;
    if (need > c->scratch_stride) {
        if (need > SIZE_MAX / sizeof(float) / (size_t)c->n_threads)
            return pg_set_error(PG_ERR_OUT_OF_MEMORY,
                                "cpu backend: scratch of %zu floats x %d threads overflows",
                                need, c->n_threads);
        size_t bytes = need * sizeof(float) * (size_t)c->n_threads;
        float *s = aligned_alloc(64, bytes);
        if (!s)
            return pg_set_error(PG_ERR_OUT_OF_MEMORY,
                                "cpu backend: cannot allocate %zu bytes of scratch", bytes);
        free(c->scratch);
        c->scratch = s;
        c->scratch_stride = need;
    }
    c->max_n_in = max_n_in;
    c->max_ctx = max_ctx;
    c->max_rows = max_rows;
    return PG_OK;
}

static void cpu_destroy(pg_backend *b) {
    cpu_backend *c = cpu_of(b);
    pg_pool_free(c->pool);
    free(c->scratch);
    free(c);
}

int pg_backend_cpu_threads(const pg_backend *b) {
    if (!b || b->ops != &cpu_ops) return 0;
    return ((const cpu_backend *)b->impl)->n_threads;
}

pg_status pg_backend_cpu_set_gemm(pg_backend *b, pg_gemm_kernel k, int min_rows) {
    if (!b || b->ops != &cpu_ops)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_backend_cpu_set_gemm: not a CPU backend");
    if (min_rows < 0 || (k != PG_GEMM_AUTO && k != PG_GEMM_GENERIC && k != PG_GEMM_AVX2))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT,
                            "pg_backend_cpu_set_gemm: bad kernel %d or min_rows %d", (int)k,
                            min_rows);
    const int avx2 = pg_gemm_avx2_usable();
    if (k == PG_GEMM_AVX2 && !avx2)
        return pg_set_error(PG_ERR_UNSUPPORTED,
                            "pg_backend_cpu_set_gemm: AVX2+FMA not usable on this CPU or build");
    cpu_backend *c = cpu_of(b);
    c->gemm = k == PG_GEMM_GENERIC || (k == PG_GEMM_AUTO && !avx2) ? pg_gemm_generic
                                                                   : pg_gemm_avx2;
    c->gemm_min_rows = min_rows;
    return PG_OK;
}

pg_status pg_backend_cpu_set_encoder_kernel(pg_backend *b, pg_encoder_kernel k) {
    if (!b || b->ops != &cpu_ops)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT,
                            "pg_backend_cpu_set_encoder_kernel: not a CPU backend");
    if (k != PG_ENCODER_AUTO && k != PG_ENCODER_GENERIC && k != PG_ENCODER_AVX2)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT,
                            "pg_backend_cpu_set_encoder_kernel: bad kernel %d", (int)k);
    const int avx2 = pg_gemm_avx2_usable();
    if (k == PG_ENCODER_AVX2 && !avx2)
        return pg_set_error(PG_ERR_UNSUPPORTED, "pg_backend_cpu_set_encoder_kernel: AVX2+FMA "
                            "not usable on this CPU or build");
    cpu_of(b)->enc_avx2 = k != PG_ENCODER_GENERIC && avx2;
    return PG_OK;
}
