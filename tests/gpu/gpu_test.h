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
#include <unistd.h>

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

#include <cuda_runtime_api.h>

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

/* Makes the test's temporary directory (tmpl, a mkdtemp template) and the CUDA context, which the
 * library shares: 0, or 1 after saying what failed. */
static inline int gpu_test_setup(char *tmpl) {
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    if (cudaFree(NULL) != cudaSuccess) {
        fprintf(stderr, "cannot initialise the CUDA runtime\n");
        return 1;
    }
    return 0;
}

/* The Python that runs tools/convert-pandagpt.py ($PG_PYTHON, else python3), or NULL after a
 * "SKIP (label)" line when it cannot import numpy and gguf. */
static inline const char *gpu_test_python(const char *label) {
    const char *py = getenv("PG_PYTHON");
    if (!py || !*py) py = "python3";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import numpy, gguf' 2>/dev/null", py);
    if (system(cmd) == 0) return py;
    printf("SKIP (%s): '%s' cannot import numpy and gguf (set PG_PYTHON)\n", label, py);
    return NULL;
}

/* Runs tools/convert-pandagpt.py --quiet with the given arguments (already quoted) under py;
 * 1 on success, 0 after a failed CHECK naming the command. */
static inline int gpu_test_convert(const char *py, const char *args) {
    char cmd[20480];
    snprintf(cmd, sizeof cmd, "'%s' '%s/tools/convert-pandagpt.py' --quiet %s", py,
             PG_SOURCE_ROOT, args);
    const int rc = system(cmd);
    CHECK_MSG(rc == 0, "converter failed (%d): %s", rc, cmd);
    return rc == 0;
}

#endif
#endif
