/*
 * cuda_backend.h — the CUDA implementation of backend.h (host side: device memory, one stream
 * and one cuBLAS handle per backend) and the upload of a loaded model's weights to a device.
 *
 * Compiled only when the build has CUDA (PG_HAVE_CUDA); callers test that macro. Everything
 * here is plain C: the kernels are reached through kernels/kernels.h.
 */
#ifndef PG_CUDA_BACKEND_H
#define PG_CUDA_BACKEND_H

#include <stddef.h>

#include "backend/backend.h"

/* The number of CUDA devices usable by this process. No device, no driver or a driver too old
 * for this build's runtime all give *n = 0 and PG_OK: the caller falls back to the CPU.
 * PG_ERR_INVALID_ARGUMENT (n NULL). */
pg_status pg_cuda_device_count(int *n);

/* Why pg_cuda_device_count finds nothing, for messages: the runtime's text ("CUDA driver version
 * is insufficient for CUDA runtime version", "no CUDA-capable device is detected"). Static. */
const char *pg_cuda_no_device_reason(void);

/* A CUDA backend on device ordinal `device`, with its own stream and cuBLAS handle: everything
 * it runs is ordered on that stream, so one backend is used by one thread at a time (any
 * thread: each call makes `device` current on the calling thread).
 * max_ctx_hint: the longest KV context its attention will see (a session's n_ctx; 0 when
 * unknown): the decode attention's scratch is sized for it at the first attention call and only
 * regrows (a synchronising reallocation) past it. alloc returns device memory; upload/download
 * copy through the stream (download waits for it); ops queue kernels and return at once, and
 * the first failure of any of them is kept and reported by sync as PG_ERR_DEVICE (or
 * PG_ERR_OUT_OF_MEMORY) with the call, the op and its sizes. After a failure, later ops are
 * skipped until sync has reported it.
 * Errors: PG_ERR_INVALID_ARGUMENT (out NULL, device out of range), PG_ERR_DEVICE (no device, the
 * stream or cuBLAS handle cannot be made), PG_ERR_OUT_OF_MEMORY (the GEMM scratch). */
pg_status pg_backend_cuda_new(int device, size_t max_ctx_hint, pg_backend **out);

/* ---- weights on the device (cuda_weights.c) ---- */

typedef struct llama_model llama_model;
typedef struct imagebind_model imagebind_model;

/* Copies every matrix and norm vector of m into one device allocation on `device` and points
 * m's weights there (LoRA must be merged before: lora.c works on host rows). The merged LoRA
 * copies are freed once uploaded: the device holds the only copy. m->device_arena records the
 * allocation; llama_model_free releases it. On failure m is unchanged.
 * Errors: PG_ERR_OUT_OF_MEMORY (naming the bytes needed and the device's free memory),
 * PG_ERR_DEVICE (a copy failed), PG_ERR_INVALID_ARGUMENT (already on a device). */
pg_status llama_model_to_cuda(llama_model *m, int device);

/* The same for the encoders: every tower's matrices and vectors, and llama_proj's device copy
 * (proj_w, proj_b: the chat's modality slot is projected on the device); llama_proj's host
 * mapping stays for pg_project. Errors as llama_model_to_cuda. */
pg_status imagebind_model_to_cuda(imagebind_model *m, int device);

#endif
