/*
 * gemv.cu — the batch-1 (n ≤ 8) matmul of decode: y[j][r] (+)= dot(row r of W, x[j]) for
 * r < n_out, j < n, W in F32/F16/BF16/Q8_0/Q4_0, x and y float32, fp32 accumulation. With add
 * nonzero the residual add is fused (y +=), which saves a pass over the activations per
 * projection (the output projection and the FFN down projection of every layer).
 *
 * Decode is bound by reading the weights once, so the kernel is built around that stream:
 *
 *   - one block of 128 threads (4 warps) per R consecutive rows; the row's inputs are split in
 *     "units" that the block's threads take in turn (thread i: units i, i + 128, ...), so each
 *     warp-wide load reads contiguous bytes of a row: 512 B (one uint4 per lane) for F32/F16/
 *     BF16, eight whole blocks (144 B Q4_0, 272 B Q8_0) for the quantized types;
 *   - a unit is 8 inputs (4 for F32). For Q8_0/Q4_0 it is a quarter t of block b: bytes
 *     qs[4t..4t+3] (Q4_0: both nibbles of them; Q8_0: also qs[16+4t..16+4t+3]), i.e. inputs
 *     32b + 4t + {0..3} and 32b + 16 + 4t + {0..3}, whose x is two float4 loads that, over a
 *     warp, read 512 contiguous bytes of x with no waste;
 *   - quantized blocks are only 2-byte aligned (34 and 18 bytes), so their words are read as
 *     pairs of 16-bit loads; all the bytes a warp touches are used, so DRAM sees full sectors;
 *   - weights are expanded in registers without int->float conversions (a slow pipe):
 *       Q8_0: 0x4B0000uu with u = q + 128 is the float 2^23 + u, minus (2^23 + 128) gives q
 *             exactly (one PRMT + one FADD per input);
 *       Q4_0: 0x430q0000 is the float 128 + q (one PRMT per input), and the block's
 *             Σ(q − 8)·x = Σ(128 + q)·x − 136·Σx with Σx shared by the R rows; the offset costs
 *             ~7 bits of the 24 of each 8-input partial sum, a relative error ~1e-5 of a
 *             partial and far less on a row's dot (NMSE ~5e-12 against the CPU op);
 *       F16: cvt per element (HADD2.F32 on sm_80+, full rate); BF16: a shift/mask;
 *   - R rows per block share each x load: x traffic through L1 is 4/R bytes per input, which
 *     matters for Q4_0 (0.56 bytes of weight per input: R = 4) and Q8_0 (R = 2); F32/F16/BF16
 *     take R = 1 (more, shorter blocks: a smaller tail). With n > 1, R = 2 (n ≤ 4) or 1;
 *   - the R·n partial sums of each thread are reduced by warp shuffles, then across the 4 warps
 *     in shared memory; threads 0..R·n−1 write y.
 *
 * Shapes or alignments the vector path cannot take (F32 rows not multiple of 4 inputs, F16/BF16
 * of 8, rows or x not 16-byte aligned) go to gemv_generic_kernel: one block per row, one input
 * per thread and step, any type (slow, but only odd encoder shapes would use it).
 *
 * Host reference of the indexing (vector path): block bx holds rows r = bx·R + i, i < R (rows
 * past n_out read row n_out − 1 and write nothing); thread tid takes units u = tid + 128·m;
 * F32: inputs 4u..4u+3 at w_row + 16u; F16/BF16: inputs 8u..8u+7 at w_row + 16u; Q8_0/Q4_0:
 * b = u/4, t = u%4 as above; y[j·n_out + r] = (add ? y : 0) + Σ.
 */
#include "common.cuh"

#define GEMV_THREADS 128
#define GEMV_WARPS (GEMV_THREADS / 32)
#define GEMV_MAX_N 8

// ---- per type: rows per block, the raw bytes of one unit, their expansion to floats

/* Rows per block: with one x row the x loads are shared by R rows (see above); with several x
 * rows the weights' expansion is shared by them instead, and registers bound R. */
template <int T, int NX>
struct gemv_rows {
    static constexpr int R = NX == 1 ? (T == PGK_Q4_0 ? 4 : T == PGK_Q8_0 ? 2 : 1)
                                     : (NX <= 4 ? 2 : 1);
};

template <int T> struct unit_raw { uint4 v; };                 /* F32, F16, BF16: 16 bytes */
template <> struct unit_raw<PGK_Q8_0> { uint32_t lo, hi, d; }; /* qs[4t..], qs[16+4t..], d */
template <> struct unit_raw<PGK_Q4_0> { uint32_t q, d; };      /* qs[4t..4t+3], d */

template <int T>
static __device__ __forceinline__ unit_raw<T> load_unit(const uint8_t *row, int u) {
    unit_raw<T> r;
    if constexpr (T == PGK_Q8_0) {
        const uint8_t *b = row + (size_t)(u >> 2) * PGK_Q8_0_BYTES;
        const int t = u & 3;
        r.d = ld_u16(b);
        r.lo = ld_u32_a2(b + 2 + 4 * t);
        r.hi = ld_u32_a2(b + 2 + 16 + 4 * t);
    } else if constexpr (T == PGK_Q4_0) {
        const uint8_t *b = row + (size_t)(u >> 2) * PGK_Q4_0_BYTES;
        r.d = ld_u16(b);
        r.q = ld_u32_a2(b + 2 + 4 * (u & 3));
    } else {
        r.v = __ldg((const uint4 *)row + u);
    }
    return r;
}

/* Inputs per unit. */
template <int T> struct unit_elems { static constexpr int E = T == PGK_F32 ? 4 : 8; };

/* The x values of unit u, in the order load_unit's expansion produces the weights. */
template <int T>
static __device__ __forceinline__ void load_x(const float *__restrict__ xj, int u, float *xv) {
    float4 a, b;
    if constexpr (T == PGK_Q8_0 || T == PGK_Q4_0) {
        const float *p = xj + (size_t)(u >> 2) * PGK_QK + 4 * (u & 3);
        a = __ldg((const float4 *)p);
        b = __ldg((const float4 *)(p + 16));
    } else if constexpr (T == PGK_F32) {
        a = __ldg((const float4 *)xj + u);
    } else {
        a = __ldg((const float4 *)xj + 2 * (size_t)u);
        b = __ldg((const float4 *)xj + 2 * (size_t)u + 1);
    }
    xv[0] = a.x, xv[1] = a.y, xv[2] = a.z, xv[3] = a.w;
    if constexpr (T != PGK_F32) xv[4] = b.x, xv[5] = b.y, xv[6] = b.z, xv[7] = b.w;
}

/* The byte-permute selectors of the expansions: result bytes (0, 0, byte i, 0x43) make the
 * float 128 + q for a nibble q (Q4_0); (byte i, 0, 0, 0x4B) make 2^23 + byte (Q8_0). */
#define SEL_Q4(i) (0x7044u | ((unsigned)(i) << 8))
#define SEL_Q8(i) (0x7440u | (unsigned)(i))

/* dot(weights of the unit, xv): F types exactly Σ w·x; Q8_0 Σ q·x (the caller scales by d);
 * Q4_0 Σ (128 + q)·x (the caller subtracts 136·Σx and scales by d). */
template <int T>
static __device__ __forceinline__ float unit_dot(const unit_raw<T> &r, const float *xv) {
    float s = 0.0f;
    if constexpr (T == PGK_F32) {
        s = fmaf(__uint_as_float(r.v.x), xv[0], s);
        s = fmaf(__uint_as_float(r.v.y), xv[1], s);
        s = fmaf(__uint_as_float(r.v.z), xv[2], s);
        s = fmaf(__uint_as_float(r.v.w), xv[3], s);
    } else if constexpr (T == PGK_F16) {
        const uint32_t wd[4] = {r.v.x, r.v.y, r.v.z, r.v.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            s = fmaf(pgk_h2f((uint16_t)(wd[i] & 0xffffu)), xv[2 * i], s);
            s = fmaf(pgk_h2f((uint16_t)(wd[i] >> 16)), xv[2 * i + 1], s);
        }
    } else if constexpr (T == PGK_BF16) {
        const uint32_t wd[4] = {r.v.x, r.v.y, r.v.z, r.v.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            s = fmaf(__uint_as_float(wd[i] << 16), xv[2 * i], s);
            s = fmaf(__uint_as_float(wd[i] & 0xffff0000u), xv[2 * i + 1], s);
        }
    } else if constexpr (T == PGK_Q8_0) {
        const uint32_t lo = r.lo ^ 0x80808080u, hi = r.hi ^ 0x80808080u; /* q + 128 */
        const float k_off = 8388736.0f;                                    /* 2^23 + 128 */
#pragma unroll
        for (int i = 0; i < 4; i++) {
            s = fmaf(__uint_as_float(__byte_perm(lo, 0x4B000000u, SEL_Q8(i))) - k_off, xv[i], s);
            s = fmaf(__uint_as_float(__byte_perm(hi, 0x4B000000u, SEL_Q8(i))) - k_off,
                     xv[4 + i], s);
        }
    } else { /* Q4_0 */
        const uint32_t lo = r.q & 0x0f0f0f0fu, hi = (r.q >> 4) & 0x0f0f0f0fu;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            s = fmaf(__uint_as_float(__byte_perm(lo, 0x43000000u, SEL_Q4(i))), xv[i], s);
            s = fmaf(__uint_as_float(__byte_perm(hi, 0x43000000u, SEL_Q4(i))), xv[4 + i], s);
        }
    }
    return s;
}

// ---- the kernels

template <int T, int NX>
static __global__ void __launch_bounds__(GEMV_THREADS, NX == 1 ? 8 : 1)
gemv_kernel(float *__restrict__ y, const uint8_t *__restrict__ w, size_t row_bytes,
            int64_t n_in, int64_t n_out, int n_units, const float *__restrict__ x, int add) {
    constexpr int R = gemv_rows<T, NX>::R;
    constexpr int E = unit_elems<T>::E;
    constexpr bool quant = T == PGK_Q8_0 || T == PGK_Q4_0;
    const int tid = threadIdx.x, lane_id = tid % 32, warp_id = tid / 32;
    const int64_t r0 = (int64_t)blockIdx.x * R;

    const uint8_t *rows[R];
#pragma unroll
    for (int i = 0; i < R; i++) /* rows past the end re-read the last one: no divergence */
        rows[i] = w + (size_t)(r0 + i < n_out ? r0 + i : n_out - 1) * row_bytes;

    float acc[R][NX];
#pragma unroll
    for (int i = 0; i < R; i++)
#pragma unroll
        for (int j = 0; j < NX; j++) acc[i][j] = 0.0f;

    /* two units in flight per thread for one x row; with more, their x loads give the ILP */
#pragma unroll(NX <= 2 ? 2 : 1)
    for (int u = tid; u < n_units; u += GEMV_THREADS) {
        unit_raw<T> raw[R];
#pragma unroll
        for (int i = 0; i < R; i++) raw[i] = load_unit<T>(rows[i], u);
#pragma unroll
        for (int j = 0; j < NX; j++) {
            float xv[E];
            load_x<T>(x + (size_t)j * (size_t)n_in, u, xv);
            float xsum = 0.0f; /* Q4_0: Σx of the unit, shared by the R rows */
            if constexpr (T == PGK_Q4_0) {
#pragma unroll
                for (int e = 0; e < E; e++) xsum += xv[e];
            }
#pragma unroll
            for (int i = 0; i < R; i++) {
                float s = unit_dot<T>(raw[i], xv);
                if constexpr (T == PGK_Q4_0) s = fmaf(-136.0f, xsum, s);
                if constexpr (quant) acc[i][j] = fmaf(pgk_h2f((uint16_t)raw[i].d), s, acc[i][j]);
                else acc[i][j] += s;
            }
        }
    }

    __shared__ float red[GEMV_WARPS][R * NX];
#pragma unroll
    for (int i = 0; i < R; i++)
#pragma unroll
        for (int j = 0; j < NX; j++) {
            const float v = warp_sum(acc[i][j]);
            if (lane_id == 0) red[warp_id][i * NX + j] = v;
        }
    __syncthreads();
    if (tid < R * NX) {
        const int i = tid / NX, j = tid % NX;
        const int64_t r = r0 + i;
        if (r < n_out) {
            float s = 0.0f;
#pragma unroll
            for (int wi = 0; wi < GEMV_WARPS; wi++) s += red[wi][tid];
            float *out = y + (size_t)j * (size_t)n_out + (size_t)r;
            *out = add ? *out + s : s;
        }
    }
}

/* Any type, any alignment: block = one row, thread tid takes inputs tid, tid + 128, ... */
static __global__ void __launch_bounds__(GEMV_THREADS)
gemv_generic_kernel(float *__restrict__ y, const uint8_t *__restrict__ w, int type,
                    size_t row_bytes, int64_t n_in, int64_t n_out, const float *__restrict__ x,
                    int n, int add) {
    const int tid = threadIdx.x, lane_id = tid % 32, warp_id = tid / 32;
    const int64_t r = blockIdx.x;
    const uint8_t *row = w + (size_t)r * row_bytes;
    float acc[GEMV_MAX_N];
#pragma unroll
    for (int j = 0; j < GEMV_MAX_N; j++) acc[j] = 0.0f;
    for (int64_t k = tid; k < n_in; k += GEMV_THREADS) {
        const float wv = pgk_elem(type, row, k);
#pragma unroll
        for (int j = 0; j < GEMV_MAX_N; j++)
            if (j < n) acc[j] = fmaf(wv, __ldg(x + (size_t)j * (size_t)n_in + (size_t)k), acc[j]);
    }
    __shared__ float red[GEMV_WARPS][GEMV_MAX_N];
#pragma unroll
    for (int j = 0; j < GEMV_MAX_N; j++) {
        const float v = warp_sum(acc[j]);
        if (lane_id == 0) red[warp_id][j] = v;
    }
    __syncthreads();
    if (tid < n) {
        float s = 0.0f;
        for (int wi = 0; wi < GEMV_WARPS; wi++) s += red[wi][tid];
        float *out = y + (size_t)tid * (size_t)n_out + (size_t)r;
        *out = add ? *out + s : s;
    }
}

/* y = 0 (or unchanged with add) when there are no inputs. */
static __global__ void gemv_empty_kernel(float *__restrict__ y, size_t len) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < len;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = 0.0f;
}

// ---- dispatch

template <int T, int NX>
static void launch_vec(float *y, const uint8_t *w, size_t row_bytes, int64_t n_in,
                       int64_t n_out, int n_units, const float *x, int add, cudaStream_t st) {
    constexpr int R = gemv_rows<T, NX>::R;
    const unsigned grid = (unsigned)((n_out + R - 1) / R);
    gemv_kernel<T, NX><<<grid, GEMV_THREADS, 0, st>>>(y, w, row_bytes, n_in, n_out, n_units, x,
                                                       add);
}

template <int T>
static void launch_vec_n(float *y, const uint8_t *w, size_t row_bytes, int64_t n_in,
                         int64_t n_out, int n_units, const float *x, int n, int add,
                         cudaStream_t st) {
    switch (n) {
    case 1: launch_vec<T, 1>(y, w, row_bytes, n_in, n_out, n_units, x, add, st); break;
    case 2: launch_vec<T, 2>(y, w, row_bytes, n_in, n_out, n_units, x, add, st); break;
    case 3: launch_vec<T, 3>(y, w, row_bytes, n_in, n_out, n_units, x, add, st); break;
    case 4: launch_vec<T, 4>(y, w, row_bytes, n_in, n_out, n_units, x, add, st); break;
    case 5: launch_vec<T, 5>(y, w, row_bytes, n_in, n_out, n_units, x, add, st); break;
    case 6: launch_vec<T, 6>(y, w, row_bytes, n_in, n_out, n_units, x, add, st); break;
    case 7: launch_vec<T, 7>(y, w, row_bytes, n_in, n_out, n_units, x, add, st); break;
    default: launch_vec<T, 8>(y, w, row_bytes, n_in, n_out, n_units, x, add, st); break;
    }
}

extern "C" int pg_cuda_gemv(float *y, const void *w, int type, int64_t n_in, int64_t n_out,
                            size_t row_bytes, const float *x, int n, int add, void *stream) {
    if (n <= 0 || n_out <= 0) return 0;
    if (!y || !w || !x || n > GEMV_MAX_N || n_in < 0 || !pgk_type_ok(type)) return PGK_EINVAL;
    if (n_out > 0x7fffffff) return PGK_EINVAL; /* grid.x of the row-per-block kernels */
    cudaStream_t st = pgk_stream(stream);
    if (n_in == 0) { /* every dot is empty */
        if (!add) {
            const size_t len = (size_t)n * (size_t)n_out;
            gemv_empty_kernel<<<pgk_grid_1d(len, 256, 4096), 256, 0, st>>>(y, len);
        }
        return (int)cudaGetLastError();
    }
    const size_t need = pgk_row_bytes_min(type, n_in);
    if (need == 0 || row_bytes < need || !pgk_rows_aligned(type, w, row_bytes) ||
        (uintptr_t)x % 4)
        return PGK_EINVAL;

    const uint8_t *wb = (const uint8_t *)w;
    const uintptr_t wa = (uintptr_t)w | (uintptr_t)row_bytes, xa = (uintptr_t)x;
    const int x16 = (xa % 16) == 0;
    int64_t units = -1; /* the vector path's units per row, or -1 for the generic path */
    switch (type) {
    case PGK_F32:
        if (n_in % 4 == 0 && wa % 16 == 0 && x16) units = n_in / 4;
        break;
    case PGK_F16: case PGK_BF16:
        if (n_in % 8 == 0 && wa % 16 == 0 && x16) units = n_in / 8;
        break;
    default: /* Q8_0, Q4_0: n_in is whole blocks (checked by need above) */
        if (wa % 2 == 0 && x16) units = n_in / PGK_QK * 4;
        break;
    }
    if (units > 0x7fffffff) units = -1;

    if (units < 0) {
        gemv_generic_kernel<<<(unsigned)n_out, GEMV_THREADS, 0, st>>>(y, wb, type, row_bytes,
                                                                      n_in, n_out, x, n, add);
        return (int)cudaGetLastError();
    }
    const int nu = (int)units;
    switch (type) {
    case PGK_F32: launch_vec_n<PGK_F32>(y, wb, row_bytes, n_in, n_out, nu, x, n, add, st); break;
    case PGK_F16: launch_vec_n<PGK_F16>(y, wb, row_bytes, n_in, n_out, nu, x, n, add, st); break;
    case PGK_BF16: launch_vec_n<PGK_BF16>(y, wb, row_bytes, n_in, n_out, nu, x, n, add, st); break;
    case PGK_Q8_0: launch_vec_n<PGK_Q8_0>(y, wb, row_bytes, n_in, n_out, nu, x, n, add, st); break;
    default: launch_vec_n<PGK_Q4_0>(y, wb, row_bytes, n_in, n_out, nu, x, n, add, st); break;
    }
    return (int)cudaGetLastError();
}
