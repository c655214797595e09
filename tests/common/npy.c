/*
 * npy.c — a small .npy reader for the tests (see npy.h).
 */
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(FILE *f, const char *path, const char *why) {
    fprintf(stderr, "npy: %s: %s\n", path, why);
    if (f) fclose(f);
    return -1;
}

/* The value after 'key': in the header dict, or NULL. */
static const char *field(const char *header, const char *key) {
    const char *p = strstr(header, key);
    if (!p) return NULL;
    p = strchr(p + strlen(key), ':');
    if (!p) return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

int npy_load(const char *path, npy_array *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return fail(NULL, path, "cannot open");
    unsigned char pre[10];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
        return fail(f, path, "not a .npy file");
    size_t hlen;
    if (pre[6] == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else {
        unsigned char b[2];
        if (fread(b, 1, 2, f) != 2) return fail(f, path, "truncated header");
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)b[0] << 16 | (size_t)b[1] << 24;
    }
    char *h = calloc(1, hlen + 1);
    if (!h || fread(h, 1, hlen, f) != hlen) {
        free(h);
        return fail(f, path, "truncated header");
    }
    const char *d = field(h, "'descr'"), *fo = field(h, "'fortran_order'"),
               *sh = field(h, "'shape'");
    if (!d || !fo || !sh || *d != '\'' || *sh != '(') {
        free(h);
        return fail(f, path, "header lacks descr/fortran_order/shape");
    }
    size_t i = 0;
    for (d++; *d && *d != '\'' && i < sizeof out->dtype - 1; d++) out->dtype[i++] = *d;
    if (strncmp(fo, "False", 5) != 0 || out->dtype[0] == '>') {
        free(h);
        return fail(f, path, "Fortran order or big-endian data");
    }
    out->item = (size_t)atoi(out->dtype + 2);
    out->n = 1;
    for (sh++; *sh && *sh != ')';) {
        while (*sh == ' ' || *sh == ',') sh++;
        if (*sh == ')') break;
        if (out->n_dims == 8) {
            free(h);
            return fail(f, path, "more than 8 dims");
        }
        char *end;
        long long v = strtoll(sh, &end, 10);
        if (end == sh) break;
        out->shape[out->n_dims++] = v;
        out->n *= (size_t)v;
        sh = end;
    }
    free(h);
    out->data = malloc(out->n * out->item + 1);
    if (!out->data || fread(out->data, out->item, out->n, f) != out->n) {
        npy_free(out);
        return fail(f, path, "truncated data");
    }
    fclose(f);
    return 0;
}

void npy_free(npy_array *a) {
    free(a->data);
    a->data = NULL;
}

double *npy_as_f64(const npy_array *a) {
    double *o = malloc((a->n ? a->n : 1) * sizeof *o);
    if (!o) return NULL;
    const char *t = a->dtype + 1;
    for (size_t i = 0; i < a->n; i++) {
        const unsigned char *p = (const unsigned char *)a->data + i * a->item;
        if (!strcmp(t, "f4")) { float v; memcpy(&v, p, 4); o[i] = v; }
        else if (!strcmp(t, "f8")) { memcpy(&o[i], p, 8); }
        else if (!strcmp(t, "u1")) { o[i] = *p; }
        else if (!strcmp(t, "i8")) { int64_t v; memcpy(&v, p, 8); o[i] = (double)v; }
        else if (!strcmp(t, "i4")) { int32_t v; memcpy(&v, p, 4); o[i] = v; }
        else { free(o); fprintf(stderr, "npy: dtype %s not supported\n", a->dtype); return NULL; }
    }
    return o;
}

float *npy_as_f32(const npy_array *a) {
    double *d = npy_as_f64(a);
    if (!d) return NULL;
    float *o = malloc((a->n ? a->n : 1) * sizeof *o);
    if (o)
        for (size_t i = 0; i < a->n; i++) o[i] = (float)d[i];
    free(d);
    return o;
}
