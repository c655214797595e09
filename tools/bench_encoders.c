/*
 * bench_encoders.c — pandagpt-bench-encoders: ImageBind-huge encode time per modality through
 * pg_embed, next to PyTorch's on the same machine, the issue's PyTorch-CPU figures, and, given
 * the GEMM rate, the FLOP floor.
 *
 *   pandagpt-bench-encoders [-e encoder.gguf | --type f32|f16|bf16|q8_0 [--preset huge|tiny]]
 *                           [--device cpu|cuda|auto] [-t threads]
 *                           [--modalities image,audio,thermal,depth,imu,video] [--reps N]
 *                           [--video-reps N] [--gemm-tflops X] [--torch FILE.json]
 *                           [--keep PATH] [--seed N]
 *
 * Without -e the bench writes tools/random_imagebind's "huge" preset (ImageBind-huge shapes,
 * random weights; 3.4 GB in F32, 1.7 GB in F16; --preset tiny for a quick try) to a mkstemp
 * file in /tmp, deleted at exit unless --keep PATH names where to keep it, and loads it
 * embedding-only (no LLM) through the public API on --device (default cpu; auto: CUDA when
 * the build and the machine have it, else the CPU).
 * Inputs are the encoders' preprocessed tensors (pg_media_from_tensor) filled with N(0, 1)
 * values from a seeded generator: IMAGE [3,224,224], AUDIO [3,1,128,204], VIDEO
 * [15,3,2,224,224], THERMAL and DEPTH [1,224,224], IMU [6,2000]. On the CPU each tower is
 * warmed up once (video by an image: the same tower), then each modality is timed as the best
 * of --reps calls (3; video: --video-reps, 1, since one call takes about a minute on 2 cores).
 * On CUDA every modality is warmed up by one call of its own (the first call also makes the
 * model's encoder stream and buffers) and timed as the best of 20 calls (video 10), in ms;
 * pg_embed returns once the embedding is on the host, so the wall clock holds the whole call.
 *
 * The GFLOP column counts, per clip, every matmul and attention's products
 * (random_imagebind_clip_flops). --gemm-tflops X (the cuBLAS F16 GEMM rate pandagpt-cuda-bw
 * measured in the same run; any rate for the CPU) adds the floor: GFLOP / X, and ours / floor.
 * On CUDA the table also holds the issue's targets (image ≤ 1 ms, video ≤ 10 ms on one H200)
 * with pass or miss. On CUDA, or with --gemm-tflops, "key value" lines (enc_<modality>_ms,
 * _floor_ms, _torch_ms, all in ms) follow the table for scripts/gpu-check.sh.
 * --torch FILE.json reads tools/bench_imagebind_torch.py's output ({"image": seconds, ...},
 * from the CPU or, --device cuda --dtype float16, from the GPU) and adds PyTorch's time
 * measured there and the ratio torch / ours (> 1: we are faster).
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gguf/dtype.h"
#include "gguf/gguf.h"
#include "pandagpt.h"
#include "random_imagebind.h"
#include "bench_util.h"

// ---- The temporary encoder file, removed on every exit

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

static int fail(const char *what, pg_status st) {
    fprintf(stderr, "pandagpt-bench-encoders: %s: %s: %s\n", what, pg_status_string(st),
            pg_last_error());
    remove_tmp();
    return 1;
}

// ---- The modalities

#define N_MODS 6

/* One timed modality: its input tensor, the tower that encodes it, and the issue's figures. */
static const struct {
    const char *name;
    pg_modality mod;
    const char *tower;    /* imagebind.<tower>.* keys */
    int n_dims;
    int64_t shape[5];
    int32_t clips;        /* trunk passes' clips: what the FLOPs are multiplied by */
    double issue_torch_s; /* the issue's PyTorch-CPU seconds on the 2-core VM; 0: none given */
    double target_ms;     /* the issue's target on one H200 (F16); 0: none given */
} k_mods[N_MODS] = {
    {"image", PG_MODALITY_IMAGE, "vision", 3, {3, 224, 224}, 1, 2.35, 1.0},
    {"audio", PG_MODALITY_AUDIO, "audio", 4, {3, 1, 128, 204}, 3, 1.15, 0.0},
    {"thermal", PG_MODALITY_THERMAL, "thermal", 3, {1, 224, 224}, 1, 0.27, 0.0},
    {"depth", PG_MODALITY_DEPTH, "depth", 3, {1, 224, 224}, 1, 0.0, 0.0},
    {"imu", PG_MODALITY_IMU, "imu", 2, {6, 2000}, 1, 0.0, 0.0},
    {"video", PG_MODALITY_VIDEO, "vision", 5, {15, 3, 2, 224, 224}, 15, 64.6, 10.0},
};

// ---- Inputs and the PyTorch figures

/* N(0, 1) by Box–Muller on two uniforms in (0, 1]. */
static float next_normal(uint64_t *s) {
    const double u1 = ((double)(next_rand(s) >> 11) + 1.0) * 0x1p-53;
    const double u2 = (double)(next_rand(s) >> 11) * 0x1p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static pg_status make_media(int k, uint64_t seed, pg_media **out) {
    size_t n = 1;
    for (int d = 0; d < k_mods[k].n_dims; d++) n *= (size_t)k_mods[k].shape[d];
    float *x = malloc(n * sizeof *x);
    if (!x) {
        fprintf(stderr, "pandagpt-bench-encoders: out of memory (%zu floats)\n", n);
        return PG_ERR_OUT_OF_MEMORY;
    }
    uint64_t rng = seed ^ ((uint64_t)(k + 1) << 56);
    for (size_t i = 0; i < n; i++) x[i] = next_normal(&rng);
    pg_status st = pg_media_from_tensor(k_mods[k].mod, x, k_mods[k].shape, k_mods[k].n_dims, out);
    free(x);
    return st;
}

/* The number after "key": in a flat JSON object, or NAN when absent. Enough for the file
 * bench_imagebind_torch.py writes; not a JSON parser. */
static double json_number(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(json, pat);
    if (!p) return NAN;
    p += strlen(pat);
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p++ != ':') return NAN;
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

/* The string after "key": copied into buf, or "" when absent. */
static void json_string(const char *json, const char *key, char *buf, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    buf[0] = 0;
    const char *p = strstr(json, pat);
    if (!p || !(p = strchr(p + strlen(pat), '"'))) return;
    const char *q = strchr(++p, '"');
    if (!q) return;
    size_t n = (size_t)(q - p) < cap - 1 ? (size_t)(q - p) : cap - 1;
    memcpy(buf, p, n);
    buf[n] = 0;
}

static char *read_text(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *buf = NULL;
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && n < (1 << 20) &&
        fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
        fread(buf, 1, (size_t)n, fp) == (size_t)n) {
        buf[n] = 0;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    return buf;
}

static void cpu_model_name(char *buf, size_t cap) {
    snprintf(buf, cap, "unknown CPU");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp) return;
    char line[256];
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *v = strchr(line, ':');
        if (!v) break;
        v++;
        while (*v == ' ' || *v == '\t') v++;
        snprintf(buf, cap, "%s", v);
        buf[strcspn(buf, "\n")] = 0;
        break;
    }
    fclose(fp);
}

// ---- Loading

/* Loads the encoder embedding-only on *device; for PG_DEVICE_AUTO tries CUDA first and falls
 * back to the CPU when this build or machine has no CUDA, setting *device to where it went. */
static pg_status load_encoder(const char *path, int n_threads, pg_device *device, pg_model **m) {
    pg_model_params mp;
    pg_model_params_init(&mp);
    mp.n_threads = n_threads;
    mp.encoder_path = path;
    if (*device == PG_DEVICE_AUTO) {
        mp.device = PG_DEVICE_CUDA;
        pg_status st = pg_model_load(NULL, &mp, m);
        if (st == PG_OK) {
            *device = PG_DEVICE_CUDA;
            return st;
        }
        if (st != PG_ERR_UNSUPPORTED && st != PG_ERR_DEVICE) return st;
        printf("device   auto: no CUDA (%s); the CPU\n", pg_last_error());
        *device = PG_DEVICE_CPU;
    }
    mp.device = *device;
    return pg_model_load(NULL, &mp, m);
}

// ---- Main

static int usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [-e encoder.gguf | --type f32|f16|bf16|q8_0 [--preset huge|tiny]]\n"
            "          [--device cpu|cuda|auto] [-t threads]\n"
            "          [--modalities image,audio,thermal,depth,imu,video] [--reps N]\n"
            "          [--video-reps N] [--gemm-tflops X] [--torch FILE.json] [--keep PATH]\n"
            "          [--seed N]\n", argv0);
    return 2;
}

int main(int argc, char **argv) {
    const char *enc_path = NULL, *keep = NULL, *type_name = "f32", *torch_path = NULL;
    const char *mod_list = "image,audio,thermal,video", *preset = "huge";
    int n_threads = 0, reps = 0, video_reps = 0;
    double gemm_tflops = 0.0;
    pg_device device = PG_DEVICE_CPU;
    uint64_t seed = 4321;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val) return usage(argv[0]);
        if (strcmp(a, "-e") == 0) enc_path = val;
        else if (strcmp(a, "--type") == 0) type_name = val;
        else if (strcmp(a, "--preset") == 0) preset = val;
        else if (strcmp(a, "-t") == 0) n_threads = atoi(val);
        else if (strcmp(a, "--modalities") == 0) mod_list = val;
        else if (strcmp(a, "--reps") == 0) reps = atoi(val);
        else if (strcmp(a, "--video-reps") == 0) video_reps = atoi(val);
        else if (strcmp(a, "--gemm-tflops") == 0) gemm_tflops = atof(val);
        else if (strcmp(a, "--torch") == 0) torch_path = val;
        else if (strcmp(a, "--keep") == 0) keep = val;
        else if (strcmp(a, "--seed") == 0) seed = strtoull(val, NULL, 0);
        else if (strcmp(a, "--device") == 0) {
            if (strcmp(val, "cpu") == 0) device = PG_DEVICE_CPU;
            else if (strcmp(val, "cuda") == 0) device = PG_DEVICE_CUDA;
            else if (strcmp(val, "auto") == 0) device = PG_DEVICE_AUTO;
            else return usage(argv[0]);
        } else return usage(argv[0]);
    }
    if (n_threads < 0 || reps < 0 || video_reps < 0 || gemm_tflops < 0 || (enc_path && keep))
        return usage(argv[0]);
    if (n_threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = cores < 1 ? 1 : (int)cores;
    }

    /* ---- the modalities asked for, in the order given */
    int order[N_MODS], n_order = 0;
    for (const char *p = mod_list; *p;) {
        size_t n = strcspn(p, ",");
        int k = 0;
        while (k < N_MODS && (strlen(k_mods[k].name) != n || strncmp(p, k_mods[k].name, n)))
            k++;
        if (k == N_MODS) {
            fprintf(stderr, "pandagpt-bench-encoders: unknown modality '%.*s'\n", (int)n, p);
            return 2;
        }
        for (int j = 0; j < n_order; j++)
            if (order[j] == k) return usage(argv[0]);
        order[n_order++] = k;
        p += n + (p[n] == ',');
    }
    if (n_order == 0) return usage(argv[0]);

    /* ---- PyTorch's figures */
    double torch_s[N_MODS];
    char torch_version[64] = "", torch_threads[16] = "", torch_blas[256] = "";
    char torch_where[16] = "", torch_device[128] = "", torch_dtype[32] = "";
    for (int k = 0; k < N_MODS; k++) torch_s[k] = NAN;
    if (torch_path) {
        char *json = read_text(torch_path);
        if (!json) {
            fprintf(stderr, "pandagpt-bench-encoders: cannot read %s: %s\n", torch_path,
                    strerror(errno));
            return 1;
        }
        for (int k = 0; k < N_MODS; k++) torch_s[k] = json_number(json, k_mods[k].name);
        json_string(json, "torch_version", torch_version, sizeof torch_version);
        json_string(json, "blas", torch_blas, sizeof torch_blas);
        json_string(json, "device", torch_where, sizeof torch_where);
        json_string(json, "device_name", torch_device, sizeof torch_device);
        json_string(json, "dtype", torch_dtype, sizeof torch_dtype);
        double th = json_number(json, "threads");
        if (!isnan(th)) snprintf(torch_threads, sizeof torch_threads, "%.0f", th);
        free(json);
    }

    char cpu[128];
    cpu_model_name(cpu, sizeof cpu);
    printf("libpandagpt %s: ImageBind encoders through pg_embed (%s)\n", pg_version_string(),
           device == PG_DEVICE_CPU ? "CPU" : device == PG_DEVICE_CUDA ? "CUDA" : "auto device");
    printf("machine  %s, %ld online cores; threads %d\n", cpu, sysconf(_SC_NPROCESSORS_ONLN),
           n_threads);

    /* ---- the encoder file */
    if (!enc_path) {
        random_imagebind_config c;
        if (!random_imagebind_preset(preset, &c)) return usage(argv[0]);
        static const struct { const char *name; uint32_t type; } k_types[] = {
            {"f32", PG_DTYPE_F32}, {"f16", PG_DTYPE_F16}, {"bf16", PG_DTYPE_BF16},
            {"q8_0", PG_DTYPE_Q8_0},
        };
        size_t k = 0;
        while (k < sizeof k_types / sizeof k_types[0] && strcmp(type_name, k_types[k].name)) k++;
        if (k == sizeof k_types / sizeof k_types[0]) return usage(argv[0]);
        c.type = k_types[k].type;
        if (keep) {
            enc_path = keep;
        } else {
            snprintf(g_tmp_path, sizeof g_tmp_path, "/tmp/pandagpt-bench-enc-XXXXXX");
            int fd = mkstemp(g_tmp_path);
            if (fd < 0) {
                fprintf(stderr, "pandagpt-bench-encoders: mkstemp: %s\n", strerror(errno));
                g_tmp_path[0] = 0;
                return 1;
            }
            close(fd);
            atexit(remove_tmp);
            signal(SIGINT, on_signal);
            signal(SIGTERM, on_signal);
            enc_path = g_tmp_path;
        }
        printf("writing  random ImageBind-%s encoder (%s, %.2f G params) to %s ...\n", preset,
               pg_dtype_name(c.type), (double)random_imagebind_n_params(&c) * 1e-9, enc_path);
        fflush(stdout);
        double t0 = now_s();
        pg_status st = random_imagebind_write(&c, enc_path, "libpandagpt bench (random weights)");
        if (st != PG_OK) return fail("writing the random encoder", st);
        printf("written  in %.1f s\n", now_s() - t0);
    }

    double flops[N_MODS] = {0};
    {
        gguf_file *f;
        pg_status st = gguf_open(enc_path, &f);
        if (st != PG_OK) return fail("reading the encoder's keys", st);
        for (int k = 0; k < N_MODS; k++)
            flops[k] = random_imagebind_clip_flops(f, k_mods[k].tower) * k_mods[k].clips;
        gguf_close(f);
    }

    pg_model *m = NULL;
    double t0 = now_s();
    pg_status st = load_encoder(enc_path, n_threads, &device, &m);
    if (st != PG_OK) return fail("pg_model_load", st);
    const int cuda = device == PG_DEVICE_CUDA;
    printf("load     %.3f s (%s%s)\n", now_s() - t0, enc_path, cuda ? ", to CUDA device 0" : "");
    /* CUDA: times in ms, more calls (each is milliseconds) */
    const double unit = cuda ? 1e3 : 1.0;
    const char *uname = cuda ? "ms" : "s";
    if (reps == 0) reps = cuda ? 20 : 3;
    if (video_reps == 0) video_reps = cuda ? 10 : 1;

    const int32_t dim = pg_model_embed_dim(m);
    float *out = malloc((size_t)dim * sizeof *out);
    pg_media *media[N_MODS] = {0};
    if (!out) return fail("allocating the output", PG_ERR_OUT_OF_MEMORY);
    for (int j = 0; j < n_order; j++)
        if ((st = make_media(order[j], seed, &media[order[j]])) != PG_OK)
            return fail("pg_media_from_tensor", st);

    /* ---- warm-up. CPU: one call per tower faults its mapped weights in; video's is an
     * image's. CUDA: one call per modality, for the first call's stream and buffers and the
     * first use of each shape's GEMM plans. */
    int warmed[N_MODS] = {0};
    for (int j = 0; j < n_order; j++) {
        int k = order[j], w = k_mods[k].mod == PG_MODALITY_VIDEO && !cuda ? 0 : k;
        if (warmed[w]) continue;
        pg_media *wm = media[w];
        if (!wm && (st = make_media(w, seed, &wm)) != PG_OK)
            return fail("pg_media_from_tensor", st);
        t0 = now_s();
        st = pg_embed(m, wm, out, (size_t)dim);
        if (wm != media[w]) pg_media_free(wm);
        if (st != PG_OK) return fail("warm-up", st);
        if (cuda)
            printf("warm-up  %-8s %.3f ms (first call)\n", k_mods[w].name, (now_s() - t0) * 1e3);
        else
            printf("warm-up  %-8s %.3f s (first touch of the %s tower)\n", k_mods[w].name,
                   now_s() - t0, k_mods[k].tower);
        warmed[w] = 1;
    }
    fflush(stdout);

    /* ---- timing */
    double ours[N_MODS];
    for (int j = 0; j < n_order; j++) {
        const int k = order[j];
        const int n = k_mods[k].mod == PG_MODALITY_VIDEO ? video_reps : reps;
        ours[k] = 1e30;
        for (int r = 0; r < n; r++) {
            t0 = now_s();
            if ((st = pg_embed(m, media[k], out, (size_t)dim)) != PG_OK)
                return fail("pg_embed", st);
            const double dt = now_s() - t0;
            if (dt < ours[k]) ours[k] = dt;
        }
        /* the output's norm and first values, to compare builds (the same seed gives the same
         * weights and inputs; matmul changes move the last digits only) */
        double norm = 0.0;
        for (int32_t i = 0; i < dim; i++) norm += (double)out[i] * out[i];
        printf("timed    %-8s best of %d: %.3f %s   (|e| %.6f, e[0..2] %+.6f %+.6f %+.6f)\n",
               k_mods[k].name, n, ours[k] * unit, uname, sqrt(norm), out[0], out[1], out[2]);
        fflush(stdout);
    }

    /* ---- the table */
    const double rate = gemm_tflops * 1e12; /* FLOP/s; 0: no floor */
    char torch_head[192];
    const int torch_gpu = strcmp(torch_where, "cuda") == 0;
    if (torch_path && torch_gpu)
        snprintf(torch_head, sizeof torch_head, "PyTorch %s on %s, %s",
                 torch_version[0] ? torch_version : "?", torch_device,
                 torch_dtype[0] ? torch_dtype : "?");
    else if (torch_path)
        snprintf(torch_head, sizeof torch_head, "PyTorch %s here, %s threads",
                 torch_version[0] ? torch_version : "?", torch_threads[0] ? torch_threads : "?");
    char h_ours[16], h_floor[16], h_torch[16];
    snprintf(h_ours, sizeof h_ours, "ours %s", uname);
    snprintf(h_floor, sizeof h_floor, "floor %s", uname);
    snprintf(h_torch, sizeof h_torch, "torch %s", uname);
    printf("\n%-8s %5s %9s %8s %8s", "modality", "clips", h_ours, "GFLOP", cuda ? "TFLOP/s" :
           "GFLOP/s");
    if (rate > 0) printf(" %9s %10s", h_floor, "ours/floor");
    if (torch_path) printf(" %10s %8s", h_torch, "ratio");
    if (cuda) printf(" %10s\n", "target");
    else printf(" %20s %8s\n", "issue's PyTorch-CPU", "ratio");
    for (int j = 0; j < n_order; j++) {
        const int k = order[j];
        printf("%-8s %5d %9.3f %8.1f %8.1f", k_mods[k].name, k_mods[k].clips, ours[k] * unit,
               flops[k] * 1e-9, flops[k] / ours[k] * (cuda ? 1e-12 : 1e-9));
        if (rate > 0) {
            if (flops[k] > 0) printf(" %9.3f %9.2fx", flops[k] / rate * unit,
                                     ours[k] / (flops[k] / rate));
            else printf(" %9s %10s", "-", "-");
        }
        if (torch_path) {
            if (isnan(torch_s[k])) printf(" %10s %8s", "-", "-");
            else printf(" %10.3f %7.2fx", torch_s[k] * unit, torch_s[k] / ours[k]);
        }
        if (cuda) {
            char cell[32] = "-";
            if (k_mods[k].target_ms > 0)
                snprintf(cell, sizeof cell, "%.0f ms %s", k_mods[k].target_ms,
                         ours[k] * 1e3 <= k_mods[k].target_ms ? "pass" : "miss");
            printf(" %10s\n", cell);
        } else if (k_mods[k].issue_torch_s > 0 && strcmp(preset, "huge") == 0) {
            printf(" %18.2f s %7.2fx\n", k_mods[k].issue_torch_s,
                   k_mods[k].issue_torch_s / ours[k]);
        } else {
            printf(" %20s %8s\n", "-", "-");
        }
    }
    if (cuda) printf("\nratio = PyTorch time / ours (> 1: libpandagpt is faster).");
    else printf("\nratio = PyTorch seconds / ours (> 1: libpandagpt is faster).");
    if (torch_path) {
        printf("\n%s: %s (%s", h_torch, torch_path, torch_head);
        if (torch_blas[0] && !torch_gpu) printf("; BLAS %s", torch_blas);
        printf(").");
    }
    if (rate > 0)
        printf("\nfloor = GFLOP / %.4g TFLOP/s (the GEMM rate given with --gemm-tflops).",
               gemm_tflops);
    if (cuda)
        printf("\ntarget: the issue's, on one H200 in F16 (pass: ours <= target).\n");
    else
        printf("\nissue's PyTorch-CPU: the figures quoted by the issue for the same 2-core VM.\n");

    /* ---- "key value" lines for scripts/gpu-check.sh (on the CPU only with --gemm-tflops, so that
     * the plain CPU table stays as docs/perf.md quotes it) */
    if (cuda || rate > 0) {
        printf("\n");
        for (int j = 0; j < n_order; j++) {
            const int k = order[j];
            printf("enc_%s_ms %.4f\n", k_mods[k].name, ours[k] * 1e3);
            if (rate > 0 && flops[k] > 0)
                printf("enc_%s_floor_ms %.4f\n", k_mods[k].name, flops[k] / rate * 1e3);
            if (!isnan(torch_s[k])) printf("enc_%s_torch_ms %.4f\n", k_mods[k].name,
                                           torch_s[k] * 1e3);
        }
    }

    for (int k = 0; k < N_MODS; k++) pg_media_free(media[k]);
    free(out);
    pg_model_free(m);
    remove_tmp();
    return 0;
}
