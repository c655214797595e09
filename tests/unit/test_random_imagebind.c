/*
 * test_random_imagebind.c — tools/random_imagebind against docs/format.md §3, written out here
 * independently: the tiny preset (F32 and Q8_0, with and without the text tower, with a
 * llama_proj of 256) must hold exactly the tensors the doc lists, in convert-pandagpt.py's
 * order, with the doc's shapes and types, and exactly the doc's keys with their types and
 * values. Also: the parameter count matches random_imagebind_n_params and, for the huge preset,
 * spec §6's 1,200,786,990 checkpoint scalars less what the file does not store; the same seed
 * gives the same bytes; the Q8_0 file holds the F32 file's values; the values have the
 * documented distributions; gguf-py reads the file when it is installed.
 */
#include <pandagpt.h>

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gguf/dtype.h"
#include "gguf/gguf.h"
#include "random_imagebind.h"

static char tmpdir[] = "/tmp/pg_test_random_imagebind_XXXXXX";

static void path_in_tmp(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

// ---------------------------------------------------------------------------------------------
// docs/format.md §3, written out

/* Per tower, in file order: name, the tiny reference's width/heads/blocks (imagebind-tiny's
 * README), the huge ones (spec §5.0), tokens, patch_embed row length. */
static const struct {
    const char *name;
    int32_t tiny_e, tiny_heads, tiny_blocks;
    int32_t huge_e, huge_heads, huge_blocks;
    int32_t tokens, kernel;
} k_tower[6] = {
    {"vision", 64, 4, 2, 1280, 16, 32, 257, 1176},
    {"audio", 48, 4, 2, 768, 12, 12, 229, 256},
    {"thermal", 40, 4, 2, 768, 12, 12, 197, 256},
    {"depth", 32, 4, 2, 384, 8, 12, 197, 256},
    {"imu", 24, 2, 2, 512, 8, 6, 251, 48},
    {"text", 8, 2, 2, 1024, 16, 24, 77, 0},
};
#define TINY_DIM 32

typedef struct want_tensor {
    char name[64];
    int64_t rows, cols; /* torch shape [rows, cols]; a vector is [cols] with rows = 0 */
    int matrix;         /* "matrices" in the doc's sense: takes the outtype */
} want_tensor;

typedef struct want_list {
    want_tensor t[256];
    int n;
} want_list;

static void want(want_list *l, int matrix, int64_t rows, int64_t cols, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void want(want_list *l, int matrix, int64_t rows, int64_t cols, const char *fmt, ...) {
    if (l->n >= (int)(sizeof l->t / sizeof l->t[0])) {
        fprintf(stderr, "want list full\n");
        exit(1);
    }
    want_tensor *t = &l->t[l->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->rows = rows, t->cols = cols, t->matrix = matrix;
}

/* The doc's table for the tiny widths, in encoder_jobs() order. */
static void expected_tensors(int with_text, int64_t proj_out, want_list *l) {
    l->n = 0;
    for (int m = 0; m < (with_text ? 6 : 5); m++) {
        const char *nm = k_tower[m].name;
        int64_t e = k_tower[m].tiny_e, t = k_tower[m].tokens;
        int vision = m == 0, text = m == 5, kv = !vision && !text;
        if (text) {
            want(l, 1, 49408, e, "text.token_embed.weight");
            want(l, 0, 77, e, "text.pos_embed");
        } else {
            want(l, 0, 0, e, "%s.cls_token", nm);
            want(l, 1, e, k_tower[m].kernel, "%s.patch_embed.weight", nm);
            if (!vision) {
                want(l, 0, 0, e, "%s.stem_norm.weight", nm);
                want(l, 0, 0, e, "%s.stem_norm.bias", nm);
            }
            want(l, 0, t, e, "%s.pos_embed", nm);
        }
        if (vision) {
            want(l, 0, 0, e, "vision.pre_norm.weight");
            want(l, 0, 0, e, "vision.pre_norm.bias");
        }
        for (int i = 0; i < k_tower[m].tiny_blocks; i++) {
            want(l, 0, 0, e, "%s.blk.%d.norm_1.weight", nm, i);
            want(l, 0, 0, e, "%s.blk.%d.norm_1.bias", nm, i);
            want(l, 1, 3 * e, e, "%s.blk.%d.attn.in_proj.weight", nm, i);
            want(l, 0, 0, 3 * e, "%s.blk.%d.attn.in_proj.bias", nm, i);
            if (kv) {
                want(l, 0, 0, e, "%s.blk.%d.attn.bias_k", nm, i);
                want(l, 0, 0, e, "%s.blk.%d.attn.bias_v", nm, i);
            }
            want(l, 1, e, e, "%s.blk.%d.attn.out_proj.weight", nm, i);
            want(l, 0, 0, e, "%s.blk.%d.attn.out_proj.bias", nm, i);
            want(l, 0, 0, e, "%s.blk.%d.norm_2.weight", nm, i);
            want(l, 0, 0, e, "%s.blk.%d.norm_2.bias", nm, i);
            want(l, 1, 4 * e, e, "%s.blk.%d.mlp.fc1.weight", nm, i);
            want(l, 0, 0, 4 * e, "%s.blk.%d.mlp.fc1.bias", nm, i);
            want(l, 1, e, 4 * e, "%s.blk.%d.mlp.fc2.weight", nm, i);
            want(l, 0, 0, e, "%s.blk.%d.mlp.fc2.bias", nm, i);
        }
        want(l, 0, 0, e, "%s.head_norm.weight", nm);
        want(l, 0, 0, e, "%s.head_norm.bias", nm);
        want(l, 1, TINY_DIM, e, "%s.head.weight", nm);
    }
    if (proj_out > 0) {
        want(l, 1, proj_out, TINY_DIM, "llama_proj.weight");
        want(l, 0, 0, proj_out, "llama_proj.bias");
    }
}

/* The doc's type table: matrices take the outtype, falling back to F16 for Q8_0/Q4_0 rows
 * that are not a multiple of 32; everything else F32. */
static uint32_t expected_type(const want_tensor *t, uint32_t outtype) {
    if (!t->matrix) return PG_DTYPE_F32;
    if ((outtype == PG_DTYPE_Q8_0 || outtype == PG_DTYPE_Q4_0) && t->cols % 32 != 0)
        return PG_DTYPE_F16;
    return outtype;
}

// ---------------------------------------------------------------------------------------------
// Checking one file

static void check_u32(const gguf_file *f, const char *key, uint32_t v) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    CHECK_MSG(kv && kv->type == GGUF_TYPE_UINT32, "%s: missing or not u32", key);
    if (kv && kv->type == GGUF_TYPE_UINT32) {
        uint32_t got;
        memcpy(&got, kv->data, 4);
        CHECK_MSG(got == v, "%s: expected %u, got %u", key, (unsigned)v, (unsigned)got);
    }
}

static void check_f32(const gguf_file *f, const char *key, float v) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    CHECK_MSG(kv && kv->type == GGUF_TYPE_FLOAT32, "%s: missing or not f32", key);
    if (kv && kv->type == GGUF_TYPE_FLOAT32) {
        float got;
        memcpy(&got, kv->data, 4);
        CHECK_MSG(got == v, "%s: expected %.9g, got %.9g", key, (double)v, (double)got);
    }
}

static void check_bool(const gguf_file *f, const char *key, int v) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    CHECK_MSG(kv && kv->type == GGUF_TYPE_BOOL, "%s: missing or not bool", key);
    if (kv && kv->type == GGUF_TYPE_BOOL)
        CHECK_MSG(kv->data[0] == (v ? 1 : 0), "%s: expected %d, got %d", key, v, kv->data[0]);
}

static void check_str(const gguf_file *f, const char *key, const char *v) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    CHECK_MSG(kv && kv->type == GGUF_TYPE_STRING, "%s: missing or not a string", key);
    if (kv && kv->type == GGUF_TYPE_STRING)
        CHECK_MSG(gguf_str_eq(kv->strs[0], v), "%s: expected \"%s\", got \"%.*s\"", key, v,
                  (int)kv->strs[0].len, kv->strs[0].ptr);
}

/* Every key of the doc's table, with its type and value; returns how many there should be. */
static uint64_t check_metadata(const gguf_file *f, int with_text, int64_t proj_out,
                               uint32_t file_type, const char *name) {
    uint64_t n = 0;
    check_str(f, "general.architecture", "imagebind"), n++;
    check_str(f, "general.type", "model"), n++;
    check_str(f, "general.name", name), n++;
    check_u32(f, "general.file_type", file_type), n++;
    check_u32(f, "general.quantization_version", 2), n++;
    check_u32(f, "imagebind.embedding_length", TINY_DIM), n++;
    const gguf_kv *mods = gguf_find_kv(f, "imagebind.modalities");
    n++;
    int n_mod = with_text ? 6 : 5;
    CHECK_MSG(mods && mods->type == GGUF_TYPE_ARRAY && mods->arr_type == GGUF_TYPE_STRING &&
              mods->n == (uint64_t)n_mod, "imagebind.modalities: missing or not %d strings",
              n_mod);
    if (mods && mods->type == GGUF_TYPE_ARRAY && mods->arr_type == GGUF_TYPE_STRING &&
        mods->n == (uint64_t)n_mod)
        for (int m = 0; m < n_mod; m++)
            CHECK_MSG(gguf_str_eq(mods->strs[m], k_tower[m].name),
                      "imagebind.modalities[%d]: expected %s", m, k_tower[m].name);
    /* audio ln 20, thermal ln 10, depth ln 5, imu ln 5, text ln(1/0.07) */
    const double log_scale[6] = {0, log(20.0), log(10.0), log(5.0), log(5.0), log(1 / 0.07)};
    char key[128];
    for (int m = 0; m < n_mod; m++) {
#define KEY(s) (snprintf(key, sizeof key, "imagebind.%s." s, k_tower[m].name), key)
        int vision = m == 0, text = m == 5;
        uint32_t e = (uint32_t)k_tower[m].tiny_e;
        check_u32(f, KEY("embedding_length"), e), n++;
        check_u32(f, KEY("block_count"), (uint32_t)k_tower[m].tiny_blocks), n++;
        check_u32(f, KEY("attention.head_count"), (uint32_t)k_tower[m].tiny_heads), n++;
        check_u32(f, KEY("feed_forward_length"), 4 * e), n++;
        check_f32(f, KEY("attention.layer_norm_epsilon"), 1e-6f), n++;
        check_bool(f, KEY("attention.bias_kv"), !vision && !text), n++;
        check_u32(f, KEY("token_count"), (uint32_t)k_tower[m].tokens), n++;
        if (!vision && !text) check_f32(f, KEY("stem.layer_norm_epsilon"), 1e-5f), n++;
        else CHECK_MSG(!gguf_find_kv(f, KEY("stem.layer_norm_epsilon")), "%s is extra", key);
        if (!vision) check_f32(f, KEY("log_logit_scale"), (float)log_scale[m]), n++;
        else CHECK_MSG(!gguf_find_kv(f, KEY("log_logit_scale")), "%s is extra", key);
#undef KEY
    }
    if (proj_out > 0) {
        check_u32(f, "imagebind.llama_proj.input_length", TINY_DIM), n++;
        check_u32(f, "imagebind.llama_proj.output_length", (uint32_t)proj_out), n++;
    } else {
        CHECK(!gguf_find_kv(f, "imagebind.llama_proj.input_length"));
        CHECK(!gguf_find_kv(f, "imagebind.llama_proj.output_length"));
    }
    if (!with_text) CHECK(!gguf_find_kv(f, "imagebind.text.embedding_length"));
    CHECK_MSG(f->n_kv == n, "%llu keys, expected %llu (an extra or a missing key)",
              (unsigned long long)f->n_kv, (unsigned long long)n);
    return n;
}

/* Every tensor of the doc's list, in order, with its shape and type; nothing else. Returns the
 * file's element count. */
static uint64_t check_tensors(const gguf_file *f, int with_text, int64_t proj_out,
                              uint32_t outtype, const char *label) {
    static want_list l;
    expected_tensors(with_text, proj_out, &l);
    CHECK_MSG(f->n_tensors == (uint64_t)l.n, "%s: %llu tensors, expected %d", label,
              (unsigned long long)f->n_tensors, l.n);
    uint64_t n_elems = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        uint64_t ne = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) ne *= (uint64_t)t->ne[d];
        n_elems += ne;
        if (i >= (uint64_t)l.n) {
            fprintf(stderr, "%s: extra tensor %.*s\n", label, (int)t->name.len, t->name.ptr);
            check_failures++;
            continue;
        }
        const want_tensor *w = &l.t[i];
        CHECK_MSG(gguf_str_eq(t->name, w->name), "%s: tensor %llu: expected %s, got %.*s",
                  label, (unsigned long long)i, w->name, (int)t->name.len, t->name.ptr);
        /* GGUF ne is the torch shape reversed */
        int want_dims = w->rows ? 2 : 1;
        CHECK_MSG(t->n_dims == (uint32_t)want_dims && t->ne[0] == w->cols &&
                  (want_dims == 1 || t->ne[1] == w->rows),
                  "%s: %s: expected torch shape [%lld%s%lld], got ne [%lld, %lld] (%u dims)",
                  label, w->name, (long long)(w->rows ? w->rows : w->cols), w->rows ? ", " : "",
                  (long long)(w->rows ? w->cols : 0), (long long)t->ne[0], (long long)t->ne[1],
                  (unsigned)t->n_dims);
        uint32_t ty = expected_type(w, outtype);
        CHECK_MSG(t->type == ty, "%s: %s: expected type %s, got %s", label, w->name,
                  pg_dtype_name(ty), pg_dtype_name(t->type));
    }
    return n_elems;
}

static void tiny_config(random_imagebind_config *c, int with_text, int32_t proj_out,
                        uint32_t type) {
    CHECK(random_imagebind_preset("tiny", c));
    c->with_text = with_text;
    c->llama_proj_out = proj_out;
    c->type = type;
}

static void check_tiny_file(int with_text, int32_t proj_out, uint32_t type, uint32_t file_type,
                            const char *file) {
    random_imagebind_config c;
    tiny_config(&c, with_text, proj_out, type);
    char path[512], label[600];
    path_in_tmp(path, sizeof path, file);
    snprintf(label, sizeof label, "%s (text %d, llama_proj %d, %s)", file, with_text,
             (int)proj_out, pg_dtype_name(type));
    CHECK_OK(random_imagebind_write(&c, path, "test encoder"));
    gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    if (!f) return;
    check_metadata(f, with_text, proj_out, file_type, "test encoder");
    uint64_t n = check_tensors(f, with_text, proj_out, type, label);
    CHECK_MSG(n == random_imagebind_n_params(&c), "%s: %llu elements, n_params says %llu", label,
              (unsigned long long)n, (unsigned long long)random_imagebind_n_params(&c));
    gguf_close(f);
}

// ---------------------------------------------------------------------------------------------
// Values

/* mean and standard deviation of a tensor's elements, dequantized */
static void moments(const gguf_tensor *t, double *mean, double *sd) {
    int64_t ne0 = t->ne[0], rows = t->ne[1];
    size_t rb = pg_dtype_row_bytes(t->type, ne0);
    float *row = malloc(sizeof(float) * (size_t)ne0);
    double s = 0, s2 = 0;
    for (int64_t r = 0; r < rows; r++) {
        pg_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * rb, row, ne0);
        for (int64_t i = 0; i < ne0; i++) s += row[i], s2 += (double)row[i] * row[i];
    }
    free(row);
    double n = (double)(ne0 * rows);
    *mean = s / n;
    *sd = sqrt(s2 / n - *mean * *mean);
}

static void check_dist(const gguf_file *f, const char *name, double mean, double sd) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    CHECK_MSG(t, "%s missing", name);
    if (!t) return;
    double m, s;
    moments(t, &m, &s);
    double n = (double)(t->ne[0] * t->ne[1]);
    /* 6 standard errors of the mean; 15% on the deviation (the smallest tensor has 24 values) */
    CHECK_MSG(fabs(m - mean) <= 6 * sd / sqrt(n) && fabs(s - sd) <= 0.15 * sd + 6 * sd / sqrt(n),
              "%s: expected mean %g sd %g, got mean %g sd %g", name, mean, sd, m, s);
}

static void check_values(void) {
    random_imagebind_config c;
    tiny_config(&c, 1, 256, PG_DTYPE_F32);
    char path[512];
    path_in_tmp(path, sizeof path, "values.gguf");
    CHECK_OK(random_imagebind_write(&c, path, NULL));
    gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    if (!f) return;
    check_str(f, "general.name", "libpandagpt random imagebind");
    check_dist(f, "vision.patch_embed.weight", 0, 1 / sqrt(1176.0));
    check_dist(f, "audio.blk.1.attn.in_proj.weight", 0, 1 / sqrt(48.0));
    check_dist(f, "thermal.blk.0.mlp.fc2.weight", 0, 1 / sqrt(160.0));
    check_dist(f, "imu.head.weight", 0, 1 / sqrt(24.0));
    check_dist(f, "llama_proj.weight", 0, 1 / sqrt(32.0));
    check_dist(f, "text.token_embed.weight", 0, 0.02);
    check_dist(f, "vision.pos_embed", 0, 0.02);
    check_dist(f, "depth.cls_token", 0, 0.02);
    check_dist(f, "audio.blk.0.attn.bias_k", 0, 0.02);
    check_dist(f, "vision.blk.1.mlp.fc1.bias", 0, 0.02);
    check_dist(f, "llama_proj.bias", 0, 0.02);
    check_dist(f, "vision.blk.0.norm_1.weight", 1, 0.1);
    check_dist(f, "vision.pre_norm.weight", 1, 0.1);
    check_dist(f, "audio.stem_norm.weight", 1, 0.1);
    check_dist(f, "text.head_norm.weight", 1, 0.1);
    /* two tensors of the same shape are not the same stream */
    const gguf_tensor *a = gguf_find_tensor(f, "audio.blk.0.attn.bias_k");
    const gguf_tensor *b = gguf_find_tensor(f, "audio.blk.0.attn.bias_v");
    CHECK(a && b && memcmp(a->data, b->data, a->nbytes) != 0);

    /* Q8_0: F32 tensors are the same bytes, matrices the same values quantized */
    tiny_config(&c, 1, 256, PG_DTYPE_Q8_0);
    char qpath[512];
    path_in_tmp(qpath, sizeof qpath, "values_q8.gguf");
    CHECK_OK(random_imagebind_write(&c, qpath, NULL));
    gguf_file *q = NULL;
    CHECK_OK(gguf_open(qpath, &q));
    if (q && q->n_tensors == f->n_tensors) {
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const gguf_tensor *tf = &f->tensors[i], *tq = &q->tensors[i];
            int64_t ne0 = tf->ne[0], rows = tf->ne[1];
            float *x = malloc(sizeof(float) * (size_t)ne0);
            void *enc = malloc(pg_dtype_row_bytes(PG_DTYPE_Q8_0, ne0) + 2 * (size_t)ne0);
            int same = 1;
            for (int64_t r = 0; r < rows && same; r++) {
                const float *src = (const float *)tf->data + r * ne0;
                const uint8_t *got = (const uint8_t *)tq->data +
                                     (size_t)r * pg_dtype_row_bytes(tq->type, ne0);
                if (tq->type == PG_DTYPE_F32) {
                    same = memcmp(src, got, sizeof(float) * (size_t)ne0) == 0;
                } else if (tq->type == PG_DTYPE_F16) {
                    pg_dequantize_row(PG_DTYPE_F16, got, x, ne0);
                    for (int64_t j = 0; j < ne0; j++)
                        same &= x[j] == pg_fp16_to_fp32(pg_fp32_to_fp16(src[j]));
                } else {
                    pg_quantize_row(tq->type, src, enc, ne0);
                    same = memcmp(enc, got, pg_dtype_row_bytes(tq->type, ne0)) == 0;
                }
            }
            CHECK_MSG(same, "%.*s: the Q8_0 file does not hold the F32 file's values",
                      (int)tf->name.len, tf->name.ptr);
            free(x);
            free(enc);
        }
    } else {
        CHECK_MSG(0, "Q8_0 file: cannot compare with the F32 file");
    }
    gguf_close(q);
    gguf_close(f);
    unlink(path);
    unlink(qpath);
}

// ---------------------------------------------------------------------------------------------
// Determinism, presets, counts, errors

static int same_bytes(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void check_determinism(void) {
    random_imagebind_config c;
    tiny_config(&c, 1, 256, PG_DTYPE_Q4_0);
    char a[512], b[512], d[512];
    path_in_tmp(a, sizeof a, "det_a.gguf");
    path_in_tmp(b, sizeof b, "det_b.gguf");
    path_in_tmp(d, sizeof d, "det_d.gguf");
    CHECK_OK(random_imagebind_write(&c, a, NULL));
    CHECK_OK(random_imagebind_write(&c, b, NULL));
    CHECK_MSG(same_bytes(a, b), "two writes with seed %llu differ", (unsigned long long)c.seed);
    c.seed++;
    CHECK_OK(random_imagebind_write(&c, d, NULL));
    CHECK_MSG(!same_bytes(a, d), "seeds %llu and %llu give the same file",
              (unsigned long long)c.seed - 1, (unsigned long long)c.seed);
    unlink(a);
    unlink(b);
    unlink(d);
}

static void check_presets(void) {
    random_imagebind_config c;
    for (int huge = 0; huge < 2; huge++) {
        memset(&c, 0xAB, sizeof c);
        CHECK(random_imagebind_preset(huge ? "huge" : "tiny", &c));
        for (int m = 0; m < 6; m++) {
            CHECK_EQ_INT(c.m[m].width, huge ? k_tower[m].huge_e : k_tower[m].tiny_e);
            CHECK_EQ_INT(c.m[m].heads, huge ? k_tower[m].huge_heads : k_tower[m].tiny_heads);
            CHECK_EQ_INT(c.m[m].blocks, huge ? k_tower[m].huge_blocks : k_tower[m].tiny_blocks);
        }
        CHECK_EQ_INT(c.dim, huge ? 1024 : TINY_DIM);
        CHECK_EQ_INT(c.with_text, 0);
        CHECK_EQ_INT(c.llama_proj_out, 0);
        CHECK_EQ_INT(c.type, PG_DTYPE_F32);
        CHECK_EQ_INT(c.seed, 4321);
    }
    CHECK(!random_imagebind_preset("base", &c));

    /* spec §6: imagebind_huge.pth holds 1,200,786,990 scalars; the file leaves out text.mask
     * (77·77) and the five log_logit_scale scalars (keys instead) */
    CHECK(random_imagebind_preset("huge", &c));
    c.with_text = 1;
    const uint64_t stored = 1200786990ull - 77 * 77 - 5;
    CHECK_EQ_INT(random_imagebind_n_params(&c), stored);
    c.llama_proj_out = 4096; /* Vicuna-7B: llama_proj [4096, 1024] + [4096] */
    CHECK_EQ_INT(random_imagebind_n_params(&c), stored + 4096ull * 1024 + 4096);
    /* without text: less spec §6's text tower, token_embed, pos_embed, 24 blocks, head */
    c.with_text = 0;
    c.llama_proj_out = 0;
    const uint64_t text = 49408ull * 1024 + 77 * 1024 +
                          24 * (12ull * 1024 * 1024 + 13 * 1024) + 2 * 1024 + 1024ull * 1024;
    CHECK_EQ_INT(random_imagebind_n_params(&c), stored - text);
}

static void check_errors(void) {
    random_imagebind_config c;
    char path[512];
    path_in_tmp(path, sizeof path, "bad.gguf");
    tiny_config(&c, 0, 0, PG_DTYPE_F32);
    CHECK_STATUS(random_imagebind_write(NULL, path, NULL), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(random_imagebind_write(&c, NULL, NULL), PG_ERR_INVALID_ARGUMENT);
    c.m[2].heads = 3; /* 40 wide */
    CHECK_STATUS(random_imagebind_write(&c, path, NULL), PG_ERR_INVALID_ARGUMENT);
    CHECK_MSG(strstr(pg_last_error(), "thermal") != NULL, "message: %s", pg_last_error());
    tiny_config(&c, 0, 0, PG_DTYPE_F32);
    c.m[5].width = 0; /* text is not written: its config does not matter */
    CHECK_OK(random_imagebind_write(&c, path, NULL));
    c.with_text = 1;
    CHECK_STATUS(random_imagebind_write(&c, path, NULL), PG_ERR_INVALID_ARGUMENT);
    tiny_config(&c, 0, -1, PG_DTYPE_F32);
    CHECK_STATUS(random_imagebind_write(&c, path, NULL), PG_ERR_INVALID_ARGUMENT);
    tiny_config(&c, 0, 0, 7); /* Q5_1: not a type we write */
    CHECK_STATUS(random_imagebind_write(&c, path, NULL), PG_ERR_INVALID_ARGUMENT);
    tiny_config(&c, 0, 0, PG_DTYPE_F32);
    c.dim = 0;
    CHECK_STATUS(random_imagebind_write(&c, path, NULL), PG_ERR_INVALID_ARGUMENT);
    tiny_config(&c, 0, 0, PG_DTYPE_F32);
    char dir_path[600];
    snprintf(dir_path, sizeof dir_path, "%s/no/such/dir.gguf", tmpdir);
    CHECK_STATUS(random_imagebind_write(&c, dir_path, NULL), PG_ERR_IO);
    unlink(path);
}

/* gguf-py (what llama.cpp's tools use) parses the file: tensor count and a shape. */
static void check_gguf_py(void) {
    if (system("python3 -c 'import gguf' 2>/dev/null") != 0) {
        printf("gguf-py sub-check skipped: no python3 with the gguf package\n");
        return;
    }
    random_imagebind_config c;
    tiny_config(&c, 1, 256, PG_DTYPE_Q8_0);
    char path[512], cmd[2048];
    path_in_tmp(path, sizeof path, "py.gguf");
    CHECK_OK(random_imagebind_write(&c, path, NULL));
    static want_list l;
    expected_tensors(1, 256, &l);
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sys, gguf; r = gguf.GGUFReader(sys.argv[1]); "
             "t = {x.name: x for x in r.tensors}; "
             "assert len(r.tensors) == %d, len(r.tensors); "
             "assert bytes(r.fields[\"general.architecture\"].parts[-1]) == b\"imagebind\"; "
             "assert list(t[\"text.token_embed.weight\"].shape) == [8, 49408]; "
             "assert t[\"vision.blk.0.mlp.fc1.weight\"].tensor_type.name == \"Q8_0\"' '%s'",
             l.n, path);
    CHECK_MSG(system(cmd) == 0, "gguf.GGUFReader rejected %s", path);
    unlink(path);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    static const struct {
        int with_text;
        int32_t proj_out;
        uint32_t type, file_type;
        const char *file;
    } k_cases[] = {
        {0, 0, PG_DTYPE_F32, 0, "f32.gguf"},
        {1, 0, PG_DTYPE_F32, 0, "f32_text.gguf"},
        {0, 256, PG_DTYPE_F32, 0, "f32_proj.gguf"},
        {1, 256, PG_DTYPE_F32, 0, "f32_text_proj.gguf"},
        {0, 0, PG_DTYPE_Q8_0, 7, "q8.gguf"},
        {1, 0, PG_DTYPE_Q8_0, 7, "q8_text.gguf"},
        {0, 256, PG_DTYPE_Q8_0, 7, "q8_proj.gguf"},
        {1, 256, PG_DTYPE_Q8_0, 7, "q8_text_proj.gguf"},
        {1, 256, PG_DTYPE_Q4_0, 2, "q4_text_proj.gguf"},
        {1, 256, PG_DTYPE_F16, 1, "f16_text_proj.gguf"},
        {1, 256, PG_DTYPE_BF16, 32, "bf16_text_proj.gguf"},
    };
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
        check_tiny_file(k_cases[i].with_text, k_cases[i].proj_out, k_cases[i].type,
                        k_cases[i].file_type, k_cases[i].file);
        char path[512];
        path_in_tmp(path, sizeof path, k_cases[i].file);
        unlink(path);
    }
    check_values();
    check_determinism();
    check_presets();
    check_errors();
    check_gguf_py();
    rmdir(tmpdir);
    return check_done("test_random_imagebind");
}
