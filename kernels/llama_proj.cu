/*
 * llama_proj.cu — PandaGPT's projection of an ImageBind vector into the LLM's embedding space
 * (spec §1: Linear(1024 → H) with bias), written straight into the row the LLM reads as its
 * modality slot, so that a chat turn's media never return to the host.
 *
 *   y[r] = (accumulate ? y[r] : 0) + (float)(Σ_k W[r][k]·u[k] + bias[r])
 *
 * accumulate sums the projections of several media into one row (each with its own bias, as
 * PandaGPT does). The dot runs in double, as imagebind_project does on the host, so both paths
 * give the same row to the last bit but for the order of a double sum (1024 terms: far below
 * float's rounding). One launch per medium; the work (H × 1024 MACs) is a few microseconds.
 *
 * Launch: one warp per output row (8 warps per block), lanes striding over k; any weight type
 * through pgk_elem (llama_proj is F32 or F16 in converted files).
 */
#include "common.cuh"

#define PROJ_THREADS 256
#define PROJ_ROWS (PROJ_THREADS / 32)

static __global__ void project_kernel(float *__restrict__ y, const uint8_t *__restrict__ w,
                                      int type, int64_t n_in, int64_t n_out, size_t row_bytes,
                                      const float *__restrict__ bias,
                                      const float *__restrict__ u, int accumulate) {
    const int lane = threadIdx.x & 31;
    const int64_t r = (int64_t)blockIdx.x * PROJ_ROWS + (threadIdx.x >> 5);
    if (r >= n_out) return;
    const uint8_t *row = w + (size_t)r * row_bytes;
    double s = 0.0;
    for (int64_t k = lane; k < n_in; k += 32) s += (double)pgk_elem(type, row, k) * (double)u[k];
    s = warp_sum_d(s);
    if (lane != 0) return;
    const float v = (float)(s + (bias ? (double)bias[r] : 0.0));
    y[r] = accumulate ? y[r] + v : v;
}

extern "C" int pg_cuda_project(float *y, const void *w, int type, int64_t n_in, int64_t n_out,
                               size_t row_bytes, const float *bias, const float *u,
                               int accumulate, void *stream) {
    if (n_out <= 0) return 0;
    if (!y || !w || !u || n_in <= 0 || !pgk_type_ok(type) ||
        pgk_row_bytes_min(type, n_in) == 0 || row_bytes < pgk_row_bytes_min(type, n_in) ||
        !pgk_rows_aligned(type, w, row_bytes) || (n_out + PROJ_ROWS - 1) / PROJ_ROWS > 0x7fffffff)
        return PGK_EINVAL;
    const unsigned blocks = (unsigned)((n_out + PROJ_ROWS - 1) / PROJ_ROWS);
    project_kernel<<<blocks, PROJ_THREADS, 0, pgk_stream(stream)>>>(
        y, (const uint8_t *)w, type, n_in, n_out, row_bytes, bias, u, accumulate != 0);
    return (int)cudaGetLastError();
}
