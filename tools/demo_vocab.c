/*
 * demo_vocab.c — a SentencePiece-style BPE vocabulary trained on a corpus compiled in.
 *
 * Training follows sentencepiece's BPE trainer in the ways that matter to the tokenizer:
 * each corpus line is one sentence with a dummy "▁" prefix and spaces spelled "▁"; a "▁" starts
 * a new word and pieces never cross words; a piece holds "▁" only as its first character, never
 * mixes letters with punctuation (split_by_unicode_script) and never holds a digit
 * (split_digits, as LLaMA's vocabulary). Each step merges the most frequent adjacent pair
 * (ties: the lexicographically smallest result) and ranks it; the rank becomes the score.
 */
#include "demo_vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS "\xe2\x96\x81" /* U+2581, sentencepiece's space */
#define WS_LEN 3
#define MAX_PIECE_CHARS 16

/* ---- The corpus: our own text, one sentence per entry --------------------------------------- */

static const char *const k_corpus[] = {
    "### Human: What is in this image?",
    "### Assistant: A dog playing in the park.",
    "###",
    "### Human: Describe this picture in detail.",
    "### Assistant: A small brown puppy is running across green grass under a bright blue "
    "sky. Behind it there are tall trees and a wooden bench.",
    "###",
    "### Human: What sound do you hear in this audio?",
    "### Assistant: I hear a cat meowing softly, and then a door closing somewhere in the "
    "house.",
    "###",
    "### Human: What is happening in this video?",
    "### Assistant: Two children are riding bicycles along a quiet street at sunset, "
    "laughing and waving at the camera.",
    "###",
    "### Human: What colour is the car?",
    "### Assistant: The car is red, with black tyres and silver wheels.",
    "###",
    "### Human: Can you tell me what animal this is?",
    "### Assistant: This is a giant panda sitting in the snow and eating bamboo. Pandas "
    "live in the mountains of China.",
    "###",
    "### Human: How many birds are there?",
    "### Assistant: There are three birds on the branch: two sparrows and one robin with "
    "an orange chest.",
    "###",
    "### Human: Is it day or night in this photo?",
    "### Assistant: It is night. The city lights are shining and the moon is visible "
    "above the buildings.",
    "###",
    "### Human: What instrument is being played?",
    "### Assistant: Someone is playing a piano, slowly at first, and then a violin joins "
    "the melody.",
    "###",
    "### Human: Write a short story about this image.",
    "### Assistant: Once upon a time, a curious fox found a yellow ball by the river. He "
    "pushed it with his nose and watched it float away.",
    "###",
    "A photograph shows a horse standing in a field of purple flowers.",
    "The image contains a white cat sleeping on a soft grey blanket near the window.",
    "In the video, a man walks his dog along the beach while waves crash against the "
    "rocks.",
    "The audio clip features rain falling on a metal roof, followed by distant thunder.",
    "Colours such as red, orange, yellow, green, blue, indigo and violet make up the "
    "rainbow.",
    "Pink, brown, black, white, gold and silver are also common colours in pictures.",
    "An elephant sprays water with its trunk while a baby elephant plays in the mud.",
    "A lion rests in the shade of an acacia tree on the dry savanna.",
    "The kitten chases a piece of string across the kitchen floor.",
    "Ducks swim in the pond and a frog jumps from a lily pad.",
    "Monkeys climb through the jungle, calling to each other from the branches.",
    "A penguin slides on its belly over the ice toward the cold sea.",
    "The owl turns its head and blinks in the dark forest.",
    "Dolphins leap out of the ocean next to a small fishing boat.",
    "A cow and a sheep graze together on the hill beside the farm.",
    "The dog barks loudly when the doorbell rings.",
    "We can hear birds singing, leaves rustling and a stream flowing over stones.",
    "The sound of an engine grows louder as the train approaches the station.",
    "People are clapping and cheering at the end of the concert.",
    "A baby laughs while her mother sings a gentle song.",
    "The camera moves slowly through a busy market full of fruit and vegetables.",
    "In this scene, a chef chops onions and carrots on a wooden board.",
    "The depth map shows that the chair is closer to the camera than the table.",
    "A thermal image reveals the warm body of a person standing in a cold room.",
    "The motion sensor records that the person is walking, then running, then stopping.",
    "PandaGPT can see images and videos, hear audio, and read depth, thermal and motion "
    "data.",
    "It answers questions about what it perceives in simple, clear language.",
    "The model uses one encoder for every kind of input and a large language model to "
    "reply.",
    "Please describe the main objects, their colours, and what they are doing.",
    "Explain what you can hear and where the sounds might come from.",
    "Summarise the video in one sentence.",
    "Is there anything unusual or funny in this picture?",
    "What is the weather like in this scene?",
    "Which animal is the largest, and which is the smallest?",
    "The answer is yes, because the sky is cloudy and the ground is wet.",
    "The answer is no, there is nobody in the room.",
    "Numbers like 1, 2, 3, 10, 42 and 2023 may appear in text.",
    "Symbols such as #, @, &, <, >, =, +, -, *, /, %, (, ), [ and ] can be used too.",
    "A chat starts with ### Human: and the answer follows after ### Assistant:",
    "Thank you! You are welcome. Hello, how are you today? I am fine.",
};

#define N_CORPUS (sizeof k_corpus / sizeof k_corpus[0])

const char *demo_vocab_corpus(void) {
    static char *joined;
    if (!joined) {
        size_t n = 1;
        for (size_t i = 0; i < N_CORPUS; i++) n += strlen(k_corpus[i]) + 1;
        joined = malloc(n);
        if (!joined) return "";
        char *p = joined;
        for (size_t i = 0; i < N_CORPUS; i++) {
            size_t l = strlen(k_corpus[i]);
            memcpy(p, k_corpus[i], l);
            p[l] = '\n';
            p += l + 1;
        }
        *p = 0;
    }
    return joined;
}

/* Pieces the chat needs whatever the corpus teaches: the stop piece "##", the turn markers. */
static const char *const k_required[] = {
    "#", "##", WS "###", WS "Human", WS "Assistant", ":", "<", ">",
};
#define N_REQUIRED (sizeof k_required / sizeof k_required[0])

/* ---- Interned strings (open addressing on FNV-1a) ------------------------------------------- */

typedef struct strtab {
    char **str;        /* (n) owned strings; the index is the id */
    int32_t n, cap;
    int32_t *slots;    /* (n_slots) id + 1, 0 = empty */
    uint32_t n_slots;  /* power of two, > 2 n */
} strtab;

static uint32_t fnv1a(const char *s, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static int strtab_grow(strtab *t) {
    uint32_t n_slots = t->n_slots ? t->n_slots * 2 : 1024;
    int32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots) return 0;
    for (int32_t id = 0; id < t->n; id++) {
        uint32_t h = fnv1a(t->str[id], strlen(t->str[id])) & (n_slots - 1);
        while (slots[h]) h = (h + 1) & (n_slots - 1);
        slots[h] = id + 1;
    }
    free(t->slots);
    t->slots = slots;
    t->n_slots = n_slots;
    return 1;
}

/* Id of s[0..len), or -1. */
static int32_t strtab_find(const strtab *t, const char *s, size_t len) {
    if (!t->n_slots) return -1;
    for (uint32_t h = fnv1a(s, len) & (t->n_slots - 1); t->slots[h];
         h = (h + 1) & (t->n_slots - 1)) {
        const char *c = t->str[t->slots[h] - 1];
        if (strlen(c) == len && memcmp(c, s, len) == 0) return t->slots[h] - 1;
    }
    return -1;
}

/* Id of s[0..len), added when new (*added = 1); -1 on out of memory. */
static int32_t strtab_intern(strtab *t, const char *s, size_t len, int *added) {
    int32_t id = strtab_find(t, s, len);
    if (added) *added = 0;
    if (id >= 0) return id;
    if ((uint32_t)(t->n + 1) * 2 > t->n_slots && !strtab_grow(t)) return -1;
    if (t->n == t->cap) {
        int32_t cap = t->cap ? t->cap * 2 : 256;
        char **str = realloc(t->str, (size_t)cap * sizeof *str);
        if (!str) return -1;
        t->str = str;
        t->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c) return -1;
    memcpy(c, s, len);
    c[len] = 0;
    id = t->n++;
    t->str[id] = c;
    uint32_t h = fnv1a(s, len) & (t->n_slots - 1);
    while (t->slots[h]) h = (h + 1) & (t->n_slots - 1);
    t->slots[h] = id + 1;
    if (added) *added = 1;
    return id;
}

static void strtab_free(strtab *t) {
    for (int32_t i = 0; i < t->n; i++) free(t->str[i]);
    free(t->str);
    free(t->slots);
}

/* ---- Piece rules ---------------------------------------------------------------------------- */

static size_t utf8_len(uint8_t c) {
    return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
}

enum { CLS_LETTER, CLS_DIGIT, CLS_OTHER };

static int char_class(const char *c, size_t len) {
    uint8_t b = (uint8_t)c[0];
    if (len > 1) return CLS_LETTER; /* the corpus's non-ASCII characters are letters */
    if ((b | 0x20) >= 'a' && (b | 0x20) <= 'z') return CLS_LETTER;
    if (b >= '0' && b <= '9') return CLS_DIGIT;
    return CLS_OTHER;
}

/* 1 when s may be a learned (multi-character) piece. */
static int valid_merge(const char *s) {
    size_t i = 0, n_chars = 0, n_hash = 0;
    int cls = -1, ws_prefix = 0;
    if (strncmp(s, WS, WS_LEN) == 0) i = WS_LEN, ws_prefix = 1, n_chars = 1;
    for (; s[i]; n_chars++) {
        size_t l = utf8_len((uint8_t)s[i]);
        if (l == WS_LEN && strncmp(s + i, WS, WS_LEN) == 0) return 0; /* "▁" only as prefix */
        int c = char_class(s + i, l);
        if (c == CLS_DIGIT) return 0;
        if (cls >= 0 && c != cls) return 0;
        cls = c;
        n_hash += s[i] == '#';
        i += l;
    }
    /* "###" stays unlearned so that "\n###" is "##" "#", as in LLaMA's vocabulary. */
    if (!ws_prefix && n_hash >= 3 && n_hash == n_chars) return 0;
    return n_chars <= MAX_PIECE_CHARS;
}

/* ---- Training ------------------------------------------------------------------------------- */

typedef struct word {
    int32_t *sym;   /* (len) symbol ids */
    int32_t len;
    int64_t freq;
} word;

typedef struct pair_occ { int32_t a, b; int64_t freq; } pair_occ;

static int cmp_pair(const void *x, const void *y) {
    const pair_occ *p = x, *q = y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    if (p->b != q->b) return p->b < q->b ? -1 : 1;
    return 0;
}

typedef struct char_rank { int32_t id; int64_t freq; const char *s; } char_rank;

static int cmp_char_rank(const void *x, const void *y) {
    const char_rank *p = x, *q = y;
    if (p->freq != q->freq) return p->freq > q->freq ? -1 : 1;
    return strcmp(p->s, q->s);
}

/* Splits every corpus sentence into "▁"-led words, interned in words_tab with counts. */
static int collect_words(strtab *words_tab, int64_t **freq, int32_t *freq_cap) {
    char buf[1024];
    for (size_t li = 0; li < N_CORPUS; li++) {
        const char *line = k_corpus[li];
        size_t n = WS_LEN; /* the dummy prefix */
        memcpy(buf, WS, WS_LEN);
        for (const char *p = line; *p && n + WS_LEN < sizeof buf; p++) {
            if (*p == ' ') memcpy(buf + n, WS, WS_LEN), n += WS_LEN;
            else buf[n++] = *p;
        }
        for (size_t start = 0; start < n;) {
            size_t end = start + WS_LEN;
            while (end < n && strncmp(buf + end, WS, WS_LEN) != 0) end++;
            int32_t id = strtab_intern(words_tab, buf + start, end - start, NULL);
            if (id < 0) return 0;
            if (id >= *freq_cap) {
                int32_t cap = *freq_cap ? *freq_cap * 2 : 256;
                int64_t *f = realloc(*freq, (size_t)cap * sizeof *f);
                if (!f) return 0;
                memset(f + *freq_cap, 0, (size_t)(cap - *freq_cap) * sizeof *f);
                *freq = f;
                *freq_cap = cap;
            }
            (*freq)[id]++;
            start = end;
        }
    }
    return 1;
}

/* Runs BPE over words, appending each new piece's id to merges (at most max_merges). */
static int train_bpe(strtab *syms, word *words, int32_t n_words, int32_t max_merges,
                     int32_t *merges, int32_t *n_merges) {
    size_t n_occ_cap = 0;
    for (int32_t w = 0; w < n_words; w++) n_occ_cap += (size_t)words[w].len;
    pair_occ *occ = malloc((n_occ_cap + 1) * sizeof *occ);
    char *cat = malloc(MAX_PIECE_CHARS * 4 * 2 + 1), *best_cat = malloc(MAX_PIECE_CHARS * 8 + 1);
    int ok = occ && cat && best_cat;
    *n_merges = 0;
    while (ok && *n_merges < max_merges) {
        size_t n_occ = 0;
        for (int32_t w = 0; w < n_words; w++)
            for (int32_t i = 0; i + 1 < words[w].len; i++)
                occ[n_occ++] = (pair_occ){words[w].sym[i], words[w].sym[i + 1], words[w].freq};
        qsort(occ, n_occ, sizeof *occ, cmp_pair);
        int32_t best_a = -1, best_b = -1;
        int64_t best = 0;
        for (size_t i = 0; i < n_occ;) {
            size_t j = i;
            int64_t count = 0;
            while (j < n_occ && occ[j].a == occ[i].a && occ[j].b == occ[i].b) count += occ[j++].freq;
            if (count >= best) {
                const char *a = syms->str[occ[i].a], *b = syms->str[occ[i].b];
                size_t la = strlen(a), lb = strlen(b);
                if (la + lb <= MAX_PIECE_CHARS * 8) {
                    memcpy(cat, a, la);
                    memcpy(cat + la, b, lb + 1);
                    if (valid_merge(cat) && (count > best || strcmp(cat, best_cat) < 0)) {
                        best = count, best_a = occ[i].a, best_b = occ[i].b;
                        strcpy(best_cat, cat);
                    }
                }
            }
            i = j;
        }
        if (best_a < 0) break; /* every word is one piece, or no valid pair is left */
        int added;
        int32_t id = strtab_intern(syms, best_cat, strlen(best_cat), &added);
        if (id < 0) { ok = 0; break; }
        if (added) merges[(*n_merges)++] = id;
        for (int32_t w = 0; w < n_words; w++) {
            int32_t *s = words[w].sym, n = 0;
            for (int32_t i = 0; i < words[w].len; i++) {
                if (i + 1 < words[w].len && s[i] == best_a && s[i + 1] == best_b) {
                    s[n++] = id;
                    i++;
                } else {
                    s[n++] = s[i];
                }
            }
            words[w].len = n;
        }
    }
    free(occ);
    free(cat);
    free(best_cat);
    return ok;
}

/* ---- Assembly ------------------------------------------------------------------------------- */

void demo_vocab_free(demo_vocab *v) {
    if (!v) return;
    if (v->pieces)
        for (int32_t i = 0; i < v->n; i++) free(v->pieces[i]);
    free(v->pieces);
    free(v->scores);
    free(v->types);
    free(v);
}

static char *dup_str(const char *s) {
    size_t l = strlen(s) + 1;
    char *d = malloc(l);
    if (d) memcpy(d, s, l);
    return d;
}

demo_vocab *demo_vocab_build(int32_t n_vocab) {
    strtab syms = {0}, words_tab = {0};
    int64_t *word_freq = NULL, *char_freq = NULL;
    int32_t word_freq_cap = 0, *merges = NULL, n_merges = 0, n_chars = 0;
    word *words = NULL;
    char_rank *chars = NULL;
    demo_vocab *v = NULL;
    int ok = 0;

    /* Initial symbols: every printable ASCII character, "▁", and every character of the corpus. */
    char c1[2] = {0, 0};
    for (int c = 0x21; c < 0x7f; c++) {
        c1[0] = (char)c;
        if (strtab_intern(&syms, c1, 1, NULL) < 0) goto done;
    }
    if (strtab_intern(&syms, WS, WS_LEN, NULL) < 0) goto done;
    if (!collect_words(&words_tab, &word_freq, &word_freq_cap)) goto done;
    words = calloc((size_t)words_tab.n, sizeof *words);
    if (!words) goto done;
    for (int32_t w = 0; w < words_tab.n; w++) {
        const char *s = words_tab.str[w];
        size_t len = strlen(s);
        words[w].sym = malloc(len * sizeof *words[w].sym);
        if (!words[w].sym) goto done;
        words[w].freq = word_freq[w];
        for (size_t i = 0; i < len;) {
            size_t l = utf8_len((uint8_t)s[i]);
            int32_t id = strtab_intern(&syms, s + i, l, NULL);
            if (id < 0) goto done;
            words[w].sym[words[w].len++] = id;
            i += l;
        }
    }
    n_chars = syms.n;
    char_freq = calloc((size_t)n_chars, sizeof *char_freq);
    chars = malloc((size_t)n_chars * sizeof *chars);
    if (!char_freq || !chars) goto done;
    for (int32_t w = 0; w < words_tab.n; w++)
        for (int32_t i = 0; i < words[w].len; i++) char_freq[words[w].sym[i]] += words[w].freq;

    int32_t max_merges = n_vocab - 259 - n_chars - (int32_t)N_REQUIRED;
    if (max_merges < 0) goto done;
    merges = malloc(((size_t)max_merges + N_REQUIRED) * sizeof *merges);
    if (!merges) goto done;
    if (!train_bpe(&syms, words, words_tab.n, max_merges, merges, &n_merges)) goto done;

    /* Required pieces the corpus did not teach come right after the merges. */
    int32_t n_learned = n_merges;
    for (size_t r = 0; r < N_REQUIRED; r++) {
        int added;
        int32_t id = strtab_intern(&syms, k_required[r], strlen(k_required[r]), &added);
        if (id < 0) goto done;
        if (added) merges[n_merges++] = id;
    }

    v = calloc(1, sizeof *v);
    if (!v) goto done;
    v->n = n_vocab;
    v->pieces = calloc((size_t)n_vocab, sizeof *v->pieces);
    v->scores = malloc((size_t)n_vocab * sizeof *v->scores);
    v->types = malloc((size_t)n_vocab * sizeof *v->types);
    if (!v->pieces || !v->scores || !v->types) goto done;
    v->n_merges = n_learned;
    v->n_chars = n_chars;

    int32_t id = 0;
    const char *specials[3] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++, id++) {
        v->pieces[id] = dup_str(specials[i]);
        v->scores[id] = 0.0f;
        v->types[id] = i == 0 ? 2 : 3; /* UNKNOWN, CONTROL */
    }
    for (int b = 0; b < 256; b++, id++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        v->pieces[id] = dup_str(name);
        v->scores[id] = 0.0f;
        v->types[id] = 6; /* BYTE */
    }
    int32_t rank = 0;
    for (int32_t m = 0; m < n_merges; m++, id++, rank++) {
        v->pieces[id] = dup_str(syms.str[merges[m]]);
        v->scores[id] = (float)-rank;
        v->types[id] = 1;
    }
    /* Single characters after the merges, most frequent first, as sentencepiece orders them. */
    for (int32_t c = 0; c < n_chars; c++) chars[c] = (char_rank){c, char_freq[c], syms.str[c]};
    qsort(chars, (size_t)n_chars, sizeof *chars, cmp_char_rank);
    for (int32_t c = 0; c < n_chars; c++, id++, rank++) {
        v->pieces[id] = dup_str(chars[c].s);
        v->scores[id] = (float)-rank;
        v->types[id] = 1;
    }
    /* Padding up to n_vocab: valid, distinct (no learned piece holds a digit), unreachable. */
    for (; id < n_vocab; id++, rank++, v->n_padding++) {
        char name[32];
        snprintf(name, sizeof name, WS "tok%d", (int)id);
        v->pieces[id] = dup_str(name);
        v->scores[id] = (float)-rank;
        v->types[id] = 1;
    }
    ok = 1;
    for (int32_t i = 0; i < n_vocab; i++) ok &= v->pieces[i] != NULL;

done:
    if (!ok) {
        demo_vocab_free(v);
        v = NULL;
    }
    if (words)
        for (int32_t w = 0; w < words_tab.n; w++) free(words[w].sym);
    free(words);
    free(word_freq);
    free(char_freq);
    free(chars);
    free(merges);
    strtab_free(&syms);
    strtab_free(&words_tab);
    return v;
}
