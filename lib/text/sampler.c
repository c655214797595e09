/*
 * sampler.c — next-token choice with HF transformers 4.29 sample-mode semantics (spec §2.5):
 *   RepetitionPenaltyLogitsProcessor -> TemperatureLogitsWarper -> TopKLogitsWarper ->
 *   TopPLogitsWarper -> softmax -> multinomial draw.
 * Temperature 0 (HF would raise) is greedy argmax, lowest id on ties, after the penalty.
 *
 * Where HF's float32 tensor arithmetic has no exact C counterpart:
 *   - top-p sorts ascending by (logit, id), as a stable torch.sort would, and accumulates the
 *     softmax in double. The removal rule "cumsum <= 1 - top_p" gets a tolerance of 1e-6, so a
 *     cumulative sum that equals the threshold in decimal (0.05 + 0.15 vs 1 - 0.8) counts as
 *     equal, as HF's float32 rounding of both sides usually has it; top_p arrives here as a float
 *     and 1 - 0.8f is 0.19999999.
 *   - the draw is ours (xoshiro256** seeded by splitmix64, 53-bit uniform doubles), so a seed
 *     reproduces our sequence, not torch.multinomial's.
 * NaN logits are never chosen (they count as -inf).
 */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>

#include "api/error.h"

#define PG_TOP_P_TOLERANCE 1e-6

typedef struct candidate {
    float logit;
    int32_t id;
} candidate;

struct pg_sampler {
    int32_t n_vocab;
    pg_sampler_params p;
    uint64_t rng[4];      /* xoshiro256** state */
    float *kheap;         /* (n_vocab) min-heap of the k largest logits seen so far */
    candidate *cand;      /* (n_vocab) surviving tokens */
    double *prob;         /* (n_vocab) unnormalised probabilities of the survivors */
    uint8_t *seen;        /* (n_vocab) marks history ids already penalised; all 0 between calls */
};

/* ---- RNG ----------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4]) {
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* uniform in [0, 1) */
static double uniform(uint64_t s[4]) { return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53; }

/* ---- Lifetime ------------------------------------------------------------------------------ */

pg_status pg_sampler_new(int32_t n_vocab, pg_sampler **out) {
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_sampler_new: out is NULL");
    *out = NULL;
    if (n_vocab <= 0)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_sampler_new: n_vocab %d", (int)n_vocab);
    pg_sampler *s = calloc(1, sizeof *s);
    if (!s) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "sampler: out of memory");
    size_t n = (size_t)n_vocab;
    s->n_vocab = n_vocab;
    s->kheap = malloc(n * sizeof *s->kheap);
    s->cand = malloc(n * sizeof *s->cand);
    s->prob = malloc(n * sizeof *s->prob);
    s->seen = calloc(n, 1);
    if (!s->kheap || !s->cand || !s->prob || !s->seen) {
        pg_sampler_free(s);
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "sampler: out of memory for %d tokens",
                            (int)n_vocab);
    }
    pg_sampler_params defaults = {1.0f, 0, 1.0f, 1.0f, 0};
    pg_sampler_reset(s, &defaults);
    *out = s;
    return PG_OK;
}

void pg_sampler_free(pg_sampler *s) {
    if (!s) return;
    free(s->kheap);
    free(s->cand);
    free(s->prob);
    free(s->seen);
    free(s);
}

void pg_sampler_reset(pg_sampler *s, const pg_sampler_params *p) {
    if (!s || !p) return;
    s->p = *p;
    uint64_t x = p->seed;
    for (int k = 0; k < 4; k++) s->rng[k] = splitmix64(&x);
}

/* ---- Steps --------------------------------------------------------------------------------- */

/* HF RepetitionPenaltyLogitsProcessor: each distinct id once. A penalty that is not positive
 * (HF rejects it) is ignored. */
static void repetition_penalty(pg_sampler *s, float *logits, const int32_t *history, size_t n,
                               float penalty) {
    if (!history || !(penalty > 0.0f) || penalty == 1.0f) return;
    for (size_t i = 0; i < n; i++) {
        int32_t id = history[i];
        if (id < 0 || id >= s->n_vocab || s->seen[id]) continue;
        s->seen[id] = 1;
        logits[id] = logits[id] < 0 ? logits[id] * penalty : logits[id] / penalty;
    }
    for (size_t i = 0; i < n; i++)
        if (history[i] >= 0 && history[i] < s->n_vocab) s->seen[history[i]] = 0;
}

static int32_t argmax(const float *logits, int32_t n) {
    int32_t best = 0;
    float bv = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (logits[i] > bv) { bv = logits[i]; best = i; }
    return best;
}

static void kheap_sift_down(float *h, int32_t n, int32_t i) {
    float x = h[i];
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && h[c + 1] < h[c]) c++;
        if (!(h[c] < x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* The k-th largest finite logit (TopKLogitsWarper's threshold) by a k-sized min-heap: O(n log k).
 * -INFINITY when fewer than k logits are finite. */
static float kth_largest(pg_sampler *s, const float *logits, int32_t k) {
    float *h = s->kheap;
    int32_t m = 0;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        float l = logits[i];
        if (!(l > -INFINITY)) continue; /* -inf and NaN never survive */
        if (m < k) {
            int32_t j = m++;
            while (j > 0 && h[(j - 1) / 2] > l) {
                h[j] = h[(j - 1) / 2];
                j = (j - 1) / 2;
            }
            h[j] = l;
        } else if (l > h[0]) {
            h[0] = l;
            kheap_sift_down(h, m, 0);
        }
    }
    return m < k ? -INFINITY : h[0];
}

static int cand_less(const candidate *a, const candidate *b) {
    return a->logit < b->logit || (a->logit == b->logit && a->id < b->id);
}

static void cand_sift_down(candidate *c, size_t n, size_t i) {
    candidate x = c[i];
    for (;;) {
        size_t ch = 2 * i + 1;
        if (ch >= n) break;
        if (ch + 1 < n && cand_less(&c[ch], &c[ch + 1])) ch++;
        if (!cand_less(&x, &c[ch])) break;
        c[i] = c[ch];
        i = ch;
    }
    c[i] = x;
}

/* Ascending heapsort: in place, no allocation (qsort may allocate). */
static void cand_sort(candidate *c, size_t n) {
    for (size_t i = n / 2; i-- > 0;) cand_sift_down(c, n, i);
    for (size_t end = n; end-- > 1;) {
        candidate t = c[0];
        c[0] = c[end];
        c[end] = t;
        cand_sift_down(c, end, 0);
    }
}

int32_t pg_sampler_sample(pg_sampler *s, float *logits, const int32_t *history, size_t n_history) {
    if (!s || !logits) return 0;
    const pg_sampler_params *p = &s->p;
    const int32_t n = s->n_vocab;
    repetition_penalty(s, logits, history, n_history, p->repeat_penalty);
    if (!(p->temperature > 0.0f)) return argmax(logits, n);

    if (p->temperature != 1.0f)
        for (int32_t i = 0; i < n; i++) logits[i] /= p->temperature;

    /* top-k: keep every logit >= the k-th largest (ties at the threshold survive, as in HF) */
    float threshold = -INFINITY;
    if (p->top_k > 0 && p->top_k < n) threshold = kth_largest(s, logits, p->top_k);
    size_t m = 0;
    for (int32_t i = 0; i < n; i++)
        if (logits[i] > -INFINITY && logits[i] >= threshold)
            s->cand[m++] = (candidate){logits[i], i};
    if (m == 0) return argmax(logits, n); /* every logit -inf or NaN */

    float maxl = -INFINITY;
    for (size_t j = 0; j < m; j++)
        if (s->cand[j].logit > maxl) maxl = s->cand[j].logit;

    /* top-p: drop the ascending prefix whose cumulative probability is <= 1 - top_p, never the
     * largest */
    size_t first = 0;
    if (p->top_p < 1.0f) {
        cand_sort(s->cand, m);
        double total = 0.0;
        for (size_t j = 0; j < m; j++) total += s->prob[j] = exp((double)s->cand[j].logit - maxl);
        double limit = (1.0 - (double)p->top_p) * total + PG_TOP_P_TOLERANCE * total, cum = 0.0;
        while (first + 1 < m) {
            cum += s->prob[first];
            if (cum > limit) break;
            first++;
        }
    }

    double total = 0.0;
    for (size_t j = first; j < m; j++) total += s->prob[j] = exp((double)s->cand[j].logit - maxl);
    double u = uniform(s->rng) * total, cum = 0.0;
    for (size_t j = first; j < m; j++) {
        cum += s->prob[j];
        if (u < cum) return s->cand[j].id;
    }
    return s->cand[m - 1].id; /* u rounded up to the total */
}
