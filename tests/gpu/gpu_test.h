/*
 * gpu_test.h — how every GPU test begins: without CUDA in the build or without a device it
 * skips (exit 77) with a message, unless PG_GPU_REQUIRED=1 (scripts/gpu-check.sh sets it), which
 * turns the skip into a failure; PG_GPU_QUICK=1 asks for the reduced set (compute-sanitizer).
 * Include after check.h; the library's internal headers come after it in each test.
 */
#ifndef PG_GPU_TEST_H
#define PG_GPU_TEST_H

#include <stdio.h>
#include <stdlib.h>

#include "check.h"

static inline int gpu_test_env(const char *name) {
    const char *v = getenv(name);
    return v && *v == '1';
}

#ifndef PG_HAVE_CUDA

/* The whole test in a build without the CUDA backend. */
static inline int gpu_test_no_cuda(void) {
    printf("SKIP: this build has no CUDA backend (PG_HAVE_CUDA undefined; meson -Dcuda=enabled)\n");
    return gpu_test_env("PG_GPU_REQUIRED") ? 1 : CHECK_SKIP;
}

#else

#include "backend/cuda/cuda_backend.h"

/* Line-buffers stdout (figures and CHECK messages, on stderr, stay in order), sets *quick from
 * PG_GPU_QUICK and looks for a device: -1 to go on, else the exit code after the SKIP line. */
static inline int gpu_test_start(int *quick) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    *quick = gpu_test_env("PG_GPU_QUICK");
    const int required = gpu_test_env("PG_GPU_REQUIRED");
    int n_dev = 0;
    pg_status s = pg_cuda_device_count(&n_dev);
    if (s == PG_OK && n_dev > 0) return -1;
    printf("SKIP: no usable CUDA device (pg_cuda_device_count: %s, %d devices)%s\n",
           pg_status_string(s), n_dev, required ? " but PG_GPU_REQUIRED=1" : "");
    return required ? 1 : CHECK_SKIP;
}

#endif
#endif
