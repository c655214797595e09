/*
 * test_sampler.c — the HF sample-mode pipeline of sampler.c (spec §2.5): greedy, top-k, top-p
 * boundaries, the PandaGPT demo defaults being argmax, repetition penalty, seeding, and the
 * empirical distribution of draws.
 */
#include "pandagpt.h"
#include "check.h"
#include "text/sampler.h"

#include <stdint.h>

static uint64_t g_lcg = 88172645463325252ull;

/* N(0, 1) by Box-Muller from a fixed LCG */
static float randn(void) {
    double u[2];
    for (int k = 0; k < 2; k++) {
        g_lcg = g_lcg * 6364136223846793005ull + 1442695040888963407ull;
        u[k] = ((double)(g_lcg >> 11) + 0.5) * 0x1.0p-53;
    }
    return (float)(sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]));
}

static int32_t argmax_of(const float *x, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static pg_sampler_params params(float temp, int32_t top_k, float top_p, float penalty,
                                uint64_t seed) {
    pg_sampler_params p = {temp, top_k, top_p, penalty, seed};
    return p;
}

/* Draws `draws` tokens from a copy of logits each time; counts[] gets the histogram. */
static void histogram(pg_sampler *s, const float *logits, int32_t n, int draws, int *counts) {
    float *tmp = malloc((size_t)n * sizeof *tmp);
    memset(counts, 0, (size_t)n * sizeof *counts);
    for (int d = 0; d < draws; d++) {
        memcpy(tmp, logits, (size_t)n * sizeof *tmp);
        int32_t t = pg_sampler_sample(s, tmp, NULL, 0);
        if (t >= 0 && t < n) counts[t]++;
    }
    free(tmp);
}

static void test_greedy(void) {
    const int32_t n = 32000;
    pg_sampler *s = NULL;
    CHECK_OK(pg_sampler_new(n, &s));
    if (!s) return;
    float *logits = malloc(n * sizeof *logits), *tmp = malloc(n * sizeof *tmp);
    pg_sampler_params greedy = params(0.0f, 50, 0.9f, 1.0f, 1);
    pg_sampler_params topk1 = params(1.0f, 1, 1.0f, 1.0f, 2);
    pg_sampler_params demo = params(1.0f, 50, 0.01f, 1.0f, 3); /* PandaGPT demo defaults */
    int bad_greedy = 0, bad_topk1 = 0, bad_demo = 0;
    for (int trial = 0; trial < 200; trial++) {
        float scale = trial % 2 ? 1.0f : 5.0f;
        for (int32_t i = 0; i < n; i++) logits[i] = scale * randn();
        int32_t want = argmax_of(logits, n);
        pg_sampler_reset(s, &greedy);
        memcpy(tmp, logits, n * sizeof *tmp);
        bad_greedy += pg_sampler_sample(s, tmp, NULL, 0) != want;
        pg_sampler_reset(s, &topk1);
        memcpy(tmp, logits, n * sizeof *tmp);
        bad_topk1 += pg_sampler_sample(s, tmp, NULL, 0) != want;
        pg_sampler_reset(s, &demo);
        for (int k = 0; k < 5; k++) {
            memcpy(tmp, logits, n * sizeof *tmp);
            bad_demo += pg_sampler_sample(s, tmp, NULL, 0) != want;
        }
    }
    CHECK_EQ_INT(bad_greedy, 0);
    CHECK_EQ_INT(bad_topk1, 0);
    CHECK_EQ_INT(bad_demo, 0);

    /* ties: argmax takes the lowest id */
    float tie[5] = {0.0f, 3.0f, 1.0f, 3.0f, 2.0f};
    pg_sampler_free(s);
    CHECK_OK(pg_sampler_new(5, &s));
    pg_sampler_reset(s, &greedy);
    CHECK_EQ_INT(pg_sampler_sample(s, tie, NULL, 0), 1);
    pg_sampler_free(s);
    free(logits);
    free(tmp);
}

static void test_seeds(void) {
    const int32_t n = 1000;
    pg_sampler *s = NULL;
    CHECK_OK(pg_sampler_new(n, &s));
    if (!s) return;
    float *logits = malloc(n * sizeof *logits), *tmp = malloc(n * sizeof *tmp);
    for (int32_t i = 0; i < n; i++) logits[i] = 0.1f * randn();
    int32_t seq[3][64];
    const uint64_t seeds[3] = {42, 42, 43};
    for (int r = 0; r < 3; r++) {
        pg_sampler_params p = params(1.0f, 0, 1.0f, 1.0f, seeds[r]);
        pg_sampler_reset(s, &p);
        for (int k = 0; k < 64; k++) {
            memcpy(tmp, logits, n * sizeof *tmp);
            seq[r][k] = pg_sampler_sample(s, tmp, NULL, 0);
        }
    }
    CHECK(memcmp(seq[0], seq[1], sizeof seq[0]) == 0);
    CHECK(memcmp(seq[0], seq[2], sizeof seq[0]) != 0);
    free(logits);
    free(tmp);
    pg_sampler_free(s);
}

static void test_top_k(void) {
    const int32_t n = 100;
    pg_sampler *s = NULL;
    CHECK_OK(pg_sampler_new(n, &s));
    if (!s) return;
    float logits[100];
    for (int32_t i = 0; i < n; i++) logits[i] = -1.0f + 0.01f * (float)(i % 7);
    logits[17] = 1.0f;
    logits[42] = 0.5f;
    logits[88] = 0.2f;
    pg_sampler_params p = params(1.0f, 3, 1.0f, 1.0f, 7);
    pg_sampler_reset(s, &p);
    int counts[100];
    const int draws = 10000;
    histogram(s, logits, n, draws, counts);
    CHECK_EQ_INT(counts[17] + counts[42] + counts[88], draws);
    double z = exp(1.0) + exp(0.5) + exp(0.2);
    const int32_t ids[3] = {17, 42, 88};
    const double want[3] = {exp(1.0) / z, exp(0.5) / z, exp(0.2) / z};
    for (int k = 0; k < 3; k++) {
        double f = (double)counts[ids[k]] / draws;
        CHECK_MSG(fabs(f - want[k]) < 0.02, "top-k 3: id %d frequency %.4f, softmax %.4f",
                  (int)ids[k], f, want[k]);
    }

    /* temperature 0.5 sharpens: exp(2), exp(1), exp(0.4) */
    p = params(0.5f, 3, 1.0f, 1.0f, 8);
    pg_sampler_reset(s, &p);
    histogram(s, logits, n, draws, counts);
    z = exp(2.0) + exp(1.0) + exp(0.4);
    CHECK_MSG(fabs((double)counts[17] / draws - exp(2.0) / z) < 0.02, "temperature 0.5: %d",
              counts[17]);

    /* ties at the k-th value all survive (HF keeps logits >= the k-th largest) */
    float tie[4] = {1.0f, 1.0f, 1.0f, 0.0f};
    pg_sampler_free(s);
    CHECK_OK(pg_sampler_new(4, &s));
    p = params(1.0f, 2, 1.0f, 1.0f, 9);
    pg_sampler_reset(s, &p);
    int c4[4];
    histogram(s, tie, 4, 3000, c4);
    CHECK(c4[0] > 800 && c4[1] > 800 && c4[2] > 800 && c4[3] == 0);
    /* top_k beyond n_vocab: everything survives */
    p = params(1.0f, 1000, 1.0f, 1.0f, 10);
    pg_sampler_reset(s, &p);
    histogram(s, tie, 4, 3000, c4);
    CHECK(c4[3] > 0);
    pg_sampler_free(s);
}

static void test_top_p(void) {
    pg_sampler *s = NULL;
    CHECK_OK(pg_sampler_new(4, &s));
    if (!s) return;
    const float probs[4] = {0.5f, 0.3f, 0.15f, 0.05f};
    float logits[4];
    for (int i = 0; i < 4; i++) logits[i] = logf(probs[i]);
    int counts[4];
    const int draws = 10000;

    /* ascending cumsum 0.05, 0.20, 0.50, 1.0; 1 - 0.8 = 0.2: the 0.05 and 0.15 go (<=) */
    pg_sampler_params p = params(1.0f, 0, 0.8f, 1.0f, 11);
    pg_sampler_reset(s, &p);
    histogram(s, logits, 4, draws, counts);
    CHECK_MSG(counts[2] == 0 && counts[3] == 0, "top_p 0.8: counts %d %d %d %d", counts[0],
              counts[1], counts[2], counts[3]);
    CHECK_MSG(fabs((double)counts[0] / draws - 0.625) < 0.02, "top_p 0.8: id 0 frequency %.4f",
              (double)counts[0] / draws);

    /* 1 - 0.85 = 0.15: only the 0.05 goes */
    p = params(1.0f, 0, 0.85f, 1.0f, 12);
    pg_sampler_reset(s, &p);
    histogram(s, logits, 4, draws, counts);
    CHECK_MSG(counts[2] > 0 && counts[3] == 0, "top_p 0.85: counts %d %d %d %d", counts[0],
              counts[1], counts[2], counts[3]);

    /* tiny top_p keeps only the largest; combined with top_k too */
    p = params(1.0f, 0, 0.01f, 1.0f, 13);
    pg_sampler_reset(s, &p);
    histogram(s, logits, 4, 1000, counts);
    CHECK_EQ_INT(counts[0], 1000);
    p = params(1.0f, 3, 0.0f, 1.0f, 14);
    pg_sampler_reset(s, &p);
    histogram(s, logits, 4, 1000, counts);
    CHECK_EQ_INT(counts[0], 1000);
    pg_sampler_free(s);
}

static void test_repetition_penalty(void) {
    pg_sampler *s = NULL;
    CHECK_OK(pg_sampler_new(4, &s));
    if (!s) return;
    /* id 0 (positive) is divided once although it appears twice; id 3 (negative) multiplied */
    float logits[4] = {2.0f, 1.5f, -1.0f, -0.5f};
    const int32_t history[4] = {0, 3, 0, 99 /* out of range: ignored */};
    pg_sampler_params p = params(0.0f, 0, 1.0f, 2.0f, 0);
    pg_sampler_reset(s, &p);
    CHECK_EQ_INT(pg_sampler_sample(s, logits, history, 4), 1);
    CHECK(logits[0] == 1.0f && logits[1] == 1.5f && logits[2] == -1.0f && logits[3] == -1.0f);
    /* the distinct-id marks are cleared: the same call again divides id 0 once more */
    CHECK_EQ_INT(pg_sampler_sample(s, logits, history, 4), 1);
    CHECK(logits[0] == 0.5f && logits[3] == -2.0f);

    /* penalty 1 changes nothing */
    float same[4] = {2.0f, 1.5f, -1.0f, -0.5f};
    p.repeat_penalty = 1.0f;
    pg_sampler_reset(s, &p);
    CHECK_EQ_INT(pg_sampler_sample(s, same, history, 4), 0);
    CHECK(same[0] == 2.0f && same[3] == -0.5f);

    /* a penalty below 1 favours repeats: the negative id 3 gets -0.25 and wins over id 2 */
    float neg[4] = {-1.0f, -2.0f, -0.3f, -0.5f};
    const int32_t h3[1] = {3};
    p.repeat_penalty = 0.5f;
    pg_sampler_reset(s, &p);
    CHECK_EQ_INT(pg_sampler_sample(s, neg, h3, 1), 3);
    pg_sampler_free(s);
}

static void test_errors(void) {
    pg_sampler *s = (pg_sampler *)1;
    CHECK_STATUS(pg_sampler_new(0, &s), PG_ERR_INVALID_ARGUMENT);
    CHECK(s == NULL);
    CHECK_STATUS(pg_sampler_new(10, NULL), PG_ERR_INVALID_ARGUMENT);
    pg_sampler_free(NULL);
    /* all -inf: still returns a valid id */
    CHECK_OK(pg_sampler_new(3, &s));
    float inf[3] = {-INFINITY, -INFINITY, -INFINITY};
    pg_sampler_params p = params(1.0f, 2, 0.5f, 1.0f, 0);
    pg_sampler_reset(s, &p);
    int32_t t = pg_sampler_sample(s, inf, NULL, 0);
    CHECK(t >= 0 && t < 3);
    pg_sampler_free(s);
}

int main(void) {
    test_greedy();
    test_seeds();
    test_top_k();
    test_top_p();
    test_repetition_penalty();
    test_errors();
    return check_done("test_sampler");
}
