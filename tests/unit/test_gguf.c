/*
 * test_gguf.c — the GGUF reader and writer: round trips of every key and tensor type (memory
 * and file), hand-built files for the key types the writer does not emit, specific malformed
 * files (exact status and message), a corruption sweep (every truncation, seeded bit flips and
 * huge overwrites: each open fails with a message or yields views inside the buffer), and the
 * reference tiny LLaMA files.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200809L /* mkstemp */
#endif

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pandagpt.h"
#include "check.h"
#include "api/error.h"
#include "gguf/dtype.h"
#include "gguf/gguf.h"

/* ---- a raw little-endian builder for files the writer would never produce ---- */

typedef struct raw { uint8_t *p; size_t n, cap; } raw;

static void rput(raw *r, const void *src, size_t n) {
    if (r->n + n > r->cap) {
        r->cap = (r->n + n) * 2 + 64;
        r->p = realloc(r->p, r->cap);
        if (!r->p) abort();
    }
    memcpy(r->p + r->n, src, n);
    r->n += n;
}
static void ru8(raw *r, uint8_t v) { rput(r, &v, 1); }
static void ru32(raw *r, uint32_t v) { rput(r, &v, 4); }
static void ru64(raw *r, uint64_t v) { rput(r, &v, 8); }
static void rstr(raw *r, const char *s) { ru64(r, strlen(s)); rput(r, s, strlen(s)); }
static void rpad(raw *r) { while (r->n % 32) ru8(r, 0); }

/* A file with one string kv and two F32 tensors "a" {32, 2} and "b" {32}, where tensor b's
 * fields (and a few header fields) can be set to bad values. */
typedef struct spec {
    uint32_t magic, version;
    uint64_t n_tensors;
    uint64_t key_len;      /* 0: the real length */
    const char *b_name;
    uint32_t b_type, b_n_dims;
    uint64_t b_ne0, b_offset;
} spec;

static spec good_spec(void) {
    return (spec){0x46554747u, 3, 2, 0, "b", PG_DTYPE_F32, 1, 32, 256};
}

static raw build(spec s) {
    raw r = {0};
    ru32(&r, s.magic), ru32(&r, s.version), ru64(&r, s.n_tensors), ru64(&r, 1);
    ru64(&r, s.key_len ? s.key_len : 20), rput(&r, "general.architecture", 20);
    ru32(&r, GGUF_TYPE_STRING), rstr(&r, "llama");
    rstr(&r, "a"), ru32(&r, 2), ru64(&r, 32), ru64(&r, 2), ru32(&r, PG_DTYPE_F32), ru64(&r, 0);
    rstr(&r, s.b_name), ru32(&r, s.b_n_dims);
    for (uint32_t d = 0; d < s.b_n_dims; d++) ru64(&r, d ? 1 : s.b_ne0);
    ru32(&r, s.b_type), ru64(&r, s.b_offset);
    rpad(&r);
    for (int i = 0; i < 96; i++) { float v = (float)i; rput(&r, &v, 4); }
    return r;
}

static void clear_error(void) { pg_set_error(PG_OK, "%s", ""); }

static void expect_fail(const char *what, spec s, pg_status want, const char *substr) {
    raw r = build(s);
    gguf_file *f = NULL;
    clear_error();
    pg_status st = gguf_open_memory(r.p, r.n, "bad.gguf", &f);
    CHECK_MSG(st == want, "%s: status %d, want %d (%s)", what, st, want, pg_last_error());
    CHECK_MSG(strstr(pg_last_error(), substr) && strstr(pg_last_error(), "bad.gguf"),
              "%s: message '%s' lacks '%s'", what, pg_last_error(), substr);
    CHECK(f == NULL);
    gguf_close(f);
    free(r.p);
}

static void test_malformed(void) {
    raw r = build(good_spec());
    gguf_file *f;
    CHECK_OK(gguf_open_memory(r.p, r.n, "good.gguf", &f));
    if (f) {
        const gguf_tensor *b;
        CHECK_OK(gguf_get_tensor(f, "b", 1, (int64_t[]){32}, &b));
        if (b) CHECK(((const float *)b->data)[1] == 65.0f);
        gguf_close(f);
    }
    free(r.p);
    spec s;
    s = good_spec(), s.magic = 0x46554748u;
    expect_fail("bad magic", s, PG_ERR_FORMAT, "bad magic");
    s = good_spec(), s.version = 1;
    expect_fail("version 1", s, PG_ERR_FORMAT, "version 1");
    s = good_spec(), s.n_tensors = 1ull << 60;
    expect_fail("n_tensors 2^60", s, PG_ERR_FORMAT, "n_tensors 1152921504606846976");
    s = good_spec(), s.key_len = 1ull << 40;
    expect_fail("key length", s, PG_ERR_FORMAT, "has length 1099511627776");
    s = good_spec(), s.b_offset = 260;
    expect_fail("misaligned", s, PG_ERR_FORMAT, "not a multiple of the alignment 32");
    s = good_spec(), s.b_offset = 1024;
    expect_fail("past end", s, PG_ERR_FORMAT, "tensor 'b': data [offset 1024, 128 bytes]");
    s = good_spec(), s.b_offset = 1024;
    expect_fail("past end", s, PG_ERR_FORMAT, "ends past end of file");
    s = good_spec(), s.b_type = 3;
    expect_fail("Q4_1", s, PG_ERR_UNSUPPORTED, "unsupported type Q4_1 (id 3)");
    s = good_spec(), s.b_type = 999;
    expect_fail("type 999", s, PG_ERR_FORMAT, "unknown type 999");
    s = good_spec(), s.b_n_dims = 5;
    expect_fail("n_dims 5", s, PG_ERR_FORMAT, "n_dims 5");
    s = good_spec(), s.b_ne0 = 0;
    expect_fail("ne 0", s, PG_ERR_FORMAT, "ne[0] = 0");
    s = good_spec(), s.b_name = "a";
    expect_fail("duplicate", s, PG_ERR_FORMAT, "duplicate tensor name 'a'");
    s = good_spec(), s.b_offset = 0;
    expect_fail("overlap", s, PG_ERR_FORMAT, "overlaps tensor 'a'");
    s = good_spec(), s.b_type = PG_DTYPE_Q8_0, s.b_ne0 = 48;
    expect_fail("block multiple", s, PG_ERR_FORMAT, "not a multiple of the Q8_0 block size 32");
    s = good_spec(), s.b_name = "";
    expect_fail("empty name", s, PG_ERR_FORMAT, "empty name");
    s = good_spec(), s.version = 0x03000000u;
    expect_fail("big endian", s, PG_ERR_FORMAT, "big-endian");
}

/* Key types the writer does not emit, nested arrays and unknown types, by hand. */
static void test_raw_kv_types(void) {
    raw r = {0};
    ru32(&r, 0x46554747u), ru32(&r, 3), ru64(&r, 0), ru64(&r, 9);
    rstr(&r, "u8"), ru32(&r, GGUF_TYPE_UINT8), ru8(&r, 200);
    rstr(&r, "i8"), ru32(&r, GGUF_TYPE_INT8), ru8(&r, 0xff);
    rstr(&r, "u16"), ru32(&r, GGUF_TYPE_UINT16), ru8(&r, 0x34), ru8(&r, 0x12);
    rstr(&r, "i16"), ru32(&r, GGUF_TYPE_INT16), ru8(&r, 0xfe), ru8(&r, 0xff);
    rstr(&r, "u64"), ru32(&r, GGUF_TYPE_UINT64), ru64(&r, 1ull << 40);
    rstr(&r, "i64"), ru32(&r, GGUF_TYPE_INT64), ru64(&r, 70000);
    double dv = 0.25;
    rstr(&r, "f64"), ru32(&r, GGUF_TYPE_FLOAT64), rput(&r, &dv, 8);
    rstr(&r, "arr.u8"), ru32(&r, GGUF_TYPE_ARRAY), ru32(&r, GGUF_TYPE_UINT8), ru64(&r, 3);
    ru8(&r, 1), ru8(&r, 2), ru8(&r, 3);
    int16_t i16[2] = {-5, 7};
    rstr(&r, "arr.i16"), ru32(&r, GGUF_TYPE_ARRAY), ru32(&r, GGUF_TYPE_INT16), ru64(&r, 2);
    rput(&r, i16, 4);
    gguf_file *f = NULL;
    CHECK_OK(gguf_open_memory(r.p, r.n, "raw.gguf", &f));
    if (f) {
        uint32_t u = 0;
        float fl = 0;
        CHECK_OK(gguf_get_u32(f, "u8", &u)); CHECK_EQ_INT(u, 200);
        CHECK_STATUS(gguf_get_u32(f, "i8", &u), PG_ERR_FORMAT);
        CHECK(strstr(pg_last_error(), "-1 does not fit"));
        CHECK_OK(gguf_get_u32(f, "u16", &u)); CHECK_EQ_INT(u, 0x1234);
        CHECK_STATUS(gguf_get_u32(f, "u64", &u), PG_ERR_FORMAT);
        CHECK_OK(gguf_get_u32(f, "i64", &u)); CHECK_EQ_INT(u, 70000);
        CHECK_OK(gguf_get_f32(f, "f64", &fl)); CHECK(fl == 0.25f);
        CHECK_STATUS(gguf_get_f32(f, "u8", &fl), PG_ERR_FORMAT);
        CHECK(strstr(pg_last_error(), "key 'u8' at offset 24 has type u8, expected f32 or f64"));
        CHECK(gguf_arr_num(gguf_find_kv(f, "i16"), 0) == -2);
        CHECK(gguf_arr_num(gguf_find_kv(f, "u64"), 0) == 1099511627776.0);
        const gguf_kv *a;
        CHECK_OK(gguf_get_arr(f, "arr.u8", GGUF_TYPE_UINT8, &a));
        if (a) CHECK(a->n == 3 && gguf_arr_num(a, 2) == 3 && isnan(gguf_arr_num(a, 3)));
        CHECK_OK(gguf_get_arr(f, "arr.i16", GGUF_TYPE_INT16, &a));
        if (a) CHECK(gguf_arr_num(a, 0) == -5 && gguf_arr_num(a, 1) == 7);
        CHECK_STATUS(gguf_get_arr(f, "arr.u8", GGUF_TYPE_INT32, &a), PG_ERR_FORMAT);
        CHECK(strstr(pg_last_error(), "has type array of u8, expected array of i32"));
        CHECK_STATUS(gguf_get_u32(f, "missing", &u), PG_ERR_FORMAT);
        CHECK(strstr(pg_last_error(), "raw.gguf: key 'missing' not found"));
        CHECK_OK(gguf_get_u32_or(f, "missing", 17, &u)); CHECK_EQ_INT(u, 17);
        CHECK_OK(gguf_get_f32_or(f, "missing", 1.5f, &fl)); CHECK(fl == 1.5f);
        CHECK(f->n_tensors == 0 && f->alignment == 32);
        gguf_close(f);
    }
    /* Nested array, unknown kv type, empty key, duplicate key, bad alignment: all FORMAT. */
    static const char *const subs[] = {"nested array", "unknown type 13", "is empty",
                                       "duplicate key 'k'", "not a power of two"};
    for (int c = 0; c < 5; c++) {
        raw b = {0};
        ru32(&b, 0x46554747u), ru32(&b, 3), ru64(&b, 0), ru64(&b, c == 3 ? 2 : 1);
        rstr(&b, c == 2 ? "" : c == 4 ? "general.alignment" : "k");
        if (c == 0) ru32(&b, GGUF_TYPE_ARRAY), ru32(&b, GGUF_TYPE_ARRAY), ru64(&b, 0);
        else if (c == 1) ru32(&b, 13), ru64(&b, 0);
        else ru32(&b, GGUF_TYPE_UINT32), ru32(&b, c == 4 ? 48 : 1);
        if (c == 3) rstr(&b, "k"), ru32(&b, GGUF_TYPE_UINT8), ru8(&b, 1);
        clear_error();
        CHECK_STATUS(gguf_open_memory(b.p, b.n, "kv.gguf", &f), PG_ERR_FORMAT);
        CHECK_MSG(strstr(pg_last_error(), subs[c]), "case %d: '%s'", c, pg_last_error());
        free(b.p);
    }
    free(r.p);
}

/* ---- writer round trip ---- */

static void fill_ramp(void *ctx, void *dst, size_t nbytes) {
    float *p = dst;
    for (size_t i = 0; i < nbytes / 4; i++) p[i] = (float)i * *(const float *)ctx;
}

enum { N_TYPES = 5 };
static const uint32_t all_types[N_TYPES] = {PG_DTYPE_F32, PG_DTYPE_F16, PG_DTYPE_BF16,
                                            PG_DTYPE_Q8_0, PG_DTYPE_Q4_0};
static uint8_t tdata[N_TYPES][4 * 64 * 3];
static const char *const tnames[N_TYPES] = {"t.f32", "t.f16", "t.bf16", "t.q8_0", "t.q4_0"};
static float ramp_scale = 0.5f;

/* Every kv the writer has, one tensor of each type, and a fill tensor last (128 bytes, so the
 * file has no trailing padding and every truncation cuts real data). */
static gguf_writer *make_writer(void) {
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "u32", 4000000000u);
    gguf_writer_set_i32(w, "i32", -123);
    gguf_writer_set_f32(w, "f32", 9.99999997e-07f);
    gguf_writer_set_bool(w, "bool", 1);
    gguf_writer_set_u32(w, "replaced", 1);
    gguf_writer_set_u32(w, "replaced", 2);
    gguf_writer_set_str(w, "empty", "");
    const char *toks[] = {"<unk>", "", "\xe2\x96\x81the", "<0x0A>"};
    gguf_writer_set_arr_str(w, "tokens", toks, 4);
    float fs[3] = {-1.5f, 0, 3e38f};
    gguf_writer_set_arr_f32(w, "scores", fs, 3);
    int32_t is[2] = {INT32_MIN, 6};
    gguf_writer_set_arr_i32(w, "types", is, 2);
    gguf_writer_set_arr_i32(w, "none", NULL, 0);
    float src[64 * 3];
    for (int i = 0; i < 64 * 3; i++) src[i] = sinf((float)i) * 4;
    for (int t = 0; t < N_TYPES; t++) {
        pg_quantize_row(all_types[t], src, tdata[t], 64 * 3);
        gguf_writer_add_tensor(w, tnames[t], all_types[t], 2, (int64_t[]){64, 3}, tdata[t]);
    }
    gguf_writer_add_tensor_fill(w, "t.fill", PG_DTYPE_F32, 3, (int64_t[]){8, 4, 1}, fill_ramp,
                                &ramp_scale);
    return w;
}

static void check_contents(const gguf_file *f) {
    gguf_str s = {0};
    uint32_t u = 0;
    float fl = 0;
    const gguf_kv *kv;
    CHECK_EQ_INT(f->n_kv, 11);
    CHECK_EQ_INT(f->n_tensors, N_TYPES + 1);
    CHECK_OK(gguf_get_str(f, "general.architecture", &s)); CHECK(gguf_str_eq(s, "llama"));
    CHECK_OK(gguf_get_u32(f, "u32", &u)); CHECK(u == 4000000000u);
    kv = gguf_find_kv(f, "i32");
    CHECK(kv && kv->type == GGUF_TYPE_INT32 && gguf_arr_num(kv, 0) == -123);
    CHECK_OK(gguf_get_f32(f, "f32", &fl)); CHECK(fl == 9.99999997e-07f);
    kv = gguf_find_kv(f, "bool");
    CHECK(kv && kv->type == GGUF_TYPE_BOOL && kv->data[0] == 1);
    CHECK_OK(gguf_get_u32(f, "replaced", &u)); CHECK_EQ_INT(u, 2);
    CHECK_OK(gguf_get_str(f, "empty", &s)); CHECK(s.len == 0);
    CHECK_OK(gguf_get_arr(f, "tokens", GGUF_TYPE_STRING, &kv));
    if (kv) {
        CHECK(kv->n == 4 && gguf_str_eq(kv->strs[0], "<unk>") && kv->strs[1].len == 0);
        CHECK(gguf_str_eq(kv->strs[2], "\xe2\x96\x81the") && gguf_str_eq(kv->strs[3], "<0x0A>"));
    }
    CHECK_OK(gguf_get_arr(f, "scores", GGUF_TYPE_FLOAT32, &kv));
    if (kv) CHECK(gguf_arr_num(kv, 0) == -1.5 && gguf_arr_num(kv, 2) == (double)3e38f);
    CHECK_OK(gguf_get_arr(f, "types", GGUF_TYPE_INT32, &kv));
    if (kv) CHECK(gguf_arr_num(kv, 0) == INT32_MIN && gguf_arr_num(kv, 1) == 6);
    CHECK_OK(gguf_get_arr(f, "none", GGUF_TYPE_INT32, &kv));
    if (kv) CHECK(kv->n == 0);
    for (int t = 0; t < N_TYPES; t++) {
        const gguf_tensor *ts = NULL;
        CHECK_OK(gguf_get_tensor(f, tnames[t], 2, (int64_t[]){64, 3}, &ts));
        if (!ts) continue;
        CHECK(ts->type == all_types[t] && ts->nbytes == pg_dtype_row_bytes(all_types[t], 64) * 3);
        CHECK_MSG(memcmp(ts->data, tdata[t], ts->nbytes) == 0, "%s data differs", tnames[t]);
        CHECK(ts->offset % 32 == 0 && (f->data_offset % 32) == 0);
    }
    const gguf_tensor *ft = NULL;
    CHECK_OK(gguf_get_tensor(f, "t.fill", 2, (int64_t[]){8, 4}, &ft)); /* trailing 1 accepted */
    if (ft) CHECK(ft->n_dims == 3 && ((const float *)ft->data)[31] == 15.5f);
    CHECK_STATUS(gguf_get_tensor(f, "t.f32", 2, (int64_t[]){64, 4}, &ft), PG_ERR_FORMAT);
    CHECK(strstr(pg_last_error(), "tensor 't.f32': expected shape {64, 4}, found {64, 3}"));
    CHECK_STATUS(gguf_get_tensor(f, "nope", 1, (int64_t[]){1}, &ft), PG_ERR_FORMAT);
    CHECK(strstr(pg_last_error(), "tensor 'nope' not found"));
}

static void test_round_trip(void **out_buf, size_t *out_size) {
    gguf_writer *w = make_writer();
    void *buf = NULL;
    size_t size = 0;
    CHECK_OK(gguf_writer_to_memory(w, &buf, &size));
    gguf_file *f = NULL;
    CHECK_OK(gguf_open_memory(buf, size, "rt.gguf", &f));
    if (f) check_contents(f);
    gguf_close(f);

    char path[] = "/tmp/pg_test_gguf_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) {
        close(fd);
        CHECK_OK(gguf_writer_write(w, path));
        f = NULL;
        CHECK_OK(gguf_open(path, &f));
        if (f) {
            check_contents(f);
            CHECK(f->size == size);
        }
        gguf_close(f);
        unlink(path);
    }
    CHECK_STATUS(gguf_open("/nonexistent/x.gguf", &f), PG_ERR_IO);
    CHECK(f == NULL && strstr(pg_last_error(), "/nonexistent/x.gguf: cannot open"));
    CHECK_STATUS(gguf_open("/tmp", &f), PG_ERR_IO);
    CHECK_STATUS(gguf_writer_write(w, "/nonexistent/dir/x.gguf"), PG_ERR_IO);
    gguf_writer_free(w);

    /* Bad writer calls are remembered and reported at write time. */
    w = gguf_writer_new();
    gguf_writer_add_tensor(w, "q", PG_DTYPE_Q8_0, 1, (int64_t[]){33}, NULL);
    void *b2;
    size_t s2;
    CHECK_STATUS(gguf_writer_to_memory(w, &b2, &s2), PG_ERR_INVALID_ARGUMENT);
    CHECK(strstr(pg_last_error(), "tensor 'q'"));
    gguf_writer_free(w);
    *out_buf = buf;
    *out_size = size;
}

/* ---- corruption sweep ---- */

static int inside(const void *p, size_t n, const uint8_t *base, size_t size) {
    const uint8_t *b = p;
    return b >= base && b <= base + size && n <= (size_t)(base + size - b);
}

/* Opens a private, exactly sized copy (so ASan sees any overread); on success every view must
 * lie inside it, on failure there must be a message. Returns the status. */
static pg_status probe(const uint8_t *img, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, img, size);
    gguf_file *f = NULL;
    clear_error();
    pg_status st = gguf_open_memory(copy, size, "fuzz.gguf", &f);
    if (st != PG_OK) {
        CHECK_MSG(pg_last_error()[0] != 0 && f == NULL, "status %d without a message", st);
    } else {
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const gguf_tensor *t = &f->tensors[i];
            CHECK(inside(t->data, t->nbytes, copy, size));
            CHECK(inside(t->name.ptr, t->name.len, copy, size));
        }
        for (uint64_t i = 0; i < f->n_kv; i++) {
            const gguf_kv *kv = &f->kv[i];
            CHECK(inside(kv->key.ptr, kv->key.len, copy, size) && kv->key.len > 0);
            int strs = kv->type == GGUF_TYPE_STRING ||
                       (kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_STRING);
            for (uint64_t j = 0; strs && j < kv->n; j++)
                CHECK(inside(kv->strs[j].ptr, kv->strs[j].len, copy, size));
            (void)gguf_arr_num(kv, kv->n ? kv->n - 1 : 0);
        }
        gguf_close(f);
    }
    free(copy);
    return st;
}

static void test_corruption(const uint8_t *img, size_t size) {
    int fails = 0;
    for (size_t n = 0; n < size; n++) fails += probe(img, n) != PG_OK;
    CHECK_MSG(fails == (int)size, "%d of %zu truncations opened", (int)size - fails, size);

    gguf_file *f = NULL;
    CHECK_OK(gguf_open_memory(img, size, "img", &f));
    size_t header = f ? (size_t)f->data_offset : size;
    gguf_close(f);
    uint8_t *mut = malloc(size);
    uint64_t s = 0x2545f4914f6cdd1dull;
    int ok = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(mut, img, size);
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        size_t pos = (size_t)(s % header);
        if (it % 2 == 0) {
            mut[pos] ^= (uint8_t)(1u << ((s >> 32) % 8));
        } else if (pos + 8 <= size) {
            static const uint64_t huge[] = {UINT64_MAX, 1ull << 63, (1ull << 63) - 1,
                                            1ull << 32, 0xffffffffull, 1ull << 40};
            uint64_t v = huge[(s >> 20) % 6] + ((s >> 40) % 3);
            memcpy(mut + pos, &v, 8);
        }
        ok += probe(mut, size) == PG_OK;
    }
    printf("corruption sweep: %zu truncations, 3000 mutations (%d still opened)\n", size, ok);
    free(mut);
}

/* ---- the reference tiny LLaMA files ---- */

static void test_reference(const char *dir) {
    static const char *const files[2] = {"tiny-f32.gguf", "tiny-f16.gguf"};
    for (int k = 0; k < 2; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/llama/%s", dir, files[k]);
        gguf_file *f = NULL;
        CHECK_OK(gguf_open(path, &f));
        if (!f) continue;
        gguf_str s = {0};
        uint32_t u = 0;
        const gguf_kv *kv;
        const gguf_tensor *t;
        CHECK_EQ_INT(f->n_tensors, 2 * 9 + 3);
        CHECK_OK(gguf_get_str(f, "general.architecture", &s)); CHECK(gguf_str_eq(s, "llama"));
        CHECK_OK(gguf_get_u32(f, "llama.embedding_length", &u)); CHECK_EQ_INT(u, 64);
        CHECK_OK(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &kv));
        if (kv) {
            CHECK_EQ_INT(kv->n, 32000);
            CHECK(kv->n > 13 && gguf_str_eq(kv->strs[13], "<0x0A>"));
        }
        CHECK_OK(gguf_get_tensor(f, "token_embd.weight", 2, (int64_t[]){64, 32000}, &t));
        if (t) CHECK_EQ_INT(t->type, k ? PG_DTYPE_F16 : PG_DTYPE_F32); /* 2-D weights */
        CHECK_OK(gguf_get_tensor(f, "blk.0.attn_q.weight", 2, (int64_t[]){64, 64}, &t));
        if (t) CHECK_EQ_INT(t->type, k ? PG_DTYPE_F16 : PG_DTYPE_F32);
        CHECK_OK(gguf_get_tensor(f, "blk.1.ffn_down.weight", 2, (int64_t[]){172, 64}, &t));
        CHECK_OK(gguf_get_tensor(f, "output_norm.weight", 1, (int64_t[]){64}, &t));
        if (t) CHECK(t->type == PG_DTYPE_F32);
        gguf_close(f);
    }
}

int main(void) {
    test_malformed();
    test_raw_kv_types();
    void *img = NULL;
    size_t size = 0;
    test_round_trip(&img, &size);
    if (img) test_corruption(img, size);
    free(img);
    const char *dir = check_reference_dir();
    if (dir) test_reference(dir);
    return check_done("test_gguf");
}
