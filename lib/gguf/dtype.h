/*
 * dtype.h — tensor element types with ggml's exact encodings: F32, F16 (IEEE half), BF16,
 * Q8_0 (blocks of 32: fp16 scale d, 32 int8; x = d*q) and Q4_0 (blocks of 32: fp16 scale d,
 * 16 bytes of nibbles; element j<16 is the low nibble of byte j, element j+16 the high nibble;
 * x = d*(q-8)). Values are ggml's type ids, as stored in GGUF.
 */
#ifndef PG_DTYPE_H
#define PG_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum pg_dtype {
    PG_DTYPE_F32 = 0,
    PG_DTYPE_F16 = 1,
    PG_DTYPE_Q4_0 = 2,
    PG_DTYPE_Q8_0 = 8,
    PG_DTYPE_BF16 = 30,
} pg_dtype;

#define PG_QK 32 /* elements per Q8_0 / Q4_0 block */

typedef struct { uint16_t d; int8_t qs[PG_QK]; } pg_block_q8_0;      /* 34 bytes */
typedef struct { uint16_t d; uint8_t qs[PG_QK / 2]; } pg_block_q4_0; /* 18 bytes */

/* 1 when t is one of the five types above. */
int pg_dtype_supported(uint32_t t);
/* 1 when t is a type id ggml defines (supported here or not): lets a reader tell
 * "Q4_1 is not supported" (PG_ERR_UNSUPPORTED) from "type 999 is garbage" (PG_ERR_FORMAT). */
int pg_dtype_known_ggml(uint32_t t);
/* ggml's name of t ("F32", "Q8_0", also "Q4_1" etc.), or "type N" for an unknown id (in a
 * per-thread buffer valid until the next such call on this thread). */
const char *pg_dtype_name(uint32_t t);
/* Elements per block (1 or 32) and bytes per block. 0 for unsupported types. */
int64_t pg_dtype_block_elems(uint32_t t);
size_t pg_dtype_block_bytes(uint32_t t);
/* Bytes of a row of n elements; n must be a multiple of the block size. */
size_t pg_dtype_row_bytes(uint32_t t, int64_t n);

float pg_fp16_to_fp32(uint16_t h);
uint16_t pg_fp32_to_fp16(float f);  /* round to nearest even, like _cvtss_sh / numpy */
float pg_bf16_to_fp32(uint16_t h);
uint16_t pg_fp32_to_bf16(float f);  /* round to nearest even, NaN kept quiet, like ggml */

/* Expands n elements (a multiple of the block size) of type t to float. */
void pg_dequantize_row(uint32_t t, const void *src, float *dst, int64_t n);
/* Encodes n floats as type t with ggml's reference quantizers (quantize_row_q8_0_ref /
 * quantize_row_q4_0_ref), so the bytes equal what ggml/gguf-py write. */
void pg_quantize_row(uint32_t t, const float *src, void *dst, int64_t n);
/* dot(row of type t, x) for n elements, accumulated in float (F32 activations, no activation
 * quantization: the CPU path is the oracle). */
float pg_vec_dot(uint32_t t, const void *row, const float *x, int64_t n);

/* Internal, for tests and benchmarks: the implementations pg_vec_dot / pg_dequantize_row choose
 * between, once per process. The _generic ones are portable C and the reference. The _avx2 ones
 * (dtype_avx2.c) use AVX2+FMA+F16C and may only be called when pg_dtype_avx2_usable() is 1: this
 * build has them (x86-64, GCC or Clang) and the CPU runs them. Safe from any thread. */
float pg_vec_dot_generic(uint32_t t, const void *row, const float *x, int64_t n);
void pg_dequantize_row_generic(uint32_t t, const void *src, float *dst, int64_t n);
int pg_dtype_avx2_usable(void);
float pg_vec_dot_avx2(uint32_t t, const void *row, const float *x, int64_t n);
void pg_dequantize_row_avx2(uint32_t t, const void *src, float *dst, int64_t n);

#endif
