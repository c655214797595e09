/*
 * bench.c — pandagpt-bench: prompt and decode speed of the LLM, against the memory-bandwidth
 * bound of decoding.
 *
 *   pandagpt-bench [-m model.gguf | --random tiny|1b|7b|13b] [--type f16|q8_0|q4_0|f32|bf16]
 *                  [--same-layers] [-t threads] [-p n_prompt=128] [-n n_decode=32]
 *                  [--keep PATH] [--device auto|cpu|cuda] [--bandwidth GB/s] [--seed N]
 *   pandagpt-bench --ttft [-m model.gguf | --random 13b ...] (--encoder FILE |
 *                  --random-encoder huge|tiny [--encoder-type f16] [--keep-encoder PATH])
 *                  [--gemm-tflops X] [--reps N=10] [--question TEXT] [--device ...]
 *                  [--bandwidth GB/s] [-t threads]
 *   pandagpt-bench --gemm [-t threads] [--kernel auto|generic|avx2]
 *
 * Decoding one token reads every weight once (all tensors but token_embd, of which one row is
 * read), so tok/s can be no better than bandwidth / weight bytes; the table shows how close the
 * library comes. The bandwidth is measured here: the same number of threads summing a buffer of
 * at least 1 GiB (4x the L3 cache when that is larger), best of 3. It is host RAM's: with the
 * CUDA device give the device's figure with --bandwidth.
 * --same-layers writes a --random model whose blocks all hold block 0's bytes (random_llama.h):
 * the same work to run, a fraction of the random numbers to make.
 * --ttft times the first token of a PandaGPT turn: a random image (its preprocessed tensor,
 * N(0, 1)) and --question ("What is in this image?") through pg_session_chat with
 * max_tokens 1, greedy, so one call holds the encode, llama_proj, the prompt's prefill and the
 * first sample; best of --reps calls, each after pg_session_reset, on a model loaded with the
 * LLM and the encoder (--encoder FILE with llama_proj, or --random-encoder, written with
 * llama_proj sized to the LLM). The bound beside it: the LLM's weight bytes (all but
 * token_embd, read once by the prefill) / --bandwidth (the device's copy bandwidth,
 * pandagpt-cuda-bw; on the CPU measured here when not given) + the image's FLOP floor at
 * --gemm-tflops (the cuBLAS F16 rate, pandagpt-cuda-bw).
 * --gemm times the CPU backend's batched matmul alone at the encoder's and prefill's shapes, in
 * GFLOP/s against the FMA peak (see gemm_bench and fma_peak), with the given GEMM kernel.
 * Only the public API runs the model; lib/gguf's reader is used to read the tensor table and
 * random_llama (random_imagebind) to write --random models (--random-encoder encoders) to
 * mkstemp files in /tmp, deleted at exit unless --keep PATH (--keep-encoder PATH) names where
 * to keep them.
 */
#include <errno.h>
#include <math.h>
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
#include "random_imagebind.h"
#include "random_llama.h"
#include "bench_gemm.h"
#include "bench_util.h"

#define MAX_THREADS 256

/* ---- The temporary files, removed on every exit ------------------------------------------- */

static char g_tmp_path[2][64]; /* the model, the encoder */

static void remove_tmp(void) {
    for (int i = 0; i < 2; i++) {
        if (g_tmp_path[i][0]) unlink(g_tmp_path[i]);
        g_tmp_path[i][0] = 0;
    }
}

static void on_signal(int sig) {
    for (int i = 0; i < 2; i++)
        if (g_tmp_path[i][0]) unlink(g_tmp_path[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* A new empty file /tmp/<stem>XXXXXX in g_tmp_path[slot], removed at exit; NULL on failure. */
static const char *make_tmp(int slot, const char *stem) {
    snprintf(g_tmp_path[slot], sizeof g_tmp_path[slot], "/tmp/%sXXXXXX", stem);
    int fd = mkstemp(g_tmp_path[slot]);
    if (fd < 0) {
        fprintf(stderr, "pandagpt-bench: mkstemp: %s\n", strerror(errno));
        g_tmp_path[slot][0] = 0;
        return NULL;
    }
    close(fd);
    static int hooked;
    if (!hooked) {
        atexit(remove_tmp);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        hooked = 1;
    }
    return g_tmp_path[slot];
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
    uint32_t n_embd;          /* llama.embedding_length; 0 when missing */
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
    if (gguf_get_u32(f, "llama.embedding_length", &ms->n_embd) != PG_OK) ms->n_embd = 0;
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

/* The weight type named name (f32, f16, bf16, q8_0, q4_0) into *type; 0 for another name. */
static int parse_type(const char *name, uint32_t *type) {
    static const struct { const char *name; uint32_t type; } k_types[] = {
        {"f32", PG_DTYPE_F32}, {"f16", PG_DTYPE_F16}, {"bf16", PG_DTYPE_BF16},
        {"q8_0", PG_DTYPE_Q8_0}, {"q4_0", PG_DTYPE_Q4_0},
    };
    for (size_t k = 0; k < sizeof k_types / sizeof k_types[0]; k++)
        if (strcmp(name, k_types[k].name) == 0) {
            *type = k_types[k].type;
            return 1;
        }
    return 0;
}

static int usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [-m model.gguf | --random tiny|1b|7b|13b] [--type f16|q8_0|q4_0|f32|bf16]\n"
            "          [--same-layers] [-t threads] [-p n_prompt=128] [-n n_decode=32]\n"
            "          [--keep PATH] [--device auto|cpu|cuda] [--bandwidth GB/s] [--seed N]\n"
            "       %s --ttft [-m model.gguf | --random 13b ...] (--encoder FILE |\n"
            "          --random-encoder huge|tiny [--encoder-type f16] [--keep-encoder PATH])\n"
            "          [--gemm-tflops X] [--reps N=10] [--question TEXT] [--device ...]\n"
            "          [--bandwidth GB/s] [-t threads]\n"
            "       %s --gemm [-t threads] [--kernel auto|generic|avx2]\n", argv0, argv0, argv0);
    return 2;
}

static int fail(const char *what, pg_status st) {
    fprintf(stderr, "pandagpt-bench: %s: %s: %s\n", what, pg_status_string(st), pg_last_error());
    remove_tmp();
    return 1;
}

/* ---- --ttft: the first token of an image chat turn ----------------------------------------- */

typedef struct ttft_opts {
    const char *encoder_path;   /* --encoder, or NULL */
    const char *random_encoder; /* --random-encoder preset, or NULL */
    const char *keep_encoder;   /* --keep-encoder, or NULL (a temporary file) */
    uint32_t encoder_type;      /* --encoder-type: the random encoder's matrices */
    const char *question;       /* --question */
    int reps;                   /* --reps */
    double gemm_flops;          /* --gemm-tflops in FLOP/s; 0: no image floor */
    double bandwidth;           /* --bandwidth in bytes/s; 0: measured here (the CPU's) */
} ttft_opts;

/* N(0, 1) by Box–Muller on two uniforms in (0, 1]. */
static float next_normal(uint64_t *s) {
    const double u1 = ((double)(next_rand(s) >> 11) + 1.0) * 0x1p-53;
    const double u2 = (double)(next_rand(s) >> 11) * 0x1p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* One chat turn from a fresh history: the call timed, and its pg_timings. */
static pg_status ttft_turn(pg_session *s, const char *question, pg_media *img,
                           const pg_generate_params *g, double *wall, pg_timings *t) {
    pg_status st = pg_session_reset(s);
    if (st != PG_OK) return st;
    const double t0 = now_s();
    st = pg_session_chat(s, question, &img, 1, g, NULL, NULL);
    *wall = now_s() - t0;
    t->struct_size = sizeof *t;
    return st == PG_OK ? pg_session_timings(s, t) : st;
}

static int ttft_bench(const char *model_path, const model_stats *ms, const ttft_opts *o,
                      pg_device device, int n_threads, uint64_t seed) {
    const char *enc_path = o->encoder_path;
    pg_status st;
    double t0;
    if (o->random_encoder) {
        random_imagebind_config c;
        if (!random_imagebind_preset(o->random_encoder, &c)) {
            fprintf(stderr, "pandagpt-bench: unknown encoder preset '%s'\n", o->random_encoder);
            return 2;
        }
        c.type = o->encoder_type;
        c.llama_proj_out = (int32_t)ms->n_embd;
        enc_path = o->keep_encoder ? o->keep_encoder : make_tmp(1, "pandagpt-bench-enc-");
        if (!enc_path) return 1;
        printf("writing  random ImageBind-%s encoder (%s, %.2f G params, llama_proj %d -> %u) "
               "to %s ...\n", o->random_encoder, pg_dtype_name(c.type),
               (double)random_imagebind_n_params(&c) * 1e-9, (int)c.dim, (unsigned)ms->n_embd,
               enc_path);
        fflush(stdout);
        t0 = now_s();
        st = random_imagebind_write(&c, enc_path, "libpandagpt bench (random weights)");
        if (st != PG_OK) return fail("writing the random encoder", st);
        printf("written  in %.1f s\n", now_s() - t0);
    }
    double image_flops;
    {
        gguf_file *f;
        if ((st = gguf_open(enc_path, &f)) != PG_OK) return fail("reading the encoder", st);
        image_flops = random_imagebind_clip_flops(f, "vision");
        gguf_close(f);
    }

    pg_model_params mp;
    pg_model_params_init(&mp);
    mp.n_threads = n_threads;
    mp.device = device;
    mp.encoder_path = enc_path;
    pg_model *m = NULL;
    t0 = now_s();
    if ((st = pg_model_load(model_path, &mp, &m)) != PG_OK) return fail("pg_model_load", st);
    printf("load     %.3f s (the LLM and %s)\n", now_s() - t0, enc_path);
    pg_session_params sp;
    pg_session_params_init(&sp);
    sp.n_ctx = 512;
    pg_session *s = NULL;
    if ((st = pg_session_new(m, &sp, &s)) != PG_OK) return fail("pg_session_new", st);

    /* the image: the encoder's input tensor, N(0, 1) */
    static const int64_t shape[3] = {3, 224, 224};
    const size_t n_px = 3 * 224 * 224, dim = (size_t)pg_model_embed_dim(m);
    float *x = malloc(n_px * sizeof *x), *e = malloc(dim * sizeof *e);
    if (!x || !e) return fail("allocating the image", PG_ERR_OUT_OF_MEMORY);
    uint64_t rng = seed ^ 0x1D8E4E27C47D124Full;
    for (size_t i = 0; i < n_px; i++) x[i] = next_normal(&rng);
    pg_media *img = NULL;
    if ((st = pg_media_from_tensor(PG_MODALITY_IMAGE, x, shape, 3, &img)) != PG_OK)
        return fail("pg_media_from_tensor", st);
    free(x);
    pg_generate_params g;
    pg_generate_params_init(&g);
    g.max_tokens = 1;
    g.temperature = 0.0f; /* greedy: the first token is an argmax */

    /* warm-up: the first turn faults the weights in (CPU) or makes the session's encoder state
     * and the GEMM plans (CUDA); the second shows the steady state has been reached */
    double wall;
    pg_timings t;
    for (int w = 0; w < 2; w++) {
        if ((st = ttft_turn(s, o->question, img, &g, &wall, &t)) != PG_OK)
            return fail("warm-up turn", st);
        printf("warm-up  %.3f ms (prompt %.3f ms)\n", wall * 1e3, t.prompt_ms);
        fflush(stdout);
    }
    double best = 1e30, best_prompt = 1e30, prompt_at_best = 0.0;
    int n_prompt = 0;
    for (int r = 0; r < o->reps; r++) {
        if ((st = ttft_turn(s, o->question, img, &g, &wall, &t)) != PG_OK)
            return fail("timed turn", st);
        if (wall < best) {
            best = wall;
            prompt_at_best = t.prompt_ms;
        }
        if (t.prompt_ms < best_prompt) best_prompt = t.prompt_ms;
        n_prompt = t.n_prompt;
    }
    /* the image alone, through pg_embed (its own stream and buffers on CUDA) */
    double embed = 1e30;
    for (int r = 0; r <= o->reps; r++) { /* the first is a warm-up */
        t0 = now_s();
        if ((st = pg_embed(m, img, e, dim)) != PG_OK) return fail("pg_embed", st);
        if (r > 0 && now_s() - t0 < embed) embed = now_s() - t0;
    }
    pg_media_free(img);
    free(e);
    pg_session_free(s);
    pg_model_free(m);

    /* ---- the bound */
    double bw = o->bandwidth;
    size_t bw_bytes = 0;
    if (bw <= 0.0 && device == PG_DEVICE_CPU) {
        printf("memory   measuring read bandwidth ...\n");
        fflush(stdout);
        bw = measure_bandwidth(n_threads, &bw_bytes);
    }
    const double weights_ms = bw > 0 ? (double)ms->decode_bytes / bw * 1e3 : NAN;
    const double floor_ms = o->gemm_flops > 0 ? image_flops / o->gemm_flops * 1e3 : NAN;
    const double bound_ms = (isnan(weights_ms) ? 0.0 : weights_ms) +
                            (isnan(floor_ms) ? 0.0 : floor_ms);

    printf("\nttft     an image + \"%s\": %d prompt positions (one the image's), "
           "max_tokens 1, greedy\n", o->question, n_prompt);
    printf("         %.3f ms   pg_session_chat, best of %d (encode, llama_proj, prefill, first "
           "sample)\n", best * 1e3, o->reps);
    printf("         %.3f ms   of it the prompt's evaluation (pg_timings.prompt_ms; best of all "
           "%.3f ms)\n", prompt_at_best, best_prompt);
    printf("         %.3f ms   the image alone through pg_embed, best of %d\n", embed * 1e3,
           o->reps);
    if (device == PG_DEVICE_CUDA)
        printf("         (on CUDA the turn queues the encoder's kernels without waiting, so "
               "prompt_ms also holds what of the encode the GPU had not finished)\n");
    char hb[32];
    if (!isnan(weights_ms))
        printf("bound    weights %.3f ms (%s, all but token_embd, at %.1f GB/s%s)\n", weights_ms,
               human((double)ms->decode_bytes, "B", hb, sizeof hb), bw * 1e-9,
               o->bandwidth > 0 ? ", --bandwidth" : ", host read bandwidth measured here");
    else
        printf("bound    weights: no bandwidth (give the device's with --bandwidth)\n");
    if (!isnan(floor_ms))
        printf("         + image floor %.3f ms (%.1f GFLOP at %.1f TFLOP/s, --gemm-tflops)\n",
               floor_ms, image_flops * 1e-9, o->gemm_flops * 1e-12);
    else
        printf("         + image floor: no GEMM rate (give it with --gemm-tflops)\n");
    if (!isnan(weights_ms) && !isnan(floor_ms)) {
        printf("         = %.3f ms; ours / bound %.2fx\n", bound_ms, best * 1e3 / bound_ms);
        printf("         (the prefill's own FLOPs, 2·%s·%d, would take %.3f ms at that rate)\n",
               human((double)ms->n_matmul_params, "", hb, sizeof hb), n_prompt,
               2.0 * (double)ms->n_matmul_params * n_prompt / o->gemm_flops * 1e3);
    }
    if (device == PG_DEVICE_CUDA)
        printf("target   15 ms (13B, one H200): %s\n", best * 1e3 <= 15.0 ? "pass" : "miss");
    printf("\nttft_ms %.4f\nttft_prompt_ms %.4f\nttft_n_prompt %d\nttft_embed_ms %.4f\n",
           best * 1e3, prompt_at_best, n_prompt, embed * 1e3);
    if (!isnan(weights_ms)) printf("ttft_weights_ms %.4f\n", weights_ms);
    if (!isnan(floor_ms)) printf("ttft_image_floor_ms %.4f\n", floor_ms);
    if (!isnan(weights_ms) && !isnan(floor_ms)) printf("ttft_bound_ms %.4f\n", bound_ms);
    remove_tmp();
    return 0;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *random_size = NULL, *keep = NULL, *type_name = "f16";
    int n_threads = 0, n_prompt = 128, n_decode = 32;
    double given_bw = 0.0;
    uint64_t seed = 1234;
    pg_device device = PG_DEVICE_AUTO;
    int gemm = 0, ttft = 0, same_layers = 0;
    pg_gemm_kernel kernel = PG_GEMM_AUTO;
    ttft_opts to = {.encoder_type = PG_DTYPE_F16, .question = "What is in this image?",
                    .reps = 10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--gemm") == 0 || strcmp(a, "--ttft") == 0 ||
            strcmp(a, "--same-layers") == 0) { /* the flags without a value */
            if (strcmp(a, "--gemm") == 0) gemm = 1;
            else if (strcmp(a, "--ttft") == 0) ttft = 1;
            else same_layers = 1;
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
        else if (strcmp(a, "--encoder") == 0) to.encoder_path = val;
        else if (strcmp(a, "--random-encoder") == 0) to.random_encoder = val;
        else if (strcmp(a, "--keep-encoder") == 0) to.keep_encoder = val;
        else if (strcmp(a, "--question") == 0) to.question = val;
        else if (strcmp(a, "--reps") == 0) to.reps = atoi(val);
        else if (strcmp(a, "--gemm-tflops") == 0) to.gemm_flops = atof(val) * 1e12;
        else if (strcmp(a, "--encoder-type") == 0) {
            if (!parse_type(val, &to.encoder_type)) return usage(argv[0]);
        }
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
        n_threads < 0 || n_threads > MAX_THREADS ||
        (ttft && (!to.encoder_path == !to.random_encoder || to.reps < 1)) ||
        (!ttft && (to.encoder_path || to.random_encoder)))
        return usage(argv[0]);
    to.bandwidth = given_bw;
    if (n_threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = cores < 1 ? 1 : cores > MAX_THREADS ? MAX_THREADS : (int)cores;
    }
    if (gemm) return gemm_bench(n_threads, kernel);
    printf("libpandagpt %s\n", pg_version_string());

    /* ---- the model file */
    if (random_size) {
        random_llama_config c;
        if (!random_llama_preset(random_size, &c) || !parse_type(type_name, &c.type))
            return usage(argv[0]);
        c.seed = seed;
        c.same_layers = same_layers;
        model_path = keep ? keep : make_tmp(0, "pandagpt-bench-");
        if (!model_path) return 1;
        char hp[32];
        printf("writing  random %s llama (%s, %s params%s) to %s ...\n", random_size,
               pg_dtype_name(c.type), human((double)random_llama_n_params(&c), "", hp, sizeof hp),
               same_layers ? ", every block a copy of block 0" : "", model_path);
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
    if (ttft) return ttft_bench(model_path, &ms, &to, device, n_threads, seed);

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
