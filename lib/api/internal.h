/*
 * internal.h — what the public handles hold. Only lib/api sees these structs.
 */
#ifndef PG_INTERNAL_H
#define PG_INTERNAL_H

#include "backend/backend.h"
#include "chat/chat.h"
#include "models/imagebind.h"
#include "models/llama.h"

struct pg_model {
    llama_model *llm;     /* NULL for an embedding-only model */
    imagebind_model *enc; /* ImageBind + llama_proj, or NULL without encoder_path */
    pg_device device;     /* the device the weights live on (CPU in this version) */
    int32_t n_threads;    /* CPU threads per session, resolved (>= 1) */
};

struct pg_session {
    pg_model *model;
    pg_backend *backend;  /* this session's threads / stream */
    llama_state *state;   /* KV cache and activations */
    pg_chat *chat;        /* history, modality slot, answer */
    imagebind_state *enc_state; /* encoder activations, made at the first turn with media */
};

/* The vector a chat turn puts in the modality slot: llama_proj of each media's ImageBind vector,
 * summed (spec §1: each modality brings its own bias). out has the LLM's n_embd floats. */
pg_status pg_media_slot(pg_model *m, imagebind_state *st, pg_backend *b, pg_media *const *media,
                        size_t n_media, float *out);

/* Copies a caller's params struct over defaults, reading only the bytes struct_size covers.
 * PG_ERR_INVALID_ARGUMENT when struct_size is below the first version's size (or zero). */
pg_status pg_params_copy(void *dst, size_t dst_size, size_t v1_size, const void *src,
                         const char *what);

#endif
