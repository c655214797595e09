/*
 * error.c — per-thread error text and the status names.
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PG_ERROR_CAP 1024

/* The one piece of mutable global state the contract allows: per thread, so no locking. */
static _Thread_local char g_error[PG_ERROR_CAP];

pg_status pg_set_error(pg_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_error, sizeof g_error, fmt, ap);
    va_end(ap);
    return s;
}

pg_status pg_error_prefix(pg_status s, const char *fmt, ...) {
    char old[PG_ERROR_CAP];
    memcpy(old, g_error, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(g_error, sizeof g_error, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n + 2 >= sizeof g_error) return s; /* no room left for the old text */
    g_error[n] = ':';
    g_error[n + 1] = ' ';
    size_t room = sizeof g_error - (size_t)n - 2;
    size_t k = strnlen(old, room - 1);
    memcpy(g_error + n + 2, old, k);
    g_error[n + 2 + k] = '\0';
    return s;
}

const char *pg_last_error(void) { return g_error; }

const char *pg_status_string(pg_status s) {
    switch (s) {
    case PG_OK: return "PG_OK: success";
    case PG_ERR_INVALID_ARGUMENT: return "PG_ERR_INVALID_ARGUMENT: invalid argument";
    case PG_ERR_IO: return "PG_ERR_IO: input/output error";
    case PG_ERR_FORMAT: return "PG_ERR_FORMAT: malformed file";
    case PG_ERR_UNSUPPORTED: return "PG_ERR_UNSUPPORTED: not supported by this build";
    case PG_ERR_OUT_OF_MEMORY: return "PG_ERR_OUT_OF_MEMORY: out of memory";
    case PG_ERR_DEVICE: return "PG_ERR_DEVICE: device error";
    case PG_ERR_CONTEXT_FULL: return "PG_ERR_CONTEXT_FULL: context window full";
    case PG_ERR_CANCELLED: return "PG_ERR_CANCELLED: cancelled by the callback";
    case PG_ERR_INTERNAL: return "PG_ERR_INTERNAL: internal error";
    }
    return "unknown pg_status";
}

uint32_t pg_version(void) {
    return ((uint32_t)PG_VERSION_MAJOR << 16) | ((uint32_t)PG_VERSION_MINOR << 8) |
           (uint32_t)PG_VERSION_PATCH;
}

#define PG_STR2(x) #x
#define PG_STR(x) PG_STR2(x)
const char *pg_version_string(void) {
    return PG_STR(PG_VERSION_MAJOR) "." PG_STR(PG_VERSION_MINOR) "." PG_STR(PG_VERSION_PATCH);
}
