/*
 * cuda_backend.c — the CUDA implementation of backend.h: device memory, one stream and one
 * cuBLAS handle per backend, every op a launch of a kernel of kernels/kernels.h or a cuBLAS GEMM.
 *
 * Nothing here waits for the device except download, sync, destroy, a large upload (for the
 * DMA out of its pinned staging buffer, two chunks back) and the rare regrowth of a scratch
 * buffer. Ops cannot return a status (backend.h), so each launch's result is checked at
 * once and the first failure is kept, with the call, the op and its sizes, until sync reports it;
 * ops queued after a failure are skipped (their inputs may be garbage, and one message is enough).
 *
 * Matmul: up to GEMV_MAX_ROWS rows (decode) the fused gemv kernel reads each weight once and
 * dequantises in registers; above, cuBLAS. F32 weights go to cublasSgemm as they are. Other types
 * run cublasGemmEx with 16-bit inputs, float output and fp32 accumulation: F16 and BF16 weights
 * are used in place, with the activations rounded to the same type (BF16 keeps its range; its
 * activations carry 8 mantissa bits instead of half's 11); Q8_0 and Q4_0 are dequantised to half
 * one tile of rows at a time into scratch, with half activations. Activations are converted one
 * chunk of rows at a time, so the scratch is fixed whatever the shape (llama.cpp's CUDA backend
 * takes the same half path for its prefill).
 */
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "api/error.h"
#include "backend/cuda/cublas_loader.h"
#include "backend/cuda/cuda_backend.h"
#include "gguf/dtype.h"
#include "kernels.h"

/* Batches of at most this many rows take pg_cuda_gemv (its documented limit). */
#define GEMV_MAX_ROWS 8
/* 16-bit activations converted per cuBLAS call (16 MiB): n_in × rows of one chunk. */
#define ACT_HALVES ((size_t)8 << 20)
/* Halves of dequantised weight rows per cuBLAS call (16 MiB): n_in × rows of one tile. */
#define WTILE_HALVES ((size_t)8 << 20)
/* cuBLAS's workspace, owned here so that it is allocated once (and, later, so that graph capture
 * never sees cuBLAS allocate): 32 MiB is the cuBLAS guide's figure for Hopper. */
#define CUBLAS_WORKSPACE_BYTES ((size_t)32 << 20)
/* Uploads of at least STAGE_MIN bytes (a media tensor: 0.6 MB an image, 18 MB a video) go
 * through two pinned staging buffers of STAGE_BYTES: the host copy of one chunk overlaps the
 * DMA of the previous one, and pinned memory transfers at the link's full rate. */
#define STAGE_BYTES ((size_t)4 << 20)
#define STAGE_MIN ((size_t)256 << 10)
/* get_rows ids held on the device before a regrowth: a prefill chunk is 256 tokens. */
#define IDS_INITIAL 1024
#define MSG_CAP 640

typedef struct cuda_backend {
    pg_backend base;
    int device;
    cudaStream_t stream;    /* everything of this backend is ordered on it */
    const pg_cublas_api *blas; /* cuBLAS, opened at run time (cublas_loader.h) */
    cublasHandle_t cublas;  /* bound to stream and workspace */
    void *workspace;        /* (CUBLAS_WORKSPACE_BYTES) cuBLAS's */
    uint16_t *act;          /* (ACT_HALVES) activations as half or bf16, for cublasGemmEx */
    uint16_t *wtile;        /* (WTILE_HALVES) weight rows as half, for cublasGemmEx */
    int32_t *ids;           /* (ids_cap) get_rows ids copied from the host */
    int ids_cap;
    float *part;            /* (part_floats) decode attention partials (pg_cuda_attention) */
    size_t part_floats;
    unsigned part_gen;      /* bumped whenever part is replaced: a graph naming the old one is
                               stale */
    int capturing;          /* ops are being recorded into a graph: nothing may wait */
    size_t max_ctx_hint;    /* positions the attention scratch is first sized for */
    void *stage[2];         /* (STAGE_BYTES) pinned host staging of large uploads, made at the
                               first one; NULL: not made yet, or pinned memory refused */
    cudaEvent_t staged[2];  /* recorded after the copy out of stage[i]: stage[i] is free again */
    int stage_state;        /* 0 not tried, 1 ready, -1 unavailable (pageable copies) */
    pg_status err;          /* first failure since the last sync, PG_OK if none */
    char msg[MSG_CAP];      /* its message */
} cuda_backend;

static const pg_backend_ops cuda_ops;

static cuda_backend *cuda_of(pg_backend *b) { return (cuda_backend *)b->impl; }

// ---------------------------------------------------------------------------------------------
// Errors

static pg_status status_of(cudaError_t e) {
    return e == cudaErrorMemoryAllocation ? PG_ERR_OUT_OF_MEMORY : PG_ERR_DEVICE;
}

/* Keeps the first failure: "cuda device D: <op description>: <call> failed: <reason>". */
static void record(cuda_backend *c, pg_status s, const char *call, const char *reason,
                   const char *fmt, va_list ap) {
    if (c->err != PG_OK) return;
    c->err = s;
    int n = snprintf(c->msg, MSG_CAP, "cuda device %d: ", c->device);
    if (n < 0 || n >= MSG_CAP) return;
    int m = vsnprintf(c->msg + n, MSG_CAP - (size_t)n, fmt, ap);
    if (m < 0 || n + m >= MSG_CAP) return;
    snprintf(c->msg + n + m, MSG_CAP - (size_t)(n + m), ": %s failed: %s", call, reason);
}

/* Checks a CUDA runtime call or kernel launch (kernels.h returns the cudaError_t as int) made
 * for the op that fmt describes; returns 1 when it succeeded. A failure is recorded and the
 * runtime's last-error state cleared, so that a later launch does not report it again. */
static int check_cuda(cuda_backend *c, int e, const char *call, const char *fmt, ...)
    PG_PRINTF(4, 5);
static int check_cuda(cuda_backend *c, int e, const char *call, const char *fmt, ...) {
    if (e == (int)cudaSuccess) return 1;
    char reason[160];
    snprintf(reason, sizeof reason, "%s (%s)", cudaGetErrorName((cudaError_t)e),
             cudaGetErrorString((cudaError_t)e));
    (void)cudaGetLastError();
    va_list ap;
    va_start(ap, fmt);
    record(c, status_of((cudaError_t)e), call, reason, fmt, ap);
    va_end(ap);
    return 0;
}

static int check_cublas(cuda_backend *c, cublasStatus_t e, const char *call, const char *fmt,
                        ...) PG_PRINTF(4, 5);
static int check_cublas(cuda_backend *c, cublasStatus_t e, const char *call, const char *fmt,
                        ...) {
    if (e == CUBLAS_STATUS_SUCCESS) return 1;
    char reason[160];
    snprintf(reason, sizeof reason, "%s (%s)", c->blas->status_name(e),
             c->blas->status_string(e));
    (void)cudaGetLastError();
    va_list ap;
    va_start(ap, fmt);
    record(c, e == CUBLAS_STATUS_ALLOC_FAILED ? PG_ERR_OUT_OF_MEMORY : PG_ERR_DEVICE, call,
           reason, fmt, ap);
    va_end(ap);
    return 0;
}

/* The start of every op: NULL (skip the op) after an unreported failure or when the backend's
 * device cannot be made current on this thread. */
static cuda_backend *enter(pg_backend *b, const char *op) {
    cuda_backend *c = cuda_of(b);
    if (c->err != PG_OK) return NULL;
    if (!check_cuda(c, cudaSetDevice(c->device), "cudaSetDevice", "%s", op)) return NULL;
    return c;
}

/* Replaces the device buffer *buf by one of `bytes` (contents not kept); 0 with the failure
 * recorded, *buf then NULL if the old one was already freed. Waits for the stream first: queued
 * work may still read the old buffer. */
static int regrow(cuda_backend *c, void **buf, size_t bytes, const char *what) {
    if (c->capturing) { /* a wait would break the capture: the caller runs the body eagerly */
        if (c->err == PG_OK) {
            c->err = PG_ERR_DEVICE;
            snprintf(c->msg, MSG_CAP, "cuda device %d: %s must grow while a graph is being "
                     "captured", c->device, what);
        }
        return 0;
    }
    if (!check_cuda(c, cudaStreamSynchronize(c->stream), "cudaStreamSynchronize",
                    "growing %s", what))
        return 0;
    if (*buf) (void)cudaFree(*buf);
    *buf = NULL;
    return check_cuda(c, cudaMalloc(buf, bytes), "cudaMalloc", "growing %s to %zu bytes", what,
                      bytes);
}

// ---------------------------------------------------------------------------------------------
// Memory

static pg_status cuda_alloc(pg_backend *b, size_t bytes, void **out) {
    cuda_backend *c = cuda_of(b);
    *out = NULL;
    cudaError_t e = cudaSetDevice(c->device);
    void *p = NULL;
    if (e == cudaSuccess) e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) (void)cudaGetLastError();
        return pg_set_error(status_of(e), "cuda device %d: cannot allocate %zu bytes (%.1f MiB "
                            "free of %.1f MiB): cudaMalloc: %s", c->device, bytes,
                            (double)free_b / 1048576.0, (double)total_b / 1048576.0,
                            cudaGetErrorString(e));
    }
    /* zeroed as backend.h promises, in stream order: every later use is on this stream */
    if (bytes) e = cudaMemsetAsync(p, 0, bytes, c->stream);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        (void)cudaFree(p);
        return pg_set_error(PG_ERR_DEVICE, "cuda device %d: zeroing %zu bytes: cudaMemsetAsync: "
                            "%s", c->device, bytes, cudaGetErrorString(e));
    }
    *out = p;
    return PG_OK;
}

static void cuda_free(pg_backend *b, void *p) {
    cuda_backend *c = cuda_of(b);
    if (!p) return;
    /* no skipping after a failure here: memory is released whatever happened before; queued
     * work of the stream may still use it */
    if (check_cuda(c, cudaSetDevice(c->device), "cudaSetDevice", "free")) {
        check_cuda(c, cudaStreamSynchronize(c->stream), "cudaStreamSynchronize", "free");
        check_cuda(c, cudaFree(p), "cudaFree", "free");
    }
}

/* Makes the staging buffers and their events once; on any failure the backend uploads from
 * pageable memory instead (slower, never wrong), so nothing is reported. */
static int stage_ready(cuda_backend *c) {
    if (c->stage_state) return c->stage_state > 0;
    c->stage_state = -1;
    for (int i = 0; i < 2; i++) {
        if (cudaHostAlloc(&c->stage[i], STAGE_BYTES, cudaHostAllocDefault) != cudaSuccess ||
            cudaEventCreateWithFlags(&c->staged[i], cudaEventDisableTiming) != cudaSuccess) {
            (void)cudaGetLastError();
            return 0; /* what was made is released by cuda_destroy */
        }
    }
    c->stage_state = 1;
    return 1;
}

/* The source is read before the call returns: large uploads are copied chunk by chunk into
 * the pinned buffers (waiting only until the DMA out of a buffer, two chunks back, is done),
 * small ones handed to the runtime, which stages pageable memory itself. */
static void cuda_upload(pg_backend *b, void *dst, const void *src, size_t bytes) {
    cuda_backend *c = enter(b, "upload");
    if (!c || !bytes) return;
    if (bytes < STAGE_MIN || !stage_ready(c)) {
        check_cuda(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream),
                   "cudaMemcpyAsync", "upload of %zu bytes", bytes);
        return;
    }
    for (size_t off = 0, i = 0; off < bytes; off += STAGE_BYTES, i ^= 1) {
        const size_t n = bytes - off < STAGE_BYTES ? bytes - off : STAGE_BYTES;
        if (!check_cuda(c, cudaEventSynchronize(c->staged[i]), "cudaEventSynchronize",
                        "upload of %zu bytes (staging)", bytes))
            return;
        memcpy(c->stage[i], (const char *)src + off, n);
        if (!check_cuda(c, cudaMemcpyAsync((char *)dst + off, c->stage[i], n,
                                           cudaMemcpyHostToDevice, c->stream),
                        "cudaMemcpyAsync", "upload of %zu bytes (chunk at %zu)", bytes, off) ||
            !check_cuda(c, cudaEventRecord(c->staged[i], c->stream), "cudaEventRecord",
                        "upload of %zu bytes (staging)", bytes))
            return;
    }
}

/* Waits for the copy (the caller reads dst next: logits, taps, head outputs). On failure dst is
 * zeroed, so that nothing reads uninitialised memory, and sync reports the error. */
static void cuda_download(pg_backend *b, void *dst, const void *src, size_t bytes) {
    cuda_backend *c = enter(b, "download");
    if (!bytes) return;
    if (c &&
        check_cuda(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream),
                   "cudaMemcpyAsync", "download of %zu bytes", bytes) &&
        check_cuda(c, cudaStreamSynchronize(c->stream), "cudaStreamSynchronize",
                   "download of %zu bytes", bytes))
        return;
    memset(dst, 0, bytes);
}

static pg_status cuda_sync(pg_backend *b) {
    cuda_backend *c = cuda_of(b);
    /* drain the stream also after a failure, so that the next call starts clean */
    if (check_cuda(c, cudaSetDevice(c->device), "cudaSetDevice", "sync"))
        check_cuda(c, cudaStreamSynchronize(c->stream), "cudaStreamSynchronize",
                   "sync (an earlier kernel of this stream failed)");
    if (c->err == PG_OK) return PG_OK;
    pg_status s = c->err;
    c->err = PG_OK;
    return pg_set_error(s, "%s", c->msg);
}

// ---------------------------------------------------------------------------------------------
// Matmul
//
// cuBLAS is column-major: a buffer holding a row-major [R][C] matrix M is, to cuBLAS, the
// column-major C × R matrix Mᵀ with leading dimension C. We want, row-major,
//     y[n][n_out] = x[n][n_in] · Wᵀ,  W = [n_out][n_in]  (row r of W: the inputs of output r)
// i.e. column-major yᵀ (n_out × n) = W (n_out × n_in) · xᵀ (n_in × n). The buffers give cuBLAS:
//     W's buffer  = column-major Wᵀ (n_in × n_out, ld = n_in)  → transa = T yields W
//     x's buffer  = column-major xᵀ (n_in × n,     ld = n_in)  → transb = N
//     y's buffer  = column-major yᵀ (n_out × n,    ld = n_out)
// so C = op(A)·op(B) with m = n_out, n = n, k = n_in, A = W (lda = n_in, or row_bytes / element
// size), B = x (ldb = n_in), C = y (ldc = n_out); beta = 1 makes it matmul_add. A tile of weight
// rows [r0, r0 + nr) is the same call with m = nr and C = y + r0 (ldc still n_out); a chunk of
// input rows [j0, j0 + nb) has B = x + j0·n_in and C = y + j0·n_out with n = nb.

/* "matmul Q4_0 [4096 -> 11008] x 300 rows" */
#define MM_FMT "%s %s [%lld -> %lld] x %d rows"
#define MM_ARGS(op, w, n) op, pg_dtype_name((w)->type), (long long)(w)->n_in, \
    (long long)(w)->n_out, n

static void gemm_f32(cuda_backend *c, const char *op, const pg_weight *w, const float *x,
                     float *y, int n, float beta) {
    const float alpha = 1.0f;
    check_cublas(c, c->blas->sgemm(c->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)w->n_out, n,
                                (int)w->n_in, &alpha, (const float *)w->data,
                                (int)(w->row_bytes / sizeof(float)), x, (int)w->n_in, &beta, y,
                                (int)w->n_out),
                 "cublasSgemm", MM_FMT, MM_ARGS(op, w, n));
}

static void gemm_16bit(cuda_backend *c, const char *op, const pg_weight *w, const float *x,
                       float *y, int n, float beta) {
    const float alpha = 1.0f;
    const int64_t n_in = w->n_in, n_out = w->n_out;
    const int bf16 = w->type == PG_DTYPE_BF16;
    const int in_place = bf16 || w->type == PG_DTYPE_F16; /* rows cuBLAS reads as they are */
    const cudaDataType_t t16 = bf16 ? CUDA_R_16BF : CUDA_R_16F;
    const size_t rows_fit = ACT_HALVES / (size_t)n_in;     /* >= 1: checked by the caller */
    const int chunk = rows_fit < (size_t)n ? (int)rows_fit : n;
    const int64_t tile_fit = (int64_t)(WTILE_HALVES / (size_t)n_in);
    const int64_t tile = in_place || tile_fit > n_out ? n_out : tile_fit;
    for (int j0 = 0; j0 < n; j0 += chunk) {
        const int nb = n - j0 < chunk ? n - j0 : chunk;
        const float *xj = x + (size_t)j0 * (size_t)n_in;
        const size_t nx = (size_t)nb * (size_t)n_in;
        if (!check_cuda(c, bf16 ? pg_cuda_f32_to_bf16(c->act, xj, nx, c->stream)
                                : pg_cuda_f32_to_f16(c->act, xj, nx, c->stream),
                        bf16 ? "pg_cuda_f32_to_bf16" : "pg_cuda_f32_to_f16", MM_FMT,
                        MM_ARGS(op, w, n)))
            return;
        for (int64_t r0 = 0; r0 < n_out; r0 += tile) {
            const int64_t nr = n_out - r0 < tile ? n_out - r0 : tile;
            const void *a = w->data;
            int lda = (int)(w->row_bytes / sizeof(uint16_t));
            if (!in_place) {
                if (!check_cuda(c, pg_cuda_dequant_f16(c->wtile, w->data, (int)w->type, n_in,
                                                       w->row_bytes, r0, nr, c->stream),
                                "pg_cuda_dequant_f16", MM_FMT " (rows %lld..%lld)",
                                MM_ARGS(op, w, n), (long long)r0, (long long)(r0 + nr)))
                    return;
                a = c->wtile;
                lda = (int)n_in;
            }
            if (!check_cublas(c, c->blas->gemm_ex(c->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)nr, nb,
                                              (int)n_in, &alpha, a, t16, lda, c->act, t16,
                                              (int)n_in, &beta,
                                              y + (size_t)j0 * (size_t)n_out + (size_t)r0,
                                              CUDA_R_32F, (int)n_out, CUBLAS_COMPUTE_32F,
                                              CUBLAS_GEMM_DEFAULT),
                              "cublasGemmEx", MM_FMT " (rows %lld..%lld of input %d..%d)",
                              MM_ARGS(op, w, n), (long long)r0, (long long)(r0 + nr), j0,
                              j0 + nb))
                return;
        }
    }
}

static void matmul_run(pg_backend *b, const pg_weight *w, const float *x, float *y, int n,
                       int add) {
    const char *op = add ? "matmul_add" : "matmul";
    cuda_backend *c = enter(b, op);
    if (!c || n <= 0 || w->n_out <= 0) return;
    if (n <= GEMV_MAX_ROWS) {
        check_cuda(c, pg_cuda_gemv(y, w->data, (int)w->type, w->n_in, w->n_out, w->row_bytes, x,
                                   n, add, c->stream),
                   "pg_cuda_gemv", MM_FMT, MM_ARGS(op, w, n));
        return;
    }
    /* cuBLAS takes int sizes, and one activation row must fit the half scratch */
    if (w->n_in <= 0 || w->n_in > INT_MAX || w->n_out > INT_MAX ||
        (size_t)w->n_in > ACT_HALVES) {
        if (c->err == PG_OK) {
            c->err = PG_ERR_UNSUPPORTED;
            snprintf(c->msg, MSG_CAP, "cuda device %d: " MM_FMT ": shape beyond the cuBLAS "
                     "path's limits", c->device, MM_ARGS(op, w, n));
        }
        return;
    }
    const float beta = add ? 1.0f : 0.0f;
    if (w->type == PG_DTYPE_F32)
        gemm_f32(c, op, w, x, y, n, beta);
    else
        gemm_16bit(c, op, w, x, y, n, beta);
}

static void cuda_matmul(pg_backend *b, const pg_weight *w, const float *x, float *y, int n) {
    matmul_run(b, w, x, y, n, 0);
}

static void cuda_matmul_add(pg_backend *b, const pg_weight *w, const float *x, float *y, int n) {
    matmul_run(b, w, x, y, n, 1);
}

// ---------------------------------------------------------------------------------------------
// Embeddings, norms, rope, attention

/* ids are host memory (backend.h): copied on the stream into a device array first. An id
 * outside the table gives a row of zeros, as on the CPU. */
static void cuda_get_rows(pg_backend *b, const pg_weight *emb, const int32_t *ids, int n,
                          float *out) {
    cuda_backend *c = enter(b, "get_rows");
    if (!c || n <= 0) return;
    if (n > c->ids_cap) {
        void *p = c->ids;
        const int ok = regrow(c, &p, sizeof(int32_t) * (size_t)n, "get_rows ids");
        c->ids = p;
        c->ids_cap = ok ? n : p ? c->ids_cap : 0;
        if (!ok) return;
    }
    if (check_cuda(c, cudaMemcpyAsync(c->ids, ids, sizeof(int32_t) * (size_t)n,
                                      cudaMemcpyHostToDevice, c->stream),
                   "cudaMemcpyAsync", "get_rows of %d ids", n))
        check_cuda(c, pg_cuda_get_rows_bounded(out, emb->data, (int)emb->type, emb->n_in,
                                               emb->row_bytes, emb->n_out, c->ids, n, c->stream),
                   "pg_cuda_get_rows_bounded", "get_rows %s [%lld x %lld] of %d ids",
                   pg_dtype_name(emb->type), (long long)emb->n_out, (long long)emb->n_in, n);
}

static void cuda_rmsnorm(pg_backend *b, float *y, const float *x, const float *w, int n, int dim,
                         float eps) {
    cuda_backend *c = enter(b, "rmsnorm");
    if (!c || n <= 0) return;
    check_cuda(c, pg_cuda_rmsnorm(y, x, w, n, dim, eps, c->stream), "pg_cuda_rmsnorm",
               "rmsnorm of %d rows x %d", n, dim);
}

static void cuda_rope(pg_backend *b, float *x, int n, int n_head, int head_dim, int n_rot,
                      int pos0, float freq_base) {
    cuda_backend *c = enter(b, "rope");
    if (!c || n <= 0) return;
    check_cuda(c, pg_cuda_rope(x, n, n_head, head_dim, n_rot, pos0, freq_base, c->stream),
               "pg_cuda_rope", "rope of %d rows (%d heads x %d, %d rotated) at position %d", n,
               n_head, head_dim, n_rot, pos0);
}

/* The decode kernel's partials need scratch that grows with the context: it is made at the
 * first call for max(max_ctx_hint, this call's context) positions, so a session's decode steps
 * never allocate, and remade (waiting for the stream) only past that. 0 when it cannot be. */
static int ensure_part(cuda_backend *c, int n_head, int ctx, int head_dim) {
    const size_t need = pg_cuda_attention_scratch(n_head, ctx, head_dim);
    if (need <= c->part_floats) return 1;
    size_t want_ctx = c->max_ctx_hint > (size_t)ctx ? c->max_ctx_hint : (size_t)ctx;
    if (want_ctx > INT_MAX) want_ctx = (size_t)ctx;
    size_t floats = pg_cuda_attention_scratch(n_head, (int)want_ctx, head_dim);
    if (floats < need) floats = need;
    void *p = c->part;
    const int ok = regrow(c, &p, floats * sizeof(float), "attention scratch");
    if (p != c->part) c->part_gen++;
    c->part = p;
    c->part_floats = ok ? floats : p ? c->part_floats : 0;
    return ok;
}

static void cuda_attention(pg_backend *b, float *out, const float *q, const float *k,
                           const float *v, int n, int pos0, int n_head, int n_head_kv,
                           int head_dim) {
    cuda_backend *c = enter(b, "attention");
    if (!c || n <= 0 || !ensure_part(c, n_head, pos0 + n, head_dim)) return;
    check_cuda(c, pg_cuda_attention(out, q, k, v, n, pos0, n_head, n_head_kv, head_dim,
                                    c->part, c->stream),
               "pg_cuda_attention", "attention of %d queries at position %d (%d heads, %d kv "
               "heads, head size %d)", n, pos0, n_head, n_head_kv, head_dim);
}

static void cuda_silu_mul(pg_backend *b, float *gate, const float *up, size_t n) {
    cuda_backend *c = enter(b, "silu_mul");
    if (!c || !n) return;
    check_cuda(c, pg_cuda_silu_mul(gate, up, n, c->stream), "pg_cuda_silu_mul",
               "silu_mul of %zu values", n);
}

static void cuda_add(pg_backend *b, float *y, const float *x, size_t n) {
    cuda_backend *c = enter(b, "add");
    if (!c || !n) return;
    check_cuda(c, pg_cuda_add(y, x, n, c->stream), "pg_cuda_add", "add of %zu values", n);
}

static void cuda_copy(pg_backend *b, float *dst, const float *src, size_t n) {
    cuda_backend *c = enter(b, "copy");
    if (!c || !n || dst == src) return;
    check_cuda(c, cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice,
                                  c->stream),
               "cudaMemcpyAsync", "copy of %zu floats", n);
}

static void cuda_layernorm(pg_backend *b, float *y, const float *x, const float *w,
                           const float *bias, int n, int dim, float eps) {
    cuda_backend *c = enter(b, "layernorm");
    if (!c || n <= 0) return;
    check_cuda(c, pg_cuda_layernorm(y, x, w, bias, n, dim, eps, c->stream), "pg_cuda_layernorm",
               "layernorm of %d rows x %d", n, dim);
}

static void cuda_gelu(pg_backend *b, float *x, size_t n) {
    cuda_backend *c = enter(b, "gelu");
    if (!c || !n) return;
    check_cuda(c, pg_cuda_gelu(x, n, c->stream), "pg_cuda_gelu", "gelu of %zu values", n);
}

static void cuda_add_bias(pg_backend *b, float *y, const float *bias, int n, int dim) {
    cuda_backend *c = enter(b, "add_bias");
    if (!c || n <= 0) return;
    check_cuda(c, pg_cuda_add_bias(y, bias, n, dim, c->stream), "pg_cuda_add_bias",
               "add_bias of %d rows x %d", n, dim);
}

static void cuda_attention_full(pg_backend *b, float *out, const float *q, const float *k,
                                const float *v, int n_q, int n_kv, size_t q_stride,
                                size_t kv_stride, int n_batch, size_t batch_stride, int n_head,
                                int head_dim, int causal) {
    cuda_backend *c = enter(b, "attention_full");
    if (!c || n_q <= 0 || n_batch <= 0) return;
    check_cuda(c, pg_cuda_attention_full(out, q, k, v, n_q, n_kv, q_stride, kv_stride, n_batch,
                                         batch_stride, n_head, head_dim, causal, c->stream),
               "pg_cuda_attention_full", "attention_full of %d x %d queries over %d keys (%d "
               "heads x %d%s)", n_batch, n_q, n_kv, n_head, head_dim, causal ? ", causal" : "");
}

// ---------------------------------------------------------------------------------------------
// ImageBind: patch im2col, the encoders' final vector, llama_proj

static void cuda_im2col(pg_backend *b, float *out, const float *in, int n_items,
                        const pg_conv_geom *g) {
    cuda_backend *c = enter(b, "im2col");
    if (!c || n_items <= 0) return;
    check_cuda(c, pg_cuda_im2col(out, in, n_items, g->channels, g->frames, g->height, g->width,
                                 g->k_t, g->k_h, g->k_w, g->s_h, g->s_w, c->stream),
               "pg_cuda_im2col", "im2col of %d inputs [%d][%d][%d][%d], kernel %dx%dx%d", n_items,
               g->channels, g->frames, g->height, g->width, g->k_t, g->k_h, g->k_w);
}

static void cuda_l2norm_sum(pg_backend *b, float *out, const float *x, int n_rows, int dim,
                            float scale, float weight, int accumulate) {
    cuda_backend *c = enter(b, "l2norm_sum");
    if (!c || dim <= 0) return;
    check_cuda(c, pg_cuda_l2norm_sum(out, x, n_rows, dim, scale, weight, accumulate, c->stream),
               "pg_cuda_l2norm_sum", "l2norm_sum of %d rows x %d", n_rows, dim);
}

static void cuda_project(pg_backend *b, const pg_weight *w, const float *bias, const float *u,
                         float *y, int accumulate) {
    cuda_backend *c = enter(b, "project");
    if (!c || w->n_out <= 0) return;
    check_cuda(c, pg_cuda_project(y, w->data, (int)w->type, w->n_in, w->n_out, w->row_bytes,
                                  bias, u, accumulate, c->stream),
               "pg_cuda_project", "project %s [%lld -> %lld]", pg_dtype_name(w->type),
               (long long)w->n_in, (long long)w->n_out);
}

// ---------------------------------------------------------------------------------------------
// The decode step with its token and position in device memory, and its graph

static void cuda_get_rows_at(pg_backend *b, const pg_weight *emb, const int32_t *ids, int n,
                             float *out) {
    cuda_backend *c = enter(b, "get_rows_at");
    if (!c || n <= 0) return;
    check_cuda(c, pg_cuda_get_rows_bounded(out, emb->data, (int)emb->type, emb->n_in,
                                           emb->row_bytes, emb->n_out, ids, n, c->stream),
               "pg_cuda_get_rows_bounded", "get_rows_at %s [%lld x %lld] of %d device ids",
               pg_dtype_name(emb->type), (long long)emb->n_out, (long long)emb->n_in, n);
}

static void cuda_rope_at(pg_backend *b, float *x, int n_head, int head_dim, int n_rot,
                         const int32_t *pos, float freq_base) {
    cuda_backend *c = enter(b, "rope_at");
    if (!c) return;
    check_cuda(c, pg_cuda_rope_at(x, 1, n_head, head_dim, n_rot, pos, freq_base, c->stream),
               "pg_cuda_rope_at", "rope_at of one row (%d heads x %d, %d rotated)", n_head,
               head_dim, n_rot);
}

static void cuda_store_row_at(pg_backend *b, float *cache, const float *row, size_t row_floats,
                              const int32_t *pos, int n_rows) {
    cuda_backend *c = enter(b, "store_row_at");
    if (!c || !row_floats || n_rows <= 0) return;
    check_cuda(c, pg_cuda_store_row_at(cache, row, row_floats, pos, n_rows, c->stream),
               "pg_cuda_store_row_at", "store_row_at of %zu floats into %d rows", row_floats,
               n_rows);
}

/* The scratch is sized for all n_ctx positions (the grid covers them), so that one recorded
 * step serves every position. */
static void cuda_attention_at(pg_backend *b, float *out, const float *q, const float *k,
                              const float *v, const int32_t *pos, int n_ctx, int n_head,
                              int n_head_kv, int head_dim) {
    cuda_backend *c = enter(b, "attention_at");
    if (!c || n_ctx <= 0 || !ensure_part(c, n_head, n_ctx, head_dim)) return;
    check_cuda(c, pg_cuda_attention_decode_at(out, q, k, v, pos, n_ctx, n_head, n_head_kv,
                                              head_dim, c->part, c->stream),
               "pg_cuda_attention_decode_at", "attention_at over %d positions (%d heads, %d kv "
               "heads, head size %d)", n_ctx, n_head, n_head_kv, head_dim);
}

/* A recorded decode step: the executable graph and the scratch generation it names. */
typedef struct cuda_graph {
    cudaGraphExec_t exec;
    unsigned part_gen;
} cuda_graph;

/* Records body's ops on the stream (thread-local capture mode: no other thread's CUDA calls are
 * affected). Any op failure, or an op that would have to wait or allocate, fails the capture;
 * the backend is left with no pending error and an idle stream. */
static pg_status cuda_graph_capture(pg_backend *b, void (*body)(void *ctx), void *ctx,
                                    void **out) {
    cuda_backend *c = cuda_of(b);
    *out = NULL;
    pg_status s = cuda_sync(b); /* start from a drained stream and no pending error */
    if (s != PG_OK) return s;
    cuda_graph *g = calloc(1, sizeof *g);
    if (!g) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "cuda graph: cannot allocate");
    cudaError_t e = cudaSetDevice(c->device);
    if (e == cudaSuccess) e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        free(g);
        return pg_set_error(PG_ERR_DEVICE, "cuda device %d: cudaStreamBeginCapture: %s",
                            c->device, cudaGetErrorString(e));
    }
    const unsigned gen = c->part_gen;
    c->capturing = 1;
    body(ctx);
    c->capturing = 0;
    cudaGraph_t graph = NULL;
    e = cudaStreamEndCapture(c->stream, &graph);
    if (e == cudaSuccess && c->err == PG_OK) e = cudaGraphInstantiate(&g->exec, graph, 0);
    if (graph) (void)cudaGraphDestroy(graph);
    if (e != cudaSuccess || c->err != PG_OK || c->part_gen != gen) {
        char why[MSG_CAP];
        snprintf(why, sizeof why, "%s", c->err != PG_OK ? c->msg
                                        : e != cudaSuccess ? cudaGetErrorString(e)
                                                           : "the attention scratch moved");
        (void)cudaGetLastError();
        c->err = PG_OK; /* the failure was the capture's: nothing ran */
        if (g->exec) (void)cudaGraphExecDestroy(g->exec);
        free(g);
        return pg_set_error(PG_ERR_DEVICE, "cuda device %d: capturing a graph: %s", c->device,
                            why);
    }
    g->part_gen = gen;
    *out = g;
    return PG_OK;
}

static pg_status cuda_graph_launch(pg_backend *b, void *graph) {
    cuda_graph *g = graph;
    cuda_backend *c = cuda_of(b);
    if (g && g->part_gen != c->part_gen)
        return pg_set_error(PG_ERR_DEVICE, "cuda device %d: the graph names an attention "
                            "scratch that was replaced: capture it again", c->device);
    if (!(c = enter(b, "graph_launch")) || !g) return PG_OK;
    check_cuda(c, cudaGraphLaunch(g->exec, c->stream), "cudaGraphLaunch", "a recorded graph");
    return PG_OK;
}

static void cuda_graph_free(pg_backend *b, void *graph) {
    cuda_graph *g = graph;
    if (!g) return;
    cuda_backend *c = cuda_of(b);
    if (cudaSetDevice(c->device) == cudaSuccess) { /* a launch may still run on the stream */
        (void)cudaStreamSynchronize(c->stream);
        (void)cudaGraphExecDestroy(g->exec);
    }
    (void)cudaGetLastError();
    free(g);
}

// ---------------------------------------------------------------------------------------------
// The backend

static void cuda_destroy(pg_backend *b) {
    cuda_backend *c = cuda_of(b);
    /* nothing can be reported from here: errors are cleared and the rest is still released */
    if (cudaSetDevice(c->device) == cudaSuccess && c->stream)
        (void)cudaStreamSynchronize(c->stream);
    if (c->cublas) (void)c->blas->destroy(c->cublas);
    void *bufs[] = {c->workspace, c->act, c->wtile, c->ids, c->part};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) (void)cudaFree(bufs[i]);
    for (int i = 0; i < 2; i++) { /* the stream is drained: no copy reads them any more */
        if (c->stage[i]) (void)cudaFreeHost(c->stage[i]);
        if (c->staged[i]) (void)cudaEventDestroy(c->staged[i]);
    }
    if (c->stream) (void)cudaStreamDestroy(c->stream);
    (void)cudaGetLastError();
    free(c);
}

static const pg_backend_ops cuda_ops = {
    .name = "cuda",
    .destroy = cuda_destroy,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .sync = cuda_sync,
    .matmul = cuda_matmul,
    .matmul_add = cuda_matmul_add,
    .get_rows = cuda_get_rows,
    .rmsnorm = cuda_rmsnorm,
    .rope = cuda_rope,
    .attention = cuda_attention,
    .silu_mul = cuda_silu_mul,
    .add = cuda_add,
    .copy = cuda_copy,
    .layernorm = cuda_layernorm,
    .gelu = cuda_gelu,
    .add_bias = cuda_add_bias,
    .attention_full = cuda_attention_full,
    .im2col = cuda_im2col,
    .l2norm_sum = cuda_l2norm_sum,
    .project = cuda_project,
    .get_rows_at = cuda_get_rows_at,
    .rope_at = cuda_rope_at,
    .store_row_at = cuda_store_row_at,
    .attention_at = cuda_attention_at,
    .graph_capture = cuda_graph_capture,
    .graph_launch = cuda_graph_launch,
    .graph_free = cuda_graph_free,
};

pg_status pg_cuda_device_count(int *n) {
    if (!n) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_cuda_device_count: n is NULL");
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) { /* no driver, no device, old driver */
        (void)cudaGetLastError();
        count = 0;
    }
    *n = count;
    return PG_OK;
}

const char *pg_cuda_no_device_reason(void) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    (void)cudaGetLastError();
    if (e != cudaSuccess) return cudaGetErrorString(e);
    return count ? "devices are present" : "the driver reports no device";
}

/* A creation failure: the message, then the half-made backend released. */
static pg_status new_failed(cuda_backend *c, pg_status s) {
    pg_backend_free(&c->base);
    return s;
}

pg_status pg_backend_cuda_new(int device, size_t max_ctx_hint, pg_backend **out) {
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_backend_cuda_new: out is NULL");
    *out = NULL;
    int count = 0;
    pg_cuda_device_count(&count);
    if (count == 0)
        return pg_set_error(PG_ERR_DEVICE, "cuda backend: no CUDA device (%s)",
                            pg_cuda_no_device_reason());
    if (device < 0 || device >= count)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "cuda backend: device %d out of range "
                            "[0, %d)", device, count);
    cuda_backend *c = calloc(1, sizeof *c);
    if (!c)
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "cuda backend: cannot allocate %zu bytes",
                            sizeof *c);
    c->base.ops = &cuda_ops;
    c->base.impl = c;
    c->device = device;
    c->max_ctx_hint = max_ctx_hint;

    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        c->stream = NULL;
        return new_failed(c, pg_set_error(status_of(e), "cuda device %d: cannot create a "
                                          "stream: %s", device, cudaGetErrorString(e)));
    }
    pg_status s = pg_cublas_load(&c->blas);
    if (s != PG_OK) return new_failed(c, pg_error_prefix(s, "cuda device %d", device));
    cublasStatus_t cs = c->blas->create(&c->cublas);
    if (cs != CUBLAS_STATUS_SUCCESS) {
        c->cublas = NULL;
        return new_failed(c, pg_set_error(cs == CUBLAS_STATUS_ALLOC_FAILED ? PG_ERR_OUT_OF_MEMORY
                                                                          : PG_ERR_DEVICE,
                                          "cuda device %d: cublasCreate: %s", device,
                                          c->blas->status_string(cs)));
    }
    struct { size_t bytes; const char *what; } bufs[] = {
        {CUBLAS_WORKSPACE_BYTES, "cuBLAS workspace"},
        {ACT_HALVES * sizeof(uint16_t), "GEMM activation scratch"},
        {WTILE_HALVES * sizeof(uint16_t), "GEMM weight scratch"},
        {IDS_INITIAL * sizeof(int32_t), "get_rows ids"},
    };
    void *p[4] = {NULL, NULL, NULL, NULL};
    for (size_t i = 0; i < 4; i++) {
        e = cudaMalloc(&p[i], bufs[i].bytes);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            for (size_t j = 0; j < i; j++) (void)cudaFree(p[j]);
            return new_failed(c, pg_set_error(status_of(e), "cuda device %d: cannot allocate "
                                              "the %s (%zu bytes): %s", device, bufs[i].what,
                                              bufs[i].bytes, cudaGetErrorString(e)));
        }
    }
    c->workspace = p[0];
    c->act = p[1];
    c->wtile = p[2];
    c->ids = p[3];
    c->ids_cap = IDS_INITIAL;
    /* cublasSetStream resets the workspace to cuBLAS's own pool: set ours after it */
    if ((cs = c->blas->set_stream(c->cublas, c->stream)) != CUBLAS_STATUS_SUCCESS ||
        (cs = c->blas->set_workspace(c->cublas, c->workspace, CUBLAS_WORKSPACE_BYTES)) !=
            CUBLAS_STATUS_SUCCESS)
        return new_failed(c, pg_set_error(PG_ERR_DEVICE, "cuda device %d: binding cuBLAS to the "
                                          "stream: %s", device, c->blas->status_string(cs)));
    *out = &c->base;
    return PG_OK;
}
