/*
 * lora.cu — LoRA on the device: merging an adapter into the weights at load, and the unmerged
 * path for adapters kept separate.
 *
 * pg_cuda_lora_merge: W[o][:] = encode(decode(W[o][:]) + Σ_k (scale·B[o][k])·A[k][:]) in place,
 * A r × n_in and B n_out × r float32. It reproduces lib/models/lora.c's CPU merge bit for bit:
 *   - the sum runs over k in order, each term rounded as the CPU's axpy rounds it
 *     (c = scale·B[o][k]; v = v + c·A[k][i], no FMA: __fmul_rn/__fadd_rn);
 *   - F16/BF16 are re-encoded by the exact ports of dtype.c's conversions (round to nearest
 *     even, NaN quieted as there);
 *   - Q8_0 with quantize_row_q8_0_ref: d = amax/127, q = roundf(v·(1/d)) (roundf: halves away
 *     from zero, as in C);
 *   - Q4_0 with quantize_row_q4_0_ref: max is the signed value of largest magnitude, the first
 *     one on ties, d = max/−8, q = min(15, (int)(v·(1/d) + 8.5)), element j and j+16 packed in
 *     byte j (low, high nibble); all zero gives d = −0 (0x8000) as the CPU writes.
 *   NaN weights are outside this promise (ggml's MAX and the CPU's (int8_t) casts of NaN).
 * Launch: one warp per (row o, 32 consecutive inputs c) — for Q8_0/Q4_0 exactly one block, so
 * the warp re-quantizes it with shuffles. Blocks of 8 warps take 8 consecutive chunks c;
 * grid (ceil(n_chunks / 8), min(n_out, 65535)), rows o = blockIdx.y + k·gridDim.y.
 * Lane i holds input 32c + i; A[k][32c + i] loads are coalesced, B[o][k] is one broadcast.
 * The warp reads its block before writing it, and every write depends (through the shuffles)
 * on every lane's read, so updating in place is safe.
 *
 * pg_cuda_lora_apply: y += scale·(x·Aᵀ)·Bᵀ for n rows: tmp[j][k] = dot(A[k], x[j]) by the F32
 * gemv (gemv.cu, 8 rows of x at a time), then lora_b_kernel: grid (ceil(n_out/128),
 * min(n, 65535)), thread o of row j adds scale·Σ_k B[o][k]·tmp[j][k] to y[j][o].
 *
 * Host reference: merge, for o < n_out, i < n_in: v = W[o][i]; for k < r:
 * v += (scale·B[o·r + k])·A[k·n_in + i]; W[o][i] = encode(v) (blockwise for Q8_0/Q4_0).
 */
#include <math.h>

#include "common.cuh"

#define MERGE_WARPS 8
#define APPLY_THREADS 128

/* One warp: inputs 32c .. 32c + 31 of one row (for Q8_0/Q4_0, block c), bo = B[o][:]. */
static __device__ __forceinline__ void merge_chunk(uint8_t *row, int type, int64_t n_in,
                                                  const float *__restrict__ bo,
                                                  const float *__restrict__ a, int r, float scale,
                                                  int64_t c, int lane_id) {
    const int64_t k = c * 32 + lane_id;
    const bool valid = k < n_in; /* all lanes for the block types */

    /* decode (the block types read their own block: row + c·block_bytes) */
    float v = 0.0f;
    if (valid) {
        switch (type) {
        case PGK_F32: v = ((const float *)row)[k]; break;
        case PGK_F16: v = pgk_h2f(((const uint16_t *)row)[k]); break;
        case PGK_BF16: v = pgk_bf2f(((const uint16_t *)row)[k]); break;
        case PGK_Q8_0: {
            const uint8_t *blk = row + (size_t)c * PGK_Q8_0_BYTES;
            v = (float)(int8_t)blk[2 + lane_id] * pgk_h2f(*(const uint16_t *)blk);
            break;
        }
        default: { /* Q4_0 */
            const uint8_t *blk = row + (size_t)c * PGK_Q4_0_BYTES;
            const uint32_t byte = blk[2 + (lane_id & 15)];
            const int q = (int)(lane_id < 16 ? (byte & 0x0fu) : (byte >> 4)) - 8;
            v = (float)q * pgk_h2f(*(const uint16_t *)blk);
            break;
        }
        }
    }

    /* v += Σ_k (scale·B[o][k])·A[k][i], in the CPU's order and roundings */
    for (int j = 0; j < r; j++) {
        const float coef = __fmul_rn(scale, __ldg(bo + j));
        if (valid) v = __fadd_rn(v, __fmul_rn(coef, __ldg(a + (size_t)j * (size_t)n_in + k)));
    }

    switch (type) {
    case PGK_F32:
        if (valid) ((float *)row)[k] = v;
        break;
    case PGK_F16:
        if (valid) ((uint16_t *)row)[k] = pgk_f2h_exact(v);
        break;
    case PGK_BF16:
        if (valid) ((uint16_t *)row)[k] = pgk_f2bf_exact(v);
        break;
    case PGK_Q8_0: {
        uint8_t *blk = row + (size_t)c * PGK_Q8_0_BYTES;
        const float amax = warp_max(fabsf(v));
        const float d = __fdiv_rn(amax, 127.0f);
        const float id = d != 0.0f ? __frcp_rn(d) : 0.0f; /* 1.0f/d, correctly rounded */
        blk[2 + lane_id] = (uint8_t)(int8_t)roundf(__fmul_rn(v, id));
        if (lane_id == 0) *(uint16_t *)blk = pgk_f2h_exact(d);
        break;
    }
    default: { /* Q4_0 */
        uint8_t *blk = row + (size_t)c * PGK_Q4_0_BYTES;
        /* the first lane of largest |v| (NaN never wins, as `amax < fabsf(x)` never holds) */
        float best = isnan(v) ? -1.0f : fabsf(v);
        int best_lane = lane_id;
        for (int offset = 16; offset > 0; offset >>= 1) {
            const float ob = __shfl_xor_sync(0xffffffffu, best, offset);
            const int ol = __shfl_xor_sync(0xffffffffu, best_lane, offset);
            if (ob > best || (ob == best && ol < best_lane)) best = ob, best_lane = ol;
        }
        const float vmax = __shfl_sync(0xffffffffu, v, best_lane);
        const float max = best > 0.0f ? vmax : 0.0f; /* all zero: the CPU's initial +0 */
        const float d = __fmul_rn(max, -0.125f); /* max / −8: exact scaling, same rounding */
        const float id = d != 0.0f ? __frcp_rn(d) : 0.0f;
        int q = __float2int_rz(__fadd_rn(__fmul_rn(v, id), 8.5f)); /* (int8_t) truncates */
        q = q < 15 ? q : 15;
        const int q_hi = __shfl_down_sync(0xffffffffu, q, 16);
        if (lane_id < 16) blk[2 + lane_id] = (uint8_t)((q & 0xff) | ((q_hi & 0xff) << 4));
        if (lane_id == 0) *(uint16_t *)blk = pgk_f2h_exact(d);
        break;
    }
    }
}

static __global__ void __launch_bounds__(MERGE_WARPS * 32)
lora_merge_kernel(uint8_t *__restrict__ w, int type, int64_t n_in, int64_t n_out,
                  size_t row_bytes, const float *__restrict__ a, const float *__restrict__ b,
                  int r, float scale, int64_t n_chunks) {
    const int lane_id = threadIdx.x % 32, warp_id = threadIdx.x / 32;
    const int64_t c = (int64_t)blockIdx.x * MERGE_WARPS + warp_id; /* warp-uniform */
    if (c >= n_chunks) return;
    for (int64_t o = blockIdx.y; o < n_out; o += gridDim.y)
        merge_chunk(w + (size_t)o * row_bytes, type, n_in, b + (size_t)o * (size_t)r, a, r,
                    scale, c, lane_id);
}

/* y[j][o] += scale·Σ_k B[o][k]·tmp[j][k]: grid (ceil(n_out/128), min(n, 65535)). */
static __global__ void __launch_bounds__(APPLY_THREADS)
lora_b_kernel(float *__restrict__ y, const float *__restrict__ b, const float *__restrict__ tmp,
              int n, int64_t n_out, int r, float scale) {
    const int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= n_out) return;
    const float *bo = b + (size_t)o * (size_t)r;
    for (int j = blockIdx.y; j < n; j += gridDim.y) {
        const float *tj = tmp + (size_t)j * (size_t)r;
        float s = 0.0f;
        for (int k = 0; k < r; k++) s = fmaf(__ldg(bo + k), __ldg(tj + k), s);
        float *out = y + (size_t)j * (size_t)n_out + (size_t)o;
        *out = fmaf(scale, s, *out);
    }
}

extern "C" int pg_cuda_lora_merge(void *w, int type, int64_t n_in, int64_t n_out,
                                  size_t row_bytes, const float *a, const float *b, int r,
                                  float scale, void *stream) {
    if (n_in <= 0 || n_out <= 0 || r <= 0) return 0;
    if (!w || !a || !b || !pgk_type_ok(type)) return PGK_EINVAL;
    const size_t need = pgk_row_bytes_min(type, n_in);
    /* the kernel stores halves, floats and block scales through typed pointers */
    if (need == 0 || row_bytes < need || !pgk_rows_aligned(type, w, row_bytes))
        return PGK_EINVAL;
    const int64_t n_chunks = (n_in + 31) / 32;
    const int64_t gx = (n_chunks + MERGE_WARPS - 1) / MERGE_WARPS;
    if (gx > 0x7fffffff) return PGK_EINVAL;
    const dim3 grid((unsigned)gx, (unsigned)(n_out < 65535 ? n_out : 65535));
    lora_merge_kernel<<<grid, MERGE_WARPS * 32, 0, pgk_stream(stream)>>>(
        (uint8_t *)w, type, n_in, n_out, row_bytes, a, b, r, scale, n_chunks);
    return (int)cudaGetLastError();
}

extern "C" int pg_cuda_lora_apply(float *y, const float *x, const float *a, const float *b,
                                  int n, int64_t n_in, int64_t n_out, int r, float scale,
                                  float *tmp, void *stream) {
    if (n <= 0 || n_out <= 0 || r <= 0 || n_in <= 0) return 0;
    if (!y || !x || !a || !b || !tmp) return PGK_EINVAL;
    /* tmp[j][:] = A·x[j]: A is r rows of n_in floats, an F32 weight for the gemv */
    for (int j0 = 0; j0 < n; j0 += 8) {
        const int nb = n - j0 < 8 ? n - j0 : 8;
        const int err = pg_cuda_gemv(tmp + (size_t)j0 * (size_t)r, a, PGK_F32, n_in, r,
                                     (size_t)n_in * sizeof(float), x + (size_t)j0 * (size_t)n_in,
                                     nb, 0, stream);
        if (err) return err;
    }
    const int64_t gx = (n_out + APPLY_THREADS - 1) / APPLY_THREADS;
    if (gx > 0x7fffffff) return PGK_EINVAL;
    const dim3 grid((unsigned)gx, (unsigned)(n < 65535 ? n : 65535));
    lora_b_kernel<<<grid, APPLY_THREADS, 0, pgk_stream(stream)>>>(y, b, tmp, n, n_out, r, scale);
    return (int)cudaGetLastError();
}
