/*
 * threadpool.h — a fixed pool of pthreads that runs one parallel-for at a time.
 *
 * pg_pool_run(pool, fn, ctx, n) calls fn(ctx, ith, nth) once for every ith in [0, nth) where
 * nth = the pool's thread count, the calling thread taking part as ith 0, and returns when all
 * are done. Workers spin briefly then sleep on a condition variable, so back-to-back ops in a
 * decode step do not pay a wake-up each. Nothing is allocated per run.
 */
#ifndef PG_THREADPOOL_H
#define PG_THREADPOOL_H

#include "pandagpt.h"

typedef struct pg_pool pg_pool;
typedef void (*pg_pool_fn)(void *ctx, int ith, int nth);

/* n_threads total threads including the caller (n_threads - 1 workers are started). */
pg_status pg_pool_new(int n_threads, pg_pool **out);
void pg_pool_free(pg_pool *p);
int pg_pool_size(const pg_pool *p);
void pg_pool_run(pg_pool *p, pg_pool_fn fn, void *ctx);

#endif
