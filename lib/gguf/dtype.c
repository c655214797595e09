/*
 * dtype.c — ggml's tensor encodings: half/bfloat conversion, Q8_0/Q4_0 (de)quantization with
 * ggml's reference quantizers, and pg_vec_dot, the inner loop of the CPU matmul.
 *
 * Everything here is portable C11 (no F16C, no intrinsics) and is the reference; on x86-64 CPUs
 * with AVX2+FMA+F16C, pg_vec_dot and pg_dequantize_row hand over to dtype_avx2.c. The dot
 * products keep PG_LANES independent float accumulators so that gcc -O2 can vectorise them
 * without -ffast-math: each lane is its own sum, so no reassociation is needed, and the result
 * does not depend on the vector width the compiler picked.
 */
#include "dtype.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define PG_LANES 16

/* ---------------------------------------------------------------------------------------------
 * Type table
 * ------------------------------------------------------------------------------------------- */

int pg_dtype_supported(uint32_t t) {
    return t == PG_DTYPE_F32 || t == PG_DTYPE_F16 || t == PG_DTYPE_BF16 || t == PG_DTYPE_Q8_0 ||
           t == PG_DTYPE_Q4_0;
}

/* ggml's type names by id (ggml.h, 2025); NULL marks ids ggml removed or never used. Known
 * names let the reader say "Q4_1 is not supported" instead of "unknown type 3". */
static const char *const ggml_type_names[] = {
    "F32", "F16", "Q4_0", "Q4_1", NULL, NULL, "Q5_0", "Q5_1", "Q8_0", "Q8_1",
    "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
    "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
    "BF16", NULL, NULL, NULL, "TQ1_0", "TQ2_0", NULL, NULL, NULL, "MXFP4",
};
#define N_GGML_TYPES (sizeof ggml_type_names / sizeof ggml_type_names[0])

int pg_dtype_known_ggml(uint32_t t) { return t < N_GGML_TYPES && ggml_type_names[t] != NULL; }

const char *pg_dtype_name(uint32_t t) {
    if (pg_dtype_known_ggml(t)) return ggml_type_names[t];
    /* Per thread, like the error text, so concurrent loaders do not garble each other. */
    static _Thread_local char buf[24];
    snprintf(buf, sizeof buf, "type %u", (unsigned)t);
    return buf;
}

int64_t pg_dtype_block_elems(uint32_t t) {
    switch (t) {
    case PG_DTYPE_F32: case PG_DTYPE_F16: case PG_DTYPE_BF16: return 1;
    case PG_DTYPE_Q8_0: case PG_DTYPE_Q4_0: return PG_QK;
    }
    return 0;
}

size_t pg_dtype_block_bytes(uint32_t t) {
    switch (t) {
    case PG_DTYPE_F32: return 4;
    case PG_DTYPE_F16: case PG_DTYPE_BF16: return 2;
    case PG_DTYPE_Q8_0: return sizeof(pg_block_q8_0);
    case PG_DTYPE_Q4_0: return sizeof(pg_block_q4_0);
    }
    return 0;
}

size_t pg_dtype_row_bytes(uint32_t t, int64_t n) {
    int64_t be = pg_dtype_block_elems(t);
    if (be == 0 || n < 0) return 0;
    return (size_t)(n / be) * pg_dtype_block_bytes(t);
}

_Static_assert(sizeof(pg_block_q8_0) == 34, "Q8_0 block must be ggml's 34 bytes");
_Static_assert(sizeof(pg_block_q4_0) == 18, "Q4_0 block must be ggml's 18 bytes");

/* ---------------------------------------------------------------------------------------------
 * Half and bfloat16
 * ------------------------------------------------------------------------------------------- */

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Written with masks rather than branches so the F16 dot loop vectorises. Subnormals use the
 * usual trick: give them the exponent of 2^-14, then subtract 2^-14 (exact). */
static inline float fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t em = h & 0x7fffu;
    uint32_t norm = (em << 13) + 0x38000000u;               /* rebias the exponent 15 -> 127 */
    uint32_t infnan = -(uint32_t)(em >= 0x7c00u) & 0x38000000u; /* all-ones exponent stays so */
    uint32_t sub = f32_bits(bits_f32((em << 13) + 0x38800000u) - 0x1p-14f);
    uint32_t is_sub = -(uint32_t)(em < 0x0400u);
    return bits_f32((((norm + infnan) & ~is_sub) | (sub & is_sub)) | sign);
}

float pg_fp16_to_fp32(uint16_t h) { return fp16_to_fp32(h); }

/* Integer-only, so the result does not depend on the FPU rounding mode. */
uint16_t pg_fp32_to_fp16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN: quiet it and keep the top payload bits, as F16C does */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) /* >= 65520 rounds to infinity (65504 is odd, so the tie goes up) */
        return (uint16_t)(sign | 0x7c00u);
    if (ax >= 0x38800000u) { /* normal half: rebias, then round the 13 dropped bits to even */
        uint32_t a = ax - 0x38000000u;
        return (uint16_t)(sign | ((a + 0xfffu + ((a >> 13) & 1u)) >> 13));
    }
    /* Subnormal half: value in units of 2^-24 is m >> shift, rounded to even. */
    uint32_t e = ax >> 23;
    if (e < 102) return sign; /* below 2^-25: rounds to zero */
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    q += (rem > half) || (rem == half && (q & 1u));
    return (uint16_t)(sign | q); /* q may carry into 0x400: the smallest normal, correctly */
}

float pg_bf16_to_fp32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

/* ggml_compute_fp32_to_bf16: round to nearest even, NaN made quiet, subnormals kept. */
uint16_t pg_fp32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

/* ---------------------------------------------------------------------------------------------
 * Blocks. Rows are read as bytes (scales through memcpy): a row may start at any even offset.
 * ------------------------------------------------------------------------------------------- */

static inline float block_scale(const uint8_t *b) {
    uint16_t d;
    memcpy(&d, b, 2);
    return fp16_to_fp32(d);
}

static inline void dequant_q8_0(const uint8_t *b, float *restrict y) {
    float d = block_scale(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < PG_QK; j++) y[j] = qs[j] * d;
}

static inline void dequant_q4_0(const uint8_t *b, float *restrict y) {
    float d = block_scale(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < PG_QK / 2; j++) {
        y[j] = ((qs[j] & 0x0f) - 8) * d;
        y[j + PG_QK / 2] = ((qs[j] >> 4) - 8) * d;
    }
}

static inline void load_f16(const uint8_t *src, float *restrict y, int n) {
    for (int j = 0; j < n; j++) {
        uint16_t h;
        memcpy(&h, src + 2 * j, 2);
        y[j] = fp16_to_fp32(h);
    }
}

static inline void load_bf16(const uint8_t *src, float *restrict y, int n) {
    for (int j = 0; j < n; j++) {
        uint16_t h;
        memcpy(&h, src + 2 * j, 2);
        y[j] = bits_f32((uint32_t)h << 16);
    }
}

/* quantize_row_q8_0_ref. MAX is written as ggml's macro so NaNs propagate the same way. */
static void quant_q8_0(const float *x, uint8_t *b) {
    float amax = 0.0f;
    for (int j = 0; j < PG_QK; j++) {
        float v = fabsf(x[j]);
        amax = amax > v ? amax : v;
    }
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    uint16_t dh = pg_fp32_to_fp16(d);
    memcpy(b, &dh, 2);
    for (int j = 0; j < PG_QK; j++) b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

/* quantize_row_q4_0_ref: the scale comes from the signed value of largest magnitude (the first
 * one on ties) and maps it to -8, so the full 16-level range is used on that side. */
static void quant_q4_0(const float *x, uint8_t *b) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < PG_QK; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    uint16_t dh = pg_fp32_to_fp16(d);
    memcpy(b, &dh, 2);
    for (int j = 0; j < PG_QK / 2; j++) {
        int8_t q0 = (int8_t)(x[j] * id + 8.5f);
        int8_t q1 = (int8_t)(x[j + PG_QK / 2] * id + 8.5f);
        uint8_t u0 = (uint8_t)(q0 < 15 ? q0 : 15), u1 = (uint8_t)(q1 < 15 ? q1 : 15);
        b[2 + j] = (uint8_t)(u0 | (u1 << 4));
    }
}

void pg_dequantize_row_generic(uint32_t t, const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    switch (t) {
    case PG_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case PG_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = fp16_to_fp32(h);
        }
        break;
    case PG_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = pg_bf16_to_fp32(h);
        }
        break;
    case PG_DTYPE_Q8_0:
        for (int64_t i = 0; i < n / PG_QK; i++) dequant_q8_0(s + i * 34, dst + i * PG_QK);
        break;
    case PG_DTYPE_Q4_0:
        for (int64_t i = 0; i < n / PG_QK; i++) dequant_q4_0(s + i * 18, dst + i * PG_QK);
        break;
    }
}

void pg_quantize_row(uint32_t t, const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    switch (t) {
    case PG_DTYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case PG_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = pg_fp32_to_fp16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        break;
    case PG_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = pg_fp32_to_bf16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        break;
    case PG_DTYPE_Q8_0:
        for (int64_t i = 0; i < n / PG_QK; i++) quant_q8_0(src + i * PG_QK, d + i * 34);
        break;
    case PG_DTYPE_Q4_0:
        for (int64_t i = 0; i < n / PG_QK; i++) quant_q4_0(src + i * PG_QK, d + i * 18);
        break;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Dot products, accumulated lane-wise. F32/F16/BF16 decode 32 elements into a local buffer
 * first (measured faster than decoding inside the multiply loop); the block types fold the scale
 * in per block instead (measured ~1.7x faster than dequantizing to a buffer).
 * ------------------------------------------------------------------------------------------- */

static inline void acc32(float acc[PG_LANES], const float *restrict a, const float *restrict x) {
    for (int j = 0; j < PG_QK; j += PG_LANES)
        for (int k = 0; k < PG_LANES; k++) acc[k] += a[j + k] * x[j + k];
}

static inline float lanes_sum(const float acc[PG_LANES]) {
    float s[PG_LANES / 2];
    for (int k = 0; k < PG_LANES / 2; k++) s[k] = acc[k] + acc[k + PG_LANES / 2];
    for (int w = PG_LANES / 4; w >= 1; w /= 2)
        for (int k = 0; k < w; k++) s[k] += s[k + w];
    return s[0];
}

static float dot_f32(const float *restrict a, const float *restrict x, int64_t n) {
    float acc[PG_LANES] = {0};
    int64_t i = 0;
    for (; i + PG_QK <= n; i += PG_QK) acc32(acc, a + i, x + i);
    float tail = 0.0f;
    for (; i < n; i++) tail += a[i] * x[i];
    return lanes_sum(acc) + tail;
}

static float dot_half(int bf, const uint8_t *row, const float *restrict x, int64_t n) {
    float acc[PG_LANES] = {0}, buf[PG_QK];
    int64_t i = 0;
    for (; i + PG_QK <= n; i += PG_QK) {
        if (bf) load_bf16(row + 2 * i, buf, PG_QK);
        else load_f16(row + 2 * i, buf, PG_QK);
        acc32(acc, buf, x + i);
    }
    float tail = 0.0f;
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, row + 2 * i, 2);
        tail += (bf ? pg_bf16_to_fp32(h) : fp16_to_fp32(h)) * x[i];
    }
    return lanes_sum(acc) + tail;
}

/* Per block, lane k takes elements k and k+16: the scale multiplies a sum of two products, so
 * nothing is dequantized to memory. */
static float dot_q8_0(const uint8_t *row, const float *restrict x, int64_t n) {
    float acc[PG_LANES] = {0};
    for (int64_t i = 0; i < n / PG_QK; i++, row += 34, x += PG_QK) {
        const float d = block_scale(row);
        const int8_t *qs = (const int8_t *)(row + 2);
        for (int k = 0; k < PG_LANES; k++)
            acc[k] += d * (qs[k] * x[k] + qs[k + PG_LANES] * x[k + PG_LANES]);
    }
    return lanes_sum(acc);
}

static float dot_q4_0(const uint8_t *row, const float *restrict x, int64_t n) {
    float acc[PG_LANES] = {0};
    for (int64_t i = 0; i < n / PG_QK; i++, row += 18, x += PG_QK) {
        const float d = block_scale(row);
        const uint8_t *qs = row + 2;
        for (int k = 0; k < PG_LANES; k++)
            acc[k] += d * (((qs[k] & 0x0f) - 8) * x[k] + ((qs[k] >> 4) - 8) * x[k + PG_LANES]);
    }
    return lanes_sum(acc);
}

float pg_vec_dot_generic(uint32_t t, const void *row, const float *x, int64_t n) {
    switch (t) {
    case PG_DTYPE_F32: return dot_f32(row, x, n);
    case PG_DTYPE_F16: return dot_half(0, row, x, n);
    case PG_DTYPE_BF16: return dot_half(1, row, x, n);
    case PG_DTYPE_Q8_0: return dot_q8_0(row, x, n);
    case PG_DTYPE_Q4_0: return dot_q4_0(row, x, n);
    }
    return 0.0f;
}

/* ---------------------------------------------------------------------------------------------
 * Run-time dispatch. The library is built for the baseline ISA, so whether the AVX2 kernels may
 * run is asked of the CPU once. The cache is not mutable state in any meaningful sense: it only
 * memoises a hardware fact, every thread that races to fill it computes and stores the same
 * value, and the atomic makes the racing loads and stores well defined (relaxed suffices: no
 * other data is published through it).
 * ------------------------------------------------------------------------------------------- */

static _Atomic int avx2_cache = -1; /* -1 not asked yet, else pg_dtype_avx2_usable() */

static inline int use_avx2(void) {
    int v = atomic_load_explicit(&avx2_cache, memory_order_relaxed);
    if (v < 0) {
        v = pg_dtype_avx2_usable();
        atomic_store_explicit(&avx2_cache, v, memory_order_relaxed);
    }
    return v;
}

void pg_dequantize_row(uint32_t t, const void *src, float *dst, int64_t n) {
    if (t != PG_DTYPE_F32 && use_avx2()) pg_dequantize_row_avx2(t, src, dst, n);
    else pg_dequantize_row_generic(t, src, dst, n);
}

float pg_vec_dot(uint32_t t, const void *row, const float *x, int64_t n) {
    return use_avx2() ? pg_vec_dot_avx2(t, row, x, n) : pg_vec_dot_generic(t, row, x, n);
}
