/*
 * model_api.c — pg_model_*, pg_tokenize, pg_token_to_piece: argument checks and loading.
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/error.h"
#include "internal.h"
#include "models/lora.h"
#ifdef PG_HAVE_CUDA
#include "backend/cuda/cublas_loader.h"
#include "backend/cuda/cuda_backend.h"
#endif

/* Sizes of the first released versions of the params structs: a caller may never pass less. */
#define MODEL_PARAMS_V1_SIZE (offsetof(pg_model_params, lora_scale) + sizeof(float))

pg_status pg_params_copy(void *dst, size_t dst_size, size_t v1_size, const void *src,
                         const char *what) {
    uint32_t size;
    memcpy(&size, src, sizeof size);
    if (size < v1_size)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: struct_size %u is smaller than the "
                            "first version's %zu (call the *_params_init function)", what, size,
                            v1_size);
    /* newer callers may pass a bigger struct: read only what this version knows */
    memcpy(dst, src, size < dst_size ? size : dst_size);
    return PG_OK;
}

void pg_model_params_init(pg_model_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->device = PG_DEVICE_AUTO;
    p->cuda_device = 0;
    p->n_threads = 0;
    p->encoder_path = NULL;
    p->lora_path = NULL;
    p->lora_scale = 1.0f;
}

static int32_t online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 4096 ? (int32_t)n : 1;
}

/* The device p asks for, resolved: AUTO is CUDA when this build has it, a device is present and
 * cuBLAS can be opened, else the CPU; CUDA must be there. *ordinal is the CUDA device
 * (range-checked). */
static pg_status resolve_device(const pg_model_params *p, pg_device *dev, int32_t *ordinal) {
    *dev = PG_DEVICE_CPU;
    *ordinal = 0;
    if (p->device == PG_DEVICE_CPU) return PG_OK;
#ifndef PG_HAVE_CUDA
    if (p->device == PG_DEVICE_CUDA)
        return pg_set_error(PG_ERR_UNSUPPORTED, "pg_model_load: PG_DEVICE_CUDA requested, but "
                            "this build has no CUDA (use PG_DEVICE_CPU or AUTO, or rebuild with "
                            "the CUDA toolkit and -Dcuda=enabled)");
    return PG_OK;
#else
    int n = 0;
    pg_status s = pg_cuda_device_count(&n);
    if (s != PG_OK) return s;
    if (n == 0) {
        if (p->device == PG_DEVICE_AUTO) return PG_OK;
        return pg_set_error(PG_ERR_DEVICE, "pg_model_load: PG_DEVICE_CUDA requested, but there "
                            "is no CUDA device (%s); use PG_DEVICE_CPU or AUTO",
                            pg_cuda_no_device_reason());
    }
    if (p->cuda_device < 0 || p->cuda_device >= n)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_model_load: cuda_device %d out of "
                            "range [0, %d)", p->cuda_device, n);
    /* cuBLAS is opened at run time: without it AUTO stays on the CPU, CUDA says why */
    const pg_cublas_api *blas;
    if ((s = pg_cublas_load(&blas)) != PG_OK)
        return p->device == PG_DEVICE_AUTO ? PG_OK : pg_error_prefix(s, "pg_model_load");
    *dev = PG_DEVICE_CUDA;
    *ordinal = p->cuda_device;
    return PG_OK;
#endif
}

pg_status pg_model_backend_new(const pg_model *m, size_t max_ctx, pg_backend **out) {
#ifdef PG_HAVE_CUDA
    if (m->device == PG_DEVICE_CUDA) return pg_backend_cuda_new(m->cuda_device, max_ctx, out);
#else
    (void)max_ctx;
#endif
    return pg_backend_cpu_new(m->n_threads, out);
}

pg_status pg_model_backend_reserve(const pg_model *m, pg_backend *b, int max_rows,
                                   int64_t max_n_in, int max_ctx) {
    if (m->device != PG_DEVICE_CPU) return PG_OK;
    return pg_backend_cpu_reserve(b, max_rows, max_n_in, max_ctx);
}

/* Moves the loaded weights to the model's device (after the LoRA merge, which runs on host
 * rows). */
static pg_status weights_to_device(pg_model *m) {
    if (m->device == PG_DEVICE_CPU) return PG_OK;
#ifdef PG_HAVE_CUDA
    pg_status s = PG_OK;
    if (m->llm) s = llama_model_to_cuda(m->llm, m->cuda_device);
    if (s == PG_OK && m->enc) s = imagebind_model_to_cuda(m->enc, m->cuda_device);
    return s == PG_OK ? s : pg_error_prefix(s, "pg_model_load");
#else
    return pg_set_error(PG_ERR_INTERNAL, "pg_model_load: device %d in a build without CUDA",
                        (int)m->device);
#endif
}

pg_status pg_model_load(const char *llm_path, const pg_model_params *user, pg_model **out) {
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_model_load: out is NULL");
    *out = NULL;
    pg_model_params p;
    pg_model_params_init(&p);
    if (user) {
        pg_status s = pg_params_copy(&p, sizeof p, MODEL_PARAMS_V1_SIZE, user,
                                     "pg_model_load: pg_model_params");
        if (s != PG_OK) return s;
    }
    if (!llm_path && !p.encoder_path)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_model_load: no LLM path and no "
                            "encoder_path");
    if (p.device != PG_DEVICE_AUTO && p.device != PG_DEVICE_CPU && p.device != PG_DEVICE_CUDA)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_model_load: device %d is not a "
                            "pg_device", (int)p.device);
    if (p.n_threads < 0 || p.n_threads > 1024)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_model_load: n_threads %d out of range "
                            "[0, 1024]", p.n_threads);
    if (p.lora_path && !llm_path)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_model_load: lora_path '%s' without an "
                            "LLM path (the adapter merges into the LLM)", p.lora_path);
    if (!isfinite(p.lora_scale))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_model_load: lora_scale %g is not "
                            "finite", p.lora_scale);
    pg_device device;
    int32_t ordinal;
    pg_status s = resolve_device(&p, &device, &ordinal);
    if (s != PG_OK) return s;

    pg_model *m = calloc(1, sizeof *m);
    if (!m) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "pg_model_load: cannot allocate");
    if (pthread_mutex_init(&m->embed_lock, NULL) != 0) {
        free(m);
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "pg_model_load: cannot create a mutex");
    }
    m->device = device;
    m->cuda_device = ordinal;
    m->n_threads = p.n_threads ? p.n_threads : online_cores();

    gguf_file *f;
    if (llm_path) {
        if ((s = gguf_open(llm_path, &f)) == PG_OK) s = llama_model_load(f, &m->llm);
        if (s == PG_OK && p.lora_path) s = llama_lora_apply(m->llm, p.lora_path, p.lora_scale);
    }
    if (s == PG_OK && p.encoder_path) {
        if ((s = gguf_open(p.encoder_path, &f)) == PG_OK) s = imagebind_model_load(f, &m->enc);
        if (s == PG_OK && m->llm && m->enc->has_llama_proj &&
            m->enc->proj_n_out != m->llm->hp.n_embd)
            s = pg_set_error(PG_ERR_FORMAT, "pg_model_load: llama_proj of '%s' maps to %d "
                             "dimensions but the LLM '%s' has %d (a 7B delta with a 13B "
                             "Vicuna?)", p.encoder_path, m->enc->proj_n_out, llm_path,
                             m->llm->hp.n_embd);
    }
    if (s == PG_OK) s = weights_to_device(m);
    if (s != PG_OK) {
        pg_model_free(m);
        return s;
    }
    *out = m;
    return PG_OK;
}

void pg_model_free(pg_model *m) {
    if (!m) return;
    if (m->embed_backend) {
        imagebind_state_free(m->embed_state, m->embed_backend);
        pg_backend_free(m->embed_backend);
    }
    pthread_mutex_destroy(&m->embed_lock);
    llama_model_free(m->llm);
    imagebind_model_free(m->enc);
    free(m);
}

int32_t pg_model_n_vocab(const pg_model *m) { return m && m->llm ? m->llm->hp.n_vocab : 0; }
int32_t pg_model_n_embd(const pg_model *m) { return m && m->llm ? m->llm->hp.n_embd : 0; }
int32_t pg_model_embed_dim(const pg_model *m) { return m && m->enc ? m->enc->dim : 0; }

int32_t pg_model_proj_dim(const pg_model *m) {
    return m && m->enc && m->enc->has_llama_proj ? m->enc->proj_n_out : 0;
}

pg_status pg_tokenize(const pg_model *m, const char *text, size_t len, int add_bos,
                      int32_t *tokens, size_t cap, size_t *n_tokens) {
    if (!m || !n_tokens)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_tokenize: %s is NULL",
                            !m ? "model" : "n_tokens");
    *n_tokens = 0;
    if (!m->llm)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_tokenize: embedding-only model has no "
                            "vocabulary");
    if (!text && len)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_tokenize: text is NULL, len %zu", len);
    if (!tokens && cap)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_tokenize: tokens is NULL, cap %zu", cap);
    return pg_vocab_tokenize(m->llm->vocab, text ? text : "", len, add_bos, tokens, cap,
                             n_tokens);
}

pg_status pg_token_to_piece(const pg_model *m, int32_t token, char *buf, size_t cap,
                            size_t *len) {
    if (!m || !len)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_token_to_piece: %s is NULL",
                            !m ? "model" : "len");
    *len = 0;
    if (!m->llm)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_token_to_piece: embedding-only model");
    if (token < 0 || token >= m->llm->hp.n_vocab)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_token_to_piece: token %d out of range "
                            "[0, %d)", token, m->llm->hp.n_vocab);
    size_t n;
    const char *piece = pg_vocab_piece(m->llm->vocab, token, &n);
    *len = n;
    if (n > cap || (n && !buf))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_token_to_piece: token %d needs %zu "
                            "bytes, buffer holds %zu", token, n, buf ? cap : 0);
    memcpy(buf, piece, n);
    return PG_OK;
}
