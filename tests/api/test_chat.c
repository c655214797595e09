/*
 * test_chat.c — pg_session_chat against an independent loop over the low-level API.
 *
 * The reference builds the whole prompt text of a turn itself (docs/chat.md: the text-only
 * template with PandaGPT's history folding), evaluates it in a fresh session, picks argmax tokens
 * with pg_session_logits until the stop rules hit, drops the last two tokens and decodes. The
 * chat call — which reuses the KV cache between turns — must give the same answer. Also:
 * streamed pieces equal the answer, cancel, context full, seeded sampling is reproducible.
 */
#include <pandagpt.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat/stream.h"
#include "check.h"
#include "gguf/dtype.h"
#include "random_llama.h"

typedef struct collect {
    char text[8192];
    size_t len;
    int pieces;
    int stop_after;  /* cancel once this many pieces came (0 = never) */
} collect;

static int on_piece(const char *piece, size_t len, int32_t token, void *user_data) {
    collect *c = user_data;
    (void)token;
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, piece, len);
        c->len += len;
    }
    c->pieces++;
    return c->stop_after && c->pieces >= c->stop_after;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* The answer PandaGPT's generate() + decode would give for this prompt text, greedily. */
static void reference_answer(pg_model *m, const char *prompt, int max_tokens, char *out,
                             size_t *out_len) {
    int n_vocab = pg_model_n_vocab(m);
    int32_t toks[2048];
    size_t n;
    CHECK_OK(pg_tokenize(m, prompt, strlen(prompt), 1, toks, 2048, &n));
    pg_session *s;
    CHECK_OK(pg_session_new(m, NULL, &s));
    CHECK_OK(pg_session_eval_tokens(s, toks, n));
    float *logits = malloc(sizeof(float) * n_vocab);
    int32_t gen[512];
    int n_gen = 0;
    int32_t stop_id = -1;
    for (int32_t t = 0; t < n_vocab; t++) {
        char piece[64];
        size_t len;
        /* the "##" piece: two '#' bytes; byte tokens are single '#', so require the NORMAL one */
        if (pg_token_to_piece(m, t, piece, sizeof piece, &len) == PG_OK && len == 2 &&
            memcmp(piece, "##", 2) == 0 && t > 258) {
            stop_id = t;
            break;
        }
    }
    for (;;) {
        CHECK_OK(pg_session_logits(s, logits, n_vocab));
        int32_t id = argmax(logits, n_vocab);
        gen[n_gen++] = id;
        if (id == stop_id || id == 2 || n_gen >= max_tokens) break;
        CHECK_OK(pg_session_eval_tokens(s, &id, 1));
    }
    chat_stream st = {0};
    chat_stream_reset(&st, 8192);
    for (int i = 0; i + 2 < n_gen; i++) {
        char piece[64];
        size_t len;
        CHECK_OK(pg_token_to_piece(m, gen[i], piece, sizeof piece, &len));
        chat_stream_push(&st, piece, len);
    }
    chat_stream_finish(&st);
    memcpy(out, st.text, st.len);
    out[st.len] = '\0';
    *out_len = st.len;
    chat_stream_free(&st);
    free(logits);
    pg_session_free(s);
}

static void test_turns_match_reference(pg_model *m) {
    pg_generate_params g;
    pg_generate_params_init(&g);  /* PandaGPT defaults: effectively greedy */
    g.max_tokens = 12;
    pg_session *s;
    CHECK_OK(pg_session_new(m, NULL, &s));
    const char *q1 = "What is in this image?", *q2 = "What colour is it?",
               *q3 = "And the sound?";
    char prompt[8192], want[8192], answers[3][8192];
    size_t want_len;
    const char *qs[3] = {q1, q2, q3};
    char history[8192] = "";
    for (int turn = 0; turn < 3; turn++) {
        collect c = {0};
        CHECK_OK(pg_session_chat(s, qs[turn], NULL, 0, &g, on_piece, &c));
        size_t len;
        CHECK_OK(pg_session_answer(s, answers[turn], sizeof answers[turn], &len));
        CHECK_MSG(len == c.len && memcmp(answers[turn], c.text, len) == 0,
                  "turn %d: streamed '%.*s' but the answer is '%s'", turn, (int)c.len, c.text,
                  answers[turn]);

        /* the demo's P (spec §2.2), in the text-only template of docs/chat.md */
        snprintf(prompt, sizeof prompt, "### Human: %s%s%s\n### Assistant:", history,
                 turn ? " Human: " : "", qs[turn]);
        reference_answer(m, prompt, g.max_tokens, want, &want_len);
        CHECK_MSG(len == want_len && memcmp(answers[turn], want, len) == 0,
                  "turn %d: chat answered '%s', the reference loop '%s'", turn, answers[turn],
                  want);
        pg_timings t;
        t.struct_size = sizeof t;
        CHECK_OK(pg_session_timings(s, &t));
        printf("turn %d: %d prompt tokens evaluated, %d reused from the cache, %d generated: "
               "'%s'\n", turn, t.n_prompt, t.n_reused, t.n_generated, answers[turn]);
        if (turn > 0) CHECK_MSG(t.n_reused > 8, "turn %d reused only %d positions", turn,
                                t.n_reused);
        size_t h = strlen(history);
        snprintf(history + h, sizeof history - h, "%s%s\n### Assistant: %s\n###",
                 turn ? " Human: " : "", qs[turn], answers[turn]);
    }
    /* after a reset the first turn is the first turn again */
    CHECK_OK(pg_session_reset(s));
    collect c = {0};
    CHECK_OK(pg_session_chat(s, q1, NULL, 0, &g, on_piece, &c));
    CHECK_MSG(c.len == strlen(answers[0]) && memcmp(c.text, answers[0], c.len) == 0,
              "after reset: '%.*s' vs '%s'", (int)c.len, c.text, answers[0]);
    pg_session_free(s);
}

static void test_cancel_and_context(pg_model *m) {
    pg_generate_params g;
    pg_generate_params_init(&g);
    g.max_tokens = 40;
    pg_session *s;
    CHECK_OK(pg_session_new(m, NULL, &s));
    collect c = {0};
    c.stop_after = 2;
    CHECK_STATUS(pg_session_chat(s, "Tell me a story.", NULL, 0, &g, on_piece, &c),
                 PG_ERR_CANCELLED);
    CHECK_EQ_INT(c.pieces, 2);
    size_t len;
    char buf[8192];
    CHECK_OK(pg_session_answer(s, buf, sizeof buf, &len));
    CHECK(len == c.len && memcmp(buf, c.text, len) == 0);
    /* still usable, and the cancelled turn is not in the history */
    collect c2 = {0}, c3 = {0};
    CHECK_OK(pg_session_chat(s, "Tell me a story.", NULL, 0, &g, on_piece, &c2));
    pg_session *fresh;
    CHECK_OK(pg_session_new(m, NULL, &fresh));
    CHECK_OK(pg_session_chat(fresh, "Tell me a story.", NULL, 0, &g, on_piece, &c3));
    CHECK(c2.len == c3.len && memcmp(c2.text, c3.text, c2.len) == 0);
    pg_session_free(fresh);
    pg_session_free(s);

    /* context exhausted during generation */
    pg_session_params sp;
    pg_session_params_init(&sp);
    sp.n_ctx = 24;
    CHECK_OK(pg_session_new(m, &sp, &s));
    g.max_tokens = 100;
    collect c4 = {0};
    CHECK_STATUS(pg_session_chat(s, "Hello there.", NULL, 0, &g, on_piece, &c4),
                 PG_ERR_CONTEXT_FULL);
    CHECK(strstr(pg_last_error(), "reset") != NULL);
    CHECK_EQ_INT(pg_session_n_past(s), 24);
    CHECK_OK(pg_session_answer(s, buf, sizeof buf, &len));
    CHECK(len == c4.len);
    CHECK_OK(pg_session_reset(s));
    g.max_tokens = 4;
    CHECK_OK(pg_session_chat(s, "Hello there.", NULL, 0, &g, NULL, NULL));
    pg_session_free(s);
}

static void sample_text(pg_model *m, uint64_t seed, char *out, size_t *len) {
    pg_generate_params g;
    pg_generate_params_init(&g);
    g.max_tokens = 24;
    g.temperature = 1.0f;
    g.top_k = 0;
    g.top_p = 1.0f;
    g.seed = seed;
    pg_session *s;
    CHECK_OK(pg_session_new(m, NULL, &s));
    CHECK_OK(pg_session_chat(s, "Describe the sound.", NULL, 0, &g, NULL, NULL));
    CHECK_OK(pg_session_answer(s, out, 8192, len));
    pg_session_free(s);
}

static void test_seeds(pg_model *m) {
    char a[8192], b[8192], c[8192];
    size_t la, lb, lc;
    sample_text(m, 7, a, &la);
    sample_text(m, 7, b, &lb);
    sample_text(m, 8, c, &lc);
    CHECK_MSG(la == lb && memcmp(a, b, la) == 0, "seed 7 twice: '%s' vs '%s'", a, b);
    CHECK_MSG(la != lc || memcmp(a, c, la) != 0, "seeds 7 and 8 gave the same text '%s'", a);
}

int main(void) {
    char dir[] = "/tmp/pg_test_chat_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char path[256];
    snprintf(path, sizeof path, "%s/chat.gguf", dir);
    random_llama_config c;
    random_llama_preset("tiny", &c);
    c.n_layer = 2;
    c.type = PG_DTYPE_F32;
    CHECK_OK(random_llama_write(&c, path, "chat test"));
    pg_model_params p;
    pg_model_params_init(&p);
    p.device = PG_DEVICE_CPU; /* the CPU path is the oracle here; tests/gpu checks CUDA */
    p.n_threads = 2;
    pg_model *m = NULL;
    CHECK_OK(pg_model_load(path, &p, &m));
    if (m) {
        test_turns_match_reference(m);
        test_cancel_and_context(m);
        test_seeds(m);
        pg_model_free(m);
    }
    unlink(path);
    rmdir(dir);
    return check_done("chat");
}
