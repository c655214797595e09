/*
 * chat.c — PandaGPT conversation turns (spec §2.1–§2.5; our text-only extension in docs/chat.md).
 *
 * Prompt of a turn, as embedding rows:
 *   with a modality:  <s> | tok("### Human: <Img>") | e | tok("</Img> " + P + "\n### Assistant:")
 *   text only:        <s> | tok("### Human: " + P + "\n### Assistant:")
 * where P folds the history in as PandaGPT's web demo does (§2.2):
 *   P = q1 + "\n### Assistant: " + a1 + "\n###" + " Human: " + q2 + ...  + " Human: " + q_new
 * Each tok(...) is tokenised on its own (its own dummy-prefix space), with no BOS.
 *
 * Generation (§2.5): sample, stop when the token is "##" (id 2277 in LLaMA: the start of the next
 * "\n### Human:"), EOS, or after max_tokens; the answer is the decoded tokens minus the last two,
 * which is why the stream holds two tokens back.
 */
#include "chat.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/error.h"
#include "stream.h"

struct pg_chat {
    int32_t n_ctx;
    int32_t *prompt;      /* (n_ctx) this turn's prompt: token ids and CHAT_ID_MODALITY */
    int32_t *generated;   /* (n_ctx + 2) [dummy BOS] + generated ids: HF's input_ids */
    float *logits;        /* (n_vocab) host copy of the last logits */
    pg_sampler *sampler;
    chat_stream stream;   /* the answer */
    char *history;        /* the text P of the previous turns (§2.2), NUL-terminated */
    size_t history_len;
    char *scratch;        /* the segment text being built */
    size_t scratch_cap;
    int has_modality;     /* the conversation's modality vector is in the state's embd_row */
    int32_t stop_id;      /* "##", or -1 when the vocabulary lacks it */
    size_t max_piece;     /* longest decoded piece of the vocabulary, in bytes */
    pg_timings timings;   /* of the last turn */
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

void chat_timings(const pg_chat *c, pg_timings *out) { *out = c->timings; }

static const char PROMPT_START[] = "### Human: <Img>";
static const char IMG_END[] = "</Img> ";
static const char ASSISTANT[] = "\n### Assistant:";

pg_status chat_new(const llama_model *m, int32_t n_ctx, pg_chat **out) {
    *out = NULL;
    pg_chat *c = calloc(1, sizeof *c);
    if (!c) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "cannot allocate the conversation");
    c->n_ctx = n_ctx;
    c->prompt = malloc(sizeof(int32_t) * (size_t)n_ctx);
    c->generated = malloc(sizeof(int32_t) * ((size_t)n_ctx + 2));
    c->logits = malloc(sizeof(float) * (size_t)m->hp.n_vocab);
    c->history = calloc(1, 1);
    pg_status s = PG_OK;
    if (!c->prompt || !c->generated || !c->logits || !c->history)
        s = pg_set_error(PG_ERR_OUT_OF_MEMORY, "cannot allocate conversation buffers (n_ctx %d)",
                         n_ctx);
    if (s == PG_OK) s = pg_sampler_new(m->hp.n_vocab, &c->sampler);
    if (s != PG_OK) {
        chat_free(c);
        return s;
    }
    c->stop_id = pg_vocab_find(m->vocab, "##", 2);
    for (int32_t t = 0; t < pg_vocab_size(m->vocab); t++) {
        size_t len;
        pg_vocab_piece(m->vocab, t, &len);
        if (len > c->max_piece) c->max_piece = len;
    }
    *out = c;
    return PG_OK;
}

void chat_free(pg_chat *c) {
    if (!c) return;
    free(c->prompt);
    free(c->generated);
    free(c->logits);
    free(c->history);
    free(c->scratch);
    pg_sampler_free(c->sampler);
    chat_stream_free(&c->stream);
    free(c);
}

void chat_reset(pg_chat *c) {
    c->history[0] = '\0';
    c->history_len = 0;
    c->has_modality = 0;
    c->stream.len = c->stream.emitted = 0;
}

const char *chat_answer(const pg_chat *c, size_t *len) {
    *len = c->stream.len;
    return c->stream.text ? c->stream.text : "";
}

int chat_has_modality(const pg_chat *c) { return c->has_modality; }

// ---------------------------------------------------------------------------------------------
// Building the prompt

/* scratch = the concatenation of the NUL-terminated parts (NULL-terminated list). */
static pg_status build_text(pg_chat *c, const char *const *parts, size_t *len) {
    size_t n = 0;
    for (size_t i = 0; parts[i]; i++) n += strlen(parts[i]);
    if (n + 1 > c->scratch_cap) {
        char *p = realloc(c->scratch, n + 1);
        if (!p) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "cannot allocate %zu prompt bytes", n);
        c->scratch = p;
        c->scratch_cap = n + 1;
    }
    n = 0;
    for (size_t i = 0; parts[i]; i++) {
        size_t k = strlen(parts[i]);
        memcpy(c->scratch + n, parts[i], k);
        n += k;
    }
    c->scratch[n] = '\0';
    *len = n;
    return PG_OK;
}

/* Appends tok(text) to c->prompt at *n. */
static pg_status append_tokens(pg_chat *c, const llama_model *m, const char *text, size_t len,
                               int32_t *n) {
    size_t need;
    pg_status s = pg_vocab_tokenize(m->vocab, text, len, 0, c->prompt + *n,
                                    (size_t)(c->n_ctx - *n), &need);
    if (s == PG_ERR_INVALID_ARGUMENT)
        return pg_set_error(PG_ERR_CONTEXT_FULL, "the prompt needs more than n_ctx = %d "
                            "positions (history included); call pg_session_reset", c->n_ctx);
    if (s != PG_OK) return s;
    *n += (int32_t)need;
    return PG_OK;
}

/* The whole prompt of this turn into c->prompt; *n gets its length. */
static pg_status build_prompt(pg_chat *c, const llama_model *m, const char *q, int32_t *n) {
    const char *sep = c->history_len ? " Human: " : "";
    size_t len;
    pg_status s;
    *n = 0;
    if (c->n_ctx < 1) return pg_set_error(PG_ERR_CONTEXT_FULL, "n_ctx is 0");
    c->prompt[(*n)++] = pg_vocab_bos(m->vocab);
    if (c->has_modality) {
        if ((s = append_tokens(c, m, PROMPT_START, strlen(PROMPT_START), n))) return s;
        if (*n >= c->n_ctx)
            return pg_set_error(PG_ERR_CONTEXT_FULL, "n_ctx %d is too small", c->n_ctx);
        c->prompt[(*n)++] = CHAT_ID_MODALITY;
        const char *parts[] = {IMG_END, c->history, sep, q, ASSISTANT, NULL};
        if ((s = build_text(c, parts, &len))) return s;
    } else {
        const char *parts[] = {"### Human: ", c->history, sep, q, ASSISTANT, NULL};
        if ((s = build_text(c, parts, &len))) return s;
    }
    return append_tokens(c, m, c->scratch, len, n);
}

// ---------------------------------------------------------------------------------------------
// Evaluating the prompt, reusing the cache

static int32_t common_prefix(const llama_state *st, const int32_t *prompt, int32_t n) {
    int32_t k = 0;
    while (k < n && k < st->n_past && st->ids[k] == prompt[k]) k++;
    return k;
}

// ---------------------------------------------------------------------------------------------
// Generation

/* Hands the newly completed text to the callback; nonzero when it asks to stop. */
static int emit(pg_chat *c, const chat_turn_args *a, int32_t token) {
    size_t n;
    const char *p = chat_stream_take(&c->stream, &n);
    if (n == 0 || !a->cb) return 0;
    return a->cb(p, n, token, a->user_data);
}

static void push_token(pg_chat *c, const llama_model *m, int32_t token) {
    size_t len;
    const char *piece = pg_vocab_piece(m->vocab, token, &len);
    chat_stream_push(&c->stream, piece, len);
}

static pg_status remember_turn(pg_chat *c, const char *q) {
    size_t answer_len;
    const char *answer = chat_answer(c, &answer_len);
    const char *sep = c->history_len ? " Human: " : "";
    const char *assistant = "\n### Assistant: ", *end = "\n###";
    size_t add = strlen(sep) + strlen(q) + strlen(assistant) + answer_len + strlen(end);
    char *h = realloc(c->history, c->history_len + add + 1);
    if (!h) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "cannot grow the history by %zu bytes", add);
    c->history = h;
    char *p = h + c->history_len;
    const char *parts[] = {sep, q, assistant};
    for (size_t i = 0; i < 3; i++) {
        size_t k = strlen(parts[i]);
        memcpy(p, parts[i], k);
        p += k;
    }
    memcpy(p, answer, answer_len);
    p += answer_len;
    strcpy(p, end);
    c->history_len += add;
    return PG_OK;
}

pg_status chat_turn(pg_chat *c, const llama_model *m, llama_state *st, pg_backend *b,
                    const chat_turn_args *a) {
    pg_status s;
    int had_modality = c->has_modality;
    memset(&c->timings, 0, sizeof c->timings);
    if (a->new_modality && !c->has_modality) {
        c->has_modality = 1;
        /* a slot left in the cache by an earlier, failed turn held another vector */
        for (int32_t i = 0; i < st->n_past; i++)
            if (st->ids[i] == CHAT_ID_MODALITY) st->n_past = i;
    }

    /* answer buffer: worst case 3 bytes (U+FFFD) per decoded byte */
    int32_t max_new = a->max_tokens < c->n_ctx + 1 ? a->max_tokens : c->n_ctx + 1;
    if (chat_stream_reset(&c->stream, (size_t)max_new * (c->max_piece ? c->max_piece : 1) * 3 + 8)) {
        c->has_modality = had_modality;
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "cannot allocate the answer buffer");
    }

    int32_t n;
    s = build_prompt(c, m, a->user_text, &n);
    if (s != PG_OK) {
        c->has_modality = had_modality;
        return s;
    }
    /* keep what the cache already holds, but evaluate at least the last prompt row: its logits
       choose the first token */
    int32_t keep = common_prefix(st, c->prompt, n);
    if (keep == n) keep = n - 1;
    st->n_past = keep;
    st->has_logits = 0;
    c->timings.n_reused = keep;
    c->timings.n_prompt = n - keep;
    double t0 = now_ms();
    /* one forward pass; llama_eval reads the modality slot from st->embd_row */
    if ((s = llama_eval(m, st, b, c->prompt + keep, NULL, n - keep))) {
        c->has_modality = had_modality;
        return s;
    }
    double t1 = now_ms();
    c->timings.prompt_ms = t1 - t0;

    pg_sampler_reset(c->sampler, &a->sampling);
    int32_t n_gen = 0;                           /* generated tokens */
    c->generated[0] = pg_vocab_bos(m->vocab);    /* HF's dummy input_ids, seen by the penalty */
    int32_t eos = pg_vocab_eos(m->vocab);
    s = PG_OK;
    for (;;) {
        b->ops->download(b, c->logits, st->logits, sizeof(float) * (size_t)m->hp.n_vocab);
        int32_t id = pg_sampler_sample(c->sampler, c->logits, c->generated, (size_t)n_gen + 1);
        c->generated[++n_gen] = id;
        /* the last two tokens are never part of the answer: release the one before them */
        if (n_gen >= 3) {
            int32_t released = c->generated[n_gen - 2];
            push_token(c, m, released);
            if (emit(c, a, released)) {
                s = pg_set_error(PG_ERR_CANCELLED, "generation cancelled by the callback after "
                                 "%d tokens", n_gen);
                break;
            }
        }
        if (id == c->stop_id || id == eos || n_gen >= a->max_tokens) break;
        if (st->n_past >= st->n_ctx) {
            s = pg_set_error(PG_ERR_CONTEXT_FULL, "context full after %d generated tokens "
                             "(n_ctx %d); call pg_session_reset", n_gen, st->n_ctx);
            break;
        }
        if ((s = llama_eval(m, st, b, &id, NULL, 1))) break;
        c->timings.n_decode++;
    }
    c->timings.n_generated = n_gen;
    c->timings.decode_ms = now_ms() - t1;
    if (s == PG_OK) {
        chat_stream_finish(&c->stream);
        if (emit(c, a, c->generated[n_gen > 2 ? n_gen - 2 : 0]))
            s = pg_set_error(PG_ERR_CANCELLED, "generation cancelled by the callback at the end");
    }
    if (s == PG_OK) s = remember_turn(c, a->user_text);
    if (s != PG_OK && !had_modality && c->has_modality) c->has_modality = 0;
    return s;
}
