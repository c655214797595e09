/*
 * random_llama.c — a random-weight llama GGUF, streamed to disk (see random_llama.h).
 */
#include "random_llama.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/error.h"
#include "demo_vocab.h"
#include "gguf/dtype.h"
#include "gguf/gguf.h"

#define GOLDEN 0x9E3779B97F4A7C15ull
#define MAX_THREADS 64
#define PI 3.14159265358979323846

/* ---- Presets -------------------------------------------------------------------------------- */

int random_llama_preset(const char *name, random_llama_config *c) {
    static const struct {
        const char *name;
        int32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab;
    } k_presets[] = {
        {"tiny", 256, 4, 8, 8, 688, 1320},
        {"1b", 2048, 22, 32, 4, 5632, 32000}, /* TinyLlama-1.1B, GQA included */
        {"7b", 4096, 32, 32, 32, 11008, 32000},
    };
    for (size_t i = 0; i < sizeof k_presets / sizeof k_presets[0]; i++) {
        if (strcmp(name, k_presets[i].name) != 0) continue;
        *c = (random_llama_config){
            .n_embd = k_presets[i].n_embd, .n_layer = k_presets[i].n_layer,
            .n_head = k_presets[i].n_head, .n_head_kv = k_presets[i].n_head_kv,
            .n_ff = k_presets[i].n_ff, .n_vocab = k_presets[i].n_vocab, .n_ctx = 2048,
            .type = PG_DTYPE_F16, .seed = 1234,
        };
        return 1;
    }
    return 0;
}

uint32_t random_llama_file_type(uint32_t type) {
    switch (type) {
    case PG_DTYPE_F32: return 0;
    case PG_DTYPE_F16: return 1;
    case PG_DTYPE_Q4_0: return 2;
    case PG_DTYPE_Q8_0: return 7;
    case PG_DTYPE_BF16: return 32;
    }
    return 1;
}

uint64_t random_llama_n_params(const random_llama_config *c) {
    uint64_t e = (uint64_t)c->n_embd, kv = e / (uint64_t)c->n_head * (uint64_t)c->n_head_kv;
    uint64_t layer = 2 * e + 2 * e * e + 2 * e * kv + 3 * e * (uint64_t)c->n_ff;
    return 2 * e * (uint64_t)c->n_vocab + (uint64_t)c->n_layer * layer + e;
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

/* ---- The file ------------------------------------------------------------------------------- */

/* The type a 2-D weight with rows of ne0 is stored in. */
static uint32_t weight_type(const random_llama_config *c, int64_t ne0) {
    if (ne0 % pg_dtype_block_elems(c->type) != 0) return PG_DTYPE_F16;
    return c->type;
}

typedef struct tensor_spec {
    char name[48];
    int n_dims;
    int64_t ne[2];
    float mean, std;
} tensor_spec;

static void add_tensor(tensor_spec *t, int32_t *n, const char *name, int n_dims, int64_t ne0,
                       int64_t ne1, float mean, float std) {
    tensor_spec *s = &t[(*n)++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->n_dims = n_dims, s->ne[0] = ne0, s->ne[1] = ne1, s->mean = mean, s->std = std;
}

/* llama.cpp's tensor order: token_embd, the blocks, output, output_norm. Linears are
 * N(0, 1/fan_in), fan_in being ne[0]. */
static int32_t list_tensors(const random_llama_config *c, tensor_spec *t) {
    int64_t e = c->n_embd, kv = e / c->n_head * c->n_head_kv, ff = c->n_ff;
    float se = (float)(1.0 / sqrt((double)e)), sf = (float)(1.0 / sqrt((double)ff));
    int32_t n = 0;
    char nm[48];
    add_tensor(t, &n, "token_embd.weight", 2, e, c->n_vocab, 0.0f, 1.0f);
    for (int l = 0; l < c->n_layer; l++) {
#define BLK(suffix) (snprintf(nm, sizeof nm, "blk.%d." suffix ".weight", l), nm)
        add_tensor(t, &n, BLK("attn_norm"), 1, e, 1, 1.0f, 0.1f);
        add_tensor(t, &n, BLK("attn_q"), 2, e, e, 0.0f, se);
        add_tensor(t, &n, BLK("attn_k"), 2, e, kv, 0.0f, se);
        add_tensor(t, &n, BLK("attn_v"), 2, e, kv, 0.0f, se);
        add_tensor(t, &n, BLK("attn_output"), 2, e, e, 0.0f, se);
        add_tensor(t, &n, BLK("ffn_norm"), 1, e, 1, 1.0f, 0.1f);
        add_tensor(t, &n, BLK("ffn_gate"), 2, e, ff, 0.0f, se);
        add_tensor(t, &n, BLK("ffn_up"), 2, e, ff, 0.0f, se);
        add_tensor(t, &n, BLK("ffn_down"), 2, ff, e, 0.0f, sf);
#undef BLK
    }
    add_tensor(t, &n, "output.weight", 2, e, c->n_vocab, 0.0f, se);
    add_tensor(t, &n, "output_norm.weight", 1, e, 1, 1.0f, 0.1f);
    return n;
}

pg_status random_llama_write(const random_llama_config *c, const char *path, const char *name) {
    if (!c || !path || c->n_embd <= 0 || c->n_layer <= 0 || c->n_head <= 0 ||
        c->n_head_kv <= 0 || c->n_ff <= 0 || c->n_vocab <= 0 || c->n_ctx <= 0 ||
        c->n_embd % c->n_head != 0 || c->n_head % c->n_head_kv != 0 ||
        (c->n_embd / c->n_head) % 2 != 0)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "random_llama: inconsistent config");
    if (!pg_dtype_supported(c->type))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "random_llama: unsupported type %u",
                            (unsigned)c->type);

    pg_status st = PG_ERR_OUT_OF_MEMORY;
    int32_t n_tensors = 3 + 9 * c->n_layer;
    tensor_spec *spec = calloc((size_t)n_tensors, sizeof *spec);
    tensor_gen *gens = calloc((size_t)n_tensors, sizeof *gens);
    gen_pool pool = {0};
    gguf_writer *w = gguf_writer_new();
    demo_vocab *v = demo_vocab_build(c->n_vocab);
    if (!spec || !gens || !w || !v) {
        pg_set_error(PG_ERR_OUT_OF_MEMORY, "random_llama: out of memory (vocabulary of %d)",
                     (int)c->n_vocab);
        goto done;
    }

    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    pool.n_threads = cores < 1 ? 1 : cores > MAX_THREADS ? MAX_THREADS : (int)cores;
    pool.max_ne0 = c->n_embd > c->n_ff ? c->n_embd : c->n_ff;
    pool.tmp = malloc((size_t)pool.n_threads * (size_t)pool.max_ne0 * sizeof(float));
    if (!pool.tmp) {
        pg_set_error(PG_ERR_OUT_OF_MEMORY, "random_llama: out of memory (scratch)");
        goto done;
    }

    int32_t head_dim = c->n_embd / c->n_head;
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.name", name ? name : "libpandagpt random llama");
    gguf_writer_set_u32(w, "general.file_type", random_llama_file_type(c->type));
    gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)c->n_vocab);
    gguf_writer_set_u32(w, "llama.context_length", (uint32_t)c->n_ctx);
    gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c->n_embd);
    gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->n_layer);
    gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)c->n_ff);
    gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_head);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_head_kv);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-6f);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)head_dim);
    gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", "default");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->pieces,
                            (uint64_t)v->n);
    gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", v->scores, (uint64_t)v->n);
    gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", v->types, (uint64_t)v->n);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 1);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", 0);

    list_tensors(c, spec);
    uint64_t seed_state = c->seed;
    uint64_t base = splitmix64(&seed_state);
    for (int32_t i = 0; i < n_tensors; i++) {
        tensor_gen *g = &gens[i];
        uint64_t s = base ^ fnv1a64(spec[i].name);
        g->pool = &pool;
        g->seed = splitmix64(&s);
        g->mean = spec[i].mean;
        g->std = spec[i].std;
        g->type = spec[i].n_dims == 1 ? PG_DTYPE_F32 : weight_type(c, spec[i].ne[0]);
        g->ne0 = spec[i].ne[0];
        g->n_rows = spec[i].ne[1];
        g->row_bytes = pg_dtype_row_bytes(g->type, g->ne0);
        g->partial = malloc(g->row_bytes);
        g->partial_pos = g->row_bytes;
        if (!g->partial) {
            pg_set_error(PG_ERR_OUT_OF_MEMORY, "random_llama: out of memory (%s)", spec[i].name);
            goto done;
        }
        gguf_writer_add_tensor_fill(w, spec[i].name, g->type, spec[i].n_dims, spec[i].ne,
                                    tensor_fill, g);
    }
    st = gguf_writer_write(w, path);

done:
    gguf_writer_free(w);
    demo_vocab_free(v);
    if (gens)
        for (int32_t i = 0; i < n_tensors; i++) free(gens[i].partial);
    free(gens);
    free(spec);
    free(pool.tmp);
    return st;
}
