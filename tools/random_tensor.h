/*
 * random_tensor.h — random-weight tensors streamed into a GGUF writer: the machinery shared by
 * tools/random_llama.c and tools/random_imagebind.c.
 *
 * Every element is mean + std·N(0,1) (Box-Muller on splitmix64). Every row of every tensor has
 * its own stream, seeded from (file seed, tensor name, row), so a file is the same whatever the
 * thread count or the order the writer asks for bytes in, and an F16 file holds the F32 file's
 * values rounded. Bytes are produced while the file is written (gguf_writer_add_tensor_fill), by
 * all online cores, so files bigger than memory stream without being held in it.
 */
#ifndef PG_RANDOM_TENSOR_H
#define PG_RANDOM_TENSOR_H

#include <stdint.h>

#include "gguf/gguf.h"
#include "pandagpt.h"

/* One tensor to generate. */
typedef struct random_tensor_spec {
    char name[64];     /* GGUF name (ggml allows 63 characters) */
    uint32_t type;     /* pg_dtype written */
    int n_dims;        /* 1 or 2 */
    int64_t ne[2];     /* ggml order: ne[0] is the row length; ne[1] = 1 for a vector */
    float mean, std;   /* element ~ mean + std·N(0,1) */
} random_tensor_spec;

/* The generators of one file, alive from random_tensors_add until after gguf_writer_write. */
typedef struct random_tensors random_tensors;

/* Adds the n tensors of specs to w, in that order, each as a fill tensor seeded from (seed,
 * name). specs is copied. *out (NULL on failure) must be freed with random_tensors_free after
 * the last gguf_writer_write / gguf_writer_to_memory of w. Not thread-safe for one *out; the
 * fill calls themselves use a pool of threads.
 * Errors: PG_ERR_INVALID_ARGUMENT (NULL argument, unsupported type, a row length that is not a
 * multiple of the type's block), PG_ERR_OUT_OF_MEMORY; each with a message naming who (label,
 * e.g. "random_llama") and which tensor. */
pg_status random_tensors_add(gguf_writer *w, const random_tensor_spec *specs, int32_t n,
                             uint64_t seed, const char *label, random_tensors **out);
void random_tensors_free(random_tensors *r);

/* The type a matrix whose rows have ne0 elements is stored in when type is asked for: type,
 * except F16 for a Q8_0/Q4_0 row that does not split into 32-element blocks (what
 * llama-quantize and tools/convert-pandagpt.py do). */
uint32_t random_tensor_matrix_type(uint32_t type, int64_t ne0);

/* The llama.cpp general.file_type (LLAMA_FTYPE_*) of a weight type: F32 0, F16 1, Q4_0 2,
 * Q8_0 7, BF16 32 (1 for anything else). */
uint32_t random_tensor_file_type(uint32_t type);

#endif
