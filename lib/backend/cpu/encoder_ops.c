/*
 * encoder_ops.c — the CPU backend's im2col, l2norm_sum and project (encoder_ops.h; semantics in
 * backend.h). These are the CUDA kernels' oracles (kernels/im2col.cu, encoder_head.cu,
 * llama_proj.cu), written in the same order of operations so that the two agree to the bit.
 */
#include "encoder_ops.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "gguf/dtype.h"

void pg_cpu_im2col(float *out, const float *in, int n_items, const pg_conv_geom *g) {
    const int gh = (g->height - g->k_h) / g->s_h + 1, gw = (g->width - g->k_w) / g->s_w + 1;
    const size_t plane = (size_t)g->height * (size_t)g->width;
    const size_t item_in = (size_t)g->channels * (size_t)g->frames * plane;
    const size_t n_feat = (size_t)g->channels * g->k_t * g->k_h * g->k_w;
    for (int it = 0; it < n_items; it++) {
        const float *src = in + (size_t)it * item_in;
        for (int ph = 0; ph < gh; ph++)
            for (int pw = 0; pw < gw; pw++) {
                float *row = out + (((size_t)it * gh + ph) * gw + pw) * n_feat;
                for (int c = 0; c < g->channels; c++)
                    for (int t = 0; t < g->k_t; t++) {
                        const int frame = t < g->frames ? t : g->frames - 1;
                        const float *fr = src + (size_t)(c * g->frames + frame) * plane;
                        for (int i = 0; i < g->k_h; i++) /* one kernel row: k_w floats */
                            memcpy(row + ((size_t)(c * g->k_t + t) * g->k_h + i) * g->k_w,
                                   fr + (size_t)(ph * g->s_h + i) * g->width +
                                       (size_t)pw * g->s_w,
                                   sizeof(float) * (size_t)g->k_w);
                    }
            }
    }
}

void pg_cpu_l2norm_sum(float *out, const float *x, int n_rows, int dim, float scale,
                       float weight, int accumulate) {
    if (!accumulate) memset(out, 0, sizeof(float) * (size_t)dim);
    for (int c = 0; c < n_rows; c++) {
        const float *row = x + (size_t)c * (size_t)dim;
        double ss = 0.0;
        for (int d = 0; d < dim; d++) ss += (double)row[d] * row[d];
        float nrm = (float)sqrt(ss);
        if (!(nrm > 1e-12f)) nrm = 1e-12f; /* F.normalize: clamp_min(eps) */
        for (int d = 0; d < dim; d++) {
            float v = row[d] / nrm;
            if (scale != 1.0f) v = scale * v;
            out[d] = out[d] + weight * v;
        }
    }
}

void pg_cpu_project_rows(const pg_weight *w, const float *bias, const float *u, float *y,
                         int accumulate, int64_t r0, int64_t r1) {
    float row[4096]; /* one dequantised row at a time; llama_proj has 1024 inputs */
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *src = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        double s = 0.0;
        for (int64_t k0 = 0; k0 < w->n_in; k0 += 4096) {
            const int64_t nk = w->n_in - k0 < 4096 ? w->n_in - k0 : 4096;
            const float *wr;
            if (w->type == PG_DTYPE_F32 && ((uintptr_t)src % sizeof(float)) == 0) {
                wr = (const float *)(const void *)src + k0;
            } else {
                /* whole blocks: k0 is a multiple of 4096, so of every block size */
                pg_dequantize_row(w->type, src + pg_dtype_row_bytes(w->type, k0), row, nk);
                wr = row;
            }
            for (int64_t k = 0; k < nk; k++) s += (double)wr[k] * (double)u[k0 + k];
        }
        const float v = (float)(s + (bias ? (double)bias[r] : 0.0));
        y[r] = accumulate ? y[r] + v : v;
    }
}
