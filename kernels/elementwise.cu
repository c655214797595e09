/*
 * elementwise.cu — the pointwise ops: silu_mul (the FFN gate), gelu (ImageBind's MLP), add (the
 * residual), add_bias (encoder projections) and the float -> half / bfloat16 conversions that
 * feed cuBLAS.
 *
 *   silu_mul: gate[i] = gate[i] / (1 + expf(−gate[i])) · up[i]
 *   gelu:     x[i] = (x[i] · 0.5) · (1 + erff(x[i] · float(1/√2)))    (torch's order, exact GELU)
 *   add:      y[i] += x[i]
 *   add_bias: y[r][c] += bias[c]
 *   f32_to_f16 / f32_to_bf16: round to nearest even
 *   store_row_at: dst[*pos·row + i] = src[i] (a KV-cache row at a position held on the device)
 *
 * Each follows its CPU op's order of operations; __fmul_rn keeps nvcc from fusing a product
 * into an FMA the CPU does not do. expf/erff are CUDA's full-precision versions (≤ 2 ulp; glibc
 * is within 1), so results match the CPU to an ulp or two.
 *
 * Launch: grid-stride loops of 256 threads per block over size_t indices, at most 8192 blocks
 * (enough to fill any of the target GPUs, few enough that no element needs 64-bit grid math);
 * add_bias runs a 2-D grid, x over columns and y over rows (grid-striding past 65535 rows).
 */
#include "common.cuh"

#define EW_THREADS 256
#define EW_MAX_BLOCKS 8192u

static __global__ void silu_mul_kernel(float *__restrict__ gate, const float *__restrict__ up,
                                       size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const float g = gate[i];
        gate[i] = __fmul_rn(g / (1.0f + expf(-g)), up[i]);
    }
}

static __global__ void gelu_kernel(float *__restrict__ x, size_t n) {
    const float k_sqrt1_2 = 0.70710678118654752440f; /* (float)M_SQRT1_2 */
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const float v = x[i];
        x[i] = __fmul_rn(__fmul_rn(v, 0.5f), 1.0f + erff(__fmul_rn(v, k_sqrt1_2)));
    }
}

/* y and x may be the same buffer (y += y): no __restrict__. */
static __global__ void add_kernel(float *y, const float *x, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = y[i] + x[i];
}

/* grid.x covers the columns, grid.y strides over the rows. */
static __global__ void add_bias_kernel(float *__restrict__ y, const float *__restrict__ bias,
                                       int n_rows, int dim) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= dim) return;
    const float b = __ldg(bias + c);
    for (int r = blockIdx.y; r < n_rows; r += gridDim.y) y[(size_t)r * dim + c] += b;
}

/* *pos outside [0, n_rows) stores nothing. */
static __global__ void store_row_at_kernel(float *__restrict__ dst, const float *__restrict__ src,
                                           size_t row, const int32_t *__restrict__ pos,
                                           int n_rows) {
    const int p = __ldg(pos);
    if (p < 0 || p >= n_rows) return;
    float *d = dst + (size_t)p * row;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < row;
         i += (size_t)gridDim.x * blockDim.x)
        d[i] = src[i];
}

static __global__ void f32_to_f16_kernel(uint16_t *__restrict__ dst,
                                         const float *__restrict__ src, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __half_as_ushort(__float2half_rn(src[i]));
}

static __global__ void f32_to_bf16_kernel(uint16_t *__restrict__ dst,
                                          const float *__restrict__ src, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = pgk_f2bf_exact(src[i]);
}

extern "C" int pg_cuda_silu_mul(float *gate, const float *up, size_t n, void *stream) {
    if (n == 0) return 0;
    if (!gate || !up) return PGK_EINVAL;
    silu_mul_kernel<<<pgk_grid_1d(n, EW_THREADS, EW_MAX_BLOCKS), EW_THREADS, 0,
                      pgk_stream(stream)>>>(gate, up, n);
    return (int)cudaGetLastError();
}

extern "C" int pg_cuda_gelu(float *x, size_t n, void *stream) {
    if (n == 0) return 0;
    if (!x) return PGK_EINVAL;
    gelu_kernel<<<pgk_grid_1d(n, EW_THREADS, EW_MAX_BLOCKS), EW_THREADS, 0,
                  pgk_stream(stream)>>>(x, n);
    return (int)cudaGetLastError();
}

extern "C" int pg_cuda_add(float *y, const float *x, size_t n, void *stream) {
    if (n == 0) return 0;
    if (!y || !x) return PGK_EINVAL;
    add_kernel<<<pgk_grid_1d(n, EW_THREADS, EW_MAX_BLOCKS), EW_THREADS, 0,
                 pgk_stream(stream)>>>(y, x, n);
    return (int)cudaGetLastError();
}

extern "C" int pg_cuda_add_bias(float *y, const float *bias, int n_rows, int dim,
                                void *stream) {
    if (n_rows <= 0 || dim <= 0) return 0;
    if (!y || !bias) return PGK_EINVAL;
    const dim3 grid((unsigned)((dim + EW_THREADS - 1) / EW_THREADS),
                    (unsigned)(n_rows < 65535 ? n_rows : 65535));
    add_bias_kernel<<<grid, EW_THREADS, 0, pgk_stream(stream)>>>(y, bias, n_rows, dim);
    return (int)cudaGetLastError();
}

extern "C" int pg_cuda_f32_to_f16(uint16_t *dst, const float *src, size_t n, void *stream) {
    if (n == 0) return 0;
    if (!dst || !src) return PGK_EINVAL;
    f32_to_f16_kernel<<<pgk_grid_1d(n, EW_THREADS, EW_MAX_BLOCKS), EW_THREADS, 0,
                        pgk_stream(stream)>>>(dst, src, n);
    return (int)cudaGetLastError();
}

extern "C" int pg_cuda_f32_to_bf16(uint16_t *dst, const float *src, size_t n, void *stream) {
    if (n == 0) return 0;
    if (!dst || !src) return PGK_EINVAL;
    f32_to_bf16_kernel<<<pgk_grid_1d(n, EW_THREADS, EW_MAX_BLOCKS), EW_THREADS, 0,
                         pgk_stream(stream)>>>(dst, src, n);
    return (int)cudaGetLastError();
}

extern "C" int pg_cuda_store_row_at(float *dst, const float *src, size_t row_floats,
                                    const int32_t *pos, int n_rows, void *stream) {
    if (row_floats == 0 || n_rows <= 0) return 0;
    if (!dst || !src || !pos) return PGK_EINVAL;
    store_row_at_kernel<<<pgk_grid_1d(row_floats, EW_THREADS, EW_MAX_BLOCKS), EW_THREADS, 0,
                          pgk_stream(stream)>>>(dst, src, row_floats, pos, n_rows);
    return (int)cudaGetLastError();
}
