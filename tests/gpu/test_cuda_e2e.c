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
 *   2b. The same case wholly on the device, from the media (as tests/golden/test_e2e_chat.c):
 *      the models also load the encoder GGUF (F32, with llama_proj: PG_GPU_E2E_ENCODER, else
 *      converted from imagebind-tiny's .pth and the delta); the media are the files
 *      (imagebind-tiny/media/scene.jpg, speech_22k.wav) or, where the build has no decoder for
 *      them (PG_ERR_UNSUPPORTED: the device machine has no media libraries) or they are absent,
 *      the reference's preprocessed tensors of the same files (preproc/vision.npy row 0,
 *      preproc/audio.npy file 0) through pg_media_from_tensor, which the output says. Per case
 *      (image; image + audio — the slot a sum of two projections on the device): pg_embed on
 *      CUDA and CPU vs u.npy <= 1e-5; pg_session_chat(media, the case's prompt, greedy) with
 *      max_tokens 1, after which pg_session_logits gives the last prompt row's logits: vs
 *      logits_last.npy <= 1e-4 on both devices, CUDA vs CPU <= 1e-4, n_past = the reference's
 *      prompt length; after pg_session_reset the greedy answer (16 tokens): each device's
 *      streamed ids equal llama.cpp's up to a near tie, and CUDA's streamed ids and answer text
 *      equal the CPU's (a difference is accepted only at a step where both still follow
 *      llama.cpp and its margin is a near tie). Skipped (with a message) without the encoder
 *      file, or without both the media files' decoders and the preprocessed tensors.
 *   3. ImageBind (tools/random_imagebind "tiny", F32): pg_embed of random inputs of all six
 *      modalities, CUDA vs CPU, max rel <= 1e-4; then several clips: a video of 15 clips (one
 *      trunk pass of a whole video, attention batched over the clips), audio of 3, and more
 *      clips than the 15 a state holds per pass — video 17 and 31, audio 16 and 64 — whose
 *      passes are summed on the device (l2norm_sum accumulating), CUDA vs CPU <= 1e-4. (The
 *      encoders against the upstream goldens: test_cuda_encoders.c.)
 *   4. Out of device memory: the test itself cudaMallocs filler until 192 MiB are left, then
 *      pg_model_load of a 0.4 GB model must fail with PG_ERR_OUT_OF_MEMORY (and *out NULL); with
 *      a tiny model loaded and 8 MiB left, pg_session_new (a 16 MiB KV cache) must fail the same
 *      way; after everything is freed, cudaMemGetInfo's free memory equals its value before
 *      (measured after one full load/eval/free cycle, so lazily loaded kernels and library
 *      state are already counted), and a load/eval/free cycle leaks nothing either.
 *
 * PG_GPU_QUICK=1 (for compute-sanitizer): the F32 tiny model with 8 decode steps, the reference
 * case (2b: the image case only), the image tower and the 17-clip video; no out-of-memory part.
 * Skips (77) without CUDA in the build or without a device, unless PG_GPU_REQUIRED=1.
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
#include "gpu_test.h"

#ifndef PG_HAVE_CUDA

int main(void) { return gpu_test_no_cuda(); }

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
    const char *py = gpu_test_python("part 2, PG_GPU_E2E_LLM unset");
    if (!py) return NULL;
    snprintf(buf, cap, "%s/e2e-llm.gguf", tmpdir);
    char args[16384];
    snprintf(args, sizeof args, "--outtype f32 --vicuna '%s/pandagpt-e2e/vicuna-tiny' "
             "--delta '%s/pandagpt-e2e/pandagpt-delta/pytorch_model.pt' --llm-out '%s'",
             ref, ref, buf);
    return gpu_test_convert(py, args) ? buf : NULL;
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

/* ---- 2b. the same case wholly on the device, from the media ---------------------------------- */

/* The converted encoder GGUF (F32, with llama_proj): PG_GPU_E2E_ENCODER, or converted into
 * tmpdir. NULL (after saying why) to skip. */
static const char *e2e_encoder(const char *ref, char *buf, size_t cap) {
    const char *given = getenv("PG_GPU_E2E_ENCODER");
    if (given && *given) return given;
    char pth[4400];
    snprintf(pth, sizeof pth, "%s/imagebind-tiny/model/imagebind_tiny_seed0.pth", ref);
    if (access(pth, R_OK) != 0) {
        printf("SKIP (part 2b): no %s, and PG_GPU_E2E_ENCODER is unset\n", pth);
        return NULL;
    }
    const char *py = gpu_test_python("part 2b, PG_GPU_E2E_ENCODER unset");
    if (!py) return NULL;
    snprintf(buf, cap, "%s/e2e-encoder.gguf", tmpdir);
    char args[16384];
    snprintf(args, sizeof args, "--outtype f32 --imagebind '%s' "
             "--imagebind-heads vision=4,audio=4,thermal=4,depth=4,imu=2,text=2 "
             "--delta '%s/pandagpt-e2e/pandagpt-delta/pytorch_model.pt' --encoder-out '%s'",
             pth, ref, buf);
    return gpu_test_convert(py, args) ? buf : NULL;
}

/* One medium of the case: the file (scene.jpg or speech_22k.wav) decoded by the library, or,
 * where this build has no decoder for it (the device machine has no media libraries) or the
 * file is not there, the reference's preprocessed tensor of the same file (what the case's u.npy
 * was computed from: preproc/vision.npy row 0, preproc/audio.npy file 0). NULL when neither. */
static pg_media *e2e_media(const char *ref, int is_audio) {
    char path[4400];
    snprintf(path, sizeof path, "%s/imagebind-tiny/media/%s", ref,
             is_audio ? "speech_22k.wav" : "scene.jpg");
    pg_media *media = NULL;
    const pg_modality mod = is_audio ? PG_MODALITY_AUDIO : PG_MODALITY_IMAGE;
    pg_status s = pg_media_load_file(mod, path, &media);
    if (s == PG_OK) {
        printf("pandagpt-e2e media: %s decoded by the library\n", path);
        return media;
    }
    if (s != PG_ERR_UNSUPPORTED && s != PG_ERR_IO) {
        CHECK_MSG(0, "%s: %s", path, pg_last_error());
        return NULL;
    }
    printf("pandagpt-e2e media: %s: %s: %s\n", path, pg_status_string(s), pg_last_error());
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/imagebind-tiny/preproc", ref);
    const char *file = is_audio ? "audio.npy" : "vision.npy";
    static const int64_t img_shape[3] = {3, 224, 224}, aud_shape[4] = {3, 1, 128, 204};
    const size_t need = is_audio ? (size_t)3 * 128 * 204 : (size_t)3 * 224 * 224;
    size_t n = 0;
    float *x = load_f32(dir, file, &n);
    if (!x || n < need) {
        printf("SKIP (part 2b): nor can %s/%s be read instead\n", dir, file);
        free(x);
        return NULL;
    }
    s = pg_media_from_tensor(mod, x, is_audio ? aud_shape : img_shape, is_audio ? 4 : 3, &media);
    CHECK_MSG(s == PG_OK, "pg_media_from_tensor(%s): %s", file, pg_last_error());
    free(x);
    if (s == PG_OK)
        printf("pandagpt-e2e media: instead, the reference's preprocessed tensor %s/%s %s\n",
               dir, file, is_audio ? "(file 0: speech_22k.wav, 3 clips)"
                                   : "(row 0: scene.jpg)");
    return s == PG_OK ? media : NULL;
}

typedef struct streamed {
    int32_t ids[64];
    int n;
} streamed;

static int collect(const char *piece, size_t len, int32_t token, void *user) {
    (void)piece;
    (void)len;
    streamed *c = user;
    if (c->n < 64) c->ids[c->n++] = token;
    return 0;
}

/* PandaGPT's whole path on each model (0 CPU, 1 CUDA, both with the encoder): the case's media
 * encoded, projected and summed by pg_session_chat on the session's backend; the first-token
 * logits (a turn of max_tokens 1 evaluates the prompt and samples once, leaving the last prompt
 * row's logits) vs llama.cpp's; then the greedy answer, CUDA's streamed ids and text equal to
 * the CPU's. */
static void e2e_chat_case(pg_model *m[2], const char *ref, const char *name) {
    char dir[4200], path[4400];
    snprintf(dir, sizeof dir, "%s/pandagpt-e2e/cases/%s", ref, name);
    snprintf(path, sizeof path, "%s/case.json", dir);
    size_t jlen, n_last = 0, n_u = 0;
    char *jtext = json_read_file(path, &jlen);
    json_value *cj = jtext ? json_parse(jtext, jlen) : NULL;
    free(jtext);
    float *last = load_f32(dir, "logits_last.npy", &n_last);
    float *u = load_f32(dir, "u.npy", &n_u); /* optional: --prepare copies it */
    const int V = pg_model_n_vocab(m[1]), dim = pg_model_embed_dim(m[1]);
    pg_media *media[2] = {NULL, NULL};
    float *logits[2] = {NULL, NULL}, *e = NULL;
    streamed got[2];
    static char answer[2][4096]; /* at most 64 tokens' pieces */
    memset(got, 0, sizeof got);
    memset(answer, 0, sizeof answer);
    CHECK_MSG(cj && last, "%s: cannot read case.json or logits_last.npy", dir);
    if (!cj || !last) goto done;
    CHECK_EQ_INT(n_last, V);
    if (n_last != (size_t)V) goto done;

    const json_value *mods = json_get(cj, "modalities"), *gen = json_get(cj, "gen"),
                     *margin = json_get(cj, "gen_margin");
    const size_t n_media = mods ? json_len(mods) : 0;
    const int n_gen = (int)json_len(gen), n_seq = (int)json_len(json_get(cj, "sequence"));
    const char *prompt = json_str(json_get(cj, "prompt"), NULL);
    CHECK(n_media >= 1 && n_media <= 2 && prompt && n_gen >= 3 && n_gen <= 64);
    if (n_media < 1 || n_media > 2 || !prompt || n_gen < 3 || n_gen > 64) goto done;
    for (size_t i = 0; i < n_media; i++) {
        const char *src = json_str(json_get(json_at(mods, i), "source"), NULL);
        media[i] = e2e_media(ref, src && strstr(src, "audio") != NULL);
        if (!media[i]) goto done;
    }

    /* the media's vectors on each device, against PandaGPT's (u.npy) */
    e = malloc(sizeof(float) * (size_t)dim);
    for (size_t i = 0; u && n_u == n_media * (size_t)dim && i < n_media; i++)
        for (int d = 1; d >= 0; d--) {
            CHECK_OK(pg_embed(m[d], media[i], e, (size_t)dim));
            const double err = max_rel(e, u + i * (size_t)dim, (size_t)dim);
            printf("pandagpt-e2e %-11s %s: pg_embed(media %zu) vs u.npy max rel %.2e (tol "
                   "1e-5)\n", name, d ? "CUDA" : "CPU ", i, err);
            CHECK_MSG(err <= 1e-5, "%s %s: pg_embed(media %zu) vs u.npy max rel %.3g > 1e-5",
                      name, d ? "CUDA" : "CPU", i, err);
        }

    const double scale = max_abs(last, V);
    pg_generate_params g;
    pg_generate_params_init(&g);
    g.temperature = 0.0f; /* greedy */
    for (int d = 1; d >= 0; d--) { /* CUDA first: it is what this test is about */
        const char *dev = d ? "CUDA" : "CPU ";
        pg_session *s = NULL;
        CHECK_OK(session(m[d], 0, &s));
        if (!s) continue;
        logits[d] = malloc(sizeof(float) * (size_t)V);
        g.max_tokens = 1;
        pg_status st = pg_session_chat(s, prompt, media, n_media, &g, NULL, NULL);
        CHECK_MSG(st == PG_OK, "%s %s: pg_session_chat: %s", name, dev, pg_last_error());
        CHECK_EQ_INT(pg_session_n_past(s), n_seq); /* the prompt the reference evaluated */
        if (st == PG_OK) st = pg_session_logits(s, logits[d], (size_t)V);
        if (st == PG_OK) {
            const double err = max_rel(logits[d], last, (size_t)V);
            printf("pandagpt-e2e %-11s %s: pg_session_chat from the media, first-token logits "
                   "vs llama.cpp max rel %.2e (tol 1e-4)\n", name, dev, err);
            CHECK_MSG(err <= 1e-4, "%s %s: chat first-token logits vs logits_last.npy max rel "
                      "%.3g > 1e-4", name, dev, err);
        } else {
            free(logits[d]);
            logits[d] = NULL;
        }

        /* the greedy answer, media encoded again after the reset */
        CHECK_OK(pg_session_reset(s));
        g.max_tokens = n_gen;
        st = pg_session_chat(s, prompt, media, n_media, &g, collect, &got[d]);
        CHECK_MSG(st == PG_OK, "%s %s: greedy pg_session_chat: %s", name, dev, pg_last_error());
        size_t alen = 0;
        CHECK_OK(pg_session_answer(s, answer[d], sizeof answer[d], &alen));
        int agree = 0;
        for (int k = 0; k < got[d].n && k < n_gen; k++) {
            const int32_t want = (int32_t)json_num(json_at(gen, k));
            if (got[d].ids[k] == want) {
                agree++;
                continue;
            }
            const double mg = json_num(json_at(margin, k));
            CHECK_MSG(mg < 1e-4 * scale, "%s %s: streamed token %d is %d, llama.cpp chose %d "
                      "with margin %g", name, dev, k, (int)got[d].ids[k], (int)want, mg);
            break; /* a near tie: the rest follows another path */
        }
        printf("pandagpt-e2e %-11s %s: greedy pg_session_chat streamed %d ids, %d equal "
               "llama.cpp's (of %d)\n", name, dev, got[d].n, agree, n_gen);
        CHECK(got[d].n >= n_gen - 2);
        pg_session_free(s);
    }
    if (logits[0] && logits[1]) {
        const double err = max_rel(logits[1], logits[0], (size_t)V);
        printf("pandagpt-e2e %-11s chat first-token logits CUDA vs CPU max rel %.2e (tol 1e-4)\n",
               name, err);
        CHECK(err <= 1e-4);
    }
    /* CUDA's stream equals the CPU's; a difference is allowed only where both still follow
     * llama.cpp and its margin there is a near tie */
    int k = 0;
    while (k < got[0].n && k < got[1].n && got[0].ids[k] == got[1].ids[k]) k++;
    const int same = k == got[0].n && k == got[1].n;
    if (same) {
        const int same_text = strcmp(answer[0], answer[1]) == 0;
        printf("pandagpt-e2e %-11s CUDA's %d streamed ids equal the CPU's; answers %s\n",
               name, got[1].n, same_text ? "equal" : "DIFFER");
        CHECK_MSG(same_text, "%s: CUDA answer \"%s\" != CPU answer \"%s\"", name, answer[1],
                  answer[0]);
    } else {
        int on_ref = k < n_gen;
        for (int i = 0; i < k && on_ref; i++)
            on_ref = got[0].ids[i] == (int32_t)json_num(json_at(gen, i));
        const double mg = on_ref ? json_num(json_at(margin, k)) : INFINITY;
        printf("pandagpt-e2e %-11s CUDA's streamed ids differ from the CPU's at %d (llama.cpp's "
               "margin there %g, near-tie bound %g)\n", name, k, mg, 1e-4 * scale);
        CHECK_MSG(mg < 1e-4 * scale, "%s: CUDA's streamed id %d differs from the CPU's, not at "
                  "a near tie", name, k);
    }
done:
    for (int d = 0; d < 2; d++) free(logits[d]);
    for (size_t i = 0; i < 2; i++) pg_media_free(media[i]);
    free(e);
    free(u);
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
    char buf[600], ebuf[600];
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

    /* 2b: from the media, the encoders on the device too */
    const char *enc = e2e_encoder(ref, ebuf, sizeof ebuf);
    if (enc) {
        m[0] = m[1] = NULL;
        CHECK_OK(load(llm, enc, PG_DEVICE_CPU, &m[0]));
        st = load(llm, enc, PG_DEVICE_CUDA, &m[1]);
        CHECK_MSG(st == PG_OK, "pandagpt-e2e with the encoder: pg_model_load on CUDA: %s",
                  pg_last_error());
        if (m[0] && m[1]) {
            e2e_chat_case(m, ref, "image");
            if (!quick) e2e_chat_case(m, ref, "image_audio");
        }
        pg_model_free(m[0]);
        pg_model_free(m[1]);
        if (enc == ebuf) unlink(ebuf);
    }
    if (llm == buf) unlink(buf);
}

/* ---- 3. ImageBind, CUDA vs CPU ------------------------------------------------------------- */

/* A random input tensor of mod; VIDEO and AUDIO with n_clips clips. */
static pg_media *random_media(pg_modality mod, int n_clips) {
    int64_t shape[5];
    int nd;
    switch (mod) {
    case PG_MODALITY_IMAGE: nd = 3, shape[0] = 3, shape[1] = 224, shape[2] = 224; break;
    case PG_MODALITY_VIDEO:
        nd = 5, shape[0] = n_clips, shape[1] = 3, shape[2] = 2, shape[3] = 224, shape[4] = 224;
        break;
    case PG_MODALITY_AUDIO:
        nd = 4, shape[0] = n_clips, shape[1] = 1, shape[2] = 128, shape[3] = 204;
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

/* pg_embed of one random input on both models, CUDA vs CPU. */
static void embed_pair(pg_model *m[2], pg_modality mod, int n_clips, const char *label) {
    const int dim = pg_model_embed_dim(m[0]);
    float *e[2] = {malloc(sizeof(float) * (size_t)dim), malloc(sizeof(float) * (size_t)dim)};
    pg_media *media = random_media(mod, n_clips);
    if (media) {
        for (int d = 0; d < 2; d++) {
            for (int i = 0; i < dim; i++) e[d][i] = NAN;
            pg_status st = pg_embed(m[d], media, e[d], (size_t)dim);
            CHECK_MSG(st == PG_OK, "pg_embed(%s) on %s: %s", label, d ? "CUDA" : "CPU",
                      pg_last_error());
        }
        const double err = max_rel(e[1], e[0], (size_t)dim);
        printf("imagebind tiny %-22s pg_embed CUDA vs CPU max rel %.2e (tol 1e-4)\n", label,
               err);
        CHECK_MSG(err <= 1e-4, "pg_embed(%s) CUDA vs CPU max rel %.3g > 1e-4", label, err);
        pg_media_free(media);
    }
    free(e[0]);
    free(e[1]);
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
        for (int mod = PG_MODALITY_IMAGE; mod <= PG_MODALITY_IMU; mod++) {
            if (quick && mod != PG_MODALITY_IMAGE) continue;
            const int clips = mod == PG_MODALITY_VIDEO ? 2 : mod == PG_MODALITY_AUDIO ? 3 : 1;
            embed_pair(m, (pg_modality)mod, clips, names[mod]);
        }
        /* several clips in one trunk pass (the whole video of 15), and more clips than a
         * state holds (15 per pass on both devices: the passes' vectors are summed on the
         * device, l2norm_sum accumulating) */
        static const struct { pg_modality mod; int clips; const char *label; int in_quick; }
            multi[] = {
                {PG_MODALITY_VIDEO, 15, "video 15 clips", 0},
                {PG_MODALITY_AUDIO, 3, "audio 3 clips", 0},
                {PG_MODALITY_VIDEO, 17, "video 17 clips (15+2)", 1},
                {PG_MODALITY_VIDEO, 31, "video 31 clips (15+15+1)", 0},
                {PG_MODALITY_AUDIO, 16, "audio 16 clips (15+1)", 0},
                {PG_MODALITY_AUDIO, 64, "audio 64 clips (4x15+4)", 0},
            };
        for (size_t i = 0; i < sizeof multi / sizeof multi[0]; i++)
            if (!quick || multi[i].in_quick)
                embed_pair(m, multi[i].mod, multi[i].clips, multi[i].label);
        /* one shape again and again, new inputs each time: the CUDA pass runs queued, then is
         * recorded into a graph (its second time), then replayed */
        static const char *again[] = {"image again (graph recorded)", "image again (replayed)",
                                      "image again (replayed, 2)"};
        for (int r = 0; r < 3; r++) embed_pair(m, PG_MODALITY_IMAGE, 1, again[r]);
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
    const int skip = gpu_test_start(&quick);
    if (skip >= 0) return skip;
    if (gpu_test_setup(tmpdir)) return 1;

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
