/*
 * stream.h — turns generated tokens into the answer text, piece by piece, so that every piece
 * handed to the user's callback is valid UTF-8 and the pieces concatenate to the final answer.
 *
 * Byte tokens (<0xNN>) can split a character across tokens: bytes are held until the character
 * is complete; a sequence that can never become valid UTF-8 becomes U+FFFD, as Python's
 * errors="replace" decoding does. The answer's first space (SentencePiece's dummy prefix) is
 * dropped, as HF's decode drops it.
 */
#ifndef PG_CHAT_STREAM_H
#define PG_CHAT_STREAM_H

#include <stddef.h>
#include <stdint.h>

typedef struct chat_stream {
    char *text;        /* the answer so far (owned; capacity cap) */
    size_t len, cap;
    size_t emitted;    /* bytes of text already handed to the callback */
    uint8_t pend[4];   /* bytes of an incomplete UTF-8 character */
    int n_pend, n_need;
    int started;       /* a first byte has been seen (the dummy-prefix space is behind us) */
} chat_stream;

/* Empties the stream, keeping its buffer; makes sure cap >= bytes (0 or PG_ERR_OUT_OF_MEMORY). */
int chat_stream_reset(chat_stream *s, size_t bytes);
void chat_stream_free(chat_stream *s);
/* Appends the bytes of one token. Never fails when the buffer was reserved for 3 bytes per
 * input byte (the U+FFFD worst case). */
void chat_stream_push(chat_stream *s, const char *bytes, size_t n);
/* Ends the answer: an incomplete trailing character becomes U+FFFD. */
void chat_stream_finish(chat_stream *s);
/* The complete text not yet emitted; marks it emitted. */
const char *chat_stream_take(chat_stream *s, size_t *n);

#endif
