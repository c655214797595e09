/*
 * imagebind.c — the six ImageBind encoders (spec §5) and llama_proj over the backend op table.
 *
 * Loading reads docs/format.md §3: every key and tensor of every tower listed in
 * imagebind.modalities is checked, shapes against the keys and the fixed geometry; matrices stay
 * views into the mapping and vectors (norms, biases, cls, pos, bias_k/v) are converted to F32
 * only when the file stores them otherwise.
 *
 * The forward pass follows upstream's modules in order: patch embedding (the Conv as the
 * backend's im2col + one matmul, no bias), stem LayerNorm (eps 1e-5; audio, thermal, depth,
 * imu), CLS + pos_embed, vision's pre-trunk LayerNorm (eps 1e-6), pre-LN blocks
 * (x += out_proj(MHA(LN1 x)), x += fc2(GELU(fc1(LN2 x)))), then the head: LayerNorm on the CLS
 * row only, Linear without bias, and PandaGPT's postprocessor (L2 normalisation, logit scale,
 * clip mean) — all of it backend ops, so on a GPU the media tensor goes up once and the one
 * vector stays there for llama_proj. All clips of a call run through the trunk as one batch of
 * clips × L rows (up to the state's max_clips), attention included (one call, a sequence per
 * clip); only the in_proj of towers with bias_kv, whose extra key/value row sits after each
 * clip's rows, runs per clip.
 */
#include "imagebind.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "backend/cpu/encoder_ops.h"
#include "gguf/dtype.h"
#include "models/weight.h"

/* Fixed geometry (docs/format.md §3: not stored in the file). */
#define IB_IMAGE_SIDE 224
#define IB_VISION_PATCH 14   /* Conv3d kernel = stride (2, 14, 14) */
#define IB_VISION_FRAMES 2
#define IB_VISION_GRID 16    /* 224 / 14 */
#define IB_AUDIO_MELS 128
#define IB_AUDIO_FRAMES 204
#define IB_AUDIO_KERNEL 16
#define IB_AUDIO_STRIDE 10
#define IB_AUDIO_GRID_H 12   /* (128 - 16) / 10 + 1 */
#define IB_AUDIO_GRID_W 19   /* (204 - 16) / 10 + 1 */
#define IB_RGBT_PATCH 16     /* thermal and depth: kernel = stride 16 */
#define IB_RGBT_GRID 14      /* 224 / 16 */
#define IB_IMU_CHANNELS 6
#define IB_IMU_SAMPLES 2000
#define IB_IMU_PATCH 8       /* 250 patches of 8 samples per channel */
#define IB_MAX_CLIPS 4096
#define IB_MAX_LOGIT_SCALE 100.0f

static const char *const tower_name[IB_N_TOWERS] = {
    [IB_VISION] = "vision", [IB_AUDIO] = "audio", [IB_THERMAL] = "thermal",
    [IB_DEPTH] = "depth",   [IB_IMU] = "imu",     [IB_TEXT] = "text",
};

/* Per tower: tokens incl. CLS, patch input length, stem LayerNorm, a log_logit_scale key. */
static const struct {
    int32_t n_tokens, n_patch_in;
    int stem, scale;
} geometry[IB_N_TOWERS] = {
    [IB_VISION] = {1 + IB_VISION_GRID * IB_VISION_GRID,
                   3 * IB_VISION_FRAMES * IB_VISION_PATCH * IB_VISION_PATCH, 0, 0},
    [IB_AUDIO] = {1 + IB_AUDIO_GRID_H * IB_AUDIO_GRID_W, IB_AUDIO_KERNEL * IB_AUDIO_KERNEL, 1, 1},
    [IB_THERMAL] = {1 + IB_RGBT_GRID * IB_RGBT_GRID, IB_RGBT_PATCH * IB_RGBT_PATCH, 1, 1},
    [IB_DEPTH] = {1 + IB_RGBT_GRID * IB_RGBT_GRID, IB_RGBT_PATCH * IB_RGBT_PATCH, 1, 1},
    [IB_IMU] = {1 + IB_IMU_SAMPLES / IB_IMU_PATCH, IB_IMU_CHANNELS * IB_IMU_PATCH, 1, 1},
    [IB_TEXT] = {IB_TEXT_CONTEXT, 0, 0, 1},
};

imagebind_tower_id imagebind_tower_of(pg_modality mod) {
    switch (mod) {
    case PG_MODALITY_IMAGE: case PG_MODALITY_VIDEO: return IB_VISION;
    case PG_MODALITY_AUDIO: return IB_AUDIO;
    case PG_MODALITY_THERMAL: return IB_THERMAL;
    case PG_MODALITY_DEPTH: return IB_DEPTH;
    case PG_MODALITY_IMU: return IB_IMU;
    }
    return IB_N_TOWERS;
}

// ---------------------------------------------------------------------------------------------
// Loading

static pg_status get_i32(const gguf_file *f, const char *key, int32_t *out) {
    uint32_t v;
    pg_status s = gguf_get_u32(f, key, &v);
    if (s != PG_OK) return s;
    if (v == 0 || v > (1u << 24))
        return pg_set_error(PG_ERR_FORMAT, "%s: key '%s' = %u is out of range", f->path, key, v);
    *out = (int32_t)v;
    return PG_OK;
}

/* A bool key (gguf-py writes BOOL; an integer 0/1 is accepted too). */
static pg_status get_bool(const gguf_file *f, const char *key, int32_t *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (kv && kv->type == GGUF_TYPE_BOOL) {
        *out = kv->data[0] != 0;
        return PG_OK;
    }
    uint32_t v;
    pg_status s = gguf_get_u32(f, key, &v);
    if (s != PG_OK) return s;
    if (v > 1)
        return pg_set_error(PG_ERR_FORMAT, "%s: key '%s' = %u is not a bool", f->path, key, v);
    *out = (int32_t)v;
    return PG_OK;
}

static pg_status get_eps(const gguf_file *f, const char *key, float *out) {
    pg_status s = gguf_get_f32(f, key, out);
    if (s != PG_OK) return s;
    if (!(*out > 0.0f) || !(*out < 1.0f))
        return pg_set_error(PG_ERR_FORMAT, "%s: key '%s' = %g is not a LayerNorm epsilon",
                            f->path, key, *out);
    return PG_OK;
}

static pg_status load_hparams(const gguf_file *f, imagebind_tower_id t, imagebind_hparams *hp) {
    const char *mn = tower_name[t];
    char key[128];
    pg_status s;
#define KEY(suffix) (snprintf(key, sizeof key, "imagebind.%s." suffix, mn), key)
    if ((s = get_i32(f, KEY("embedding_length"), &hp->n_embd)) ||
        (s = get_i32(f, KEY("block_count"), &hp->n_layer)) ||
        (s = get_i32(f, KEY("attention.head_count"), &hp->n_head)) ||
        (s = get_i32(f, KEY("feed_forward_length"), &hp->n_ff)) ||
        (s = get_i32(f, KEY("token_count"), &hp->n_tokens)) ||
        (s = get_eps(f, KEY("attention.layer_norm_epsilon"), &hp->eps)) ||
        (s = get_bool(f, KEY("attention.bias_kv"), &hp->bias_kv)))
        return s;
    if (hp->n_embd % hp->n_head != 0)
        return pg_set_error(PG_ERR_FORMAT, "%s: imagebind.%s.embedding_length %d is not a "
                            "multiple of attention.head_count %d", f->path, mn, hp->n_embd,
                            hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->n_tokens != geometry[t].n_tokens)
        return pg_set_error(PG_ERR_FORMAT, "%s: imagebind.%s.token_count is %d, but the %s "
                            "geometry gives %d", f->path, mn, hp->n_tokens, mn,
                            geometry[t].n_tokens);
    hp->n_patches = t == IB_TEXT ? 0 : hp->n_tokens - 1;
    hp->n_patch_in = geometry[t].n_patch_in;
    hp->stem_eps = 0.0f;
    if (geometry[t].stem && (s = get_eps(f, KEY("stem.layer_norm_epsilon"), &hp->stem_eps)))
        return s;
    hp->logit_scale = 1.0f;
    if (geometry[t].scale) {
        float v;
        if ((s = gguf_get_f32(f, KEY("log_logit_scale"), &v))) return s;
        if (!isfinite(v))
            return pg_set_error(PG_ERR_FORMAT, "%s: key '%s' = %g is not finite", f->path, key,
                                v);
        /* torch.clip(log_logit_scale.exp(), max=100) in float32 */
        const float e = expf(v);
        hp->logit_scale = e < IB_MAX_LOGIT_SCALE ? e : IB_MAX_LOGIT_SCALE;
    }
#undef KEY
    return PG_OK;
}

/* A float tensor of shape ne (n_dims 1 or 2): a view when the file stores aligned F32, else a
 * converted copy that m owns. */
static pg_status get_vec(imagebind_model *m, const char *name, int n_dims, int64_t ne0,
                         int64_t ne1, const float **out) {
    const gguf_file *f = m->file;
    const gguf_tensor *t;
    const int64_t ne[2] = {ne0, ne1};
    pg_status s = gguf_get_tensor(f, name, n_dims, ne, &t);
    if (s != PG_OK) return s;
    if (t->type == PG_DTYPE_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = (const float *)t->data;
        return PG_OK;
    }
    const int64_t n = ne0 * (n_dims == 2 ? ne1 : 1);
    if (m->n_conv == m->cap_conv) {
        int32_t cap = m->cap_conv ? 2 * m->cap_conv : 32;
        float **p = realloc(m->conv, sizeof *p * (size_t)cap);
        if (!p) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: cannot allocate", f->path);
        m->conv = p;
        m->cap_conv = cap;
    }
    float *dst = malloc(sizeof(float) * (size_t)n);
    if (!dst)
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: cannot allocate %lld floats for tensor "
                            "'%s'", f->path, (long long)n, name);
    pg_dequantize_row(t->type, t->data, dst, n);
    m->conv[m->n_conv++] = dst;
    *out = dst;
    return PG_OK;
}

static pg_status load_tower(imagebind_model *m, imagebind_tower_id t) {
    const gguf_file *f = m->file;
    const imagebind_hparams *hp = &m->hp[t];
    imagebind_tower *w = &m->w[t];
    const char *mn = tower_name[t];
    const int64_t E = hp->n_embd;
    char name[128];
    pg_status s;
#define NAME(fmt, ...) (snprintf(name, sizeof name, "%s." fmt, mn, __VA_ARGS__), name)
#define VEC(field, n, ...) if ((s = get_vec(m, NAME(__VA_ARGS__), 1, n, 1, &(field)))) return s;
#define MAT(field, nin, nout, ...)                                                          \
    if ((s = pg_weight_from_gguf(f, NAME(__VA_ARGS__), nin, nout, &(field)))) return s;

    if (t == IB_TEXT) {
        const gguf_tensor *emb = gguf_find_tensor(f, NAME("%s", "token_embed.weight"));
        if (!emb || emb->n_dims != 2)
            return pg_set_error(PG_ERR_FORMAT, "%s: tensor '%s' is missing or not 2-D", f->path,
                                name);
        if (emb->ne[1] < 1 || emb->ne[1] > (1 << 24))
            return pg_set_error(PG_ERR_FORMAT, "%s: tensor '%s' has %lld rows", f->path, name,
                                (long long)emb->ne[1]);
        m->hp[t].n_vocab = (int32_t)emb->ne[1];
        MAT(w->patch_embed, E, hp->n_vocab, "%s", "token_embed.weight")
    } else {
        VEC(w->cls_token, E, "%s", "cls_token")
        MAT(w->patch_embed, hp->n_patch_in, E, "%s", "patch_embed.weight")
    }
    if (geometry[t].stem) {
        VEC(w->stem_norm_w, E, "%s", "stem_norm.weight")
        VEC(w->stem_norm_b, E, "%s", "stem_norm.bias")
    }
    if ((s = get_vec(m, NAME("%s", "pos_embed"), 2, E, hp->n_tokens, &w->pos_embed))) return s;
    if (t == IB_VISION) {
        VEC(w->pre_norm_w, E, "%s", "pre_norm.weight")
        VEC(w->pre_norm_b, E, "%s", "pre_norm.bias")
    }
    w->layers = calloc((size_t)hp->n_layer, sizeof *w->layers);
    if (!w->layers)
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: cannot allocate %d %s layers", f->path,
                            hp->n_layer, mn);
    for (int32_t i = 0; i < hp->n_layer; i++) {
        imagebind_layer *l = &w->layers[i];
        VEC(l->norm_1_w, E, "blk.%d.norm_1.weight", i)
        VEC(l->norm_1_b, E, "blk.%d.norm_1.bias", i)
        MAT(l->in_proj, E, 3 * E, "blk.%d.attn.in_proj.weight", i)
        VEC(l->in_proj_b, 3 * E, "blk.%d.attn.in_proj.bias", i)
        if (hp->bias_kv) {
            VEC(l->bias_k, E, "blk.%d.attn.bias_k", i)
            VEC(l->bias_v, E, "blk.%d.attn.bias_v", i)
        }
        MAT(l->out_proj, E, E, "blk.%d.attn.out_proj.weight", i)
        VEC(l->out_proj_b, E, "blk.%d.attn.out_proj.bias", i)
        VEC(l->norm_2_w, E, "blk.%d.norm_2.weight", i)
        VEC(l->norm_2_b, E, "blk.%d.norm_2.bias", i)
        MAT(l->fc1, E, hp->n_ff, "blk.%d.mlp.fc1.weight", i)
        VEC(l->fc1_b, hp->n_ff, "blk.%d.mlp.fc1.bias", i)
        MAT(l->fc2, hp->n_ff, E, "blk.%d.mlp.fc2.weight", i)
        VEC(l->fc2_b, E, "blk.%d.mlp.fc2.bias", i)
    }
    VEC(w->head_norm_w, E, "%s", "head_norm.weight")
    VEC(w->head_norm_b, E, "%s", "head_norm.bias")
    MAT(w->head, E, m->dim, "%s", "head.weight")
#undef NAME
#undef VEC
#undef MAT
    return PG_OK;
}

static pg_status load_model(imagebind_model *m) {
    const gguf_file *f = m->file;
    gguf_str arch;
    pg_status s = gguf_get_str(f, "general.architecture", &arch);
    if (s != PG_OK) return s;
    if (!gguf_str_eq(arch, "imagebind"))
        return pg_set_error(PG_ERR_FORMAT, "%s: general.architecture is '%.*s', expected "
                            "'imagebind'", f->path, (int)(arch.len > 64 ? 64 : arch.len),
                            arch.ptr);
    if ((s = get_i32(f, "imagebind.embedding_length", &m->dim))) return s;

    const gguf_kv *mods;
    if ((s = gguf_get_arr(f, "imagebind.modalities", GGUF_TYPE_STRING, &mods))) return s;
    for (uint64_t i = 0; i < mods->n; i++) {
        gguf_str nm = mods->strs[i];
        int t = 0;
        while (t < IB_N_TOWERS && !gguf_str_eq(nm, tower_name[t])) t++;
        if (t == IB_N_TOWERS)
            return pg_set_error(PG_ERR_FORMAT, "%s: imagebind.modalities[%llu] '%.*s' is not "
                                "one of vision, audio, thermal, depth, imu, text", f->path,
                                (unsigned long long)i, (int)(nm.len > 64 ? 64 : nm.len), nm.ptr);
        if (m->has[t])
            return pg_set_error(PG_ERR_FORMAT, "%s: imagebind.modalities lists '%s' twice",
                                f->path, tower_name[t]);
        m->has[t] = 1;
    }
    for (int t = 0; t < IB_N_TOWERS; t++) {
        if (!m->has[t]) continue;
        if ((s = load_hparams(f, (imagebind_tower_id)t, &m->hp[t]))) return s;
        if ((s = load_tower(m, (imagebind_tower_id)t))) return s;
    }

    if (gguf_find_kv(f, "imagebind.llama_proj.input_length") ||
        gguf_find_kv(f, "imagebind.llama_proj.output_length")) {
        int32_t n_in = 0;
        if ((s = get_i32(f, "imagebind.llama_proj.input_length", &n_in)) ||
            (s = get_i32(f, "imagebind.llama_proj.output_length", &m->proj_n_out)))
            return s;
        if (n_in != m->dim)
            return pg_set_error(PG_ERR_FORMAT, "%s: imagebind.llama_proj.input_length %d differs "
                                "from imagebind.embedding_length %d", f->path, n_in, m->dim);
        if ((s = pg_weight_from_gguf(f, "llama_proj.weight", m->dim, m->proj_n_out, &m->llama_proj)) ||
            (s = get_vec(m, "llama_proj.bias", 1, m->proj_n_out, 1, &m->llama_proj_b)))
            return s;
        m->has_llama_proj = 1;
        m->proj_w = m->llama_proj;
        m->proj_b = m->llama_proj_b;
    } else if (gguf_find_tensor(f, "llama_proj.weight")) {
        return pg_set_error(PG_ERR_FORMAT, "%s: tensor 'llama_proj.weight' without the "
                            "imagebind.llama_proj.* keys", f->path);
    }
    return PG_OK;
}

pg_status imagebind_model_load(gguf_file *f, imagebind_model **out) {
    if (!out) {
        gguf_close(f);
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "imagebind_model_load: out is NULL");
    }
    *out = NULL;
    if (!f) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "imagebind_model_load: no file");
    imagebind_model *m = calloc(1, sizeof *m);
    if (!m) {
        gguf_close(f);
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "cannot allocate the encoder model");
    }
    m->file = f;
    pg_status s = load_model(m);
    if (s != PG_OK) {
        imagebind_model_free(m);
        return s;
    }
    *out = m;
    return PG_OK;
}

void imagebind_model_free(imagebind_model *m) {
    if (!m) return;
    if (m->device_arena) m->free_arena(m->device_arena);
    for (int t = 0; t < IB_N_TOWERS; t++) free(m->w[t].layers);
    for (int32_t i = 0; i < m->n_conv; i++) free(m->conv[i]);
    free(m->conv);
    gguf_close(m->file);
    free(m);
}

// ---------------------------------------------------------------------------------------------
// Patch embedding: each tower's Conv (kernel = stride) as the backend's im2col + one matmul, in
// the order the converter flattened the Conv weights (docs/format.md §3)

/* The Conv of a modality over one clip of its pg_media tensor:
 *   vision  Conv3d (2, 14, 14) over [3][T][224][224]: an image (T 1) is PadIm2Video-repeated,
 *           both temporal taps reading its one frame, as upstream's Conv3d sees it
 *   audio   Conv2d 16 / stride 10 over [1][128][204] (12 × 19 tokens)
 *   thermal, depth  Conv2d 16 / 16 over [1][224][224] (14 × 14)
 *   imu     [6][2000] unfolded into 250 patches of 8 samples, feature c·8 + k */
static pg_conv_geom conv_geom(pg_modality mod) {
    switch (mod) {
    case PG_MODALITY_IMAGE: case PG_MODALITY_VIDEO:
        return (pg_conv_geom){3, mod == PG_MODALITY_VIDEO ? IB_VISION_FRAMES : 1, IB_IMAGE_SIDE,
                              IB_IMAGE_SIDE, IB_VISION_FRAMES, IB_VISION_PATCH, IB_VISION_PATCH,
                              IB_VISION_PATCH, IB_VISION_PATCH};
    case PG_MODALITY_AUDIO:
        return (pg_conv_geom){1, 1, IB_AUDIO_MELS, IB_AUDIO_FRAMES, 1, IB_AUDIO_KERNEL,
                              IB_AUDIO_KERNEL, IB_AUDIO_STRIDE, IB_AUDIO_STRIDE};
    case PG_MODALITY_THERMAL: case PG_MODALITY_DEPTH:
        return (pg_conv_geom){1, 1, IB_IMAGE_SIDE, IB_IMAGE_SIDE, 1, IB_RGBT_PATCH,
                              IB_RGBT_PATCH, IB_RGBT_PATCH, IB_RGBT_PATCH};
    case PG_MODALITY_IMU:
        return (pg_conv_geom){IB_IMU_CHANNELS, 1, 1, IB_IMU_SAMPLES, 1, 1, IB_IMU_PATCH, 1,
                              IB_IMU_PATCH};
    }
    return (pg_conv_geom){0};
}

/* Floats of one clip of mod's input tensor. */
static size_t clip_floats(pg_modality mod) {
    const pg_conv_geom g = conv_geom(mod);
    return (size_t)g.channels * (size_t)g.frames * (size_t)g.height * (size_t)g.width;
}

/* The largest clip a tower reads (vision: a video clip); 0 for text. */
static size_t tower_clip_floats(imagebind_tower_id t) {
    switch (t) {
    case IB_VISION: return clip_floats(PG_MODALITY_VIDEO);
    case IB_AUDIO: return clip_floats(PG_MODALITY_AUDIO);
    case IB_THERMAL: return clip_floats(PG_MODALITY_THERMAL);
    case IB_DEPTH: return clip_floats(PG_MODALITY_DEPTH);
    case IB_IMU: return clip_floats(PG_MODALITY_IMU);
    default: return 0;
    }
}

// ---------------------------------------------------------------------------------------------
// State

static int32_t clips_or_default(int32_t max_clips) {
    return max_clips > 0 ? max_clips : IB_MAX_CLIPS_DEFAULT;
}

void imagebind_scratch_needs(const imagebind_model *m, int32_t max_clips, int *max_rows,
                             int64_t *max_n_in, int *max_ctx) {
    const int64_t nc = clips_or_default(max_clips);
    int64_t rows = 0, n_in = 0, ctx = 0;
    for (int t = 0; t < IB_N_TOWERS; t++) {
        if (!m->has[t]) continue;
        const imagebind_hparams *hp = &m->hp[t];
        const int64_t r = (t == IB_TEXT ? 1 : nc) * hp->n_tokens;
        if (r > rows) rows = r;
        const int64_t k[3] = {hp->n_patch_in, hp->n_embd, hp->n_ff};
        for (int i = 0; i < 3; i++)
            if (k[i] > n_in) n_in = k[i];
        if (hp->n_tokens + 1 > ctx) ctx = hp->n_tokens + 1;
    }
    *max_rows = (int)rows;
    *max_n_in = n_in;
    *max_ctx = (int)ctx;
}

pg_status imagebind_state_new(const imagebind_model *m, pg_backend *b, int32_t max_clips,
                              imagebind_state **out) {
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "imagebind_state_new: out is NULL");
    *out = NULL;
    if (!m || !b) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "imagebind_state_new: NULL");
    if (max_clips < 0 || max_clips > IB_MAX_CLIPS)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "imagebind_state_new: max_clips %d out of "
                            "range [0, %d]", max_clips, IB_MAX_CLIPS);
    const size_t nc = (size_t)clips_or_default(max_clips);
    size_t n_raw = 0, n_patches = 0, n_x = 0, n_qkv = 0, n_hb = 0, n_cls = 0;
    size_t n_host = nc * (size_t)m->dim;
    for (int t = 0; t < IB_N_TOWERS; t++) {
        if (!m->has[t]) continue;
        const imagebind_hparams *hp = &m->hp[t];
        const size_t c = t == IB_TEXT ? 1 : nc, L = (size_t)hp->n_tokens, E = (size_t)hp->n_embd;
        const size_t np = c * (size_t)hp->n_patches * (size_t)hp->n_patch_in;
        if (np > n_patches) n_patches = np;
        const size_t nr = c * tower_clip_floats((imagebind_tower_id)t);
        if (nr > n_raw) n_raw = nr;
        if (c * L * E > n_x) n_x = c * L * E;
        if (c * (L + 1) * 3 * E > n_qkv) n_qkv = c * (L + 1) * 3 * E;
        if (c * L * (size_t)hp->n_ff > n_hb) n_hb = c * L * (size_t)hp->n_ff;
        if (nc * E > n_cls) n_cls = nc * E;
        if (L * E > n_host) n_host = L * E;
    }
    imagebind_state *st = calloc(1, sizeof *st);
    if (!st) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "cannot allocate the encoder state");
    st->max_clips = (int32_t)nc;
    st->host_n = n_host;
    pg_status s = PG_OK;
    st->host = malloc(sizeof(float) * n_host);
    if (!st->host)
        s = pg_set_error(PG_ERR_OUT_OF_MEMORY, "encoder state: cannot allocate %zu floats of "
                         "host staging", n_host);
    struct { float **p; size_t n; const char *what; } bufs[] = {
        {&st->raw, n_raw, "raw"}, {&st->patches, n_patches, "patches"},
        {&st->x, n_x, "x"}, {&st->xb, n_x, "xb"}, {&st->qkv, n_qkv, "qkv"},
        {&st->att, n_x, "att"}, {&st->hb, n_hb, "hb"}, {&st->cls, n_cls, "cls"},
        {&st->head, nc * (size_t)m->dim, "head"}, {&st->vec, (size_t)m->dim, "vec"},
        {&st->post, (size_t)m->dim, "post"},
    };
    for (size_t i = 0; s == PG_OK && i < sizeof bufs / sizeof bufs[0]; i++) {
        if (bufs[i].n == 0) continue;
        s = b->ops->alloc(b, bufs[i].n * sizeof(float), (void **)bufs[i].p);
        if (s != PG_OK)
            pg_error_prefix(s, "encoder state %s buffer (%d clips)", bufs[i].what, (int)nc);
    }
    if (s != PG_OK) {
        imagebind_state_free(st, b);
        return s;
    }
    *out = st;
    return PG_OK;
}

void imagebind_state_free(imagebind_state *st, pg_backend *b) {
    if (!st) return;
    for (int i = 0; i < IB_PASS_GRAPHS; i++)
        if (st->graphs[i].graph) b->ops->graph_free(b, st->graphs[i].graph);
    float *bufs[] = {st->raw, st->patches, st->x, st->xb, st->qkv, st->att, st->hb,
                     st->cls, st->head, st->vec, st->post};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) b->ops->free(b, bufs[i]);
    free(st->host);
    free(st);
}

// ---------------------------------------------------------------------------------------------
// Forward

/* Hands clip 0's rows [L][E] of the residual stream to the tap. */
static pg_status tap_rows(const imagebind_hparams *hp, imagebind_state *st, pg_backend *b,
                          const char *name, imagebind_tap_fn tap, void *ud) {
    if (!tap) return PG_OK;
    const size_t n = (size_t)hp->n_tokens * (size_t)hp->n_embd;
    pg_status s = b->ops->sync(b);
    if (s != PG_OK) return s;
    b->ops->download(b, st->host, st->x, sizeof(float) * n);
    if ((s = b->ops->sync(b)) != PG_OK) return s; /* a failed download reports here */
    if (tap(name, 0, st->host, hp->n_tokens, hp->n_embd, ud))
        return pg_set_error(PG_ERR_CANCELLED, "encoder: the tap stopped the call at '%s'", name);
    return PG_OK;
}

/* nc clips of mod's input tensor (uploaded to st->raw) → patch tokens → stem LN → [CLS,
 * tokens] + pos_embed in st->x. Only the preprocessed tensor crosses to the backend; im2col runs
 * there. */
static void embed_patches(const imagebind_model *m, imagebind_tower_id t, imagebind_state *st,
                          pg_backend *b, pg_modality mod, int nc) {
    const imagebind_hparams *hp = &m->hp[t];
    const imagebind_tower *w = &m->w[t];
    const pg_backend_ops *op = b->ops;
    const size_t L = (size_t)hp->n_tokens, E = (size_t)hp->n_embd, P = (size_t)hp->n_patches;
    const int rows = nc * hp->n_patches;
    const pg_conv_geom g = conv_geom(mod);
    op->im2col(b, st->patches, st->raw, nc, &g);
    op->matmul(b, &w->patch_embed, st->patches, st->xb, rows);
    if (w->stem_norm_w)
        op->layernorm(b, st->xb, st->xb, w->stem_norm_w, w->stem_norm_b, rows, hp->n_embd,
                      hp->stem_eps);
    for (int c = 0; c < nc; c++) {
        float *xc = st->x + (size_t)c * L * E;
        op->copy(b, xc, w->cls_token, E);
        op->copy(b, xc + E, st->xb + (size_t)c * P * E, P * E);
        op->add(b, xc, w->pos_embed, L * E);
    }
}

/* The trunk over nc clips (nc × L rows of st->x): vision's pre-LN, the blocks, with clip 0's
 * rows handed to the tap after each stage. */
static pg_status trunk(const imagebind_model *m, imagebind_tower_id t, imagebind_state *st,
                       pg_backend *b, int nc, imagebind_tap_fn tap, void *ud) {
    const imagebind_hparams *hp = &m->hp[t];
    const imagebind_tower *w = &m->w[t];
    const pg_backend_ops *op = b->ops;
    const int L = hp->n_tokens, E = hp->n_embd, R = nc * L;
    const int L_kv = L + (hp->bias_kv ? 1 : 0); /* rows of one clip in st->qkv */
    const size_t E3 = 3 * (size_t)E;
    const int causal = t == IB_TEXT;
    pg_status s;

    if ((s = tap_rows(hp, st, b, "tokens", tap, ud))) return s;
    if (w->pre_norm_w)
        op->layernorm(b, st->x, st->x, w->pre_norm_w, w->pre_norm_b, R, E, hp->eps);
    if ((s = tap_rows(hp, st, b, "pre_transformer", tap, ud))) return s;

    for (int32_t i = 0; i < hp->n_layer; i++) {
        const imagebind_layer *l = &w->layers[i];

        /* attention: x += out_proj(MHA(LN1(x))), Q|K|V from one in_proj; bias_k/bias_v
         * appended after the projection as one more key/value row of each clip */
        op->layernorm(b, st->xb, st->x, l->norm_1_w, l->norm_1_b, R, E, hp->eps);
        if (!hp->bias_kv) {
            op->matmul(b, &l->in_proj, st->xb, st->qkv, R);
        } else {
            for (int c = 0; c < nc; c++)
                op->matmul(b, &l->in_proj, st->xb + (size_t)c * L * E,
                           st->qkv + (size_t)c * L_kv * E3, L);
        }
        op->add_bias(b, st->qkv, l->in_proj_b, nc * L_kv, 3 * E);
        if (hp->bias_kv)
            for (int c = 0; c < nc; c++) { /* overwrites the bias-added zeros of the extra row */
                float *extra = st->qkv + ((size_t)c * L_kv + (size_t)L) * E3;
                op->copy(b, extra + E, l->bias_k, (size_t)E);
                op->copy(b, extra + 2 * (size_t)E, l->bias_v, (size_t)E);
            }
        /* every clip in one call: each attends over its own L_kv rows */
        op->attention_full(b, st->att, st->qkv, st->qkv + E, st->qkv + 2 * (size_t)E, L, L_kv,
                           E3, E3, nc, (size_t)L_kv * E3, hp->n_head, hp->head_dim, causal);
        op->matmul(b, &l->out_proj, st->att, st->xb, R);
        op->add_bias(b, st->xb, l->out_proj_b, R, E);
        op->add(b, st->x, st->xb, (size_t)R * E);

        /* MLP: x += fc2(GELU(fc1(LN2(x)))) */
        op->layernorm(b, st->xb, st->x, l->norm_2_w, l->norm_2_b, R, E, hp->eps);
        op->matmul(b, &l->fc1, st->xb, st->hb, R);
        op->add_bias(b, st->hb, l->fc1_b, R, hp->n_ff);
        op->gelu(b, st->hb, (size_t)R * hp->n_ff);
        op->matmul(b, &l->fc2, st->hb, st->xb, R);
        op->add_bias(b, st->xb, l->fc2_b, R, E);
        op->add(b, st->x, st->xb, (size_t)R * E);

        if (tap) {
            char name[32];
            snprintf(name, sizeof name, "block.%d", (int)i);
            if ((s = tap_rows(hp, st, b, name, tap, ud))) return s;
        }
    }
    return tap_rows(hp, st, b, "trunk_out", tap, ud);
}

/* The head on row `row` of each of nc clips: LayerNorm, Linear → st->head [nc][dim]. */
static void head(const imagebind_model *m, imagebind_tower_id t, imagebind_state *st,
                 pg_backend *b, int nc, int row) {
    const imagebind_hparams *hp = &m->hp[t];
    const imagebind_tower *w = &m->w[t];
    const pg_backend_ops *op = b->ops;
    const size_t L = (size_t)hp->n_tokens, E = (size_t)hp->n_embd;
    for (int c = 0; c < nc; c++)
        op->copy(b, st->cls + (size_t)c * E, st->x + ((size_t)c * L + (size_t)row) * E, E);
    op->layernorm(b, st->cls, st->cls, w->head_norm_w, w->head_norm_b, nc, hp->n_embd, hp->eps);
    op->matmul(b, &w->head, st->cls, st->head, nc);
}

/* Hands each of nc clips' head output and normalised vector to the tap (host copies). */
static pg_status tap_heads(const imagebind_model *m, imagebind_state *st, pg_backend *b, int c0,
                           int nc, float scale, imagebind_tap_fn tap, void *ud) {
    const size_t dim = (size_t)m->dim;
    for (int c = 0; c < nc; c++) {
        b->ops->l2norm_sum(b, st->post, st->head + (size_t)c * dim, 1, m->dim, scale, 1.0f, 0);
        pg_status s = b->ops->sync(b);
        if (s != PG_OK) return s;
        b->ops->download(b, st->host, st->head + (size_t)c * dim, sizeof(float) * dim);
        b->ops->download(b, st->host + dim, st->post, sizeof(float) * dim);
        if ((s = b->ops->sync(b)) != PG_OK) return s; /* a failed download reports here */
        if (tap("head_out", c0 + c, st->host, 1, m->dim, ud) ||
            tap("post", c0 + c, st->host + dim, 1, m->dim, ud))
            return pg_set_error(PG_ERR_CANCELLED, "encoder: the tap stopped the call after "
                                "the head");
    }
    return PG_OK;
}

/* The factor PandaGPT applies after L2 normalisation (spec §5.9): none for vision, none for
 * audio (PandaGPT drops upstream's ×20), the upstream logit scale for the others. */
static float pandagpt_scale(const imagebind_model *m, pg_modality mod) {
    switch (mod) {
    case PG_MODALITY_IMAGE: case PG_MODALITY_VIDEO: case PG_MODALITY_AUDIO: return 1.0f;
    case PG_MODALITY_THERMAL: return m->hp[IB_THERMAL].logit_scale;
    case PG_MODALITY_DEPTH: return m->hp[IB_DEPTH].logit_scale;
    case PG_MODALITY_IMU: return m->hp[IB_IMU].logit_scale;
    }
    return 1.0f;
}

/* Shared argument checks and the optional per-call state. */
static pg_status begin_call(const imagebind_model *m, imagebind_state **st, pg_backend *b,
                            imagebind_tower_id t, const void *input, int32_t n_clips,
                            const char *fn, int *owned) {
    *owned = 0;
    if (!m || !b || !input)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (!m->has[t])
        return pg_set_error(PG_ERR_UNSUPPORTED, "%s: the encoder file '%s' has no %s tower", fn,
                            m->file->path, tower_name[t]);
    if (*st) return PG_OK;
    pg_status s = imagebind_state_new(m, b, n_clips < IB_MAX_CLIPS_DEFAULT ? n_clips
                                                                           : IB_MAX_CLIPS_DEFAULT,
                                      st);
    if (s != PG_OK) return s;
    *owned = 1;
    return PG_OK;
}

static pg_status check_clips(pg_modality mod, int32_t n_clips, const char *fn) {
    if (imagebind_tower_of(mod) == IB_N_TOWERS)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: modality %d is not a pg_modality", fn,
                            (int)mod);
    const int multi = mod == PG_MODALITY_VIDEO || mod == PG_MODALITY_AUDIO;
    if (n_clips < 1 || n_clips > (multi ? IB_MAX_CLIPS : 1))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: %d clips (this modality takes %s)", fn,
                            (int)n_clips, multi ? "1 to 4096" : "exactly 1");
    return PG_OK;
}

/* One trunk pass over nc clips already in st->raw, from the patches to their normalised
 * vectors added (weighted) into st->vec: nothing in it waits or depends on the host, so a
 * backend with graphs can record it. */
typedef struct pass_args {
    const imagebind_model *m;
    imagebind_state *st;
    pg_backend *b;
    pg_modality mod;
    int nc, accumulate;
    float scale, weight;
} pass_args;

static void pass_body(void *ctx) {
    const pass_args *a = ctx;
    const imagebind_tower_id t = imagebind_tower_of(a->mod);
    embed_patches(a->m, t, a->st, a->b, a->mod, a->nc);
    (void)trunk(a->m, t, a->st, a->b, a->nc, NULL, NULL); /* without a tap it cannot fail */
    head(a->m, t, a->st, a->b, a->nc, 0);
    a->b->ops->l2norm_sum(a->b, a->st->vec, a->st->head, a->nc, a->m->dim, a->scale, a->weight,
                          a->accumulate);
}

/* The state's record of a pass shape, NULL when every slot holds another shape. */
static imagebind_pass_graph *pass_slot(imagebind_state *st, const pass_args *a) {
    for (int i = 0; i < IB_PASS_GRAPHS; i++) {
        imagebind_pass_graph *g = &st->graphs[i];
        if (g->runs && g->mod == (int32_t)a->mod && g->nc == a->nc && g->weight == a->weight &&
            g->accumulate == a->accumulate)
            return g;
    }
    for (int i = 0; i < IB_PASS_GRAPHS; i++)
        if (!st->graphs[i].runs) {
            imagebind_pass_graph *g = &st->graphs[i];
            *g = (imagebind_pass_graph){.mod = a->mod, .nc = a->nc, .accumulate = a->accumulate,
                                        .weight = a->weight};
            return g;
        }
    return NULL;
}

/* Queues a pass: as it comes the first time a shape is seen, recorded into a graph the second
 * time (where the backend has graphs) and replayed from then on — some 500 launches of a
 * 32-block trunk become one. A shape that cannot be recorded runs as it comes. */
static void run_pass(pass_args *a) {
    pg_backend *b = a->b;
    imagebind_pass_graph *g = b->ops->graph_capture ? pass_slot(a->st, a) : NULL;
    if (!g) {
        pass_body(a);
        return;
    }
    if (g->graph && b->ops->graph_launch(b, g->graph) == PG_OK) return;
    if (g->graph) { /* stale: the backend replaced a buffer it names */
        b->ops->graph_free(b, g->graph);
        g->graph = NULL;
    }
    if (g->runs++ >= 1 && !g->failed) {
        if (b->ops->graph_capture(b, pass_body, a, &g->graph) == PG_OK &&
            b->ops->graph_launch(b, g->graph) == PG_OK)
            return;
        b->ops->graph_free(b, g->graph);
        g->graph = NULL;
        g->failed = 1;
    }
    pass_body(a);
}

/* The clips in passes of st->max_clips: each pass's tensor uploaded, then patches, trunk,
 * head, and its normalised vectors added, weighted 1/n_clips, into st->vec. With a tap the
 * passes run as they come, stopping where the tap looks. */
static pg_status encode(const imagebind_model *m, imagebind_state *st, pg_backend *b,
                        pg_modality mod, const float *input, int32_t n_clips,
                        imagebind_tap_fn tap, void *ud) {
    const imagebind_tower_id t = imagebind_tower_of(mod);
    const float scale = pandagpt_scale(m, mod), weight = 1.0f / (float)n_clips;
    const size_t in_clip = clip_floats(mod);
    pg_status s = PG_OK;
    for (int32_t c0 = 0; s == PG_OK && c0 < n_clips; c0 += st->max_clips) {
        const int nc = n_clips - c0 < st->max_clips ? n_clips - c0 : st->max_clips;
        b->ops->upload(b, st->raw, input + (size_t)c0 * in_clip,
                       sizeof(float) * (size_t)nc * in_clip);
        pass_args a = {m, st, b, mod, nc, c0 > 0, scale, weight};
        if (!tap) {
            run_pass(&a);
            continue;
        }
        embed_patches(m, t, st, b, mod, nc);
        s = trunk(m, t, st, b, nc, c0 == 0 ? tap : NULL, ud);
        if (s != PG_OK) break;
        head(m, t, st, b, nc, 0);
        if ((s = tap_heads(m, st, b, c0, nc, scale, tap, ud))) break;
        b->ops->l2norm_sum(b, st->vec, st->head, nc, m->dim, scale, weight, c0 > 0);
    }
    return s;
}

pg_status imagebind_encode(const imagebind_model *m, imagebind_state *st, pg_backend *b,
                           pg_modality mod, const float *input, int32_t n_clips, float *out,
                           imagebind_tap_fn tap, void *tap_user_data) {
    pg_status s = check_clips(mod, n_clips, "imagebind_encode");
    if (s != PG_OK) return s;
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "imagebind_encode: out is NULL");
    int owned;
    if ((s = begin_call(m, &st, b, imagebind_tower_of(mod), input, n_clips, "imagebind_encode",
                        &owned)))
        return s;
    s = encode(m, st, b, mod, input, n_clips, tap, tap_user_data);
    if (s == PG_OK) s = b->ops->sync(b);
    if (s == PG_OK) {
        b->ops->download(b, out, st->vec, sizeof(float) * (size_t)m->dim);
        s = b->ops->sync(b); /* a failed download reports here */
    }
    if (owned) imagebind_state_free(st, b);
    return s;
}

pg_status imagebind_encode_to(const imagebind_model *m, imagebind_state *st, pg_backend *b,
                              pg_modality mod, const float *input, int32_t n_clips) {
    pg_status s = check_clips(mod, n_clips, "imagebind_encode_to");
    if (s != PG_OK) return s;
    if (!st) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "imagebind_encode_to: no state");
    int owned;
    if ((s = begin_call(m, &st, b, imagebind_tower_of(mod), input, n_clips,
                        "imagebind_encode_to", &owned)))
        return s;
    return encode(m, st, b, mod, input, n_clips, NULL, NULL);
}

pg_status imagebind_encode_text(const imagebind_model *m, imagebind_state *st, pg_backend *b,
                                const int32_t *ids, float *out, imagebind_tap_fn tap,
                                void *tap_user_data) {
    if (m && m->has[IB_TEXT] && ids)
        for (int i = 0; i < IB_TEXT_CONTEXT; i++)
            if (ids[i] < 0 || ids[i] >= m->hp[IB_TEXT].n_vocab)
                return pg_set_error(PG_ERR_INVALID_ARGUMENT, "imagebind_encode_text: token %d "
                                    "at index %d is out of range [0, %d)", ids[i], i,
                                    m->hp[IB_TEXT].n_vocab);
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "imagebind_encode_text: out is NULL");
    int owned;
    pg_status s = begin_call(m, &st, b, IB_TEXT, ids, 1, "imagebind_encode_text", &owned);
    if (s != PG_OK) return s;

    const imagebind_hparams *hp = &m->hp[IB_TEXT];
    const imagebind_tower *w = &m->w[IB_TEXT];
    int eot = 0; /* torch.argmax: the first maximal id */
    for (int i = 1; i < IB_TEXT_CONTEXT; i++)
        if (ids[i] > ids[eot]) eot = i;
    b->ops->get_rows(b, &w->patch_embed, ids, IB_TEXT_CONTEXT, st->x);
    b->ops->add(b, st->x, w->pos_embed, (size_t)hp->n_tokens * (size_t)hp->n_embd);
    s = trunk(m, IB_TEXT, st, b, 1, tap, tap_user_data);
    if (s == PG_OK) {
        head(m, IB_TEXT, st, b, 1, eot);
        if (tap) s = tap_heads(m, st, b, 0, 1, hp->logit_scale, tap, tap_user_data);
    }
    if (s == PG_OK) {
        b->ops->l2norm_sum(b, st->vec, st->head, 1, m->dim, hp->logit_scale, 1.0f, 0);
        b->ops->download(b, out, st->vec, sizeof(float) * (size_t)m->dim);
        s = b->ops->sync(b);
    }
    if (owned) imagebind_state_free(st, b);
    return s;
}

// ---------------------------------------------------------------------------------------------
// llama_proj

static pg_status need_proj(const imagebind_model *m, const char *fn) {
    if (!m->has_llama_proj)
        return pg_set_error(PG_ERR_UNSUPPORTED, "%s: the encoder file '%s' has no llama_proj "
                            "(convert with --delta)", fn, m->file->path);
    return PG_OK;
}

pg_status imagebind_project(const imagebind_model *m, const float *u, float *v) {
    if (!m || !u || !v) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "imagebind_project: NULL");
    pg_status s = need_proj(m, "imagebind_project");
    if (s != PG_OK) return s;
    /* the CPU backend's project op is this computation on host memory */
    pg_cpu_project_rows(&m->llama_proj, m->llama_proj_b, u, v, 0, 0, m->llama_proj.n_out);
    return PG_OK;
}

pg_status imagebind_project_to(const imagebind_model *m, pg_backend *b, const float *u, float *y,
                               int accumulate) {
    if (!m || !b || !u || !y)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "imagebind_project_to: NULL");
    pg_status s = need_proj(m, "imagebind_project_to");
    if (s != PG_OK) return s;
    b->ops->project(b, &m->proj_w, m->proj_b, u, y, accumulate);
    return PG_OK;
}
