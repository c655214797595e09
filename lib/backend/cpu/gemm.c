/*
 * gemm.c — the portable batched-matmul kernel (see gemm.h): the reference for gemm_avx2.c and
 * the path on CPUs or builds without AVX2+FMA.
 *
 * Same slicing and weight packing as the AVX2 kernel, with a tile of 4 input rows x 8 outputs
 * (a strip is done in two halves) whose 8 four-float accumulators fit the 16 registers of the
 * baseline ISA (SSE2 on x86-64; NEON on arm64), written with the GCC/Clang vector extension and,
 * for other compilers, as plain loops. The block of x is copied with each value four times, so
 * that broadcasting it is one load (SSE2 has no broadcast load); the block is 16 rows, to use
 * the same buffer (16 x 4 <= PG_GEMM_MC). Whether a product is rounded before it is added depends
 * on the compiler and target, so this and the AVX2 kernel agree to rounding, not bit for bit.
 */
#include "backend/cpu/gemm.h"

#include <string.h>

#define GEN_MR 4  /* input rows per tile */
#define GEN_MC 16 /* input rows per block: a multiple of GEN_MR, 4 x GEN_MC <= PG_GEMM_MC */
#define GEN_NH 8  /* outputs per half strip */

size_t pg_gemm_pack_floats(int64_t m) {
    return ((size_t)((m + PG_GEMM_NR - 1) / PG_GEMM_NR) * PG_GEMM_NR + PG_GEMM_MC) * PG_GEMM_KC;
}

/* pack[s][k][i] = w[16s + i][k] for k < kc, zero for rows at or past m. */
static void pack_panel(int64_t m, int64_t kc, const float *w, size_t ldw, float *pack) {
    for (int64_t s = 0; s < m; s += PG_GEMM_NR) {
        const int64_t nr = m - s < PG_GEMM_NR ? m - s : PG_GEMM_NR;
        float *p = pack + s * kc;
        for (int64_t i = 0; i < PG_GEMM_NR; i++) {
            const float *wr = w + (size_t)(s + i) * ldw;
            if (i < nr)
                for (int64_t k = 0; k < kc; k++) p[k * PG_GEMM_NR + i] = wr[k];
            else
                for (int64_t k = 0; k < kc; k++) p[k * PG_GEMM_NR + i] = 0.0f;
        }
    }
}

/* y[r][h + j] (+)= acc[r][j] for r < mr, j < nh. */
static void store_tile(int64_t mr, int64_t nh, float acc[GEN_MR][GEN_NH], float *y,
                       size_t ldy, int acc_y) {
    for (int64_t r = 0; r < mr; r++) {
        float *yr = y + (size_t)r * ldy;
        for (int64_t j = 0; j < nh; j++) yr[j] = acc_y ? yr[j] + acc[r][j] : acc[r][j];
    }
}

#if defined(__GNUC__)
/* GCC/Clang vector extension (SSE2, NEON): with plain arrays GCC vectorises the k loop instead
 * and keeps the accumulators on the stack. */
typedef float v4f __attribute__((vector_size(16)));

static inline v4f v4_load(const float *p) {
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* acc = Σ_k x[r][k]·p[k][0..7] for the 4 rows xr, each value stored 4 times (xr[r][4k..4k+3]). */
static void tile_half(int64_t kc, const float *const xr[GEN_MR], const float *p,
                      float acc[GEN_MR][GEN_NH]) {
    v4f a00 = {0, 0, 0, 0}, a01 = a00, a10 = a00, a11 = a00;
    v4f a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    for (int64_t k = 0; k < kc; k++, p += PG_GEMM_NR) {
        const v4f w0 = v4_load(p), w1 = v4_load(p + 4);
        const v4f b0 = v4_load(xr[0] + 4 * k), b1 = v4_load(xr[1] + 4 * k);
        const v4f b2 = v4_load(xr[2] + 4 * k), b3 = v4_load(xr[3] + 4 * k);
        a00 += b0 * w0, a01 += b0 * w1, a10 += b1 * w0, a11 += b1 * w1;
        a20 += b2 * w0, a21 += b2 * w1, a30 += b3 * w0, a31 += b3 * w1;
    }
    const v4f a[GEN_MR][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
    memcpy(acc, a, sizeof a);
}
#else
static void tile_half(int64_t kc, const float *const xr[GEN_MR], const float *p,
                      float acc[GEN_MR][GEN_NH]) {
    memset(acc, 0, sizeof(float) * GEN_MR * GEN_NH);
    for (int64_t k = 0; k < kc; k++, p += PG_GEMM_NR)
        for (int r = 0; r < GEN_MR; r++)
            for (int j = 0; j < GEN_NH; j++) acc[r][j] += xr[r][4 * k] * p[j];
}
#endif

/* y[r][j] (+)= Σ_k x[r][k]·p[k][j] for r < mr <= GEN_MR, j < nr <= 16, over one slice of kc,
 * from the copied block (rows 4·kc floats apart; rows past mr repeat row 0). */
static void tile(int64_t mr, int64_t nr, int64_t kc, const float *xp, const float *p, float *y,
                 size_t ldy, int acc_y) {
    const float *xr[GEN_MR];
    for (int r = 0; r < GEN_MR; r++) xr[r] = xp + (r < mr ? r : 0) * 4 * kc;
    for (int64_t h = 0; h < nr; h += GEN_NH) {
        float acc[GEN_MR][GEN_NH];
        tile_half(kc, xr, p + h, acc);
        store_tile(mr, nr - h < GEN_NH ? nr - h : GEN_NH, acc, y + h, ldy, acc_y);
    }
}

/* xp[t][k][0..3] = x[t][k] for t < mc, k < kc: the block's slice, each value four times. */
static void copy_block(int64_t mc, int64_t kc, const float *x, size_t ldx, float *xp) {
    for (int64_t t = 0; t < mc; t++)
        for (int64_t k = 0; k < kc; k++) {
            float *d = xp + (t * kc + k) * 4;
            d[0] = d[1] = d[2] = d[3] = x[(size_t)t * ldx + k];
        }
}

void pg_gemm_generic(int64_t n, int64_t m, int64_t k, const float *x, size_t ldx, const float *w,
                     size_t ldw, float *y, size_t ldy, int add, float *pack) {
    const int64_t m_pad = (m + PG_GEMM_NR - 1) / PG_GEMM_NR * PG_GEMM_NR;
    for (int64_t k0 = 0; k0 < k; k0 += PG_GEMM_KC) {
        const int64_t kc = k - k0 < PG_GEMM_KC ? k - k0 : PG_GEMM_KC;
        float *wp = pack, *xp = pack + m_pad * kc;
        pack_panel(m, kc, w + k0, ldw, wp);
        const int acc_y = add || k0 > 0;
        for (int64_t t0 = 0; t0 < n; t0 += GEN_MC) {
            const int64_t mc = n - t0 < GEN_MC ? n - t0 : GEN_MC;
            copy_block(mc, kc, x + (size_t)t0 * ldx + k0, ldx, xp);
            for (int64_t s = 0; s < m; s += PG_GEMM_NR) {
                const int64_t nr = m - s < PG_GEMM_NR ? m - s : PG_GEMM_NR;
                for (int64_t t = 0; t < mc; t += GEN_MR)
                    tile(mc - t < GEN_MR ? mc - t : GEN_MR, nr, kc, xp + t * 4 * kc,
                         wp + s * kc, y + (size_t)(t0 + t) * ldy + s, ldy, acc_y);
            }
        }
    }
}
