/*
 * gguf.h — GGUF v3 reader (mmap, zero-copy) and a small writer for tools and tests.
 *
 * The reader checks everything against the file size before any use: magic, version, counts,
 * every string and array length, tensor n_dims/dims/type, offsets and alignment, and that no two
 * tensors' data overlap the header. Any inconsistency is PG_ERR_FORMAT with a message naming the
 * file, the key or tensor, and the byte offset. Nothing is ever read outside the mapping.
 * Strings point into the mapping and are NOT NUL-terminated: use their len.
 */
#ifndef PG_GGUF_H
#define PG_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "pandagpt.h"

typedef enum gguf_type {
    GGUF_TYPE_UINT8 = 0, GGUF_TYPE_INT8 = 1, GGUF_TYPE_UINT16 = 2, GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4, GGUF_TYPE_INT32 = 5, GGUF_TYPE_FLOAT32 = 6, GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8, GGUF_TYPE_ARRAY = 9, GGUF_TYPE_UINT64 = 10, GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
} gguf_type;

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct gguf_str { const char *ptr; uint64_t len; } gguf_str;

typedef struct gguf_kv {
    gguf_str key;
    uint32_t type;         /* gguf_type */
    uint32_t arr_type;     /* element type when type == ARRAY */
    uint64_t n;            /* array length (1 for scalars) */
    const uint8_t *data;   /* scalar value or first array element, inside the mapping */
    const gguf_str *strs;  /* for STRING (n = 1) and ARRAY of STRING: n strings */
    uint64_t offset;       /* file offset of the key, for messages */
} gguf_kv;

typedef struct gguf_tensor {
    gguf_str name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ggml order: ne[0] is the contiguous (row) dimension; unused = 1 */
    uint32_t type;             /* pg_dtype */
    uint64_t offset;           /* relative to the data section, as stored */
    const void *data;          /* inside the mapping */
    size_t nbytes;
} gguf_tensor;

typedef struct gguf_file {
    char *path;
    void *map;
    size_t size;
    uint32_t version;
    uint64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset;      /* file offset of the data section */
    gguf_str *str_pool;        /* backing store of every kv's strs */
} gguf_file;

/* Maps and validates path. On failure *out is NULL and the message names path. */
pg_status gguf_open(const char *path, gguf_file **out);
/* Validates a GGUF image already in memory (not copied; must outlive the handle). For tests. */
pg_status gguf_open_memory(const void *data, size_t size, const char *name, gguf_file **out);
void gguf_close(gguf_file *f);

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);
/* 1 when s equals the NUL-terminated c. */
int gguf_str_eq(gguf_str s, const char *c);

/* Typed getters. PG_ERR_FORMAT (naming file, key and offset) when the key is missing or has an
 * incompatible type; integer getters accept any integer type whose value fits. */
pg_status gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
pg_status gguf_get_f32(const gguf_file *f, const char *key, float *out);  /* F32 or F64 */
pg_status gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
/* Like the getters above, but a missing key gives *out = def and PG_OK. */
pg_status gguf_get_u32_or(const gguf_file *f, const char *key, uint32_t def, uint32_t *out);
pg_status gguf_get_f32_or(const gguf_file *f, const char *key, float def, float *out);
/* An array kv with elements of type elem_type (PG_ERR_FORMAT otherwise). */
pg_status gguf_get_arr(const gguf_file *f, const char *key, uint32_t elem_type,
                       const gguf_kv **out);
/* Element i of a numeric array kv as double (any numeric element type). */
double gguf_arr_num(const gguf_kv *kv, uint64_t i);

/* Finds tensor name and checks its type is supported and its shape is exactly
 * {ne0, ne1, ...} over n_dims (trailing 1s in the file are accepted). PG_ERR_FORMAT naming the
 * tensor, the expected and the found shape otherwise. */
pg_status gguf_get_tensor(const gguf_file *f, const char *name, int n_dims, const int64_t *ne,
                          const gguf_tensor **out);

/* ---- writer (tools and tests; everything buffered in memory until gguf_writer_write) ---- */
typedef struct gguf_writer gguf_writer;
gguf_writer *gguf_writer_new(void);               /* NULL on out of memory */
void gguf_writer_free(gguf_writer *w);
void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
void gguf_writer_set_bool(gguf_writer *w, const char *key, int v);
void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n);
void gguf_writer_set_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n);
void gguf_writer_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
/* Adds a tensor; data (nbytes for type and shape) is copied.
 * Writer calls never fail on their own: an allocation failure is remembered and reported by
 * gguf_writer_write / gguf_writer_to_memory. */
void gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, int n_dims,
                            const int64_t *ne, const void *data);
/* Adds a tensor whose bytes are produced at write time by fill(ctx, dst, nbytes), so files far
 * bigger than memory can be made (the benchmark's random 1B/7B models). */
typedef void (*gguf_fill_fn)(void *ctx, void *dst, size_t nbytes);
void gguf_writer_add_tensor_fill(gguf_writer *w, const char *name, uint32_t type, int n_dims,
                                 const int64_t *ne, gguf_fill_fn fill, void *ctx);
/* Writes the file (alignment 32). PG_ERR_IO or PG_ERR_OUT_OF_MEMORY with a message. */
pg_status gguf_writer_write(gguf_writer *w, const char *path);
/* Serialises to a malloc'd buffer the caller frees (for in-memory corruption tests). */
pg_status gguf_writer_to_memory(gguf_writer *w, void **data, size_t *size);

#endif
