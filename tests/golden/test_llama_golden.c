/*
 * test_llama_golden.c — the LLaMA forward pass against llama.cpp's goldens
 * (../shared/reference/llama: tiny-f32.gguf, tiny-f16.gguf, the golden JSON and .last.f32).
 *
 * For each model and prompt: our tokenisation equals llama.cpp's; every prompt position's logit
 * mean and RMS match; the last position's top 10 (and, for F32, all 32000 logits) match within
 * the tolerance relative to max |logit| (F32 1e-5, F16 2e-3); the 16 greedy tokens match while
 * the golden's margin exceeds the tolerance, and from then on we compare teacher-forced (feeding
 * the golden ids). The whole prompt is evaluated in one batch and token by token: both paths
 * must give the same last logits.
 */
#include <pandagpt.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static float max_abs(const float *x, int n) {
    float m = 0;
    for (int i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

static void mean_rms(const float *x, int n, double *mean, double *rms) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) {
        s += x[i];
        ss += (double)x[i] * x[i];
    }
    *mean = s / n;
    *rms = sqrt(ss / n);
}

/* Runs one golden case; tol is relative to max |logit|. */
static void check_case(const char *ref, pg_model *m, const char *model, const char *prompt_name,
                       double tol) {
    char path[8192];
    snprintf(path, sizeof path, "%s/llama/golden/%s.%s.json", ref, model, prompt_name);
    size_t len;
    char *text = json_read_file(path, &len);
    CHECK_MSG(text, "cannot read %s", path);
    if (!text) return;
    json_value *g = json_parse(text, len);
    free(text);
    CHECK_MSG(g, "%s: %s", path, json_last_error());
    if (!g) return;

    const int n_vocab = pg_model_n_vocab(m);
    CHECK_EQ_INT(n_vocab, (int)json_num(json_get(g, "n_vocab")));
    float *logits = malloc(sizeof(float) * n_vocab);
    float *batch_logits = malloc(sizeof(float) * n_vocab);

    /* tokenisation, BOS included, as llama.cpp did it */
    size_t plen;
    const char *prompt = json_str(json_get(g, "prompt"), &plen);
    const json_value *want = json_get(g, "tokens");
    int32_t tokens[512];
    size_t n_tok;
    CHECK_OK(pg_tokenize(m, prompt, plen, 1, tokens, 512, &n_tok));
    CHECK_EQ_INT(n_tok, json_len(want));
    for (size_t i = 0; i < n_tok && i < json_len(want); i++)
        CHECK_MSG(tokens[i] == (int32_t)json_num(json_at(want, i)),
                  "%s/%s: token %zu is %d, llama.cpp has %d", model, prompt_name, i, tokens[i],
                  (int)json_num(json_at(want, i)));

    /* batch path: the whole prompt at once */
    pg_session *s;
    CHECK_OK(pg_session_new(m, NULL, &s));
    CHECK_OK(pg_session_eval_tokens(s, tokens, n_tok));
    CHECK_OK(pg_session_logits(s, batch_logits, n_vocab));
    pg_session_free(s);

    /* token by token: every position's logit statistics */
    CHECK_OK(pg_session_new(m, NULL, &s));
    const json_value *pos_mean = json_get(g, "pos_mean"), *pos_rms = json_get(g, "pos_rms");
    double worst_stat = 0;
    for (size_t i = 0; i < n_tok; i++) {
        CHECK_OK(pg_session_eval_tokens(s, &tokens[i], 1));
        CHECK_OK(pg_session_logits(s, logits, n_vocab));
        double mean, rms;
        mean_rms(logits, n_vocab, &mean, &rms);
        double scale = max_abs(logits, n_vocab);
        double e1 = fabs(mean - json_num(json_at(pos_mean, i))) / scale;
        double e2 = fabs(rms - json_num(json_at(pos_rms, i))) / scale;
        worst_stat = fmax(worst_stat, fmax(e1, e2));
        CHECK_MSG(e1 <= tol && e2 <= tol, "%s/%s pos %zu: mean %.7f (want %.7f) rms %.7f (want "
                  "%.7f)", model, prompt_name, i, mean, json_num(json_at(pos_mean, i)), rms,
                  json_num(json_at(pos_rms, i)));
    }

    double scale = max_abs(logits, n_vocab), worst_batch = 0;
    for (int i = 0; i < n_vocab; i++)
        worst_batch = fmax(worst_batch, fabs(logits[i] - batch_logits[i]) / scale);
    CHECK_MSG(worst_batch <= 1e-5, "%s/%s: batch and token-by-token logits differ by %.3g",
              model, prompt_name, worst_batch);

    /* last position: top 10, and the full vector where the golden has it */
    const json_value *top = json_get(g, "last_top10");
    double worst_top = 0;
    for (size_t i = 0; i < json_len(top); i++) {
        int id = (int)json_num(json_at(json_at(top, i), 0));
        double v = json_num(json_at(json_at(top, i), 1));
        worst_top = fmax(worst_top, fabs(logits[id] - v) / scale);
    }
    CHECK_MSG(worst_top <= tol, "%s/%s: top-10 logits off by %.3g (relative)", model,
              prompt_name, worst_top);
    double worst_full = -1;
    snprintf(path, sizeof path, "%s/llama/golden/%s.%s.last.f32", ref, model, prompt_name);
    FILE *f = fopen(path, "rb");
    if (f) {
        float *full = malloc(sizeof(float) * n_vocab);
        CHECK((int)fread(full, sizeof(float), n_vocab, f) == n_vocab);
        fclose(f);
        worst_full = 0;
        for (int i = 0; i < n_vocab; i++)
            worst_full = fmax(worst_full, fabs(logits[i] - full[i]) / max_abs(full, n_vocab));
        CHECK_MSG(worst_full <= tol, "%s/%s: full last logits off by %.3g (relative)", model,
                  prompt_name, worst_full);
        free(full);
    }

    /* greedy continuation. Row k (the logits that choose gen[k]) must pick gen[k] while its
       top-2 margin exceeds the tolerance; after that we go on teacher-forced, feeding the golden
       ids. gen_top1_logit[k] in these goldens is the winning logit of the row computed after
       feeding gen[k] (checked against the next row's maximum). */
    const json_value *gen = json_get(g, "gen"), *top1 = json_get(g, "gen_top1_logit");
    int free_running = 1, matched = 0;
    double worst_gen = 0;
    for (size_t k = 0; k < json_len(gen); k++) {
        int want_id = (int)json_num(json_at(gen, k));
        int got = argmax(logits, n_vocab);
        float second = -INFINITY;
        for (int i = 0; i < n_vocab; i++)
            if (i != got && logits[i] > second) second = logits[i];
        if (logits[got] - second <= 2 * tol * scale) free_running = 0;
        if (free_running) {
            CHECK_MSG(got == want_id, "%s/%s: greedy step %zu chose %d, llama.cpp %d", model,
                      prompt_name, k, got, want_id);
            matched++;
        }
        int32_t next = want_id; /* teacher-forced: the golden id */
        CHECK_OK(pg_session_eval_tokens(s, &next, 1));
        CHECK_OK(pg_session_logits(s, logits, n_vocab));
        double e = fabs(logits[argmax(logits, n_vocab)] - json_num(json_at(top1, k))) / scale;
        worst_gen = fmax(worst_gen, e);
        CHECK_MSG(e <= tol, "%s/%s: after step %zu the top logit is %.6f, llama.cpp %.6f", model,
                  prompt_name, k, logits[argmax(logits, n_vocab)], json_num(json_at(top1, k)));
    }
    printf("%-8s %-8s tokens %zu  stats %.2e  top10 %.2e  full %s%.2e  gen %.2e  greedy %d/%zu "
           "(tol %.0e)\n", model, prompt_name, n_tok, worst_stat, worst_top,
           worst_full < 0 ? "n/a " : "", worst_full < 0 ? 0.0 : worst_full, worst_gen, matched,
           json_len(gen), tol);
    pg_session_free(s);
    free(logits);
    free(batch_logits);
    json_free(g);
}

int main(void) {
    const char *ref = check_reference_dir();
    if (!ref) return CHECK_SKIP;
    const struct { const char *model; double tol; } models[] = {
        {"tiny-f32", 1e-5}, {"tiny-f16", 2e-3}};
    const char *prompts[] = {"human", "vicuna", "unicode"};
    for (int t = 1; t <= 2; t++) {  /* single-threaded and threaded must agree with the golden */
        for (size_t i = 0; i < 2; i++) {
            char path[8192];
            snprintf(path, sizeof path, "%s/llama/%s.gguf", ref, models[i].model);
            pg_model_params p;
            pg_model_params_init(&p);
            p.device = PG_DEVICE_CPU; /* the CPU path is the oracle here; tests/gpu checks CUDA */
            p.device = PG_DEVICE_CPU;
            p.n_threads = t == 1 ? 1 : 3;
            pg_model *m;
            CHECK_OK(pg_model_load(path, &p, &m));
            if (!m) continue;
            printf("threads %d\n", p.n_threads);
            for (size_t j = 0; j < 3; j++) check_case(ref, m, models[i].model, prompts[j],
                                                      models[i].tol);
            pg_model_free(m);
        }
    }
    return check_done("llama_golden");
}
