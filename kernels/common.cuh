/*
 * common.cuh — device helpers shared by the kernels: warp reductions, ggml's element encodings
 * (the bit-exact half/bfloat conversions of lib/gguf/dtype.c, the Q8_0/Q4_0 block layouts),
 * byte loads at the 2-byte alignment that quantized blocks guarantee, and launch helpers.
 *
 * Only the .cu files of kernels/ include this; the C side sees kernels.h alone.
 */
#ifndef PG_KERNELS_COMMON_CUH
#define PG_KERNELS_COMMON_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

// ---- types (ggml's ids, as lib/gguf/dtype.h: kernels/ stays free of the C library's headers)

enum {
    PGK_F32 = 0,
    PGK_F16 = 1,
    PGK_Q4_0 = 2,
    PGK_Q8_0 = 8,
    PGK_BF16 = 30,
};

#define PGK_QK 32            /* elements per Q8_0 / Q4_0 block */
#define PGK_Q8_0_BYTES 34    /* fp16 d, 32 × int8 */
#define PGK_Q4_0_BYTES 18    /* fp16 d, 16 bytes of nibbles: element j<16 low, j+16 high */

/* cudaError_t as the int kernels.h returns, for argument errors found before any launch. */
#define PGK_EINVAL ((int)cudaErrorInvalidValue)

static inline cudaStream_t pgk_stream(void *s) { return (cudaStream_t)s; }

// ---- warp reductions (all 32 lanes take part and get the result)

static __device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

static __device__ __forceinline__ double warp_sum_d(double v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

static __device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// ---- element encodings

/* IEEE half -> float: exact (every half is a float). */
static __device__ __forceinline__ float pgk_h2f(uint16_t h) {
    return __half2float(__ushort_as_half(h));
}

static __device__ __forceinline__ float pgk_bf2f(uint16_t h) {
    return __uint_as_float((uint32_t)h << 16);
}

/* pg_fp32_to_fp16 of dtype.c, bit for bit (round to nearest even, NaN quieted with its top
 * payload bits kept, overflow to infinity): the merge writes the bytes the CPU would. */
static __device__ __forceinline__ uint16_t pgk_f2h_exact(float f) {
    const uint32_t x = __float_as_uint(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (ax >= 0x38800000u) {
        const uint32_t a = ax - 0x38000000u;
        return (uint16_t)(sign | ((a + 0xfffu + ((a >> 13) & 1u)) >> 13));
    }
    const uint32_t e = ax >> 23;
    if (e < 102) return sign;
    const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    q += (rem > half) || (rem == half && (q & 1u));
    return (uint16_t)(sign | q);
}

/* pg_fp32_to_bf16 of dtype.c (ggml_compute_fp32_to_bf16), bit for bit. */
static __device__ __forceinline__ uint16_t pgk_f2bf_exact(float f) {
    const uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

// ---- loads

/* Quantized blocks are 34 or 18 bytes, so their fields are only 2-byte aligned: a 32-bit word
 * at such an address is read as two halves. Read-only path (weights do not change during a
 * kernel). */
static __device__ __forceinline__ uint32_t ld_u16(const uint8_t *p) {
    return (uint32_t)__ldg((const unsigned short *)p);
}

static __device__ __forceinline__ uint32_t ld_u32_a2(const uint8_t *p) {
    const unsigned short *h = (const unsigned short *)p;
    return (uint32_t)__ldg(h) | ((uint32_t)__ldg(h + 1) << 16);
}

/* Element k of a weight row of any supported type, as float (the generic paths). */
static __device__ __forceinline__ float pgk_elem(int type, const uint8_t *row, int64_t k) {
    switch (type) {
    case PGK_F32: return __ldg((const float *)row + k);
    case PGK_F16: return pgk_h2f(ld_u16(row + 2 * k));
    case PGK_BF16: return pgk_bf2f((uint16_t)ld_u16(row + 2 * k));
    case PGK_Q8_0: {
        const uint8_t *b = row + (k / PGK_QK) * PGK_Q8_0_BYTES;
        const int j = (int)(k % PGK_QK);
        return (float)(int8_t)__ldg(b + 2 + j) * pgk_h2f(ld_u16(b));
    }
    case PGK_Q4_0: {
        const uint8_t *b = row + (k / PGK_QK) * PGK_Q4_0_BYTES;
        const int j = (int)(k % PGK_QK);
        const uint32_t byte = __ldg(b + 2 + (j & 15));
        const int q = (int)(j < 16 ? (byte & 0x0fu) : (byte >> 4)) - 8;
        return (float)q * pgk_h2f(ld_u16(b));
    }
    }
    return 0.0f;
}

static inline int pgk_type_ok(int type) {
    return type == PGK_F32 || type == PGK_F16 || type == PGK_BF16 || type == PGK_Q8_0 ||
           type == PGK_Q4_0;
}

/* Bytes one row of n elements needs in type (0 when n does not fill whole blocks). */
static inline size_t pgk_row_bytes_min(int type, int64_t n) {
    switch (type) {
    case PGK_F32: return (size_t)n * 4;
    case PGK_F16: case PGK_BF16: return (size_t)n * 2;
    case PGK_Q8_0: return n % PGK_QK ? 0 : (size_t)(n / PGK_QK) * PGK_Q8_0_BYTES;
    case PGK_Q4_0: return n % PGK_QK ? 0 : (size_t)(n / PGK_QK) * PGK_Q4_0_BYTES;
    }
    return 0;
}

/* The generic paths read F32 rows as floats and everything else in 16-bit pieces: rows must
 * start at multiples of 4 (F32) or 2 bytes. cudaMalloc'd weights with ggml row sizes always do. */
static inline int pgk_rows_aligned(int type, const void *w, size_t row_bytes) {
    const uintptr_t a = type == PGK_F32 ? 4 : 2;
    return (((uintptr_t)w | (uintptr_t)row_bytes) % a) == 0;
}

/* Blocks for a grid-stride loop over n items of `per_block` each, capped so that the grid
 * stays small enough to launch and large enough to fill any of the target GPUs. */
static inline unsigned pgk_grid_1d(size_t n, unsigned per_block, unsigned cap) {
    size_t g = (n + per_block - 1) / per_block;
    if (g < 1) g = 1;
    return g > cap ? cap : (unsigned)g;
}

#endif
