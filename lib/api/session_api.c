/*
 * session_api.c — pg_session_*: a conversation's lifetime, chat turns and the low-level calls.
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "internal.h"

#define SESSION_PARAMS_V1_SIZE (offsetof(pg_session_params, n_ctx) + sizeof(int32_t))
#define GENERATE_PARAMS_V1_SIZE (offsetof(pg_generate_params, seed) + sizeof(uint64_t))
#define MAX_N_CTX (1 << 20)

void pg_session_params_init(pg_session_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->n_ctx = 0;
}

void pg_generate_params_init(pg_generate_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->max_tokens = 256;    /* spec §2.5: the demo's max_length slider */
    p->temperature = 1.0f;
    p->top_k = 50;          /* HF's implicit default */
    p->top_p = 0.01f;
    p->repeat_penalty = 1.0f;
    p->seed = 0;
}

pg_status pg_session_new(pg_model *m, const pg_session_params *user, pg_session **out) {
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_new: out is NULL");
    *out = NULL;
    if (!m) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_new: model is NULL");
    if (!m->llm)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_new: the model has no LLM "
                            "(embedding-only)");
    pg_session_params p;
    pg_session_params_init(&p);
    if (user) {
        pg_status s = pg_params_copy(&p, sizeof p, SESSION_PARAMS_V1_SIZE, user,
                                     "pg_session_new: pg_session_params");
        if (s != PG_OK) return s;
    }
    if (p.n_ctx < 0 || p.n_ctx > MAX_N_CTX)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_new: n_ctx %d out of range "
                            "[0, %d]", p.n_ctx, MAX_N_CTX);
    int32_t n_ctx = p.n_ctx ? p.n_ctx : m->llm->hp.n_ctx_train;

    pg_session *s = calloc(1, sizeof *s);
    if (!s) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "pg_session_new: cannot allocate");
    s->model = m;
    /* the session's own threads (CPU) or stream (CUDA): sessions never share one */
    pg_status st = pg_model_backend_new(m, (size_t)n_ctx, &s->backend);
    if (st == PG_OK) st = llama_state_new(m->llm, s->backend, n_ctx, &s->state);
    if (st == PG_OK) {
        const llama_hparams *hp = &m->llm->hp;
        int64_t widest = hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd;
        st = pg_model_backend_reserve(m, s->backend, s->state->n_batch, widest, n_ctx);
    }
    if (st == PG_OK) st = chat_new(m->llm, n_ctx, &s->chat);
    if (st != PG_OK) {
        pg_error_prefix(st, "pg_session_new");
        pg_session_free(s);
        return st;
    }
    *out = s;
    return PG_OK;
}

void pg_session_free(pg_session *s) {
    if (!s) return;
    chat_free(s->chat);
    if (s->backend) llama_state_free(s->state, s->backend);
    if (s->backend) imagebind_state_free(s->enc_state, s->backend);
    pg_backend_free(s->backend);
    free(s);
}

pg_status pg_session_reset(pg_session *s) {
    if (!s) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_reset: session is NULL");
    chat_reset(s->chat);
    s->state->n_past = 0;
    s->state->has_logits = 0;
    return PG_OK;
}

static pg_status check_generate(const pg_generate_params *g) {
    if (g->max_tokens < 1)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_chat: max_tokens %d < 1",
                            g->max_tokens);
    if (!(g->temperature >= 0.0f) || isinf(g->temperature))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_chat: temperature %g must be "
                            ">= 0 and finite", g->temperature);
    if (g->top_k < 0)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_chat: top_k %d < 0", g->top_k);
    if (!(g->top_p >= 0.0f && g->top_p <= 1.0f))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_chat: top_p %g not in [0, 1]",
                            g->top_p);
    if (!(g->repeat_penalty > 0.0f) || isinf(g->repeat_penalty))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_chat: repeat_penalty %g must "
                            "be > 0 and finite", g->repeat_penalty);
    return PG_OK;
}

/* The session's encoder state, made at the first turn with media (the backend's scratch grows
 * to the encoders' shapes then). */
static pg_status session_encoder(pg_session *s) {
    const pg_model *m = s->model;
    if (!m->enc)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_chat: media given, but the "
                            "model has no encoder (pg_model_params.encoder_path)");
    if (!m->enc->has_llama_proj)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_chat: the encoder file has no "
                            "llama_proj (convert it with --delta)");
    if (s->enc_state) return PG_OK;
    int max_rows, max_ctx;
    int64_t max_n_in;
    imagebind_scratch_needs(m->enc, 0, &max_rows, &max_n_in, &max_ctx);
    pg_status st = pg_model_backend_reserve(m, s->backend, max_rows, max_n_in, max_ctx);
    if (st == PG_OK) st = imagebind_state_new(m->enc, s->backend, 0, &s->enc_state);
    if (st != PG_OK) pg_error_prefix(st, "pg_session_chat");
    return st;
}

pg_status pg_session_chat(pg_session *s, const char *user_text, pg_media *const *media,
                          size_t n_media, const pg_generate_params *user,
                          pg_token_callback cb, void *user_data) {
    if (!s || !user_text)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_chat: %s is NULL",
                            !s ? "session" : "user_text");
    if (n_media && !media)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_chat: media is NULL but "
                            "n_media is %zu", n_media);
    for (size_t i = 0; i < n_media; i++)
        if (!media[i])
            return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_chat: media[%zu] is NULL",
                                i);
    pg_generate_params g;
    pg_generate_params_init(&g);
    pg_status st;
    if (user && (st = pg_params_copy(&g, sizeof g, GENERATE_PARAMS_V1_SIZE, user,
                                     "pg_session_chat: pg_generate_params")))
        return st;
    if ((st = check_generate(&g))) return st;

    /* The conversation's modality vector is made once, at the first turn with media, and reused
     * by every later turn until pg_session_reset, as PandaGPT's demo does (spec §2.4): media
     * given to a later turn are not encoded. */
    int new_modality = 0;
    if (n_media && !chat_has_modality(s->chat)) {
        if ((st = session_encoder(s))) return st;
        /* encoded, projected and summed on the session's backend, into the row the prompt's
         * modality slot reads: on a GPU the media's vectors never come back to the host */
        if ((st = pg_media_slot(s->model, s->enc_state, s->backend, media, n_media,
                                s->state->embd_row)))
            return st;
        new_modality = 1;
    }
    chat_turn_args a = {
        .user_text = user_text,
        .new_modality = new_modality,
        .max_tokens = g.max_tokens,
        .sampling = {g.temperature, g.top_k, g.top_p, g.repeat_penalty, g.seed},
        .cb = cb,
        .user_data = user_data,
    };
    return chat_turn(s->chat, s->model->llm, s->state, s->backend, &a);
}

pg_status pg_session_answer(const pg_session *s, char *buf, size_t cap, size_t *len) {
    if (!s || !len)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_answer: %s is NULL",
                            !s ? "session" : "len");
    size_t n;
    const char *text = chat_answer(s->chat, &n);
    *len = n;
    if (cap && !buf)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_answer: buf is NULL, cap %zu",
                            cap);
    size_t copy = n < cap ? n : cap;
    if (copy) memcpy(buf, text, copy);
    if (cap > n) buf[n] = '\0';
    if (cap < n)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_answer: the answer has %zu "
                            "bytes, buffer holds %zu", n, cap);
    return PG_OK;
}

/* Sizes past INT32_MAX cannot fit any cache: llama_eval reports them as PG_ERR_CONTEXT_FULL. */
static int32_t clamp_rows(size_t n) { return n > (size_t)INT32_MAX ? INT32_MAX : (int32_t)n; }

pg_status pg_session_eval_tokens(pg_session *s, const int32_t *tokens, size_t n) {
    if (!s || !tokens || n == 0)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_eval_tokens: %s",
                            !s ? "session is NULL" : !tokens ? "tokens is NULL" : "n is 0");
    for (size_t i = 0; i < n; i++) /* llama_eval also takes its internal LLAMA_ID_ROW */
        if (tokens[i] < 0)
            return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_eval_tokens: token %d at "
                                "index %zu is out of range [0, %d)", tokens[i], i,
                                s->model->llm->hp.n_vocab);
    pg_status st = llama_eval(s->model->llm, s->state, s->backend, tokens, NULL, clamp_rows(n));
    return st == PG_OK ? st : pg_error_prefix(st, "pg_session_eval_tokens");
}

pg_status pg_session_eval_embeddings(pg_session *s, const float *rows, size_t n_rows) {
    if (!s || !rows || n_rows == 0)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_eval_embeddings: %s",
                            !s ? "session is NULL" : !rows ? "rows is NULL" : "n_rows is 0");
    pg_status st = llama_eval(s->model->llm, s->state, s->backend, NULL, rows,
                              clamp_rows(n_rows));
    return st == PG_OK ? st : pg_error_prefix(st, "pg_session_eval_embeddings");
}

pg_status pg_session_logits(pg_session *s, float *out, size_t n_vocab) {
    if (!s || !out)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_logits: %s is NULL",
                            !s ? "session" : "out");
    const llama_hparams *hp = &s->model->llm->hp;
    if (n_vocab < (size_t)hp->n_vocab)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_logits: buffer of %zu floats, "
                            "the model has %d logits", n_vocab, hp->n_vocab);
    if (!s->state->has_logits)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_logits: nothing evaluated yet");
    s->backend->ops->download(s->backend, out, s->state->logits,
                              sizeof(float) * (size_t)hp->n_vocab);
    pg_status st = s->backend->ops->sync(s->backend); /* a failed device copy reports here */
    return st == PG_OK ? st : pg_error_prefix(st, "pg_session_logits");
}

int32_t pg_session_n_past(const pg_session *s) { return s ? s->state->n_past : 0; }
int32_t pg_session_n_ctx(const pg_session *s) { return s ? s->state->n_ctx : 0; }

pg_status pg_session_timings(const pg_session *s, pg_timings *out) {
    if (!s || !out)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_timings: %s is NULL",
                            !s ? "session" : "out");
    uint32_t size = out->struct_size;
    if (size < offsetof(pg_timings, decode_ms) + sizeof(double))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_session_timings: struct_size %u is "
                            "smaller than the first version's %zu", size,
                            offsetof(pg_timings, decode_ms) + sizeof(double));
    pg_timings t;
    chat_timings(s->chat, &t);
    t.struct_size = size;
    memcpy(out, &t, size < sizeof t ? size : sizeof t);
    return PG_OK;
}
