/*
 * random_imagebind.h — writes a random-weight `imagebind` encoder GGUF v3 laid out exactly as
 * tools/convert-pandagpt.py writes one (docs/format.md §3): the same keys with the same types and
 * order, the same tensor names, shapes, types and order (per modality vision, audio, thermal,
 * depth, imu, then text when asked for, then llama_proj), for any widths, depths and head counts.
 * Used by tests and benchmarks of the encoders, which then need no checkpoint.
 *
 * Weights: matrices ~ N(0, 1/fan_in) (fan_in = the row length), text token_embed N(0, 0.02²),
 * LayerNorm weights 1 + 0.1·N(0,1); biases, cls_token, pos_embed, bias_k and bias_v 0.02·N(0,1).
 * The log_logit_scale keys are ImageBind's (audio ln 20, thermal ln 10, depth ln 5, imu ln 5,
 * text ln(1/0.07), its init). Generation is tools/random_tensor.h's: per-row streams seeded from
 * (seed, tensor name, row), the same bytes for any thread count, streamed while the file is
 * written, so the huge preset (3.4 GB in F32) is never held in memory.
 */
#ifndef PG_RANDOM_IMAGEBIND_H
#define PG_RANDOM_IMAGEBIND_H

#include <stdint.h>

#include "gguf/gguf.h"
#include "pandagpt.h"

/* The towers, in file order (text last, and only with with_text). */
enum {
    RANDOM_IMAGEBIND_VISION,
    RANDOM_IMAGEBIND_AUDIO,
    RANDOM_IMAGEBIND_THERMAL,
    RANDOM_IMAGEBIND_DEPTH,
    RANDOM_IMAGEBIND_IMU,
    RANDOM_IMAGEBIND_TEXT,
    RANDOM_IMAGEBIND_N_MODALITIES
};

/* One tower's blueprint; token counts and patch kernels are ImageBind's fixed geometry
 * (257, 229, 197, 197, 251, 77 tokens; patch_embed rows of 1176, 256, 256, 256, 48). */
typedef struct random_imagebind_tower {
    int32_t width;   /* E; the MLP is 4E */
    int32_t blocks;  /* transformer blocks */
    int32_t heads;   /* attention heads; must divide E */
} random_imagebind_tower;

/* The blueprint of the file to write. */
typedef struct random_imagebind_config {
    random_imagebind_tower m[RANDOM_IMAGEBIND_N_MODALITIES]; /* indexed RANDOM_IMAGEBIND_* */
    int32_t dim;            /* joint embedding size D: every head is [D, E] */
    int with_text;          /* nonzero: also the text tower (m[RANDOM_IMAGEBIND_TEXT]) */
    int32_t llama_proj_out; /* H of llama_proj [H, D] + [H]; 0: no llama_proj */
    uint32_t type;          /* pg_dtype of the matrices (docs/format.md: patch_embed, in_proj,
                               out_proj, fc1, fc2, head, text.token_embed, llama_proj.weight);
                               everything else is F32. A Q8_0/Q4_0 matrix whose row is not a
                               multiple of 32 is written F16 */
    uint64_t seed;
} random_imagebind_config;

/* Fills *c for a named size: "tiny" (the widths of shared/reference/imagebind-tiny: vision
 * 64/2 blocks/4 heads, audio 48/2/4, thermal 40/2/4, depth 32/2/4, imu 24/2/2, text 8/2/2,
 * D 32) or "huge" (ImageBind-huge: vision 1280/32/16, audio 768/12/12, thermal 768/12/12,
 * depth 384/12/8, imu 512/6/8, text 1024/24/16, D 1024). Both: type F32, with_text 0,
 * llama_proj_out 0 (set it to the LLM's n_embd), seed 4321. Returns 0 for an unknown name
 * (*c untouched). */
int random_imagebind_preset(const char *name, random_imagebind_config *c);

/* Elements of every tensor the file holds for c (text only with with_text, llama_proj only
 * with llama_proj_out > 0). c must be valid (as random_imagebind_write checks). */
uint64_t random_imagebind_n_params(const random_imagebind_config *c);

/* Writes the file to path; general.name is name (NULL: "libpandagpt random imagebind").
 * Thread-safe for distinct paths; uses all online cores.
 * Errors: PG_ERR_INVALID_ARGUMENT (NULL c or path, a non-positive width, block or head count
 * in a tower written, a width its heads do not divide, D <= 0, llama_proj_out < 0, unsupported
 * type), PG_ERR_IO, PG_ERR_OUT_OF_MEMORY, each with a message (pg_last_error). */
pg_status random_imagebind_write(const random_imagebind_config *c, const char *path,
                                 const char *name);

/* The matmul work of one clip through tower ("vision", "audio", "thermal", "depth", "imu") of
 * an imagebind file f (random or converted), for the benchmarks' FLOP columns and floors,
 * counted from f's keys: 2·rows·n_in·n_out of every matmul (patch embedding over the L−1 patch
 * tokens, in_proj, out_proj, fc1, fc2 over L rows, the head over the CLS row) plus attention's
 * 4·L·L_k·E per block (Q·Kᵀ and P·V; L_k = L + 1 with bias_kv). LayerNorm, GELU, softmax and
 * im2col are not counted. 0 when f lacks the tower's keys. */
double random_imagebind_clip_flops(const gguf_file *f, const char *tower);

#endif
