/*
 * random_tensor.c — random tensors streamed into a GGUF writer (see random_tensor.h).
 */
#include "random_tensor.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/error.h"
#include "gguf/dtype.h"

#define GOLDEN 0x9E3779B97F4A7C15ull
#define MAX_THREADS 64
#define PI 3.14159265358979323846

uint32_t random_tensor_matrix_type(uint32_t type, int64_t ne0) {
    int64_t block = pg_dtype_block_elems(type);
    if (block > 0 && ne0 % block != 0) return PG_DTYPE_F16;
    return type;
}

uint32_t random_tensor_file_type(uint32_t type) {
    switch (type) {
    case PG_DTYPE_F32: return 0;
    case PG_DTYPE_F16: return 1;
    case PG_DTYPE_Q4_0: return 2;
    case PG_DTYPE_Q8_0: return 7;
    case PG_DTYPE_BF16: return 32;
    }
    return 1;
}

/* ---- Random numbers ------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += GOLDEN);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* ---- Tensor generators ---------------------------------------------------------------------- */

/* Shared scratch: one row of floats per worker thread. */
typedef struct gen_pool {
    int n_threads;
    int64_t max_ne0;
    float *tmp;          /* (n_threads, max_ne0) */
} gen_pool;

/* One tensor's byte stream, as the writer pulls it. */
typedef struct tensor_gen {
    gen_pool *pool;
    uint64_t seed;       /* this tensor's stream */
    float mean, std;     /* element ~ mean + std·N(0,1) */
    uint32_t type;       /* pg_dtype written */
    int64_t ne0, n_rows;
    size_t row_bytes;
    int64_t next_row;    /* first row not yet produced */
    uint8_t *partial;    /* (row_bytes) a row the writer asked for only part of */
    size_t partial_pos;  /* bytes of partial already handed out; row_bytes when none pending */
} tensor_gen;

struct random_tensors {
    gen_pool pool;
    int32_t n;
    tensor_gen *gens;    /* (n) */
};

static void gen_row(const tensor_gen *g, int64_t r, float *tmp, void *dst) {
    uint64_t s = g->seed + (uint64_t)r * GOLDEN;
    s = splitmix64(&s);
    for (int64_t i = 0; i < g->ne0; i += 2) {
        /* Box-Muller; u1 in (0, 1] so the log is finite. */
        double u1 = ((double)(splitmix64(&s) >> 11) + 1.0) * 0x1.0p-53;
        double u2 = (double)(splitmix64(&s) >> 11) * 0x1.0p-53;
        double rad = sqrt(-2.0 * log(u1));
        tmp[i] = g->mean + g->std * (float)(rad * cos(2.0 * PI * u2));
        if (i + 1 < g->ne0) tmp[i + 1] = g->mean + g->std * (float)(rad * sin(2.0 * PI * u2));
    }
    uint16_t *h = dst;
    switch (g->type) {
    case PG_DTYPE_F32: memcpy(dst, tmp, (size_t)g->ne0 * sizeof(float)); break;
    case PG_DTYPE_F16: for (int64_t i = 0; i < g->ne0; i++) h[i] = pg_fp32_to_fp16(tmp[i]); break;
    case PG_DTYPE_BF16: for (int64_t i = 0; i < g->ne0; i++) h[i] = pg_fp32_to_bf16(tmp[i]); break;
    default: pg_quantize_row(g->type, tmp, dst, g->ne0); break;
    }
}

typedef struct gen_job {
    const tensor_gen *g;
    int64_t r0, r1;      /* rows [r0, r1) of the tensor */
    uint8_t *dst;        /* where row r0 goes */
    float *tmp;          /* (ne0) */
} gen_job;

static void *gen_rows(void *arg) {
    gen_job *j = arg;
    for (int64_t r = j->r0; r < j->r1; r++)
        gen_row(j->g, r, j->tmp, j->dst + (size_t)(r - j->r0) * j->g->row_bytes);
    return NULL;
}

/* Rows [r0, r0 + n) into dst, split over the pool's threads when there is enough work. */
static void gen_rows_parallel(const tensor_gen *g, int64_t r0, int64_t n, uint8_t *dst) {
    int nt = g->pool->n_threads;
    if ((int64_t)nt > n) nt = (int)n;
    if (n * g->ne0 < (1 << 16)) nt = 1;
    pthread_t th[MAX_THREADS];
    gen_job jobs[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 0; t < nt; t++) {
        int64_t a = r0 + n * t / nt, b = r0 + n * (t + 1) / nt;
        jobs[t] = (gen_job){g, a, b, dst + (size_t)(a - r0) * g->row_bytes,
                            g->pool->tmp + (size_t)t * (size_t)g->pool->max_ne0};
        started[t] = t > 0 && pthread_create(&th[t], NULL, gen_rows, &jobs[t]) == 0;
        if (t > 0 && !started[t]) gen_rows(&jobs[t]);
    }
    if (nt > 0) gen_rows(&jobs[0]);
    for (int t = 1; t < nt; t++)
        if (started[t]) pthread_join(th[t], NULL);
}

/* gguf_fill_fn: hands out the next nbytes of the tensor, however the writer chunks it. */
static void tensor_fill(void *ctx, void *dst, size_t nbytes) {
    tensor_gen *g = ctx;
    uint8_t *out = dst;
    if (g->partial_pos < g->row_bytes) {
        size_t k = g->row_bytes - g->partial_pos;
        if (k > nbytes) k = nbytes;
        memcpy(out, g->partial + g->partial_pos, k);
        g->partial_pos += k, out += k, nbytes -= k;
    }
    int64_t whole = (int64_t)(nbytes / g->row_bytes);
    if (whole > g->n_rows - g->next_row) whole = g->n_rows - g->next_row;
    if (whole > 0) {
        gen_rows_parallel(g, g->next_row, whole, out);
        g->next_row += whole;
        out += (size_t)whole * g->row_bytes;
        nbytes -= (size_t)whole * g->row_bytes;
    }
    if (nbytes > 0 && g->next_row < g->n_rows) {
        size_t k = nbytes < g->row_bytes ? nbytes : g->row_bytes;
        gen_row(g, g->next_row++, g->pool->tmp, g->partial);
        memcpy(out, g->partial, k);
        g->partial_pos = k, out += k, nbytes -= k;
    }
    if (nbytes > 0) memset(out, 0, nbytes); /* asked past the end: cannot happen with our sizes */
}

/* ---- The set of one file -------------------------------------------------------------------- */

void random_tensors_free(random_tensors *r) {
    if (!r) return;
    if (r->gens)
        for (int32_t i = 0; i < r->n; i++) free(r->gens[i].partial);
    free(r->gens);
    free(r->pool.tmp);
    free(r);
}

pg_status random_tensors_add(gguf_writer *w, const random_tensor_spec *specs, int32_t n,
                             uint64_t seed, const char *label, random_tensors **out) {
    if (!label) label = "random_tensors";
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: NULL out", label);
    *out = NULL;
    if (!w || (!specs && n > 0) || n < 0)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: NULL writer or tensor list", label);

    int64_t max_ne0 = 1;
    for (int32_t i = 0; i < n; i++) {
        const random_tensor_spec *s = &specs[i];
        if (!pg_dtype_supported(s->type))
            return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: tensor %s: unsupported type %u",
                                label, s->name, (unsigned)s->type);
        if (s->n_dims < 1 || s->n_dims > 2 || s->ne[0] <= 0 || s->ne[1] <= 0 ||
            (s->n_dims == 1 && s->ne[1] != 1) || s->ne[0] % pg_dtype_block_elems(s->type) != 0)
            return pg_set_error(PG_ERR_INVALID_ARGUMENT,
                                "%s: tensor %s: bad shape [%lld, %lld] for %s", label, s->name,
                                (long long)s->ne[0], (long long)s->ne[1],
                                pg_dtype_name(s->type));
        if (s->ne[0] > max_ne0) max_ne0 = s->ne[0];
    }

    random_tensors *r = calloc(1, sizeof *r);
    if (!r) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
    r->n = n;
    r->gens = calloc(n > 0 ? (size_t)n : 1, sizeof *r->gens);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    r->pool.n_threads = cores < 1 ? 1 : cores > MAX_THREADS ? MAX_THREADS : (int)cores;
    r->pool.max_ne0 = max_ne0;
    r->pool.tmp = malloc((size_t)r->pool.n_threads * (size_t)max_ne0 * sizeof(float));
    if (!r->gens || !r->pool.tmp) {
        random_tensors_free(r);
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: out of memory (scratch)", label);
    }

    uint64_t seed_state = seed;
    uint64_t base = splitmix64(&seed_state);
    for (int32_t i = 0; i < n; i++) {
        const random_tensor_spec *s = &specs[i];
        tensor_gen *g = &r->gens[i];
        uint64_t h = base ^ fnv1a64(s->name);
        g->pool = &r->pool;
        g->seed = splitmix64(&h);
        g->mean = s->mean;
        g->std = s->std;
        g->type = s->type;
        g->ne0 = s->ne[0];
        g->n_rows = s->ne[1];
        g->row_bytes = pg_dtype_row_bytes(g->type, g->ne0);
        g->partial = malloc(g->row_bytes);
        g->partial_pos = g->row_bytes;
        if (!g->partial) {
            random_tensors_free(r);
            return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: out of memory (%s)", label, s->name);
        }
        gguf_writer_add_tensor_fill(w, s->name, g->type, s->n_dims, s->ne, tensor_fill, g);
    }
    *out = r;
    return PG_OK;
}
