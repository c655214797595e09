/*
 * cublas_loader.h — cuBLAS opened at run time (dlopen), at the first CUDA backend a process
 * makes, so that libpandagpt.so does not depend on libcublas: a program that never asks for the
 * GPU (or runs where there is none) loads and runs without the CUDA libraries. The CUDA runtime
 * is linked statically for the same reason (meson.build), and finds the driver itself.
 *
 * Only the few entry points the backend calls are looked up, by their exported names (the
 * _v2 names cublas_v2.h maps the plain ones to). The table is filled once per process and never
 * changes afterwards; the library stays open until the process ends.
 */
#ifndef PG_CUBLAS_LOADER_H
#define PG_CUBLAS_LOADER_H

#include <cublas_api.h>

#include "pandagpt.h"

typedef struct pg_cublas_api {
    cublasStatus_t (*create)(cublasHandle_t *handle);
    cublasStatus_t (*destroy)(cublasHandle_t handle);
    cublasStatus_t (*set_stream)(cublasHandle_t handle, cudaStream_t stream);
    cublasStatus_t (*set_workspace)(cublasHandle_t handle, void *workspace, size_t bytes);
    cublasStatus_t (*sgemm)(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const float *alpha,
                            const float *a, int lda, const float *b, int ldb, const float *beta,
                            float *c, int ldc);
    cublasStatus_t (*gemm_ex)(cublasHandle_t handle, cublasOperation_t transa,
                              cublasOperation_t transb, int m, int n, int k, const void *alpha,
                              const void *a, cudaDataType a_type, int lda, const void *b,
                              cudaDataType b_type, int ldb, const void *beta, void *c,
                              cudaDataType c_type, int ldc, cublasComputeType_t compute,
                              cublasGemmAlgo_t algo);
    const char *(*status_name)(cublasStatus_t status);
    const char *(*status_string)(cublasStatus_t status);
    const char *path; /* the file it came from */
} pg_cublas_api;

/* The cuBLAS entry points, loaded at the first call (thread-safe; later calls return the same
 * table or the same failure). It tries libcublas.so.<major of the headers built against> on the
 * loader's path, then in the toolkit's library directory known at build time, then
 * libcublas.so. PG_ERR_DEVICE when no file could be opened or one lacks an entry point:
 * the message names every file tried and why it failed. */
pg_status pg_cublas_load(const pg_cublas_api **out);

#endif
