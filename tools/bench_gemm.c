/*
 * bench_gemm.c — pandagpt-bench --gemm: the CPU backend's batched matmul op alone, at the
 * encoder's and the prefill's shapes, in GFLOP/s against the FMA peak measured here.
 */
#include "bench_gemm.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "gguf/dtype.h"
#include "bench_util.h"

#define MAX_THREADS 256

static int gemm_fail(const char *what, pg_status st) {
    fprintf(stderr, "pandagpt-bench --gemm: %s: %s: %s\n", what, pg_status_string(st),
            pg_last_error());
    return 1;
}

/* The peak: one core's FMA rate, from a register-only loop (12 independent 8-wide FMA chains, more
 * than FMA latency x issue width on current x86) timed by the thread's CPU clock, so that time
 * the OS gives other processes does not count; n threads' peak is n times that. The loop also
 * runs on n threads at once, timed by the wall clock: that shows whether the threads really get
 * a core each (SMT siblings or a busy host give less). Without AVX2+FMA: not measured (0). */

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

static volatile float g_fma_sink;

typedef struct fma_job {
    double cpu_rate, wall_rate; /* FLOP/s, best of 3 */
} fma_job;

/* The chains start apart so that the compiler cannot merge them into one. */
__attribute__((target("avx2,fma"))) static void fma_loop(long iters, double *cpu_s,
                                                         double *wall_s) {
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2);
    __m256 a3 = _mm256_set1_ps(3), a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5);
    __m256 a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7), a8 = _mm256_set1_ps(8);
    __m256 a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
    const double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID), w0 = now_s();
    for (long i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c), a1 = _mm256_fmadd_ps(a1, m, c);
        a2 = _mm256_fmadd_ps(a2, m, c), a3 = _mm256_fmadd_ps(a3, m, c);
        a4 = _mm256_fmadd_ps(a4, m, c), a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c), a7 = _mm256_fmadd_ps(a7, m, c);
        a8 = _mm256_fmadd_ps(a8, m, c), a9 = _mm256_fmadd_ps(a9, m, c);
        a10 = _mm256_fmadd_ps(a10, m, c), a11 = _mm256_fmadd_ps(a11, m, c);
    }
    *wall_s = now_s() - w0;
    *cpu_s = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    g_fma_sink = lanes[0];
}

static void *fma_thread(void *arg) {
    fma_job *j = arg;
    const long iters = 20000000;
    double cpu, wall;
    fma_loop(iters / 10, &cpu, &wall); /* clocks up */
    j->cpu_rate = j->wall_rate = 0.0;
    for (int rep = 0; rep < 3; rep++) {
        fma_loop(iters, &cpu, &wall);
        const double flops = (double)iters * 12 * 16;
        if (cpu > 0 && flops / cpu > j->cpu_rate) j->cpu_rate = flops / cpu;
        if (flops / wall > j->wall_rate) j->wall_rate = flops / wall;
    }
    return NULL;
}

/* n_threads threads run the loop at once: *core = the best thread's rate by its CPU clock,
 * *all = the sum of the threads' rates by the wall clock. */
static void fma_peak(int n_threads, double *core, double *all) {
    *core = *all = 0.0;
    if (!pg_dtype_avx2_usable()) return;
    pthread_t th[MAX_THREADS];
    fma_job jobs[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 1; t < n_threads; t++)
        started[t] = pthread_create(&th[t], NULL, fma_thread, &jobs[t]) == 0;
    fma_thread(&jobs[0]);
    for (int t = 0; t < n_threads; t++) {
        if (t > 0 && !started[t]) continue;
        if (t > 0) pthread_join(th[t], NULL);
        if (jobs[t].cpu_rate > *core) *core = jobs[t].cpu_rate;
        *all += jobs[t].wall_rate;
    }
}
#else
static void fma_peak(int n_threads, double *core, double *all) {
    (void)n_threads;
    *core = *all = 0.0;
}
#endif

typedef struct gemm_case {
    const char *what;
    int n;
    int64_t n_in, n_out;
    uint32_t type;
    int vision; /* one of the four matmuls of an ImageBind-huge vision block */
} gemm_case;

/* Seconds per matmul call: *wall the best call by the wall clock, *cpu the process's CPU time
 * over all the calls divided by calls and threads (a CPU clock read while other threads run
 * lags by up to a scheduler tick, so only a long total is exact). At least 5 calls and 0.5 s,
 * after a warm-up call. */
static void gemm_time(pg_backend *b, int nth, const pg_weight *w, const float *x, float *y,
                      int n, double *wall, double *cpu) {
    b->ops->matmul(b, w, x, y, n);
    double total = 0.0;
    int calls = 0;
    *wall = 1e30;
    const double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (; calls < 5 || total < 0.5; calls++) {
        const double w0 = now_s();
        b->ops->matmul(b, w, x, y, n);
        const double dw = now_s() - w0;
        total += dw;
        if (dw < *wall) *wall = dw;
    }
    *cpu = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) / calls / nth;
}

static double uniform(uint64_t *rng) {
    return (double)(next_rand(rng) >> 11) * 0x1p-53 * 2 - 1;
}

/* Times the batched matmul op (matmul, F32 activations) at ImageBind-huge vision's shapes (257
 * tokens; qkv, out, fc1, fc2) and at a LLaMA-7B prefill chunk, on 1 and max_threads threads,
 * with the given kernel. GFLOP/s = 2·n·n_in·n_out / seconds: by the best call's wall clock, and
 * by the process's CPU time per call and thread ("cpu", the mean), which leaves out time the OS
 * gave other processes (and counts the pool's spinning), so it measures the kernel when the host
 * is busy. The percentage of the peak is the cpu figure's. */
int gemm_bench(int max_threads, pg_gemm_kernel kernel) {
    static const gemm_case cases[] = {
        {"vision qkv", 257, 1280, 3840, PG_DTYPE_F32, 1},
        {"vision out", 257, 1280, 1280, PG_DTYPE_F32, 1},
        {"vision fc1", 257, 1280, 5120, PG_DTYPE_F32, 1},
        {"vision fc2", 257, 5120, 1280, PG_DTYPE_F32, 1},
        {"vision qkv", 257, 1280, 3840, PG_DTYPE_F16, 1},
        {"vision out", 257, 1280, 1280, PG_DTYPE_F16, 1},
        {"vision fc1", 257, 1280, 5120, PG_DTYPE_F16, 1},
        {"vision fc2", 257, 5120, 1280, PG_DTYPE_F16, 1},
        {"llama prefill", 128, 4096, 4096, PG_DTYPE_F16, 0},
    };
    static const char *kernel_names[] = {"auto", "generic", "avx2"};
    const size_t n_cases = sizeof cases / sizeof cases[0];
    printf("libpandagpt %s: batched matmul y[n][n_out] = x[n][n_in]·Wᵀ, CPU backend, "
           "kernel %s%s\n", pg_version_string(), kernel_names[kernel],
           kernel == PG_GEMM_AUTO ? (pg_gemm_avx2_usable() ? " (avx2)" : " (generic)") : "");
    printf("peak     measuring FMA throughput (12 chains of 8-wide FMA in registers) ...\n");
    fflush(stdout);
    const int thread_counts[2] = {1, max_threads};
    const int n_counts = max_threads > 1 ? 2 : 1;
    double core = 0.0, all1 = 0.0, core_n = 0.0, all_n = 0.0;
    fma_peak(1, &core, &all1);
    if (max_threads > 1) fma_peak(max_threads, &core_n, &all_n);
    if (core > 0) {
        printf("peak     %.1f GFLOP/s per core (thread CPU time); n threads' peak = n x that\n",
               core * 1e-9);
        printf("         by the wall clock: 1 thread %.1f", all1 * 1e-9);
        if (max_threads > 1) printf(", %d threads at once %.1f in all", max_threads, all_n * 1e-9);
        printf(" GFLOP/s\n\n");
    } else {
        printf("peak     not measured (no AVX2+FMA)\n\n");
    }

    uint64_t rng = 42;
    printf("%-13s %4s %11s %4s %3s %8s %9s %9s %7s\n", "shape", "n", "n_in->n_out", "type", "thr",
           "ms", "GFLOP/s", "cpu", "of peak");
    for (int ci = 0; ci < n_counts; ci++) {
        const int nth = thread_counts[ci];
        pg_backend *b = NULL;
        pg_status st = pg_backend_cpu_new(nth, &b);
        if (st == PG_OK) st = pg_backend_cpu_reserve(b, 257, 5120, 0);
        if (st == PG_OK) st = pg_backend_cpu_set_gemm(b, kernel, 0);
        if (st != PG_OK) {
            pg_backend_free(b);
            return gemm_fail("cpu backend", st);
        }
        double vision_wall[2] = {0, 0}, vision_cpu[2] = {0, 0}; /* F32, F16 */
        for (size_t k = 0; k < n_cases; k++) {
            const gemm_case *gc = &cases[k];
            const size_t rb = pg_dtype_row_bytes(gc->type, gc->n_in);
            void *wv = NULL, *xv = NULL, *yv = NULL;
            float *row = malloc((size_t)gc->n_in * sizeof *row);
            if (!row || (st = b->ops->alloc(b, rb * (size_t)gc->n_out, &wv)) != PG_OK ||
                (st = b->ops->alloc(b, (size_t)gc->n * (size_t)gc->n_in * 4, &xv)) != PG_OK ||
                (st = b->ops->alloc(b, (size_t)gc->n * (size_t)gc->n_out * 4, &yv)) != PG_OK) {
                free(row);
                b->ops->free(b, wv);
                b->ops->free(b, xv);
                pg_backend_free(b);
                return gemm_fail("allocating the operands", row ? st : PG_ERR_OUT_OF_MEMORY);
            }
            for (int64_t r = 0; r < gc->n_out; r++) {
                for (int64_t i = 0; i < gc->n_in; i++) row[i] = (float)(0.05 * uniform(&rng));
                pg_quantize_row(gc->type, row, (uint8_t *)wv + (size_t)r * rb, gc->n_in);
            }
            float *x = xv;
            for (size_t i = 0; i < (size_t)gc->n * (size_t)gc->n_in; i++)
                x[i] = (float)uniform(&rng);
            const pg_weight w = {gc->type, gc->n_in, gc->n_out, rb, wv};
            double wall, cpu;
            gemm_time(b, nth, &w, x, yv, gc->n, &wall, &cpu);
            const double flop = 2.0 * gc->n * (double)gc->n_in * (double)gc->n_out;
            char shape[32], pct[16] = "";
            snprintf(shape, sizeof shape, "%lld->%lld", (long long)gc->n_in,
                     (long long)gc->n_out);
            if (core > 0) snprintf(pct, sizeof pct, "%.0f%%", 100.0 * flop / cpu / (core * nth));
            printf("%-13s %4d %11s %4s %3d %8.2f %9.1f %9.1f %7s\n", gc->what, gc->n, shape,
                   pg_dtype_name(gc->type), nth, wall * 1e3, flop / wall * 1e-9,
                   flop / cpu * 1e-9, pct);
            fflush(stdout);
            if (gc->vision) {
                vision_wall[gc->type == PG_DTYPE_F16] += wall;
                vision_cpu[gc->type == PG_DTYPE_F16] += cpu;
            }
            free(row);
            b->ops->free(b, wv);
            b->ops->free(b, xv);
            b->ops->free(b, yv);
        }
        for (int f16 = 0; f16 < 2; f16++)
            printf("  ImageBind-huge vision, %s weights, %d thread%s: 32 blocks x these 4 = "
                   "%.2f s of matmul per image (cpu: %.2f s)\n", f16 ? "F16" : "F32", nth,
                   nth > 1 ? "s" : "", 32 * vision_wall[f16], 32 * vision_cpu[f16]);
        if (core > 0)
            printf("  peak, %d thread%s: %.1f GFLOP/s\n", nth, nth > 1 ? "s" : "",
                   core * nth * 1e-9);
        pg_backend_free(b);
    }
    return 0;
}
