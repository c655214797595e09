/*
 * internal.h — what the public handles hold. Only lib/api sees these structs.
 */
#ifndef PG_INTERNAL_H
#define PG_INTERNAL_H

#include <pthread.h>

#include "backend/backend.h"
#include "chat/chat.h"
#include "models/imagebind.h"
#include "models/llama.h"

struct pg_model {
    llama_model *llm;     /* NULL for an embedding-only model */
    imagebind_model *enc; /* ImageBind + llama_proj, or NULL without encoder_path */
    pg_device device;     /* where the weights live, resolved: PG_DEVICE_CPU or PG_DEVICE_CUDA */
    int32_t cuda_device;  /* the CUDA ordinal when device is PG_DEVICE_CUDA */
    int32_t n_threads;    /* CPU threads per session, resolved (>= 1) */
    /* pg_embed on CUDA: a backend and a default-sized encoder state made at the first call and
     * kept until pg_model_free, used by one call at a time under embed_lock; a call that finds
     * the lock taken makes its own for the call (media_api.c). Unused on the CPU. */
    pthread_mutex_t embed_lock;
    pg_backend *embed_backend;
    imagebind_state *embed_state;
};

struct pg_session {
    pg_model *model;
    pg_backend *backend;  /* this session's threads / stream */
    llama_state *state;   /* KV cache and activations */
    pg_chat *chat;        /* history, modality slot, answer */
    imagebind_state *enc_state; /* encoder activations, made at the first turn with media */
};

/* A backend on the model's device: the CPU's with n_threads workers, or a CUDA backend (one
 * stream) on cuda_device whose attention scratch is sized for max_ctx positions. */
pg_status pg_model_backend_new(const pg_model *m, size_t max_ctx, pg_backend **out);

/* pg_backend_cpu_reserve on a CPU backend; nothing on CUDA, which sizes its scratch itself. */
pg_status pg_model_backend_reserve(const pg_model *m, pg_backend *b, int max_rows,
                                   int64_t max_n_in, int max_ctx);

/* The vector a chat turn puts in the modality slot: llama_proj of each media's ImageBind vector,
 * summed (spec §1: each modality brings its own bias), computed with the backend's ops on its
 * memory: out is n_embd floats of b's memory (the session state's embd_row). Nothing waits for
 * the backend; its errors come from the next sync (the prompt's evaluation). */
pg_status pg_media_slot(pg_model *m, imagebind_state *st, pg_backend *b, pg_media *const *media,
                        size_t n_media, float *out);

/* Copies a caller's params struct over defaults, reading only the bytes struct_size covers.
 * PG_ERR_INVALID_ARGUMENT when struct_size is below the first version's size (or zero). */
pg_status pg_params_copy(void *dst, size_t dst_size, size_t v1_size, const void *src,
                         const char *what);

#endif
