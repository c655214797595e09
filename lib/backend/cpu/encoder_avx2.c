/*
 * encoder_avx2.c — AVX2+FMA kernels of the encoder ops (contract in encoder_avx2.h): blocked
 * attention_full, exact GELU, LayerNorm rows, bias adds, and the vector expf / erff under them.
 * Chosen at run time by the CPU backend; every function carries its own target attribute, as in
 * gemm_avx2.c, since the library is built for baseline x86-64.
 *
 * attention_full, per work item (head h, queries t0..t1-1 of the block):
 *   pack      when h changes: Kp[s][d][16] = K[16s + i][d] (keys in strips of 16, transposed,
 *             zero past n_kv) and Vp[ds][j][16] = V[j][16ds + i] (dims in strips of 16, zero past
 *             head_dim): contiguous panels, so that the products below never walk the fused QKV
 *             rows (3E floats apart, a stride that maps onto few cache sets)
 *   scores    Qp = scale·Q of the block (compact), S[r][16s..] = Qp·Kp[s] for each strip s of
 *             the keys this block sees: strips outer, so a strip (head_dim x 16 floats) stays in
 *             L1 over the block's tiles of 6 queries
 *   softmax   per row over its keys (fewer under causal): max, p = exp(s - max) in 8 lanes with
 *             the lanes past the row's keys at -inf (so p = 0 there), sum over 8 float lanes
 *   output    O[r][16ds..] = (P·Vp[ds]) / sum[r], dim strips outer (a strip of V, n_kv x 16
 *             floats, and the block's P stay in L1); under causal every row of the block runs
 *             over the keys of its last one, with p = 0 past its own
 * Both products run on one microkernel: a 6 x 16 tile of the result in 12 ymm accumulators,
 * per k two loads of the packed operand and six broadcasts, as gemm_avx2.c's.
 *
 * On other targets or compilers the functions below exist but are never selected.
 */
#include "backend/cpu/encoder_avx2.h"

#include <math.h>
#include <string.h>

int64_t pg_attn_full_items(int n_q, int n_head) {
    return (int64_t)n_head * ((n_q + PG_ATTN_QB - 1) / PG_ATTN_QB);
}

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

size_t pg_attn_full_scratch_floats(int n_kv, int head_dim) {
    const size_t kv = (size_t)n_kv, hd = (size_t)head_dim;
    const size_t kp = pad16(kv) * hd, vp = pad16(hd) * kv, s = PG_ATTN_QB * pad16(kv);
    const size_t qp = pad16(PG_ATTN_QB * hd), inv = PG_ATTN_QB;
    return pad16(kp) + pad16(vp) + s + qp + pad16(inv);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#define PG_AVX2 __attribute__((target("avx2,fma")))
#define PG_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

#define MR 6 /* query rows per tile (PG_ATTN_QB is a multiple) */

/* ---- vector math ------------------------------------------------------------------------------ */

/* expf in 8 lanes (see pg_expf_avx2). The clamps keep NaN: max/min return their second operand
 * when either is NaN. */
PG_AVX2_INLINE __m256 exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x);
    x = _mm256_min_ps(_mm256_set1_ps(89.0f), x);
    const __m256 nf = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    /* r = x - n·ln2 with ln2 = C1 + C2, C1 short enough that n·C1 is exact (Cephes) */
    __m256 r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 y = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
    /* × 2^n as 2^(n/2) · 2^(n - n/2): both factors normal for n in [-150, 128], so results in
     * the subnormals round once and 2^128 overflows to inf */
    const __m256i n = _mm256_cvtps_epi32(nf);
    const __m256i n1 = _mm256_srai_epi32(n, 1), n2 = _mm256_sub_epi32(n, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
}

/* Where the two ranges of erf8 meet (Juffa's split for erff). */
#define ERF_SPLIT 0.921875f

/* erff in 8 lanes (see pg_erff_avx2). Coefficients: weighted minimax fits (Lawson's algorithm
 * against mpmath) of R(s) = erf(√s)/√s - 1 on [0, ERF_SPLIT²] and of Q(t) = log(erfc(t)) on
 * [ERF_SPLIT, 4], each error weighted by how it reaches erf's relative error, rounded to
 * float. */
PG_AVX2_INLINE __m256 erf8(__m256 x) {
    const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
    const __m256 t = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    /* |x| <= ERF_SPLIT: x + x·R(x²) */
    const __m256 s = _mm256_mul_ps(x, x);
    __m256 r = _mm256_set1_ps(-5.990853533148766e-4f);
    r = _mm256_fmadd_ps(r, s, _mm256_set1_ps(4.993180278688669e-3f));
    r = _mm256_fmadd_ps(r, s, _mm256_set1_ps(-2.6766616851091385e-2f));
    r = _mm256_fmadd_ps(r, s, _mm256_set1_ps(1.128181591629982e-1f));
    r = _mm256_fmadd_ps(r, s, _mm256_set1_ps(-3.7612494826316833e-1f));
    r = _mm256_fmadd_ps(r, s, _mm256_set1_ps(1.2837915122509003e-1f));
    const __m256 small = _mm256_fmadd_ps(x, r, x);
    /* |x| > ERF_SPLIT: ±(1 - exp(Q(min(|x|, 4)))); erfc(4) < half an ulp of 1 */
    const __m256 u = _mm256_min_ps(_mm256_set1_ps(4.0f), t);
    __m256 q = _mm256_set1_ps(1.9572085875552148e-4f);
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(-3.0410948675125837e-3f));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(2.2218458354473114e-2f));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(-1.039140373468399e-1f));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(-6.37202262878418e-1f));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(-1.1276637315750122f));
    q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(-1.985525741474703e-4f));
    const __m256 big = _mm256_or_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), exp8(q)), sign);
    const __m256 in_small = _mm256_cmp_ps(t, _mm256_set1_ps(ERF_SPLIT), _CMP_LE_OQ);
    return _mm256_blendv_ps(big, small, in_small);
}

/* The first n of 8 lanes (n < 8) as a maskload / maskstore mask. */
PG_AVX2_INLINE __m256i tail_mask(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

PG_AVX2 void pg_expf_avx2(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        const __m256i m = tail_mask(n - i);
        _mm256_maskstore_ps(y + i, m, exp8(_mm256_maskload_ps(x + i, m)));
    }
}

PG_AVX2 void pg_erff_avx2(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, erf8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        const __m256i m = tail_mask(n - i);
        _mm256_maskstore_ps(y + i, m, erf8(_mm256_maskload_ps(x + i, m)));
    }
}

/* ---- elementwise and rows --------------------------------------------------------------------- */

PG_AVX2_INLINE __m256 gelu8(__m256 x) {
    const __m256 e = erf8(_mm256_mul_ps(x, _mm256_set1_ps((float)M_SQRT1_2)));
    return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)),
                         _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

PG_AVX2 void pg_gelu_avx2(float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, gelu8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        const __m256i m = tail_mask(n - i);
        _mm256_maskstore_ps(x + i, m, gelu8(_mm256_maskload_ps(x + i, m)));
    }
}

PG_AVX2 void pg_add_avx2(float *y, const float *bias, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(bias + i)));
        _mm256_storeu_ps(y + i + 8,
                         _mm256_add_ps(_mm256_loadu_ps(y + i + 8), _mm256_loadu_ps(bias + i + 8)));
    }
    for (; i < n; i++) y[i] += bias[i];
}

PG_AVX2_INLINE double hsum4d(__m256d v) {
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

PG_AVX2 void pg_layernorm_row_avx2(float *y, const float *x, const float *w, const float *bias,
                                   int dim, float eps) {
    __m256d a0 = _mm256_setzero_pd(), a1 = a0;
    int i = 0;
    for (; i + 8 <= dim; i += 8) {
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm_loadu_ps(x + i)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4)));
    }
    double sum = hsum4d(_mm256_add_pd(a0, a1));
    for (; i < dim; i++) sum += (double)x[i];
    const double mean = sum / dim;
    const __m256d mv = _mm256_set1_pd(mean);
    a0 = a1 = _mm256_setzero_pd();
    for (i = 0; i + 8 <= dim; i += 8) {
        const __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i)), mv);
        const __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 4)), mv);
        a0 = _mm256_fmadd_pd(d0, d0, a0);
        a1 = _mm256_fmadd_pd(d1, d1, a1);
    }
    double var = hsum4d(_mm256_add_pd(a0, a1));
    for (; i < dim; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
    const double rstd = 1.0 / sqrt(var / dim + (double)eps);
    const __m256d rv = _mm256_set1_pd(rstd);
    for (i = 0; i + 8 <= dim; i += 8) {
        const __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i)), mv);
        const __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 4)), mv);
        const __m256 n = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_mul_pd(d1, rv)),
                                         _mm256_cvtpd_ps(_mm256_mul_pd(d0, rv)));
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_mul_ps(n, _mm256_loadu_ps(w + i)),
                                              _mm256_loadu_ps(bias + i)));
    }
    for (; i < dim; i++) y[i] = (float)(((double)x[i] - mean) * rstd) * w[i] + bias[i];
}

/* ---- attention_full: packing -------------------------------------------------------------- */

/* rows[0..7] (8 x 8 floats) transposed into dst + j*16 for j < 8 (gemm_avx2.c's). */
PG_AVX2_INLINE void transpose8_store(__m256 r0, __m256 r1, __m256 r2, __m256 r3, __m256 r4,
                                     __m256 r5, __m256 r6, __m256 r7, float *dst) {
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
    _mm256_storeu_ps(dst + 0 * 16, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * 16, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * 16, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * 16, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * 16, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * 16, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * 16, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * 16, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* kp[s][d][i] = k[(16s + i)·ld + d] for d < hd, zero for keys at or past n. */
PG_AVX2 static void pack_keys(int n, int hd, const float *k, size_t ld, float *kp) {
    for (int s = 0; s < n; s += 16) {
        const int nr = n - s < 16 ? n - s : 16;
        const float *ks = k + (size_t)s * ld;
        float *p = kp + (size_t)s * (size_t)hd;
        int d = 0;
        if (nr == 16)
            for (; d + 8 <= hd; d += 8)
                for (int h = 0; h < 16; h += 8) {
                    const float *r = ks + (size_t)h * ld + d;
                    transpose8_store(_mm256_loadu_ps(r), _mm256_loadu_ps(r + ld),
                                     _mm256_loadu_ps(r + 2 * ld), _mm256_loadu_ps(r + 3 * ld),
                                     _mm256_loadu_ps(r + 4 * ld), _mm256_loadu_ps(r + 5 * ld),
                                     _mm256_loadu_ps(r + 6 * ld), _mm256_loadu_ps(r + 7 * ld),
                                     p + d * 16 + h);
                }
        for (; d < hd; d++)
            for (int i = 0; i < 16; i++) p[d * 16 + i] = i < nr ? ks[(size_t)i * ld + d] : 0.0f;
    }
}

/* vp[ds][j][i] = v[j·ld + 16ds + i] for j < n, zero for dims at or past hd. */
PG_AVX2 static void pack_values(int n, int hd, const float *v, size_t ld, float *vp) {
    for (int ds = 0; ds < hd; ds += 16) {
        const int nd = hd - ds < 16 ? hd - ds : 16;
        float *p = vp + (size_t)ds * (size_t)n;
        if (nd == 16) {
            for (int j = 0; j < n; j++) {
                const float *r = v + (size_t)j * ld + ds;
                _mm256_storeu_ps(p + j * 16, _mm256_loadu_ps(r));
                _mm256_storeu_ps(p + j * 16 + 8, _mm256_loadu_ps(r + 8));
            }
            continue;
        }
        for (int j = 0; j < n; j++)
            for (int i = 0; i < 16; i++) p[j * 16 + i] = i < nd ? v[(size_t)j * ld + ds + i] : 0.0f;
    }
}

/* ---- attention_full: the microkernel -------------------------------------------------------- */

/* c[r][0..1] = Σ_k a[r][k]·b[k][0..15] for r < rows (a constant at every call site, so each row
 * count gets its own register allocation; rows past it are left zero); b advances 16 floats per
 * k. */
PG_AVX2_INLINE void microkernel(const int rows, int kc, const float *a, size_t lda,
                                const float *b, __m256 c[MR][2]) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    /* rows past `rows` are never read: their pointers only stay inside a */
    const float *a0 = a, *a1 = rows > 1 ? a + lda : a, *a2 = rows > 2 ? a + 2 * lda : a;
    const float *a3 = rows > 3 ? a + 3 * lda : a, *a4 = rows > 4 ? a + 4 * lda : a;
    const float *a5 = rows > 5 ? a + 5 * lda : a;
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++, b += 16) {
        const __m256 w0 = _mm256_loadu_ps(b), w1 = _mm256_loadu_ps(b + 8);
        __m256 x;
#define ROW(r)                                                                                 \
    if (rows > r) {                                                                            \
        x = _mm256_broadcast_ss(a##r + k);                                                     \
        c##r##0 = _mm256_fmadd_ps(x, w0, c##r##0);                                             \
        c##r##1 = _mm256_fmadd_ps(x, w1, c##r##1);                                             \
    }
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
    }
    c[0][0] = c00, c[0][1] = c01, c[1][0] = c10, c[1][1] = c11, c[2][0] = c20, c[2][1] = c21;
    c[3][0] = c30, c[3][1] = c31, c[4][0] = c40, c[4][1] = c41, c[5][0] = c50, c[5][1] = c51;
}

/* s[r][0..15] = Σ_d qp[r][d]·kp[d][0..15]: the scores of rows queries against one key strip. */
PG_AVX2_INLINE void scores_tile(const int rows, int hd, const float *qp, const float *kp,
                                float *s, size_t lds) {
    __m256 c[MR][2];
    microkernel(rows, hd, qp, (size_t)hd, kp, c);
    for (int r = 0; r < rows; r++) {
        _mm256_storeu_ps(s + (size_t)r * lds, c[r][0]);
        _mm256_storeu_ps(s + (size_t)r * lds + 8, c[r][1]);
    }
}

/* o[r][0..nd-1] = inv[r]·Σ_j p[r][j]·vp[j][0..15] over the lim keys of the block. */
PG_AVX2_INLINE void output_tile(const int rows, int lim, const float *p, size_t ldp,
                                const float *vp, const float *inv, float *o, size_t ldo,
                                int nd) {
    __m256 c[MR][2];
    microkernel(rows, lim, p, ldp, vp, c);
    for (int r = 0; r < rows; r++) {
        const __m256 sc = _mm256_broadcast_ss(inv + r);
        const __m256 lo = _mm256_mul_ps(c[r][0], sc), hi = _mm256_mul_ps(c[r][1], sc);
        float *orow = o + (size_t)r * ldo;
        if (nd == 16) {
            _mm256_storeu_ps(orow, lo);
            _mm256_storeu_ps(orow + 8, hi);
        } else {
            float tmp[16];
            _mm256_storeu_ps(tmp, lo);
            _mm256_storeu_ps(tmp + 8, hi);
            memcpy(orow, tmp, (size_t)nd * sizeof(float));
        }
    }
}

PG_AVX2 static void scores_rows(int rows, int hd, const float *qp, const float *kp, float *s,
                                size_t lds) {
    switch (rows) {
    case 6: scores_tile(6, hd, qp, kp, s, lds); break;
    case 5: scores_tile(5, hd, qp, kp, s, lds); break;
    case 4: scores_tile(4, hd, qp, kp, s, lds); break;
    case 3: scores_tile(3, hd, qp, kp, s, lds); break;
    case 2: scores_tile(2, hd, qp, kp, s, lds); break;
    default: scores_tile(1, hd, qp, kp, s, lds); break;
    }
}

PG_AVX2 static void output_rows(int rows, int lim, const float *p, size_t ldp, const float *vp,
                                const float *inv, float *o, size_t ldo, int nd) {
    switch (rows) {
    case 6: output_tile(6, lim, p, ldp, vp, inv, o, ldo, nd); break;
    case 5: output_tile(5, lim, p, ldp, vp, inv, o, ldo, nd); break;
    case 4: output_tile(4, lim, p, ldp, vp, inv, o, ldo, nd); break;
    case 3: output_tile(3, lim, p, ldp, vp, inv, o, ldo, nd); break;
    case 2: output_tile(2, lim, p, ldp, vp, inv, o, ldo, nd); break;
    default: output_tile(1, lim, p, ldp, vp, inv, o, ldo, nd); break;
    }
}

/* ---- attention_full: softmax and the loops ---------------------------------------------------- */

PG_AVX2_INLINE float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

PG_AVX2_INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* s[j] = exp(s[j] - max) for j < lim and 0 for lim <= j < width (a multiple of 8, at least lim):
 * the row's unnormalised probabilities. Returns 1/Σ. */
PG_AVX2 static float softmax_row(float *s, int lim, int width) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int full = lim & ~7;
    __m256 m = ninf;
    int j = 0;
    for (; j < full; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(s + j));
    if (j < lim) {
        const __m256 in = _mm256_castsi256_ps(
            _mm256_cmpgt_epi32(_mm256_set1_epi32(lim - j), iota));
        m = _mm256_max_ps(m, _mm256_blendv_ps(ninf, _mm256_loadu_ps(s + j), in));
    }
    const __m256 mx = _mm256_set1_ps(hmax8(m));
    __m256 sum = _mm256_setzero_ps();
    for (j = 0; j < full; j += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), mx));
        _mm256_storeu_ps(s + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    for (; j < width; j += 8) { /* lanes at or past lim: exp(-inf) = 0 */
        const __m256 in = _mm256_castsi256_ps(
            _mm256_cmpgt_epi32(_mm256_set1_epi32(lim - j), iota));
        const __m256 x = _mm256_blendv_ps(ninf, _mm256_loadu_ps(s + j), in);
        const __m256 e = exp8(_mm256_sub_ps(x, mx));
        _mm256_storeu_ps(s + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    return 1.0f / hsum8(sum);
}

PG_AVX2 void pg_attn_full_avx2(const pg_attn_full_args *a, int64_t i0, int64_t i1,
                               float *scratch) {
    const int hd = a->head_dim, n_kv = a->n_kv, n_q = a->n_q;
    const int blocks = (n_q + PG_ATTN_QB - 1) / PG_ATTN_QB;
    const size_t E = (size_t)a->n_head * (size_t)hd, lds = pad16((size_t)n_kv);
    float *kp = scratch;
    float *vp = kp + pad16(lds * (size_t)hd);
    float *s = vp + pad16(pad16((size_t)hd) * (size_t)n_kv);
    float *qp = s + PG_ATTN_QB * lds;
    float *inv = qp + pad16(PG_ATTN_QB * (size_t)hd);
    int packed = -1;
    for (int64_t it = i0; it < i1; it++) {
        const int h = (int)(it / blocks), t0 = (int)(it % blocks) * PG_ATTN_QB;
        const int m = n_q - t0 < PG_ATTN_QB ? n_q - t0 : PG_ATTN_QB;
        if (h != packed) {
            pack_keys(n_kv, hd, a->k + (size_t)h * (size_t)hd, a->kv_stride, kp);
            pack_values(n_kv, hd, a->v + (size_t)h * (size_t)hd, a->kv_stride, vp);
            packed = h;
        }
        /* keys the block sees: all, or under causal up to its last query's */
        const int shift = n_kv - n_q;
        const int lim = a->causal ? t0 + m + shift : n_kv;

        const __m256 scale = _mm256_set1_ps(a->scale);
        for (int r = 0; r < m; r++) {
            const float *qr = a->q + (size_t)(t0 + r) * a->q_stride + (size_t)h * (size_t)hd;
            float *d = qp + (size_t)r * (size_t)hd;
            int i = 0;
            for (; i + 8 <= hd; i += 8)
                _mm256_storeu_ps(d + i, _mm256_mul_ps(_mm256_loadu_ps(qr + i), scale));
            for (; i < hd; i++) d[i] = qr[i] * a->scale;
        }
        for (int ks = 0; ks < lim; ks += 16)
            for (int r = 0; r < m; r += MR)
                scores_rows(m - r < MR ? m - r : MR, hd, qp + (size_t)r * (size_t)hd,
                            kp + (size_t)ks * (size_t)hd, s + (size_t)r * lds + ks, lds);
        const int width = (lim + 7) & ~7;
        for (int r = 0; r < m; r++)
            inv[r] = softmax_row(s + (size_t)r * lds, a->causal ? t0 + r + 1 + shift : n_kv,
                                 width);
        float *o = a->out + (size_t)t0 * E + (size_t)h * (size_t)hd;
        for (int ds = 0; ds < hd; ds += 16)
            for (int r = 0; r < m; r += MR)
                output_rows(m - r < MR ? m - r : MR, lim, s + (size_t)r * lds, lds,
                            vp + (size_t)ds * (size_t)n_kv, inv + r, o + (size_t)r * E + ds, E,
                            hd - ds < 16 ? hd - ds : 16);
    }
}

#else /* not x86-64 GCC/Clang: never selected */

void pg_expf_avx2(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

void pg_erff_avx2(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = erff(x[i]);
}

void pg_gelu_avx2(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] * 0.5f * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

void pg_add_avx2(float *y, const float *bias, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += bias[i];
}

void pg_layernorm_row_avx2(float *y, const float *x, const float *w, const float *bias, int dim,
                           float eps) {
    double sum = 0.0, var = 0.0;
    for (int i = 0; i < dim; i++) sum += (double)x[i];
    const double mean = sum / dim;
    for (int i = 0; i < dim; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
    const double rstd = 1.0 / sqrt(var / dim + (double)eps);
    for (int i = 0; i < dim; i++) y[i] = (float)(((double)x[i] - mean) * rstd) * w[i] + bias[i];
}

void pg_attn_full_avx2(const pg_attn_full_args *a, int64_t i0, int64_t i1, float *scratch) {
    (void)a, (void)i0, (void)i1, (void)scratch;
}

#endif
