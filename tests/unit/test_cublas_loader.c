/*
 * test_cublas_loader.c — cuBLAS opened at run time (lib/backend/cuda/cublas_loader.c): on a
 * machine with the CUDA toolkit, GPU or not, the library is found and every entry point the
 * backend calls is resolved, so that a misspelt symbol fails here rather than on a device; a
 * second call gives the same table. Built only with the CUDA backend.
 */
#include <stdio.h>
#include <string.h>

#include "check.h"

#include "backend/cuda/cublas_loader.h"

int main(void) {
    const pg_cublas_api *api = NULL;
    pg_status s = pg_cublas_load(&api);
    CHECK_MSG(s == PG_OK, "pg_cublas_load: %s", pg_last_error());
    if (!api) return check_done("cublas_loader");
    CHECK(api->create && api->destroy && api->set_stream && api->set_workspace && api->sgemm &&
          api->gemm_ex && api->status_name && api->status_string);
    /* the status texts need no device */
    const char *name = api->status_name(CUBLAS_STATUS_NOT_INITIALIZED);
    CHECK_MSG(name && strcmp(name, "CUBLAS_STATUS_NOT_INITIALIZED") == 0, "status name '%s'",
              name ? name : "(null)");
    const pg_cublas_api *again = NULL;
    CHECK_OK(pg_cublas_load(&again));
    CHECK(again == api);
    printf("cuBLAS from %s: every entry point resolved\n", api->path);
    return check_done("cublas_loader");
}
