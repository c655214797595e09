/*
 * encoder_head.cu — the end of an ImageBind encoder as PandaGPT uses it (spec §5.9): each clip's
 * head output L2-normalised (F.normalize: x / max(‖x‖₂, 1e-12)), times the tower's logit scale
 * where it has one, and averaged over the clips — leaving the one vector llama_proj reads on the
 * device.
 *
 *   out[d] = (accumulate ? out[d] : 0) + Σ_c weight · (scale · x[c][d] / max(‖x[c]‖, 1e-12))
 *
 * with weight = 1 / clips; accumulate lets a call that runs its clips in several trunk passes sum
 * them. ‖x[c]‖ is summed in double and rounded to float before the division, and the clips are
 * added in order in float, as the CPU op does: the two agree to the last bit but for the order of
 * the double sum of squares (≤ 1 ulp of the norm).
 *
 * Launch: one block of 256 threads (dim is 1024 for imagebind_huge, a few thousand at most):
 * per clip the block reduces the sum of squares (warp shuffles, then shared memory), then each
 * thread updates its dims. Clips run one after another inside the block, so the sum's order is
 * fixed.
 */
#include "common.cuh"

#define HEAD_THREADS 256

static __global__ void l2norm_sum_kernel(float *__restrict__ out, const float *__restrict__ x,
                                         int n_rows, int dim, float scale, float weight,
                                         int accumulate) {
    __shared__ double partial[HEAD_THREADS / 32];
    __shared__ float norm;
    const int tid = threadIdx.x, lane = tid & 31, warp_id = tid >> 5;
    for (int d = tid; d < dim; d += HEAD_THREADS)
        if (!accumulate) out[d] = 0.0f;
    for (int c = 0; c < n_rows; c++) {
        const float *row = x + (size_t)c * (size_t)dim;
        double ss = 0.0;
        for (int d = tid; d < dim; d += HEAD_THREADS) ss += (double)row[d] * (double)row[d];
        ss = warp_sum_d(ss);
        if (lane == 0) partial[warp_id] = ss;
        __syncthreads();
        if (tid == 0) {
            double t = 0.0;
            for (int w = 0; w < HEAD_THREADS / 32; w++) t += partial[w];
            const float n = (float)sqrt(t);
            norm = n > 1e-12f ? n : 1e-12f;
        }
        __syncthreads();
        const float nrm = norm;
        for (int d = tid; d < dim; d += HEAD_THREADS) {
            float v = row[d] / nrm;
            if (scale != 1.0f) v = __fmul_rn(scale, v);
            out[d] = out[d] + __fmul_rn(weight, v);
        }
        __syncthreads(); /* partial and norm are reused by the next clip */
    }
}

extern "C" int pg_cuda_l2norm_sum(float *out, const float *x, int n_rows, int dim, float scale,
                                  float weight, int accumulate, void *stream) {
    if (dim <= 0) return 0;
    if (!out || (n_rows > 0 && !x) || n_rows < 0) return PGK_EINVAL;
    l2norm_sum_kernel<<<1, HEAD_THREADS, 0, pgk_stream(stream)>>>(out, x, n_rows, dim, scale,
                                                                 weight, accumulate != 0);
    return (int)cudaGetLastError();
}
