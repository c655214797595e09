/*
 * rmsnorm.cu — RMSNorm over rows: y[r][:] = x[r][:] * rsqrt(mean(x[r]²) + eps) * w.
 *
 * Launch: one block of 256 threads per row (grid = n_rows). Each thread strides over the row
 * accumulating x² in fp32, warps reduce with shuffles, warp sums meet in shared memory. y may
 * alias x. The first kernel of the CUDA backend ([4/6]); the CPU op (lib/backend/cpu) is its
 * oracle, and tests/gpu compares them once the backend is wired in.
 */
#include <cuda_runtime.h>

#include "kernels.h"

static __device__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

static __global__ void rmsnorm_kernel(float *y, const float *x, const float *w, int dim,
                                      float eps) {
    const int row = blockIdx.x;
    const int lane_id = threadIdx.x % 32, warp_id = threadIdx.x / 32;
    const int num_warps = blockDim.x / 32;
    const float *xr = x + (size_t)row * dim;
    float *yr = y + (size_t)row * dim;

    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
    ss = warp_sum(ss);

    __shared__ float partial[32];
    if (lane_id == 0) partial[warp_id] = ss;
    __syncthreads();
    if (warp_id == 0) {
        ss = lane_id < num_warps ? partial[lane_id] : 0.0f;
        ss = warp_sum(ss);
        if (lane_id == 0) partial[0] = rsqrtf(ss / (float)dim + eps);
    }
    __syncthreads();
    const float scale = partial[0];
    for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * scale * w[i];
}

extern "C" int pg_cuda_rmsnorm(float *y, const float *x, const float *w, int n_rows, int dim,
                               float eps, void *stream) {
    if (n_rows <= 0 || dim <= 0) return 0;
    rmsnorm_kernel<<<n_rows, 256, 0, (cudaStream_t)stream>>>(y, x, w, dim, eps);
    return (int)cudaGetLastError();
}
