/*
 * test_cuda_e2e.c — whole models on the CUDA device (PG_DEVICE_CUDA, public API) against the same
 * models on the CPU, and the device's out-of-memory path.
 *
 *   1. Random LLaMAs (tools/random_llama "tiny", F32/F16/Q8_0, and a grouped-query variant):
 *      logits of a 40-token prompt (prefill at position 0), of a 9-token chunk after it (prefill
 *      at pos0 > 0) and of 32 greedy decode steps, CUDA vs CPU, max |cuda − cpu| / max |cpu|
 *      <= 1e-4 (F32) or 1e-3 (F16, Q8_0: half tiles in the prefill GEMMs). The greedy tokens
 *      must be equal; where they differ the CPU's top-two margin must be a near tie (below the
 *      tolerance), and both sides then go on with the CPU's token (teacher forcing).
 *   2. ../shared/reference/pandagpt-e2e, the text part: [BOS, p_before] tokens, row.npy at the
 *      modality slot, p_after; the last logits vs llama.cpp's logits_last.npy <= 1e-4 on CUDA
 *      (and on the CPU, side by side), then the case's greedy ids, teacher-forced, equal up to a
 *      step whose reference margin is a near tie. The LLM GGUF is PG_GPU_E2E_LLM when set (made
 *      beforehand by scripts/gpu-check.sh --prepare, for machines without the converter's
 *      Python), else converted here with $PG_PYTHON tools/convert-pandagpt.py; the reference
 *      directory is PG_GPU_REFERENCE_DIR, else check.h's. Without either this part is skipped
 *      (with a message) and the rest runs.
 *   3. ImageBind (tools/random_imagebind "tiny", F32): pg_embed of random inputs of all six
 *      modalities, CUDA vs CPU, max rel <= 1e-4.
 *   4. Out of device memory: the test itself cudaMallocs filler until 192 MiB are left, then
 *      pg_model_load of a 0.4 GB model must fail with PG_ERR_OUT_OF_MEMORY (and *out NULL); with
 *      a tiny model loaded and 8 MiB left, pg_session_new (a 16 MiB KV cache) must fail the same
 *      way; after everything is freed, cudaMemGetInfo's free memory equals its value before
 *      (measured after one full load/eval/free cycle, so lazily loaded kernels and library
 *      state are already counted), and a load/eval/free cycle leaks nothing either.
 *
 * PG_GPU_QUICK=1 (for compute-sanitizer): the F32 tiny model with 8 decode steps, the reference
 * case, the image tower; no out-of-memory part. Skips (77) without CUDA in the build or without
 * a device, unless PG_GPU_REQUIRED=1.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* clock_gettime, mkdtemp under -std=c11 */
#endif
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pandagpt.h>

#include "check.h"

#ifndef PG_HAVE_CUDA

int main(void) {
    const char *req = getenv("PG_GPU_REQUIRED");
    printf("SKIP: this build has no CUDA backend (PG_HAVE_CUDA undefined; meson -Dcuda=enabled)\n");
    return req && *req == '1' ? 1 : CHECK_SKIP;
}

#else

#include <cuda_runtime_api.h>

#include "backend/cuda/cuda_backend.h"
#include "gguf/dtype.h"
#include "json.h"
#include "npy.h"
#include "random_imagebind.h"
#include "random_llama.h"

static char tmpdir[] = "/tmp/pg_cuda_e2e_XXXXXX";
static int quick = 0;

/* ---- helpers -------------------------------------------------------------------------------- */

static uint64_t rng = 0x853C49E6748FEA9Bull;

static uint32_t rnd_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static float rnd(void) { return (float)((rnd_u32() >> 8) * (1.0 / 16777216.0) * 2.0 - 1.0); }

/* max |got − want| / max |want|; infinite when got has a non-finite value. */
static double max_rel(const float *got, const float *want, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) return INFINITY;
        d = fmax(d, fabs((double)got[i] - want[i]));
        m = fmax(m, fabs((double)want[i]));
    }
    return m > 0 ? d / m : d;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* x[top] − the largest other logit. */
static double top_margin(const float *x, int n, int top) {
    double second = -INFINITY;
    for (int i = 0; i < n; i++)
        if (i != top && x[i] > second) second = x[i];
    return (double)x[top] - second;
}

static double max_abs(const float *x, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

static void path_in_tmp(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static pg_status load(const char *llm, const char *enc, pg_device dev, pg_model **m) {
    pg_model_params p;
    pg_model_params_init(&p);
    p.device = dev;
    p.encoder_path = enc;
    *m = NULL;
    return pg_model_load(llm, &p, m);
}

static pg_status session(pg_model *m, int n_ctx, pg_session **s) {
    pg_session_params sp;
    pg_session_params_init(&sp);
    sp.n_ctx = n_ctx;
    *s = NULL;
    return pg_session_new(m, &sp, s);
}

/* ---- 1. random LLaMAs, CUDA vs CPU --------------------------------------------------------- */

typedef struct pair {
    pg_session *s[2]; /* CPU, CUDA */
    float *logits[2];
    int n_vocab;
} pair;

static pg_status pair_eval(pair *p, const int32_t *ids, size_t n) {
    for (int d = 0; d < 2; d++) {
        pg_status st = pg_session_eval_tokens(p->s[d], ids, n);
        if (st == PG_OK) st = pg_session_logits(p->s[d], p->logits[d], (size_t)p->n_vocab);
        if (st != PG_OK) {
            fprintf(stderr, "%s eval: %s\n", d ? "cuda" : "cpu", pg_last_error());
            return st;
        }
    }
    return PG_OK;
}

static void test_llama(const char *label, const random_llama_config *c, double tol, int steps) {
    char path[512];
    path_in_tmp(path, sizeof path, "llama.gguf");
    CHECK_OK(random_llama_write(c, path, label));
    pg_model *m[2] = {NULL, NULL};
    pair p = {{NULL, NULL}, {NULL, NULL}, 0};
    CHECK_OK(load(path, NULL, PG_DEVICE_CPU, &m[0]));
    pg_status st = load(path, NULL, PG_DEVICE_CUDA, &m[1]);
    CHECK_MSG(st == PG_OK, "%s: pg_model_load on CUDA: %s", label, pg_last_error());
    if (!m[0] || !m[1]) goto done;
    p.n_vocab = pg_model_n_vocab(m[0]);
    CHECK_EQ_INT(pg_model_n_vocab(m[1]), p.n_vocab);
    for (int d = 0; d < 2; d++) {
        CHECK_OK(session(m[d], 128, &p.s[d]));
        p.logits[d] = malloc(sizeof(float) * (size_t)p.n_vocab);
    }
    if (!p.s[0] || !p.s[1]) goto done;

    int32_t ids[49];
    ids[0] = 1; /* BOS */
    for (int i = 1; i < 49; i++) ids[i] = 3 + (int32_t)(rnd_u32() % (uint32_t)(p.n_vocab - 3));
    if (pair_eval(&p, ids, 40) != PG_OK) goto fail;
    const double e_prompt = max_rel(p.logits[1], p.logits[0], (size_t)p.n_vocab);
    if (pair_eval(&p, ids + 40, 9) != PG_OK) goto fail;
    const double e_chunk = max_rel(p.logits[1], p.logits[0], (size_t)p.n_vocab);
    CHECK_MSG(e_prompt <= tol, "%s: prompt logits max rel %.3g > %.3g", label, e_prompt, tol);
    CHECK_MSG(e_chunk <= tol, "%s: chunk logits max rel %.3g > %.3g", label, e_chunk, tol);

    double e_decode = 0.0;
    int equal = 0, ties = 0;
    for (int k = 0; k < steps; k++) {
        const int want = argmax(p.logits[0], p.n_vocab), got = argmax(p.logits[1], p.n_vocab);
        if (got == want) {
            equal++;
        } else {
            const double margin = top_margin(p.logits[0], p.n_vocab, want);
            const double scale = max_abs(p.logits[0], p.n_vocab);
            CHECK_MSG(margin < tol * scale, "%s: greedy step %d: CUDA chose %d, CPU %d with "
                      "margin %.3g (not a near tie: tolerance %.3g)", label, k, got, want, margin,
                      tol * scale);
            ties++;
        }
        const int32_t next = want; /* teacher forcing with the CPU's choice */
        if (pair_eval(&p, &next, 1) != PG_OK) goto fail;
        const double e = max_rel(p.logits[1], p.logits[0], (size_t)p.n_vocab);
        CHECK_MSG(e <= tol, "%s: decode step %d logits max rel %.3g > %.3g", label, k, e, tol);
        e_decode = fmax(e_decode, e);
    }
    printf("%-22s logits max rel: prompt(40) %.2e, chunk(9 at pos 40) %.2e, decode worst %.2e "
           "(tol %.0e); greedy %d/%d equal, %d near ties\n", label, e_prompt, e_chunk, e_decode,
           tol, equal, steps, ties);
    goto done;
fail:
    CHECK_MSG(0, "%s: evaluation failed: %s", label, pg_last_error());
done:
    for (int d = 0; d < 2; d++) {
        pg_session_free(p.s[d]);
        pg_model_free(m[d]);
        free(p.logits[d]);
    }
    unlink(path);
}

/* ---- 2. the shared PandaGPT case, text part ------------------------------------------------- */

/* The converted LLM: PG_GPU_E2E_LLM, or converted into tmpdir. NULL (after saying why) to skip. */
static const char *e2e_llm(const char *ref, char *buf, size_t cap) {
    const char *given = getenv("PG_GPU_E2E_LLM");
    if (given && *given) return given;
    const char *py = getenv("PG_PYTHON");
    if (!py || !*py) py = "python3";
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import numpy, gguf' 2>/dev/null", py);
    if (system(cmd) != 0) {
        printf("SKIP (part 2): '%s' cannot import numpy and gguf, and PG_GPU_E2E_LLM is unset\n",
               py);
        return NULL;
    }
    snprintf(buf, cap, "%s/e2e-llm.gguf", tmpdir);
    snprintf(cmd, sizeof cmd,
             "'%s' '%s/tools/convert-pandagpt.py' --quiet --outtype f32 "
             "--vicuna '%s/pandagpt-e2e/vicuna-tiny' "
             "--delta '%s/pandagpt-e2e/pandagpt-delta/pytorch_model.pt' --llm-out '%s'",
             py, PG_SOURCE_ROOT, ref, ref, buf);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "converter failed (%d): %s", rc, cmd);
    return rc == 0 ? buf : NULL;
}

static float *load_f32(const char *dir, const char *name, size_t *n) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    npy_array a;
    if (npy_load(path, &a) != 0) return NULL;
    float *d = npy_as_f32(&a);
    *n = a.n;
    npy_free(&a);
    return d;
}

static void e2e_case(pg_model *m[2], const char *ref, const char *name) {
    char dir[4200], path[4400];
    snprintf(dir, sizeof dir, "%s/pandagpt-e2e/cases/%s", ref, name);
    snprintf(path, sizeof path, "%s/case.json", dir);
    size_t jlen, n_row = 0, n_last = 0;
    char *jtext = json_read_file(path, &jlen);
    json_value *cj = jtext ? json_parse(jtext, jlen) : NULL;
    free(jtext);
    float *row = load_f32(dir, "row.npy", &n_row);
    float *last = load_f32(dir, "logits_last.npy", &n_last);
    const int H = pg_model_n_embd(m[1]), V = pg_model_n_vocab(m[1]);
    CHECK_MSG(cj && row && last, "%s: cannot read case.json, row.npy or logits_last.npy", dir);
    if (!cj || !row || !last) goto done;
    CHECK_EQ_INT(n_row, H);
    CHECK_EQ_INT(n_last, V);
    if (n_row != (size_t)H || n_last != (size_t)V) goto done;

    const json_value *seq = json_get(cj, "sequence"), *gen = json_get(cj, "gen"),
                     *margin = json_get(cj, "gen_margin");
    const int n_seq = (int)json_len(seq), slot = (int)json_num(json_get(cj, "slot_position"));
    const int n_gen = (int)json_len(gen);
    int32_t ids[512];
    CHECK(n_seq > slot && slot > 0 && n_seq <= 512);
    if (!(n_seq > slot && slot > 0 && n_seq <= 512)) goto done;
    for (int i = 0; i < n_seq; i++) ids[i] = (int32_t)json_num(json_at(seq, i));
    double scale = max_abs(last, V);
    float *logits[2] = {malloc(sizeof(float) * (size_t)V), malloc(sizeof(float) * (size_t)V)};
    for (int d = 1; d >= 0; d--) { /* CUDA first: it is what this test is about */
        pg_session *s = NULL;
        CHECK_OK(session(m[d], 0, &s));
        if (!s) continue;
        CHECK_OK(pg_session_eval_tokens(s, ids, (size_t)slot));
        CHECK_OK(pg_session_eval_embeddings(s, row, 1));
        CHECK_OK(pg_session_eval_tokens(s, ids + slot + 1, (size_t)(n_seq - slot - 1)));
        CHECK_OK(pg_session_logits(s, logits[d], (size_t)V));
        const double err = max_rel(logits[d], last, (size_t)V);
        printf("pandagpt-e2e %-11s %s: logits vs llama.cpp max rel %.2e (tol 1e-4)\n", name,
               d ? "CUDA" : "CPU ", err);
        CHECK_MSG(err <= 1e-4, "%s %s: logits vs logits_last.npy max rel %.3g > 1e-4", name,
                  d ? "CUDA" : "CPU", err);
        if (d == 1) { /* greedy continuation on CUDA, teacher-forced with the reference's ids */
            float *lg = malloc(sizeof(float) * (size_t)V);
            memcpy(lg, logits[1], sizeof(float) * (size_t)V);
            int agree = 0, diverged = 0;
            for (int k = 0; k < n_gen; k++) {
                const int32_t want = (int32_t)json_num(json_at(gen, k));
                const int got = argmax(lg, V);
                if (got == want && !diverged) {
                    agree++;
                } else if (!diverged) {
                    const double mg = json_num(json_at(margin, k));
                    CHECK_MSG(mg < 1e-4 * scale, "%s: CUDA greedy token %d is %d, llama.cpp chose "
                              "%d with margin %g", name, k, got, (int)want, mg);
                    diverged = 1; /* a near tie: the rest is compared no further */
                }
                if (k + 1 < n_gen) {
                    CHECK_OK(pg_session_eval_tokens(s, &want, 1));
                    CHECK_OK(pg_session_logits(s, lg, (size_t)V));
                }
            }
            printf("pandagpt-e2e %-11s CUDA: %d/%d greedy ids equal llama.cpp's%s\n", name, agree,
                   n_gen, diverged ? " (then a near tie)" : "");
            free(lg);
        }
        pg_session_free(s);
    }
    const double e_dev = max_rel(logits[1], logits[0], (size_t)V);
    printf("pandagpt-e2e %-11s CUDA vs CPU logits max rel %.2e (tol 1e-4)\n", name, e_dev);
    CHECK(e_dev <= 1e-4);
    free(logits[0]);
    free(logits[1]);
done:
    free(row);
    free(last);
    json_free(cj);
}

static void test_pandagpt_e2e(void) {
    const char *ref = getenv("PG_GPU_REFERENCE_DIR");
    if (!ref || !*ref) ref = check_reference_dir();
    if (!ref) {
        printf("SKIP (part 2): no reference directory\n");
        return;
    }
    char buf[600];
    const char *llm = e2e_llm(ref, buf, sizeof buf);
    if (!llm) return;
    pg_model *m[2] = {NULL, NULL};
    CHECK_OK(load(llm, NULL, PG_DEVICE_CPU, &m[0]));
    pg_status st = load(llm, NULL, PG_DEVICE_CUDA, &m[1]);
    CHECK_MSG(st == PG_OK, "pandagpt-e2e: pg_model_load on CUDA: %s", pg_last_error());
    if (m[0] && m[1]) {
        e2e_case(m, ref, "image");
        e2e_case(m, ref, "image_audio");
    }
    pg_model_free(m[0]);
    pg_model_free(m[1]);
    if (llm == buf) unlink(buf);
}

/* ---- 3. ImageBind, CUDA vs CPU ------------------------------------------------------------- */

static pg_media *random_media(pg_modality mod) {
    int64_t shape[5];
    int nd;
    switch (mod) {
    case PG_MODALITY_IMAGE: nd = 3, shape[0] = 3, shape[1] = 224, shape[2] = 224; break;
    case PG_MODALITY_VIDEO:
        nd = 5, shape[0] = 2, shape[1] = 3, shape[2] = 2, shape[3] = 224, shape[4] = 224;
        break;
    case PG_MODALITY_AUDIO: nd = 4, shape[0] = 3, shape[1] = 1, shape[2] = 128, shape[3] = 204;
        break;
    case PG_MODALITY_DEPTH:
    case PG_MODALITY_THERMAL: nd = 3, shape[0] = 1, shape[1] = 224, shape[2] = 224; break;
    default: nd = 2, shape[0] = 6, shape[1] = 2000; break;
    }
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
    float *x = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        x[i] = mod == PG_MODALITY_DEPTH ? 0.5f + 0.5f * rnd() : 2.0f * rnd();
    pg_media *media = NULL;
    CHECK_OK(pg_media_from_tensor(mod, x, shape, nd, &media));
    free(x);
    return media;
}

static void test_imagebind(void) {
    static const char *names[] = {"image", "video", "audio", "depth", "thermal", "imu"};
    char path[512];
    path_in_tmp(path, sizeof path, "imagebind.gguf");
    random_imagebind_config c;
    random_imagebind_preset("tiny", &c);
    c.type = PG_DTYPE_F32;
    CHECK_OK(random_imagebind_write(&c, path, "test_cuda_e2e"));
    pg_model *m[2] = {NULL, NULL};
    CHECK_OK(load(NULL, path, PG_DEVICE_CPU, &m[0]));
    pg_status st = load(NULL, path, PG_DEVICE_CUDA, &m[1]);
    CHECK_MSG(st == PG_OK, "imagebind: pg_model_load on CUDA: %s", pg_last_error());
    if (m[0] && m[1]) {
        const int dim = pg_model_embed_dim(m[0]);
        float *e[2] = {malloc(sizeof(float) * (size_t)dim), malloc(sizeof(float) * (size_t)dim)};
        for (int mod = PG_MODALITY_IMAGE; mod <= PG_MODALITY_IMU; mod++) {
            if (quick && mod != PG_MODALITY_IMAGE) continue;
            pg_media *media = random_media((pg_modality)mod);
            if (!media) continue;
            for (int d = 0; d < 2; d++) {
                for (int i = 0; i < dim; i++) e[d][i] = NAN;
                st = pg_embed(m[d], media, e[d], (size_t)dim);
                CHECK_MSG(st == PG_OK, "pg_embed(%s) on %s: %s", names[mod], d ? "CUDA" : "CPU",
                          pg_last_error());
            }
            const double err = max_rel(e[1], e[0], (size_t)dim);
            printf("imagebind tiny %-8s pg_embed CUDA vs CPU max rel %.2e (tol 1e-4)\n",
                   names[mod], err);
            CHECK_MSG(err <= 1e-4, "pg_embed(%s) CUDA vs CPU max rel %.3g > 1e-4", names[mod],
                      err);
            pg_media_free(media);
        }
        free(e[0]);
        free(e[1]);
    }
    pg_model_free(m[0]);
    pg_model_free(m[1]);
    unlink(path);
}

/* ---- 4. out of device memory, and leaks ----------------------------------------------------- */

#define MAX_FILL 1024
static void *fill_blocks[MAX_FILL];
static int n_fill = 0;

static size_t free_mem(void) {
    size_t fr = 0, total = 0;
    cudaError_t e = cudaMemGetInfo(&fr, &total);
    CHECK_MSG(e == cudaSuccess, "cudaMemGetInfo: %s", cudaGetErrorString(e));
    return fr;
}

/* cudaMallocs filler until about `left` bytes of device memory are free; returns what is. */
static size_t fill_device(size_t left) {
    const size_t chunk = (size_t)1 << 30, grain = (size_t)2 << 20;
    size_t fr = free_mem();
    while (n_fill < MAX_FILL && fr > left + grain) {
        size_t want = fr - left > chunk ? chunk : (fr - left) / grain * grain;
        if (want == 0) break;
        void *p = NULL;
        if (cudaMalloc(&p, want) != cudaSuccess) {
            cudaGetLastError(); /* clear it: a failed filler is not the library's error */
            if (want <= grain) break;
            left += grain; /* fragmentation: accept a little more slack */
            continue;
        }
        fill_blocks[n_fill++] = p;
        fr = free_mem();
    }
    return fr;
}

static void unfill_device(void) {
    for (int i = 0; i < n_fill; i++) cudaFree(fill_blocks[i]);
    n_fill = 0;
}

/* Load, one session, 9 tokens, free: what every later measurement is compared against. */
static void cycle(const char *path) {
    pg_model *m = NULL;
    pg_session *s = NULL;
    CHECK_OK(load(path, NULL, PG_DEVICE_CUDA, &m));
    if (m) CHECK_OK(session(m, 64, &s));
    if (s) {
        static const int32_t ids[9] = {1, 5, 6, 7, 8, 9, 10, 11, 12};
        CHECK_OK(pg_session_eval_tokens(s, ids, 9));
        CHECK_OK(pg_session_eval_tokens(s, ids, 1));
    }
    pg_session_free(s);
    pg_model_free(m);
}

static void test_out_of_memory(void) {
    char tiny[512], big[512];
    path_in_tmp(tiny, sizeof tiny, "oom-tiny.gguf");
    path_in_tmp(big, sizeof big, "oom-big.gguf");
    random_llama_config c;
    random_llama_preset("tiny", &c);
    c.type = PG_DTYPE_F32;
    CHECK_OK(random_llama_write(&c, tiny, "oom tiny"));
    /* 8 × (4·1024² + 3·1024·2816) + 2·1320·1024 ≈ 104 M parameters, 0.42 GB in F32 */
    random_llama_config cb = {.n_embd = 1024, .n_layer = 8, .n_head = 8, .n_head_kv = 8,
                              .n_ff = 2816, .n_vocab = 1320, .n_ctx = 2048,
                              .type = PG_DTYPE_F32, .seed = 99};
    CHECK_OK(random_llama_write(&cb, big, "oom big"));
    const double big_mb = (double)random_llama_n_params(&cb) * 4 / (1 << 20);

    cycle(tiny); /* lazily loaded kernels, cuBLAS state: counted before the baseline */
    const size_t free0 = free_mem();
    cycle(tiny);
    const size_t free1 = free_mem();
    printf("oom: free device memory %.1f MiB; after a load/eval/free cycle %+lld bytes\n",
           (double)free0 / (1 << 20), (long long)free1 - (long long)free0);
    CHECK_MSG(free1 == free0, "a load/session/eval/free cycle leaked %lld bytes of device memory",
              (long long)free0 - (long long)free1);

    /* a model bigger than what is left */
    size_t left = fill_device((size_t)192 << 20);
    pg_model *m = (pg_model *)1;
    pg_status st = load(big, NULL, PG_DEVICE_CUDA, &m);
    printf("oom: %.1f MiB left, a %.0f MiB model: %s: %s\n", (double)left / (1 << 20), big_mb,
           pg_status_string(st), pg_last_error());
    CHECK_STATUS(st, PG_ERR_OUT_OF_MEMORY);
    CHECK(m == NULL);
    if (st == PG_OK) pg_model_free(m);
    unfill_device();

    /* a session whose KV cache does not fit */
    pg_model *mt = NULL;
    CHECK_OK(load(tiny, NULL, PG_DEVICE_CUDA, &mt));
    if (mt) {
        left = fill_device((size_t)8 << 20);
        pg_session *s = (pg_session *)1;
        st = session(mt, 2048, &s); /* 2 × 4 layers × 2048 × 256 floats = 16 MiB of KV */
        printf("oom: %.1f MiB left, a session of 2048 positions: %s: %s\n",
               (double)left / (1 << 20), pg_status_string(st), pg_last_error());
        CHECK_STATUS(st, PG_ERR_OUT_OF_MEMORY);
        CHECK(s == NULL);
        if (st == PG_OK) pg_session_free(s);
        unfill_device();
        /* the model still works afterwards */
        s = NULL;
        CHECK_OK(session(mt, 64, &s));
        if (s) {
            static const int32_t ids[3] = {1, 2, 3};
            CHECK_OK(pg_session_eval_tokens(s, ids, 3));
        }
        pg_session_free(s);
        pg_model_free(mt);
    }
    const size_t free2 = free_mem();
    printf("oom: after freeing everything, free device memory differs by %+lld bytes\n",
           (long long)free2 - (long long)free0);
    CHECK_MSG(free2 == free0, "the out-of-memory paths leaked %lld bytes of device memory",
              (long long)free0 - (long long)free2);
    unlink(tiny);
    unlink(big);
}

/* ---- main --------------------------------------------------------------------------------- */

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* figures and CHECK messages (stderr) in order */
    const char *q = getenv("PG_GPU_QUICK"), *req = getenv("PG_GPU_REQUIRED");
    const int required = req && *req == '1';
    quick = q && *q == '1';
    int n_dev = 0;
    pg_status s = pg_cuda_device_count(&n_dev);
    if (s != PG_OK || n_dev == 0) {
        printf("SKIP: no usable CUDA device (pg_cuda_device_count: %s, %d devices)%s\n",
               pg_status_string(s), n_dev, required ? " but PG_GPU_REQUIRED=1" : "");
        return required ? 1 : CHECK_SKIP;
    }
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    if (cudaFree(NULL) != cudaSuccess) { /* the test's own context: the library shares it */
        fprintf(stderr, "cannot initialise the CUDA runtime\n");
        return 1;
    }

    random_llama_config c;
    random_llama_preset("tiny", &c);
    c.type = PG_DTYPE_F32;
    test_llama("tiny F32", &c, 1e-4, quick ? 8 : 32);
    if (!quick) {
        c.type = PG_DTYPE_F16;
        test_llama("tiny F16", &c, 1e-3, 32);
        c.type = PG_DTYPE_Q8_0;
        test_llama("tiny Q8_0", &c, 1e-3, 32);
        c.type = PG_DTYPE_F32;
        c.n_head_kv = 2; /* grouped-query: 4 query heads per key/value head */
        test_llama("tiny F32 GQA 8/2", &c, 1e-4, 32);
    }
    test_pandagpt_e2e();
    test_imagebind();
    if (!quick) test_out_of_memory();

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_done("test_cuda_e2e");
}

#endif /* PG_HAVE_CUDA */
