/*
 * gemm_avx2.c — the AVX2+FMA batched-matmul kernel (contract in gemm.h), chosen at run time by
 * the CPU backend: the library is built for baseline x86-64, so nothing here may run unless the
 * CPU has AVX2 and FMA (pg_gemm_avx2_usable). Functions carry their own target attribute, as in
 * lib/gguf/dtype_avx2.c.
 *
 * Loops, outermost first (the GotoBLAS/BLIS order, with the weight panel in the role of B):
 *   k0  slices of KC = 256:     pack the panel's slice k-major, 16 outputs per strip
 *   t0  blocks of MC inputs:    copy the block's slice of x (MC x KC floats, 72 kB: L2)
 *   s   strips of 16 outputs:   the strip's KC x 16 floats (16 kB) stay in L1
 *   t   tiles of 6 inputs:      the microkernel
 * The microkernel keeps a 6 x 16 tile of y in 12 ymm accumulators for the whole slice; each k
 * loads the strip's 16 values (2 ymm) once and broadcasts one x per input row: 12 FMAs to 8
 * loads, with 12 independent chains to cover the FMA latency. Tiles of fewer than 6 rows (the
 * end of a block) use the same code compiled for 1..5 rows; strips of fewer than 16 outputs
 * compute on zero padding and store the valid columns only.
 *
 * On other targets or compilers the functions below exist but are never selected.
 */
#include "backend/cpu/gemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#define PG_AVX2 __attribute__((target("avx2,fma")))
#define PG_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

#define MR 6 /* input rows per tile (PG_GEMM_MC is a multiple) */

int pg_gemm_avx2_usable(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* ---- packing -------------------------------------------------------------------------------- */

/* rows[0..7] (8 x 8 floats) transposed into dst + j*16 for j < 8. */
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
    const int s = PG_GEMM_NR;
    _mm256_storeu_ps(dst + 0 * s, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * s, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * s, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * s, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * s, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * s, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * s, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * s, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* pack[s][k][i] = w[16s + i][k] for k < kc, zero for rows at or past m (gemm.c's pack_panel,
 * with full strips transposed 8 x 8 at a time). */
PG_AVX2 static void pack_panel(int64_t m, int64_t kc, const float *w, size_t ldw, float *pack) {
    for (int64_t s = 0; s < m; s += PG_GEMM_NR) {
        const int64_t nr = m - s < PG_GEMM_NR ? m - s : PG_GEMM_NR;
        float *p = pack + s * kc;
        const float *ws = w + (size_t)s * ldw;
        int64_t k = 0;
        if (nr == PG_GEMM_NR) {
            for (; k + 8 <= kc; k += 8)
                for (int h = 0; h < PG_GEMM_NR; h += 8) {
                    const float *r = ws + (size_t)h * ldw + k;
                    transpose8_store(_mm256_loadu_ps(r), _mm256_loadu_ps(r + ldw),
                                     _mm256_loadu_ps(r + 2 * ldw), _mm256_loadu_ps(r + 3 * ldw),
                                     _mm256_loadu_ps(r + 4 * ldw), _mm256_loadu_ps(r + 5 * ldw),
                                     _mm256_loadu_ps(r + 6 * ldw), _mm256_loadu_ps(r + 7 * ldw),
                                     p + k * PG_GEMM_NR + h);
                }
        }
        for (; k < kc; k++)
            for (int64_t i = 0; i < PG_GEMM_NR; i++)
                p[k * PG_GEMM_NR + i] = i < nr ? ws[(size_t)i * ldw + k] : 0.0f;
    }
}

/* ---- the microkernel ------------------------------------------------------------------------ */

/* c = Σ_k x[r][k]·p[k][:] for r < rows (a constant at every call site, so each row count gets
 * its own register allocation), then y (+)= c for the first nr of 16 columns. */
PG_AVX2_INLINE void tile(const int rows, int64_t nr, int64_t kc, const float *x, size_t ldx,
                         const float *p, float *y, size_t ldy, int acc_y) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    /* rows past `rows` are never read: their pointers only stay inside x */
    const float *x0 = x, *x1 = rows > 1 ? x + ldx : x, *x2 = rows > 2 ? x + 2 * ldx : x;
    const float *x3 = rows > 3 ? x + 3 * ldx : x, *x4 = rows > 4 ? x + 4 * ldx : x;
    const float *x5 = rows > 5 ? x + 5 * ldx : x;
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++, p += PG_GEMM_NR) {
        const __m256 w0 = _mm256_loadu_ps(p), w1 = _mm256_loadu_ps(p + 8);
        __m256 b;
#define ROW(r)                                                                                 \
    if (rows > r) {                                                                            \
        b = _mm256_broadcast_ss(x##r + k);                                                     \
        c##r##0 = _mm256_fmadd_ps(b, w0, c##r##0);                                             \
        c##r##1 = _mm256_fmadd_ps(b, w1, c##r##1);                                             \
    }
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
    }
    const __m256 c[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                             {c30, c31}, {c40, c41}, {c50, c51}};
    if (nr == PG_GEMM_NR) {
        for (int r = 0; r < rows; r++) {
            float *yr = y + (size_t)r * ldy;
            if (acc_y) {
                _mm256_storeu_ps(yr, _mm256_add_ps(_mm256_loadu_ps(yr), c[r][0]));
                _mm256_storeu_ps(yr + 8, _mm256_add_ps(_mm256_loadu_ps(yr + 8), c[r][1]));
            } else {
                _mm256_storeu_ps(yr, c[r][0]);
                _mm256_storeu_ps(yr + 8, c[r][1]);
            }
        }
        return;
    }
    float tmp[PG_GEMM_NR];
    for (int r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * ldy;
        _mm256_storeu_ps(tmp, c[r][0]);
        _mm256_storeu_ps(tmp + 8, c[r][1]);
        for (int64_t j = 0; j < nr; j++) yr[j] = acc_y ? yr[j] + tmp[j] : tmp[j];
    }
}

PG_AVX2 static void tile_rows(int64_t rows, int64_t nr, int64_t kc, const float *x, size_t ldx,
                              const float *p, float *y, size_t ldy, int acc_y) {
    switch (rows) {
    case 6: tile(6, nr, kc, x, ldx, p, y, ldy, acc_y); break;
    case 5: tile(5, nr, kc, x, ldx, p, y, ldy, acc_y); break;
    case 4: tile(4, nr, kc, x, ldx, p, y, ldy, acc_y); break;
    case 3: tile(3, nr, kc, x, ldx, p, y, ldy, acc_y); break;
    case 2: tile(2, nr, kc, x, ldx, p, y, ldy, acc_y); break;
    default: tile(1, nr, kc, x, ldx, p, y, ldy, acc_y); break;
    }
}

/* ---- the loops ------------------------------------------------------------------------------ */

/* xp[t][k] = x[t][k] for t < mc, k < kc: the block's slice, rows kc apart. */
PG_AVX2 static void copy_block(int64_t mc, int64_t kc, const float *x, size_t ldx, float *xp) {
    for (int64_t t = 0; t < mc; t++) {
        const float *xr = x + (size_t)t * ldx;
        float *d = xp + t * kc;
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) _mm256_storeu_ps(d + k, _mm256_loadu_ps(xr + k));
        for (; k < kc; k++) d[k] = xr[k];
    }
}

PG_AVX2 void pg_gemm_avx2(int64_t n, int64_t m, int64_t k, const float *x, size_t ldx,
                          const float *w, size_t ldw, float *y, size_t ldy, int add,
                          float *pack) {
    const int64_t m_pad = (m + PG_GEMM_NR - 1) / PG_GEMM_NR * PG_GEMM_NR;
    for (int64_t k0 = 0; k0 < k; k0 += PG_GEMM_KC) {
        const int64_t kc = k - k0 < PG_GEMM_KC ? k - k0 : PG_GEMM_KC;
        float *wp = pack, *xp = pack + m_pad * kc;
        pack_panel(m, kc, w + k0, ldw, wp);
        const int acc_y = add || k0 > 0;
        for (int64_t t0 = 0; t0 < n; t0 += PG_GEMM_MC) {
            const int64_t mc = n - t0 < PG_GEMM_MC ? n - t0 : PG_GEMM_MC;
            copy_block(mc, kc, x + (size_t)t0 * ldx + k0, ldx, xp);
            for (int64_t s = 0; s < m; s += PG_GEMM_NR) {
                const int64_t nr = m - s < PG_GEMM_NR ? m - s : PG_GEMM_NR;
                for (int64_t t = 0; t < mc; t += MR)
                    tile_rows(mc - t < MR ? mc - t : MR, nr, kc, xp + t * kc, (size_t)kc,
                              wp + s * kc, y + (size_t)(t0 + t) * ldy + s, ldy, acc_y);
            }
        }
    }
}

#else /* not x86-64 GCC/Clang: never selected */

int pg_gemm_avx2_usable(void) { return 0; }

void pg_gemm_avx2(int64_t n, int64_t m, int64_t k, const float *x, size_t ldx, const float *w,
                  size_t ldw, float *y, size_t ldy, int add, float *pack) {
    pg_gemm_generic(n, m, k, x, ldx, w, ldw, y, ldy, add, pack);
}

#endif
