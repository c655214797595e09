/*
 * dequant.cu — weight rows to half precision for the prefill path, which hands them to a cuBLAS
 * F16 GEMM in tiles: dst[(r − r0)·n_in + k] = half(W[r][k]) for r0 ≤ r < r0 + n_rows, k < n_in.
 *
 * F16 rows are copied; F32 and BF16 are rounded to nearest even (values beyond ±65504 become
 * ±inf: BF16 weights that large would need cuBLAS's BF16 path instead); Q8_0 and Q4_0 expand
 * to q·d and (q − 8)·d in float exactly as the CPU does, then round to half (q·d carries up to
 * 19 significant bits, so this is where the prefill path's rounding happens).
 *
 * Launch: grid (ceil(n_in / 256), min(n_rows, 65535)), 256 threads; thread c of block (bx, by)
 * writes column bx·256 + c of tile rows by, by + gridDim.y, ... (coalesced stores).
 */
#include "common.cuh"

#define DQ_THREADS 256

static __global__ void dequant_f16_kernel(uint16_t *__restrict__ dst,
                                          const uint8_t *__restrict__ w, int type, int64_t n_in,
                                          size_t row_bytes, int64_t r0, int64_t n_rows) {
    const int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= n_in) return;
    for (int64_t i = blockIdx.y; i < n_rows; i += gridDim.y) {
        const uint8_t *row = w + (size_t)(r0 + i) * row_bytes;
        const uint16_t h = type == PGK_F16
                               ? (uint16_t)ld_u16(row + 2 * k)
                               : __half_as_ushort(__float2half_rn(pgk_elem(type, row, k)));
        dst[(size_t)i * (size_t)n_in + (size_t)k] = h;
    }
}

extern "C" int pg_cuda_dequant_f16(uint16_t *dst, const void *w, int type, int64_t n_in,
                                   size_t row_bytes, int64_t r0, int64_t n_rows, void *stream) {
    if (n_rows <= 0 || n_in <= 0) return 0;
    if (!dst || !w || r0 < 0 || !pgk_type_ok(type)) return PGK_EINVAL;
    const size_t need = pgk_row_bytes_min(type, n_in);
    if (need == 0 || row_bytes < need || !pgk_rows_aligned(type, w, row_bytes))
        return PGK_EINVAL;
    const int64_t gx = (n_in + DQ_THREADS - 1) / DQ_THREADS;
    if (gx > 0x7fffffff) return PGK_EINVAL;
    const dim3 grid((unsigned)gx, (unsigned)(n_rows < 65535 ? n_rows : 65535));
    dequant_f16_kernel<<<grid, DQ_THREADS, 0, pgk_stream(stream)>>>(
        dst, (const uint8_t *)w, type, n_in, row_bytes, r0, n_rows);
    return (int)cudaGetLastError();
}
