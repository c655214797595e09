/*
 * rope.cu — rotary position embedding in GGUF's adjacent-pair convention, in place:
 * for row t (position pos = pos0 + t), head h and pair i < n_rot/2,
 *     (x0, x1) = (x[t][h·head_dim + 2i], x[t][h·head_dim + 2i + 1])
 *     x0' = x0·cos θ − x1·sin θ,   x1' = x0·sin θ + x1·cos θ,   θ = pos · theta_scale^i
 * Dims from n_rot on are untouched (n_rot is clamped to head_dim, as the CPU op does).
 *
 * θ is built exactly as the CPU op (ggml_rope_cache_init) builds it: theta_scale =
 * powf(freq_base, −2/n_rot) computed on the host by the same libm call, then θ_0 = (float)pos and
 * θ_i = θ_{i−1}·theta_scale by repeated float multiplication, so every θ is the CPU's bit for
 * bit; sincosf is CUDA's full-precision one (≤ 2 ulp from glibc's cosf/sinf). The rotation's
 * products are rounded separately (__fmul_rn/__fadd_rn), as the CPU computes them.
 *
 * Launch: grid (n rows, ceil(n_head / ROPE_HEADS)), a block of n_rot/2 threads rounded up to a
 * warp (at most 1024; wider rotations loop). Thread i computes θ_i (i multiplications), its
 * cos/sin once, and applies them to pair i of ROPE_HEADS heads.
 *
 * pg_cuda_rope_at reads pos0 from device memory at run time (CUDA-graph replay at any position).
 *
 * Host reference: for t < n, h < n_head, i < n_rot/2: p = x + t·n_head·head_dim + h·head_dim + 2i.
 */
#include <math.h>

#include "common.cuh"

#define ROPE_HEADS 8 /* heads per block: cos/sin computed once for this many */

static __global__ void rope_kernel(float *__restrict__ x, int n_head, int head_dim, int n_pairs,
                                   int pos0, const int32_t *__restrict__ pos_dev,
                                   float theta_scale) {
    if (pos_dev) pos0 = __ldg(pos_dev); /* pg_cuda_rope_at: the position lives on the device */
    const int t = blockIdx.x;
    const int h0 = blockIdx.y * ROPE_HEADS;
    for (int i = threadIdx.x; i < n_pairs; i += blockDim.x) {
        float theta = (float)(pos0 + t);
        for (int j = 0; j < i; j++) theta = __fmul_rn(theta, theta_scale);
        float s, c;
        sincosf(theta, &s, &c);
        float *row = x + (size_t)t * (size_t)n_head * (size_t)head_dim + 2 * (size_t)i;
        for (int h = h0; h < n_head && h < h0 + ROPE_HEADS; h++) {
            float *p = row + (size_t)h * (size_t)head_dim;
            const float x0 = p[0], x1 = p[1];
            p[0] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
            p[1] = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
        }
    }
}

static int rope_launch(float *x, int n, int n_head, int head_dim, int n_rot, int pos0,
                       const int32_t *pos_dev, float freq_base, void *stream) {
    if (n <= 0 || n_head <= 0 || n_rot <= 0 || head_dim <= 0) return 0;
    if (!x) return PGK_EINVAL;
    if (n_rot > head_dim) n_rot = head_dim;
    const int n_pairs = n_rot / 2; /* the CPU's i0 + 1 < n_rot: an odd last dim stays */
    if (n_pairs == 0) return 0;
    /* the CPU op's expression, evaluated by the same libm */
    const float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    int threads = (n_pairs + 31) / 32 * 32;
    if (threads > 1024) threads = 1024;
    const dim3 grid((unsigned)n, (unsigned)((n_head + ROPE_HEADS - 1) / ROPE_HEADS));
    if (grid.y > 65535u) return PGK_EINVAL;
    rope_kernel<<<grid, threads, 0, pgk_stream(stream)>>>(x, n_head, head_dim, n_pairs, pos0,
                                                          pos_dev, theta_scale);
    return (int)cudaGetLastError();
}

extern "C" int pg_cuda_rope(float *x, int n, int n_head, int head_dim, int n_rot, int pos0,
                            float freq_base, void *stream) {
    return rope_launch(x, n, n_head, head_dim, n_rot, pos0, NULL, freq_base, stream);
}

extern "C" int pg_cuda_rope_at(float *x, int n, int n_head, int head_dim, int n_rot,
                               const int32_t *pos0, float freq_base, void *stream) {
    if (!pos0) return PGK_EINVAL;
    return rope_launch(x, n, n_head, head_dim, n_rot, 0, pos0, freq_base, stream);
}
