/*
 * lora.c — a llama.cpp-style LoRA adapter (docs/format.md §2) merged into the weights at load.
 *
 * Everything in the adapter is checked before any arithmetic, and the merged matrices replace
 * the model's views only once all of them are ready, so a bad adapter (or running out of memory)
 * leaves the model as it was. The merge runs row by row in float32: dequantize a row of W, add
 * scale·B[o,:]·A, re-encode it in W's type — what a converter merging in float would write.
 */
#include "lora.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "gguf/dtype.h"

#define LORA_NAME_CAP 256 /* longest tensor name handled, NUL included */

typedef struct lora_pair {
    pg_weight *w;         /* the model weight merged into: (n_in) -> (n_out) */
    const gguf_tensor *a; /* `<weight>.lora_a`, ne {n_in, r}: r rows of n_in */
    const gguf_tensor *b; /* `<weight>.lora_b`, ne {r, n_out}: n_out rows of r */
    float scale;          /* user_scale·alpha/r, or user_scale when alpha is 0 */
    void *merged;         /* (n_out rows of w->row_bytes) in w->type, once merged */
} lora_pair;

// ---------------------------------------------------------------------------------------------
// Header keys

/* A string key that must be present and equal want. */
static pg_status expect_str(const gguf_file *f, const char *key, const char *want) {
    if (!gguf_find_kv(f, key))
        return pg_set_error(PG_ERR_FORMAT, "%s: LoRA adapter: key '%s' is missing (expected "
                            "'%s')", f->path, key, want);
    gguf_str v;
    pg_status s = gguf_get_str(f, key, &v);
    if (s != PG_OK) return s;
    if (!gguf_str_eq(v, want))
        return pg_set_error(PG_ERR_FORMAT, "%s: LoRA adapter: key '%s' is '%.*s', expected '%s'",
                            f->path, key, (int)(v.len > 64 ? 64 : v.len), v.ptr, want);
    return PG_OK;
}

static pg_status check_header(const gguf_file *f, float *alpha) {
    pg_status s;
    if ((s = expect_str(f, "general.architecture", "llama")) ||
        (s = expect_str(f, "general.type", "adapter")) ||
        (s = expect_str(f, "adapter.type", "lora")) ||
        (s = gguf_get_f32_or(f, "adapter.lora.alpha", 0.0f, alpha)))
        return s;
    if (!isfinite(*alpha))
        return pg_set_error(PG_ERR_FORMAT, "%s: LoRA adapter: key 'adapter.lora.alpha' is %g, "
                            "expected a finite number", f->path, *alpha);
    return PG_OK;
}

// ---------------------------------------------------------------------------------------------
// Pairing tensors with the model's weights

/* The weight of m called base (a NUL-terminated GGUF tensor name), or NULL when m has none that
 * LoRA may touch. Layer numbers are plain decimal, as llama.cpp writes them. */
static pg_weight *model_weight(llama_model *m, const char *base) {
    static const struct { const char *name; size_t offset; } k_layer[] = {
        {"attn_q.weight", offsetof(llama_layer, attn_q)},
        {"attn_k.weight", offsetof(llama_layer, attn_k)},
        {"attn_v.weight", offsetof(llama_layer, attn_v)},
        {"attn_output.weight", offsetof(llama_layer, attn_output)},
        {"ffn_gate.weight", offsetof(llama_layer, ffn_gate)},
        {"ffn_up.weight", offsetof(llama_layer, ffn_up)},
        {"ffn_down.weight", offsetof(llama_layer, ffn_down)},
    };
    if (strcmp(base, "output.weight") == 0) return &m->w.output;
    if (strncmp(base, "blk.", 4) != 0) return NULL;
    const char *p = base + 4;
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9')) return NULL;
    int64_t layer = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        layer = layer * 10 + (*p - '0');
        if (layer >= m->hp.n_layer) return NULL;
    }
    if (*p++ != '.') return NULL;
    for (size_t i = 0; i < sizeof k_layer / sizeof k_layer[0]; i++)
        if (strcmp(p, k_layer[i].name) == 0)
            return (pg_weight *)((char *)&m->w.layers[layer] + k_layer[i].offset);
    return NULL;
}

/* Rows of ne[0] elements in a type whose blocks fit them, and nothing past two dimensions. */
static pg_status check_matrix(const gguf_file *f, const char *name, const gguf_tensor *t) {
    if (!pg_dtype_supported(t->type))
        return pg_set_error(PG_ERR_UNSUPPORTED, "%s: tensor '%s' has unsupported type %s",
                            f->path, name, pg_dtype_name(t->type));
    if (t->n_dims > 2 || t->ne[2] != 1 || t->ne[3] != 1)
        return pg_set_error(PG_ERR_FORMAT, "%s: tensor '%s' has %u dimensions, expected 2",
                            f->path, name, (unsigned)t->n_dims);
    if (t->ne[0] <= 0 || t->ne[1] <= 0)
        return pg_set_error(PG_ERR_FORMAT, "%s: tensor '%s' is empty", f->path, name);
    /* lora_b rows hold r elements: a block type needs r to be a multiple of its block */
    if (t->ne[0] % pg_dtype_block_elems(t->type))
        return pg_set_error(PG_ERR_FORMAT, "%s: tensor '%s': ne[0] = %lld is not a multiple of "
                            "the %s block size %lld", f->path, name, (long long)t->ne[0],
                            pg_dtype_name(t->type), (long long)pg_dtype_block_elems(t->type));
    return PG_OK;
}

/* lora_a ne {n_in, r} and lora_b ne {r, n_out} against w's {n_in, n_out}. */
static pg_status check_pair(const gguf_file *f, const char *base, const lora_pair *p,
                            const char *name_a, const char *name_b) {
    const gguf_tensor *a = p->a, *b = p->b;
    pg_status s;
    if ((s = check_matrix(f, name_a, a)) || (s = check_matrix(f, name_b, b))) return s;
    if (a->ne[0] != p->w->n_in)
        return pg_set_error(PG_ERR_FORMAT, "%s: tensor '%s': ne = {%lld, %lld}, expected ne[0] = "
                            "%lld (the input size of '%s')", f->path, name_a,
                            (long long)a->ne[0], (long long)a->ne[1], (long long)p->w->n_in,
                            base);
    if (b->ne[1] != p->w->n_out)
        return pg_set_error(PG_ERR_FORMAT, "%s: tensor '%s': ne = {%lld, %lld}, expected ne[1] = "
                            "%lld (the output size of '%s')", f->path, name_b,
                            (long long)b->ne[0], (long long)b->ne[1], (long long)p->w->n_out,
                            base);
    if (a->ne[1] != b->ne[0])
        return pg_set_error(PG_ERR_FORMAT, "%s: LoRA rank mismatch: tensor '%s' has rank "
                            "ne[1] = %lld, tensor '%s' has rank ne[0] = %lld", f->path, name_a,
                            (long long)a->ne[1], name_b, (long long)b->ne[0]);
    return PG_OK;
}

/* Fills pairs[0..*n_pairs) with one entry per lora_a tensor, after checking every tensor of f
 * is one half of a pair for a weight m has. pairs has room for f->n_tensors entries. */
static pg_status collect_pairs(llama_model *m, const gguf_file *f, float user_scale,
                               float alpha, lora_pair *pairs, int64_t *n_pairs) {
    static const size_t k_suffix = sizeof ".lora_a" - 1;
    char name[LORA_NAME_CAP], base[LORA_NAME_CAP], partner[LORA_NAME_CAP + 8];
    *n_pairs = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        if (t->name.len >= LORA_NAME_CAP)
            return pg_set_error(PG_ERR_FORMAT, "%s: tensor '%.64s...' has a %llu-byte name, not "
                                "a LoRA tensor name", f->path, t->name.ptr,
                                (unsigned long long)t->name.len);
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        size_t len = strlen(name);
        int is_a = len > k_suffix && strcmp(name + len - k_suffix, ".lora_a") == 0;
        int is_b = len > k_suffix && strcmp(name + len - k_suffix, ".lora_b") == 0;
        if (!is_a && !is_b)
            return pg_set_error(PG_ERR_FORMAT, "%s: tensor '%s' is not a LoRA tensor (expected "
                                "'<weight>.lora_a' or '<weight>.lora_b')", f->path, name);
        snprintf(base, sizeof base, "%.*s", (int)(len - k_suffix), name);
        snprintf(partner, sizeof partner, "%s%s", base, is_a ? ".lora_b" : ".lora_a");
        const gguf_tensor *other = gguf_find_tensor(f, partner);
        if (!other)
            return pg_set_error(PG_ERR_FORMAT, "%s: tensor '%s' has no partner '%s'", f->path,
                                name, partner);
        if (is_b) continue; /* checked with its lora_a */

        lora_pair *p = &pairs[*n_pairs];
        *p = (lora_pair){.w = model_weight(m, base), .a = t, .b = other};
        if (!p->w)
            return pg_set_error(PG_ERR_FORMAT, "%s: tensor '%s': the model has no weight '%s' "
                                "(LoRA applies to blk.N.{attn_q,attn_k,attn_v,attn_output,"
                                "ffn_gate,ffn_up,ffn_down}.weight with N < %d, and "
                                "output.weight)", f->path, name, base, m->hp.n_layer);
        pg_status s = check_pair(f, base, p, name, partner);
        if (s != PG_OK) return s;
        /* llama.cpp's rule: alpha scales by alpha/r, a missing (0) alpha leaves the scale */
        int64_t r = t->ne[1];
        p->scale = alpha != 0.0f ? user_scale * alpha / (float)r : user_scale;
        if (!isfinite(p->scale))
            return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: tensor '%s': lora_scale %g * "
                                "alpha %g / rank %lld is not finite", f->path, name,
                                user_scale, alpha, (long long)r);
        (*n_pairs)++;
    }
    if (*n_pairs == 0)
        return pg_set_error(PG_ERR_FORMAT, "%s: LoRA adapter has no '<weight>.lora_a' / "
                            "'<weight>.lora_b' tensors", f->path);
    return PG_OK;
}

// ---------------------------------------------------------------------------------------------
// Merging

/* y += c·x: the 7B merge is ~137 GFLOP of this. The fixed-length inner loop is what gcc -O2
 * vectorises (its cheap cost model leaves a loop with a run-time trip count scalar): 2x
 * faster there, and the same per-element arithmetic, so the bytes do not depend on -O. */
#define LORA_LANES 16
static void axpy(float *restrict y, float c, const float *restrict x, int64_t n) {
    int64_t i = 0;
    for (; i + LORA_LANES <= n; i += LORA_LANES)
        for (int j = 0; j < LORA_LANES; j++) y[i + j] += c * x[i + j];
    for (; i < n; i++) y[i] += c * x[i];
}

/* dst = encode(W + scale·B·A) row by row; A (r × n_in) and B (n_out × r) in float. */
static void merge_rows(const pg_weight *w, const float *A, const float *B, int64_t r,
                       float scale, float *row, unsigned char *dst) {
    const unsigned char *src = w->data;
    for (int64_t o = 0; o < w->n_out; o++) {
        pg_dequantize_row(w->type, src + (size_t)o * w->row_bytes, row, w->n_in);
        for (int64_t k = 0; k < r; k++)
            axpy(row, scale * B[o * r + k], A + (size_t)k * (size_t)w->n_in, w->n_in);
        pg_quantize_row(w->type, row, dst + (size_t)o * w->row_bytes, w->n_in);
    }
}

/* Merges one pair into a new buffer p->merged; the model's weight is not touched yet. */
static pg_status merge_pair(const gguf_file *f, lora_pair *p) {
    const pg_weight *w = p->w;
    int64_t r = p->a->ne[1];
    size_t bytes = (size_t)w->n_out * w->row_bytes;
    /* 64-byte aligned like the scratch the backend allocates; aligned_alloc wants k·64 */
    p->merged = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    float *A = malloc(sizeof(float) * (size_t)r * (size_t)w->n_in);
    float *B = malloc(sizeof(float) * (size_t)w->n_out * (size_t)r);
    float *row = malloc(sizeof(float) * (size_t)w->n_in);
    pg_status s = PG_OK;
    if (!p->merged || !A || !B || !row) {
        s = pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: cannot allocate the merge of tensor "
                         "'%.*s' (%zu bytes)", f->path, (int)p->a->name.len, p->a->name.ptr,
                         bytes);
    } else {
        /* whole tensors at once: rows are contiguous and whole blocks */
        pg_dequantize_row(p->a->type, p->a->data, A, r * w->n_in);
        pg_dequantize_row(p->b->type, p->b->data, B, w->n_out * r);
        merge_rows(w, A, B, r, p->scale, row, p->merged);
    }
    free(A);
    free(B);
    free(row);
    return s;
}

// ---------------------------------------------------------------------------------------------
// Entry point

pg_status llama_lora_apply(llama_model *m, const char *path, float user_scale) {
    if (!m || !path)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "llama_lora_apply: %s is NULL",
                            !m ? "model" : "path");
    if (!isfinite(user_scale))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: lora_scale %g is not finite", path,
                            user_scale);
    gguf_file *f;
    pg_status s = gguf_open(path, &f);
    if (s != PG_OK) return s;

    float alpha = 0.0f;
    int64_t n = 0;
    lora_pair *pairs = calloc(f->n_tensors ? (size_t)f->n_tensors : 1, sizeof *pairs);
    if (!pairs) s = pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: cannot allocate", f->path);
    if (s == PG_OK) s = check_header(f, &alpha);
    if (s == PG_OK) s = collect_pairs(m, f, user_scale, alpha, pairs, &n);
    /* a zero scale would only re-round quantized rows: the checked adapter changes nothing */
    if (s == PG_OK && user_scale == 0.0f) n = 0;
    if (s == PG_OK && n > 0) {
        /* grown before merging so that swapping the buffers in below cannot fail */
        void **store = realloc(m->lora_store, sizeof *store * (size_t)(m->n_lora_store + n));
        if (!store) s = pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: cannot allocate", f->path);
        else m->lora_store = store;
    }
    for (int64_t i = 0; s == PG_OK && i < n; i++) s = merge_pair(f, &pairs[i]);
    for (int64_t i = 0; i < n; i++) {
        if (s == PG_OK) {
            pairs[i].w->data = pairs[i].merged;
            m->lora_store[m->n_lora_store++] = pairs[i].merged;
        } else {
            free(pairs[i].merged);
        }
    }
    free(pairs);
    gguf_close(f);
    return s;
}
