/*
 * random_imagebind.c — a random-weight imagebind encoder GGUF, streamed to disk (see
 * random_imagebind.h). Keys and tensors follow tools/convert-pandagpt.py's encoder_metadata()
 * and encoder_jobs() line for line, so a reader cannot tell this file from a converted one by
 * its layout.
 */
#include "random_imagebind.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "gguf/dtype.h"
#include "gguf/gguf.h"
#include "random_tensor.h"

#define TEXT_VOCAB 49408
#define MAX_DIM (1 << 24) /* keeps 4E, E·E and every count far inside int64 and int32 */
#define MAX_BLOCKS 4096

/* ImageBind's fixed geometry per tower (spec §5.0, docs/format.md §3). */
static const struct {
    const char *name;
    int32_t tokens;      /* incl. CLS; text: the context */
    int32_t patch;       /* patch_embed row length: the flattened kernel (0: text) */
    int stem_norm;       /* audio, thermal, depth, imu: LayerNorm after the patch stem */
    int bias_kv;         /* audio, thermal, depth, imu: learned extra key and value */
    double logit_scale;  /* log_logit_scale key; < 0: none (vision) */
} k_towers[RANDOM_IMAGEBIND_N_MODALITIES] = {
    {"vision", 257, 3 * 2 * 14 * 14, 0, 0, -1.0},
    {"audio", 229, 16 * 16, 1, 1, 2.995732273553991},    /* ln 20 */
    {"thermal", 197, 16 * 16, 1, 1, 2.302585092994046},  /* ln 10 */
    {"depth", 197, 16 * 16, 1, 1, 1.6094379124341003},   /* ln 5 */
    {"imu", 251, 6 * 8, 1, 1, 1.6094379124341003},       /* ln 5 */
    {"text", 77, 0, 0, 0, 2.659260036932778},            /* ln(1/0.07), upstream's init */
};

/* ---- Presets -------------------------------------------------------------------------------- */

int random_imagebind_preset(const char *name, random_imagebind_config *c) {
    static const struct {
        const char *name;
        random_imagebind_tower m[RANDOM_IMAGEBIND_N_MODALITIES]; /* width, blocks, heads */
        int32_t dim;
    } k_presets[] = {
        /* shared/reference/imagebind-tiny */
        {"tiny", {{64, 2, 4}, {48, 2, 4}, {40, 2, 4}, {32, 2, 4}, {24, 2, 2}, {8, 2, 2}}, 32},
        /* ImageBind-huge, spec §5.0 */
        {"huge",
         {{1280, 32, 16}, {768, 12, 12}, {768, 12, 12}, {384, 12, 8}, {512, 6, 8}, {1024, 24, 16}},
         1024},
    };
    if (!name || !c) return 0;
    for (size_t i = 0; i < sizeof k_presets / sizeof k_presets[0]; i++) {
        if (strcmp(name, k_presets[i].name) != 0) continue;
        *c = (random_imagebind_config){
            .dim = k_presets[i].dim, .with_text = 0, .llama_proj_out = 0,
            .type = PG_DTYPE_F32, .seed = 4321,
        };
        memcpy(c->m, k_presets[i].m, sizeof c->m);
        return 1;
    }
    return 0;
}

static int n_towers(const random_imagebind_config *c) {
    return c->with_text ? RANDOM_IMAGEBIND_N_MODALITIES : RANDOM_IMAGEBIND_TEXT;
}

uint64_t random_imagebind_n_params(const random_imagebind_config *c) {
    uint64_t n = 0, d = (uint64_t)c->dim;
    for (int m = 0; m < n_towers(c); m++) {
        uint64_t e = (uint64_t)c->m[m].width, t = (uint64_t)k_towers[m].tokens;
        /* norm_1, in_proj, out_proj, norm_2, fc1, fc2: 12E² + 13E; bias_k/bias_v: 2E */
        uint64_t block = 12 * e * e + 13 * e + (k_towers[m].bias_kv ? 2 * e : 0);
        if (m == RANDOM_IMAGEBIND_TEXT)
            n += (uint64_t)TEXT_VOCAB * e + t * e;                  /* token_embed, pos_embed */
        else
            n += e + e * (uint64_t)k_towers[m].patch + t * e        /* cls, patch_embed, pos */
                 + (k_towers[m].stem_norm ? 2 * e : 0)
                 + (m == RANDOM_IMAGEBIND_VISION ? 2 * e : 0);      /* pre_norm */
        n += (uint64_t)c->m[m].blocks * block + 2 * e + d * e;    /* head_norm, head */
    }
    if (c->llama_proj_out > 0) n += (uint64_t)c->llama_proj_out * (d + 1);
    return n;
}

/* ---- The tensor list ------------------------------------------------------------------------ */

typedef struct tensor_list {
    random_tensor_spec *t;
    int32_t n;
    uint32_t type;       /* the matrices' asked-for type */
} tensor_list;

static random_tensor_spec *add(tensor_list *l, int n_dims, int64_t ne0, int64_t ne1, float mean,
                               float std, const char *fmt, const char *m, int blk) {
    random_tensor_spec *s = &l->t[l->n++];
    if (blk >= 0) snprintf(s->name, sizeof s->name, fmt, m, blk);
    else snprintf(s->name, sizeof s->name, fmt, m);
    s->type = PG_DTYPE_F32;
    s->n_dims = n_dims, s->ne[0] = ne0, s->ne[1] = ne1, s->mean = mean, s->std = std;
    return s;
}

/* A matrix [rows, cols] (torch order): N(0, 1/cols), in the config's type. */
static void matrix(tensor_list *l, int64_t rows, int64_t cols, float std, const char *fmt,
                   const char *m, int blk) {
    random_tensor_spec *s = add(l, 2, cols, rows, 0.0f, std, fmt, m, blk);
    s->type = random_tensor_matrix_type(l->type, cols);
}

static void fan_in_matrix(tensor_list *l, int64_t rows, int64_t cols, const char *fmt,
                          const char *m, int blk) {
    matrix(l, rows, cols, (float)(1.0 / sqrt((double)cols)), fmt, m, blk);
}

/* A [n] vector, F32: a bias (0.02·N) or a LayerNorm weight (1 + 0.1·N). */
static void bias(tensor_list *l, int64_t n, const char *fmt, const char *m, int blk) {
    add(l, 1, n, 1, 0.0f, 0.02f, fmt, m, blk);
}
static void norm(tensor_list *l, int64_t n, const char *fmt, const char *m, int blk) {
    add(l, 1, n, 1, 1.0f, 0.1f, fmt, m, blk);
}

/* convert-pandagpt.py encoder_jobs(): per tower the stem, the blocks, the head; then
 * llama_proj. */
static void list_tensors(const random_imagebind_config *c, tensor_list *l) {
    for (int m = 0; m < n_towers(c); m++) {
        const char *nm = k_towers[m].name;
        int64_t e = c->m[m].width, tokens = k_towers[m].tokens;
        if (m == RANDOM_IMAGEBIND_TEXT) {
            matrix(l, TEXT_VOCAB, e, 0.02f, "%s.token_embed.weight", nm, -1);
            add(l, 2, e, tokens, 0.0f, 0.02f, "%s.pos_embed", nm, -1);
        } else {
            bias(l, e, "%s.cls_token", nm, -1);
            fan_in_matrix(l, e, k_towers[m].patch, "%s.patch_embed.weight", nm, -1);
            if (k_towers[m].stem_norm) {
                norm(l, e, "%s.stem_norm.weight", nm, -1);
                bias(l, e, "%s.stem_norm.bias", nm, -1);
            }
            add(l, 2, e, tokens, 0.0f, 0.02f, "%s.pos_embed", nm, -1);
        }
        if (m == RANDOM_IMAGEBIND_VISION) {
            norm(l, e, "%s.pre_norm.weight", nm, -1);
            bias(l, e, "%s.pre_norm.bias", nm, -1);
        }
        for (int i = 0; i < c->m[m].blocks; i++) {
            norm(l, e, "%s.blk.%d.norm_1.weight", nm, i);
            bias(l, e, "%s.blk.%d.norm_1.bias", nm, i);
            fan_in_matrix(l, 3 * e, e, "%s.blk.%d.attn.in_proj.weight", nm, i);
            bias(l, 3 * e, "%s.blk.%d.attn.in_proj.bias", nm, i);
            if (k_towers[m].bias_kv) {
                bias(l, e, "%s.blk.%d.attn.bias_k", nm, i);
                bias(l, e, "%s.blk.%d.attn.bias_v", nm, i);
            }
            fan_in_matrix(l, e, e, "%s.blk.%d.attn.out_proj.weight", nm, i);
            bias(l, e, "%s.blk.%d.attn.out_proj.bias", nm, i);
            norm(l, e, "%s.blk.%d.norm_2.weight", nm, i);
            bias(l, e, "%s.blk.%d.norm_2.bias", nm, i);
            fan_in_matrix(l, 4 * e, e, "%s.blk.%d.mlp.fc1.weight", nm, i);
            bias(l, 4 * e, "%s.blk.%d.mlp.fc1.bias", nm, i);
            fan_in_matrix(l, e, 4 * e, "%s.blk.%d.mlp.fc2.weight", nm, i);
            bias(l, e, "%s.blk.%d.mlp.fc2.bias", nm, i);
        }
        norm(l, e, "%s.head_norm.weight", nm, -1);
        bias(l, e, "%s.head_norm.bias", nm, -1);
        fan_in_matrix(l, c->dim, e, "%s.head.weight", nm, -1);
    }
    if (c->llama_proj_out > 0) {
        fan_in_matrix(l, c->llama_proj_out, c->dim, "llama_proj.weight", "", -1);
        bias(l, c->llama_proj_out, "llama_proj.bias", "", -1);
    }
}

/* ---- The file ------------------------------------------------------------------------------- */

/* convert-pandagpt.py encoder_metadata(), in its order (GGUFWriter writes the architecture
 * first). */
static void set_metadata(const random_imagebind_config *c, const char *name, gguf_writer *w) {
    const char *names[RANDOM_IMAGEBIND_N_MODALITIES];
    char key[96];
    gguf_writer_set_str(w, "general.architecture", "imagebind");
    gguf_writer_set_str(w, "general.type", "model");
    gguf_writer_set_str(w, "general.name", name ? name : "libpandagpt random imagebind");
    gguf_writer_set_u32(w, "general.file_type", random_tensor_file_type(c->type));
    gguf_writer_set_u32(w, "imagebind.embedding_length", (uint32_t)c->dim);
    for (int m = 0; m < n_towers(c); m++) names[m] = k_towers[m].name;
    gguf_writer_set_arr_str(w, "imagebind.modalities", names, (uint64_t)n_towers(c));
    for (int m = 0; m < n_towers(c); m++) {
#define KEY(suffix) (snprintf(key, sizeof key, "imagebind.%s." suffix, k_towers[m].name), key)
        uint32_t e = (uint32_t)c->m[m].width;
        gguf_writer_set_u32(w, KEY("embedding_length"), e);
        gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)c->m[m].blocks);
        gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)c->m[m].heads);
        gguf_writer_set_u32(w, KEY("feed_forward_length"), 4 * e);
        gguf_writer_set_f32(w, KEY("attention.layer_norm_epsilon"), 1e-6f);
        gguf_writer_set_bool(w, KEY("attention.bias_kv"), k_towers[m].bias_kv);
        gguf_writer_set_u32(w, KEY("token_count"), (uint32_t)k_towers[m].tokens);
        if (k_towers[m].stem_norm) gguf_writer_set_f32(w, KEY("stem.layer_norm_epsilon"), 1e-5f);
        if (k_towers[m].logit_scale >= 0)
            gguf_writer_set_f32(w, KEY("log_logit_scale"), (float)k_towers[m].logit_scale);
#undef KEY
    }
    if (c->llama_proj_out > 0) {
        gguf_writer_set_u32(w, "imagebind.llama_proj.input_length", (uint32_t)c->dim);
        gguf_writer_set_u32(w, "imagebind.llama_proj.output_length", (uint32_t)c->llama_proj_out);
    }
    gguf_writer_set_u32(w, "general.quantization_version", 2);
}

static pg_status check_config(const random_imagebind_config *c) {
    if (!pg_dtype_supported(c->type))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "random_imagebind: unsupported type %u",
                            (unsigned)c->type);
    if (c->dim <= 0 || c->dim > MAX_DIM || c->llama_proj_out < 0 || c->llama_proj_out > MAX_DIM)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT,
                            "random_imagebind: joint dim %d or llama_proj_out %d out of range",
                            (int)c->dim, (int)c->llama_proj_out);
    for (int m = 0; m < n_towers(c); m++) {
        const random_imagebind_tower *t = &c->m[m];
        if (t->width <= 0 || t->width > MAX_DIM || t->blocks <= 0 || t->blocks > MAX_BLOCKS ||
            t->heads <= 0 || t->width % t->heads != 0)
            return pg_set_error(PG_ERR_INVALID_ARGUMENT,
                                "random_imagebind: %s tower: width %d, %d blocks, %d heads is "
                                "not a valid encoder", k_towers[m].name, (int)t->width,
                                (int)t->blocks, (int)t->heads);
    }
    return PG_OK;
}

pg_status random_imagebind_write(const random_imagebind_config *c, const char *path,
                                 const char *name) {
    if (!c || !path)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "random_imagebind: NULL config or path");
    pg_status st = check_config(c);
    if (st != PG_OK) return st;

    int32_t cap = 2;
    for (int m = 0; m < n_towers(c); m++) cap += 10 + 14 * c->m[m].blocks;
    tensor_list list = {calloc((size_t)cap, sizeof *list.t), 0, c->type};
    random_tensors *gens = NULL;
    gguf_writer *w = gguf_writer_new();
    if (!list.t || !w) {
        st = pg_set_error(PG_ERR_OUT_OF_MEMORY, "random_imagebind: out of memory (%d tensors)",
                          (int)cap);
        goto done;
    }
    set_metadata(c, name, w);
    list_tensors(c, &list);
    st = random_tensors_add(w, list.t, list.n, c->seed, "random_imagebind", &gens);
    if (st != PG_OK) goto done;
    st = gguf_writer_write(w, path);

done:
    gguf_writer_free(w);
    random_tensors_free(gens);
    free(list.t);
    return st;
}

/* ---- The work of one clip ------------------------------------------------------------------- */

double random_imagebind_clip_flops(const gguf_file *f, const char *tower) {
    int t = 0;
    while (t < RANDOM_IMAGEBIND_TEXT && strcmp(tower, k_towers[t].name) != 0) t++;
    if (t == RANDOM_IMAGEBIND_TEXT) return 0.0;
    char key[128];
    uint32_t E, layers, ff, L, dim;
#define KEY(suffix) (snprintf(key, sizeof key, "imagebind.%s." suffix, tower), key)
    if (gguf_get_u32(f, KEY("embedding_length"), &E) != PG_OK ||
        gguf_get_u32(f, KEY("block_count"), &layers) != PG_OK ||
        gguf_get_u32(f, KEY("feed_forward_length"), &ff) != PG_OK ||
        gguf_get_u32(f, KEY("token_count"), &L) != PG_OK ||
        gguf_get_u32(f, "imagebind.embedding_length", &dim) != PG_OK)
        return 0.0;
    const gguf_kv *kv = gguf_find_kv(f, KEY("attention.bias_kv"));
#undef KEY
    const double bias_kv = kv && kv->type == GGUF_TYPE_BOOL ? (kv->data[0] != 0) : 0.0;
    const double e = E, l = L, lk = l + bias_kv;
    const double block = 2.0 * l * (3.0 * e * e + e * e + 2.0 * e * ff) + 4.0 * l * lk * e;
    return 2.0 * (l - 1) * (double)k_towers[t].patch * e + layers * block + 2.0 * e * dim;
}
