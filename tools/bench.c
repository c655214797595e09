/*
 * bench.c — pandagpt-bench: prompt and decode speed of the LLM, against the memory-bandwidth
 * bound of decoding.
 *
 *   pandagpt-bench [-m model.gguf | --random tiny|1b|7b] [--type f16|q8_0|q4_0|f32|bf16]
 *                  [-t threads] [-p n_prompt=128] [-n n_decode=32] [--keep PATH]
 *                  [--device auto|cpu|cuda] [--bandwidth GB/s] [--seed N]
 *   pandagpt-bench --gemm [-t threads] [--kernel auto|generic|avx2]
 *
 * Decoding one token reads every weight once (all tensors but token_embd, of which one row is
 * read), so tok/s can be no better than bandwidth / weight bytes; the table shows how close the
 * library comes. The bandwidth is measured here: the same number of threads summing a buffer of
 * at least 1 GiB (4x the L3 cache when that is larger), best of 3. It is host RAM's: with the
 * CUDA device give the device's figure with --bandwidth.
 * --gemm times the CPU backend's batched matmul alone at the encoder's and prefill's shapes, in
 * GFLOP/s against the FMA peak (see gemm_bench and fma_peak), with the given GEMM kernel.
 * Only the public API runs the model; lib/gguf's reader is used to read the tensor table and
 * random_llama to write --random models (to a mkstemp file in /tmp, deleted at exit unless
 * --keep PATH names where to keep it).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/cpu/gemm.h"
#include "gguf/dtype.h"
#include "gguf/gguf.h"
#include "pandagpt.h"
#include "random_llama.h"

#define MAX_THREADS 256

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- The temporary model, removed on every exit ------------------------------------------- */

static char g_tmp_path[64];

static void remove_tmp(void) {
    if (g_tmp_path[0]) unlink(g_tmp_path);
    g_tmp_path[0] = 0;
}

static void on_signal(int sig) {
    if (g_tmp_path[0]) unlink(g_tmp_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- Memory bandwidth ----------------------------------------------------------------------- */

static volatile uint64_t g_bw_sink; /* the sums, so the reads are not optimised away */

typedef struct bw_job {
    const uint64_t *p;
    size_t n;             /* uint64 words */
    uint64_t sum;
} bw_job;

static void *bw_read(void *arg) {
    bw_job *j = arg;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    size_t i = 0;
    for (; i + 8 <= j->n; i += 8) {
        s0 += j->p[i], s1 += j->p[i + 1], s2 += j->p[i + 2], s3 += j->p[i + 3];
        s4 += j->p[i + 4], s5 += j->p[i + 5], s6 += j->p[i + 6], s7 += j->p[i + 7];
    }
    for (; i < j->n; i++) s0 += j->p[i];
    j->sum = s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
    return NULL;
}

static void *bw_touch(void *arg) {
    bw_job *j = arg;
    uint64_t *p = (uint64_t *)j->p;
    for (size_t i = 0; i < j->n; i++) p[i] = i;
    return NULL;
}

/* Runs fn over n_threads slices of buf; returns the wall time. */
static double bw_run(void *(*fn)(void *), uint64_t *buf, size_t words, int n_threads,
                     uint64_t *sum) {
    pthread_t th[MAX_THREADS];
    bw_job jobs[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    double t0 = now_s();
    for (int t = 0; t < n_threads; t++) {
        size_t a = words * (size_t)t / (size_t)n_threads;
        size_t b = words * (size_t)(t + 1) / (size_t)n_threads;
        jobs[t] = (bw_job){buf + a, b - a, 0};
        started[t] = t > 0 && pthread_create(&th[t], NULL, fn, &jobs[t]) == 0;
        if (t > 0 && !started[t]) fn(&jobs[t]);
    }
    fn(&jobs[0]);
    for (int t = 1; t < n_threads; t++)
        if (started[t]) pthread_join(th[t], NULL);
    double dt = now_s() - t0;
    for (int t = 0; t < n_threads; t++) *sum += jobs[t].sum;
    return dt;
}

/* Read bandwidth in bytes/s, or 0 when the buffer cannot be had. */
static double measure_bandwidth(int n_threads, size_t *bytes_used) {
    size_t bytes = (size_t)1 << 30;
#ifdef _SC_LEVEL3_CACHE_SIZE
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (l3 > 0 && (size_t)l3 * 4 > bytes) bytes = (size_t)l3 * 4;
#endif
    *bytes_used = bytes;
    uint64_t *buf = malloc(bytes), sum = 0;
    if (!buf) return 0.0;
    size_t words = bytes / sizeof *buf;
    bw_run(bw_touch, buf, words, n_threads, &sum); /* fault the pages in, from every thread */
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double dt = bw_run(bw_read, buf, words, n_threads, &sum);
        if (dt < best) best = dt;
    }
    free(buf);
    g_bw_sink = sum;
    return (double)bytes / best;
}

/* ---- The model's tensor table ----------------------------------------------------------- */

typedef struct model_stats {
    uint64_t n_params;        /* every tensor's elements */
    uint64_t n_matmul_params; /* 2-D tensors but token_embd: the weights a token multiplies */
    uint64_t decode_bytes;    /* bytes of every tensor but token_embd: read once per token */
    uint64_t total_bytes;
    uint32_t main_type;       /* the type holding the most bytes */
    uint32_t n_tensors;
} model_stats;

static pg_status read_stats(const char *path, model_stats *ms) {
    gguf_file *f;
    pg_status st = gguf_open(path, &f);
    if (st != PG_OK) return st;
    uint64_t by_type[64] = {0};
    memset(ms, 0, sizeof *ms);
    ms->n_tensors = (uint32_t)f->n_tensors;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        uint64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) n *= (uint64_t)t->ne[d];
        int embd = gguf_str_eq(t->name, "token_embd.weight");
        ms->n_params += n;
        ms->total_bytes += t->nbytes;
        if (!embd) ms->decode_bytes += t->nbytes;
        if (!embd && t->n_dims >= 2 && t->ne[1] > 1) ms->n_matmul_params += n;
        if (t->type < 64) by_type[t->type] += t->nbytes;
    }
    for (uint32_t ty = 0; ty < 64; ty++)
        if (by_type[ty] > by_type[ms->main_type]) ms->main_type = ty;
    gguf_close(f);
    return PG_OK;
}

/* ---- Main ----------------------------------------------------------------------------------- */

/* "5.21 MB", "1.10 G": counts and byte sizes at a readable scale, unit appended. */
static const char *human(double x, const char *unit, char *buf, size_t cap) {
    if (x >= 1e9) snprintf(buf, cap, "%.2f G%s", x * 1e-9, unit);
    else if (x >= 1e6) snprintf(buf, cap, "%.2f M%s", x * 1e-6, unit);
    else snprintf(buf, cap, "%.0f %s", x, unit);
    return buf;
}

static int usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [-m model.gguf | --random tiny|1b|7b] [--type f16|q8_0|q4_0|f32|bf16]\n"
            "          [-t threads] [-p n_prompt=128] [-n n_decode=32] [--keep PATH]\n"
            "          [--device auto|cpu|cuda] [--bandwidth GB/s] [--seed N]\n"
            "       %s --gemm [-t threads] [--kernel auto|generic|avx2]\n", argv0, argv0);
    return 2;
}

static int fail(const char *what, pg_status st) {
    fprintf(stderr, "pandagpt-bench: %s: %s: %s\n", what, pg_status_string(st), pg_last_error());
    remove_tmp();
    return 1;
}

static uint64_t next_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- --gemm: the batched matmul op alone ------------------------------------------------ */

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
static int gemm_bench(int max_threads, pg_gemm_kernel kernel) {
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
            return fail("cpu backend", st);
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
                return fail("allocating the operands", row ? st : PG_ERR_OUT_OF_MEMORY);
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

int main(int argc, char **argv) {
    const char *model_path = NULL, *random_size = NULL, *keep = NULL, *type_name = "f16";
    int n_threads = 0, n_prompt = 128, n_decode = 32;
    double given_bw = 0.0;
    uint64_t seed = 1234;
    pg_device device = PG_DEVICE_AUTO;
    int gemm = 0;
    pg_gemm_kernel kernel = PG_GEMM_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--gemm") == 0) {
            gemm = 1;
            continue;
        }
        if (!val) return usage(argv[0]);
        if (strcmp(a, "-m") == 0) model_path = val;
        else if (strcmp(a, "--random") == 0) random_size = val;
        else if (strcmp(a, "--type") == 0) type_name = val;
        else if (strcmp(a, "-t") == 0) n_threads = atoi(val);
        else if (strcmp(a, "-p") == 0) n_prompt = atoi(val);
        else if (strcmp(a, "-n") == 0) n_decode = atoi(val);
        else if (strcmp(a, "--keep") == 0) keep = val;
        else if (strcmp(a, "--bandwidth") == 0) given_bw = atof(val) * 1e9;
        else if (strcmp(a, "--seed") == 0) seed = strtoull(val, NULL, 0);
        else if (strcmp(a, "--kernel") == 0) {
            if (strcmp(val, "auto") == 0) kernel = PG_GEMM_AUTO;
            else if (strcmp(val, "generic") == 0) kernel = PG_GEMM_GENERIC;
            else if (strcmp(val, "avx2") == 0) kernel = PG_GEMM_AVX2;
            else return usage(argv[0]);
        }
        else if (strcmp(a, "--device") == 0) {
            if (strcmp(val, "auto") == 0) device = PG_DEVICE_AUTO;
            else if (strcmp(val, "cpu") == 0) device = PG_DEVICE_CPU;
            else if (strcmp(val, "cuda") == 0) device = PG_DEVICE_CUDA;
            else return usage(argv[0]);
        } else return usage(argv[0]);
        i++;
    }
    if ((!gemm && !model_path == !random_size) || n_prompt < 1 || n_decode < 0 ||
        n_threads < 0 || n_threads > MAX_THREADS)
        return usage(argv[0]);
    if (n_threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = cores < 1 ? 1 : cores > MAX_THREADS ? MAX_THREADS : (int)cores;
    }
    if (gemm) return gemm_bench(n_threads, kernel);
    printf("libpandagpt %s\n", pg_version_string());

    /* ---- the model file */
    if (random_size) {
        random_llama_config c;
        if (!random_llama_preset(random_size, &c)) return usage(argv[0]);
        static const struct { const char *name; uint32_t type; } k_types[] = {
            {"f32", PG_DTYPE_F32}, {"f16", PG_DTYPE_F16}, {"bf16", PG_DTYPE_BF16},
            {"q8_0", PG_DTYPE_Q8_0}, {"q4_0", PG_DTYPE_Q4_0},
        };
        size_t k = 0;
        while (k < sizeof k_types / sizeof k_types[0] && strcmp(type_name, k_types[k].name)) k++;
        if (k == sizeof k_types / sizeof k_types[0]) return usage(argv[0]);
        c.type = k_types[k].type;
        c.seed = seed;
        if (keep) {
            model_path = keep;
        } else {
            snprintf(g_tmp_path, sizeof g_tmp_path, "/tmp/pandagpt-bench-XXXXXX");
            int fd = mkstemp(g_tmp_path);
            if (fd < 0) {
                fprintf(stderr, "pandagpt-bench: mkstemp: %s\n", strerror(errno));
                g_tmp_path[0] = 0;
                return 1;
            }
            close(fd);
            atexit(remove_tmp);
            signal(SIGINT, on_signal);
            signal(SIGTERM, on_signal);
            model_path = g_tmp_path;
        }
        char hp[32];
        printf("writing  random %s llama (%s, %s params) to %s ...\n", random_size,
               pg_dtype_name(c.type), human((double)random_llama_n_params(&c), "", hp, sizeof hp),
               model_path);
        fflush(stdout);
        double t0 = now_s();
        pg_status st = random_llama_write(&c, model_path, "libpandagpt bench (random weights)");
        if (st != PG_OK) return fail("writing the random model", st);
        printf("written  in %.1f s\n", now_s() - t0);
    }

    model_stats ms;
    pg_status st = read_stats(model_path, &ms);
    if (st != PG_OK) return fail("reading the tensor table", st);
    printf("model    %s\n", model_path);
    char h1[32], h2[32], h3[32];
    printf("         %s, %s params (%s in matmuls), %u tensors, %s\n",
           pg_dtype_name(ms.main_type), human((double)ms.n_params, "", h1, sizeof h1),
           human((double)ms.n_matmul_params, "", h2, sizeof h2), (unsigned)ms.n_tensors,
           human((double)ms.total_bytes, "B", h3, sizeof h3));
    printf("threads  %d\n", n_threads);
    fflush(stdout);

    /* ---- load */
    pg_model_params mp;
    pg_model_params_init(&mp);
    mp.n_threads = n_threads;
    mp.device = device;
    pg_model *m = NULL;
    double t0 = now_s();
    st = pg_model_load(model_path, &mp, &m);
    if (st != PG_OK) return fail("pg_model_load", st);
    double t_load = now_s() - t0;
    printf("load     %.3f s\n", t_load);

    int32_t n_vocab = pg_model_n_vocab(m);
    pg_session_params sp;
    pg_session_params_init(&sp);
    sp.n_ctx = n_prompt + n_decode + 8;
    pg_session *s = NULL;
    st = pg_session_new(m, &sp, &s);
    if (st != PG_OK) {
        pg_model_free(m);
        return fail("pg_session_new", st);
    }
    int32_t *ids = malloc((size_t)(n_prompt + n_decode + 8) * sizeof *ids);
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    if (!ids || !logits) {
        fprintf(stderr, "pandagpt-bench: out of memory\n");
        return 1;
    }
    uint64_t rng = seed;
    for (int i = 0; i < n_prompt + n_decode + 8; i++)
        ids[i] = (int32_t)(next_rand(&rng) % (uint64_t)n_vocab);

    /* ---- warm-up: the first evaluation faults the mapped weights in */
    t0 = now_s();
    if ((st = pg_session_eval_tokens(s, ids, 8)) != PG_OK ||
        (st = pg_session_eval_tokens(s, ids + 8, 1)) != PG_OK ||
        (st = pg_session_logits(s, logits, (size_t)n_vocab)) != PG_OK ||
        (st = pg_session_reset(s)) != PG_OK)
        return fail("warm-up", st);
    printf("warm-up  %.3f s (9 tokens, first touch of the weights)\n", now_s() - t0);

    /* ---- prompt */
    t0 = now_s();
    if ((st = pg_session_eval_tokens(s, ids, (size_t)n_prompt)) != PG_OK ||
        (st = pg_session_logits(s, logits, (size_t)n_vocab)) != PG_OK)
        return fail("prompt", st);
    double t_prompt = now_s() - t0;

    /* ---- decode */
    t0 = now_s();
    for (int i = 0; i < n_decode; i++)
        if ((st = pg_session_eval_tokens(s, ids + n_prompt + i, 1)) != PG_OK ||
            (st = pg_session_logits(s, logits, (size_t)n_vocab)) != PG_OK)
            return fail("decode", st);
    double t_decode = now_s() - t0;

    pg_session_free(s);
    pg_model_free(m);
    free(ids);
    free(logits);

    /* ---- the bound */
    size_t bw_bytes = 0;
    double bw = given_bw;
    if (bw <= 0.0) {
        printf("memory   measuring read bandwidth ...\n");
        fflush(stdout);
        bw = measure_bandwidth(n_threads, &bw_bytes);
    }

    double prompt_tps = n_prompt / t_prompt;
    double flops = 2.0 * (double)ms.n_matmul_params * n_prompt / t_prompt;
    printf("\n");
    printf("prompt  %8.1f tok/s   (%d tokens in %.3f s; %.1f GFLOP/s, 2·params·tokens)\n",
           prompt_tps, n_prompt, t_prompt, flops * 1e-9);
    if (n_decode > 0) {
        double decode_tps = n_decode / t_decode;
        double gb_tok = (double)ms.decode_bytes * 1e-9;
        if (bw > 0.0) {
            double bound = bw / (double)ms.decode_bytes;
            printf("decode  %8.1f tok/s   bound %.1f tok/s (%.4g GB/token at %.1f GB/s)  %.0f%%\n",
                   decode_tps, bound, gb_tok, bw * 1e-9, 100.0 * decode_tps / bound);
        } else {
            printf("decode  %8.1f tok/s   (%.4g GB/token; bandwidth not measured)\n", decode_tps,
                   gb_tok);
        }
    }
    if (given_bw > 0.0)
        printf("memory  %.1f GB/s given with --bandwidth\n", bw * 1e-9);
    else if (bw > 0.0)
        printf("memory  %.1f GB/s host read bandwidth (%d threads, %.2f GiB buffer, best of 3)%s\n",
               bw * 1e-9, n_threads, (double)bw_bytes / (double)(1 << 30),
               device == PG_DEVICE_CPU ? "" : "; the bound assumes the CPU device");
    remove_tmp();
    return 0;
}
