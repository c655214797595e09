/*
 * encoder_ops.h — the CPU backend's ImageBind-only ops that need no SIMD kernel: patch im2col,
 * the L2-normalise-scale-and-mean of the encoder outputs, and llama_proj (backend.h im2col,
 * l2norm_sum, project). cpu_backend.c wires them into its op table; project is split over the
 * pool by rows.
 */
#ifndef PG_CPU_ENCODER_OPS_H
#define PG_CPU_ENCODER_OPS_H

#include "backend/backend.h"

/* backend.h im2col, on the calling thread (pure copies). */
void pg_cpu_im2col(float *out, const float *in, int n_items, const pg_conv_geom *g);

/* backend.h l2norm_sum, on the calling thread. */
void pg_cpu_l2norm_sum(float *out, const float *x, int n_rows, int dim, float scale,
                       float weight, int accumulate);

/* backend.h project for output rows [r0, r1). */
void pg_cpu_project_rows(const pg_weight *w, const float *bias, const float *u, float *y,
                         int accumulate, int64_t r0, int64_t r1);

#endif
