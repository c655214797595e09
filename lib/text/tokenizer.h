/*
 * tokenizer.h — SentencePiece-BPE (LLaMA's tokenizer) from the GGUF vocabulary
 * (tokenizer.ggml.tokens / scores / token_type).
 *
 * Encoding follows sentencepiece's BPE model with LLaMA's settings: spaces become U+2581 "▁",
 * one "▁" is prepended (add_dummy_prefix), whitespace is not collapsed, the text is split into
 * UTF-8 characters, and the adjacent pair whose merged piece is in the vocabulary with the
 * highest score is merged first (leftmost on ties) until no merge applies; characters left
 * without a piece fall back to their bytes (<0xNN>). Control text like "<s>" is plain text.
 */
#ifndef PG_TOKENIZER_H
#define PG_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "pandagpt.h"

/* tokenizer.ggml.token_type values (sentencepiece's enum) */
enum {
    PG_TOKEN_NORMAL = 1, PG_TOKEN_UNKNOWN = 2, PG_TOKEN_CONTROL = 3,
    PG_TOKEN_USER_DEFINED = 4, PG_TOKEN_UNUSED = 5, PG_TOKEN_BYTE = 6,
};

typedef struct pg_vocab pg_vocab;

/* Builds a vocabulary from n pieces (pieces[i] has lens[i] bytes, need not be NUL-terminated),
 * their scores and types (types may be NULL: all NORMAL except <0xNN> pieces, which are BYTE).
 * Everything is copied. bos/eos/unk are the special ids (-1 when absent).
 * Errors: PG_ERR_FORMAT for an inconsistent vocabulary (e.g. duplicate piece, byte piece that is
 * not <0xNN>), PG_ERR_OUT_OF_MEMORY. */
pg_status pg_vocab_new(int32_t n, const char *const *pieces, const uint64_t *lens,
                       const float *scores, const int32_t *types, int32_t bos, int32_t eos,
                       int32_t unk, pg_vocab **out);
void pg_vocab_free(pg_vocab *v);

int32_t pg_vocab_size(const pg_vocab *v);
int32_t pg_vocab_bos(const pg_vocab *v);
int32_t pg_vocab_eos(const pg_vocab *v);
/* Id of the piece with exactly these bytes ("▁" spelled as U+2581), or -1. */
int32_t pg_vocab_find(const pg_vocab *v, const char *piece, size_t len);

/* Encodes len bytes of text (any bytes; invalid UTF-8 is encoded byte by byte via byte fallback).
 * Writes at most cap ids; *n_tokens gets the number needed. Returns PG_OK, or
 * PG_ERR_INVALID_ARGUMENT when cap is too small (message says how many are needed), or
 * PG_ERR_OUT_OF_MEMORY. Thread-safe (no shared mutable state). */
pg_status pg_vocab_tokenize(const pg_vocab *v, const char *text, size_t len, int add_bos,
                            int32_t *tokens, size_t cap, size_t *n_tokens);

/* Decoded bytes of one token: "▁" -> ' ', <0xNN> -> byte NN, CONTROL / UNKNOWN / UNUSED -> empty.
 * Ids >= pg_vocab_size (e.g. Vicuna's [PAD] row 32000 absent from the vocabulary) -> empty.
 * Returns a pointer into the vocabulary and the length in *len. */
const char *pg_vocab_piece(const pg_vocab *v, int32_t token, size_t *len);

#endif
