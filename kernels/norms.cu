/*
 * norms.cu — RMSNorm (the LLM) and LayerNorm (ImageBind) over rows of float32.
 *
 *   rmsnorm:   y[r][:] = (x[r][:] · scale) · w,  scale = 1 / sqrtf(mean + eps),
 *              mean = (float)(Σ (double)(x·x) / dim)
 *   layernorm: y[r][:] = (float)((x − mean)·rstd) · w + b, mean and the biased variance of the
 *              row in double (two passes), rstd = 1 / sqrt(var + eps) in double
 *
 * Both follow their CPU op (lib/backend/cpu/cpu_backend.c) operation by operation: the sums run
 * in double as there, so the float mean comes out the same, and the per-element products use
 * __fmul_rn/__fadd_rn so that nvcc cannot fuse them into an FMA that the CPU does not do. The
 * outputs then match the CPU's bit for bit unless the double sums round differently (orders
 * differ), which moves the mean by far less than a float ulp.
 *
 * Launch: one block of 256 threads per row (grid = n_rows). Each thread strides over the row,
 * warps reduce with shuffles, warp sums meet in shared memory. y may alias x: every element is
 * read by the thread that writes it, after the reduction.
 *
 * Host reference of the indexing: for r < n_rows, row r is x + r·dim (and y + r·dim).
 */
#include "common.cuh"

#define NORM_THREADS 256

/* Sum of v over the block; every thread gets it. red holds NORM_THREADS/32 doubles. */
static __device__ double block_sum_d(double v, double *red) {
    const int lane_id = threadIdx.x % 32, warp_id = threadIdx.x / 32;
    const int num_warps = blockDim.x / 32;
    v = warp_sum_d(v);
    __syncthreads(); /* red may still be read from a previous call */
    if (lane_id == 0) red[warp_id] = v;
    __syncthreads();
    double s = 0.0;
    for (int w = 0; w < num_warps; w++) s += red[w]; /* same order in every thread */
    return s;
}

static __global__ void __launch_bounds__(NORM_THREADS)
rmsnorm_kernel(float *y, const float *x, const float *__restrict__ w, int dim, float eps) {
    __shared__ double red[NORM_THREADS / 32];
    const size_t row = blockIdx.x;
    const float *xr = x + row * (size_t)dim;
    float *yr = y + row * (size_t)dim;

    double ss = 0.0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const float v = xr[i];
        ss += (double)__fmul_rn(v, v);
    }
    ss = block_sum_d(ss, red);
    const float mean = (float)(ss / dim);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        yr[i] = __fmul_rn(__fmul_rn(xr[i], scale), __ldg(w + i));
}

static __global__ void __launch_bounds__(NORM_THREADS)
layernorm_kernel(float *y, const float *x, const float *__restrict__ w,
                 const float *__restrict__ b, int dim, float eps) {
    __shared__ double red[NORM_THREADS / 32];
    const size_t row = blockIdx.x;
    const float *xr = x + row * (size_t)dim;
    float *yr = y + row * (size_t)dim;

    double s = 0.0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) s += (double)xr[i];
    const double mean = block_sum_d(s, red) / dim;
    double v = 0.0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const double d = (double)xr[i] - mean;
        v = __dadd_rn(v, __dmul_rn(d, d)); /* no FMA: the CPU rounds d·d first */
    }
    const double var = block_sum_d(v, red) / dim;
    const double rstd = 1.0 / sqrt(var + (double)eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const float t = (float)(((double)xr[i] - mean) * rstd);
        yr[i] = __fadd_rn(__fmul_rn(t, __ldg(w + i)), __ldg(b + i));
    }
}

extern "C" int pg_cuda_rmsnorm(float *y, const float *x, const float *w, int n_rows, int dim,
                               float eps, void *stream) {
    if (n_rows <= 0 || dim <= 0) return 0;
    if (!y || !x || !w) return PGK_EINVAL;
    rmsnorm_kernel<<<n_rows, NORM_THREADS, 0, pgk_stream(stream)>>>(y, x, w, dim, eps);
    return (int)cudaGetLastError();
}

extern "C" int pg_cuda_layernorm(float *y, const float *x, const float *w, const float *b,
                                 int n_rows, int dim, float eps, void *stream) {
    if (n_rows <= 0 || dim <= 0) return 0;
    if (!y || !x || !w || !b) return PGK_EINVAL;
    layernorm_kernel<<<n_rows, NORM_THREADS, 0, pgk_stream(stream)>>>(y, x, w, b, dim, eps);
    return (int)cudaGetLastError();
}
