/*
 * kernels.h — C entry points of the hand-written CUDA kernels (the .cu files here), called by the
 * host side of the CUDA backend (lib/backend/cuda, plain C). Each launches on `stream` (a
 * cudaStream_t) and returns the launch's cudaError_t as int (0 = ok); nothing synchronises.
 * Pointers are device memory. Activations are float32 row-major; weights are ggml-typed rows
 * (type = pg_dtype: 0 F32, 1 F16, 30 BF16, 8 Q8_0, 2 Q4_0 — lib/gguf/dtype.h), row r of a weight
 * holding the n_in inputs of output r, row_bytes apart. Every kernel's semantics equal the CPU
 * op of the same name in lib/backend/backend.h, which is its oracle (tests/gpu).
 * Arguments a kernel cannot take (NULL pointers, an unknown type, row_bytes too small for n_in,
 * rows not 2-byte aligned (4 for F32), n > 8 for gemv, head_dim > 256, n_head not a multiple of
 * n_head_kv, ...) return cudaErrorInvalidValue before any launch; empty work returns 0.
 * The launch shapes and the indexing of every kernel are in the header comment of its .cu file.
 */
#ifndef PG_KERNELS_H
#define PG_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- norms and elementwise (norms.cu, elementwise.cu) ---- */
/* y[r][:] = x[r][:] / sqrt(mean(x[r]²) + eps) * w, for r < n_rows; y may equal x. */
int pg_cuda_rmsnorm(float *y, const float *x, const float *w, int n_rows, int dim, float eps,
                    void *stream);
/* y[r][:] = (x[r][:] − mean) / sqrt(var + eps) * w + b (biased variance); y may equal x. */
int pg_cuda_layernorm(float *y, const float *x, const float *w, const float *b, int n_rows,
                      int dim, float eps, void *stream);
/* gate[i] = silu(gate[i]) * up[i]. */
int pg_cuda_silu_mul(float *gate, const float *up, size_t n, void *stream);
/* x[i] = 0.5·x·(1 + erf(x/√2)), in place. */
int pg_cuda_gelu(float *x, size_t n, void *stream);
/* y[i] += x[i]. */
int pg_cuda_add(float *y, const float *x, size_t n, void *stream);
/* y[r][:] += bias[:] for r < n_rows. */
int pg_cuda_add_bias(float *y, const float *bias, int n_rows, int dim, void *stream);
/* Rotates, in place, the first n_rot dims of each head of x[n][n_head*head_dim], adjacent pairs
 * (x[2i], x[2i+1]) by (pos0 + t)·freq_base^(−2i/n_rot) for row t (ggml's convention). */
int pg_cuda_rope(float *x, int n, int n_head, int head_dim, int n_rot, int pos0, float freq_base,
                 void *stream);
/* out[i][:] = row ids[i] (host-visible ids copied by the caller to device memory) of the
 * embedding table emb (type, n_in columns, row_bytes), as float. A negative id gives a row of
 * zeros; this form cannot see the table's size, so ids must be < its rows (see below). */
int pg_cuda_get_rows(float *out, const void *emb, int type, int64_t n_in, size_t row_bytes,
                     const int32_t *ids, int n, void *stream);
/* Added: pg_cuda_get_rows with the table's row count n_rows, so that every id outside
 * [0, n_rows) gives a row of zeros, exactly the CPU op's behaviour. Prefer this one. */
int pg_cuda_get_rows_bounded(float *out, const void *emb, int type, int64_t n_in,
                             size_t row_bytes, int64_t n_rows, const int32_t *ids, int n,
                             void *stream);

/* ---- matmuls (gemv.cu, dequant.cu) ---- */
/* Batch-1 (n ≤ 8) matmul: y[j][r] (+)= dot(row r of W, x[j]) for r < n_out, j < n; add nonzero
 * fuses the residual add (y +=). Weights are read once, dequantised in registers; fp32
 * accumulation. */
int pg_cuda_gemv(float *y, const void *w, int type, int64_t n_in, int64_t n_out, size_t row_bytes,
                 const float *x, int n, int add, void *stream);
/* Converts rows [r0, r0 + n_rows) of W (any type) to half precision (dst: n_rows × n_in, as
 * __half bits) — the prefill path feeds these tiles to cuBLAS. */
int pg_cuda_dequant_f16(uint16_t *dst, const void *w, int type, int64_t n_in, size_t row_bytes,
                        int64_t r0, int64_t n_rows, void *stream);
/* float32 → half (n values), for the activations of a cuBLAS F16 GEMM. */
int pg_cuda_f32_to_f16(uint16_t *dst, const float *src, size_t n, void *stream);
/* Added: float32 → bfloat16 (n values, round to nearest even as ggml), for a cuBLAS BF16 GEMM
 * over BF16 weights (whose range half cannot hold). */
int pg_cuda_f32_to_bf16(uint16_t *dst, const float *src, size_t n, void *stream);
/* W += scale·B·A on the device, in float32, re-encoded in W's type (F32, F16, BF16; quantized
 * W: Q8_0/Q4_0 re-quantized with ggml's reference rounding): A is r × n_in, B is n_out × r, both
 * float32 device arrays. */
int pg_cuda_lora_merge(void *w, int type, int64_t n_in, int64_t n_out, size_t row_bytes,
                       const float *a, const float *b, int r, float scale, void *stream);
/* The unmerged LoRA path: y (+)= x·Wᵀ computed elsewhere, then y += scale·(x·Aᵀ)·Bᵀ; tmp holds
 * n × r floats. */
int pg_cuda_lora_apply(float *y, const float *x, const float *a, const float *b, int n,
                       int64_t n_in, int64_t n_out, int r, float scale, float *tmp,
                       void *stream);

/* ---- attention (attention.cu) ---- */
/* Causal attention of n queries at positions pos0..pos0+n−1 over a KV cache holding rows
 * 0..pos0+n−1: q, out [n][n_head·head_dim]; k, v [n_ctx][n_head_kv·head_dim] (one layer).
 * scale 1/√head_dim, online softmax in fp32. n == 1 uses the split-K decode kernel (partial
 * softmaxes over chunks of the context in parallel, merged by a second kernel, using part as
 * scratch: n_head × (pos0 + 1 + 63) / 64 × (head_dim + 2) floats — pg_cuda_attention_scratch);
 * n > 1 the flash prefill kernel. head_dim ≤ 256. */
int pg_cuda_attention(float *out, const float *q, const float *k, const float *v, int n, int pos0,
                      int n_head, int n_head_kv, int head_dim, float *part, void *stream);
/* Floats of scratch pg_cuda_attention needs for a context of n_ctx positions. */
size_t pg_cuda_attention_scratch(int n_head, int n_ctx, int head_dim);
/* Bidirectional (or causal when causal != 0) attention of n_q queries over n_kv keys/values with
 * row strides (in floats) q_stride and kv_stride, for each of n_batch independent sequences:
 * sequence s reads q, k, v at + s·batch_stride floats and writes out + s·n_q·n_head·head_dim.
 * The ImageBind op (backend.h attention_full); all clips of a trunk pass in one launch. */
int pg_cuda_attention_full(float *out, const float *q, const float *k, const float *v, int n_q,
                           int n_kv, size_t q_stride, size_t kv_stride, int n_batch,
                           size_t batch_stride, int n_head, int head_dim, int causal,
                           void *stream);

/* ---- ImageBind encoders and llama_proj (im2col.cu, encoder_head.cu, llama_proj.cu) ---- */
/* Patch embedding's im2col (backend.h im2col) for a Conv whose kernel equals its stride in
 * time: n_items inputs [channels][frames][height][width] become, each, gh·gw rows (token
 * (ph, pw) row-major, gh = (height − k_h)/s_h + 1, gw likewise) of channels·k_t·k_h·k_w
 * features in (c, t, i, j) order; tap t reads frame min(t, frames − 1) (PadIm2Video's repeat of
 * an image). */
int pg_cuda_im2col(float *out, const float *in, int n_items, int channels, int frames,
                   int height, int width, int k_t, int k_h, int k_w, int s_h, int s_w,
                   void *stream);
/* The encoder's postprocessing and clip average (backend.h l2norm_sum): out[d] = (accumulate ?
 * out[d] : 0) + Σ_c weight · (scale · x[c][d] / max(‖x[c]‖₂, 1e-12)), c = 0 .. n_rows − 1 in
 * order, ‖·‖ summed in double; the product by scale is skipped when scale is 1. */
int pg_cuda_l2norm_sum(float *out, const float *x, int n_rows, int dim, float scale,
                       float weight, int accumulate, void *stream);
/* llama_proj (backend.h project): y[r] = (accumulate ? y[r] : 0) + (float)(Σ_k W[r][k]·u[k] +
 * bias[r]) for r < n_out, the dot and the bias added in double (imagebind_project's rounding);
 * W any type, row_bytes apart; bias may be NULL. */
int pg_cuda_project(float *y, const void *w, int type, int64_t n_in, int64_t n_out,
                    size_t row_bytes, const float *bias, const float *u, int accumulate,
                    void *stream);

/* ---- decode with the position in device memory (additions, for CUDA-graph replay) ----
 * Same results as the calls above for one decode step, but the position is read at run time
 * from *pos (a device int32 the host updates before each replay, e.g. by a 4-byte copy on the
 * stream), and no launch shape depends on it, so a decode step captured once into a CUDA graph
 * replays at every position unchanged. A position outside the stated range makes the kernel
 * do nothing (no write). */
/* pg_cuda_rope with pos0 = *pos0. */
int pg_cuda_rope_at(float *x, int n, int n_head, int head_dim, int n_rot, const int32_t *pos0,
                    float freq_base, void *stream);
/* pg_cuda_attention for n = 1 at position *pos, 0 ≤ *pos < n_ctx: the query attends cache rows
 * 0..*pos. part: pg_cuda_attention_scratch(n_head, n_ctx, head_dim) floats (may be NULL only
 * when n_ctx ≤ 64). The grid covers n_ctx; blocks past the live context exit at once. */
int pg_cuda_attention_decode_at(float *out, const float *q, const float *k, const float *v,
                                const int32_t *pos, int n_ctx, int n_head, int n_head_kv,
                                int head_dim, float *part, void *stream);
/* dst[*pos·row_floats + i] = src[i] for i < row_floats, 0 ≤ *pos < n_rows (the KV-cache store
 * of one step's key or value row). */
int pg_cuda_store_row_at(float *dst, const float *src, size_t row_floats, const int32_t *pos,
                         int n_rows, void *stream);

#ifdef __cplusplus
}
#endif

#endif
