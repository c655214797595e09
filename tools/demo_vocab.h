/*
 * demo_vocab.h — the demo model's vocabulary, trained here, with no download.
 *
 * A SentencePiece-style BPE trainer runs over a small English corpus compiled into the program
 * (images, sounds, videos, animals, colours, PandaGPT-style "### Human: ... ### Assistant: ..."
 * lines). The layout is LLaMA's:
 *   0 "<unk>" (UNKNOWN), 1 "<s>", 2 "</s>" (CONTROL), 3..258 "<0x00>".."<0xFF>" (BYTE, score 0),
 *   then the learned merges in rank order (NORMAL, score -rank, so earlier merges win),
 *   then every single character (NORMAL, scores below the merges, as sentencepiece orders them),
 *   then, to reach the requested size, synthetic pieces "▁tok<id>" (NORMAL, lowest scores; valid
 *   but unreachable, since no piece of their prefixes exists).
 * The library's tokenizer (highest-scored adjacent pair whose concatenation is a piece) then
 * reproduces the trainer's segmentation. "\n" is not a piece (byte fallback, as in LLaMA) and
 * "###" without "▁" is never learned, so "\n###" becomes "<0x0A>" "##" "#" exactly as LLaMA
 * tokenizes it — the chat's stop on "##" depends on that.
 * The result is deterministic: the same size gives the same vocabulary on every machine.
 */
#ifndef PG_DEMO_VOCAB_H
#define PG_DEMO_VOCAB_H

#include <stdint.h>

typedef struct demo_vocab {
    int32_t n;            /* number of pieces */
    char **pieces;        /* (n) NUL-terminated UTF-8, "▁" for a space */
    float *scores;        /* (n) */
    int32_t *types;       /* (n) tokenizer.ggml.token_type values */
    int32_t n_merges;     /* learned pieces, ids 259 .. 259+n_merges-1 */
    int32_t n_chars;      /* single-character pieces that follow them */
    int32_t n_padding;    /* synthetic "▁tok<id>" pieces at the end */
} demo_vocab;

/* Trains the vocabulary with n_vocab pieces in all (default 4000; at least 259 + the corpus's
 * characters). Returns NULL on out of memory or an n_vocab too small. */
demo_vocab *demo_vocab_build(int32_t n_vocab);
void demo_vocab_free(demo_vocab *v);

/* The embedded training corpus (NUL-terminated). */
const char *demo_vocab_corpus(void);

#endif
