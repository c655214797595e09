/*
 * weight.h — a 2-D tensor of a GGUF file seen as a pg_weight (the matmul operand of
 * lib/backend/backend.h), shared by the models that load weights (llama.c, imagebind.c).
 */
#ifndef PG_WEIGHT_H
#define PG_WEIGHT_H

#include "backend/backend.h"
#include "gguf/gguf.h"

/* The tensor name with ne = {n_in, n_out} as a view into the mapping. PG_ERR_FORMAT naming the
 * tensor, the expected and the found shape; PG_ERR_UNSUPPORTED for its type. */
pg_status pg_weight_from_gguf(const gguf_file *f, const char *name, int64_t n_in, int64_t n_out,
                              pg_weight *w);

#endif
