/*
 * gguf.c — the GGUF reader: maps a file read-only and validates every byte of its header before
 * anything else looks at it.
 *
 * Layout (little-endian): "GGUF", u32 version (2 or 3), u64 n_tensors, u64 n_kv; n_kv key/values
 * {string key, u32 type, value}; n_tensors tensor infos {string name, u32 n_dims, u64 ne[n_dims],
 * u32 type, u64 offset}; padding to general.alignment; the data section, which tensor offsets are
 * relative to. A string is {u64 len, len bytes}; an array is {u32 elem type, u64 n, n elements}.
 *
 * Every read goes through a cursor that checks the bytes are there first, every count is bounded
 * by the bytes left before anything is allocated for it, and the file is never read through an
 * unaligned pointer (all scalars are memcpy'd). A string kv's `data` points at its encoded
 * {len, bytes}; use `strs` for its text.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200809L
#endif

#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/error.h"
#include "dtype.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define GGUF_HEADER_BYTES 24
/* The smallest encodings, used to bound counts by the bytes that remain: a kv is a 1-byte key
 * (8 + 1), a type (4) and a 1-byte value; a tensor info a 1-byte name, n_dims, one dim, type and
 * offset. */
#define MIN_KV_BYTES 14
#define MIN_TENSOR_INFO_BYTES 33

typedef unsigned long long ull;

/* What the handle really is: gguf_file plus whether its bytes are ours to unmap. */
typedef struct gguf_owner {
    gguf_file f;
    int mapped;
} gguf_owner;

/* ---------------------------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------------------------- */

/* A printable copy of a file string for messages: control bytes become '?', long ones are cut. */
typedef struct { char s[100]; } shown;

static shown show(gguf_str str) {
    shown out;
    size_t n = str.len < sizeof out.s - 4 ? (size_t)str.len : sizeof out.s - 4;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)str.ptr[i];
        out.s[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    if (n < str.len) memcpy(out.s + n, "...", 3), n += 3;
    out.s[n] = 0;
    return out;
}

static const char *gguf_type_name(uint32_t t) {
    static const char *const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                        "string", "array", "u64", "i64", "f64"};
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

/* Bytes of one scalar of type t; 0 for string, array and unknown types. */
static size_t scalar_size(uint32_t t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Cursor: bounds-checked little-endian reads
 * ------------------------------------------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *base;
    uint64_t size, pos;
    const char *file;
} cursor;

static uint64_t left(const cursor *c) { return c->size - c->pos; }

static pg_status truncated(const cursor *c, const char *what, ull need) {
    return pg_set_error(PG_ERR_FORMAT,
                        "%s: %s at offset %llu needs %llu bytes but only %llu remain "
                        "(file size %llu)",
                        c->file, what, (ull)c->pos, need, (ull)left(c), (ull)c->size);
}

static pg_status rd_u32(cursor *c, const char *what, uint32_t *v) {
    if (left(c) < 4) return truncated(c, what, 4);
    memcpy(v, c->base + c->pos, 4); /* the format is little-endian, like every host we build on */
    c->pos += 4;
    return PG_OK;
}

static pg_status rd_u64(cursor *c, const char *what, uint64_t *v) {
    if (left(c) < 8) return truncated(c, what, 8);
    memcpy(v, c->base + c->pos, 8);
    c->pos += 8;
    return PG_OK;
}

static pg_status rd_str(cursor *c, const char *what, gguf_str *s) {
    uint64_t at = c->pos, len = 0;
    pg_status st = rd_u64(c, what, &len);
    if (st) return st;
    if (len > left(c)) {
        c->pos = at;
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: %s at offset %llu has length %llu but only %llu bytes remain "
                            "(file size %llu)",
                            c->file, what, (ull)at, (ull)len, (ull)(left(c) - 8), (ull)c->size);
    }
    s->ptr = (const char *)(c->base + c->pos);
    s->len = len;
    c->pos += len;
    return PG_OK;
}

/* Reads a string already validated (the second pass that fills str_pool). */
static gguf_str take_str(cursor *c) {
    gguf_str s;
    memcpy(&s.len, c->base + c->pos, 8);
    s.ptr = (const char *)(c->base + c->pos + 8);
    c->pos += 8 + s.len;
    return s;
}

/* ---------------------------------------------------------------------------------------------
 * Key/values
 * ------------------------------------------------------------------------------------------- */

/* Reads the value of kv (its type already read); counts the strings it holds into *n_strings. */
static pg_status parse_value(cursor *c, gguf_kv *kv, const char *key, uint64_t *n_strings) {
    char what[160];
    kv->n = 1;
    kv->data = c->base + c->pos;
    if (kv->type == GGUF_TYPE_STRING) {
        gguf_str s;
        snprintf(what, sizeof what, "string value of key '%s'", key);
        *n_strings += 1;
        return rd_str(c, what, &s);
    }
    if (kv->type != GGUF_TYPE_ARRAY) {
        size_t sz = scalar_size(kv->type);
        if (sz == 0)
            return pg_set_error(PG_ERR_FORMAT, "%s: key '%s' at offset %llu has unknown type %u",
                                c->file, key, (ull)kv->offset, (unsigned)kv->type);
        snprintf(what, sizeof what, "%s value of key '%s'", gguf_type_name(kv->type), key);
        if (left(c) < sz) return truncated(c, what, sz);
        c->pos += sz;
        return PG_OK;
    }
    pg_status st;
    snprintf(what, sizeof what, "array header of key '%s'", key);
    if ((st = rd_u32(c, what, &kv->arr_type)) || (st = rd_u64(c, what, &kv->n))) return st;
    kv->data = c->base + c->pos;
    if (kv->arr_type == GGUF_TYPE_STRING) {
        /* Each string is at least its 8-byte length: a cheap early bound before the walk. */
        if (kv->n > left(c) / 8)
            return pg_set_error(PG_ERR_FORMAT,
                                "%s: key '%s' at offset %llu: array of %llu strings cannot fit "
                                "in the %llu bytes left (file size %llu)",
                                c->file, key, (ull)kv->offset, (ull)kv->n, (ull)left(c),
                                (ull)c->size);
        for (uint64_t i = 0; i < kv->n; i++) {
            gguf_str s;
            snprintf(what, sizeof what, "string %llu of array key '%s'", (ull)i, key);
            if ((st = rd_str(c, what, &s))) return st;
        }
        *n_strings += kv->n;
        return PG_OK;
    }
    size_t sz = scalar_size(kv->arr_type);
    if (sz == 0)
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: key '%s' at offset %llu: array element type %u (%s) is not "
                            "allowed",
                            c->file, key, (ull)kv->offset, (unsigned)kv->arr_type,
                            kv->arr_type == GGUF_TYPE_ARRAY ? "nested array" : "unknown");
    if (kv->n > left(c) / sz)
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: key '%s' at offset %llu: array of %llu %s ends past end of file "
                            "(%llu bytes left, file size %llu)",
                            c->file, key, (ull)kv->offset, (ull)kv->n,
                            gguf_type_name(kv->arr_type), (ull)left(c), (ull)c->size);
    c->pos += kv->n * sz;
    return PG_OK;
}

static int str_cmp(gguf_str a, gguf_str b) {
    if (a.len != b.len) return a.len < b.len ? -1 : 1;
    return a.len ? memcmp(a.ptr, b.ptr, (size_t)a.len) : 0;
}

static int kv_ptr_cmp(const void *a, const void *b) {
    const gguf_kv *x = *(const gguf_kv *const *)a, *y = *(const gguf_kv *const *)b;
    int r = str_cmp(x->key, y->key);
    return r ? r : (x->offset < y->offset ? -1 : 1);
}

static pg_status check_duplicate_keys(const gguf_file *f) {
    if (f->n_kv < 2) return PG_OK;
    const gguf_kv **p = malloc((size_t)f->n_kv * sizeof *p);
    if (!p) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: out of memory sorting keys", f->path);
    for (uint64_t i = 0; i < f->n_kv; i++) p[i] = &f->kv[i];
    qsort(p, (size_t)f->n_kv, sizeof *p, kv_ptr_cmp);
    pg_status st = PG_OK;
    for (uint64_t i = 1; i < f->n_kv && !st; i++)
        if (str_cmp(p[i - 1]->key, p[i]->key) == 0)
            st = pg_set_error(PG_ERR_FORMAT,
                              "%s: duplicate key '%s' at offset %llu (first at offset %llu)",
                              f->path, show(p[i]->key).s, (ull)p[i]->offset,
                              (ull)p[i - 1]->offset);
    free(p);
    return st;
}

static pg_status parse_kvs(cursor *c, gguf_file *f) {
    uint64_t n_strings = 0;
    pg_status st;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        char what[64];
        kv->offset = c->pos;
        snprintf(what, sizeof what, "key #%llu", (ull)i);
        if ((st = rd_str(c, what, &kv->key))) return st;
        if (kv->key.len == 0)
            return pg_set_error(PG_ERR_FORMAT, "%s: key #%llu at offset %llu is empty", f->path,
                                (ull)i, (ull)kv->offset);
        shown key_shown = show(kv->key);
        const char *key = key_shown.s;
        char tw[160];
        snprintf(tw, sizeof tw, "type of key '%s'", key);
        if ((st = rd_u32(c, tw, &kv->type))) return st;
        if ((st = parse_value(c, kv, key, &n_strings))) return st;
    }
    if ((st = check_duplicate_keys(f))) return st;

    /* Second pass: point every string kv into one pool so string arrays are random-access.
     * n_strings is bounded by the file size / 8, so the product cannot overflow. */
    if (n_strings == 0) return PG_OK;
    f->str_pool = malloc((size_t)n_strings * sizeof *f->str_pool);
    if (!f->str_pool)
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: out of memory for %llu strings", f->path,
                            (ull)n_strings);
    gguf_str *next = f->str_pool;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        int is_str = kv->type == GGUF_TYPE_STRING;
        if (!is_str && !(kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_STRING))
            continue;
        cursor s = *c;
        s.pos = (uint64_t)(kv->data - c->base);
        kv->strs = next;
        for (uint64_t j = 0; j < kv->n; j++) *next++ = take_str(&s);
    }
    return PG_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Tensor infos
 * ------------------------------------------------------------------------------------------- */

static pg_status parse_tensor_info(cursor *c, const gguf_file *f, uint64_t i, gguf_tensor *t) {
    uint64_t at = c->pos;
    char what[200];
    pg_status st;
    snprintf(what, sizeof what, "tensor #%llu name", (ull)i);
    if ((st = rd_str(c, what, &t->name))) return st;
    if (t->name.len == 0)
        return pg_set_error(PG_ERR_FORMAT, "%s: tensor #%llu at offset %llu has an empty name",
                            f->path, (ull)i, (ull)at);
    shown nm = show(t->name); /* a named copy: show's result dies with its full expression */
    const char *name = nm.s;
    snprintf(what, sizeof what, "tensor '%s' n_dims", name);
    if ((st = rd_u32(c, what, &t->n_dims))) return st;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: tensor '%s': n_dims %u at offset %llu is not in 1..%d "
                            "(tensor info at offset %llu)",
                            f->path, name, (unsigned)t->n_dims, (ull)(c->pos - 4),
                            GGUF_MAX_DIMS, (ull)at);
    uint64_t nelem = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne = 0;
        snprintf(what, sizeof what, "tensor '%s' ne[%u]", name, (unsigned)d);
        if ((st = rd_u64(c, what, &ne))) return st;
        if (ne == 0 || ne > (uint64_t)INT64_MAX || nelem > (uint64_t)INT64_MAX / ne)
            return pg_set_error(PG_ERR_FORMAT,
                                "%s: tensor '%s': ne[%u] = %llu at offset %llu is %s "
                                "(tensor info at offset %llu)",
                                f->path, name, (unsigned)d, (ull)ne, (ull)(c->pos - 8),
                                ne == 0 ? "zero" : "too large", (ull)at);
        t->ne[d] = (int64_t)ne;
        nelem *= ne;
    }
    snprintf(what, sizeof what, "tensor '%s' type", name);
    if ((st = rd_u32(c, what, &t->type))) return st;
    if (!pg_dtype_supported(t->type)) {
        int known = pg_dtype_known_ggml(t->type);
        return pg_set_error(known ? PG_ERR_UNSUPPORTED : PG_ERR_FORMAT,
                            "%s: tensor '%s': %s %s (id %u) at offset %llu; supported are F32, "
                            "F16, BF16, Q8_0, Q4_0 (tensor info at offset %llu)",
                            f->path, name, known ? "unsupported type" : "unknown",
                            pg_dtype_name(t->type), (unsigned)t->type, (ull)(c->pos - 4),
                            (ull)at);
    }
    int64_t be = pg_dtype_block_elems(t->type);
    if (t->ne[0] % be)
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: tensor '%s': ne[0] = %lld is not a multiple of the %s block "
                            "size %lld (tensor info at offset %llu)",
                            f->path, name, (long long)t->ne[0], pg_dtype_name(t->type),
                            (long long)be, (ull)at);
    uint64_t nblocks = nelem / (uint64_t)be, bb = pg_dtype_block_bytes(t->type);
    if (nblocks > (uint64_t)SIZE_MAX / bb)
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: tensor '%s': %llu elements of %s overflow the address space "
                            "(tensor info at offset %llu)",
                            f->path, name, (ull)nelem, pg_dtype_name(t->type), (ull)at);
    t->nbytes = (size_t)(nblocks * bb);
    snprintf(what, sizeof what, "tensor '%s' offset", name);
    return rd_u64(c, what, &t->offset);
}

/* Places a tensor in the data section: aligned, inside the file, aligned for its element type
 * (so F32 rows can be read as float *). */
static pg_status place_tensor(const gguf_file *f, gguf_tensor *t, uint64_t info_at) {
    shown nm = show(t->name);
    const char *name = nm.s;
    if (t->offset % f->alignment)
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: tensor '%s': data offset %llu is not a multiple of the "
                            "alignment %llu (tensor info at offset %llu)",
                            f->path, name, (ull)t->offset, (ull)f->alignment, (ull)info_at);
    uint64_t room = f->data_offset <= f->size ? f->size - f->data_offset : 0;
    if (t->offset > room || t->nbytes > room - t->offset)
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: tensor '%s': data [offset %llu, %llu bytes] (data section at "
                            "%llu) ends past end of file (size %llu) (tensor info at offset %llu)",
                            f->path, name, (ull)t->offset, (ull)t->nbytes, (ull)f->data_offset,
                            (ull)f->size, (ull)info_at);
    t->data = (const uint8_t *)f->map + f->data_offset + t->offset;
    size_t elem_align = t->type == PG_DTYPE_F32 ? 4 : 2;
    if ((uintptr_t)t->data % elem_align)
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: tensor '%s': data at file offset %llu is not %zu-byte aligned "
                            "for %s (tensor info at offset %llu)",
                            f->path, name, (ull)(f->data_offset + t->offset), elem_align,
                            pg_dtype_name(t->type), (ull)info_at);
    return PG_OK;
}

static int tensor_name_cmp(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    int r = str_cmp(x->name, y->name);
    return r ? r : (x < y ? -1 : 1);
}

static int tensor_offset_cmp(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x < y ? -1 : 1;
}

/* Duplicate names, then overlapping data: both found by sorting pointers. */
static pg_status check_tensor_set(const gguf_file *f, const uint64_t *info_at) {
    if (f->n_tensors < 2) return PG_OK;
    size_t n = (size_t)f->n_tensors;
    const gguf_tensor **p = malloc(n * sizeof *p);
    if (!p) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: out of memory sorting tensors", f->path);
    for (size_t i = 0; i < n; i++) p[i] = &f->tensors[i];
    pg_status st = PG_OK;
    qsort(p, n, sizeof *p, tensor_name_cmp);
    for (size_t i = 1; i < n && !st; i++)
        if (str_cmp(p[i - 1]->name, p[i]->name) == 0)
            st = pg_set_error(PG_ERR_FORMAT,
                              "%s: duplicate tensor name '%s' (tensor infos at offsets %llu and "
                              "%llu)",
                              f->path, show(p[i]->name).s, (ull)info_at[p[i - 1] - f->tensors],
                              (ull)info_at[p[i] - f->tensors]);
    if (!st) qsort(p, n, sizeof *p, tensor_offset_cmp);
    for (size_t i = 1; i < n && !st; i++) {
        const gguf_tensor *a = p[i - 1], *b = p[i];
        if (a->offset + a->nbytes > b->offset) {
            char an[100];
            memcpy(an, show(a->name).s, sizeof an);
            st = pg_set_error(PG_ERR_FORMAT,
                              "%s: tensor '%s': data [offset %llu, %llu bytes] overlaps tensor "
                              "'%s' at offset %llu (tensor info at offset %llu)",
                              f->path, show(b->name).s, (ull)b->offset, (ull)b->nbytes, an,
                              (ull)a->offset, (ull)info_at[b - f->tensors]);
        }
    }
    free(p);
    return st;
}

static pg_status parse_tensors(cursor *c, gguf_file *f) {
    pg_status st = PG_OK;
    uint64_t *info_at = malloc((size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *info_at);
    if (!info_at) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    for (uint64_t i = 0; i < f->n_tensors && !st; i++) {
        info_at[i] = c->pos;
        st = parse_tensor_info(c, f, i, &f->tensors[i]);
    }
    /* The data section starts at the next multiple of the alignment; with no tensors the file
     * may end before that padding. */
    f->data_offset = (c->pos + f->alignment - 1) / f->alignment * f->alignment;
    for (uint64_t i = 0; i < f->n_tensors && !st; i++)
        st = place_tensor(f, &f->tensors[i], info_at[i]);
    if (!st) st = check_tensor_set(f, info_at);
    free(info_at);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Open and close
 * ------------------------------------------------------------------------------------------- */

static pg_status parse_header(cursor *c, gguf_file *f) {
    if (c->size < GGUF_HEADER_BYTES)
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: file too small for a GGUF header (%llu bytes, need %d)", f->path,
                            (ull)c->size, GGUF_HEADER_BYTES);
    uint32_t magic = 0;
    rd_u32(c, "magic", &magic);
    if (magic != GGUF_MAGIC)
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: bad magic %02x %02x %02x %02x at offset 0: not a GGUF file",
                            f->path, c->base[0], c->base[1], c->base[2], c->base[3]);
    rd_u32(c, "version", &f->version);
    if (f->version == 1 || f->version == 0)
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: GGUF version %u at offset 4 is not supported (only 2 and 3; "
                            "version 1 had 32-bit counts)",
                            f->path, (unsigned)f->version);
    if (f->version > 3)
        return pg_set_error(f->version >= 0x01000000u ? PG_ERR_FORMAT : PG_ERR_UNSUPPORTED,
                            "%s: GGUF version %u at offset 4 is not supported (only 2 and 3%s)",
                            f->path, (unsigned)f->version,
                            f->version >= 0x01000000u ? "; a big-endian file?" : "");
    rd_u64(c, "n_tensors", &f->n_tensors);
    rd_u64(c, "n_kv", &f->n_kv);
    uint64_t room = left(c);
    if (f->n_kv > room / MIN_KV_BYTES)
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: n_kv %llu at offset 16 cannot fit in the %llu bytes that follow",
                            f->path, (ull)f->n_kv, (ull)room);
    if (f->n_tensors > room / MIN_TENSOR_INFO_BYTES ||
        f->n_tensors * MIN_TENSOR_INFO_BYTES > room - f->n_kv * MIN_KV_BYTES)
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: n_tensors %llu at offset 8 (with n_kv %llu) cannot fit in the "
                            "%llu bytes that follow",
                            f->path, (ull)f->n_tensors, (ull)f->n_kv, (ull)room);
    return PG_OK;
}

static pg_status read_alignment(gguf_file *f) {
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *kv = gguf_find_kv(f, "general.alignment");
    if (!kv) return PG_OK;
    uint32_t a = 0;
    pg_status st = gguf_get_u32(f, "general.alignment", &a);
    if (st) return st;
    if (a == 0 || (a & (a - 1)))
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: key 'general.alignment' at offset %llu is %u, not a power of two",
                            f->path, (ull)kv->offset, (unsigned)a);
    f->alignment = a;
    return PG_OK;
}

static pg_status parse(gguf_file *f) {
    cursor c = {f->map, f->size, 0, f->path};
    pg_status st = parse_header(&c, f);
    if (st) return st;
    /* Both counts are bounded by the file size above, so these allocations are too. */
    f->kv = calloc((size_t)(f->n_kv ? f->n_kv : 1), sizeof *f->kv);
    f->tensors = calloc((size_t)(f->n_tensors ? f->n_tensors : 1), sizeof *f->tensors);
    if (!f->kv || !f->tensors)
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: out of memory for %llu keys, %llu tensors",
                            f->path, (ull)f->n_kv, (ull)f->n_tensors);
    if ((st = parse_kvs(&c, f)) || (st = read_alignment(f))) return st;
    return parse_tensors(&c, f);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static pg_status new_handle(const char *name, gguf_owner **out) {
    gguf_owner *o = calloc(1, sizeof *o);
    char *path = dup_str(name);
    if (!o || !path) {
        free(o);
        free(path);
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    }
    o->f.path = path;
    *out = o;
    return PG_OK;
}

pg_status gguf_open_memory(const void *data, size_t size, const char *name, gguf_file **out) {
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "gguf_open_memory: out is NULL");
    *out = NULL;
    if (!name) name = "<memory>";
    if (!data && size)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "gguf_open_memory: %s: data is NULL", name);
    gguf_owner *o = NULL;
    pg_status st = new_handle(name, &o);
    if (st) return st;
    o->f.map = (void *)data; /* never written through: the handle only hands out const views */
    o->f.size = size;
    if ((st = parse(&o->f))) {
        gguf_close(&o->f);
        return st;
    }
    *out = &o->f;
    return PG_OK;
}

/* strerror is not thread-safe; glibc with _GNU_SOURCE has the char * flavour of strerror_r. */
static const char *errno_text(int e, char *buf, size_t cap) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(e, buf, cap);
#else
    if (strerror_r(e, buf, cap) != 0) snprintf(buf, cap, "errno %d", e);
    return buf;
#endif
}

pg_status gguf_open(const char *path, gguf_file **out) {
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "gguf_open: out is NULL");
    *out = NULL;
    if (!path) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "gguf_open: path is NULL");
    char eb[128];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pg_set_error(PG_ERR_IO, "%s: cannot open: %s", path,
                            errno_text(errno, eb, sizeof eb));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return pg_set_error(PG_ERR_IO, "%s: cannot stat: %s", path, errno_text(e, eb, sizeof eb));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return pg_set_error(PG_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return pg_set_error(PG_ERR_IO, "%s: %llu bytes do not fit in the address space", path,
                            (ull)sb.st_size);
    }
    size_t size = (size_t)sb.st_size;
    void *map = NULL;
    if (size > 0) { /* mmap of zero bytes fails; an empty file is then reported as too small */
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return pg_set_error(PG_ERR_IO, "%s: cannot map %llu bytes: %s", path, (ull)size,
                                errno_text(e, eb, sizeof eb));
        }
    }
    close(fd); /* the mapping keeps the file alive */
    gguf_owner *o = NULL;
    pg_status st = new_handle(path, &o);
    if (st) {
        if (map) munmap(map, size);
        return st;
    }
    o->f.map = map;
    o->f.size = size;
    o->mapped = map != NULL;
    if ((st = parse(&o->f))) {
        gguf_close(&o->f);
        return st;
    }
    *out = &o->f;
    return PG_OK;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    gguf_owner *o = (gguf_owner *)f; /* f is the first member of the owner that holds it */
    if (o->mapped) munmap(f->map, f->size);
    free(f->kv);
    free(f->tensors);
    free(f->str_pool);
    free(f->path);
    free(o);
}

/* ---------------------------------------------------------------------------------------------
 * Lookups and typed getters
 * ------------------------------------------------------------------------------------------- */

int gguf_str_eq(gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (gguf_str_eq(f->kv[i].key, key)) return &f->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    if (!f || !name) return NULL;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (gguf_str_eq(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

/* An integer scalar of any width as sign and magnitude. 0 when kv is not an integer. */
static int kv_integer(const gguf_kv *kv, int *neg, uint64_t *mag) {
    const uint8_t *p = kv->data;
    int64_t s;
    *neg = 0;
    switch (kv->type) {
    case GGUF_TYPE_UINT8: *mag = p[0]; return 1;
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); *mag = v; return 1; }
    case GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); *mag = v; return 1; }
    case GGUF_TYPE_UINT64: memcpy(mag, p, 8); return 1;
    case GGUF_TYPE_INT8: s = (int8_t)p[0]; break;
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); s = v; break; }
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); s = v; break; }
    case GGUF_TYPE_INT64: memcpy(&s, p, 8); break;
    default: return 0;
    }
    *neg = s < 0;
    *mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
    return 1;
}

static pg_status missing(const gguf_file *f, const char *key) {
    if (!f || !key) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "gguf getter: NULL argument");
    return pg_set_error(PG_ERR_FORMAT, "%s: key '%s' not found", f->path, key);
}

static pg_status wrong_type(const gguf_file *f, const gguf_kv *kv, const char *key,
                            const char *want) {
    return pg_set_error(PG_ERR_FORMAT, "%s: key '%s' at offset %llu has type %s%s%s, expected %s",
                        f->path, key, (ull)kv->offset, gguf_type_name(kv->type),
                        kv->type == GGUF_TYPE_ARRAY ? " of " : "",
                        kv->type == GGUF_TYPE_ARRAY ? gguf_type_name(kv->arr_type) : "", want);
}

pg_status gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return missing(f, key);
    int neg;
    uint64_t mag;
    if (!kv_integer(kv, &neg, &mag)) return wrong_type(f, kv, key, "an integer");
    if (neg || mag > UINT32_MAX)
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: key '%s' at offset %llu: value %s%llu does not fit in u32",
                            f->path, key, (ull)kv->offset, neg ? "-" : "", (ull)mag);
    *out = (uint32_t)mag;
    return PG_OK;
}

pg_status gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return missing(f, key);
    if (kv->type == GGUF_TYPE_FLOAT32) {
        memcpy(out, kv->data, 4);
    } else if (kv->type == GGUF_TYPE_FLOAT64) {
        double d;
        memcpy(&d, kv->data, 8);
        *out = (float)d;
    } else {
        return wrong_type(f, kv, key, "f32 or f64");
    }
    return PG_OK;
}

pg_status gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return missing(f, key);
    if (kv->type != GGUF_TYPE_STRING) return wrong_type(f, kv, key, "string");
    *out = kv->strs[0];
    return PG_OK;
}

pg_status gguf_get_u32_or(const gguf_file *f, const char *key, uint32_t def, uint32_t *out) {
    if (!gguf_find_kv(f, key)) {
        *out = def;
        return PG_OK;
    }
    return gguf_get_u32(f, key, out);
}

pg_status gguf_get_f32_or(const gguf_file *f, const char *key, float def, float *out) {
    if (!gguf_find_kv(f, key)) {
        *out = def;
        return PG_OK;
    }
    return gguf_get_f32(f, key, out);
}

pg_status gguf_get_arr(const gguf_file *f, const char *key, uint32_t elem_type,
                       const gguf_kv **out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return missing(f, key);
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != elem_type) {
        char want[32];
        snprintf(want, sizeof want, "array of %s", gguf_type_name(elem_type));
        return wrong_type(f, kv, key, want);
    }
    *out = kv;
    return PG_OK;
}

double gguf_arr_num(const gguf_kv *kv, uint64_t i) {
    if (!kv) return NAN;
    uint32_t t = kv->type == GGUF_TYPE_ARRAY ? kv->arr_type : kv->type;
    size_t sz = scalar_size(t);
    if (sz == 0 || i >= kv->n) return NAN;
    const uint8_t *p = kv->data + i * sz;
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
            float f32; uint64_t u64; int64_t i64; double f64; } v;
    memcpy(&v, p, sz);
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_BOOL: return v.u8;
    case GGUF_TYPE_INT8: return v.i8;
    case GGUF_TYPE_UINT16: return v.u16;
    case GGUF_TYPE_INT16: return v.i16;
    case GGUF_TYPE_UINT32: return v.u32;
    case GGUF_TYPE_INT32: return v.i32;
    case GGUF_TYPE_FLOAT32: return v.f32;
    case GGUF_TYPE_UINT64: return (double)v.u64;
    case GGUF_TYPE_INT64: return (double)v.i64;
    case GGUF_TYPE_FLOAT64: return v.f64;
    }
    return NAN;
}

static void format_shape(char *buf, size_t cap, int n_dims, const int64_t *ne) {
    size_t n = (size_t)snprintf(buf, cap, "{");
    for (int d = 0; d < n_dims && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", d ? ", " : "", (long long)ne[d]);
    if (n < cap) snprintf(buf + n, cap - n, "}");
}

pg_status gguf_get_tensor(const gguf_file *f, const char *name, int n_dims, const int64_t *ne,
                          const gguf_tensor **out) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!f || !name)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "gguf_get_tensor: NULL argument");
    if (!t) return pg_set_error(PG_ERR_FORMAT, "%s: tensor '%s' not found", f->path, name);
    if (!pg_dtype_supported(t->type)) /* open rejects these; kept for hand-built handles */
        return pg_set_error(PG_ERR_UNSUPPORTED, "%s: tensor '%s' has unsupported type %s",
                            f->path, name, pg_dtype_name(t->type));
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || !ne)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: tensor '%s': bad expected n_dims %d",
                            f->path, name, n_dims);
    /* Dimensions past n_dims are 1 on both sides, so trailing 1s in the file are accepted. */
    int match = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        if (t->ne[d] != (d < n_dims ? ne[d] : 1)) match = 0;
    if (!match) {
        char want[128], got[128];
        format_shape(want, sizeof want, n_dims, ne);
        format_shape(got, sizeof got, (int)t->n_dims, t->ne);
        return pg_set_error(PG_ERR_FORMAT,
                            "%s: tensor '%s': expected shape %s, found %s (type %s, data at file "
                            "offset %llu)",
                            f->path, name, want, got, pg_dtype_name(t->type),
                            (ull)(f->data_offset + t->offset));
    }
    *out = t;
    return PG_OK;
}
