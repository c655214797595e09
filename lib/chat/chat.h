/*
 * chat.h — the PandaGPT conversation (spec §2): template, history, modality slot, generation
 * with stop rules and trimming, streamed through the user's callback.
 *
 * Each turn rebuilds the prompt exactly as PandaGPT's web demo does (history folded into the
 * text after the modality slot) and tokenises its segments separately; then, instead of
 * re-prefilling, it keeps the longest prefix the KV cache already holds and evaluates only the
 * rest. The token sequence the model sees is therefore identical to the demo's.
 */
#ifndef PG_CHAT_H
#define PG_CHAT_H

#include "models/llama.h"
#include "text/sampler.h"

/* The prompt's (and st->ids') marker of the conversation's modality slot: llama_eval reads
 * that position's input from st->embd_row. */
#define CHAT_ID_MODALITY LLAMA_ID_ROW

typedef struct pg_chat pg_chat;

typedef struct chat_turn_args {
    const char *user_text;        /* NUL-terminated */
    int new_modality;             /* nonzero on the first turn that brings media: the caller
                                     has written their projected sum into st->embd_row */
    int32_t max_tokens;
    pg_sampler_params sampling;
    pg_token_callback cb;         /* may be NULL */
    void *user_data;
} chat_turn_args;

pg_status chat_new(const llama_model *m, int32_t n_ctx, pg_chat **out);
void chat_free(pg_chat *c);
/* Forgets history, modality slot and answer. */
void chat_reset(pg_chat *c);
/* One turn (see pg_session_chat for the contract). */
pg_status chat_turn(pg_chat *c, const llama_model *m, llama_state *st, pg_backend *b,
                    const chat_turn_args *a);
/* The last turn's answer (what was streamed). */
const char *chat_answer(const pg_chat *c, size_t *len);
/* Timings of the last turn. */
void chat_timings(const pg_chat *c, pg_timings *out);
/* Whether the conversation already holds a modality vector. */
int chat_has_modality(const pg_chat *c);

#endif
