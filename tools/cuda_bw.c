/*
 * cuda_bw.c — pandagpt-cuda-bw: the two ceilings a CUDA LLaMA runs against, measured on the
 * device in the same run as pandagpt-bench (scripts/gpu-check.sh prints them side by side):
 *
 *   copy   device-to-device cudaMemcpyAsync of a 1 GiB buffer, timed with CUDA events, best of
 *          10 after 2 warm-ups. A copy reads and writes every byte, so the memory system moved
 *          2 × 1 GiB: that figure (read + write) is the bandwidth decoding can hope for, since a
 *          decode step streams every weight once (bound = weight bytes / bandwidth).
 *   gemm   cublasGemmEx, F16 inputs, F32 accumulation and F32 output (what the prefill path feeds
 *          cuBLAS: dequantised weight tiles times half activations), M × N × K = 4096 × 512 ×
 *          4096 (a 7B projection over a 512-token prompt), best of 20 after 3 warm-ups. Prefill
 *          can go no faster than 2·params·tokens at this rate.
 *
 *   pandagpt-cuda-bw [--device N] [--mib MiB=1024]
 *
 * Prints one "key value" line per figure (copy_GBps, gemm_f16_TFLOPs), easy to pick up with awk,
 * after a human-readable line for each. Exit 0 when both were measured, 1 when CUDA or cuBLAS
 * failed (the message says where), 2 on bad arguments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#define CUDA_OK(expr, what)                                                                  \
    do {                                                                                     \
        cudaError_t e_ = (expr);                                                             \
        if (e_ != cudaSuccess) {                                                             \
            fprintf(stderr, "pandagpt-cuda-bw: %s: %s\n", what, cudaGetErrorString(e_));     \
            goto fail;                                                                       \
        }                                                                                    \
    } while (0)

#define BLAS_OK(expr, what)                                                                  \
    do {                                                                                     \
        cublasStatus_t s_ = (expr);                                                          \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                   \
            fprintf(stderr, "pandagpt-cuda-bw: %s: cuBLAS status %d\n", what, (int)s_);      \
            goto fail;                                                                       \
        }                                                                                    \
    } while (0)

/* Copy bandwidth in bytes/s (read + write counted), 0 on failure. */
static double copy_rate(size_t bytes, cudaStream_t st) {
    void *a = NULL, *b = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double best = 0.0;
    CUDA_OK(cudaMalloc(&a, bytes), "cudaMalloc (copy source)");
    CUDA_OK(cudaMalloc(&b, bytes), "cudaMalloc (copy destination)");
    CUDA_OK(cudaMemsetAsync(a, 1, bytes, st), "cudaMemsetAsync");
    CUDA_OK(cudaEventCreate(&e0), "cudaEventCreate");
    CUDA_OK(cudaEventCreate(&e1), "cudaEventCreate");
    for (int rep = 0; rep < 12; rep++) {
        CUDA_OK(cudaEventRecord(e0, st), "cudaEventRecord");
        CUDA_OK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, st), "cudaMemcpyAsync");
        CUDA_OK(cudaEventRecord(e1, st), "cudaEventRecord");
        CUDA_OK(cudaEventSynchronize(e1), "cudaEventSynchronize");
        float ms = 0.0f;
        CUDA_OK(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
        const double rate = 2.0 * (double)bytes / (ms * 1e-3);
        if (rep >= 2 && rate > best) best = rate; /* the first two warm the clocks up */
    }
    goto done;
fail:
    best = 0.0;
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    return best;
}

/* cuBLAS F16 GEMM rate in FLOP/s, 0 on failure. Column-major as cuBLAS sees it:
 * C[M][N] (ld M) = A[K][M]ᵀ (ld K) · B[K][N] (ld K), i.e. y[tokens][n_out] = x · Wᵀ row-major. */
static double gemm_rate(int M, int N, int K, cudaStream_t st) {
    void *a = NULL, *b = NULL, *c = NULL;
    cublasHandle_t h = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double best = 0.0;
    const float alpha = 1.0f, beta = 0.0f;
    CUDA_OK(cudaMalloc(&a, (size_t)M * K * 2), "cudaMalloc (A)");
    CUDA_OK(cudaMalloc(&b, (size_t)K * N * 2), "cudaMalloc (B)");
    CUDA_OK(cudaMalloc(&c, (size_t)M * N * 4), "cudaMalloc (C)");
    /* 0x3c00 pairs = half 1.0 everywhere: finite values, no denormal slow paths */
    CUDA_OK(cudaMemsetAsync(a, 0x3c, (size_t)M * K * 2, st), "cudaMemsetAsync");
    CUDA_OK(cudaMemsetAsync(b, 0x3c, (size_t)K * N * 2, st), "cudaMemsetAsync");
    BLAS_OK(cublasCreate(&h), "cublasCreate");
    BLAS_OK(cublasSetStream(h, st), "cublasSetStream");
    CUDA_OK(cudaEventCreate(&e0), "cudaEventCreate");
    CUDA_OK(cudaEventCreate(&e1), "cudaEventCreate");
    for (int rep = 0; rep < 23; rep++) {
        CUDA_OK(cudaEventRecord(e0, st), "cudaEventRecord");
        BLAS_OK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, M, N, K, &alpha, a, CUDA_R_16F, K, b,
                             CUDA_R_16F, K, &beta, c, CUDA_R_32F, M, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT),
                "cublasGemmEx");
        CUDA_OK(cudaEventRecord(e1, st), "cudaEventRecord");
        CUDA_OK(cudaEventSynchronize(e1), "cudaEventSynchronize");
        float ms = 0.0f;
        CUDA_OK(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
        const double rate = 2.0 * M * (double)N * K / (ms * 1e-3);
        if (rep >= 3 && rate > best) best = rate;
    }
    goto done;
fail:
    best = 0.0;
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (h) cublasDestroy(h);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    return best;
}

int main(int argc, char **argv) {
    int device = 0;
    long mib = 1024;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--device") == 0) device = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--mib") == 0) mib = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--device N] [--mib MiB=1024]\n", argv[0]);
            return 2;
        }
    }
    if (mib < 1 || device < 0) {
        fprintf(stderr, "usage: %s [--device N] [--mib MiB=1024]\n", argv[0]);
        return 2;
    }
    cudaStream_t st = NULL;
    struct cudaDeviceProp prop;
    CUDA_OK(cudaSetDevice(device), "cudaSetDevice");
    CUDA_OK(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    CUDA_OK(cudaStreamCreate(&st), "cudaStreamCreate");
    printf("device   %d: %s, sm_%d%d, %d SMs, %.1f GiB\n", device, prop.name, prop.major,
           prop.minor, prop.multiProcessorCount, (double)prop.totalGlobalMem / (1 << 30));

    const size_t bytes = (size_t)mib << 20;
    const double bw = copy_rate(bytes, st);
    if (bw > 0)
        printf("copy     %.1f GB/s (device-to-device %.2f GiB, read + write counted, best of 10)\n",
               bw * 1e-9, (double)bytes / (1 << 30));
    const int M = 4096, N = 512, K = 4096;
    const double flops = gemm_rate(M, N, K, st);
    if (flops > 0)
        printf("gemm     %.1f TFLOP/s (cublasGemmEx F16 in, F32 accumulate/out, %dx%dx%d, "
               "best of 20)\n", flops * 1e-12, M, N, K);
    printf("copy_GBps %.1f\n", bw * 1e-9);
    printf("gemm_f16_TFLOPs %.1f\n", flops * 1e-12);
    cudaStreamDestroy(st);
    return bw > 0 && flops > 0 ? 0 : 1;
fail:
    if (st) cudaStreamDestroy(st);
    return 1;
}
