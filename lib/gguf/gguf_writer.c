/*
 * gguf_writer.c — builds a GGUF v3 file in memory (keys, then tensor infos) and writes it with
 * alignment 32, tensor data in the order the tensors were added, each padded like ggml and
 * gguf-py pad it.
 *
 * The setters cannot fail: the first problem (out of memory, a bad shape, a duplicate tensor)
 * is remembered and returned by gguf_writer_write / gguf_writer_to_memory, so tool code can set
 * twenty keys without twenty checks. Tensors given by a fill callback are produced one at a time
 * while writing, so memory stays bounded by the largest tensor.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200809L
#endif

#include "gguf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "dtype.h"

#define ALIGN GGUF_DEFAULT_ALIGNMENT

/* A growable byte buffer; `oom` sticks once an append failed. */
typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
    int oom;
} bytes;

static void put(bytes *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_u32(bytes *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(bytes *b, uint64_t v) { put(b, &v, 8); }
static void put_str(bytes *b, const char *s) {
    size_t n = strlen(s);
    put_u64(b, n);
    put(b, s, n);
}

typedef struct wkv {
    char *key;
    bytes val; /* u32 type followed by the encoded value */
} wkv;

typedef struct wtensor {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    size_t nbytes;
    void *data;        /* owned copy, or NULL when fill is set */
    gguf_fill_fn fill;
    void *ctx;
    uint64_t offset;   /* in the data section, set when the header is built */
} wtensor;

struct gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
    pg_status err;     /* first failure, reported at write time */
    char msg[256];
};

static void fail(gguf_writer *w, pg_status s, const char *fmt, ...) PG_PRINTF(3, 4);
static void fail(gguf_writer *w, pg_status s, const char *fmt, ...) {
    if (w->err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->msg, sizeof w->msg, fmt, ap);
    va_end(ap);
    w->err = s;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Grows an array of elem-sized items to hold one more. 0 on out of memory. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 1;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, c * elem);
    if (!p) return 0;
    *arr = p;
    *cap = c;
    return 1;
}

gguf_writer *gguf_writer_new(void) { return calloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val.p);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

/* ---------------------------------------------------------------------------------------------
 * Keys: setting a key again replaces its value in place, as ggml's gguf_set_* do.
 * ------------------------------------------------------------------------------------------- */

static void set_kv(gguf_writer *w, const char *key, bytes val) {
    if (!key || !*key) {
        free(val.p);
        fail(w, PG_ERR_INVALID_ARGUMENT, "gguf writer: empty key");
        return;
    }
    if (val.oom) {
        free(val.p);
        fail(w, PG_ERR_OUT_OF_MEMORY, "gguf writer: out of memory for key '%s'", key);
        return;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) {
            free(w->kv[i].val.p);
            w->kv[i].val = val;
            return;
        }
    }
    char *k = dup_str(key);
    if (!k || !grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv)) {
        free(k);
        free(val.p);
        fail(w, PG_ERR_OUT_OF_MEMORY, "gguf writer: out of memory for key '%s'", key);
        return;
    }
    w->kv[w->n_kv++] = (wkv){k, val};
}

static void set_scalar(gguf_writer *w, const char *key, uint32_t type, const void *v, size_t n) {
    if (!w) return;
    bytes b = {0};
    put_u32(&b, type);
    put(&b, v, n);
    set_kv(w, key, b);
}

void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) {
    set_scalar(w, key, GGUF_TYPE_UINT32, &v, 4);
}
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) {
    set_scalar(w, key, GGUF_TYPE_INT32, &v, 4);
}
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v) {
    set_scalar(w, key, GGUF_TYPE_FLOAT32, &v, 4);
}
void gguf_writer_set_bool(gguf_writer *w, const char *key, int v) {
    uint8_t b = v != 0;
    set_scalar(w, key, GGUF_TYPE_BOOL, &b, 1);
}

void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v) {
    if (!w) return;
    bytes b = {0};
    put_u32(&b, GGUF_TYPE_STRING);
    put_str(&b, v ? v : "");
    set_kv(w, key, b);
}

void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n) {
    if (!w) return;
    bytes b = {0};
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, GGUF_TYPE_STRING);
    put_u64(&b, n);
    for (uint64_t i = 0; i < n && v; i++) put_str(&b, v[i] ? v[i] : "");
    if (!v && n) {
        free(b.p);
        fail(w, PG_ERR_INVALID_ARGUMENT, "gguf writer: key '%s': NULL array", key ? key : "");
        return;
    }
    set_kv(w, key, b);
}

static void set_arr(gguf_writer *w, const char *key, uint32_t type, const void *v, uint64_t n,
                    size_t elem) {
    if (!w) return;
    if (!v && n) {
        fail(w, PG_ERR_INVALID_ARGUMENT, "gguf writer: key '%s': NULL array", key ? key : "");
        return;
    }
    bytes b = {0};
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, type);
    put_u64(&b, n);
    if (n > SIZE_MAX / elem) b.oom = 1;
    else if (n) put(&b, v, (size_t)n * elem);
    set_kv(w, key, b);
}

void gguf_writer_set_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n) {
    set_arr(w, key, GGUF_TYPE_FLOAT32, v, n, 4);
}
void gguf_writer_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n) {
    set_arr(w, key, GGUF_TYPE_INT32, v, n, 4);
}

/* ---------------------------------------------------------------------------------------------
 * Tensors
 * ------------------------------------------------------------------------------------------- */

/* Validates and appends a tensor entry; NULL (and the failure remembered) when it is bad. */
static wtensor *add_tensor(gguf_writer *w, const char *name, uint32_t type, int n_dims,
                           const int64_t *ne) {
    if (!name || !*name) {
        fail(w, PG_ERR_INVALID_ARGUMENT, "gguf writer: tensor with an empty name");
        return NULL;
    }
    if (!pg_dtype_supported(type)) {
        fail(w, PG_ERR_UNSUPPORTED, "gguf writer: tensor '%s': type %s is not supported", name,
             pg_dtype_name(type));
        return NULL;
    }
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || !ne) {
        fail(w, PG_ERR_INVALID_ARGUMENT, "gguf writer: tensor '%s': n_dims %d not in 1..%d",
             name, n_dims, GGUF_MAX_DIMS);
        return NULL;
    }
    for (size_t i = 0; i < w->n_t; i++) {
        if (strcmp(w->t[i].name, name) == 0) {
            fail(w, PG_ERR_INVALID_ARGUMENT, "gguf writer: duplicate tensor '%s'", name);
            return NULL;
        }
    }
    wtensor t = {.type = type, .n_dims = (uint32_t)n_dims, .ne = {1, 1, 1, 1}};
    int64_t nelem = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 1 || nelem > INT64_MAX / ne[d]) {
            fail(w, PG_ERR_INVALID_ARGUMENT, "gguf writer: tensor '%s': bad ne[%d] = %lld",
                 name, d, (long long)ne[d]);
            return NULL;
        }
        t.ne[d] = ne[d];
        nelem *= ne[d];
    }
    int64_t be = pg_dtype_block_elems(type);
    if (ne[0] % be) {
        fail(w, PG_ERR_INVALID_ARGUMENT,
             "gguf writer: tensor '%s': ne[0] = %lld is not a multiple of %lld for %s", name,
             (long long)ne[0], (long long)be, pg_dtype_name(type));
        return NULL;
    }
    if ((uint64_t)(nelem / be) > SIZE_MAX / pg_dtype_block_bytes(type) / 2) {
        fail(w, PG_ERR_INVALID_ARGUMENT, "gguf writer: tensor '%s' is too large", name);
        return NULL;
    }
    t.nbytes = (size_t)(nelem / be) * pg_dtype_block_bytes(type);
    t.name = dup_str(name);
    if (!t.name || !grow((void **)&w->t, &w->cap_t, w->n_t, sizeof *w->t)) {
        free(t.name);
        fail(w, PG_ERR_OUT_OF_MEMORY, "gguf writer: out of memory for tensor '%s'", name);
        return NULL;
    }
    w->t[w->n_t] = t;
    return &w->t[w->n_t++];
}

void gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, int n_dims,
                            const int64_t *ne, const void *data) {
    if (!w) return;
    wtensor *t = add_tensor(w, name, type, n_dims, ne);
    if (!t) return;
    t->data = malloc(t->nbytes);
    if (!t->data) {
        fail(w, PG_ERR_OUT_OF_MEMORY, "gguf writer: out of memory copying tensor '%s' (%zu bytes)",
             name, t->nbytes);
        return;
    }
    if (data) memcpy(t->data, data, t->nbytes);
    else memset(t->data, 0, t->nbytes);
}

void gguf_writer_add_tensor_fill(gguf_writer *w, const char *name, uint32_t type, int n_dims,
                                 const int64_t *ne, gguf_fill_fn fill, void *ctx) {
    if (!w) return;
    if (!fill) {
        fail(w, PG_ERR_INVALID_ARGUMENT, "gguf writer: tensor '%s': fill is NULL",
             name ? name : "");
        return;
    }
    wtensor *t = add_tensor(w, name, type, n_dims, ne);
    if (t) t->fill = fill, t->ctx = ctx;
}

/* ---------------------------------------------------------------------------------------------
 * Serialisation
 * ------------------------------------------------------------------------------------------- */

static size_t pad_to(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

/* Header, key/values and tensor infos (data offsets assigned here), padded to ALIGN. Sets
 * *data_bytes to the size of the data section. */
static pg_status build_header(gguf_writer *w, bytes *h, size_t *data_bytes) {
    if (w->err) return pg_set_error(w->err, "%s", w->msg);
    put_u32(h, 0x46554747u); /* "GGUF" */
    put_u32(h, 3);
    put_u64(h, w->n_t);
    put_u64(h, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        put_str(h, w->kv[i].key);
        put(h, w->kv[i].val.p, w->kv[i].val.n);
    }
    size_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        put_str(h, t->name);
        put_u32(h, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(h, (uint64_t)t->ne[d]);
        put_u32(h, t->type);
        t->offset = off;
        put_u64(h, off);
        if (t->nbytes > SIZE_MAX - off - ALIGN)
            return pg_set_error(PG_ERR_INVALID_ARGUMENT, "gguf writer: data section too large");
        off = pad_to(off + t->nbytes);
    }
    static const uint8_t zeros[ALIGN];
    put(h, zeros, pad_to(h->n) - h->n);
    if (h->oom) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "gguf writer: out of memory for header");
    *data_bytes = off;
    return PG_OK;
}

pg_status gguf_writer_to_memory(gguf_writer *w, void **data, size_t *size) {
    if (!w || !data || !size)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "gguf_writer_to_memory: NULL argument");
    *data = NULL;
    *size = 0;
    bytes h = {0};
    size_t data_bytes = 0;
    pg_status st = build_header(w, &h, &data_bytes);
    if (st) {
        free(h.p);
        return st;
    }
    size_t total = h.n + data_bytes;
    uint8_t *out = total >= h.n ? calloc(1, total) : NULL; /* calloc: the padding is zeros */
    if (!out) {
        free(h.p);
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "gguf writer: out of memory for %zu bytes",
                            total);
    }
    memcpy(out, h.p, h.n);
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        uint8_t *dst = out + h.n + t->offset;
        if (t->fill) t->fill(t->ctx, dst, t->nbytes);
        else memcpy(dst, t->data, t->nbytes);
    }
    free(h.p);
    *data = out;
    *size = total;
    return PG_OK;
}

static pg_status write_error(const char *path, int e) {
    char eb[128];
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    const char *text = strerror_r(e, eb, sizeof eb);
#else
    const char *text = strerror_r(e, eb, sizeof eb) == 0 ? eb : "I/O error";
#endif
    return pg_set_error(PG_ERR_IO, "%s: cannot write: %s", path, text);
}

static pg_status write_tensors(gguf_writer *w, FILE *fp, const char *path) {
    static const uint8_t zeros[ALIGN];
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        const void *src = t->data;
        void *buf = NULL;
        if (t->fill) { /* one tensor in memory at a time */
            buf = malloc(t->nbytes);
            if (!buf)
                return pg_set_error(PG_ERR_OUT_OF_MEMORY,
                                    "%s: out of memory for tensor '%s' (%zu bytes)", path,
                                    t->name, t->nbytes);
            t->fill(t->ctx, buf, t->nbytes);
            src = buf;
        }
        size_t pad = pad_to(t->nbytes) - t->nbytes;
        int ok = fwrite(src, 1, t->nbytes, fp) == t->nbytes && fwrite(zeros, 1, pad, fp) == pad;
        int e = errno;
        free(buf);
        if (!ok) return write_error(path, e);
    }
    return PG_OK;
}

pg_status gguf_writer_write(gguf_writer *w, const char *path) {
    if (!w || !path)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "gguf_writer_write: NULL argument");
    bytes h = {0};
    size_t data_bytes = 0;
    pg_status st = build_header(w, &h, &data_bytes);
    if (st) {
        free(h.p);
        return st;
    }
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        st = write_error(path, errno);
        free(h.p);
        return st;
    }
    if (fwrite(h.p, 1, h.n, fp) != h.n) st = write_error(path, errno);
    if (!st) st = write_tensors(w, fp, path);
    if (fclose(fp) != 0 && !st) st = write_error(path, errno);
    free(h.p);
    return st;
}
