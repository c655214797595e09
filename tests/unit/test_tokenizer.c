/*
 * test_tokenizer.c — SentencePiece BPE encoding and decoding against the LLaMA vocabulary and the
 * 257 cases of ../shared/reference/llama/tok_cases.jsonl (sentencepiece ids, no BOS), the spec's
 * §2.1/§2.2 prompt ids, byte fallback, capacity errors, vocabulary errors and speed.
 */
#define _POSIX_C_SOURCE 200809L
#include "pandagpt.h"
#include "check.h"
#include "json.h"
#include "text/tokenizer.h"

#include <stdint.h>
#include <time.h>

/* ---- Loading the vocabulary ---------------------------------------------------------------- */

typedef struct tsv_vocab {
    int32_t n;
    char **pieces;
    uint64_t *lens;
    float *scores;
    int32_t *types;
} tsv_vocab;

static void tsv_free(tsv_vocab *t) {
    for (int32_t i = 0; i < t->n; i++) free(t->pieces[i]);
    free(t->pieces);
    free(t->lens);
    free(t->scores);
    free(t->types);
}

/* Reads `id \t piece \t score \t type \t type_name` rows (after one '#' line); pieces escape
 * \\ \t \n \r. Returns 0 on a malformed file. */
static int tsv_load(const char *path, tsv_vocab *t) {
    size_t size;
    char *buf = json_read_file(path, &size);
    memset(t, 0, sizeof *t);
    if (!buf) return 0;
    size_t rows = 0;
    for (size_t i = 0; i < size; i++) rows += buf[i] == '\n';
    t->pieces = calloc(rows, sizeof *t->pieces);
    t->lens = calloc(rows, sizeof *t->lens);
    t->scores = calloc(rows, sizeof *t->scores);
    t->types = calloc(rows, sizeof *t->types);
    char *line = buf;
    int ok = 1;
    while (ok && line < buf + size) {
        char *eol = strchr(line, '\n');
        if (!eol) eol = buf + size;
        *eol = '\0';
        if (*line && *line != '#') {
            char *f[5];
            int nf = 0;
            for (char *q = line; nf < 5;) {
                f[nf++] = q;
                q = strchr(q, '\t');
                if (!q) break;
                *q++ = '\0';
            }
            if (nf != 5 || strtol(f[0], NULL, 10) != t->n) { ok = 0; break; }
            char *piece = malloc(strlen(f[1]) + 1);
            size_t n = 0;
            for (const char *c = f[1]; *c; c++) {
                if (*c == '\\' && c[1]) {
                    c++;
                    piece[n++] = *c == 't' ? '\t' : *c == 'n' ? '\n' : *c == 'r' ? '\r' : *c;
                } else {
                    piece[n++] = *c;
                }
            }
            t->pieces[t->n] = piece;
            t->lens[t->n] = n;
            t->scores[t->n] = strtof(f[2], NULL);
            t->types[t->n] = (int32_t)strtol(f[3], NULL, 10);
            t->n++;
        }
        line = eol + 1;
    }
    free(buf);
    return ok && t->n > 0;
}

/* ---- Helpers ------------------------------------------------------------------------------- */

static void print_ids(FILE *f, const int32_t *ids, size_t n) {
    fputc('[', f);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%d", i ? ", " : "", (int)ids[i]);
    fputc(']', f);
}

/* Tokenizes text and compares with want[0..n_want); prints both on a mismatch. */
static int check_ids(const pg_vocab *v, const char *text, size_t len, int add_bos,
                     const int32_t *want, size_t n_want, const char *where) {
    size_t cap = 4 * len + 8, n = 0;
    int32_t *got = malloc(cap * sizeof *got);
    pg_status st = pg_vocab_tokenize(v, text, len, add_bos, got, cap, &n);
    int ok = st == PG_OK && n == n_want && memcmp(got, want, n * sizeof *got) == 0;
    if (!ok) {
        fprintf(stderr, "%s: text \"%.*s\" (status %d)\n  expected ", where, (int)len, text,
                (int)st);
        print_ids(stderr, want, n_want);
        fprintf(stderr, "\n  got      ");
        print_ids(stderr, got, st == PG_OK ? n : 0);
        fputc('\n', stderr);
        check_failures++;
    }
    free(got);
    return ok;
}

/* Decodes ids by concatenating pieces and checks that it gives ' ' + text (the dummy prefix). */
static int check_round_trip(const pg_vocab *v, const char *text, size_t len, const char *where) {
    size_t cap = 4 * len + 8, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    char *out = malloc(4 * len + 8);
    size_t olen = 0;
    int ok = pg_vocab_tokenize(v, text, len, 1, ids, cap, &n) == PG_OK;
    for (size_t i = 0; ok && i < n; i++) {
        size_t plen;
        const char *piece = pg_vocab_piece(v, ids[i], &plen);
        if (olen + plen > 4 * len + 8) { ok = 0; break; }
        memcpy(out + olen, piece, plen);
        olen += plen;
    }
    if (len == 0) ok = ok && olen == 0;
    else ok = ok && olen == len + 1 && out[0] == ' ' && memcmp(out + 1, text, len) == 0;
    if (!ok) {
        fprintf(stderr, "%s: decode round trip failed for \"%.*s\": got \"%.*s\"\n", where,
                (int)len, text, (int)olen, out);
        check_failures++;
    }
    free(ids);
    free(out);
    return ok;
}

#define IDS(...) ((const int32_t[]){__VA_ARGS__}), (sizeof((const int32_t[]){__VA_ARGS__}) / 4)
#define TEXT(s) s, (sizeof(s) - 1)

/* ---- Tests --------------------------------------------------------------------------------- */

static void test_cases(const pg_vocab *v, const char *dir) {
    char path[4096];
    size_t size;
    char *buf = NULL;
    if (snprintf(path, sizeof path, "%s/llama/tok_cases.jsonl", dir) < (int)sizeof path)
        buf = json_read_file(path, &size);
    CHECK_MSG(buf != NULL, "cannot read %s", path);
    if (!buf) return;
    int n_cases = 0, n_pass = 0, n_round = 0;
    for (char *line = buf; line < buf + size;) {
        char *eol = memchr(line, '\n', (size_t)(buf + size - line));
        if (!eol) eol = buf + size;
        if (eol > line) {
            json_value *c = json_parse(line, (size_t)(eol - line));
            CHECK_MSG(c != NULL, "case line %d: %s", n_cases, json_last_error());
            size_t tlen = 0;
            const char *text = json_str(json_get(c, "text"), &tlen);
            const json_value *ids = json_get(c, "ids");
            if (c && text && ids) {
                size_t n = json_len(ids);
                int32_t *want = malloc((n + 1) * sizeof *want);
                for (size_t i = 0; i < n; i++) want[i] = (int32_t)json_num(json_at(ids, i));
                char where[64];
                snprintf(where, sizeof where, "case %d", (int)json_num(json_get(c, "n")));
                n_pass += check_ids(v, text, tlen, 0, want, n, where);
                n_round += check_round_trip(v, text, tlen, where);
                free(want);
            }
            json_free(c);
            n_cases++;
        }
        line = eol + 1;
    }
    free(buf);
    printf("tok_cases: %d/%d exact, %d/%d decode round trips\n", n_pass, n_cases, n_round,
           n_cases);
    CHECK_EQ_INT(n_cases, 257);
}

/* The prompts of the llama.cpp goldens: tokens with BOS. */
static void test_golden_prompts(const pg_vocab *v, const char *dir) {
    static const char *names[] = {"human", "vicuna", "unicode"};
    for (int k = 0; k < 3; k++) {
        char path[4096];
        size_t size;
        char *buf = NULL;
        if (snprintf(path, sizeof path, "%s/llama/golden/tiny-f32.%s.json", dir, names[k]) <
            (int)sizeof path)
            buf = json_read_file(path, &size);
        json_value *g = buf ? json_parse(buf, size) : NULL;
        size_t tlen = 0;
        const char *text = json_str(json_get(g, "prompt"), &tlen);
        const json_value *toks = json_get(g, "tokens");
        CHECK_MSG(text && toks, "cannot read prompt and tokens from %s", path);
        if (text && toks) {
            size_t n = json_len(toks);
            int32_t *want = malloc((n + 1) * sizeof *want);
            for (size_t i = 0; i < n; i++) want[i] = (int32_t)json_num(json_at(toks, i));
            check_ids(v, text, tlen, 1, want, n, path);
            free(want);
        }
        json_free(g);
        free(buf);
    }
}

static void test_spec_prompts(const pg_vocab *v) {
    check_ids(v, TEXT("### Human: <Img>"), 0, IDS(835, 12968, 29901, 529, 25518, 29958), "§2.1");
    check_ids(v, TEXT("</Img> Describe this image.\n### Assistant:"), 0,
              IDS(1533, 25518, 29958, 20355, 915, 445, 1967, 29889, 13, 2277, 29937, 4007, 22137,
                  29901),
              "§2.1 p_after");
    check_ids(v,
              TEXT("</Img> What is in the image?\n### Assistant: A dog.\n### Human: What color "
                   "is it?\n### Assistant:"),
              0,
              IDS(1533, 25518, 29958, 1724, 338, 297, 278, 1967, 29973, 13, 2277, 29937, 4007,
                  22137, 29901, 319, 11203, 29889, 13, 2277, 29937, 12968, 29901, 1724, 2927, 338,
                  372, 29973, 13, 2277, 29937, 4007, 22137, 29901),
              "§2.2 multi-turn");
    check_ids(v, TEXT("### Human: <Img>"), 1, IDS(1, 835, 12968, 29901, 529, 25518, 29958),
              "add_bos");
    /* "<s>" is plain text: ▁< s > */
    int32_t lt = pg_vocab_find(v, TEXT("\xE2\x96\x81<")), s = pg_vocab_find(v, TEXT("s")),
            gt = pg_vocab_find(v, TEXT(">"));
    CHECK(lt == 529 && s >= 0 && gt == 29958);
    check_ids(v, TEXT("<s>"), 0, IDS(529, 29879, 29958), "<s> as text");
    CHECK_EQ_INT(s, 29879);
    int32_t ids[8];
    size_t n = 99;
    CHECK_OK(pg_vocab_tokenize(v, "", 0, 0, ids, 8, &n));
    CHECK_EQ_INT(n, 0);
    CHECK_OK(pg_vocab_tokenize(v, NULL, 0, 1, ids, 8, &n));
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ids[0], 1);
}

static void test_errors_and_pieces(const pg_vocab *v) {
    int32_t ids[4] = {-7, -7, -7, -7};
    size_t n = 0;
    /* "### Human: <Img>" needs 6 (7 with BOS) */
    CHECK_STATUS(pg_vocab_tokenize(v, TEXT("### Human: <Img>"), 1, ids, 3, &n),
                 PG_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(n, 7);
    CHECK(ids[0] == 1 && ids[1] == 835 && ids[2] == 12968 && ids[3] == -7);
    CHECK(strstr(pg_last_error(), "7") != NULL);
    CHECK_STATUS(pg_vocab_tokenize(v, TEXT("hello"), 0, NULL, 0, &n), PG_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(n, 1); /* ▁hello */
    CHECK_STATUS(pg_vocab_tokenize(v, NULL, 3, 0, ids, 4, &n), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(pg_vocab_tokenize(v, TEXT("x"), 0, ids, 4, NULL), PG_ERR_INVALID_ARGUMENT);

    size_t len = 99;
    const char *p = pg_vocab_piece(v, 835, &len);
    CHECK(len == 4 && memcmp(p, " ###", 4) == 0);
    p = pg_vocab_piece(v, 13, &len);
    CHECK(len == 1 && p[0] == '\n');
    pg_vocab_piece(v, 1, &len);
    CHECK_EQ_INT(len, 0);
    pg_vocab_piece(v, 0, &len);
    CHECK_EQ_INT(len, 0);
    pg_vocab_piece(v, 32000, &len);
    CHECK_EQ_INT(len, 0);
    pg_vocab_piece(v, -1, &len);
    CHECK_EQ_INT(len, 0);
    CHECK_EQ_INT(pg_vocab_find(v, TEXT("<0x0A>")), 13);
    CHECK_EQ_INT(pg_vocab_find(v, TEXT("no such piece")), -1);
    CHECK_EQ_INT(pg_vocab_size(v), 32000);
    CHECK_EQ_INT(pg_vocab_bos(v), 1);
    CHECK_EQ_INT(pg_vocab_eos(v), 2);
}

static void test_invalid_utf8(const pg_vocab *v) {
    /* stray bytes become their own byte tokens: <0xFF>=258, <0xFE>=257, <0xE4>=231, <0xBD>=192 */
    check_ids(v, TEXT("\xFF\xFE"), 0, IDS(29871, 258, 257), "invalid bytes");
    check_ids(v, TEXT("\xE4\xBD"), 0, IDS(29871, 231, 192), "truncated sequence");
    check_ids(v, TEXT("\xC0\xAF"), 0, IDS(29871, 195, 178), "overlong");
    check_ids(v, TEXT("\xED\xA0\x80"), 0, IDS(29871, 240, 163, 131), "surrogate");
    check_round_trip(v, TEXT("a\xFF b\x80\xE4\xBD c\xF0\x9F"), "invalid round trip");
    check_round_trip(v, TEXT("nul\0byte"), "NUL");
}

/* A synthetic vocabulary: UNUSED pieces are resegmented, CONTROL pieces never merged. */
static void test_synthetic(void) {
    const char *pieces[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a",  "b",     "ab",
                            "\xE2\x96\x81\x61", "<", "s",  ">", "<s", "<0x78>"};
    const float scores[] = {0, 0, 0, -1, -2, -3, 10, 1, -4, -5, -6, 5, 0};
    const int32_t types[] = {2, 3, 3, 1, 1, 1, 5, 1, 1, 1, 1, 1, 6};
    const int32_t n = (int32_t)(sizeof scores / sizeof scores[0]);
    uint64_t lens[sizeof scores / sizeof scores[0]];
    for (int32_t i = 0; i < n; i++) lens[i] = strlen(pieces[i]);
    pg_vocab *v = NULL;
    CHECK_OK(pg_vocab_new(n, pieces, lens, scores, types, 1, 2, 0, &v));
    if (v) {
        /* "ab" (unused, score 10) wins over "▁a", then splits back: ▁ a b */
        check_ids(v, TEXT("ab"), 0, IDS(3, 4, 5), "synthetic unused");
        check_ids(v, TEXT("<s>"), 0, IDS(3, 11, 10), "synthetic control");
        /* 'x' has byte piece 12, 'y' has none: unk */
        check_ids(v, TEXT("xy"), 0, IDS(3, 12, 0), "synthetic fallback");
        pg_vocab_free(v);
    }
    /* types NULL: <0xNN> pieces are BYTE */
    CHECK_OK(pg_vocab_new(n, pieces, lens, scores, NULL, 1, 2, 0, &v));
    if (v) {
        /* ... and "<s>" is then NORMAL, so it merges */
        check_ids(v, TEXT("x<s>"), 0, IDS(3, 12, 1), "types NULL");
        pg_vocab_free(v);
    }
    const char *dup[] = {"a", "b", "a"};
    const uint64_t dlens[] = {1, 1, 1};
    CHECK_STATUS(pg_vocab_new(3, dup, dlens, scores, NULL, -1, -1, -1, &v), PG_ERR_FORMAT);
    CHECK(v == NULL);
    const int32_t btypes[] = {1, 6, 1};
    CHECK_STATUS(pg_vocab_new(3, dup, dlens, scores, btypes, -1, -1, -1, &v), PG_ERR_FORMAT);
    CHECK_STATUS(pg_vocab_new(3, dup, dlens, scores, NULL, 5, -1, -1, &v), PG_ERR_FORMAT);
    CHECK_STATUS(pg_vocab_new(0, dup, dlens, scores, NULL, -1, -1, -1, &v),
                 PG_ERR_INVALID_ARGUMENT);
}

static void test_speed(const pg_vocab *v) {
    const size_t len = 1 << 20;
    char *text = malloc(len);
    static const char *words[] = {"the ", "image ", "shows ", "a ", "dog", ".\n", "  ", "café ",
                                  "你好", "🦙", "\t", "### ", "42", "naïve ", "Ꙋ", "x"};
    uint64_t x = 12345;
    size_t n = 0;
    while (n < len) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        const char *w = words[(x >> 33) % 16];
        size_t wl = strlen(w);
        if (n + wl > len) wl = len - n; /* may cut a character: invalid UTF-8 at the end */
        memcpy(text + n, w, wl);
        n += wl;
    }
    size_t cap = len + 2, n_tok = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_OK(pg_vocab_tokenize(v, text, len, 1, ids, cap, &n_tok));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6;
    printf("1 MiB of text -> %zu tokens in %.1f ms\n", n_tok, ms);
    check_round_trip(v, text, len, "1 MiB text");
    /* a long run with no merge boundary: one 200k-character word of spaces and letters */
    memset(text, ' ', 200000);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_OK(pg_vocab_tokenize(v, text, 200000, 0, ids, cap, &n_tok));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6;
    printf("200k spaces -> %zu tokens in %.1f ms\n", n_tok, ms);
    CHECK_EQ_INT(n_tok, (200001 + 15) / 16);
    free(ids);
    free(text);
}

int main(void) {
    test_synthetic();
    const char *dir = check_reference_dir();
    if (!dir) return check_failures ? check_done("test_tokenizer") : CHECK_SKIP;
    char path[4096];
    tsv_vocab t = {0};
    if (snprintf(path, sizeof path, "%s/llama/llama_vocab.tsv", dir) >= (int)sizeof path ||
        !tsv_load(path, &t)) {
        fprintf(stderr, "cannot read %s\n", path);
        tsv_free(&t);
        return 1;
    }
    CHECK_EQ_INT(t.n, 32000);
    pg_vocab *v = NULL;
    CHECK_OK(pg_vocab_new(t.n, (const char *const *)t.pieces, t.lens, t.scores, t.types, 1, 2, 0,
                          &v));
    tsv_free(&t);
    if (!v) return check_done("test_tokenizer");
    test_cases(v, dir);
    test_golden_prompts(v, dir);
    test_spec_prompts(v);
    test_errors_and_pieces(v);
    test_invalid_utf8(v);
    test_speed(v);
    pg_vocab_free(v);
    return check_done("test_tokenizer");
}
