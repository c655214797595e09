/*
 * im2col.cu — ImageBind's patch embedding input: the Conv with kernel = stride of each tower
 * (vision Conv3d 2×14×14, audio Conv2d 16 / stride 10, thermal and depth Conv2d 16, IMU's
 * 8-sample unfold) laid out as GEMM rows, so that the patch projection is one matmul over every
 * clip of a call. Done here rather than on the host so that only the preprocessed tensor crosses
 * the bus (the rows repeat an image's frame and overlap audio's windows: up to twice the bytes).
 *
 *   out[item][ph·gw + pw][((c·k_t + t)·k_h + i)·k_w + j]
 *       = in[item][c][min(t, frames − 1)][ph·s_h + i][pw·s_w + j]
 *
 * Launch: a grid-stride loop of 256 threads over the output elements, so consecutive threads
 * write consecutive features (coalesced stores; the loads walk rows of k_w contiguous floats).
 * Pure copies: the result equals the host im2col bit for bit.
 */
#include "common.cuh"

#define IM_THREADS 256
#define IM_MAX_BLOCKS 8192u

static __global__ void im2col_kernel(float *__restrict__ out, const float *__restrict__ in,
                                     size_t total, int channels, int frames, int height,
                                     int width, int k_t, int k_h, int k_w, int s_h, int s_w,
                                     int gw, int n_tok, int n_feat) {
    const size_t item_in = (size_t)channels * frames * height * width;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        const int f = (int)(idx % (size_t)n_feat);
        const size_t row = idx / (size_t)n_feat;
        const int tok = (int)(row % (size_t)n_tok);
        const size_t item = row / (size_t)n_tok;
        const int j = f % k_w, i = (f / k_w) % k_h, t = (f / (k_w * k_h)) % k_t;
        const int c = f / (k_w * k_h * k_t);
        const int frame = t < frames ? t : frames - 1;
        const int y = (tok / gw) * s_h + i, x = (tok % gw) * s_w + j;
        out[idx] = __ldg(in + item * item_in +
                         ((size_t)(c * frames + frame) * height + y) * width + x);
    }
}

extern "C" int pg_cuda_im2col(float *out, const float *in, int n_items, int channels, int frames,
                              int height, int width, int k_t, int k_h, int k_w, int s_h, int s_w,
                              void *stream) {
    if (n_items <= 0) return 0;
    if (!out || !in || channels <= 0 || frames <= 0 || k_t <= 0 || k_h <= 0 || k_w <= 0 ||
        s_h <= 0 || s_w <= 0 || height < k_h || width < k_w)
        return PGK_EINVAL;
    const int gh = (height - k_h) / s_h + 1, gw = (width - k_w) / s_w + 1;
    const long long n_feat = (long long)channels * k_t * k_h * k_w;
    if (n_feat > 0x7fffffff) return PGK_EINVAL;
    const size_t total = (size_t)n_items * (size_t)gh * (size_t)gw * (size_t)n_feat;
    im2col_kernel<<<pgk_grid_1d(total, IM_THREADS, IM_MAX_BLOCKS), IM_THREADS, 0,
                    pgk_stream(stream)>>>(out, in, total, channels, frames, height, width, k_t,
                                          k_h, k_w, s_h, s_w, gw, gh * gw, (int)n_feat);
    return (int)cudaGetLastError();
}
