/*
 * cuda_weights.c — a loaded model's weights copied to a GPU: one device allocation (the arena)
 * per model, sized first, filled tensor by tensor, and only then are the model's pointers moved
 * onto it, so a failure leaves the model on the host as it was.
 *
 * Every pg_weight (matrix) and every const float * (norm, bias, embedding vector) the forward
 * passes hand to the op table is uploaded; tensors that share their bytes (a tied LM head) share
 * one copy. The arena's release is a function pointer in the model (free_arena), so
 * lib/models never calls CUDA.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "api/error.h"
#include "backend/cuda/cuda_backend.h"
#include "models/imagebind.h"
#include "models/llama.h"

#define ARENA_ALIGN 256 /* cudaMalloc's own alignment: every tensor starts on one */

/* One tensor to upload: a matrix (w) or a vector (v), whose pointer is moved to the arena. */
typedef struct upload_item {
    pg_weight *w;
    const float **v;
    const void *src; /* host bytes */
    size_t bytes;
    size_t offset;   /* in the arena */
    int shared;      /* the bytes of an earlier item: its copy is used */
} upload_item;

typedef struct upload_list {
    upload_item *items;
    size_t n, cap;
    int oom; /* a push failed: the list is incomplete */
} upload_list;

typedef struct device_arena {
    void *base;
    int device;
    size_t bytes;
} device_arena;

static void push(upload_list *l, pg_weight *w, const float **v, const void *src, size_t bytes) {
    if (!src || !bytes || l->oom) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        upload_item *p = realloc(l->items, cap * sizeof *p);
        if (!p) {
            l->oom = 1;
            return;
        }
        l->items = p;
        l->cap = cap;
    }
    l->items[l->n++] = (upload_item){w, v, src, bytes, 0, 0};
}

static void push_weight(upload_list *l, pg_weight *w) {
    push(l, w, NULL, w->data, w->row_bytes * (size_t)w->n_out);
}

static void push_vec(upload_list *l, const float **v, size_t n_floats) {
    push(l, NULL, v, *v, n_floats * sizeof(float));
}

static void arena_free(void *p) {
    device_arena *a = p;
    if (cudaSetDevice(a->device) == cudaSuccess) (void)cudaFree(a->base);
    (void)cudaGetLastError();
    free(a);
}

/* Lays out, allocates and fills the arena, then moves every pointer of l onto it. */
static pg_status upload(upload_list *l, int device, const char *what, device_arena **out) {
    *out = NULL;
    if (l->oom)
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s to cuda device %d: cannot allocate the "
                            "tensor list", what, device);
    size_t total = 0;
    for (size_t i = 0; i < l->n; i++) {
        upload_item *it = &l->items[i];
        size_t j = 0; /* the same bytes already laid out (tied embeddings) share their copy */
        while (j < i && (l->items[j].src != it->src || l->items[j].bytes != it->bytes)) j++;
        if (j < i) {
            it->offset = l->items[j].offset;
            it->shared = 1;
            continue;
        }
        it->offset = total;
        total += (it->bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    }
    device_arena *a = calloc(1, sizeof *a);
    if (!a) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: cannot allocate", what);
    a->device = device;
    a->bytes = total;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaMalloc(&a->base, total ? total : 1);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) (void)cudaGetLastError();
        free(a);
        return pg_set_error(e == cudaErrorMemoryAllocation ? PG_ERR_OUT_OF_MEMORY
                                                           : PG_ERR_DEVICE,
                            "%s to cuda device %d: %zu tensors need %.1f MiB, the device has "
                            "%.1f MiB free of %.1f MiB: cudaMalloc: %s", what, device, l->n,
                            (double)total / 1048576.0, (double)free_b / 1048576.0,
                            (double)total_b / 1048576.0, cudaGetErrorString(e));
    }
    for (size_t i = 0; i < l->n; i++) {
        const upload_item *it = &l->items[i];
        if (it->shared) continue;
        e = cudaMemcpy((char *)a->base + it->offset, it->src, it->bytes, cudaMemcpyHostToDevice);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            arena_free(a);
            return pg_set_error(PG_ERR_DEVICE, "%s to cuda device %d: copying tensor %zu of %zu "
                                "(%zu bytes): cudaMemcpy: %s", what, device, i, l->n, it->bytes,
                                cudaGetErrorString(e));
        }
    }
    /* cudaMemcpy from pageable memory may return before its DMA lands, and the backends'
     * streams do not wait for the legacy stream it ran on */
    if ((e = cudaDeviceSynchronize()) != cudaSuccess) {
        (void)cudaGetLastError();
        arena_free(a);
        return pg_set_error(PG_ERR_DEVICE, "%s to cuda device %d: cudaDeviceSynchronize after "
                            "the copies: %s", what, device, cudaGetErrorString(e));
    }
    for (size_t i = 0; i < l->n; i++) {
        const upload_item *it = &l->items[i];
        void *dev = (char *)a->base + it->offset;
        if (it->w) it->w->data = dev;
        else *it->v = dev;
    }
    *out = a;
    return PG_OK;
}

pg_status llama_model_to_cuda(llama_model *m, int device) {
    if (!m || m->device_arena)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "llama_model_to_cuda: %s",
                            m ? "the model is already on a device" : "model is NULL");
    const llama_hparams *hp = &m->hp;
    llama_weights *w = &m->w;
    const size_t E = (size_t)hp->n_embd;
    upload_list l = {0};
    push_weight(&l, &w->token_embd);
    for (int32_t i = 0; i < hp->n_layer; i++) {
        llama_layer *ly = &w->layers[i];
        push_vec(&l, &ly->attn_norm, E);
        push_weight(&l, &ly->attn_q);
        push_weight(&l, &ly->attn_k);
        push_weight(&l, &ly->attn_v);
        push_weight(&l, &ly->attn_output);
        push_vec(&l, &ly->ffn_norm, E);
        push_weight(&l, &ly->ffn_gate);
        push_weight(&l, &ly->ffn_up);
        push_weight(&l, &ly->ffn_down);
    }
    push_vec(&l, &w->output_norm, E);
    push_weight(&l, &w->output);
    device_arena *a;
    pg_status s = upload(&l, device, "LLM weights", &a);
    free(l.items);
    if (s != PG_OK) return s;
    m->device_arena = a;
    m->free_arena = arena_free;
    /* the LoRA-merged host copies are now only read from the device */
    for (int32_t i = 0; i < m->n_lora_store; i++) free(m->lora_store[i]);
    free(m->lora_store);
    m->lora_store = NULL;
    m->n_lora_store = 0;
    return PG_OK;
}

pg_status imagebind_model_to_cuda(imagebind_model *m, int device) {
    if (!m || m->device_arena)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "imagebind_model_to_cuda: %s",
                            m ? "the model is already on a device" : "model is NULL");
    upload_list l = {0};
    for (int t = 0; t < IB_N_TOWERS; t++) {
        if (!m->has[t]) continue;
        const imagebind_hparams *hp = &m->hp[t];
        imagebind_tower *w = &m->w[t];
        const size_t E = (size_t)hp->n_embd, L = (size_t)hp->n_tokens, F = (size_t)hp->n_ff;
        push_vec(&l, &w->cls_token, E);
        push_weight(&l, &w->patch_embed);
        push_vec(&l, &w->stem_norm_w, E);
        push_vec(&l, &w->stem_norm_b, E);
        push_vec(&l, &w->pos_embed, L * E);
        push_vec(&l, &w->pre_norm_w, E);
        push_vec(&l, &w->pre_norm_b, E);
        for (int32_t i = 0; i < hp->n_layer; i++) {
            imagebind_layer *ly = &w->layers[i];
            push_vec(&l, &ly->norm_1_w, E);
            push_vec(&l, &ly->norm_1_b, E);
            push_weight(&l, &ly->in_proj);
            push_vec(&l, &ly->in_proj_b, 3 * E);
            push_vec(&l, &ly->bias_k, E);
            push_vec(&l, &ly->bias_v, E);
            push_weight(&l, &ly->out_proj);
            push_vec(&l, &ly->out_proj_b, E);
            push_vec(&l, &ly->norm_2_w, E);
            push_vec(&l, &ly->norm_2_b, E);
            push_weight(&l, &ly->fc1);
            push_vec(&l, &ly->fc1_b, F);
            push_weight(&l, &ly->fc2);
            push_vec(&l, &ly->fc2_b, E);
        }
        push_vec(&l, &w->head_norm_w, E);
        push_vec(&l, &w->head_norm_b, E);
        push_weight(&l, &w->head);
    }
    /* llama_proj: the device copy is the backend ops' (a chat's modality slot); its host
     * mapping (m->llama_proj) stays for pg_project */
    if (m->has_llama_proj) {
        push_weight(&l, &m->proj_w);
        push_vec(&l, &m->proj_b, (size_t)m->proj_n_out);
    }
    device_arena *a;
    pg_status s = upload(&l, device, "encoder weights", &a);
    free(l.items);
    if (s != PG_OK) return s;
    m->device_arena = a;
    m->free_arena = arena_free;
    return PG_OK;
}
