/*
 * weight.c — GGUF tensors as pg_weight views (see weight.h).
 */
#include "weight.h"

#include "gguf/dtype.h"

pg_status pg_weight_from_gguf(const gguf_file *f, const char *name, int64_t n_in, int64_t n_out,
                              pg_weight *w) {
    const gguf_tensor *t;
    int64_t ne[2] = {n_in, n_out};
    pg_status s = gguf_get_tensor(f, name, 2, ne, &t);
    if (s != PG_OK) return s;
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = n_out;
    w->row_bytes = pg_dtype_row_bytes(t->type, n_in);
    w->data = t->data;
    return PG_OK;
}
