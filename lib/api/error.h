/*
 * error.h — the thread-local error message behind pg_last_error().
 *
 * Set the message once, where the failure is understood, and pass the status up unchanged:
 *     return pg_set_error(PG_ERR_FORMAT, "%s: tensor %s: offset %llu past end of file", ...);
 */
#ifndef PG_ERROR_H
#define PG_ERROR_H

#include "pandagpt.h"

#if defined(__GNUC__)
#  define PG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define PG_PRINTF(a, b)
#endif

/* Formats the calling thread's error message and returns s, so callers can `return` it. */
pg_status pg_set_error(pg_status s, const char *fmt, ...) PG_PRINTF(2, 3);

/* Prepends "prefix: " to the current message (context added on the way up) and returns s. */
pg_status pg_error_prefix(pg_status s, const char *fmt, ...) PG_PRINTF(2, 3);

#endif
