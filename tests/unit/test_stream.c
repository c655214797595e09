/*
 * test_stream.c — the answer assembler: UTF-8 split across byte tokens is held until complete,
 * invalid sequences become U+FFFD, the dummy-prefix space is dropped, and what is taken piece by
 * piece always concatenates to the whole text, every piece valid UTF-8.
 */
#include <stdint.h>
#include <string.h>

#include "chat/stream.h"
#include "check.h"

/* Strict UTF-8 validation (no overlongs, surrogates, or > U+10FFFF). */
static int valid_utf8(const char *s, size_t n) {
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        int k = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
              : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        if (!k || i + k > n) return 0;
        for (int j = 1; j < k; j++)
            if ((p[i + j] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[i + 1] < 0xA0) return 0;
        if (c == 0xED && p[i + 1] > 0x9F) return 0;
        if (c == 0xF0 && p[i + 1] < 0x90) return 0;
        if (c == 0xF4 && p[i + 1] > 0x8F) return 0;
        i += k;
    }
    return 1;
}

/* Pushes each token, takes after each, and compares the concatenation with want. */
static void run(const char *const *tokens, size_t n, const char *want) {
    chat_stream s = {0};
    CHECK(chat_stream_reset(&s, 256) == 0);
    char got[512];
    size_t got_len = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n) chat_stream_push(&s, tokens[i], strlen(tokens[i]));
        else chat_stream_finish(&s);
        size_t k;
        const char *piece = chat_stream_take(&s, &k);
        CHECK_MSG(valid_utf8(piece, k), "piece after token %zu is not valid UTF-8", i);
        memcpy(got + got_len, piece, k);
        got_len += k;
    }
    CHECK_MSG(got_len == strlen(want) && memcmp(got, want, got_len) == 0,
              "expected '%s', got '%.*s'", want, (int)got_len, got);
    CHECK(s.len == got_len && memcmp(s.text, got, got_len) == 0);
    chat_stream_free(&s);
}

int main(void) {
    const char *plain[] = {" A", " dog", "."};
    run(plain, 3, "A dog.");
    const char *space_twice[] = {" ", " x"};      /* only the first space is the dummy prefix */
    run(space_twice, 2, " x");
    const char *llama[] = {" ", "\xF0", "\x9F", "\xA6", "\x99", "!"}; /* 🦙 as four byte tokens */
    run(llama, 6, "\xF0\x9F\xA6\x99!");
    const char *cut[] = {" a", "\xE4\xBD"};        /* ends mid-character */
    run(cut, 2, "a\xEF\xBF\xBD");
    const char *broken[] = {" a", "\xE4", "b", "\x80"}; /* lead then ASCII; lone continuation */
    run(broken, 4, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
    const char *surrogate[] = {"\xED\xA0\x80"};    /* U+D800 is not UTF-8 */
    run(surrogate, 1, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    const char *empty[] = {""};
    run(empty, 1, "");
    return check_done("stream");
}
