/*
 * test_dtype.c — half/bfloat16 conversion (known bit patterns, ties, subnormals, inf/NaN, every
 * half value), Q8_0/Q4_0 blocks quantized by hand from ggml's reference formulas, and pg_vec_dot
 * of all five types against a double-precision dot of the dequantized row.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "pandagpt.h"
#include "check.h"
#include "gguf/dtype.h"

#ifdef __FLT16_MAX__
__extension__ typedef _Float16 f16; /* only for the cross-check below */
#endif

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* The half value of h computed independently, in double. */
static double half_value(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

static void test_fp16_known(void) {
    static const struct { float f; uint16_t h; } cases[] = {
        {1.0f, 0x3c00}, {-2.0f, 0xc000}, {0.0f, 0x0000}, {-0.0f, 0x8000},
        {65504.0f, 0x7bff}, {65519.0f, 0x7bff}, {65520.0f, 0x7c00}, {1e9f, 0x7c00},
        {0x1p-24f, 0x0001}, {0x1p-25f, 0x0000},       /* tie between 0 and 2^-24: to even (0) */
        {0x1.8p-25f, 0x0001}, {0x1.8p-24f, 0x0002},  /* 1.5 * 2^-24: tie, to even (2) */
        {0x1p-14f, 0x0400}, {0x1p-14f - 0x1p-25f, 0x0400}, /* tie 0x3ff/0x400 -> even */
        {0x1.ff8p-15f, 0x03ff}, {0x1.ffcp-15f, 0x0400}, {1e-10f, 0x0000},
        {1.0f + 0x1p-11f, 0x3c00},                    /* tie: 1 (even) */
        {1.0f + 0x3p-11f, 0x3c02},                    /* tie between 0x3c01 and 0x3c02 */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},         /* just above the tie */
        {0.333333343f, 0x3555}, {INFINITY, 0x7c00}, {-INFINITY, 0xfc00},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = pg_fp32_to_fp16(cases[i].f);
        CHECK_MSG(h == cases[i].h, "fp16(%a) = 0x%04x, want 0x%04x", cases[i].f, h, cases[i].h);
    }
    uint16_t hn = pg_fp32_to_fp16(NAN);
    CHECK_MSG((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) && (hn & 0x200), "NaN -> 0x%04x", hn);
    hn = pg_fp32_to_fp16(u2f(0x7f800001)); /* signalling NaN comes out quiet, still NaN */
    CHECK_MSG((hn & 0x7c00) == 0x7c00 && (hn & 0x200), "sNaN -> 0x%04x", hn);
    CHECK(pg_fp16_to_fp32(0x0001) == 0x1p-24f);
    CHECK(pg_fp16_to_fp32(0x7bff) == 65504.0f);
    CHECK(pg_fp16_to_fp32(0xfc00) == -INFINITY);
    CHECK(isnan(pg_fp16_to_fp32(0x7e00)));
    CHECK(f2u(pg_fp16_to_fp32(0x8000)) == 0x80000000u);
}

/* Every half: its float is the exact value, and converts back to itself. Then every midpoint
 * between neighbouring halves (exact in float) and its two float neighbours. */
static void test_fp16_exhaustive(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = pg_fp16_to_fp32((uint16_t)h);
        double want = half_value((uint16_t)h);
        if (isnan(want)) {
            bad += !isnan(f);
            continue;
        }
        bad += (double)f != want || pg_fp32_to_fp16(f) != h;
    }
    CHECK_EQ_INT(bad, 0);
    bad = 0;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        float lo = pg_fp16_to_fp32((uint16_t)h), hi = pg_fp16_to_fp32((uint16_t)(h + 1));
        float mid = (float)(((double)lo + hi) / 2);
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        bad += pg_fp32_to_fp16(mid) != even;
        bad += pg_fp32_to_fp16(u2f(f2u(mid) + 1)) != h + 1;
        bad += pg_fp32_to_fp16(u2f(f2u(mid) - 1)) != (h == 0 && f2u(mid) == 0 ? 0 : h);
        bad += pg_fp32_to_fp16(-mid) != (even | 0x8000);
    }
    CHECK_EQ_INT(bad, 0);
#ifdef __FLT16_MAX__
    /* Cross-check with the compiler's own conversion on random bit patterns. */
    uint64_t s = 88172645463325252ull;
    bad = 0;
    for (int i = 0; i < 2000000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        float f = u2f((uint32_t)s);
        if (isnan(f)) continue;
        f16 r = (f16)f;
        uint16_t want;
        memcpy(&want, &r, 2);
        bad += pg_fp32_to_fp16(f) != want;
    }
    CHECK_EQ_INT(bad, 0);
#endif
}

static void test_bf16(void) {
    CHECK(pg_fp32_to_bf16(1.0f) == 0x3f80);
    CHECK(pg_fp32_to_bf16(-2.0f) == 0xc000);
    CHECK(pg_fp32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);               /* tie -> even */
    CHECK(pg_fp32_to_bf16(1.0f + 0x3p-8f) == 0x3f82);               /* tie -> even (up) */
    CHECK(pg_fp32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81);
    CHECK(pg_fp32_to_bf16(INFINITY) == 0x7f80);
    CHECK(pg_fp32_to_bf16(-INFINITY) == 0xff80);
    CHECK(pg_fp32_to_bf16(u2f(0x7f7fffff)) == 0x7f80);              /* FLT_MAX rounds to inf */
    CHECK(pg_fp32_to_bf16(u2f(0x7f800001)) == 0x7fc0);              /* sNaN made quiet */
    CHECK(pg_fp32_to_bf16(u2f(0xffc12345)) == 0xffc1);
    CHECK(pg_fp32_to_bf16(u2f(0x00018000)) == 0x0002);              /* subnormal kept, tie up */
    CHECK(pg_bf16_to_fp32(0x3f80) == 1.0f);
    CHECK(pg_bf16_to_fp32(0xc0a0) == -5.0f);
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = pg_bf16_to_fp32((uint16_t)h);
        bad += isnan(f) ? !isnan(pg_bf16_to_fp32(pg_fp32_to_bf16(f))) : pg_fp32_to_bf16(f) != h;
    }
    CHECK_EQ_INT(bad, 0);
}

static void check_bytes(const char *what, const uint8_t *got, const uint8_t *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        CHECK_MSG(got[i] == want[i], "%s byte %zu: got 0x%02x, want 0x%02x", what, i, got[i],
                  want[i]);
}

static void test_q8_0(void) {
    /* amax 127: d = 1 exactly, id = 1, so q = roundf(x) (halves away from zero). */
    float a[32] = {127, -127, 2.5f, -2.5f, 0.4f, -0.6f, 1.5f, 100.49f};
    /* amax 63.5: d = 0.5 (0x3800), id = 2. */
    float b[32] = {63.5f, 0.25f, -0.25f, 0.2f, -63.0f};
    float z[32] = {0};
    uint8_t want[3][34] = {{0x00, 0x3c, 127, (uint8_t)-127, 3, (uint8_t)-3, 0, (uint8_t)-1, 2, 100},
                           {0x00, 0x38, 127, 1, (uint8_t)-1, 0, (uint8_t)-126},
                           {0}};
    float x[96];
    memcpy(x, a, sizeof a), memcpy(x + 32, b, sizeof b), memcpy(x + 64, z, sizeof z);
    uint8_t q[3 * 34];
    pg_quantize_row(PG_DTYPE_Q8_0, x, q, 96);
    check_bytes("q8_0 block a", q, want[0], 34);
    check_bytes("q8_0 block b", q + 34, want[1], 34);
    check_bytes("q8_0 zero block", q + 68, want[2], 34);
    float y[96];
    pg_dequantize_row(PG_DTYPE_Q8_0, q, y, 96);
    CHECK(y[0] == 127 && y[1] == -127 && y[2] == 3 && y[5] == -1 && y[7] == 100);
    CHECK(y[32] == 63.5f && y[33] == 0.5f && y[34] == -0.5f && y[36] == -63.0f && y[95] == 0);
}

static void test_q4_0(void) {
    /* Block A: the largest magnitude is -8 (first of two), so d = -8/-8 = 1 and q = (int)(x+8.5),
     * clamped to 15. Block B: +8 comes first, so d = -1 (0xbc00) and -8 clamps to 15. */
    float x[64] = {-8, 7, 7.4f, 0, -0.5f, -0.6f, 0.49f, 0.5f};
    x[16] = 7, x[17] = -8, x[18] = -3;
    float *b = x + 32;
    b[0] = 8, b[1] = -8, b[2] = 1, b[3] = -7;
    uint8_t want_a[18] = {0x00, 0x3c, 0xf0, 0x0f, 0x5f, 0x88, 0x88, 0x87, 0x88, 0x89,
                          0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88};
    uint8_t want_b[18] = {0x00, 0xbc, 0x80, 0x8f, 0x87, 0x8f, 0x88, 0x88, 0x88, 0x88,
                          0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88};
    uint8_t q[36];
    pg_quantize_row(PG_DTYPE_Q4_0, x, q, 64);
    check_bytes("q4_0 block a", q, want_a, 18);
    check_bytes("q4_0 block b", q + 18, want_b, 18);
    float y[64];
    pg_dequantize_row(PG_DTYPE_Q4_0, q, y, 64);
    CHECK(y[0] == -8 && y[1] == 7 && y[2] == 7 && y[3] == 0 && y[5] == -1 && y[7] == 1);
    CHECK(y[16] == 7 && y[17] == -8 && y[18] == -3);
    CHECK(y[32] == 8 && y[33] == -7 && y[34] == 1 && y[35] == -7 && y[40] == 0);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) * 0x1p-24 * 2 - 1);
}

/* Quantization error stays within what the format can represent, for random rows. */
static void test_quant_error(void) {
    enum { N = 4096 };
    static float x[N], y[N];
    static uint8_t q[N * 2];
    for (int i = 0; i < N; i++) x[i] = frand() * (1 + (i / 32) % 7);
    for (int t = 0; t < 2; t++) {
        uint32_t type = t ? PG_DTYPE_Q4_0 : PG_DTYPE_Q8_0;
        pg_quantize_row(type, x, q, N);
        pg_dequantize_row(type, q, y, N);
        int bad = 0;
        for (int blk = 0; blk < N / 32; blk++) {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[blk * 32 + j]));
            /* half a step (a whole step on Q4_0's clamped side) plus the fp16 rounding of d */
            float tol = t ? amax / 8 * 1.01f + amax * 0x1p-9f
                          : amax / 254 * 1.01f + amax * 0x1p-10f;
            for (int j = 0; j < 32; j++) bad += fabsf(x[blk * 32 + j] - y[blk * 32 + j]) > tol;
        }
        CHECK_MSG(bad == 0, "%s: %d elements outside the error bound", pg_dtype_name(type), bad);
    }
}

/* Each implementation of pg_vec_dot (portable; AVX2 where the CPU has it; the dispatching entry
 * point) against a double dot of the dequantized row, over lengths that exercise every tail, and
 * each pg_dequantize_row against the portable one (bit for bit: every value is exact in float).
 * The row starts at an odd multiple of 2 bytes, as rows of a GGUF tensor may. */
typedef float (*vec_dot_fn)(uint32_t, const void *, const float *, int64_t);
typedef void (*dequant_fn)(uint32_t, const void *, float *, int64_t);

static void test_vec_dot(void) {
    static const uint32_t types[] = {PG_DTYPE_F32, PG_DTYPE_F16, PG_DTYPE_BF16, PG_DTYPE_Q8_0,
                                     PG_DTYPE_Q4_0};
    static const int64_t lens[] = {1,  7,  8,  9,  15, 16,  17,  31,  32,  33,   37,
                                   63, 64, 65, 96, 97, 128, 160, 255, 4096, 4096 + 32, 4096 + 37};
    enum { NMAX = 4096 + 64 };
    static float src[NMAX], x[NMAX], deq[NMAX], deq2[NMAX];
    _Alignas(32) static uint8_t rowbuf[NMAX * 4 + 8];
    uint8_t *row = rowbuf + 4; /* element-aligned (as GGUF guarantees) but not vector-aligned */
    struct { const char *name; vec_dot_fn dot; dequant_fn deq; } impl[] = {
        {"generic", pg_vec_dot_generic, pg_dequantize_row_generic},
        {"dispatch", pg_vec_dot, pg_dequantize_row},
        {"avx2", pg_vec_dot_avx2, pg_dequantize_row_avx2},
    };
    const int n_impl = pg_dtype_avx2_usable() ? 3 : 2;
    for (int i = 0; i < NMAX; i++) src[i] = frand() * 3, x[i] = frand();
    for (size_t ti = 0; ti < 5; ti++) {
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            uint32_t t = types[ti];
            int64_t n = lens[li];
            if (n % pg_dtype_block_elems(t)) continue;
            pg_quantize_row(t, src, row, n);
            pg_dequantize_row_generic(t, row, deq, n);
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < n; i++)
                ref += (double)deq[i] * x[i], mag += fabs(deq[i] * x[i]);
            for (int k = 0; k < n_impl; k++) {
                float got = impl[k].dot(t, row, x, n);
                CHECK_MSG(fabs(got - ref) <= 1e-6 * mag + 1e-30,
                          "%s %s n=%lld: dot %.9g, want %.9g", impl[k].name, pg_dtype_name(t),
                          (long long)n, got, ref);
                memset(deq2, 0xff, sizeof deq2);
                impl[k].deq(t, row, deq2, n);
                CHECK_MSG(memcmp(deq, deq2, (size_t)n * sizeof(float)) == 0 && f2u(deq2[n]) == ~0u,
                          "%s %s n=%lld: dequantized row differs from the portable one",
                          impl[k].name, pg_dtype_name(t), (long long)n);
            }
        }
    }
    CHECK(pg_dtype_row_bytes(PG_DTYPE_Q8_0, 64) == 68);
    CHECK(pg_dtype_row_bytes(PG_DTYPE_Q4_0, 64) == 36);
    CHECK(pg_dtype_row_bytes(PG_DTYPE_BF16, 3) == 6);
    CHECK(pg_dtype_row_bytes(3, 32) == 0);
    CHECK(strcmp(pg_dtype_name(3), "Q4_1") == 0 && strcmp(pg_dtype_name(999), "type 999") == 0);
    CHECK(pg_dtype_known_ggml(3) && !pg_dtype_known_ggml(4) && !pg_dtype_known_ggml(999));
}

int main(void) {
    test_fp16_known();
    test_fp16_exhaustive();
    test_bf16();
    test_q8_0();
    test_q4_0();
    test_quant_error();
    test_vec_dot();
    return check_done("test_dtype");
}
