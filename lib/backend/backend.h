/*
 * backend.h — the op table the models are written against.
 *
 * Model code (lib/models) calls these ops eagerly, in order, and never touches CPU or CUDA
 * directly. Activations are float32 buffers allocated through the backend (host memory on CPU,
 * device memory on CUDA); weights are pg_weight views whose bytes the backend owns or maps.
 * Shapes are row-major with explicit sizes; "n" is the number of rows (tokens) processed at once.
 *
 * Ops do not return a status: a backend that can fail asynchronously (CUDA) records the first
 * error and reports it from sync(), which the model calls at the end of every forward.
 */
#ifndef PG_BACKEND_H
#define PG_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "pandagpt.h"

/* A 2-D weight matrix [n_out rows][n_in columns] of dtype type (ggml ne = {n_in, n_out}): row r
 * holds the n_in inputs of output r contiguously, so y[r] = dot(row r, x). */
typedef struct pg_weight {
    uint32_t type;     /* pg_dtype */
    int64_t n_in;      /* ne[0] */
    int64_t n_out;     /* ne[1] */
    size_t row_bytes;  /* bytes of one row */
    const void *data;  /* backend memory */
} pg_weight;

typedef struct pg_backend pg_backend;

/* The geometry of a Conv whose kernel equals its stride in time (ImageBind's patch embeddings,
 * spec §5): an input [channels][frames][height][width] gives gh = (height - k_h)/s_h + 1 by
 * gw = (width - k_w)/s_w + 1 tokens (row-major), each a row of channels·k_t·k_h·k_w features in
 * (c, t, i, j) order, value in[c][min(t, frames - 1)][ph·s_h + i][pw·s_w + j] — an image
 * (frames 1) repeated over a 2-frame kernel is PadIm2Video's repeat. */
typedef struct pg_conv_geom {
    int channels, frames, height, width;
    int k_t, k_h, k_w;
    int s_h, s_w;
} pg_conv_geom;

typedef struct pg_backend_ops {
    const char *name;
    /* Frees the backend and everything it owns (pg_backend_free calls it). */
    void (*destroy)(pg_backend *b);

    /* ---- memory ---- */
    /* Allocates bytes of backend memory (zeroed). PG_ERR_OUT_OF_MEMORY with the size. */
    pg_status (*alloc)(pg_backend *b, size_t bytes, void **out);
    void (*free)(pg_backend *b, void *p);
    /* Host -> backend and backend -> host copies of bytes. */
    void (*upload)(pg_backend *b, void *dst, const void *src, size_t bytes);
    void (*download)(pg_backend *b, void *dst, const void *src, size_t bytes);
    /* Waits for queued work; returns the first error recorded since the last sync. */
    pg_status (*sync)(pg_backend *b);

    /* ---- ops ---- */
    /* y[n][w.n_out] = x[n][w.n_in] · Wᵀ. x and y do not overlap. */
    void (*matmul)(pg_backend *b, const pg_weight *w, const float *x, float *y, int n);
    /* y[n][w.n_out] += x[n][w.n_in] · Wᵀ (residual add fused into the output projection). */
    void (*matmul_add)(pg_backend *b, const pg_weight *w, const float *x, float *y, int n);
    /* out[i][:] = row ids[i] of the embedding table emb (any dtype), as float. */
    void (*get_rows)(pg_backend *b, const pg_weight *emb, const int32_t *ids, int n, float *out);
    /* y[i][:] = x[i][:] / sqrt(mean(x[i]²) + eps) * w, over n rows of dim; y may equal x. */
    void (*rmsnorm)(pg_backend *b, float *y, const float *x, const float *w, int n, int dim,
                    float eps);
    /* Rotates, in place, the first n_rot dims of each head of x[n][n_head*head_dim] in GGUF's
     * adjacent-pair convention (x[2i], x[2i+1]) by pos·freq_base^(-2i/n_rot); row t sits at
     * position pos0 + t. */
    void (*rope)(pg_backend *b, float *x, int n, int n_head, int head_dim, int n_rot, int pos0,
                 float freq_base);
    /* Causal attention of n queries at positions pos0..pos0+n-1 over the KV cache rows
     * 0..pos0+n-1 (already holding this step's keys/values).
     *   q    [n][n_head*head_dim]            out  [n][n_head*head_dim]
     *   k, v [n_ctx][n_head_kv*head_dim]     (one layer of the cache)
     * scale = 1/sqrt(head_dim); softmax in float32; grouped-query when n_head_kv < n_head. */
    void (*attention)(pg_backend *b, float *out, const float *q, const float *k, const float *v,
                      int n, int pos0, int n_head, int n_head_kv, int head_dim);
    /* gate[i] = silu(gate[i]) * up[i] for i < n. */
    void (*silu_mul)(pg_backend *b, float *gate, const float *up, size_t n);
    /* y[i] += x[i] for i < n. */
    void (*add)(pg_backend *b, float *y, const float *x, size_t n);
    /* dst[i] = src[i] for i < n floats (backend to backend). */
    void (*copy)(pg_backend *b, float *dst, const float *src, size_t n);

    /* ---- encoder ops (ImageBind, spec §5.0) ---- */
    /* y[i][:] = (x[i][:] - mean) / sqrt(var + eps) * w + bias over n rows of dim, with the
     * row's biased variance (torch.nn.LayerNorm); y may equal x. */
    void (*layernorm)(pg_backend *b, float *y, const float *x, const float *w, const float *bias,
                      int n, int dim, float eps);
    /* x[i] = 0.5·x[i]·(1 + erf(x[i]/√2)) for i < n, in place (exact GELU, not the tanh form). */
    void (*gelu)(pg_backend *b, float *x, size_t n);
    /* y[i][:] += bias[:] over n rows of dim. */
    void (*add_bias)(pg_backend *b, float *y, const float *bias, int n, int dim);
    /* Attention of n_q queries over n_kv keys/values, every query seeing every key (or, with
     * causal nonzero, query t seeing keys 0..t + n_kv - n_q; then n_kv >= n_q):
     *   q    row t at q + t*q_stride, head h in columns h*head_dim .. (h+1)*head_dim - 1
     *   k, v row p at k + p*kv_stride, v + p*kv_stride, heads split the same way
     *   out  [n_q][n_head*head_dim], contiguous; it overlaps none of q, k, v
     * scale = 1/sqrt(head_dim); softmax in float32 with the max subtracted. The strides let q, k
     * and v be column slices of one fused [rows][3E] projection. The same is done for each of
     * n_batch independent sequences (an encoder's clips): sequence s reads q, k and v at
     * + s*batch_stride floats and writes out + s*n_q*n_head*head_dim. */
    void (*attention_full)(pg_backend *b, float *out, const float *q, const float *k,
                           const float *v, int n_q, int n_kv, size_t q_stride, size_t kv_stride,
                           int n_batch, size_t batch_stride, int n_head, int head_dim,
                           int causal);
    /* Patch embedding's im2col (a Conv whose kernel equals its stride in time): n_items inputs
     * [channels][frames][height][width], contiguous, become n_items × gh·gw rows of
     * channels·k_t·k_h·k_w features (pg_conv_geom). */
    void (*im2col)(pg_backend *b, float *out, const float *in, int n_items,
                   const pg_conv_geom *g);
    /* out[d] = (accumulate ? out[d] : 0) + Σ_c weight·(scale·x[c][d] / max(‖x[c]‖₂, 1e-12)) for
     * d < dim, c = 0..n_rows-1 in order (float adds; the norm summed in double, rounded to
     * float; no product when scale is 1): the encoders' L2 normalisation, logit scale and clip
     * mean (spec §5.9). */
    void (*l2norm_sum)(pg_backend *b, float *out, const float *x, int n_rows, int dim,
                       float scale, float weight, int accumulate);
    /* y[r] = (accumulate ? y[r] : 0) + (float)(dot(row r of w, u) + bias[r]) for r < w->n_out,
     * the dot and the bias added in double (llama_proj, spec §1); bias may be NULL. u and y
     * are backend memory, u of w->n_in floats. */
    void (*project)(pg_backend *b, const pg_weight *w, const float *bias, const float *u,
                    float *y, int accumulate);

    /* ---- a decode step whose work does not depend on the token or the position ----
     * The LLM's one-token step reads both from backend memory instead of the call, so that a
     * backend can record the step once and replay it at every position (CUDA graphs). Each op
     * equals its namesake above for that value. */
    /* out[i][:] = row ids[i] of emb for i < n, ids in backend memory (get_rows otherwise). */
    void (*get_rows_at)(pg_backend *b, const pg_weight *emb, const int32_t *ids, int n,
                        float *out);
    /* rope of one row x[n_head*head_dim] at position *pos (backend memory). */
    void (*rope_at)(pg_backend *b, float *x, int n_head, int head_dim, int n_rot,
                    const int32_t *pos, float freq_base);
    /* cache[*pos][:] = row[:] (row_floats each), 0 <= *pos < n_rows (else nothing is stored). */
    void (*store_row_at)(pg_backend *b, float *cache, const float *row, size_t row_floats,
                         const int32_t *pos, int n_rows);
    /* attention of one query at position *pos over cache rows 0..*pos, 0 <= *pos < n_ctx, the
     * KV cache of one layer having n_ctx rows (attention with n = 1, pos0 = *pos). */
    void (*attention_at)(pg_backend *b, float *out, const float *q, const float *k,
                         const float *v, const int32_t *pos, int n_ctx, int n_head,
                         int n_head_kv, int head_dim);

    /* ---- graphs: NULL where the backend has none (the CPU) ----
     * graph_capture records the ops body(ctx) queues on b, without running them, into *graph;
     * graph_launch queues the recorded work once (its errors come from sync, as for ops);
     * graph_free releases it (NULL is a no-op). A graph stays valid while the buffers and
     * weights its ops named live, and reads the contents they hold when it runs. Capture fails
     * (PG_ERR_DEVICE, nothing queued, *graph NULL) when an op of body cannot be recorded; the
     * caller then runs body itself. graph_launch returns PG_ERR_DEVICE, queueing nothing, when
     * the backend has since replaced a scratch buffer the graph uses: capture again. */
    pg_status (*graph_capture)(pg_backend *b, void (*body)(void *ctx), void *ctx, void **graph);
    pg_status (*graph_launch)(pg_backend *b, void *graph);
    void (*graph_free)(pg_backend *b, void *graph);
} pg_backend_ops;

struct pg_backend {
    const pg_backend_ops *ops;
    void *impl; /* the backend's own state (thread pool, stream, handles) */
};

/* The CPU backend with n_threads workers (0 = online cores). Free with pg_backend_free. */
pg_status pg_backend_cpu_new(int n_threads, pg_backend **out);
void pg_backend_free(pg_backend *b);
/* The number of worker threads of a CPU backend (1 when it runs on the caller's thread only). */
int pg_backend_cpu_threads(const pg_backend *b);
/* Sizes the CPU backend's per-thread scratch for the largest shapes the caller will use: batched
 * matmul/matmul_add over weights of up to max_n_in inputs, attention over up to max_ctx
 * positions (attention_full: n_kv), and max_rows, the largest n of one call (recorded for future
 * use). Call once after pg_backend_cpu_new and before any op, never concurrently with ops;
 * calling again only grows.
 * Ops never allocate: a shape beyond the reservation still computes correctly, on a slower path
 * that needs no scratch. PG_ERR_INVALID_ARGUMENT (not a CPU backend, negative sizes),
 * PG_ERR_OUT_OF_MEMORY. */
pg_status pg_backend_cpu_reserve(pg_backend *b, int max_rows, int64_t max_n_in, int max_ctx);

#endif
