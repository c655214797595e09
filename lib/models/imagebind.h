/*
 * imagebind.h — the ImageBind encoders (spec §5) and PandaGPT's llama_proj from an `imagebind`
 * GGUF (docs/format.md §3).
 *
 * Per tower (vision, audio, thermal, depth, imu, text): a blueprint (imagebind_hparams), the
 * weights (imagebind_tower, views into the mapped file), and the activations of one encoder
 * call (imagebind_state, backend memory, sized once and reused). The forward pass is written
 * once against the backend op table: patch embedding (im2col on the host, one matmul), stem
 * LayerNorm, CLS + pos_embed, pre-LN (vision), pre-LN transformer blocks with bias_kv (audio,
 * thermal, depth, imu) or a causal mask (text), head LayerNorm + Linear on the CLS (text: EOT)
 * row, and the postprocessor PandaGPT applies (spec §5.9).
 *
 * Threads: an imagebind_model is immutable after load and may be shared; an imagebind_state is
 * used by one thread at a time.
 */
#ifndef PG_IMAGEBIND_H
#define PG_IMAGEBIND_H

#include <stdint.h>

#include "backend/backend.h"
#include "gguf/gguf.h"

/* The towers, in the order of docs/format.md's imagebind.modalities. */
typedef enum imagebind_tower_id {
    IB_VISION = 0,
    IB_AUDIO = 1,
    IB_THERMAL = 2,
    IB_DEPTH = 3,
    IB_IMU = 4,
    IB_TEXT = 5,
    IB_N_TOWERS = 6
} imagebind_tower_id;

#define IB_TEXT_CONTEXT 77    /* text tokens per sequence */
#define IB_MAX_CLIPS_DEFAULT 15 /* clips per trunk pass of a default state: a whole video */

typedef struct imagebind_hparams {
    int32_t n_embd;      /* width E */
    int32_t n_layer;     /* blocks */
    int32_t n_head;
    int32_t head_dim;    /* E / n_head */
    int32_t n_ff;        /* MLP inner size (4E) */
    int32_t n_tokens;    /* L: trunk rows of one clip, CLS included (text: the context, 77) */
    int32_t n_patches;   /* L - 1 patch tokens (text: 0) */
    int32_t n_patch_in;  /* K: inputs of one patch (vision 1176, audio/thermal/depth 256, imu 48) */
    int32_t n_vocab;     /* text: rows of token_embed; 0 otherwise */
    int32_t bias_kv;     /* 1: a learned key/value row is appended in every block */
    float eps;           /* LayerNorm eps of the blocks, the head and vision's pre-LN (1e-6) */
    float stem_eps;      /* stem LayerNorm eps (1e-5); 0 when the tower has no stem LN */
    float logit_scale;   /* upstream factor min(exp(log_logit_scale), 100); 1 when absent */
} imagebind_hparams;

typedef struct imagebind_layer {
    const float *norm_1_w, *norm_1_b; /* (E) */
    pg_weight in_proj;                /* (E) -> (3E), output rows Q, then K, then V */
    const float *in_proj_b;           /* (3E) */
    const float *bias_k, *bias_v;     /* (E), or NULL without bias_kv */
    pg_weight out_proj;               /* (E) -> (E) */
    const float *out_proj_b;          /* (E) */
    const float *norm_2_w, *norm_2_b; /* (E) */
    pg_weight fc1;                    /* (E) -> (n_ff) */
    const float *fc1_b;               /* (n_ff) */
    pg_weight fc2;                    /* (n_ff) -> (E) */
    const float *fc2_b;               /* (E) */
} imagebind_layer;

typedef struct imagebind_tower {
    const float *cls_token;               /* (E); NULL for text */
    pg_weight patch_embed;                /* (K) -> (E), no bias; text: token_embed, n_vocab
                                             rows of E read with get_rows */
    const float *stem_norm_w, *stem_norm_b; /* (E); audio, thermal, depth, imu; else NULL */
    const float *pos_embed;               /* (L, E) */
    const float *pre_norm_w, *pre_norm_b; /* (E); vision only */
    imagebind_layer *layers;              /* (n_layer) */
    const float *head_norm_w, *head_norm_b; /* (E) */
    pg_weight head;                       /* (E) -> (dim), no bias */
} imagebind_tower;

typedef struct imagebind_model {
    int32_t dim;                        /* joint embedding size (1024 for huge) */
    int32_t has[IB_N_TOWERS];           /* 1 when the file holds the tower */
    imagebind_hparams hp[IB_N_TOWERS];
    imagebind_tower w[IB_N_TOWERS];
    int32_t has_llama_proj;
    int32_t proj_n_out;                 /* H: the LLM's hidden size */
    pg_weight llama_proj;               /* (dim) -> (H), host: imagebind_project's */
    const float *llama_proj_b;          /* (H), host */
    pg_weight proj_w;                   /* llama_proj as the backend ops read it (a chat's
                                           modality slot): the same host mapping on the CPU,
                                           the device copy on CUDA */
    const float *proj_b;                /* (H) likewise */
    gguf_file *file;                    /* owns the mapping every weight points into */
    float **conv;                       /* (n_conv) vectors converted to F32 from another type */
    int32_t n_conv, cap_conv;
    void *device_arena;                 /* the device copy the towers' weights and vectors point
                                           into once on a GPU (cuda_weights.c), else NULL;
                                           llama_proj keeps its host mapping beside it */
    void (*free_arena)(void *arena);    /* releases device_arena: set with it */
} imagebind_model;

/* Reads the keys and tensors of docs/format.md §3 from an open GGUF, taking ownership of f (also
 * on failure): general.architecture must be "imagebind"; the towers are those listed in
 * imagebind.modalities; every listed tower's keys and tensors must be present with the exact
 * shapes the keys imply, and the fixed geometry (token counts, patch sizes) must match.
 * llama_proj is loaded when the imagebind.llama_proj.* keys are present.
 * Errors: PG_ERR_FORMAT naming the file and the missing or misshapen key or tensor,
 * PG_ERR_UNSUPPORTED (tensor type), PG_ERR_OUT_OF_MEMORY. */
pg_status imagebind_model_load(gguf_file *f, imagebind_model **out);
void imagebind_model_free(imagebind_model *m);

/* The tower that encodes a pg_modality (IMAGE and VIDEO: vision). */
imagebind_tower_id imagebind_tower_of(pg_modality mod);

/* ---- encoder calls ---- */

/* A trunk pass recorded by the backend (graph_capture) for one shape: its modality, clips, clip
 * weight and whether it adds to an earlier pass's vector. */
#define IB_PASS_GRAPHS 8
typedef struct imagebind_pass_graph {
    int32_t mod, nc, accumulate;
    float weight;
    int32_t runs;   /* passes of this shape so far (0: the slot is free) */
    int32_t failed; /* the backend could not record it: it runs as it comes */
    void *graph;    /* the recorded pass, or NULL */
} imagebind_pass_graph;

/* Activations of one encoder call, in backend memory (host staging for the taps), sized for
 * max_clips clips of any tower the model holds. */
typedef struct imagebind_state {
    int32_t max_clips;  /* clips per trunk pass */
    float *raw;         /* (max_clips, one clip of the input tensor) uploaded media */
    float *patches;     /* (max_clips * n_patches, K) their im2col rows */
    float *x;           /* (max_clips * L, E) residual stream */
    float *xb;          /* (max_clips * L, E) normed input of a sublayer, then its output */
    float *qkv;         /* (max_clips * (L + 1), 3E) fused Q|K|V rows; row L of each clip is
                           the bias_kv key/value row when the tower has one */
    float *att;         /* (max_clips * L, E) attention output, heads concatenated */
    float *hb;          /* (max_clips * L, n_ff) MLP hidden */
    float *cls;         /* (max_clips, E) the CLS rows, then their head LayerNorm */
    float *head;        /* (max_clips, dim) head output */
    float *vec;         /* (dim) the call's result: the mean of the clips' vectors */
    float *post;        /* (dim) one clip's vector, for the "post" tap */
    float *host;        /* host (max(L * E, max_clips * dim)) taps */
    size_t host_n;      /* floats in host */
    imagebind_pass_graph graphs[IB_PASS_GRAPHS]; /* recorded passes (backends with graphs) */
} imagebind_state;

/* Allocates a state through backend b for up to max_clips clips per trunk pass (0 = the
 * default, IB_MAX_CLIPS_DEFAULT); more clips are encoded in several passes. PG_ERR_OUT_OF_MEMORY
 * (naming the buffer), PG_ERR_INVALID_ARGUMENT (max_clips < 0 or > 4096). */
pg_status imagebind_state_new(const imagebind_model *m, pg_backend *b, int32_t max_clips,
                              imagebind_state **out);
void imagebind_state_free(imagebind_state *st, pg_backend *b);

/* What a CPU backend should reserve (pg_backend_cpu_reserve) for a state of max_clips clips
 * (0 = the default): the largest matmul batch, weight row length and attention span. */
void imagebind_scratch_needs(const imagebind_model *m, int32_t max_clips, int *max_rows,
                             int64_t *max_n_in, int *max_ctx);

/* Called with named intermediates, in host memory valid only during the call, for tests and
 * debugging: "tokens" (trunk input), "pre_transformer" (after vision's pre-LN; the same rows for
 * the other towers), "block.<i>" (residual stream after block i) and "trunk_out", each [L][E]
 * of clip 0 only (clip = 0); then per clip "head_out" ([dim], before normalisation) and "post"
 * ([dim], the clip's vector as it enters the mean: see imagebind_encode). A nonzero return stops
 * the call with PG_ERR_CANCELLED. */
typedef int (*imagebind_tap_fn)(const char *name, int32_t clip, const float *data, int32_t rows,
                                int32_t cols, void *user_data);

/* Encodes n_clips clips of modality mod and writes out[dim]: exactly the vector PandaGPT feeds
 * llama_proj (spec §5.9). input is host memory in the pg_media layout (lib/media/media.h), clips
 * first: IMAGE [3,224,224] (repeated into 2 identical frames: the Conv3d runs over both
 * temporal taps), VIDEO [n_clips,3,2,224,224], AUDIO [n_clips,1,128,204], THERMAL and DEPTH
 * [1,224,224], IMU [6,2000]; IMAGE, THERMAL, DEPTH and IMU take n_clips = 1.
 * out, per clip c with h_c the head output and n(h) = h / max(|h|, 1e-12):
 *   IMAGE n(h_0); VIDEO and AUDIO mean_c n(h_c), not renormalised (AUDIO without upstream's
 *   ×20, as PandaGPT); THERMAL, DEPTH, IMU n(h_0)·min(exp(log_logit_scale), 100) (10, 5, 5).
 * st may be NULL: a state for this call is then allocated and freed. tap may be NULL.
 * Errors: PG_ERR_INVALID_ARGUMENT (NULL pointers, n_clips out of range, a modality value that
 * does not exist), PG_ERR_UNSUPPORTED (the file lacks the tower), PG_ERR_OUT_OF_MEMORY,
 * PG_ERR_CANCELLED (the tap asked to stop), the backend's errors from sync. */
pg_status imagebind_encode(const imagebind_model *m, imagebind_state *st, pg_backend *b,
                           pg_modality mod, const float *input, int32_t n_clips, float *out,
                           imagebind_tap_fn tap, void *tap_user_data);

/* The same without the download: the vector is left in st->vec (backend memory; st is
 * required), for llama_proj on the backend (imagebind_project_to). Nothing waits for the
 * backend: its errors come from the next sync. Errors: as imagebind_encode, found before any
 * op is queued. */
pg_status imagebind_encode_to(const imagebind_model *m, imagebind_state *st, pg_backend *b,
                              pg_modality mod, const float *input, int32_t n_clips);

/* llama_proj on the backend: y[H] (backend memory) = (accumulate ? y : 0) + W·u + bias, u
 * backend memory of dim floats (st->vec). PG_ERR_UNSUPPORTED without llama_proj. */
pg_status imagebind_project_to(const imagebind_model *m, pg_backend *b, const float *u, float *y,
                               int accumulate);

/* The ImageBind text tower (spec §5.7; not reachable from PandaGPT): ids are 77 CLIP-BPE token
 * ids (zero padded); the head reads the row at argmax(ids) (the first maximal id: EOT);
 * out[dim] = n(h)·min(exp(log_logit_scale), 100). Taps as imagebind_encode (clip 0).
 * Errors: as imagebind_encode, and PG_ERR_INVALID_ARGUMENT for an id outside [0, n_vocab). */
pg_status imagebind_encode_text(const imagebind_model *m, imagebind_state *st, pg_backend *b,
                                const int32_t *ids, float *out, imagebind_tap_fn tap,
                                void *tap_user_data);

/* PandaGPT's llama_proj: v[H] = W·u + b for u[dim], on the host in float32 with the dot
 * products accumulated in double. PG_ERR_UNSUPPORTED when the file has no llama_proj,
 * PG_ERR_INVALID_ARGUMENT (NULL), PG_ERR_OUT_OF_MEMORY. Safe to call concurrently. */
pg_status imagebind_project(const imagebind_model *m, const float *u, float *v);

#endif
