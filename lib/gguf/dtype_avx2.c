/*
 * dtype_avx2.c — AVX2+FMA+F16C versions of pg_vec_dot and pg_dequantize_row, chosen at run time
 * by dtype.c (the library is built for baseline x86-64, so nothing here may run unless the CPU
 * has all three; see pg_dtype_avx2_usable).
 *
 * Same arithmetic as the portable path in dtype.c, which stays the reference: the weights are
 * expanded to float exactly (half, bfloat and block values are all exact in float), activations
 * stay F32 and are never quantized, and products are accumulated in float with FMA across several
 * independent 8-wide accumulators. Block types multiply the scale into a per-block partial sum,
 * as the portable path does. Rows may start at any even offset: every load is unaligned.
 *
 * On other targets or compilers the functions below exist but are never selected.
 */
#include "dtype.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <cpuid.h>
#include <immintrin.h>
#include <string.h>

#define PG_AVX2 __attribute__((target("avx2,fma,f16c")))

/* F16C is read from CPUID leaf 1 (ECX bit 29) because some Clang versions reject "f16c" in
 * __builtin_cpu_supports; the OS saving the YMM registers is already implied by "avx2". */
int pg_dtype_avx2_usable(void) {
    unsigned a, b, c, d;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}

PG_AVX2 static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

PG_AVX2 static inline float block_scale(const uint8_t *b) {
    uint16_t d;
    memcpy(&d, b, 2);
    return _cvtsh_ss(d);
}

/* The block's scale in all 8 lanes: broadcast the half, then convert (no scalar round trip). */
PG_AVX2 static inline __m256 block_scale8(const uint8_t *b) {
    int16_t d;
    memcpy(&d, b, 2);
    return _mm256_cvtph_ps(_mm_set1_epi16(d));
}

/* 8 halves / bfloats / int8 at p, widened to float. */
PG_AVX2 static inline __m256 load8_f16(const uint8_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
PG_AVX2 static inline __m256 load8_bf16(const uint8_t *p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
PG_AVX2 static inline __m256 load8_i8(const void *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

/* The 32 values q-8 of a Q4_0 block as int8: elements 0..15 (low nibbles), 16..31 (high). */
PG_AVX2 static inline void q4_unpack(const uint8_t *qs, __m128i *lo, __m128i *hi) {
    const __m128i m = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    __m128i b = _mm_loadu_si128((const __m128i *)qs);
    *lo = _mm_sub_epi8(_mm_and_si128(b, m), eight);
    *hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), m), eight);
}
PG_AVX2 static inline __m256 i8x8_lo(__m128i v) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
}
PG_AVX2 static inline __m256 i8x8_hi(__m128i v) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(v, v)));
}

/* ---------------------------------------------------------------------------------------------
 * Dot products. 32 elements (or one block) per step into independent accumulators, so the FMA
 * latency is hidden; the < 32 element tail of F32/F16/BF16 goes to the portable code.
 * ------------------------------------------------------------------------------------------- */

PG_AVX2 static float dot_f32(const float *a, const float *x, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(x + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(x + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(x + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(x + i + 24), s3);
    }
    float s = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    return i < n ? s + pg_vec_dot_generic(PG_DTYPE_F32, a + i, x + i, n - i) : s;
}

PG_AVX2 static float dot_half(int bf, const uint8_t *row, const float *x, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    if (bf) {
        for (; i + 32 <= n; i += 32) {
            const uint8_t *p = row + 2 * i;
            s0 = _mm256_fmadd_ps(load8_bf16(p), _mm256_loadu_ps(x + i), s0);
            s1 = _mm256_fmadd_ps(load8_bf16(p + 16), _mm256_loadu_ps(x + i + 8), s1);
            s2 = _mm256_fmadd_ps(load8_bf16(p + 32), _mm256_loadu_ps(x + i + 16), s2);
            s3 = _mm256_fmadd_ps(load8_bf16(p + 48), _mm256_loadu_ps(x + i + 24), s3);
        }
    } else {
        for (; i + 32 <= n; i += 32) {
            const uint8_t *p = row + 2 * i;
            s0 = _mm256_fmadd_ps(load8_f16(p), _mm256_loadu_ps(x + i), s0);
            s1 = _mm256_fmadd_ps(load8_f16(p + 16), _mm256_loadu_ps(x + i + 8), s1);
            s2 = _mm256_fmadd_ps(load8_f16(p + 32), _mm256_loadu_ps(x + i + 16), s2);
            s3 = _mm256_fmadd_ps(load8_f16(p + 48), _mm256_loadu_ps(x + i + 24), s3);
        }
    }
    float s = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    if (i < n)
        s += pg_vec_dot_generic(bf ? PG_DTYPE_BF16 : PG_DTYPE_F16, row + 2 * i, x + i, n - i);
    return s;
}

/* Per block: two partial sums of q*x (short dependency chains), then acc += d * sum. Two blocks
 * per step keep two scale accumulators in flight. */
PG_AVX2 static inline __m256 q8_block(const uint8_t *b, const float *x, __m256 acc) {
    const int8_t *qs = (const int8_t *)(b + 2);
    __m256 p0 = _mm256_mul_ps(load8_i8(qs), _mm256_loadu_ps(x));
    __m256 p1 = _mm256_mul_ps(load8_i8(qs + 8), _mm256_loadu_ps(x + 8));
    p0 = _mm256_fmadd_ps(load8_i8(qs + 16), _mm256_loadu_ps(x + 16), p0);
    p1 = _mm256_fmadd_ps(load8_i8(qs + 24), _mm256_loadu_ps(x + 24), p1);
    return _mm256_fmadd_ps(block_scale8(b), _mm256_add_ps(p0, p1), acc);
}

PG_AVX2 static inline __m256 q4_block(const uint8_t *b, const float *x, __m256 acc) {
    const __m256i m = _mm256_set1_epi32(0x0f), eight = _mm256_set1_epi32(8);
    __m256i v0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b + 2)));
    __m256i v1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b + 10)));
    __m256 q0 = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v0, m), eight));
    __m256 q1 = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v1, m), eight));
    __m256 q2 = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(v0, 4), eight));
    __m256 q3 = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(v1, 4), eight));
    __m256 p = _mm256_mul_ps(q0, _mm256_loadu_ps(x));
    p = _mm256_fmadd_ps(q1, _mm256_loadu_ps(x + 8), p);
    p = _mm256_fmadd_ps(q2, _mm256_loadu_ps(x + 16), p);
    p = _mm256_fmadd_ps(q3, _mm256_loadu_ps(x + 24), p);
    return _mm256_fmadd_ps(block_scale8(b), p, acc);
}

/* acc += one Q8_0 (q4 = 0) or Q4_0 (q4 = 1) block of row i times x. */
PG_AVX2 static inline __m256 quant_block(int q4, const uint8_t *row, const float *x, int64_t i,
                                         __m256 acc) {
    return q4 ? q4_block(row + i * 18, x + i * PG_QK, acc)
              : q8_block(row + i * 34, x + i * PG_QK, acc);
}

/* Q8_0 / Q4_0 rows: two blocks per step into two accumulators. q4 is a constant at every call,
 * so each call compiles to its own loop. */
PG_AVX2 static inline float dot_blocks(int q4, const uint8_t *row, const float *x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    const int64_t nb = n / PG_QK;
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        a0 = quant_block(q4, row, x, i, a0);
        a1 = quant_block(q4, row, x, i + 1, a1);
    }
    if (i < nb) a0 = quant_block(q4, row, x, i, a0);
    return hsum(_mm256_add_ps(a0, a1));
}

PG_AVX2 float pg_vec_dot_avx2(uint32_t t, const void *row, const float *x, int64_t n) {
    switch (t) {
    case PG_DTYPE_F32: return dot_f32(row, x, n);
    case PG_DTYPE_F16: return dot_half(0, row, x, n);
    case PG_DTYPE_BF16: return dot_half(1, row, x, n);
    case PG_DTYPE_Q8_0: return dot_blocks(0, row, x, n);
    case PG_DTYPE_Q4_0: return dot_blocks(1, row, x, n);
    }
    return 0.0f;
}

/* ---------------------------------------------------------------------------------------------
 * Dequantization (the batched matmul expands a block of rows once per batch).
 * ------------------------------------------------------------------------------------------- */

PG_AVX2 void pg_dequantize_row_avx2(uint32_t t, const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    int64_t i = 0;
    switch (t) {
    case PG_DTYPE_F16:
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8_f16(s + 2 * i));
        break;
    case PG_DTYPE_BF16:
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8_bf16(s + 2 * i));
        break;
    case PG_DTYPE_Q8_0:
        for (; i < n; i += PG_QK, s += 34) {
            const __m256 d = _mm256_set1_ps(block_scale(s));
            for (int j = 0; j < PG_QK; j += 8)
                _mm256_storeu_ps(dst + i + j, _mm256_mul_ps(load8_i8(s + 2 + j), d));
        }
        return;
    case PG_DTYPE_Q4_0:
        for (; i < n; i += PG_QK, s += 18) {
            const __m256 d = _mm256_set1_ps(block_scale(s));
            __m128i lo, hi;
            q4_unpack(s + 2, &lo, &hi);
            _mm256_storeu_ps(dst + i, _mm256_mul_ps(i8x8_lo(lo), d));
            _mm256_storeu_ps(dst + i + 8, _mm256_mul_ps(i8x8_hi(lo), d));
            _mm256_storeu_ps(dst + i + 16, _mm256_mul_ps(i8x8_lo(hi), d));
            _mm256_storeu_ps(dst + i + 24, _mm256_mul_ps(i8x8_hi(hi), d));
        }
        return;
    default: pg_dequantize_row_generic(t, src, dst, n); return; /* F32 is a copy */
    }
    if (i < n) pg_dequantize_row_generic(t, s + 2 * i, dst + i, n - i); /* F16/BF16 tail */
}

#else /* not x86-64 GCC/Clang: never selected */

int pg_dtype_avx2_usable(void) { return 0; }

float pg_vec_dot_avx2(uint32_t t, const void *row, const float *x, int64_t n) {
    return pg_vec_dot_generic(t, row, x, n);
}

void pg_dequantize_row_avx2(uint32_t t, const void *src, float *dst, int64_t n) {
    pg_dequantize_row_generic(t, src, dst, n);
}

#endif
