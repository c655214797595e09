/*
 * sampler.h — choosing the next token from logits the way HF transformers' generate() does in
 * sample mode: repetition penalty (a logits processor) first, then the warpers temperature ->
 * top-k -> top-p, then softmax and a draw from a seeded RNG. Temperature 0 is greedy argmax.
 * All buffers are allocated once, in pg_sampler_new: sampling allocates nothing.
 */
#ifndef PG_SAMPLER_H
#define PG_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "pandagpt.h"

typedef struct pg_sampler_params {
    float temperature;    /* 0 = greedy */
    int32_t top_k;        /* 0 = off */
    float top_p;          /* >= 1 = off */
    float repeat_penalty; /* 1 = off; HF: logit<0 ? logit*p : logit/p for each distinct prior id */
    uint64_t seed;
} pg_sampler_params;

typedef struct pg_sampler pg_sampler;

pg_status pg_sampler_new(int32_t n_vocab, pg_sampler **out);
void pg_sampler_free(pg_sampler *s);
/* Sets the parameters and reseeds the RNG. */
void pg_sampler_reset(pg_sampler *s, const pg_sampler_params *p);
/* Picks a token. logits (n_vocab floats) are modified in place. history holds the ids the
 * repetition penalty looks at (the whole conversation, as HF's input_ids). */
int32_t pg_sampler_sample(pg_sampler *s, float *logits, const int32_t *history, size_t n_history);

#endif
