/*
 * random_llama.h — writes a random-weight `llama`-architecture GGUF v3 laid out exactly as
 * llama.cpp writes one (keys, key types, tensor names, ggml shapes, tensor order), with the demo
 * vocabulary of tools/demo_vocab.h. Used by pandagpt-make-demo and pandagpt-bench.
 *
 * Weights, as in shared/reference/llama: token_embd ~ N(0,1), every linear ~ N(0, 1/fan_in),
 * norm weights 1 + 0.1·N(0,1). Every row of every tensor has its own splitmix64 stream seeded
 * from (seed, tensor name, row), so the file is the same whatever the thread count or the order
 * the writer asks for bytes in, and an F16 file holds the F32 file's values rounded.
 * Tensor bytes are produced while the file is written (gguf_writer_add_tensor_fill), by all
 * online cores, so 7B-sized files stream without being held in memory (tools/random_tensor.h).
 * With same_layers every block holds block 0's bytes: a 13B file then costs one block's random
 * numbers (~1/40 of them) and the rest is copying, for benchmarks, whose work does not depend on
 * the values (every block is still its own tensors at its own offsets).
 */
#ifndef PG_RANDOM_LLAMA_H
#define PG_RANDOM_LLAMA_H

#include <stdint.h>

#include "pandagpt.h"

/* The blueprint of the model to write. */
typedef struct random_llama_config {
    int32_t n_embd;    /* hidden size */
    int32_t n_layer;   /* transformer blocks */
    int32_t n_head;    /* query heads; head_dim = n_embd / n_head */
    int32_t n_head_kv; /* key/value heads; n_head / n_head_kv queries share one (GQA) */
    int32_t n_ff;      /* FFN hidden size */
    int32_t n_vocab;   /* vocabulary rows (demo_vocab pads to it) */
    int32_t n_ctx;     /* llama.context_length */
    uint32_t type;     /* pg_dtype of the 2-D weights (norms are F32); Q8_0/Q4_0 tensors whose
                          row is not a multiple of 32 fall back to F16, as llama-quantize does */
    uint64_t seed;
    int same_layers;   /* nonzero: blocks 1.. are copies of block 0 (token_embd, block 0, output
                          and output_norm are the bytes the full file has); default 0 */
} random_llama_config;

/* Fills *c for a named size: "tiny" (the demo: 256 / 4 layers / 8 heads / 688, vocab 1320 —
 * what the corpus teaches, no padding), "1b" (TinyLlama-1.1B: 2048 / 22 / 32 heads with 4
 * key/value heads / 5632, vocab 32000), "7b" (LLaMA-7B: 4096 / 32 / 32 / 11008, vocab 32000) or
 * "13b" (LLaMA-13B as Vicuna-13B v0 ships it: 5120 / 40 / 40 / 13824, vocab 32001 with [PAD]);
 * type F16, seed 1234, n_ctx 2048, same_layers 0. Returns 0 for an unknown name. */
int random_llama_preset(const char *name, random_llama_config *c);

/* The llama.cpp general.file_type (LLAMA_FTYPE_*) of a weight type: F32 0, F16 1, Q4_0 2,
 * Q8_0 7, BF16 32. */
uint32_t random_llama_file_type(uint32_t type);

/* Parameter count (every tensor's elements). */
uint64_t random_llama_n_params(const random_llama_config *c);

/* Writes the model to path; general.name is name (NULL: "libpandagpt random llama").
 * Errors: PG_ERR_INVALID_ARGUMENT (inconsistent config, unsupported type), PG_ERR_IO,
 * PG_ERR_OUT_OF_MEMORY, each with a message (pg_last_error). */
pg_status random_llama_write(const random_llama_config *c, const char *path, const char *name);

#endif
