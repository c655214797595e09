/*
 * json.h — a minimal JSON reader for the tests: parses one value into a tree that is read with
 * the accessors below and freed with json_free. Strings are decoded (all escapes, \uXXXX with
 * surrogate pairs -> UTF-8) and may contain NUL bytes, so they come with a length. Numbers are
 * doubles. Accessors accept NULL and wrong kinds, returning NULL / 0 / NaN, so lookups chain:
 *     json_num(json_at(json_get(root, "ids"), 3))
 */
#ifndef PG_TEST_JSON_H
#define PG_TEST_JSON_H

#include <stddef.h>

typedef enum json_type {
    JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT
} json_type;

typedef struct json_value json_value;

/* Parses exactly one value (surrounding whitespace allowed) from len bytes of text. Returns NULL
 * on malformed input or when out of memory; json_last_error() then says where. */
json_value *json_parse(const char *text, size_t len);
const char *json_last_error(void);
void json_free(json_value *v);

json_type json_kind(const json_value *v);      /* JSON_NULL for a NULL v */
/* the first member named key, or NULL */
json_value *json_get(const json_value *obj, const char *key);
size_t json_len(const json_value *v);          /* elements of an array, members of an object */
json_value *json_at(const json_value *v, size_t i); /* element / member value i */
const char *json_key_at(const json_value *obj, size_t i); /* NUL-terminated key of member i */
double json_num(const json_value *v);          /* NaN unless a number */
int json_bool(const json_value *v);            /* 1 for true, 0 otherwise */
/* NUL-terminated string (len, if not NULL, gets its length), or NULL unless a string. */
const char *json_str(const json_value *v, size_t *len);

/* Reads a whole file into a NUL-terminated malloc'd buffer (free it); NULL on failure. */
char *json_read_file(const char *path, size_t *len);

#endif
