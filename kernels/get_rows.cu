/*
 * get_rows.cu — embedding lookup: out[i][:] = row ids[i] of the table emb (any of the five
 * types), expanded to float32. Token embeddings go through here; rows the caller injects
 * (pg_session_eval_embeddings, the projected media) are float already and are plain copies on
 * the host side.
 *
 * An id outside [0, n_rows) yields a row of zeros, as the CPU op does, never a read outside the
 * table. pg_cuda_get_rows (kernels.h's first form) does not know n_rows, so it can only catch
 * negative ids; pg_cuda_get_rows_bounded takes n_rows and matches the CPU op fully.
 *
 * The expansion is the CPU's dequantization exactly (half and bfloat16 widen exactly, Q8_0 is
 * q·d and Q4_0 (q − 8)·d, products that are exact in float), so the rows are bit-identical.
 *
 * Launch: grid (ceil(n_in / 256), min(n, 65535)), 256 threads; thread c of block (bx, by)
 * writes column bx·256 + c of rows by, by + gridDim.y, ... (coalesced stores).
 *
 * Host reference: for i < n, k < n_in: out[i·n_in + k] = elem(emb + ids[i]·row_bytes, k).
 */
#include "common.cuh"

#define GR_THREADS 256

static __global__ void get_rows_kernel(float *__restrict__ out, const uint8_t *__restrict__ emb,
                                       int type, int64_t n_in, size_t row_bytes, int64_t n_rows,
                                       const int32_t *__restrict__ ids, int n) {
    const int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= n_in) return;
    for (int i = blockIdx.y; i < n; i += gridDim.y) {
        const int32_t id = __ldg(ids + i);
        float v = 0.0f;
        if (id >= 0 && (int64_t)id < n_rows) v = pgk_elem(type, emb + (size_t)id * row_bytes, k);
        out[(size_t)i * (size_t)n_in + (size_t)k] = v;
    }
}

extern "C" int pg_cuda_get_rows_bounded(float *out, const void *emb, int type, int64_t n_in,
                                        size_t row_bytes, int64_t n_rows, const int32_t *ids,
                                        int n, void *stream) {
    if (n <= 0 || n_in <= 0) return 0;
    if (!out || !emb || !ids || !pgk_type_ok(type)) return PGK_EINVAL;
    const size_t need = pgk_row_bytes_min(type, n_in);
    if (need == 0 || row_bytes < need || !pgk_rows_aligned(type, emb, row_bytes))
        return PGK_EINVAL;
    const int64_t gx = (n_in + GR_THREADS - 1) / GR_THREADS;
    if (gx > 0x7fffffff) return PGK_EINVAL;
    const dim3 grid((unsigned)gx, (unsigned)(n < 65535 ? n : 65535));
    get_rows_kernel<<<grid, GR_THREADS, 0, pgk_stream(stream)>>>(
        out, (const uint8_t *)emb, type, n_in, row_bytes, n_rows, ids, n);
    return (int)cudaGetLastError();
}

extern "C" int pg_cuda_get_rows(float *out, const void *emb, int type, int64_t n_in,
                                size_t row_bytes, const int32_t *ids, int n, void *stream) {
    return pg_cuda_get_rows_bounded(out, emb, type, n_in, row_bytes, INT64_MAX, ids, n, stream);
}
