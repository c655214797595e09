/*
 * tokenizer.c — SentencePiece BPE encoding as sentencepiece's bpe_model.cc does it for LLaMA
 * (spec §2.3): identity normaliser, add_dummy_prefix, no whitespace collapsing, byte_fallback.
 *
 * Encoding, step by step:
 *   1. Normalise: every ' ' becomes "▁" (U+2581) and one "▁" is prepended (not for empty text:
 *      sentencepiece encodes "" as no tokens).
 *   2. Split into symbols, one per UTF-8 character. A byte that does not start a well-formed UTF-8
 *      sequence (stray continuation, overlong form, surrogate, > U+10FFFF, truncated sequence) is
 *      a symbol of its own. Deviation: sentencepiece's normaliser would replace such a byte by
 *      U+FFFD (piece 30140 in LLaMA); we keep the byte so that it comes back out as <0xNN> and the
 *      text round-trips through decoding, as the header promises.
 *   3. Merge: a max-heap holds every adjacent pair whose concatenation is a mergeable piece
 *      (NORMAL, USER_DEFINED or UNUSED), ordered by the piece's score, ties to the leftmost pair,
 *      exactly sentencepiece's agenda. Entries made stale by an earlier merge are recognised by
 *      their size and skipped. O(n log n) in the text length.
 *   4. Emit: a symbol that is a NORMAL or USER_DEFINED piece gives its id; an UNUSED piece is split
 *      back into the two symbols it was merged from (sentencepiece's resegmentation; we follow
 *      the actual merge history rather than a piece -> split map, which only differs if the same
 *      unused piece was formed from two different splits); anything else falls back to its bytes
 *      as <0xNN> pieces, or to unk when a byte piece is missing. CONTROL, UNKNOWN and BYTE pieces
 *      are never merge targets, so "<s>" in the text is plain text.
 *
 * LLaMA has no USER_DEFINED pieces; sentencepiece would match those as whole prefixes before BPE.
 * Here they merge like NORMAL pieces.
 */
#include "tokenizer.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"

/* ---- Vocabulary ---------------------------------------------------------------------------- */

struct pg_vocab {
    int32_t n;              /* number of pieces */
    int32_t bos, eos, unk;  /* special ids, -1 when absent */
    char *text;             /* (sum of piece lengths) every piece's bytes, back to back */
    size_t *off;            /* (n + 1) piece i is text[off[i] .. off[i+1]) */
    float *scores;          /* (n) merge priority: higher merges first */
    uint8_t *types;         /* (n) PG_TOKEN_* */
    char *dec;              /* (sum of decoded lengths) decoded bytes of every piece */
    size_t *dec_off;        /* (n + 1) decoded piece i is dec[dec_off[i] .. dec_off[i+1]) */
    int32_t *slots;         /* (mask + 1) open-addressing table of ids, -1 = empty */
    size_t mask;            /* table size - 1 (a power of two, at least 2n) */
    size_t max_merge_len;   /* longest mergeable piece in bytes: longer pairs are not looked up */
    int32_t byte_id[256];   /* id of <0xNN>, or -1 */
};

static const char k_space_mark[] = "\xE2\x96\x81"; /* U+2581 "▁" */

static uint64_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static int32_t vocab_lookup(const pg_vocab *v, const char *piece, size_t len) {
    size_t i = (size_t)hash_bytes(piece, len) & v->mask;
    for (;;) {
        int32_t id = v->slots[i];
        if (id < 0) return -1;
        size_t plen = v->off[id + 1] - v->off[id];
        if (plen == len && memcmp(v->text + v->off[id], piece, len) == 0) return id;
        i = (i + 1) & v->mask;
    }
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte NN of a "<0xNN>" piece, or -1. */
static int parse_byte_piece(const char *p, size_t len) {
    if (len != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    int hi = hex_digit(p[3]), lo = hex_digit(p[4]);
    return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

static int is_mergeable(int type) {
    return type == PG_TOKEN_NORMAL || type == PG_TOKEN_USER_DEFINED || type == PG_TOKEN_UNUSED;
}

void pg_vocab_free(pg_vocab *v) {
    if (!v) return;
    free(v->text);
    free(v->off);
    free(v->scores);
    free(v->types);
    free(v->dec);
    free(v->dec_off);
    free(v->slots);
    free(v);
}

pg_status pg_vocab_new(int32_t n, const char *const *pieces, const uint64_t *lens,
                       const float *scores, const int32_t *types, int32_t bos, int32_t eos,
                       int32_t unk, pg_vocab **out) {
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_vocab_new: out is NULL");
    *out = NULL;
    if (n <= 0 || !pieces || !lens || !scores)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT,
                            "pg_vocab_new: empty vocabulary or NULL pieces/lens/scores");
    const int32_t specials[3] = {bos, eos, unk};
    for (int k = 0; k < 3; k++)
        if (specials[k] < -1 || specials[k] >= n)
            return pg_set_error(PG_ERR_FORMAT, "vocabulary: special id %d outside [0, %d)",
                                (int)specials[k], (int)n);

    pg_status st = PG_OK;
    pg_vocab *v = calloc(1, sizeof *v);
    if (!v) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "vocabulary: out of memory");
    v->n = n;
    v->bos = bos;
    v->eos = eos;
    v->unk = unk;
    for (int b = 0; b < 256; b++) v->byte_id[b] = -1;

    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (lens[i] > SIZE_MAX / 4 - total || (lens[i] && !pieces[i])) {
            st = pg_set_error(PG_ERR_FORMAT, "vocabulary: piece %d has a bad length", (int)i);
            goto fail;
        }
        total += (size_t)lens[i];
    }
    size_t cap = 1;
    while (cap < 2 * (size_t)n) cap <<= 1;
    v->mask = cap - 1;
    v->text = malloc(total + 1);
    v->dec = malloc(total + 1);
    v->off = malloc(((size_t)n + 1) * sizeof *v->off);
    v->dec_off = malloc(((size_t)n + 1) * sizeof *v->dec_off);
    v->scores = malloc((size_t)n * sizeof *v->scores);
    v->types = malloc((size_t)n);
    v->slots = malloc(cap * sizeof *v->slots);
    if (!v->text || !v->dec || !v->off || !v->dec_off || !v->scores || !v->types || !v->slots) {
        st = pg_set_error(PG_ERR_OUT_OF_MEMORY, "vocabulary: out of memory (%d pieces)", (int)n);
        goto fail;
    }
    memset(v->slots, 0xff, cap * sizeof *v->slots);

    size_t pos = 0, dpos = 0;
    for (int32_t i = 0; i < n; i++) {
        const char *p = pieces[i];
        size_t len = (size_t)lens[i];
        int byte = parse_byte_piece(p, len);
        int type = types ? types[i] : (byte >= 0 ? PG_TOKEN_BYTE : PG_TOKEN_NORMAL);
        if (type == 0) type = PG_TOKEN_NORMAL; /* llama.cpp's "undefined" */
        if (type < PG_TOKEN_NORMAL || type > PG_TOKEN_BYTE) {
            st = pg_set_error(PG_ERR_FORMAT, "vocabulary: piece %d has unknown type %d", (int)i,
                              (int)type);
            goto fail;
        }
        if (type == PG_TOKEN_BYTE) {
            if (byte < 0) {
                st = pg_set_error(PG_ERR_FORMAT, "vocabulary: byte piece %d is not <0xNN>", (int)i);
                goto fail;
            }
            if (v->byte_id[byte] >= 0) {
                st = pg_set_error(PG_ERR_FORMAT, "vocabulary: byte 0x%02X has pieces %d and %d",
                                  byte, (int)v->byte_id[byte], (int)i);
                goto fail;
            }
            v->byte_id[byte] = i;
        }
        v->off[i] = pos;
        if (len) memcpy(v->text + pos, p, len);
        pos += len;
        v->scores[i] = scores[i];
        v->types[i] = (uint8_t)type;
        if (is_mergeable(type) && len > v->max_merge_len) v->max_merge_len = len;

        /* decoded form: "▁" -> ' ', <0xNN> -> the byte, control/unknown/unused -> nothing */
        v->dec_off[i] = dpos;
        if (type == PG_TOKEN_BYTE) {
            v->dec[dpos++] = (char)byte;
        } else if (type == PG_TOKEN_NORMAL || type == PG_TOKEN_USER_DEFINED) {
            for (size_t k = 0; k < len;) {
                if (k + 3 <= len && memcmp(p + k, k_space_mark, 3) == 0) {
                    v->dec[dpos++] = ' ';
                    k += 3;
                } else {
                    v->dec[dpos++] = p[k++];
                }
            }
        }

        if (vocab_lookup(v, p, len) >= 0) {
            st = pg_set_error(PG_ERR_FORMAT, "vocabulary: piece %d duplicates piece %d", (int)i,
                              (int)vocab_lookup(v, p, len));
            goto fail;
        }
        v->off[i + 1] = pos; /* vocab_lookup of later pieces reads off[i + 1] */
        size_t slot = (size_t)hash_bytes(p, len) & v->mask;
        while (v->slots[slot] >= 0) slot = (slot + 1) & v->mask;
        v->slots[slot] = i;
    }
    v->off[n] = pos;
    v->dec_off[n] = dpos;
    *out = v;
    return PG_OK;

fail:
    pg_vocab_free(v);
    return st;
}

int32_t pg_vocab_size(const pg_vocab *v) { return v ? v->n : 0; }
int32_t pg_vocab_bos(const pg_vocab *v) { return v ? v->bos : -1; }
int32_t pg_vocab_eos(const pg_vocab *v) { return v ? v->eos : -1; }

int32_t pg_vocab_find(const pg_vocab *v, const char *piece, size_t len) {
    if (!v || (!piece && len)) return -1;
    return vocab_lookup(v, piece ? piece : "", len);
}

const char *pg_vocab_piece(const pg_vocab *v, int32_t token, size_t *len) {
    if (!v || token < 0 || token >= v->n) {
        if (len) *len = 0;
        return "";
    }
    if (len) *len = v->dec_off[token + 1] - v->dec_off[token];
    return v->dec + v->dec_off[token];
}

/* ---- Encoding ------------------------------------------------------------------------------ */

/* Length of the well-formed UTF-8 character at s (Unicode Table 3-7), or 1 for a byte that does
 * not start one. */
static size_t utf8_char_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;      /* no overlongs */
        else if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F; /* <= U+10FFFF */
    } else return 1;
    if (n < need || s[1] < lo || s[1] > hi) return 1;
    for (size_t k = 2; k < need; k++)
        if (s[k] < 0x80 || s[k] > 0xBF) return 1;
    return need;
}

typedef struct symbol {
    int32_t start, len;  /* bytes of the normalised text; len 0 once merged into its left */
    int32_t prev, next;  /* neighbouring live symbols, -1 at the ends */
    int32_t node;        /* merge-tree node this symbol is */
} symbol;

typedef struct merge_node {
    int32_t start, len;
    int32_t left, right; /* child nodes, -1 for an initial character */
} merge_node;

typedef struct pair {
    float score;
    int32_t left, right; /* symbol indices */
    int32_t len;         /* bytes of the merged piece: a stale pair no longer matches */
} pair;

/* sentencepiece's agenda order: higher score first, then the leftmost pair */
static int pair_before(const pair *a, const pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(pair *h, size_t *n, pair p) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = p;
}

static pair heap_pop(pair *h, size_t *n) {
    pair top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && pair_before(&h[c + 1], &h[c])) c++;
        if (!pair_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

typedef struct encoder {
    const pg_vocab *v;
    const char *buf;   /* normalised text */
    symbol *sym;
    merge_node *nodes;
    int32_t n_nodes;
    pair *heap;
    size_t n_heap;
    int32_t *stack;    /* for walking a merge tree */
    int32_t *tokens;
    size_t cap, count;
} encoder;

static void try_pair(encoder *e, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const symbol *l = &e->sym[left], *r = &e->sym[right];
    size_t len = (size_t)l->len + (size_t)r->len;
    if (len > e->v->max_merge_len) return;
    int32_t id = vocab_lookup(e->v, e->buf + l->start, len);
    if (id < 0 || !is_mergeable(e->v->types[id])) return;
    pair p = {e->v->scores[id], left, right, (int32_t)len};
    heap_push(e->heap, &e->n_heap, p);
}

static void emit(encoder *e, int32_t id) {
    if (e->count < e->cap) e->tokens[e->count] = id;
    e->count++;
}

static pg_status emit_bytes(encoder *e, int32_t start, int32_t len) {
    for (int32_t k = 0; k < len; k++) {
        int32_t id = e->v->byte_id[(unsigned char)e->buf[start + k]];
        if (id < 0) id = e->v->unk;
        if (id < 0)
            return pg_set_error(PG_ERR_FORMAT,
                                "tokenize: byte 0x%02X has no piece and the vocabulary has no unk",
                                (unsigned char)e->buf[start + k]);
        emit(e, id);
    }
    return PG_OK;
}

/* Emits one final symbol, resegmenting UNUSED pieces along their merge history. */
static pg_status emit_symbol(encoder *e, int32_t node) {
    int32_t depth = 0;
    e->stack[depth++] = node;
    while (depth > 0) {
        const merge_node *nd = &e->nodes[e->stack[--depth]];
        int32_t id = vocab_lookup(e->v, e->buf + nd->start, (size_t)nd->len);
        int type = id >= 0 ? e->v->types[id] : 0;
        if (type == PG_TOKEN_NORMAL || type == PG_TOKEN_USER_DEFINED) {
            emit(e, id);
        } else if (type == PG_TOKEN_UNUSED && nd->left >= 0) {
            e->stack[depth++] = nd->right; /* left is emitted first */
            e->stack[depth++] = nd->left;
        } else {
            pg_status st = emit_bytes(e, nd->start, nd->len);
            if (st != PG_OK) return st;
        }
    }
    return PG_OK;
}

pg_status pg_vocab_tokenize(const pg_vocab *v, const char *text, size_t len, int add_bos,
                            int32_t *tokens, size_t cap, size_t *n_tokens) {
    if (n_tokens) *n_tokens = 0;
    if (!v || !n_tokens || (!text && len) || (!tokens && cap))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT,
                            "tokenize: NULL vocabulary, n_tokens, text or tokens");
    if (len > (size_t)(INT32_MAX - 3) / 3)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "tokenize: text of %zu bytes is too long",
                            len);

    encoder e = {.v = v, .tokens = tokens, .cap = cap};
    if (add_bos && v->bos >= 0) emit(&e, v->bos);
    pg_status st = PG_OK;
    char *buf = NULL;
    if (len == 0) goto done; /* sentencepiece: no dummy prefix on empty text */

    /* 1. normalise */
    buf = malloc(3 + 3 * len);
    size_t blen = 0;
    if (!buf) goto oom;
    memcpy(buf, k_space_mark, 3);
    blen = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + blen, k_space_mark, 3);
            blen += 3;
        } else {
            buf[blen++] = text[i];
        }
    }
    e.buf = buf;

    /* 2. split into characters */
    size_t n_chars = 0;
    for (size_t i = 0; i < blen; n_chars++)
        i += utf8_char_len((const unsigned char *)buf + i, blen - i);
    e.sym = malloc(n_chars * sizeof *e.sym);
    e.nodes = malloc(2 * n_chars * sizeof *e.nodes);
    e.heap = malloc(3 * n_chars * sizeof *e.heap); /* n-1 initial pairs, 2 more per merge */
    e.stack = malloc(2 * n_chars * sizeof *e.stack);
    if (!e.sym || !e.nodes || !e.heap || !e.stack) goto oom;
    size_t i = 0;
    for (int32_t s = 0; s < (int32_t)n_chars; s++) {
        int32_t clen = (int32_t)utf8_char_len((const unsigned char *)buf + i, blen - i);
        e.sym[s] = (symbol){(int32_t)i, clen, s - 1, s + 1 < (int32_t)n_chars ? s + 1 : -1, s};
        e.nodes[s] = (merge_node){(int32_t)i, clen, -1, -1};
        i += (size_t)clen;
    }
    e.n_nodes = (int32_t)n_chars;

    /* 3. merge the best pair until none applies */
    for (int32_t s = 0; s + 1 < (int32_t)n_chars; s++) try_pair(&e, s, s + 1);
    while (e.n_heap > 0) {
        pair p = heap_pop(e.heap, &e.n_heap);
        symbol *l = &e.sym[p.left], *r = &e.sym[p.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != p.len) continue; /* stale */
        e.nodes[e.n_nodes] = (merge_node){l->start, p.len, l->node, r->node};
        l->node = e.n_nodes++;
        l->len = p.len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) e.sym[r->next].prev = p.left;
        try_pair(&e, l->prev, p.left);
        try_pair(&e, p.left, l->next);
    }

    /* 4. emit */
    for (int32_t s = 0; s >= 0 && st == PG_OK; s = e.sym[s].next)
        st = emit_symbol(&e, e.sym[s].node);
    goto done;

oom:
    st = pg_set_error(PG_ERR_OUT_OF_MEMORY, "tokenize: out of memory for %zu bytes of text", len);
done:
    free(buf);
    free(e.sym);
    free(e.nodes);
    free(e.heap);
    free(e.stack);
    if (st != PG_OK) return st;
    *n_tokens = e.count;
    if (e.count > cap)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT,
                            "tokenize: %zu tokens needed, room for only %zu", e.count, cap);
    return PG_OK;
}
