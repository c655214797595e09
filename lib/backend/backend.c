/*
 * backend.c — what every backend shares: freeing through the op table.
 */
#include "backend.h"

void pg_backend_free(pg_backend *b) {
    if (b) b->ops->destroy(b);
}
