/*
 * cublas_loader.c — dlopen of libcublas and the lookup of the entry points the CUDA backend
 * uses (cublas_loader.h).
 */
#include "backend/cuda/cublas_loader.h"

#include <dlfcn.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "api/error.h"

#define STR_(x) #x
#define STR(x) STR_(x)

static pg_cublas_api g_api;         /* filled once, under g_once, then only read */
static pg_status g_status = PG_OK;
static char g_why[1024];            /* the failure's message, when there is one */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* Looks up every entry point in h; 0 with why naming the first one missing. */
static int resolve(void *h, const char *path, char *why, size_t cap) {
    static const struct { const char *name; size_t offset; } k_syms[] = {
        {"cublasCreate_v2", offsetof(pg_cublas_api, create)},
        {"cublasDestroy_v2", offsetof(pg_cublas_api, destroy)},
        {"cublasSetStream_v2", offsetof(pg_cublas_api, set_stream)},
        {"cublasSetWorkspace_v2", offsetof(pg_cublas_api, set_workspace)},
        {"cublasSgemm_v2", offsetof(pg_cublas_api, sgemm)},
        {"cublasGemmEx", offsetof(pg_cublas_api, gemm_ex)},
        {"cublasGetStatusName", offsetof(pg_cublas_api, status_name)},
        {"cublasGetStatusString", offsetof(pg_cublas_api, status_string)},
    };
    for (size_t i = 0; i < sizeof k_syms / sizeof k_syms[0]; i++) {
        void *f = dlsym(h, k_syms[i].name);
        if (!f) {
            snprintf(why, cap, "no %s", k_syms[i].name);
            return 0;
        }
        /* POSIX: a function pointer and void * share their representation (dlsym's contract) */
        memcpy((char *)&g_api + k_syms[i].offset, &f, sizeof f);
    }
    g_api.path = path;
    return 1;
}

static void load_once(void) {
    static const char *const k_paths[] = {
        "libcublas.so." STR(CUBLAS_VER_MAJOR),
#ifdef PG_CUDA_LIBDIR
        PG_CUDA_LIBDIR "/libcublas.so." STR(CUBLAS_VER_MAJOR),
#endif
        "libcublas.so",
    };
    size_t used = 0;
    for (size_t i = 0; i < sizeof k_paths / sizeof k_paths[0]; i++) {
        char missing[128] = "";
        void *h = dlopen(k_paths[i], RTLD_NOW | RTLD_LOCAL);
        if (h && resolve(h, k_paths[i], missing, sizeof missing)) return;
        const char *err = h ? missing : dlerror();
        if (used < sizeof g_why - 1) {
            snprintf(g_why + used, sizeof g_why - used, "%s%s: %s", used ? "; " : "",
                     k_paths[i], err ? err : "cannot be opened");
            used = strlen(g_why);
        }
        if (h) dlclose(h);
    }
    g_status = PG_ERR_DEVICE;
}

pg_status pg_cublas_load(const pg_cublas_api **out) {
    pthread_once(&g_once, load_once);
    if (g_status != PG_OK) {
        *out = NULL;
        return pg_set_error(g_status, "cuBLAS (needed on the GPU) cannot be loaded: %s", g_why);
    }
    *out = &g_api;
    return PG_OK;
}
