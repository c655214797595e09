/*
 * check.h — the tests' tiny harness: CHECK macros that print what was expected, what came and
 * where, a failure count, and the reference-directory lookup (PG_REFERENCE_DIR, default
 * ../shared/reference relative to the source root). Exit code 77 tells meson a test skipped.
 */
#ifndef PG_CHECK_H
#define PG_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int check_failures = 0;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);         \
            check_failures++;                                                                \
        }                                                                                    \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                 \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
            check_failures++;                                                                \
        }                                                                                    \
    } while (0)

#define CHECK_EQ_INT(got, want)                                                              \
    do {                                                                                     \
        long long g_ = (long long)(got), w_ = (long long)(want);                             \
        if (g_ != w_) {                                                                      \
            fprintf(stderr, "%s:%d: %s: expected %lld, got %lld\n", __FILE__, __LINE__, #got, \
                    w_, g_);                                                                 \
            check_failures++;                                                                \
        }                                                                                    \
    } while (0)

/* Status check that prints pg_last_error() (include pandagpt.h before this header). */
#define CHECK_STATUS(expr, want)                                                             \
    do {                                                                                     \
        int s_ = (int)(expr);                                                                \
        if (s_ != (int)(want)) {                                                             \
            fprintf(stderr, "%s:%d: %s: expected status %d, got %d (%s)\n", __FILE__,        \
                    __LINE__, #expr, (int)(want), s_, pg_last_error());                      \
            check_failures++;                                                                \
        }                                                                                    \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, 0)

/* Ends main: prints a summary and returns the exit code. */
static inline int check_done(const char *name) {
    if (check_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

/* The shared reference directory, or NULL (after printing why) when it is absent: the caller
 * then exits 77 (skip). */
static inline const char *check_reference_dir(void) {
    const char *dir = getenv("PG_REFERENCE_DIR");
#ifdef PG_SOURCE_ROOT
    static char buf[4096];
    if (!dir || !*dir) {
        snprintf(buf, sizeof buf, "%s/../shared/reference", PG_SOURCE_ROOT);
        dir = buf;
    }
#else
    if (!dir || !*dir) dir = "../shared/reference";
#endif
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("SKIP: reference data not found at %s (set PG_REFERENCE_DIR)\n", dir);
        return NULL;
    }
    return dir;
}

#define CHECK_SKIP 77

#endif
