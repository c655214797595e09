/*
 * llama.h — Vicuna / LLaMA-1 (the language half of PandaGPT) from a `llama`-architecture GGUF.
 *
 * Blueprint (llama_hparams), weights (llama_weights, views into the mapped file) and the
 * per-session activations and KV cache (llama_state), in the llama2.c manner. The forward pass
 * is written once against the backend op table (lib/backend/backend.h).
 */
#ifndef PG_LLAMA_H
#define PG_LLAMA_H

#include <stdint.h>

#include "backend/backend.h"
#include "gguf/gguf.h"
#include "text/tokenizer.h"

typedef struct llama_hparams {
    int32_t n_vocab;     /* rows of token_embd and output (32000, or 32001 with Vicuna's [PAD]) */
    int32_t n_embd;      /* hidden size H */
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;   /* == n_head for LLaMA-1 (no GQA) */
    int32_t head_dim;    /* n_embd / n_head */
    int32_t n_rot;       /* dims rotated by RoPE per head (= head_dim) */
    int32_t n_ff;        /* SwiGLU inner size */
    int32_t n_ctx_train; /* llama.context_length */
    float rms_eps;       /* 1e-6 */
    float rope_base;     /* 10000 */
} llama_hparams;

typedef struct llama_layer {
    const float *attn_norm; /* (n_embd) */
    pg_weight attn_q;       /* (n_embd) -> (n_head*head_dim), rows in GGUF adjacent-pair order */
    pg_weight attn_k;       /* (n_embd) -> (n_head_kv*head_dim) */
    pg_weight attn_v;       /* (n_embd) -> (n_head_kv*head_dim) */
    pg_weight attn_output;  /* (n_head*head_dim) -> (n_embd) */
    const float *ffn_norm;  /* (n_embd) */
    pg_weight ffn_gate;     /* (n_embd) -> (n_ff) */
    pg_weight ffn_up;       /* (n_embd) -> (n_ff) */
    pg_weight ffn_down;     /* (n_ff) -> (n_embd) */
} llama_layer;

typedef struct llama_weights {
    pg_weight token_embd;     /* (n_vocab rows of n_embd) */
    llama_layer *layers;      /* (n_layer) */
    const float *output_norm; /* (n_embd) */
    pg_weight output;         /* (n_embd) -> (n_vocab); token_embd when the file ties them */
} llama_weights;

typedef struct llama_model {
    llama_hparams hp;
    llama_weights w;
    pg_vocab *vocab;
    gguf_file *file;      /* owns the mapping every weight points into */
    float *norm_store;    /* norm weights converted to F32 when the file stores them otherwise */
    void **lora_store;    /* (n_lora_store) matrices with a LoRA merged in (lora.c): the weights
                             that point there no longer point into the mapping */
    int32_t n_lora_store;
    uint64_t weight_bytes;/* bytes of every matrix read per decoded token (all but token_embd) */
    void *device_arena;   /* the device copy every weight and norm points into once the model
                             is on a GPU (lib/backend/cuda/cuda_weights.c), else NULL */
    void (*free_arena)(void *arena); /* releases device_arena: set with it, so that this code
                                        does not depend on CUDA */
} llama_model;

/* Reads hyperparameters, vocabulary and weights from an open GGUF (taking ownership of f, also on
 * failure). PG_ERR_FORMAT names the missing or misshapen key or tensor. */
pg_status llama_model_load(gguf_file *f, llama_model **out);
void llama_model_free(llama_model *m);

/* The per-session state. Items in ids[] mirror what the KV cache holds at each position. */
#define LLAMA_ID_EMBD (-1) /* a position filled from an input embedding row */
#define LLAMA_ID_ROW (-2)  /* an input (and position) taken from st->embd_row */

typedef struct llama_state {
    int32_t n_ctx;     /* KV cache positions */
    int32_t n_batch;   /* rows processed per forward chunk */
    int32_t n_past;    /* positions now in the cache */
    int32_t has_logits;/* logits hold the last evaluated position */
    int32_t *ids;      /* (n_ctx) token id at each cached position, or LLAMA_ID_EMBD / a marker */
    float *x;          /* (n_batch, n_embd) residual stream */
    float *xb;         /* (n_batch, n_embd) normed input of a sublayer */
    float *q;          /* (n_batch, n_head*head_dim) */
    float *att;        /* (n_batch, n_head*head_dim) attention output */
    float *hb;         /* (n_batch, n_ff) gate, then silu(gate)*up */
    float *hb2;        /* (n_batch, n_ff) up */
    float *logits;     /* (n_vocab) of the last evaluated position, backend memory */
    float *embd_row;   /* (n_embd) the row a LLAMA_ID_ROW input reads: a chat's modality slot,
                          written in backend memory by the encoders and llama_proj */
    float *k_cache;    /* (n_layer, n_ctx, n_head_kv*head_dim) */
    float *v_cache;    /* (n_layer, n_ctx, n_head_kv*head_dim) */
    int32_t *step;     /* (2) backend memory: a decode step's token and position */
    float *kv_row;     /* (2, n_head_kv*head_dim) a decode step's new key and value rows */
    void *graph;       /* the decode step recorded by the backend (graph_capture), or NULL */
    int32_t graph_state; /* 0 not tried yet, 1 recorded, -1 the backend cannot: run it */
    int32_t n_steps;   /* decode steps run since the state was made */
} llama_state;

/* Allocates the state through backend b. n_ctx 0 = the model's trained context. */
pg_status llama_state_new(const llama_model *m, pg_backend *b, int32_t n_ctx, llama_state **out);
void llama_state_free(llama_state *st, pg_backend *b);

/* Evaluates n inputs at positions n_past..n_past+n-1: tokens (when non-NULL; an id of
 * LLAMA_ID_ROW stands for the row st->embd_row, so that a whole chat prompt with its modality
 * slot is one forward pass) or embedding rows embd (n × n_embd, host memory). st->ids records
 * the ids given (LLAMA_ID_EMBD for embd rows). PG_ERR_CONTEXT_FULL (nothing evaluated) when
 * they do not fit. On success the logits of the last input are in st->logits. */
pg_status llama_eval(const llama_model *m, llama_state *st, pg_backend *b, const int32_t *tokens,
                     const float *embd, int32_t n);

#endif
