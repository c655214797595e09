/*
 * internal.h — what the public handles hold. Only lib/api sees these structs.
 */
#ifndef PG_INTERNAL_H
#define PG_INTERNAL_H

#include "backend/backend.h"
#include "chat/chat.h"
#include "models/llama.h"

struct pg_model {
    llama_model *llm;     /* NULL for an embedding-only model */
    pg_device device;     /* the device the weights live on (CPU in this version) */
    int32_t n_threads;    /* CPU threads per session, resolved (>= 1) */
};

struct pg_session {
    pg_model *model;
    pg_backend *backend;  /* this session's threads / stream */
    llama_state *state;   /* KV cache and activations */
    pg_chat *chat;        /* history, modality slot, answer */
};

/* Copies a caller's params struct over defaults, reading only the bytes struct_size covers.
 * PG_ERR_INVALID_ARGUMENT when struct_size is below the first version's size (or zero). */
pg_status pg_params_copy(void *dst, size_t dst_size, size_t v1_size, const void *src,
                         const char *what);

#endif
