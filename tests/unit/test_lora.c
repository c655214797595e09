/*
 * test_lora.c — LoRA adapters merged at load (lib/models/lora.c, docs/format.md §2), through the
 * public API. A random tiny model plus a random adapter must give the logits of a model file
 * merged here independently: in double for an F32 base, and for a Q8_0 base by the same float
 * steps then pg_quantize_row (so the same bytes are expected). Also: lora_scale 0 changes
 * nothing, 0.5 is not 1.0, a tied LM head is merged without touching token_embd, and every way
 * an adapter can be wrong gives its status and a message naming the key or tensor.
 */
#include <pandagpt.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gguf/dtype.h"
#include "gguf/gguf.h"
#include "models/lora.h"
#include "random_llama.h"

#define ALPHA 16.0f
#define N_TOKENS 12

static char tmpdir[] = "/tmp/pg_test_lora_XXXXXX";
static const int32_t k_tokens[N_TOKENS] = {1, 5, 100, 260, 261, 700, 1000, 3, 42, 1319, 9, 512};

static void path_in_tmp(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static uint64_t rng_state = 0x1234567;

/* Uniform in [-amp, amp). */
static float uniform(float amp) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return amp * (2.0f * (float)((rng_state >> 40) * 0x1p-24) - 1.0f);
}

// ---------------------------------------------------------------------------------------------
// Writing adapters

/* One tensor of an adapter, given as float rows and stored as type. */
typedef struct raw_tensor {
    char name[96];
    uint32_t type;
    int64_t ne0, ne1;
    float *data; /* ne0·ne1, owned */
} raw_tensor;

static void raw_random(raw_tensor *t, const char *name, uint32_t type, int64_t ne0, int64_t ne1,
                       float amp) {
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->ne0 = ne0;
    t->ne1 = ne1;
    t->data = malloc(sizeof(float) * (size_t)(ne0 * ne1));
    for (int64_t i = 0; i < ne0 * ne1; i++) t->data[i] = uniform(amp);
}

/* Both halves of a pair for a weight of n_in → n_out at rank r. */
static void raw_pair(raw_tensor *t, const char *base, int64_t n_in, int64_t n_out, int64_t r,
                     uint32_t type_a, uint32_t type_b) {
    char name[96];
    snprintf(name, sizeof name, "%s.lora_a", base);
    raw_random(&t[0], name, type_a, n_in, r, 0.1f);
    snprintf(name, sizeof name, "%s.lora_b", base);
    raw_random(&t[1], name, type_b, r, n_out, 0.1f);
}

static void raw_free(raw_tensor *t, int n) {
    for (int i = 0; i < n; i++) free(t[i].data);
}

/* An adapter GGUF; a NULL string key or a NaN alpha is left out of the file. */
static void write_adapter(const char *path, const char *arch, const char *gtype,
                          const char *atype, float alpha, const raw_tensor *t, int n) {
    gguf_writer *w = gguf_writer_new();
    if (arch) gguf_writer_set_str(w, "general.architecture", arch);
    if (gtype) gguf_writer_set_str(w, "general.type", gtype);
    if (atype) gguf_writer_set_str(w, "adapter.type", atype);
    if (!isnan(alpha)) gguf_writer_set_f32(w, "adapter.lora.alpha", alpha);
    for (int i = 0; i < n; i++) {
        int64_t ne[2] = {t[i].ne0, t[i].ne1};
        /* sized by elements, not rows: a block type with short rows must still be writable,
         * for the reader to reject */
        size_t nbytes = (size_t)(t[i].ne0 * t[i].ne1 / pg_dtype_block_elems(t[i].type)) *
                        pg_dtype_block_bytes(t[i].type);
        void *bytes = malloc(nbytes ? nbytes : 1);
        pg_quantize_row(t[i].type, t[i].data, bytes, t[i].ne0 * t[i].ne1);
        gguf_writer_add_tensor(w, t[i].name, t[i].type, 2, ne, bytes);
        free(bytes);
    }
    CHECK_OK(gguf_writer_write(w, path));
    gguf_writer_free(w);
}

// ---------------------------------------------------------------------------------------------
// Reference models: the base file rewritten with the adapter merged

static char *cstr(gguf_str s) {
    char *c = malloc(s.len + 1);
    memcpy(c, s.ptr, s.len);
    c[s.len] = '\0';
    return c;
}

/* Every kv of f (the types random_llama writes) into w. */
static void copy_kvs(gguf_writer *w, const gguf_file *f) {
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        char *key = cstr(kv->key);
        if (kv->type == GGUF_TYPE_STRING) {
            char *v = cstr(kv->strs[0]);
            gguf_writer_set_str(w, key, v);
            free(v);
        } else if (kv->type == GGUF_TYPE_UINT32 || kv->type == GGUF_TYPE_INT32) {
            gguf_writer_set_u32(w, key, (uint32_t)gguf_arr_num(kv, 0));
        } else if (kv->type == GGUF_TYPE_FLOAT32) {
            gguf_writer_set_f32(w, key, (float)gguf_arr_num(kv, 0));
        } else if (kv->type == GGUF_TYPE_BOOL) {
            gguf_writer_set_bool(w, key, kv->data[0] != 0);
        } else if (kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_STRING) {
            char **own = malloc(sizeof(char *) * kv->n);
            for (uint64_t j = 0; j < kv->n; j++) own[j] = cstr(kv->strs[j]);
            gguf_writer_set_arr_str(w, key, (const char *const *)own, kv->n);
            for (uint64_t j = 0; j < kv->n; j++) free(own[j]);
            free(own);
        } else if (kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_FLOAT32) {
            float *v = malloc(sizeof(float) * kv->n);
            for (uint64_t j = 0; j < kv->n; j++) v[j] = (float)gguf_arr_num(kv, j);
            gguf_writer_set_arr_f32(w, key, v, kv->n);
            free(v);
        } else if (kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_INT32) {
            int32_t *v = malloc(sizeof(int32_t) * kv->n);
            for (uint64_t j = 0; j < kv->n; j++) v[j] = (int32_t)gguf_arr_num(kv, j);
            gguf_writer_set_arr_i32(w, key, v, kv->n);
            free(v);
        } else {
            CHECK_MSG(0, "copy_kvs: key %s has unhandled type %u", key, kv->type);
        }
        free(key);
    }
}

/* A whole tensor as floats (malloc'd). */
static float *dequant_all(const gguf_tensor *t) {
    float *x = malloc(sizeof(float) * (size_t)(t->ne[0] * t->ne[1]));
    pg_dequantize_row(t->type, t->data, x, t->ne[0] * t->ne[1]);
    return x;
}

typedef enum merge_mode {
    MERGE_DOUBLE, /* W + s·B·A in double, stored F32: independent of the library's arithmetic */
    MERGE_FLOAT,  /* the library's float steps, re-encoded in W's type: the same bytes */
} merge_mode;

/* base (n_out rows of n_in, type) merged with A (r × n_in) and B (n_out × r); returns the
 * bytes to store (type F32 for MERGE_DOUBLE, else type) in a malloc'd buffer. */
static void *merge_matrix(const gguf_tensor *base, const float *A, const float *B, int64_t r,
                          float user_scale, merge_mode mode, uint32_t *out_type) {
    int64_t n_in = base->ne[0], n_out = base->ne[1];
    size_t row_bytes = pg_dtype_row_bytes(base->type, n_in);
    float *row = malloc(sizeof(float) * (size_t)n_in);
    if (mode == MERGE_DOUBLE) {
        double s = (double)user_scale * ALPHA / (double)r;
        float *out = malloc(sizeof(float) * (size_t)(n_in * n_out));
        for (int64_t o = 0; o < n_out; o++) {
            pg_dequantize_row(base->type, (const char *)base->data + o * row_bytes, row, n_in);
            for (int64_t i = 0; i < n_in; i++) {
                double d = 0;
                for (int64_t k = 0; k < r; k++) d += (double)B[o * r + k] * A[k * n_in + i];
                out[o * n_in + i] = (float)(row[i] + s * d);
            }
        }
        free(row);
        *out_type = PG_DTYPE_F32;
        return out;
    }
    float s = user_scale * ALPHA / (float)r; /* as llama.cpp and lora.c compute it */
    unsigned char *out = malloc(row_bytes * (size_t)n_out);
    for (int64_t o = 0; o < n_out; o++) {
        pg_dequantize_row(base->type, (const char *)base->data + o * row_bytes, row, n_in);
        for (int64_t k = 0; k < r; k++) {
            float c = s * B[o * r + k];
            for (int64_t i = 0; i < n_in; i++) row[i] += c * A[k * n_in + i];
        }
        pg_quantize_row(base->type, row, out + (size_t)o * row_bytes, n_in);
    }
    free(row);
    *out_type = base->type;
    return out;
}

/* Writes out_path: base_path's kvs and tensors, with every weight the adapter touches merged.
 * A file without output.weight (tied) gets one, merged from token_embd, which stays as it was. */
static void write_merged(const char *base_path, const char *adapter_path, float user_scale,
                         merge_mode mode, const char *out_path) {
    gguf_file *f = NULL, *ad = NULL;
    CHECK_OK(gguf_open(base_path, &f));
    CHECK_OK(gguf_open(adapter_path, &ad));
    if (!f || !ad) {
        gguf_close(f);
        gguf_close(ad);
        return;
    }
    gguf_writer *w = gguf_writer_new();
    copy_kvs(w, f);
    int tied = gguf_find_tensor(f, "output.weight") == NULL;
    for (uint64_t i = 0; i <= f->n_tensors; i++) {
        const gguf_tensor *t;
        char *name;
        if (i < f->n_tensors) {
            t = &f->tensors[i];
            name = cstr(t->name);
        } else if (tied) { /* the tied head, as its own tensor after the others */
            t = gguf_find_tensor(f, "token_embd.weight");
            name = cstr((gguf_str){"output.weight", 13});
        } else {
            break;
        }
        char an[128], bn[128];
        snprintf(an, sizeof an, "%s.lora_a", name);
        snprintf(bn, sizeof bn, "%s.lora_b", name);
        const gguf_tensor *ta = gguf_find_tensor(ad, an), *tb = gguf_find_tensor(ad, bn);
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        if (ta && tb) {
            float *A = dequant_all(ta), *B = dequant_all(tb);
            uint32_t type;
            void *merged = merge_matrix(t, A, B, ta->ne[1], user_scale, mode, &type);
            gguf_writer_add_tensor(w, name, type, 2, ne, merged);
            free(merged);
            free(A);
            free(B);
        } else {
            gguf_writer_add_tensor(w, name, t->type, (int)t->n_dims, ne, t->data);
        }
        free(name);
    }
    CHECK_OK(gguf_writer_write(w, out_path));
    gguf_writer_free(w);
    gguf_close(f);
    gguf_close(ad);
}

/* base_path without output.weight: llama.cpp then ties the LM head to token_embd. */
static void write_tied(const char *base_path, const char *out_path) {
    gguf_file *f = NULL;
    CHECK_OK(gguf_open(base_path, &f));
    if (!f) return;
    gguf_writer *w = gguf_writer_new();
    copy_kvs(w, f);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        if (gguf_str_eq(t->name, "output.weight")) continue;
        char *name = cstr(t->name);
        gguf_writer_add_tensor(w, name, t->type, (int)t->n_dims, t->ne, t->data);
        free(name);
    }
    CHECK_OK(gguf_writer_write(w, out_path));
    gguf_writer_free(w);
    gguf_close(f);
}

// ---------------------------------------------------------------------------------------------
// Running models

/* Logits of k_tokens from model_path (+ adapter at scale when lora_path is set) into out. */
static pg_status run_logits(const char *model_path, const char *lora_path, float scale,
                            float *out, int32_t n_vocab) {
    pg_model_params p;
    pg_model_params_init(&p);
    p.device = PG_DEVICE_CPU; /* the CPU path is the oracle here; tests/gpu checks CUDA */
    p.device = PG_DEVICE_CPU;
    p.n_threads = 2;
    p.lora_path = lora_path;
    p.lora_scale = scale;
    pg_model *m = NULL;
    pg_status s = pg_model_load(model_path, &p, &m);
    if (s != PG_OK) return s;
    pg_session_params sp;
    pg_session_params_init(&sp);
    sp.n_ctx = 32;
    pg_session *sess = NULL;
    s = pg_session_new(m, &sp, &sess);
    if (s == PG_OK) s = pg_session_eval_tokens(sess, k_tokens, N_TOKENS);
    if (s == PG_OK) s = pg_session_logits(sess, out, (size_t)n_vocab);
    pg_session_free(sess);
    pg_model_free(m);
    return s;
}

/* max |a - b| / max |b|. */
static double rel_diff(const float *a, const float *b, int32_t n) {
    double d = 0, mx = 0;
    for (int32_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        mx = fmax(mx, fabs((double)b[i]));
    }
    return mx > 0 ? d / mx : d;
}

/* Logits of base + adapter against those of the reference file, within tol (relative). */
static void compare(const char *what, const char *base, const char *adapter, float scale,
                      const char *reference, int32_t n_vocab, double tol) {
    float *got = malloc(sizeof(float) * (size_t)n_vocab);
    float *want = malloc(sizeof(float) * (size_t)n_vocab);
    CHECK_OK(run_logits(base, adapter, scale, got, n_vocab));
    CHECK_OK(run_logits(reference, NULL, 1.0f, want, n_vocab));
    double rel = rel_diff(got, want, n_vocab);
    CHECK_MSG(rel <= tol, "%s: max relative logit difference %.3g > %.3g", what, rel, tol);
    printf("%-44s max |Δlogit| / max |logit| = %.3g\n", what, rel);
    free(got);
    free(want);
}

/* Loads base through the internals, merges adapter at scale 1, and counts the bytes in which
 * each merged weight differs from the same tensor of reference (a MERGE_FLOAT file). Exact
 * because both sides do the same float operations in the same order, and -std=c11 keeps gcc
 * from contracting them into FMAs. */
static void check_merged_bytes(const char *base, const char *adapter, const char *reference) {
    gguf_file *f = NULL, *ref = NULL;
    llama_model *m = NULL;
    CHECK_OK(gguf_open(base, &f));
    if (f) CHECK_OK(llama_model_load(f, &m));
    if (m) CHECK_OK(llama_lora_apply(m, adapter, 1.0f));
    CHECK_OK(gguf_open(reference, &ref));
    if (!m || !ref) {
        llama_model_free(m);
        gguf_close(ref);
        return;
    }
    const struct { const char *name; const pg_weight *w; } k_merged[] = {
        {"blk.0.attn_q.weight", &m->w.layers[0].attn_q},
        {"blk.1.attn_v.weight", &m->w.layers[1].attn_v},
        {"blk.3.ffn_down.weight", &m->w.layers[3].ffn_down},
        {"output.weight", &m->w.output},
    };
    size_t total = 0, differ = 0;
    for (size_t i = 0; i < sizeof k_merged / sizeof k_merged[0]; i++) {
        const gguf_tensor *t = gguf_find_tensor(ref, k_merged[i].name);
        const pg_weight *w = k_merged[i].w;
        size_t n = w->row_bytes * (size_t)w->n_out;
        CHECK(t && t->type == w->type && t->nbytes == n);
        if (!t || t->nbytes != n) continue;
        CHECK_MSG(w->data != (const void *)gguf_find_tensor(m->file, k_merged[i].name)->data,
                  "%s still points into the mapping", k_merged[i].name);
        for (size_t j = 0; j < n; j++)
            differ += ((const unsigned char *)w->data)[j] != ((const unsigned char *)t->data)[j];
        total += n;
    }
    CHECK_MSG(differ == 0, "%zu of %zu merged bytes differ from the reference", differ, total);
    printf("%s: %zu of %zu merged weight bytes differ from the reference\n", adapter, differ,
           total);
    llama_model_free(m);
    gguf_close(ref);
}

// ---------------------------------------------------------------------------------------------
// Tests

/* The layers and weights both adapters touch (ffn_down's rows are n_ff = 688 long: not a
 * multiple of 32, so its lora_a is never Q8_0; random_llama keeps that weight F16 too). */
static int make_pairs(raw_tensor *t, const random_llama_config *c, int64_t r, uint32_t type_a,
                      uint32_t type_b) {
    int n = 0;
    raw_pair(t + n, "blk.0.attn_q.weight", c->n_embd, c->n_embd, r, type_a, type_b), n += 2;
    raw_pair(t + n, "blk.1.attn_v.weight", c->n_embd, c->n_embd, r, type_a, type_b), n += 2;
    raw_pair(t + n, "blk.3.ffn_down.weight", c->n_ff, c->n_embd, r,
             type_a == PG_DTYPE_Q8_0 ? PG_DTYPE_F16 : type_a, type_b), n += 2;
    raw_pair(t + n, "output.weight", c->n_embd, c->n_vocab, r, type_a, type_b), n += 2;
    return n;
}

static void test_merge(const random_llama_config *c, const char *base_f32, const char *base_q8) {
    char ad4[512], ad32[512], ref[512], ref2[512], tied[512];
    raw_tensor t[8];
    path_in_tmp(ad4, sizeof ad4, "adapter-r4-f32.gguf");
    int n = make_pairs(t, c, 4, PG_DTYPE_F32, PG_DTYPE_F32);
    write_adapter(ad4, "llama", "adapter", "lora", ALPHA, t, n);
    raw_free(t, n);
    path_in_tmp(ad32, sizeof ad32, "adapter-r32-q8.gguf");
    n = make_pairs(t, c, 32, PG_DTYPE_F16, PG_DTYPE_Q8_0);
    write_adapter(ad32, "llama", "adapter", "lora", ALPHA, t, n);
    raw_free(t, n);

    const int32_t nv = c->n_vocab;
    const double tol = 1e-5;
    path_in_tmp(ref, sizeof ref, "ref.gguf");
    write_merged(base_f32, ad4, 1.0f, MERGE_DOUBLE, ref);
    compare("F32 base, F32 adapter r=4, scale 1", base_f32, ad4, 1.0f, ref, nv, tol);
    write_merged(base_f32, ad4, 0.5f, MERGE_DOUBLE, ref);
    compare("F32 base, F32 adapter r=4, scale 0.5", base_f32, ad4, 0.5f, ref, nv, tol);
    write_merged(base_f32, ad32, 1.0f, MERGE_DOUBLE, ref);
    compare("F32 base, F16/Q8_0 adapter r=32, scale 1", base_f32, ad32, 1.0f, ref, nv, tol);
    write_merged(base_f32, ad32, -2.0f, MERGE_DOUBLE, ref);
    compare("F32 base, F16/Q8_0 adapter r=32, scale -2", base_f32, ad32, -2.0f, ref, nv, tol);

    path_in_tmp(ref2, sizeof ref2, "ref-q8.gguf");
    write_merged(base_q8, ad32, 1.0f, MERGE_FLOAT, ref2);
    compare("Q8_0 base, F16/Q8_0 adapter r=32, scale 1", base_q8, ad32, 1.0f, ref2, nv, tol);
    write_merged(base_q8, ad4, 1.0f, MERGE_FLOAT, ref2);
    compare("Q8_0 base, F32 adapter r=4, scale 1", base_q8, ad4, 1.0f, ref2, nv, tol);
    /* the double reference, re-quantized, is close too: shows the Q8_0 test is not circular */
    write_merged(base_q8, ad4, 1.0f, MERGE_DOUBLE, ref);
    compare("Q8_0 base vs F32 double merge (loose)", base_q8, ad4, 1.0f, ref, nv, 5e-2);

    /* a tied head: output.weight is merged from token_embd, which the input side still reads
     * unmerged — the reference stores both explicitly */
    path_in_tmp(tied, sizeof tied, "tied.gguf");
    write_tied(base_f32, tied);
    write_merged(tied, ad4, 1.0f, MERGE_DOUBLE, ref);
    compare("tied F32 base, F32 adapter r=4 on output", tied, ad4, 1.0f, ref, nv, tol);

    /* scale 0 is the base model, bit for bit; 0.5 is not 1.0 */
    float *base = malloc(sizeof(float) * (size_t)nv), *l0 = malloc(sizeof(float) * (size_t)nv);
    float *l1 = malloc(sizeof(float) * (size_t)nv), *lh = malloc(sizeof(float) * (size_t)nv);
    const char *bases[] = {base_f32, base_q8};
    for (int b = 0; b < 2; b++) {
        CHECK_OK(run_logits(bases[b], NULL, 1.0f, base, nv));
        CHECK_OK(run_logits(bases[b], ad32, 0.0f, l0, nv));
        CHECK_OK(run_logits(bases[b], ad32, 1.0f, l1, nv));
        CHECK_OK(run_logits(bases[b], ad32, 0.5f, lh, nv));
        CHECK_MSG(memcmp(base, l0, sizeof(float) * (size_t)nv) == 0,
                  "%s: lora_scale 0 changed the logits (rel %.3g)", bases[b],
                  rel_diff(l0, base, nv));
        double d1 = rel_diff(l1, base, nv), dh = rel_diff(lh, l1, nv);
        CHECK_MSG(d1 > 1e-2, "%s: the adapter hardly changes the logits (%.3g)", bases[b], d1);
        CHECK_MSG(dh > 1e-3, "%s: lora_scale 0.5 gives the logits of 1.0 (%.3g)", bases[b], dh);
        printf("%s: adapter moves logits by %.3g (rel), scale 0.5 vs 1 by %.3g\n",
               b ? "Q8_0" : "F32", d1, dh);
    }
    free(base);
    free(l0);
    free(l1);
    free(lh);

    /* the merge writes the bytes that a float merge + pg_quantize_row write (Q8_0 rows, and
     * ffn_down kept F16 by random_llama) */
    write_merged(base_q8, ad32, 1.0f, MERGE_FLOAT, ref2);
    check_merged_bytes(base_q8, ad32, ref2);
    write_merged(base_q8, ad4, 1.0f, MERGE_FLOAT, ref2);
    check_merged_bytes(base_q8, ad4, ref2);
}

/* Expect status want from loading base with lora_path, and needle in the message. */
static void expect_lora(const char *base, const char *lora_path, float scale, pg_status want,
                        const char *needle) {
    pg_model_params p;
    pg_model_params_init(&p);
    p.device = PG_DEVICE_CPU; /* the CPU path is the oracle here; tests/gpu checks CUDA */
    p.device = PG_DEVICE_CPU;
    p.n_threads = 1;
    p.lora_path = lora_path;
    p.lora_scale = scale;
    pg_model *m = (pg_model *)1;
    pg_status s = pg_model_load(base, &p, &m);
    CHECK_MSG(s == want, "adapter %s: expected status %d, got %d (%s)", lora_path, want, s,
              pg_last_error());
    CHECK(m == NULL || s == PG_OK);
    if (s != PG_OK && needle)
        CHECK_MSG(strstr(pg_last_error(), needle), "message '%s' lacks '%s'", pg_last_error(),
                  needle);
    if (s != PG_OK) printf("  %s: %s\n", pg_status_string(s), pg_last_error());
    if (s == PG_OK) pg_model_free(m);
}

/* Rewrites the 2-D shape in the tensor info of name (same element count, so the data still
 * fits): u64 name length, name, u32 n_dims, i64 ne[n_dims]. */
static void patch_ne(const char *path, const char *name, int64_t ne0, int64_t ne1) {
    FILE *fp = fopen(path, "r+b");
    CHECK(fp != NULL);
    if (!fp) return;
    unsigned char head[4096];
    size_t n = fread(head, 1, sizeof head, fp);
    size_t len = strlen(name);
    unsigned char *at = memmem(head, n, name, len);
    CHECK(at != NULL);
    if (at) {
        int64_t ne[2] = {ne0, ne1};
        CHECK(fseek(fp, (long)(at - head + len + 4), SEEK_SET) == 0);
        CHECK(fwrite(ne, sizeof ne[0], 2, fp) == 2);
    }
    fclose(fp);
}

/* One bad adapter per case, each a small variation of a good one. */
static void test_errors(const random_llama_config *c, const char *base) {
    enum { GOOD, NO_B, NO_A, SHAPE_A, SHAPE_B, RANK, UNKNOWN, NORM, STRAY, NONE, Q8_B_R4 };
    static const struct {
        int kind;
        const char *arch, *gtype, *atype;
        pg_status want;
        const char *needle;
    } k_cases[] = {
        {GOOD, "llama", "adapter", "lora", PG_OK, NULL},
        {NO_B, "llama", "adapter", "lora", PG_ERR_FORMAT, "blk.0.attn_q.weight.lora_b"},
        {NO_A, "llama", "adapter", "lora", PG_ERR_FORMAT, "blk.0.attn_q.weight.lora_a"},
        {SHAPE_A, "llama", "adapter", "lora", PG_ERR_FORMAT, "blk.0.attn_q.weight.lora_a"},
        {SHAPE_B, "llama", "adapter", "lora", PG_ERR_FORMAT, "blk.0.attn_q.weight.lora_b"},
        {RANK, "llama", "adapter", "lora", PG_ERR_FORMAT, "rank"},
        {UNKNOWN, "llama", "adapter", "lora", PG_ERR_FORMAT, "blk.99.attn_q.weight.lora_a"},
        {NORM, "llama", "adapter", "lora", PG_ERR_FORMAT, "blk.0.attn_norm.weight.lora_a"},
        {STRAY, "llama", "adapter", "lora", PG_ERR_FORMAT, "blk.0.attn_q.weight'"},
        {NONE, "llama", "adapter", "lora", PG_ERR_FORMAT, "no '<weight>.lora_a'"},
        {Q8_B_R4, "llama", "adapter", "lora", PG_ERR_FORMAT, "blk.0.attn_q.weight.lora_b"},
        {GOOD, "llama", "model", "lora", PG_ERR_FORMAT, "general.type"},
        {GOOD, "llama", NULL, "lora", PG_ERR_FORMAT, "general.type"},
        {GOOD, "llama", "adapter", NULL, PG_ERR_FORMAT, "adapter.type"},
        {GOOD, "llama", "adapter", "ia3", PG_ERR_FORMAT, "adapter.type"},
        {GOOD, "clip", "adapter", "lora", PG_ERR_FORMAT, "general.architecture"},
    };
    const int64_t e = c->n_embd;
    char path[512];
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
        raw_tensor t[4];
        int n = 0;
        switch (k_cases[i].kind) {
        case GOOD:
        case NO_B:
        case NO_A:
            raw_pair(t, "blk.0.attn_q.weight", e, e, 4, PG_DTYPE_F32, PG_DTYPE_F32), n = 2;
            if (k_cases[i].kind == NO_B) free(t[1].data), n = 1;
            if (k_cases[i].kind == NO_A) free(t[0].data), t[0] = t[1], n = 1;
            break;
        case SHAPE_A: raw_pair(t, "blk.0.attn_q.weight", e / 2, e, 4, 0, 0), n = 2; break;
        case SHAPE_B: raw_pair(t, "blk.0.attn_q.weight", e, e + 32, 4, 0, 0), n = 2; break;
        case RANK:
            raw_random(&t[0], "blk.0.attn_q.weight.lora_a", 0, e, 4, 0.1f);
            raw_random(&t[1], "blk.0.attn_q.weight.lora_b", 0, 8, e, 0.1f);
            n = 2;
            break;
        case UNKNOWN: raw_pair(t, "blk.99.attn_q.weight", e, e, 4, 0, 0), n = 2; break;
        case NORM: raw_pair(t, "blk.0.attn_norm.weight", e, 1, 4, 0, 0), n = 2; break;
        case STRAY:
            raw_pair(t, "blk.1.attn_q.weight", e, e, 4, 0, 0);
            raw_random(&t[2], "blk.0.attn_q.weight", 0, e, e, 0.1f);
            n = 3;
            break;
        case NONE: n = 0; break;
        case Q8_B_R4: /* rank 32 written, then lora_b's shape patched to rows of 4 below */
            raw_pair(t, "blk.0.attn_q.weight", e, e, 32, 0, PG_DTYPE_Q8_0), n = 2;
            break;
        }
        snprintf(path, sizeof path, "%s/bad-%zu.gguf", tmpdir, i);
        write_adapter(path, k_cases[i].arch, k_cases[i].gtype, k_cases[i].atype, ALPHA, t, n);
        raw_free(t, n);
        /* lora_b rows of r = 4 cannot be Q8_0 blocks of 32 (the writer refuses to make one) */
        if (k_cases[i].kind == Q8_B_R4) patch_ne(path, "blk.0.attn_q.weight.lora_b", 4, 8 * e);
        expect_lora(base, path, 1.0f, k_cases[i].want, k_cases[i].needle);
        if (k_cases[i].want != PG_OK)
            CHECK_MSG(strstr(pg_last_error(), path), "message '%s' does not name the adapter",
                      pg_last_error());
    }

    /* a good adapter for the argument checks */
    raw_tensor t[2];
    raw_pair(t, "blk.2.ffn_up.weight", e, c->n_ff, 4, 0, 0);
    path_in_tmp(path, sizeof path, "good.gguf");
    write_adapter(path, "llama", "adapter", "lora", ALPHA, t, 2);
    raw_free(t, 2);
    expect_lora(base, path, 1.0f, PG_OK, NULL);

    /* arguments */
    expect_lora(base, "/nonexistent/adapter.gguf", 1.0f, PG_ERR_IO, "/nonexistent/adapter.gguf");
    expect_lora(base, path, NAN, PG_ERR_INVALID_ARGUMENT, "lora_scale");
    expect_lora(base, path, INFINITY, PG_ERR_INVALID_ARGUMENT, "lora_scale");
    expect_lora(NULL, path, 1.0f, PG_ERR_INVALID_ARGUMENT, NULL);
    pg_model_params p;
    pg_model_params_init(&p);
    p.device = PG_DEVICE_CPU; /* the CPU path is the oracle here; tests/gpu checks CUDA */
    p.encoder_path = "encoder.gguf";
    p.lora_path = path;
    pg_model *m = (pg_model *)1;
    CHECK_STATUS(pg_model_load(NULL, &p, &m), PG_ERR_INVALID_ARGUMENT);
    CHECK(m == NULL);
    CHECK_MSG(strstr(pg_last_error(), "lora_path"), "message '%s' lacks 'lora_path'",
              pg_last_error());
}

/* Without alpha, or with alpha 0, the scale is lora_scale itself: the same as alpha = r. */
static void test_no_alpha(const random_llama_config *c, const char *base) {
    raw_tensor t[2];
    raw_pair(t, "blk.2.ffn_up.weight", c->n_embd, c->n_ff, 16, 0, 0);
    static const float k_alpha[] = {16.0f, NAN, 0.0f}; /* = r first: the expected logits */
    int32_t nv = c->n_vocab;
    float *want = malloc(sizeof(float) * (size_t)nv), *got = malloc(sizeof(float) * (size_t)nv);
    for (int i = 0; i < 3; i++) {
        char path[512];
        path_in_tmp(path, sizeof path, "alpha.gguf");
        write_adapter(path, "llama", "adapter", "lora", k_alpha[i], t, 2);
        CHECK_OK(run_logits(base, path, 0.75f, i ? got : want, nv));
        if (i)
            CHECK_MSG(memcmp(got, want, sizeof(float) * (size_t)nv) == 0,
                      "alpha %g differs from alpha = r (rel %.3g)", k_alpha[i],
                      rel_diff(got, want, nv));
    }
    raw_free(t, 2);
    free(want);
    free(got);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    random_llama_config c;
    random_llama_preset("tiny", &c);
    c.n_layer = 4;
    char base_f32[512], base_q8[512];
    path_in_tmp(base_f32, sizeof base_f32, "tiny-f32.gguf");
    path_in_tmp(base_q8, sizeof base_q8, "tiny-q8_0.gguf");
    c.type = PG_DTYPE_F32;
    CHECK_OK(random_llama_write(&c, base_f32, "lora test"));
    c.type = PG_DTYPE_Q8_0;
    CHECK_OK(random_llama_write(&c, base_q8, "lora test"));

    test_merge(&c, base_f32, base_q8);
    test_no_alpha(&c, base_f32);
    test_errors(&c, base_f32);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_done("lora");
}
