/*
 * attention.cu — softmax(q·kᵀ·scale)·v in float32 for the LLM (causal, over the KV cache,
 * grouped-query heads) and for ImageBind (attention_full: strided q/k/v, bidirectional or
 * causal), scale = 1/√head_dim, head_dim ≤ 256.
 *
 * Two kernels do the work, both with an online softmax (running max m, running sum l, output
 * rescaled by exp(m_old − m_new) whenever the max grows), all in fp32:
 *
 * flash_attn_kernel — prefill and attention_full. A block takes 16 queries of one head of one
 *   sequence (grid (ceil(n_q/16), n_head, n_batch), 128 threads; the batch is attention_full's
 *   clips, each batch_stride floats after the last in q, k, v, and n_q rows after it in out) and walks the keys in tiles of BK (32 for
 *   head_dim ≤ 128, 8 above), each tile's K and V staged in shared memory next to the block's Q
 *   (rows padded by 4 floats so that the float4 reads below meet no bank conflicts). Thread
 *   tid owns query row qi = tid/8 and, in the 8 lanes of that row, keys kk + 8i of the tile for
 *   the scores and dims 4·kk + 32c .. +3 of the output; the row's max and sum are reduced by
 *   shuffles among those 8 lanes, and its probabilities pass through shared memory (Ps) to the
 *   same 8 lanes for P·V. Query t sees keys 0 .. t + off (causal; off = pos0 for the LLM,
 *   n_kv − n_q for attention_full) or all n_kv keys; tiles past the block's last visible key
 *   are not visited and no row at or past n_kv is ever read (the cache rows beyond the horizon
 *   may hold anything). Template on head_dim 64 / 80 / 128 (ImageBind, LLaMA); any other
 *   head_dim ≤ 256 runs the runtime-sized instance (HD = 0). Static shared memory: 44 KB at
 *   head_dim 128, 34 KB for the runtime instance.
 *
 * attn_decode_kernel + attn_merge_kernel — one query (decode) over a long cache: split-K. The
 *   context is cut in chunks of ATTN_CHUNK = 64 keys, one block each (grid (n_chunks, n_head),
 *   128 threads): warp w takes keys 16w .. 16w + 15 of the chunk, four at a time (their K and V
 *   rows loaded together, lanes over the head's dims, scores reduced by shuffles), keeping its
 *   own (m, l, o); the four warps combine in shared memory and write the chunk's partial
 *   (o[head_dim], m, l) to part[(h·n_chunks + c)·(head_dim + 2)]. attn_merge_kernel (grid
 *   n_head, 128 threads over dims) rescales the partials to the global max and divides by the
 *   total sum. A context of one chunk skips the merge: the block writes the output itself.
 *   pg_cuda_attention_decode_at reads the position from device memory instead: its grid is
 *   sized for n_ctx and the blocks past the live context exit at once, so that a captured CUDA
 *   graph replays at every position unchanged.
 *
 * The CPU op (lib/backend/cpu) keeps the scores and normalises once (two-pass softmax, sum in
 * double); the online form here reorders the roundings only (NMSE ~1e-13 against it).
 *
 * Host reference of the indexing: query t, head h: q + t·q_stride + h·head_dim; key/value p of
 * head h: k/v + p·kv_stride + (h / group)·head_dim; out + t·out_stride + h·head_dim, with
 * q_stride = out_stride = n_head·head_dim and kv_stride = n_head_kv·head_dim for the LLM.
 */
#include <math.h>

#include "common.cuh"

#define ATTN_CHUNK 64     /* keys per split-K block: kernels.h's scratch formula */
#define ATTN_MAX_HD 256
#define DEC_THREADS 128   /* 4 warps × 16 keys = one chunk */
#define DEC_KEYS_PER_WARP (ATTN_CHUNK / (DEC_THREADS / 32))
#define FA_BQ 16          /* queries per flash block */
#define FA_THREADS 128    /* 16 rows × 8 lanes */

// ---------------------------------------------------------------------------------------------
// Flash (prefill, attention_full)

template <int HD>
struct fa_cfg {
    static constexpr int HDP = HD > 0 ? (HD + 3) / 4 * 4 : ATTN_MAX_HD; /* smem row capacity */
    static constexpr int BK = HDP <= 128 ? 32 : 8;                       /* keys per tile */
    static constexpr int LD = HDP + 4;                                    /* padded row stride */
    static constexpr int NC = (HDP + 31) / 32;                            /* float4s per lane */
};

template <int HD>
static __global__ void __launch_bounds__(FA_THREADS)
flash_attn_kernel(float *__restrict__ out, const float *__restrict__ q,
                  const float *__restrict__ k, const float *__restrict__ v, int n_q, int n_kv,
                  size_t q_stride, size_t kv_stride, size_t out_stride, size_t batch_stride,
                  int hd_rt, int group, int causal, int off, float scale) {
    using C = fa_cfg<HD>;
    constexpr int BK = C::BK, LD = C::LD, NC = C::NC, KPL = BK / 8; /* keys per lane */
    __shared__ __align__(16) float Qs[FA_BQ][LD];
    __shared__ __align__(16) float Ks[BK][LD];
    __shared__ __align__(16) float Vs[BK][LD];
    __shared__ float Ps[FA_BQ][BK + 1];

    const int hd = HD > 0 ? HD : hd_rt;
    const int hdp = HD > 0 ? C::HDP : (hd_rt + 3) / 4 * 4;
    const int tid = threadIdx.x;
    const int h = blockIdx.y, kvh = h / group;
    const int q0 = blockIdx.x * FA_BQ;
    const int qi = tid >> 3, kk = tid & 7; /* my query row, my lane among its 8 */
    const int t = q0 + qi;

    /* sequence blockIdx.z of a batch (attention_full's clips): its own q, k, v and out rows */
    const size_t zb = (size_t)blockIdx.z * batch_stride;
    out += (size_t)blockIdx.z * (size_t)n_q * out_stride;
    const float *qh = q + zb + (size_t)h * (size_t)hd;
    const float *kh = k + zb + (size_t)kvh * (size_t)hd;
    const float *vh = v + zb + (size_t)kvh * (size_t)hd;

    /* the block's queries; rows past n_q and dims past hd are zeros */
    for (int idx = tid; idx < FA_BQ * hdp; idx += FA_THREADS) {
        const int row = idx / hdp, d = idx % hdp, tr = q0 + row;
        Qs[row][d] = (tr < n_q && d < hd) ? __ldg(qh + (size_t)tr * q_stride + d) : 0.0f;
    }

    /* last key of my row, and one past the last key any row of the block sees */
    const int q_last = min(q0 + FA_BQ, n_q) - 1;
    const int lim = causal ? min(t + off, n_kv - 1) : n_kv - 1;
    const int kend = causal ? min(q_last + off, n_kv - 1) + 1 : n_kv;

    float m = -INFINITY, l = 0.0f;
    float o[NC][4];
#pragma unroll
    for (int c = 0; c < NC; c++) o[c][0] = o[c][1] = o[c][2] = o[c][3] = 0.0f;

    for (int k0 = 0; k0 < kend; k0 += BK) {
        __syncthreads(); /* Qs written (first tile) / the previous tile's Ks, Vs, Ps consumed */
        /* 8 rows' loads in flight per thread; fully unrolled, sm_80's allocator spills */
#pragma unroll 8
        for (int idx = tid; idx < BK * hdp; idx += FA_THREADS) {
            const int row = idx / hdp, d = idx % hdp, p = k0 + row;
            const bool ok = p < kend && d < hd; /* never a row at or past n_kv */
            Ks[row][d] = ok ? __ldg(kh + (size_t)p * kv_stride + d) : 0.0f;
            Vs[row][d] = ok ? __ldg(vh + (size_t)p * kv_stride + d) : 0.0f;
        }
        __syncthreads();

        /* scores of my keys kk + 8i */
        float s[KPL];
#pragma unroll
        for (int i = 0; i < KPL; i++) s[i] = 0.0f;
        for (int d = 0; d < hdp; d += 4) {
            const float4 qv = *(const float4 *)&Qs[qi][d];
#pragma unroll
            for (int i = 0; i < KPL; i++) {
                const float4 kv = *(const float4 *)&Ks[kk + 8 * i][d];
                s[i] = fmaf(qv.x, kv.x, s[i]);
                s[i] = fmaf(qv.y, kv.y, s[i]);
                s[i] = fmaf(qv.z, kv.z, s[i]);
                s[i] = fmaf(qv.w, kv.w, s[i]);
            }
        }
        float mx = -INFINITY;
#pragma unroll
        for (int i = 0; i < KPL; i++) {
            s[i] = k0 + kk + 8 * i <= lim ? s[i] * scale : -INFINITY;
            mx = fmaxf(mx, s[i]);
        }
        /* the row's 8 lanes are lanes 8·(qi % 4) .. +7 of this warp */
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
        const float m_new = fmaxf(m, mx);
        /* a row with no visible key yet keeps m = −inf: no exp(−inf − (−inf)) */
        const bool none = m_new == -INFINITY;
        const float alpha = none ? 1.0f : expf(m - m_new);
        float rs = 0.0f;
#pragma unroll
        for (int i = 0; i < KPL; i++) {
            const float e = none ? 0.0f : expf(s[i] - m_new);
            Ps[qi][kk + 8 * i] = e;
            rs += e;
        }
        rs += __shfl_xor_sync(0xffffffffu, rs, 1);
        rs += __shfl_xor_sync(0xffffffffu, rs, 2);
        rs += __shfl_xor_sync(0xffffffffu, rs, 4);
        l = l * alpha + rs;
        m = m_new;
        __syncwarp(); /* Ps[qi][:] written by the row's 8 lanes, all in this warp */

#pragma unroll
        for (int c = 0; c < NC; c++) {
            o[c][0] *= alpha, o[c][1] *= alpha, o[c][2] *= alpha, o[c][3] *= alpha;
        }
        for (int j = 0; j < BK; j++) {
            const float pj = Ps[qi][j];
#pragma unroll
            for (int c = 0; c < NC; c++) {
                const int d = 4 * kk + 32 * c;
                if (d < hdp) {
                    const float4 vv = *(const float4 *)&Vs[j][d];
                    o[c][0] = fmaf(pj, vv.x, o[c][0]);
                    o[c][1] = fmaf(pj, vv.y, o[c][1]);
                    o[c][2] = fmaf(pj, vv.z, o[c][2]);
                    o[c][3] = fmaf(pj, vv.w, o[c][3]);
                }
            }
        }
    }

    if (t >= n_q) return;
    const float inv = 1.0f / l;
    float *orow = out + (size_t)t * out_stride + (size_t)h * (size_t)hd;
#pragma unroll
    for (int c = 0; c < NC; c++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int d = 4 * kk + 32 * c + e;
            if (d < hd) orow[d] = o[c][e] * inv;
        }
}

static int launch_flash(float *out, const float *q, const float *k, const float *v, int n_q,
                        int n_kv, size_t q_stride, size_t kv_stride, size_t out_stride,
                        int n_batch, size_t batch_stride, int n_head, int hd, int group,
                        int causal, int off, cudaStream_t st) {
    const dim3 grid((unsigned)((n_q + FA_BQ - 1) / FA_BQ), (unsigned)n_head, (unsigned)n_batch);
    const float scale = 1.0f / sqrtf((float)hd); /* the CPU op's expression */
    switch (hd) {
    case 64:
        flash_attn_kernel<64><<<grid, FA_THREADS, 0, st>>>(
            out, q, k, v, n_q, n_kv, q_stride, kv_stride, out_stride, batch_stride, hd, group,
            causal, off, scale);
        break;
    case 80:
        flash_attn_kernel<80><<<grid, FA_THREADS, 0, st>>>(
            out, q, k, v, n_q, n_kv, q_stride, kv_stride, out_stride, batch_stride, hd, group,
            causal, off, scale);
        break;
    case 128:
        flash_attn_kernel<128><<<grid, FA_THREADS, 0, st>>>(
            out, q, k, v, n_q, n_kv, q_stride, kv_stride, out_stride, batch_stride, hd, group,
            causal, off, scale);
        break;
    default:
        flash_attn_kernel<0><<<grid, FA_THREADS, 0, st>>>(
            out, q, k, v, n_q, n_kv, q_stride, kv_stride, out_stride, batch_stride, hd, group,
            causal, off, scale);
        break;
    }
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------------------------------------
// Split-K decode

/* NI dims per lane (d = lane + 32i): head_dim ≤ 32·NI. */
template <int NI>
static __global__ void __launch_bounds__(DEC_THREADS)
attn_decode_kernel(float *__restrict__ part, float *__restrict__ out,
                   const float *__restrict__ q, const float *__restrict__ k,
                   const float *__restrict__ v, int n_kv_arg, const int32_t *__restrict__ pos,
                   int n_ctx, int hd, size_t kv_stride, int group, float scale) {
    __shared__ float sm_m[DEC_THREADS / 32], sm_l[DEC_THREADS / 32];
    __shared__ float sm_o[DEC_THREADS / 32][32 * NI];
    /* the context: from the host, or from *pos on the device (grid sized for n_ctx) */
    int n_kv = n_kv_arg;
    if (pos) {
        const int p = __ldg(pos);
        if (p < 0 || p >= n_ctx) return;
        n_kv = p + 1;
    }
    const int n_chunks = (n_kv + ATTN_CHUNK - 1) / ATTN_CHUNK;
    const int lane_id = threadIdx.x % 32, warp_id = threadIdx.x / 32;
    const int c = blockIdx.x, h = blockIdx.y;
    if (c >= n_chunks) return; /* whole block: past the context of this step */
    const float *kh = k + (size_t)(h / group) * (size_t)hd;
    const float *vh = v + (size_t)(h / group) * (size_t)hd;

    float qr[NI];
#pragma unroll
    for (int i = 0; i < NI; i++) {
        const int d = lane_id + 32 * i;
        qr[i] = d < hd ? __ldg(q + (size_t)h * (size_t)hd + d) : 0.0f;
    }

    /* this warp's keys [p0, p1): warp-uniform, so the shuffles below see all lanes */
    const int p0 = c * ATTN_CHUNK + warp_id * DEC_KEYS_PER_WARP;
    const int p1 = min(p0 + DEC_KEYS_PER_WARP, n_kv);
    float m = -INFINITY, l = 0.0f, o[NI];
#pragma unroll
    for (int i = 0; i < NI; i++) o[i] = 0.0f;

    for (int pb = p0; pb < p1; pb += 4) {
        float kr[4][NI], vr[4][NI];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const bool ok = pb + j < p1;
            const size_t row = (size_t)(pb + j) * kv_stride;
#pragma unroll
            for (int i = 0; i < NI; i++) {
                const int d = lane_id + 32 * i;
                kr[j][i] = ok && d < hd ? __ldg(kh + row + d) : 0.0f;
                vr[j][i] = ok && d < hd ? __ldg(vh + row + d) : 0.0f;
            }
        }
        float s[4];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float dot = 0.0f;
#pragma unroll
            for (int i = 0; i < NI; i++) dot = fmaf(qr[i], kr[j][i], dot);
            s[j] = pb + j < p1 ? warp_sum(dot) * scale : -INFINITY;
        }
        /* s[0] is a real key (pb < p1), so m_new is finite */
        const float m_new = fmaxf(fmaxf(m, fmaxf(s[0], s[1])), fmaxf(s[2], s[3]));
        const float alpha = expf(m - m_new); /* 0 while m = −inf */
        float e[4];
#pragma unroll
        for (int j = 0; j < 4; j++) e[j] = expf(s[j] - m_new); /* 0 for −inf */
        l = l * alpha + ((e[0] + e[1]) + (e[2] + e[3]));
#pragma unroll
        for (int i = 0; i < NI; i++) {
            float acc = o[i] * alpha;
#pragma unroll
            for (int j = 0; j < 4; j++) acc = fmaf(e[j], vr[j][i], acc);
            o[i] = acc;
        }
        m = m_new;
    }

    /* the four warps' (m, l, o) -> the chunk's */
    if (lane_id == 0) sm_m[warp_id] = m, sm_l[warp_id] = l;
#pragma unroll
    for (int i = 0; i < NI; i++) sm_o[warp_id][lane_id + 32 * i] = o[i];
    __syncthreads();
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < DEC_THREADS / 32; w++) M = fmaxf(M, sm_m[w]);
    float wgt[DEC_THREADS / 32], L = 0.0f;
#pragma unroll
    for (int w = 0; w < DEC_THREADS / 32; w++) { /* a warp without keys has m = −inf: weight 0 */
        wgt[w] = sm_m[w] == -INFINITY ? 0.0f : expf(sm_m[w] - M);
        L = fmaf(wgt[w], sm_l[w], L);
    }
    if (n_chunks == 1) { /* the whole context: the final output */
        const float inv = 1.0f / L;
        for (int d = threadIdx.x; d < hd; d += DEC_THREADS) {
            float O = 0.0f;
#pragma unroll
            for (int w = 0; w < DEC_THREADS / 32; w++) O = fmaf(wgt[w], sm_o[w][d], O);
            out[(size_t)h * (size_t)hd + d] = O * inv;
        }
        return;
    }
    float *pc = part + ((size_t)h * (size_t)n_chunks + (size_t)c) * (size_t)(hd + 2);
    for (int d = threadIdx.x; d < hd; d += DEC_THREADS) {
        float O = 0.0f;
#pragma unroll
        for (int w = 0; w < DEC_THREADS / 32; w++) O = fmaf(wgt[w], sm_o[w][d], O);
        pc[d] = O;
    }
    if (threadIdx.x == 0) pc[hd] = M, pc[hd + 1] = L;
}

/* out[h][d] = Σ_c o_c[d]·e^{m_c − M} / Σ_c l_c·e^{m_c − M}: grid n_head, threads over d. */
static __global__ void __launch_bounds__(DEC_THREADS)
attn_merge_kernel(float *__restrict__ out, const float *__restrict__ part, int n_chunks,
                  const int32_t *__restrict__ pos, int n_ctx, int hd) {
    if (pos) {
        const int p = __ldg(pos);
        if (p < 0 || p >= n_ctx) return;
        n_chunks = (p + 1 + ATTN_CHUNK - 1) / ATTN_CHUNK;
        if (n_chunks <= 1) return; /* attn_decode_kernel wrote the output */
    }
    const int h = blockIdx.x;
    const size_t stride = (size_t)(hd + 2);
    const float *ph = part + (size_t)h * (size_t)n_chunks * stride;
    float M = -INFINITY;
    for (int c = 0; c < n_chunks; c++) M = fmaxf(M, ph[c * stride + hd]);
    float L = 0.0f;
    for (int c = 0; c < n_chunks; c++)
        L = fmaf(ph[c * stride + hd + 1], expf(ph[c * stride + hd] - M), L);
    const float inv = 1.0f / L;
    for (int d = threadIdx.x; d < hd; d += DEC_THREADS) {
        float O = 0.0f;
        for (int c = 0; c < n_chunks; c++)
            O = fmaf(ph[c * stride + d], expf(ph[c * stride + hd] - M), O);
        out[(size_t)h * (size_t)hd + d] = O * inv;
    }
}

/* With pos NULL the context is n_kv; with pos set it is *pos + 1 at run time, the grid being
 * sized for n_kv = n_ctx positions (blocks past the live context exit at once). */
template <int NI>
static void launch_decode(float *part, float *out, const float *q, const float *k,
                          const float *v, int n_kv, const int32_t *pos, int n_head, int hd,
                          size_t kv_stride, int group, cudaStream_t st) {
    const int n_chunks = (n_kv + ATTN_CHUNK - 1) / ATTN_CHUNK;
    const float scale = 1.0f / sqrtf((float)hd);
    attn_decode_kernel<NI><<<dim3((unsigned)n_chunks, (unsigned)n_head), DEC_THREADS, 0, st>>>(
        part, out, q, k, v, n_kv, pos, n_kv, hd, kv_stride, group, scale);
    if (n_chunks > 1)
        attn_merge_kernel<<<(unsigned)n_head, DEC_THREADS, 0, st>>>(out, part, n_chunks, pos,
                                                                     n_kv, hd);
}

static void launch_decode_hd(float *part, float *out, const float *q, const float *k,
                             const float *v, int n_kv, const int32_t *pos, int n_head, int hd,
                             size_t kv_stride, int group, cudaStream_t st) {
#define PGK_DECODE(NI) \
    launch_decode<NI>(part, out, q, k, v, n_kv, pos, n_head, hd, kv_stride, group, st)
    if (hd <= 32) PGK_DECODE(1);
    else if (hd <= 64) PGK_DECODE(2);
    else if (hd <= 96) PGK_DECODE(3);
    else if (hd <= 128) PGK_DECODE(4);
    else PGK_DECODE(8);
#undef PGK_DECODE
}

// ---------------------------------------------------------------------------------------------
// Entry points

extern "C" size_t pg_cuda_attention_scratch(int n_head, int n_ctx, int head_dim) {
    if (n_head <= 0 || n_ctx <= 0 || head_dim <= 0) return 0;
    return (size_t)n_head * (size_t)((n_ctx + ATTN_CHUNK - 1) / ATTN_CHUNK) *
           (size_t)(head_dim + 2);
}

extern "C" int pg_cuda_attention(float *out, const float *q, const float *k, const float *v,
                                 int n, int pos0, int n_head, int n_head_kv, int head_dim,
                                 float *part, void *stream) {
    if (n <= 0) return 0;
    if (!out || !q || !k || !v || pos0 < 0 || n_head <= 0 || n_head_kv <= 0 ||
        n_head % n_head_kv || head_dim <= 0 || head_dim > ATTN_MAX_HD || n_head > 65535 ||
        n > 0x7fffffff - pos0)
        return PGK_EINVAL;
    cudaStream_t st = pgk_stream(stream);
    const int n_kv = pos0 + n, group = n_head / n_head_kv;
    const size_t q_stride = (size_t)n_head * (size_t)head_dim;
    const size_t kv_stride = (size_t)n_head_kv * (size_t)head_dim;
    if (n == 1 && (part || n_kv <= ATTN_CHUNK)) {
        launch_decode_hd(part, out, q, k, v, n_kv, NULL, n_head, head_dim, kv_stride, group, st);
        return (int)cudaGetLastError();
    }
    /* prefill (or decode without scratch): query t sees keys 0 .. pos0 + t */
    return launch_flash(out, q, k, v, n, n_kv, q_stride, kv_stride, q_stride, 1, 0, n_head,
                        head_dim, group, 1, pos0, st);
}

extern "C" int pg_cuda_attention_full(float *out, const float *q, const float *k, const float *v,
                                      int n_q, int n_kv, size_t q_stride, size_t kv_stride,
                                      int n_batch, size_t batch_stride, int n_head, int head_dim,
                                      int causal, void *stream) {
    if (n_q <= 0 || n_kv <= 0 || n_batch <= 0) return 0;
    if (!out || !q || !k || !v || n_head <= 0 || n_head > 65535 || n_batch > 65535 ||
        head_dim <= 0 || head_dim > ATTN_MAX_HD || (causal && n_kv < n_q))
        return PGK_EINVAL;
    const size_t out_stride = (size_t)n_head * (size_t)head_dim;
    return launch_flash(out, q, k, v, n_q, n_kv, q_stride, kv_stride, out_stride, n_batch,
                        batch_stride, n_head, head_dim, 1, causal != 0, causal ? n_kv - n_q : 0,
                        pgk_stream(stream));
}

extern "C" int pg_cuda_attention_decode_at(float *out, const float *q, const float *k,
                                           const float *v, const int32_t *pos, int n_ctx,
                                           int n_head, int n_head_kv, int head_dim, float *part,
                                           void *stream) {
    if (n_ctx <= 0) return 0;
    if (!out || !q || !k || !v || !pos || (!part && n_ctx > ATTN_CHUNK) || n_head <= 0 ||
        n_head_kv <= 0 || n_head % n_head_kv || head_dim <= 0 || head_dim > ATTN_MAX_HD ||
        n_head > 65535)
        return PGK_EINVAL;
    launch_decode_hd(part, out, q, k, v, n_ctx, pos, n_head, head_dim,
                     (size_t)n_head_kv * (size_t)head_dim, n_head / n_head_kv,
                     pgk_stream(stream));
    return (int)cudaGetLastError();
}
