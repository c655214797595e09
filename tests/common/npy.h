/*
 * npy.h — reads NumPy .npy files (format 1.0/2.0, little-endian, C order) for the tests: the
 * reference data in ../shared/reference is stored this way.
 */
#ifndef PG_TEST_NPY_H
#define PG_TEST_NPY_H

#include <stddef.h>
#include <stdint.h>

typedef struct npy_array {
    char dtype[8];      /* "<f4", "<f8", "|u1", "<i8", ... as in the header */
    int n_dims;
    int64_t shape[8];
    size_t n;           /* elements */
    size_t item;        /* bytes per element */
    void *data;         /* malloc'd raw elements */
} npy_array;

/* 0 on success; -1 with a message on stderr otherwise (missing file, bad header, Fortran order,
 * big-endian). */
int npy_load(const char *path, npy_array *out);
void npy_free(npy_array *a);
/* The elements as a malloc'd float array (f4, f8, u1, i8, i4 converted); NULL on error. */
float *npy_as_f32(const npy_array *a);
/* The elements as malloc'd doubles; NULL on error. */
double *npy_as_f64(const npy_array *a);

#endif
