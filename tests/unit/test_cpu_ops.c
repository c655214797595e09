/*
 * test_cpu_ops.c — the thread pool and every CPU backend op against naive float64 references
 * written here, on seeded random inputs, for 1, 2 and 3 threads.
 *
 * Outputs are poisoned with NaN before each op, so an element an op forgets to write fails.
 * Matmul, matmul_add and get_rows run over all five weight types; their reference is the
 * dequantised weight (pg_dequantize_row) in double, so the bound measures the op, not the
 * quantisation. The batched matmul's GEMM path (gemm.h) is also driven alone over awkward
 * shapes, each kernel (portable and AVX2) explicitly, on 1 and 3 threads. Attention covers
 * decode (n = 1, pos0 > 0), prefill (n > 1), grouped-query heads, and both the scores path
 * (reserved context) and the no-scratch online path. RoPE is checked
 * against the exact formula and against ggml's float recurrence (which it must reproduce).
 * The encoder ops (LayerNorm, exact GELU, add_bias, attention_full over strided fused Q/K/V,
 * bidirectional with a bias_kv-style extra row, and causal, one sequence or a batch of clips)
 * have their own float64 references; im2col is checked against the Conv it stands for (the
 * direct convolution by its definition), l2norm_sum and project against float64,
 * and run once with each kernel family (the portable ops and encoder_avx2.h's, chosen with
 * pg_backend_cpu_set_encoder_kernel); attention_full's blocked kernel is also driven over
 * awkward shapes (query blocks, key strips and head dims that do not divide evenly). The vector
 * expf and erff under the AVX2 kernels are checked against double exp / erf on 2^24 evenly
 * spaced points and the special values.
 * Bound everywhere: max |got - ref| <= 1e-5 * max |ref| (for the GEMM shapes, a scale that
 * cannot cancel to zero; see test_gemm_shapes).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* clock_gettime, nanosleep under -std=c11 */
#endif
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pandagpt.h"
#include "check.h"

#include "backend/backend.h"
#include "backend/cpu/encoder_avx2.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/threadpool.h"
#include "gguf/dtype.h"

#define TOL 1e-5

/* ---- helpers -------------------------------------------------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static float rnd(void) { return (float)((rnd_u32() >> 8) * (1.0 / 16777216.0) * 2.0 - 1.0); }

static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = rnd() * scale;
}

static void poison(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = NAN;
}

/* max |got - ref| / max |ref|; infinite when an element is not finite. */
static double rel_err(const float *got, const double *ref, size_t n) {
    double md = 0.0, mr = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) return INFINITY;
        double d = fabs((double)got[i] - ref[i]);
        if (d > md) md = d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return mr > 0 ? md / mr : md;
}

/* rel_err with the scale at least floor: max |got - ref| / max(max |ref|, floor). */
static double rel_err_floor(const float *got, const double *ref, size_t n, double floor) {
    double md = 0.0, mr = floor;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) return INFINITY;
        double d = fabs((double)got[i] - ref[i]);
        if (d > md) md = d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return mr > 0 ? md / mr : md;
}

/* The worst error seen per op, printed at the end. */
static struct { const char *op; double worst; } worst[48];
static int n_worst = 0;

static void record(const char *op, double err, double tol, const char *where) {
    int i = 0;
    while (i < n_worst && strcmp(worst[i].op, op) != 0) i++;
    if (i == n_worst) worst[n_worst++].op = op;
    if (err > worst[i].worst) worst[i].worst = err;
    CHECK_MSG(err <= tol, "%s %s: relative error %.3g > %.3g", op, where, err, tol);
}

/* The encoder ops' kernel family under test ("generic" or "avx2"), and op names with it
 * appended ("gelu[avx2]"), kept for the worst table. */
static const char *enc_kernel = "generic";

static const char *enc_op(const char *op) {
    static char names[24][40];
    static int n_names = 0;
    char name[40];
    snprintf(name, sizeof name, "%s[%s]", op, enc_kernel);
    for (int i = 0; i < n_names; i++)
        if (strcmp(names[i], name) == 0) return names[i];
    if (n_names == 24) return op;
    memcpy(names[n_names], name, sizeof name);
    return names[n_names++];
}

static float *balloc(pg_backend *b, size_t n) {
    void *p = NULL;
    CHECK_OK(b->ops->alloc(b, n * sizeof(float) + 4, &p));
    return p;
}

static const uint32_t all_types[] = {PG_DTYPE_F32, PG_DTYPE_F16, PG_DTYPE_BF16, PG_DTYPE_Q8_0,
                                     PG_DTYPE_Q4_0};

/* A random weight of type t and its dequantised values in double. */
typedef struct test_weight {
    pg_weight w;
    void *bytes;
    double *ref; /* [n_out][n_in] */
} test_weight;

static void weight_make(test_weight *tw, uint32_t t, int64_t n_in, int64_t n_out) {
    size_t rb = pg_dtype_row_bytes(t, n_in);
    tw->bytes = malloc(rb * (size_t)n_out);
    tw->ref = malloc(sizeof(double) * (size_t)(n_in * n_out));
    float *row = malloc(sizeof(float) * (size_t)n_in);
    for (int64_t r = 0; r < n_out; r++) {
        fill(row, (size_t)n_in, 1.0f);
        pg_quantize_row(t, row, (uint8_t *)tw->bytes + (size_t)r * rb, n_in);
        pg_dequantize_row(t, (uint8_t *)tw->bytes + (size_t)r * rb, row, n_in);
        for (int64_t i = 0; i < n_in; i++) tw->ref[r * n_in + i] = row[i];
    }
    free(row);
    tw->w = (pg_weight){t, n_in, n_out, rb, tw->bytes};
}

static void weight_free(test_weight *tw) {
    free(tw->bytes);
    free(tw->ref);
}

/* ---- thread pool ------------------------------------------------------------------------------- */

typedef struct pool_ctx {
    atomic_int calls[8];
    atomic_int bad_nth;
    int want_nth;
} pool_ctx;

static void pool_fn(void *ctx, int ith, int nth) {
    pool_ctx *c = ctx;
    if (nth != c->want_nth || ith < 0 || ith >= nth) atomic_fetch_add(&c->bad_nth, 1);
    else atomic_fetch_add(&c->calls[ith], 1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_pool(int nth) {
    pg_pool *p = NULL;
    CHECK_OK(pg_pool_new(nth, &p));
    if (!p) return;
    CHECK_EQ_INT(pg_pool_size(p), nth);
    pool_ctx c;
    memset(&c, 0, sizeof c);
    c.want_nth = nth;
    const int runs = 20000;
    double t0 = now_s();
    for (int r = 0; r < runs; r++) pg_pool_run(p, pool_fn, &c);
    double dt = now_s() - t0;
    /* past the spin window: the workers sleep and must be woken */
    for (int r = 0; r < 3; r++) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        pg_pool_run(p, pool_fn, &c);
    }
    CHECK_EQ_INT(atomic_load(&c.bad_nth), 0);
    for (int i = 0; i < nth; i++) CHECK_EQ_INT(atomic_load(&c.calls[i]), runs + 3);
    printf("pool %d threads: %.2f us per empty run\n", nth, dt / runs * 1e6);
    pg_pool_free(p);
    CHECK_STATUS(pg_pool_new(0, &p), PG_ERR_INVALID_ARGUMENT);
    CHECK(p == NULL);
}

/* Two threads share one pool (two sessions on one CPU backend): runs must serialise, each
 * caller seeing its own job run exactly once per thread. */
typedef struct shared_arg { pg_pool *p; pool_ctx c; } shared_arg;

static void *shared_main(void *arg) {
    shared_arg *a = arg;
    for (int r = 0; r < 3000; r++) pg_pool_run(a->p, pool_fn, &a->c);
    return NULL;
}

static void test_pool_shared(int nth) {
    pg_pool *p = NULL;
    CHECK_OK(pg_pool_new(nth, &p));
    if (!p) return;
    shared_arg a[2];
    memset(a, 0, sizeof a);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        a[i].p = p;
        a[i].c.want_nth = nth;
        CHECK(pthread_create(&th[i], NULL, shared_main, &a[i]) == 0);
    }
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(atomic_load(&a[i].c.bad_nth), 0);
        for (int t = 0; t < nth; t++) CHECK_EQ_INT(atomic_load(&a[i].c.calls[t]), 3000);
    }
    pg_pool_free(p);
}

/* ---- ops ----------------------------------------------------------------------------------- */

static void test_matmul(pg_backend *b, int nth, int64_t n_in, int64_t n_out, int n, int add) {
    for (size_t ti = 0; ti < sizeof all_types / sizeof all_types[0]; ti++) {
        uint32_t t = all_types[ti];
        if (n_in % pg_dtype_block_elems(t)) continue;
        test_weight tw;
        weight_make(&tw, t, n_in, n_out);
        float *x = balloc(b, (size_t)(n * n_in)), *y = balloc(b, (size_t)(n * n_out));
        double *ref = malloc(sizeof(double) * (size_t)(n * n_out));
        fill(x, (size_t)(n * n_in), 1.0f);
        if (add) fill(y, (size_t)(n * n_out), 1.0f);
        else poison(y, (size_t)(n * n_out));
        for (int i = 0; i < n; i++)
            for (int64_t r = 0; r < n_out; r++) {
                double s = add ? y[i * n_out + r] : 0.0;
                for (int64_t k = 0; k < n_in; k++) s += tw.ref[r * n_in + k] * x[i * n_in + k];
                ref[i * n_out + r] = s;
            }
        if (add) b->ops->matmul_add(b, &tw.w, x, y, n);
        else b->ops->matmul(b, &tw.w, x, y, n);
        char where[96];
        snprintf(where, sizeof where, "%s n_in=%lld n_out=%lld n=%d threads=%d",
                 pg_dtype_name(t), (long long)n_in, (long long)n_out, n, nth);
        record(add ? "matmul_add" : "matmul", rel_err(y, ref, (size_t)(n * n_out)), TOL, where);
        free(ref);
        b->ops->free(b, x);
        b->ops->free(b, y);
        weight_free(&tw);
    }
}

/* The GEMM path over every combination of awkward shapes: n not a multiple of the tile rows
 * (6 AVX2, 4 portable) nor of the 72-row block, n_out not a multiple of 16 (and a single output,
 * where the threads split the tokens instead), n_in not a multiple of 8 or of the 256 slice, and
 * more outputs than one 256-row block. Every n goes through the GEMM (min_rows 1). The reference
 * is computed once per shape and type; each kernel x thread count x {matmul, matmul_add} is
 * checked against it, and the worst error of each kernel and type is printed.
 * The scale of the bound is max |ref| or, if larger, the largest root-sum-square of one output's
 * products: with one or two outputs (n = 1, n_out = 1) max |ref| can be a sum that cancelled to
 * near zero, whose relative error no summation order keeps small; with many outputs the two
 * scales agree. */
static void test_gemm_shapes(void) {
    static const int ns[] = {1, 2, 5, 6, 7, 13, 64, 257};
    static const int64_t n_ins[] = {1, 7, 32, 33, 100, 1176, 1280};
    static const int64_t n_outs[] = {1, 15, 16, 17, 100, 384};
    static const int threads[] = {1, 3};
    static const struct { pg_gemm_kernel k; const char *name; } kernels[] = {
        {PG_GEMM_GENERIC, "generic"}, {PG_GEMM_AVX2, "avx2"}};
    const int n_kernels = pg_gemm_avx2_usable() ? 2 : 1;
    const int64_t max_n = 257, max_in = 1280, max_out = 384;
    enum { N_TYPES = sizeof all_types / sizeof all_types[0] };
    double worst_k[2][N_TYPES] = {{0}};
    int cases_k[2][N_TYPES] = {{0}};
    if (n_kernels == 1) printf("gemm: AVX2+FMA not usable here, portable kernel only\n");

    pg_backend *b[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        CHECK_OK(pg_backend_cpu_new(threads[i], &b[i]));
        if (!b[i]) return;
        CHECK_OK(pg_backend_cpu_reserve(b[i], (int)max_n, max_in, 0));
    }
    float *x = balloc(b[0], (size_t)(max_n * max_in));
    float *y = balloc(b[0], (size_t)(max_n * max_out));
    float *y0 = balloc(b[0], (size_t)(max_n * max_out));
    double *ref = malloc(sizeof(double) * (size_t)(max_n * max_out));
    double *ref_add = malloc(sizeof(double) * (size_t)(max_n * max_out));
    fill(x, (size_t)(max_n * max_in), 1.0f);
    fill(y0, (size_t)(max_n * max_out), 1.0f);
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t t = all_types[ti];
        for (size_t ii = 0; ii < sizeof n_ins / sizeof n_ins[0]; ii++) {
            const int64_t n_in = n_ins[ii];
            if (n_in % pg_dtype_block_elems(t)) continue;
            for (size_t oi = 0; oi < sizeof n_outs / sizeof n_outs[0]; oi++) {
                const int64_t n_out = n_outs[oi];
                test_weight tw;
                weight_make(&tw, t, n_in, n_out);
                for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
                    const int n = ns[ni];
                    const size_t len = (size_t)n * (size_t)n_out;
                    double rss = 0.0; /* the largest root-sum-square of one output's products */
                    for (int i = 0; i < n; i++)
                        for (int64_t r = 0; r < n_out; r++) {
                            double acc = 0.0, sq = 0.0;
                            for (int64_t k = 0; k < n_in; k++) {
                                const double p = tw.ref[r * n_in + k] * x[i * n_in + k];
                                acc += p;
                                sq += p * p;
                            }
                            if (sqrt(sq) > rss) rss = sqrt(sq);
                            ref[i * n_out + r] = acc;
                            ref_add[i * n_out + r] = acc + y0[i * n_out + r];
                        }
                    for (int ki = 0; ki < n_kernels; ki++)
                        for (int bi = 0; bi < 2; bi++)
                            for (int add = 0; add < 2; add++) {
                                CHECK_OK(pg_backend_cpu_set_gemm(b[bi], kernels[ki].k, 1));
                                double err;
                                if (add) {
                                    memcpy(y, y0, len * sizeof(float));
                                    b[bi]->ops->matmul_add(b[bi], &tw.w, x, y, n);
                                    err = rel_err_floor(y, ref_add, len, rss);
                                } else {
                                    poison(y, len);
                                    b[bi]->ops->matmul(b[bi], &tw.w, x, y, n);
                                    err = rel_err_floor(y, ref, len, rss);
                                }
                                char where[128];
                                snprintf(where, sizeof where,
                                         "%s %s n=%d n_in=%lld n_out=%lld threads=%d",
                                         kernels[ki].name, pg_dtype_name(t), n,
                                         (long long)n_in, (long long)n_out, threads[bi]);
                                record(add ? "gemm matmul_add" : "gemm matmul", err, TOL, where);
                                if (err > worst_k[ki][ti]) worst_k[ki][ti] = err;
                                cases_k[ki][ti]++;
                            }
                }
                weight_free(&tw);
            }
        }
    }
    for (int ki = 0; ki < n_kernels; ki++)
        for (size_t ti = 0; ti < N_TYPES; ti++)
            printf("gemm %-7s %-4s max relative error %.3g over %d cases\n", kernels[ki].name,
                   pg_dtype_name(all_types[ti]), worst_k[ki][ti], cases_k[ki][ti]);

    /* the test hook's own contract */
    CHECK_STATUS(pg_backend_cpu_set_gemm(NULL, PG_GEMM_AUTO, 0), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(pg_backend_cpu_set_gemm(b[0], PG_GEMM_AUTO, -1), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(pg_backend_cpu_set_gemm(b[0], (pg_gemm_kernel)7, 0), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(pg_backend_cpu_set_gemm(b[0], PG_GEMM_AVX2, 0),
                 pg_gemm_avx2_usable() ? PG_OK : PG_ERR_UNSUPPORTED);
    CHECK_OK(pg_backend_cpu_set_gemm(b[0], PG_GEMM_AUTO, 0));

    free(ref);
    free(ref_add);
    b[0]->ops->free(b[0], x);
    b[0]->ops->free(b[0], y);
    b[0]->ops->free(b[0], y0);
    for (int i = 0; i < 2; i++) pg_backend_free(b[i]);
}

static void test_get_rows(pg_backend *b, int nth) {
    const int64_t n_in = 96, n_out = 50;
    const int32_t ids[7] = {3, 0, 49, 3, 17, 1, 48};
    for (size_t ti = 0; ti < sizeof all_types / sizeof all_types[0]; ti++) {
        test_weight tw;
        weight_make(&tw, all_types[ti], n_in, n_out);
        for (int n = 1; n <= 7; n += 6) {
            float *out = balloc(b, (size_t)(n * n_in));
            double *ref = malloc(sizeof(double) * (size_t)(n * n_in));
            poison(out, (size_t)(n * n_in));
            for (int i = 0; i < n; i++)
                for (int64_t k = 0; k < n_in; k++) ref[i * n_in + k] = tw.ref[ids[i] * n_in + k];
            b->ops->get_rows(b, &tw.w, ids, n, out);
            char where[64];
            snprintf(where, sizeof where, "%s n=%d threads=%d", pg_dtype_name(all_types[ti]), n,
                     nth);
            record("get_rows", rel_err(out, ref, (size_t)(n * n_in)), 0.0, where);
            free(ref);
            b->ops->free(b, out);
        }
        weight_free(&tw);
    }
}

static void test_rmsnorm(pg_backend *b, int nth, int n, int dim, int in_place) {
    const float eps = 9.99999997e-07f;
    float *x = balloc(b, (size_t)n * dim), *y = balloc(b, (size_t)n * dim), *w = balloc(b, dim);
    double *ref = malloc(sizeof(double) * (size_t)n * dim);
    fill(x, (size_t)n * dim, 3.0f);
    for (int i = 0; i < dim; i++) w[i] = 1.0f + 0.1f * rnd();
    for (int r = 0; r < n; r++) {
        double ss = 0;
        for (int i = 0; i < dim; i++) ss += (double)x[r * dim + i] * x[r * dim + i];
        double sc = 1.0 / sqrt(ss / dim + (double)eps);
        for (int i = 0; i < dim; i++) ref[r * dim + i] = x[r * dim + i] * sc * w[i];
    }
    float *dst = in_place ? x : y;
    if (!in_place) poison(y, (size_t)n * dim);
    b->ops->rmsnorm(b, dst, x, w, n, dim, eps);
    char where[64];
    snprintf(where, sizeof where, "n=%d dim=%d in_place=%d threads=%d", n, dim, in_place, nth);
    record("rmsnorm", rel_err(dst, ref, (size_t)n * dim), TOL, where);
    free(ref);
    b->ops->free(b, x);
    b->ops->free(b, y);
    b->ops->free(b, w);
}

static void test_rope(pg_backend *b, int nth, int n, int n_head, int head_dim, int n_rot,
                      int pos0) {
    const float base = 10000.0f;
    const size_t len = (size_t)n * n_head * head_dim;
    float *x = balloc(b, len);
    double *ref = malloc(sizeof(double) * len), *ref_ggml = malloc(sizeof(double) * len);
    fill(x, len, 1.0f);
    for (int t = 0; t < n; t++) {
        const float theta_scale = powf(base, -2.0f / (float)n_rot);
        float theta_f = (float)(pos0 + t); /* ggml_rope_cache_init's recurrence */
        for (int i = 0; i < head_dim / 2; i++, theta_f *= theta_scale) {
            double th = (pos0 + t) * pow(10000.0, -2.0 * i / n_rot);
            for (int h = 0; h < n_head; h++) {
                size_t o = ((size_t)t * n_head + h) * head_dim + 2 * i;
                double x0 = x[o], x1 = x[o + 1];
                if (2 * i >= n_rot) {
                    ref[o] = ref_ggml[o] = x0;
                    ref[o + 1] = ref_ggml[o + 1] = x1;
                    continue;
                }
                ref[o] = x0 * cos(th) - x1 * sin(th);
                ref[o + 1] = x0 * sin(th) + x1 * cos(th);
                float c = cosf(theta_f), s = sinf(theta_f);
                ref_ggml[o] = (float)(x[o] * c - x[o + 1] * s);
                ref_ggml[o + 1] = (float)(x[o] * s + x[o + 1] * c);
            }
        }
    }
    b->ops->rope(b, x, n, n_head, head_dim, n_rot, pos0, base);
    char where[96];
    snprintf(where, sizeof where, "n=%d heads=%d hd=%d n_rot=%d pos0=%d threads=%d", n, n_head,
             head_dim, n_rot, pos0, nth);
    record("rope(vs ggml float)", rel_err(x, ref_ggml, len), 1e-7, where);
    /* float theta loses ~pos*1e-7 rad against the exact formula, as in ggml */
    record("rope(vs exact)", rel_err(x, ref, len), TOL + 2e-7 * (pos0 + n), where);
    free(ref);
    free(ref_ggml);
    b->ops->free(b, x);
}

static void test_attention(pg_backend *b, int nth, int n, int pos0, int n_head, int n_head_kv,
                           int head_dim, const char *path) {
    const int n_kv = pos0 + n, group = n_head / n_head_kv;
    const size_t qlen = (size_t)n * n_head * head_dim, kvlen = (size_t)n_kv * n_head_kv * head_dim;
    float *q = balloc(b, qlen), *out = balloc(b, qlen);
    float *k = balloc(b, kvlen + 64), *v = balloc(b, kvlen + 64);
    double *ref = malloc(sizeof(double) * qlen), *s = malloc(sizeof(double) * n_kv);
    fill(q, qlen, 2.0f);
    fill(k, kvlen, 2.0f);
    fill(v, kvlen, 1.0f);
    /* rows past the causal horizon must be ignored */
    for (size_t i = kvlen; i < kvlen + 64; i++) k[i] = v[i] = NAN;
    poison(out, qlen);
    const double scale = 1.0 / sqrt((double)head_dim);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < n_head; h++) {
            const float *qh = q + ((size_t)t * n_head + h) * head_dim;
            const int kvh = h / group, m = pos0 + t + 1;
            double mx = -INFINITY, sum = 0;
            for (int p = 0; p < m; p++) {
                const float *kh = k + ((size_t)p * n_head_kv + kvh) * head_dim;
                double d = 0;
                for (int i = 0; i < head_dim; i++) d += (double)qh[i] * kh[i];
                s[p] = d * scale;
                if (s[p] > mx) mx = s[p];
            }
            for (int p = 0; p < m; p++) sum += (s[p] = exp(s[p] - mx));
            for (int i = 0; i < head_dim; i++) {
                double o = 0;
                for (int p = 0; p < m; p++) o += s[p] * v[((size_t)p * n_head_kv + kvh) * head_dim + i];
                ref[((size_t)t * n_head + h) * head_dim + i] = o / sum;
            }
        }
    b->ops->attention(b, out, q, k, v, n, pos0, n_head, n_head_kv, head_dim);
    char where[128];
    snprintf(where, sizeof where, "%s n=%d pos0=%d heads=%d/%d hd=%d threads=%d", path, n, pos0,
             n_head, n_head_kv, head_dim, nth);
    record("attention", rel_err(out, ref, qlen), TOL, where);
    free(ref);
    free(s);
    b->ops->free(b, q);
    b->ops->free(b, out);
    b->ops->free(b, k);
    b->ops->free(b, v);
}

static void test_elementwise(pg_backend *b, int nth, size_t n) {
    float *y = balloc(b, n), *x = balloc(b, n), *d = balloc(b, n);
    double *ref = calloc(n, sizeof(double));
    char where[48];
    snprintf(where, sizeof where, "n=%zu threads=%d", n, nth);

    fill(y, n, 8.0f);
    fill(x, n, 2.0f);
    for (size_t i = 0; i < n; i++) ref[i] = y[i] / (1.0 + exp(-(double)y[i])) * x[i];
    b->ops->silu_mul(b, y, x, n);
    record("silu_mul", rel_err(y, ref, n), TOL, where);

    fill(y, n, 1.0f);
    for (size_t i = 0; i < n; i++) ref[i] = (double)y[i] + x[i];
    b->ops->add(b, y, x, n);
    record("add", rel_err(y, ref, n), TOL, where);

    poison(d, n);
    for (size_t i = 0; i < n; i++) ref[i] = x[i];
    b->ops->copy(b, d, x, n);
    record("copy", rel_err(d, ref, n), 0.0, where);

    free(ref);
    b->ops->free(b, y);
    b->ops->free(b, x);
    b->ops->free(b, d);
}

/* ---- encoder ops --------------------------------------------------------------------------- */

static void test_layernorm(pg_backend *b, int nth, int n, int dim, int in_place, float offset) {
    const float eps = 9.99999997e-07f;
    float *x = balloc(b, (size_t)n * dim), *y = balloc(b, (size_t)n * dim);
    float *w = balloc(b, dim), *bias = balloc(b, dim);
    double *ref = malloc(sizeof(double) * (size_t)n * dim);
    for (size_t i = 0; i < (size_t)n * dim; i++) x[i] = offset + 3.0f * rnd();
    for (int i = 0; i < dim; i++) {
        w[i] = 1.0f + 0.1f * rnd();
        bias[i] = 0.5f * rnd();
    }
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * dim;
        double mean = 0, var = 0;
        for (int i = 0; i < dim; i++) mean += xr[i];
        mean /= dim;
        for (int i = 0; i < dim; i++) var += (xr[i] - mean) * (xr[i] - mean);
        var /= dim;
        for (int i = 0; i < dim; i++)
            ref[(size_t)r * dim + i] = (xr[i] - mean) / sqrt(var + (double)eps) * w[i] + bias[i];
    }
    float *dst = in_place ? x : y;
    if (!in_place) poison(y, (size_t)n * dim);
    b->ops->layernorm(b, dst, x, w, bias, n, dim, eps);
    char where[96];
    snprintf(where, sizeof where, "n=%d dim=%d in_place=%d offset=%g threads=%d", n, dim,
             in_place, offset, nth);
    record(enc_op("layernorm"), rel_err(dst, ref, (size_t)n * dim), 1e-6, where);
    free(ref);
    b->ops->free(b, x);
    b->ops->free(b, y);
    b->ops->free(b, w);
    b->ops->free(b, bias);
}

static void test_gelu(pg_backend *b, int nth, size_t n) {
    float *x = balloc(b, n);
    double *ref = malloc(sizeof(double) * n);
    fill(x, n, 6.0f);
    /* 1 + erf(x) cancels for x << 0 (in torch too): the max-relative bound needs a row whose
     * largest output is well-conditioned, so a lone value is positive */
    if (n == 1) x[0] = 1.25f;
    if (n > 2) x[0] = 0.0f, x[1] = -12.0f; /* erf saturates: exactly 0 / tiny negatives */
    if (n > 3) x[2] = 2.0f; /* and for short rows the random rest may all be negative */
    for (size_t i = 0; i < n; i++) ref[i] = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
    b->ops->gelu(b, x, n);
    char where[48];
    snprintf(where, sizeof where, "n=%zu threads=%d", n, nth);
    record(enc_op("gelu"), rel_err(x, ref, n), 1e-6, where);
    /* elementwise relative bound on the positive half, where GELU is not near 0 */
    double worst_el = 0;
    for (size_t i = 0; i < n; i++)
        if (ref[i] > 0.1) {
            double e = fabs(x[i] - ref[i]) / ref[i];
            if (e > worst_el) worst_el = e;
        }
    record(enc_op("gelu(elementwise)"), worst_el, 1e-6, where);
    free(ref);
    b->ops->free(b, x);
}

static void test_add_bias(pg_backend *b, int nth, int n, int dim) {
    float *y = balloc(b, (size_t)n * dim), *bias = balloc(b, dim);
    double *ref = malloc(sizeof(double) * (size_t)n * dim);
    fill(y, (size_t)n * dim, 2.0f);
    fill(bias, dim, 1.0f);
    for (int r = 0; r < n; r++)
        for (int i = 0; i < dim; i++)
            ref[(size_t)r * dim + i] = (double)y[(size_t)r * dim + i] + bias[i];
    b->ops->add_bias(b, y, bias, n, dim);
    char where[64];
    snprintf(where, sizeof where, "n=%d dim=%d threads=%d", n, dim, nth);
    record(enc_op("add_bias"), rel_err(y, ref, (size_t)n * dim), 1e-7, where);
    free(ref);
    b->ops->free(b, y);
    b->ops->free(b, bias);
}

/* The float64 reference of one attention_full sequence over a fused buffer [n_kv][stride]:
 * q, k, v its column slices; with extra > 0 the last rows hold keys/values only (bias_kv). */
static void attention_full_ref(const float *qkv, size_t stride, int n_q, int extra, int n_head,
                               int head_dim, int causal, double *ref) {
    const int n_kv = n_q + extra, E = n_head * head_dim;
    double *s = malloc(sizeof(double) * (size_t)n_kv);
    const double scale = 1.0 / sqrt((double)head_dim);
    for (int t = 0; t < n_q; t++)
        for (int h = 0; h < n_head; h++) {
            const float *qh = qkv + (size_t)t * stride + (size_t)h * head_dim;
            const int m = causal ? t + 1 + extra : n_kv;
            double mx = -INFINITY, sum = 0;
            for (int p = 0; p < m; p++) {
                const float *kh = qkv + (size_t)p * stride + E + (size_t)h * head_dim;
                double d = 0;
                for (int i = 0; i < head_dim; i++) d += (double)qh[i] * kh[i];
                s[p] = d * scale;
                if (s[p] > mx) mx = s[p];
            }
            for (int p = 0; p < m; p++) sum += (s[p] = exp(s[p] - mx));
            for (int i = 0; i < head_dim; i++) {
                double o = 0;
                for (int p = 0; p < m; p++)
                    o += s[p] * qkv[(size_t)p * stride + 2 * (size_t)E + (size_t)h * head_dim + i];
                ref[((size_t)t * n_head + h) * head_dim + i] = o / sum;
            }
        }
    free(s);
}

/* attention_full over n_batch sequences laid out as the encoder does, each a fused buffer
 * [n_kv][3E (+pad)] followed by gap unused rows (poisoned: never read), q, k, v its column
 * slices; with extra > 0 each sequence's last rows hold keys/values only (bias_kv). */
static void test_attention_full_batch(pg_backend *b, int nth, int n_batch, int gap, int n_q,
                                      int extra, int n_head, int head_dim, int pad, int causal,
                                      const char *path) {
    const int n_kv = n_q + extra, E = n_head * head_dim;
    const size_t stride = (size_t)3 * E + (size_t)pad;
    const size_t seq = (size_t)(n_kv + gap) * stride, out_seq = (size_t)n_q * E;
    float *qkv = balloc(b, (size_t)n_batch * seq), *out = balloc(b, (size_t)n_batch * out_seq);
    double *ref = malloc(sizeof(double) * (size_t)n_batch * out_seq);
    fill(qkv, (size_t)n_batch * seq, 2.0f);
    for (int sq = 0; sq < n_batch; sq++) {
        float *x = qkv + (size_t)sq * seq;
        for (int p = 0; p < n_kv; p++) /* the padding columns must never be read */
            for (int i = 3 * E; i < (int)stride; i++) x[(size_t)p * stride + i] = NAN;
        for (int p = n_q; p < n_kv; p++) /* nor the query columns of key-only rows */
            for (int i = 0; i < E; i++) x[(size_t)p * stride + i] = NAN;
        for (size_t i = (size_t)n_kv * stride; i < seq; i++) x[i] = NAN; /* nor the gap */
        attention_full_ref(x, stride, n_q, extra, n_head, head_dim, causal,
                           ref + (size_t)sq * out_seq);
    }
    poison(out, (size_t)n_batch * out_seq);
    b->ops->attention_full(b, out, qkv, qkv + E, qkv + 2 * E, n_q, n_kv, stride, stride,
                           n_batch, seq, n_head, head_dim, causal);
    char where[160];
    snprintf(where, sizeof where, "%s batch=%d gap=%d n_q=%d n_kv=%d heads=%d hd=%d pad=%d "
             "causal=%d threads=%d", path, n_batch, gap, n_q, n_kv, n_head, head_dim, pad,
             causal, nth);
    record(enc_op("attention_full"), rel_err(out, ref, (size_t)n_batch * out_seq), TOL, where);
    free(ref);
    b->ops->free(b, qkv);
    b->ops->free(b, out);
}

static void test_attention_full(pg_backend *b, int nth, int n_q, int extra, int n_head,
                                int head_dim, int pad, int causal, const char *path) {
    test_attention_full_batch(b, nth, 1, 0, n_q, extra, n_head, head_dim, pad, causal, path);
}

/* im2col against the Conv it stands for: a random Conv weight W [n_out][c][k_t][k_h][k_w]
 * applied directly to the input (float64, the definition with PadIm2Video's frame repeat),
 * versus the im2col rows times W flattened in (c, t, i, j) order. */
static void test_im2col(pg_backend *b, const char *name, pg_conv_geom g, int n_items) {
    const int gh = (g.height - g.k_h) / g.s_h + 1, gw = (g.width - g.k_w) / g.s_w + 1;
    const int K = g.channels * g.k_t * g.k_h * g.k_w, n_out = 3, T = gh * gw;
    const size_t item = (size_t)g.channels * g.frames * g.height * g.width;
    float *in = balloc(b, (size_t)n_items * item), *rows = balloc(b, (size_t)n_items * T * K);
    float *w = malloc(sizeof(float) * (size_t)n_out * K);
    double *ref = malloc(sizeof(double) * (size_t)n_items * T * n_out);
    double *got = malloc(sizeof(double) * (size_t)n_items * T * n_out);
    fill(in, (size_t)n_items * item, 1.0f);
    fill(w, (size_t)n_out * K, 1.0f);
    poison(rows, (size_t)n_items * T * K);
    b->ops->im2col(b, rows, in, n_items, &g);
    for (int it = 0; it < n_items; it++)
        for (int ph = 0; ph < gh; ph++)
            for (int pw = 0; pw < gw; pw++)
                for (int o = 0; o < n_out; o++) {
                    const size_t r = ((size_t)it * T + (size_t)ph * gw + pw) * n_out + o;
                    double conv = 0, mm = 0;
                    int k = 0;
                    for (int c = 0; c < g.channels; c++)
                        for (int t = 0; t < g.k_t; t++)
                            for (int i = 0; i < g.k_h; i++)
                                for (int j = 0; j < g.k_w; j++, k++) {
                                    const int f = g.frames == 1 ? 0 : t;
                                    const size_t at = (size_t)it * item +
                                        (((size_t)c * g.frames + f) * g.height + ph * g.s_h + i) *
                                            g.width + (size_t)pw * g.s_w + j;
                                    conv += (double)w[(size_t)o * K + k] * in[at];
                                    mm += (double)w[(size_t)o * K + k] *
                                          rows[((size_t)it * T + (size_t)ph * gw + pw) * K + k];
                                }
                    ref[r] = conv;
                    got[r] = mm;
                }
    double err = 0, mx = 0;
    for (size_t i = 0; i < (size_t)n_items * T * n_out; i++) {
        if (!(fabs(got[i] - ref[i]) <= err)) err = fabs(got[i] - ref[i]); /* NaN: infinite */
        if (isnan(got[i])) err = INFINITY;
        if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
    }
    char where[96];
    snprintf(where, sizeof where, "%s x%d", name, n_items);
    record("im2col", err / mx, 0.0, where); /* the same products in the same order: exact */
    free(w);
    free(ref);
    free(got);
    b->ops->free(b, in);
    b->ops->free(b, rows);
}

/* l2norm_sum against float64: the clips' normalised (and scaled) rows, weighted and summed,
 * onto zeros or onto a previous result; one row all zeros checks the 1e-12 clamp. */
static void test_l2norm_sum(pg_backend *b, int n_rows, int dim, float scale, int accumulate) {
    float *x = balloc(b, (size_t)n_rows * dim), *out = balloc(b, (size_t)dim);
    double *ref = malloc(sizeof(double) * (size_t)dim);
    fill(x, (size_t)n_rows * dim, 3.0f);
    if (n_rows > 1) memset(x + dim, 0, sizeof(float) * (size_t)dim);
    fill(out, (size_t)dim, 1.0f);
    const float weight = 1.0f / (float)n_rows;
    for (int d = 0; d < dim; d++) ref[d] = accumulate ? out[d] : 0.0;
    for (int c = 0; c < n_rows; c++) {
        double ss = 0;
        for (int d = 0; d < dim; d++) ss += (double)x[(size_t)c * dim + d] * x[(size_t)c * dim + d];
        const double nrm = sqrt(ss) > 1e-12 ? sqrt(ss) : 1e-12;
        for (int d = 0; d < dim; d++) ref[d] += (double)weight * scale * x[(size_t)c * dim + d] / nrm;
    }
    if (!accumulate) poison(out, (size_t)dim);
    b->ops->l2norm_sum(b, out, x, n_rows, dim, scale, weight, accumulate);
    char where[96];
    snprintf(where, sizeof where, "rows=%d dim=%d scale=%g acc=%d", n_rows, dim, scale, accumulate);
    record("l2norm_sum", rel_err(out, ref, (size_t)dim), 1e-6, where);
    free(ref);
    b->ops->free(b, x);
    b->ops->free(b, out);
}

/* project (llama_proj) against float64 over the dequantised weight, with and without bias,
 * written or accumulated. */
static void test_project(pg_backend *b, int nth, uint32_t t, int64_t n_in, int64_t n_out,
                         int with_bias, int accumulate) {
    test_weight tw;
    weight_make(&tw, t, n_in, n_out);
    float *u = balloc(b, (size_t)n_in), *y = balloc(b, (size_t)n_out);
    float *bias = balloc(b, (size_t)n_out);
    double *ref = malloc(sizeof(double) * (size_t)n_out);
    fill(u, (size_t)n_in, 1.0f);
    fill(bias, (size_t)n_out, 1.0f);
    fill(y, (size_t)n_out, 1.0f);
    for (int64_t r = 0; r < n_out; r++) {
        double d = 0;
        for (int64_t k = 0; k < n_in; k++) d += tw.ref[r * n_in + k] * u[k];
        ref[r] = (accumulate ? y[r] : 0.0) + d + (with_bias ? bias[r] : 0.0);
    }
    if (!accumulate) poison(y, (size_t)n_out);
    b->ops->project(b, &tw.w, with_bias ? bias : NULL, u, y, accumulate);
    char where[128];
    snprintf(where, sizeof where, "%s [%lld -> %lld] bias=%d acc=%d threads=%d",
             pg_dtype_name(t), (long long)n_in, (long long)n_out, with_bias, accumulate, nth);
    record("project", rel_err(y, ref, (size_t)n_out), 1e-6, where);
    weight_free(&tw);
    free(ref);
    b->ops->free(b, u);
    b->ops->free(b, y);
    b->ops->free(b, bias);
}

/* The ImageBind-only ops: each tower's patch geometry, the postprocessing, llama_proj. */
static void test_imagebind_ops(pg_backend *b, int nth) {
    test_im2col(b, "image", (pg_conv_geom){3, 1, 224, 224, 2, 14, 14, 14, 14}, 1);
    test_im2col(b, "video", (pg_conv_geom){3, 2, 224, 224, 2, 14, 14, 14, 14}, 2);
    test_im2col(b, "audio", (pg_conv_geom){1, 1, 128, 204, 1, 16, 16, 10, 10}, 3);
    test_im2col(b, "thermal", (pg_conv_geom){1, 1, 224, 224, 1, 16, 16, 16, 16}, 1);
    test_im2col(b, "imu", (pg_conv_geom){6, 1, 1, 2000, 1, 1, 8, 1, 8}, 1);
    test_im2col(b, "odd", (pg_conv_geom){2, 3, 11, 9, 2, 3, 2, 2, 3}, 2);
    test_l2norm_sum(b, 1, 32, 1.0f, 0);
    test_l2norm_sum(b, 3, 1024, 1.0f, 0);
    test_l2norm_sum(b, 15, 1024, 10.0f, 1);
    test_l2norm_sum(b, 2, 7, 5.0f, 1);
    for (size_t i = 0; i < sizeof all_types / sizeof all_types[0]; i++)
        test_project(b, nth, all_types[i], 64, 40, 1, 0);
    test_project(b, nth, PG_DTYPE_F32, 1024, 5120, 1, 0);
    test_project(b, nth, PG_DTYPE_F16, 1024, 517, 0, 1);
    test_project(b, nth, PG_DTYPE_F32, 8192, 3, 1, 1); /* rows longer than one 4096 chunk */
}

static void test_memory(pg_backend *b) {
    void *p = NULL;
    CHECK_OK(b->ops->alloc(b, 0, &p));
    CHECK(p != NULL);
    b->ops->free(b, p);
    CHECK_OK(b->ops->alloc(b, 1000, &p));
    CHECK(p != NULL && ((uintptr_t)p & 63) == 0);
    int zero = 1;
    for (int i = 0; i < 1000; i++) zero &= ((unsigned char *)p)[i] == 0;
    CHECK(zero);
    unsigned char src[100], back[100];
    for (int i = 0; i < 100; i++) src[i] = (unsigned char)i;
    b->ops->upload(b, p, src, 100);
    b->ops->download(b, back, p, 100);
    CHECK(memcmp(src, back, 100) == 0);
    b->ops->free(b, p);
    CHECK_OK(b->ops->sync(b));
    CHECK_STATUS(b->ops->alloc(b, SIZE_MAX - 8, &p), PG_ERR_OUT_OF_MEMORY);
    CHECK(p == NULL);
    CHECK(strstr(pg_last_error(), "cannot allocate") != NULL);
}

/* The encoder ops on a backend reserved for 256 positions, with the kernel family set. Paths:
 * "scores" the portable two-pass op or the blocked AVX2 kernel (both need the reservation),
 * "online" the portable one-pass op (beyond it). */
static void test_encoder_ops(pg_backend *b, int nth) {
    test_layernorm(b, nth, 1, 64, 0, 0.0f);
    test_layernorm(b, nth, 7, 100, 0, 0.0f);
    test_layernorm(b, nth, 257, 64, 1, 0.0f);   /* many rows: the parallel path */
    test_layernorm(b, nth, 3, 1280, 0, 20.0f);  /* a large mean: two-pass variance */
    test_layernorm(b, nth, 2, 13, 1, -5.0f);
    test_layernorm(b, nth, 4, 384, 1, 1000.0f); /* a mean far above the spread */
    test_gelu(b, nth, 1);
    test_gelu(b, nth, 7);
    test_gelu(b, nth, 777);
    test_gelu(b, nth, 40003);
    test_add_bias(b, nth, 1, 48);
    test_add_bias(b, nth, 229, 144);
    test_add_bias(b, nth, 5, 7);
    test_add_bias(b, nth, 3, 1283);
    test_attention_full(b, nth, 1, 0, 4, 16, 0, 0, "scores");   /* one query, one key */
    test_attention_full(b, nth, 57, 0, 4, 16, 0, 0, "scores");  /* vision-like */
    test_attention_full(b, nth, 57, 1, 4, 12, 3, 0, "scores");  /* bias_kv row, padded rows */
    test_attention_full(b, nth, 77, 0, 2, 4, 0, 1, "scores");   /* text: causal */
    test_attention_full(b, nth, 9, 2, 3, 20, 0, 1, "scores");   /* causal, n_kv > n_q */
    test_attention_full(b, nth, 256, 0, 2, 8, 0, 0, "scores");  /* the reserved maximum */
    test_attention_full(b, nth, 256, 1, 2, 8, 0, 0, "online");  /* one beyond it */
    /* the blocked kernel's edges: query blocks of 24 and tiles of 6 that do not divide n_q,
     * key strips of 16 and softmax vectors of 8 that do not divide n_kv, head dims that are
     * not a multiple of 16 (a partial value strip) or of 8 (no 8 x 8 key transposes) */
    test_attention_full(b, nth, 2, 0, 1, 3, 0, 0, "scores");
    test_attention_full(b, nth, 24, 0, 3, 16, 0, 0, "scores");
    test_attention_full(b, nth, 25, 0, 3, 40, 1, 0, "scores");
    test_attention_full(b, nth, 47, 8, 5, 24, 0, 0, "scores");
    test_attention_full(b, nth, 49, 3, 2, 33, 2, 1, "scores");  /* causal over 3 blocks */
    test_attention_full(b, nth, 100, 0, 3, 64, 0, 1, "scores"); /* causal, text-like */
    test_attention_full(b, nth, 197, 1, 2, 48, 0, 0, "scores"); /* depth */
    test_attention_full(b, nth, 229, 1, 2, 64, 0, 0, "scores"); /* audio */
    test_attention_full(b, nth, 251, 1, 2, 64, 0, 0, "scores"); /* IMU */
    test_attention_full(b, nth, 255, 1, 2, 80, 0, 0, "scores"); /* vision's head dim */
    test_attention_full(b, nth, 16, 0, 2, 136, 0, 0, "scores"); /* wider than reserved for */
    /* a head too large for the blocked kernel's scratch: the portable op, even with AVX2 */
    test_attention_full(b, nth, 200, 0, 1, 400, 0, 0, "scores");
    /* batches of sequences (an encoder's clips), with and without unused rows between them */
    test_attention_full_batch(b, nth, 3, 0, 57, 1, 4, 16, 0, 0, "scores");
    test_attention_full_batch(b, nth, 15, 2, 25, 0, 3, 40, 1, 0, "scores");
    test_attention_full_batch(b, nth, 2, 1, 30, 0, 2, 8, 0, 1, "scores");
}

/* The vector expf and erff of the AVX2 kernels against double exp / erf: 2^24 evenly spaced
 * points over a range (erf: [-10, 10]; exp: [-104, 89], into the subnormals and past overflow)
 * plus special values. Relative bound 2e-7 where the result is a normal float; below, an absolute
 * bound of one subnormal step. */
static void check_vmath(const char *name, void (*fn)(const float *, float *, size_t),
                        double (*ref_fn)(double), double lo, double hi, const float *special,
                        size_t n_special) {
    const size_t n = (size_t)1 << 24, chunk = 4099; /* odd: every tail length is met */
    float *x = malloc(sizeof(float) * chunk), *y = malloc(sizeof(float) * chunk);
    double worst = 0.0, worst_sub = 0.0, worst_x = 0.0;
    size_t bad = 0;
    for (size_t i0 = 0; i0 < n + n_special; i0 += chunk) {
        const size_t m = n + n_special - i0 < chunk ? n + n_special - i0 : chunk;
        for (size_t i = 0; i < m; i++) {
            const size_t k = i0 + i;
            x[i] = k < n ? (float)(lo + (hi - lo) * (double)k / (double)(n - 1)) : special[k - n];
        }
        fn(x, y, m);
        for (size_t i = 0; i < m; i++) {
            const double r = ref_fn((double)x[i]);
            if (isnan(r) || isinf(r) || fabs(r) > FLT_MAX) {
                /* NaN for NaN; ±inf where the float result overflows */
                const int ok = isnan(r) ? isnan(y[i]) : isinf(y[i]) && (y[i] > 0) == (r > 0);
                if (!ok && bad++ < 5)
                    fprintf(stderr, "%s(%.9g): expected %g, got %.9g\n", name, x[i], r, y[i]);
                continue;
            }
            if (r == 0.0 && (y[i] != 0.0f || !signbit(y[i]) != !signbit(r))) {
                if (bad++ < 5)
                    fprintf(stderr, "%s(%.9g): expected %g, got %.9g\n", name, x[i], r, y[i]);
                continue;
            }
            const double e = fabs((double)y[i] - r);
            if (fabs(r) < FLT_MIN) {
                if (e > worst_sub) worst_sub = e;
            } else if (e / fabs(r) > worst) {
                worst = e / fabs(r);
                worst_x = x[i];
            }
        }
    }
    printf("%s avx2: max relative error %.3g (at %.9g) over %zu points in [%g, %g] and %zu "
           "specials; subnormal results within %.3g\n",
           name, worst, worst_x, n, lo, hi, n_special, worst_sub);
    CHECK_MSG(bad == 0, "%s: %zu special or overflowing values wrong", name, bad);
    CHECK_MSG(worst <= 2e-7, "%s: relative error %.3g at %.9g > 2e-7", name, worst, worst_x);
    CHECK_MSG(worst_sub <= 0x1p-149, "%s: subnormal error %.3g > 2^-149", name, worst_sub);
    free(x);
    free(y);
}

static void test_vmath(void) {
    if (!pg_gemm_avx2_usable()) {
        printf("vmath: AVX2+FMA not usable here, skipped\n");
        return;
    }
    const float erf_special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e30f, -1e30f, FLT_MAX,
                                 -FLT_MAX, FLT_MIN, -FLT_MIN, 1e-40f, -1e-40f, 1e-20f, 0.921875f,
                                 -0.921875f, 0.92187494f, 3.9999998f, 4.0f, 4.0000005f, 3.92f};
    const float exp_special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 88.72283f, 88.72284f,
                                 89.0f, 1e30f, -1e30f, -87.33654f, -87.34f, -103.27893f, -103.97f,
                                 -104.0f, -150.0f, 1e-20f, -1e-20f, FLT_MIN, 1e-40f};
    check_vmath("erff", pg_erff_avx2, erf, -10.0, 10.0, erf_special,
                sizeof erf_special / sizeof erf_special[0]);
    check_vmath("expf", pg_expf_avx2, exp, -104.0, 89.0, exp_special,
                sizeof exp_special / sizeof exp_special[0]);
    /* the sign of erf(±0) (a zero compares equal to the other) */
    const float z[2] = {0.0f, -0.0f};
    float e[2];
    pg_erff_avx2(z, e, 2);
    CHECK(e[0] == 0.0f && !signbit(e[0]) && e[1] == 0.0f && signbit(e[1]));

    /* the test hook's own contract */
    pg_backend *b = NULL;
    CHECK_OK(pg_backend_cpu_new(1, &b));
    CHECK_STATUS(pg_backend_cpu_set_encoder_kernel(NULL, PG_ENCODER_AUTO),
                 PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(pg_backend_cpu_set_encoder_kernel(b, (pg_encoder_kernel)7),
                 PG_ERR_INVALID_ARGUMENT);
    CHECK_OK(pg_backend_cpu_set_encoder_kernel(b, PG_ENCODER_AVX2));
    CHECK_OK(pg_backend_cpu_set_encoder_kernel(b, PG_ENCODER_AUTO));
    pg_backend_free(b);
}

/* ---- main ---------------------------------------------------------------------------------- */

static void test_backend(int nth) {
    pg_backend *b = NULL;
    CHECK_OK(pg_backend_cpu_new(nth, &b));
    if (!b) return;
    CHECK_EQ_INT(pg_backend_cpu_threads(b), nth);
    test_memory(b);

    /* attention without a reservation: the online-softmax path */
    test_attention(b, nth, 1, 9, 4, 4, 16, "online");
    test_attention(b, nth, 5, 3, 8, 2, 20, "online");
    /* matmul batch without a reservation: the GEMM has no scratch, so per-row pg_vec_dot */
    test_matmul(b, nth, 64, 37, 7, 0);
    enc_kernel = pg_gemm_avx2_usable() ? "avx2" : "generic"; /* the default: AUTO */
    test_attention_full(b, nth, 57, 1, 4, 16, 0, 0, "online");
    test_attention_full(b, nth, 20, 0, 2, 12, 5, 1, "online");

    CHECK_OK(pg_backend_cpu_reserve(b, 64, 512, 256));
    CHECK_STATUS(pg_backend_cpu_reserve(b, -1, 0, 0), PG_ERR_INVALID_ARGUMENT);

    static const struct { int64_t n_in, n_out; int n; } mm[] = {
        {64, 37, 1}, {64, 37, 7}, {96, 3, 2}, {40, 19, 5}, {256, 130, 3},
        {512, 67, 1}, {512, 67, 9}, {1024, 21, 4}, {1024, 21, 8}, /* n_in > reserved: fine */
    };
    for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++) {
        test_matmul(b, nth, mm[i].n_in, mm[i].n_out, mm[i].n, 0);
        test_matmul(b, nth, mm[i].n_in, mm[i].n_out, mm[i].n, 1);
    }
    test_get_rows(b, nth);

    test_rmsnorm(b, nth, 1, 64, 0);
    test_rmsnorm(b, nth, 7, 100, 0);
    test_rmsnorm(b, nth, 3, 4096, 1);
    test_rmsnorm(b, nth, 1, 13, 1);

    test_rope(b, nth, 1, 4, 16, 16, 0);
    test_rope(b, nth, 1, 4, 16, 16, 7);
    test_rope(b, nth, 3, 8, 128, 128, 100);
    test_rope(b, nth, 5, 2, 32, 16, 1000); /* partial rotation: dims 16..31 untouched */
    test_rope(b, nth, 1, 32, 128, 128, 2047);

    test_attention(b, nth, 1, 0, 4, 4, 16, "scores");   /* first token */
    test_attention(b, nth, 1, 37, 4, 4, 16, "scores");  /* decode */
    test_attention(b, nth, 7, 0, 4, 4, 16, "scores");   /* prefill */
    test_attention(b, nth, 4, 9, 8, 2, 64, "scores");   /* chunk after a prefix, GQA */
    test_attention(b, nth, 3, 20, 6, 3, 20, "scores");  /* head_dim not a multiple of 8 */
    test_attention(b, nth, 1, 255, 32, 8, 128, "scores"); /* the reserved maximum */
    test_attention(b, nth, 2, 255, 4, 1, 16, "online"); /* beyond it */

    test_elementwise(b, nth, 1);
    test_elementwise(b, nth, 7);
    test_elementwise(b, nth, 5000);
    test_elementwise(b, nth, 40003);
    test_imagebind_ops(b, nth);

    static const struct { pg_encoder_kernel k; const char *name; } enc[] = {
        {PG_ENCODER_GENERIC, "generic"}, {PG_ENCODER_AVX2, "avx2"}};
    for (int ki = 0; ki < (pg_gemm_avx2_usable() ? 2 : 1); ki++) {
        CHECK_OK(pg_backend_cpu_set_encoder_kernel(b, enc[ki].k));
        enc_kernel = enc[ki].name;
        test_encoder_ops(b, nth);
    }
    CHECK_OK(pg_backend_cpu_set_encoder_kernel(b, PG_ENCODER_AUTO));
    pg_backend_free(b);
}

int main(void) {
    for (int nth = 1; nth <= 3; nth++) test_pool(nth);
    for (int nth = 1; nth <= 3; nth++) test_pool_shared(nth);
    for (int nth = 1; nth <= 3; nth++) test_backend(nth);
    test_gemm_shapes();
    test_vmath();
    pg_backend *b = NULL;
    CHECK_STATUS(pg_backend_cpu_new(-1, &b), PG_ERR_INVALID_ARGUMENT);
    CHECK_OK(pg_backend_cpu_new(0, &b));
    CHECK(pg_backend_cpu_threads(b) >= 1);
    pg_backend_free(b);
    pg_backend_free(NULL);

    for (int i = 0; i < n_worst; i++)
        printf("max relative error %-20s %.3g\n", worst[i].op, worst[i].worst);
    return check_done("test_cpu_ops");
}
