/*
 * threadpool.c — the parallel-for pool behind the CPU backend.
 *
 * A run publishes (fn, ctx), resets the completion counter and bumps a generation counter.
 * Workers watch the generation: they spin on it (with a pause hint) for PG_POOL_SPIN_NS after
 * their last job, because a decode step issues ~300 runs back to back and a futex wake-up per
 * run would cost more than most of those runs; after that they sleep on a condition variable,
 * so an idle session burns no CPU. The caller works as thread 0 and then spins until every
 * worker has counted itself done.
 *
 * Lost wake-ups are ruled out by the pair (n_sleeping, gen), both seq_cst: a worker increments
 * n_sleeping under the mutex and then re-reads gen before waiting; the caller bumps gen and then
 * reads n_sleeping, taking the mutex to broadcast only when someone may be asleep. One of the
 * two must see the other's write.
 *
 * Runs from different threads are serialised by run_lock, so a backend shared by two sessions
 * stays correct (the ops' per-thread scratch is only touched inside a run). A job must not
 * call pg_pool_run on its own pool: run_lock is not recursive.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* clock_gettime, sched_yield under -std=c11 */
#endif
#include "threadpool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/error.h"

#define PG_POOL_SPIN_NS 100000 /* 100 µs: covers the gap between the ops of one forward */

typedef struct pg_worker {
    pg_pool *pool;
    int ith;
    pthread_t thread;
} pg_worker;

struct pg_pool {
    int n_threads;
    pg_worker *workers; /* n_threads - 1 */

    /* the current job, written by the caller before gen is bumped */
    pg_pool_fn fn;
    void *ctx;

    _Alignas(64) atomic_uint gen;   /* bumped once per run (and once at shutdown) */
    _Alignas(64) atomic_int n_done; /* workers finished with the current generation */
    _Alignas(64) atomic_int n_sleeping;
    atomic_int stop;

    pthread_mutex_t mutex; /* guards the condition variable only */
    pthread_cond_t cond;
    pthread_mutex_t run_lock;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Returns the first generation different from seen: spins, then sleeps. */
static unsigned wait_for_gen(pg_pool *p, unsigned seen) {
    unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
    if (g != seen) return g;
    int64_t deadline = now_ns() + PG_POOL_SPIN_NS;
    for (unsigned spins = 1;; spins++) {
        cpu_relax();
        g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen) return g;
        if ((spins & 255) == 0) {
            if (now_ns() > deadline) break;
            sched_yield(); /* lets a descheduled peer run when threads outnumber cores */
        }
    }
    pthread_mutex_lock(&p->mutex);
    atomic_fetch_add(&p->n_sleeping, 1);
    while ((g = atomic_load(&p->gen)) == seen) pthread_cond_wait(&p->cond, &p->mutex);
    atomic_fetch_sub(&p->n_sleeping, 1);
    pthread_mutex_unlock(&p->mutex);
    return g;
}

static void *worker_main(void *arg) {
    pg_worker *w = arg;
    pg_pool *p = w->pool;
    unsigned seen = 0; /* gen starts at 0 and workers exist before the first run */
    for (;;) {
        seen = wait_for_gen(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        p->fn(p->ctx, w->ith, p->n_threads);
        atomic_fetch_add_explicit(&p->n_done, 1, memory_order_release);
    }
    return NULL;
}

static void wake_workers(pg_pool *p) {
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mutex);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mutex);
    }
}

/* Stops and joins the first n_started workers. */
static void stop_workers(pg_pool *p, int n_started) {
    atomic_store_explicit(&p->stop, 1, memory_order_release);
    atomic_fetch_add(&p->gen, 1);
    pthread_mutex_lock(&p->mutex); /* unconditional: a worker may be between spin and sleep */
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mutex);
    for (int i = 0; i < n_started; i++) pthread_join(p->workers[i].thread, NULL);
}

pg_status pg_pool_new(int n_threads, pg_pool **out) {
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_pool_new: out is NULL");
    *out = NULL;
    if (n_threads < 1 || n_threads > 4096)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_pool_new: n_threads %d out of range",
                            n_threads);
    pg_pool *p = calloc(1, sizeof *p);
    if (!p)
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "pg_pool_new: cannot allocate %zu bytes",
                            sizeof *p);
    p->n_threads = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->n_done, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->stop, 0);
    pthread_mutex_init(&p->mutex, NULL);
    pthread_cond_init(&p->cond, NULL);
    pthread_mutex_init(&p->run_lock, NULL);

    if (n_threads > 1) {
        p->workers = calloc((size_t)(n_threads - 1), sizeof *p->workers);
        if (!p->workers) {
            pg_pool_free(p);
            return pg_set_error(PG_ERR_OUT_OF_MEMORY, "pg_pool_new: cannot allocate %zu bytes",
                                (size_t)(n_threads - 1) * sizeof *p->workers);
        }
        for (int i = 0; i < n_threads - 1; i++) {
            p->workers[i].pool = p;
            p->workers[i].ith = i + 1;
            int rc = pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]);
            if (rc != 0) {
                stop_workers(p, i);
                p->n_threads = 1; /* nothing left for pg_pool_free to join */
                pg_pool_free(p);
                return pg_set_error(rc == EAGAIN ? PG_ERR_OUT_OF_MEMORY : PG_ERR_INTERNAL,
                                    "pg_pool_new: cannot start worker thread %d of %d: %s",
                                    i + 1, n_threads - 1, strerror(rc));
            }
        }
    }
    *out = p;
    return PG_OK;
}

void pg_pool_free(pg_pool *p) {
    if (!p) return;
    if (p->n_threads > 1 && p->workers) stop_workers(p, p->n_threads - 1);
    pthread_mutex_destroy(&p->mutex);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->run_lock);
    free(p->workers);
    free(p);
}

int pg_pool_size(const pg_pool *p) { return p ? p->n_threads : 0; }

void pg_pool_run(pg_pool *p, pg_pool_fn fn, void *ctx) {
    pthread_mutex_lock(&p->run_lock);
    const int nth = p->n_threads;
    if (nth == 1) {
        fn(ctx, 0, 1);
        pthread_mutex_unlock(&p->run_lock);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->n_done, 0, memory_order_relaxed);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: publishes fn/ctx/n_done; pairs with n_sleeping */
    wake_workers(p);

    fn(ctx, 0, nth);

    /* Workers are running now (they were woken above), so the wait is short; yield now and
     * then in case the machine is oversubscribed. */
    for (unsigned spins = 1;
         atomic_load_explicit(&p->n_done, memory_order_acquire) != nth - 1; spins++) {
        if ((spins & 255) == 0) sched_yield();
        else cpu_relax();
    }
    pthread_mutex_unlock(&p->run_lock);
}
