/*
 * json.c — recursive-descent JSON reader for the tests (RFC 8259; depth limited to 256).
 */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct json_value {
    json_type type;
    double num;
    char *str;           /* string value (NUL-terminated), JSON_STRING */
    size_t len;          /* string bytes, or number of items */
    json_value **items;  /* array elements / object member values */
    char **keys;         /* object member names (NUL-terminated) */
    size_t cap;
};

typedef struct parser {
    const char *p, *end, *start;
    int depth;
    int failed;
} parser;

static char g_json_error[256];

const char *json_last_error(void) { return g_json_error; }

static json_value *fail(parser *ps, const char *what) {
    if (!ps->failed)
        snprintf(g_json_error, sizeof g_json_error, "json: %s at byte %zu", what,
                 (size_t)(ps->p - ps->start));
    ps->failed = 1;
    return NULL;
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static json_value *new_value(json_type t) {
    json_value *v = calloc(1, sizeof *v);
    if (v) v->type = t;
    return v;
}

static int hex4(parser *ps, unsigned *out) {
    if (ps->end - ps->p < 4) return 0;
    unsigned u = 0;
    for (int k = 0; k < 4; k++) {
        char c = ps->p[k];
        u <<= 4;
        if (c >= '0' && c <= '9') u |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') u |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') u |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    ps->p += 4;
    *out = u;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string at ps->p (on the opening quote) into a malloc'd NUL-terminated buffer.
 * A lone surrogate escape is kept as its 3-byte (CESU-style) encoding, as Python's json would
 * keep the surrogate. The decoded text is never longer than the escaped text. */
static char *parse_string(parser *ps, size_t *out_len) {
    ps->p++; /* '"' */
    const char *q = ps->p;
    while (q < ps->end && *q != '"') q += (*q == '\\' && q + 1 < ps->end) ? 2 : 1;
    if (q >= ps->end) return (char *)fail(ps, "unterminated string");
    char *o = malloc((size_t)(q - ps->p) + 1);
    if (!o) return (char *)fail(ps, "out of memory");
    size_t n = 0;
    while (*ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p++;
        if (c < 0x20) { free(o); return (char *)fail(ps, "control character in string"); }
        if (c != '\\') { o[n++] = (char)c; continue; }
        char esc = *ps->p++;
        switch (esc) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (!hex4(ps, &cp)) { free(o); return (char *)fail(ps, "bad \\u escape"); }
            if (cp >= 0xD800 && cp < 0xDC00 && ps->end - ps->p >= 6 && ps->p[0] == '\\' &&
                ps->p[1] == 'u') {
                const char *save = ps->p;
                ps->p += 2;
                if (hex4(ps, &lo) && lo >= 0xDC00 && lo < 0xE000)
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else
                    ps->p = save;
            }
            n += put_utf8(o + n, cp); /* 6 escaped bytes -> at most 3, 12 -> 4 */
            break;
        }
        default: free(o); return (char *)fail(ps, "bad escape");
        }
    }
    ps->p++; /* closing '"' */
    o[n] = '\0';
    *out_len = n;
    return o;
}

static int append(json_value *v, json_value *item, char *key) {
    if (v->len == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 4;
        json_value **items = realloc(v->items, cap * sizeof *items);
        if (!items) return 0;
        v->items = items;
        if (v->type == JSON_OBJECT) {
            char **keys = realloc(v->keys, cap * sizeof *keys);
            if (!keys) return 0;
            v->keys = keys;
        }
        v->cap = cap;
    }
    v->items[v->len] = item;
    if (v->type == JSON_OBJECT) v->keys[v->len] = key;
    v->len++;
    return 1;
}

static json_value *parse_value(parser *ps);

static json_value *parse_container(parser *ps, json_type t) {
    char close = t == JSON_ARRAY ? ']' : '}';
    json_value *v = new_value(t);
    if (!v) return fail(ps, "out of memory");
    if (++ps->depth > 256) { json_free(v); return fail(ps, "nesting too deep"); }
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return v;
    }
    for (;;) {
        char *key = NULL;
        skip_ws(ps);
        if (t == JSON_OBJECT) {
            size_t klen;
            if (ps->p >= ps->end || *ps->p != '"') {
                json_free(v);
                return fail(ps, "expected key");
            }
            if (!(key = parse_string(ps, &klen))) { json_free(v); return NULL; }
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(key);
                json_free(v);
                return fail(ps, "expected ':'");
            }
            ps->p++;
        }
        json_value *item = parse_value(ps);
        if (!item || !append(v, item, key)) {
            free(key);
            json_free(item);
            json_free(v);
            return fail(ps, "out of memory");
        }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        if (ps->p < ps->end && *ps->p == close) { ps->p++; break; }
        json_free(v);
        return fail(ps, t == JSON_ARRAY ? "expected ',' or ']'" : "expected ',' or '}'");
    }
    ps->depth--;
    return v;
}

static json_value *parse_number(parser *ps) {
    const char *s = ps->p;
    if (s < ps->end && *s == '-') s++;
    if (s >= ps->end || *s < '0' || *s > '9') return fail(ps, "bad value");
    while (s < ps->end && ((*s >= '0' && *s <= '9') || *s == '.' || *s == 'e' || *s == 'E' ||
                           *s == '+' || *s == '-'))
        s++;
    char tmp[64];
    size_t n = (size_t)(s - ps->p);
    if (n >= sizeof tmp) return fail(ps, "number too long");
    memcpy(tmp, ps->p, n);
    tmp[n] = '\0';
    char *endp;
    double d = strtod(tmp, &endp);
    if (endp != tmp + n) return fail(ps, "bad number");
    json_value *v = new_value(JSON_NUMBER);
    if (!v) return fail(ps, "out of memory");
    v->num = d;
    ps->p = s;
    return v;
}

static json_value *parse_literal(parser *ps, const char *word, json_type t) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return fail(ps, "bad value");
    ps->p += n;
    json_value *v = new_value(t);
    return v ? v : fail(ps, "out of memory");
}

static json_value *parse_value(parser *ps) {
    skip_ws(ps);
    if (ps->p >= ps->end) return fail(ps, "unexpected end");
    switch (*ps->p) {
    case '{': return parse_container(ps, JSON_OBJECT);
    case '[': return parse_container(ps, JSON_ARRAY);
    case '"': {
        size_t n;
        char *s = parse_string(ps, &n);
        if (!s) return NULL;
        json_value *v = new_value(JSON_STRING);
        if (!v) { free(s); return fail(ps, "out of memory"); }
        v->str = s;
        v->len = n;
        return v;
    }
    case 't': return parse_literal(ps, "true", JSON_TRUE);
    case 'f': return parse_literal(ps, "false", JSON_FALSE);
    case 'n': return parse_literal(ps, "null", JSON_NULL);
    default: return parse_number(ps);
    }
}

json_value *json_parse(const char *text, size_t len) {
    if (!text) return NULL;
    parser ps = {text, text + len, text, 0, 0};
    g_json_error[0] = '\0';
    json_value *v = parse_value(&ps);
    if (!v) return NULL;
    skip_ws(&ps);
    if (ps.p != ps.end) {
        json_free(v);
        return fail(&ps, "trailing characters");
    }
    return v;
}

void json_free(json_value *v) {
    if (!v) return;
    for (size_t i = 0; i < v->len && v->items; i++) {
        json_free(v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    free(v);
}

json_type json_kind(const json_value *v) { return v ? v->type : JSON_NULL; }

json_value *json_get(const json_value *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT || !key) return NULL;
    for (size_t i = 0; i < obj->len; i++)
        if (strcmp(obj->keys[i], key) == 0) return obj->items[i];
    return NULL;
}

size_t json_len(const json_value *v) {
    return v && (v->type == JSON_ARRAY || v->type == JSON_OBJECT) ? v->len : 0;
}

json_value *json_at(const json_value *v, size_t i) {
    return i < json_len(v) ? v->items[i] : NULL;
}

const char *json_key_at(const json_value *obj, size_t i) {
    return obj && obj->type == JSON_OBJECT && i < obj->len ? obj->keys[i] : NULL;
}

double json_num(const json_value *v) { return v && v->type == JSON_NUMBER ? v->num : NAN; }

int json_bool(const json_value *v) { return v && v->type == JSON_TRUE; }

const char *json_str(const json_value *v, size_t *len) {
    if (!v || v->type != JSON_STRING) return NULL;
    if (len) *len = v->len;
    return v->str;
}

char *json_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *b = realloc(buf, cap * 2);
        if (!b) { free(buf); buf = NULL; break; }
        buf = b;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf || err) { free(buf); return NULL; }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}
