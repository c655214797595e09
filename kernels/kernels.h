/*
 * kernels.h — C entry points of the hand-written CUDA kernels (the .cu files here), called by the
 * host side of the CUDA backend (lib/backend/cuda). Each returns a cudaError_t as int (0 = ok)
 * from the launch; pointers are device memory; stream is a cudaStream_t.
 */
#ifndef PG_KERNELS_H
#define PG_KERNELS_H

#ifdef __cplusplus
extern "C" {
#endif

/* y[r][:] = x[r][:] / sqrt(mean(x[r]²) + eps) * w, for r < n_rows; y may equal x. */
int pg_cuda_rmsnorm(float *y, const float *x, const float *w, int n_rows, int dim, float eps,
                    void *stream);

#ifdef __cplusplus
}
#endif

#endif
