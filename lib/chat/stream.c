/*
 * stream.c — UTF-8-safe assembly of the streamed answer (see stream.h).
 */
#include "stream.h"

#include <stdlib.h>
#include <string.h>

int chat_stream_reset(chat_stream *s, size_t bytes) {
    if (bytes + 1 > s->cap) {
        char *p = realloc(s->text, bytes + 1);
        if (!p) return -1;
        s->text = p;
        s->cap = bytes + 1;
    }
    s->len = s->emitted = 0;
    s->n_pend = s->n_need = 0;
    s->started = 0;
    return 0;
}

void chat_stream_free(chat_stream *s) {
    free(s->text);
    memset(s, 0, sizeof *s);
}

static void put(chat_stream *s, const void *p, size_t n) {
    if (s->len + n >= s->cap) return; /* cannot happen when reserved as documented */
    memcpy(s->text + s->len, p, n);
    s->len += n;
}

static void put_replacement(chat_stream *s) { put(s, "\xEF\xBF\xBD", 3); }

/* Length of the character a lead byte starts (0: not a lead byte). */
static int utf8_need(uint8_t c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* Whether c may follow the pending bytes (rejects overlongs, surrogates and > U+10FFFF). */
static int utf8_continues(const chat_stream *s, uint8_t c) {
    if (c < 0x80 || c > 0xBF) return 0;
    if (s->n_pend == 1) {
        uint8_t lead = s->pend[0];
        if (lead == 0xE0 && c < 0xA0) return 0;
        if (lead == 0xED && c > 0x9F) return 0;
        if (lead == 0xF0 && c < 0x90) return 0;
        if (lead == 0xF4 && c > 0x8F) return 0;
    }
    return 1;
}

static void push_byte(chat_stream *s, uint8_t c) {
    if (!s->started) {
        s->started = 1;
        if (c == ' ') return; /* the dummy-prefix space of the first piece */
    }
    if (s->n_pend) {
        if (utf8_continues(s, c)) {
            s->pend[s->n_pend++] = c;
            if (s->n_pend == s->n_need) {
                put(s, s->pend, (size_t)s->n_pend);
                s->n_pend = 0;
            }
            return;
        }
        put_replacement(s); /* the pending character can never complete */
        s->n_pend = 0;
    }
    int need = utf8_need(c);
    if (need == 1) {
        put(s, &c, 1);
    } else if (need == 0) {
        put_replacement(s);
    } else {
        s->pend[0] = c;
        s->n_pend = 1;
        s->n_need = need;
    }
}

void chat_stream_push(chat_stream *s, const char *bytes, size_t n) {
    for (size_t i = 0; i < n; i++) push_byte(s, (uint8_t)bytes[i]);
}

void chat_stream_finish(chat_stream *s) {
    if (s->n_pend) put_replacement(s);
    s->n_pend = 0;
}

const char *chat_stream_take(chat_stream *s, size_t *n) {
    const char *p = s->text + s->emitted;
    *n = s->len - s->emitted;
    s->emitted = s->len;
    return p;
}
