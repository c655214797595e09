/*
 * random_llama.c — a random-weight llama GGUF, streamed to disk (see random_llama.h) by the
 * generators of random_tensor.c; with same_layers, block 0 is generated once into memory and
 * every block's tensors are copied from it while the file is written.
 */
#include "random_llama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "demo_vocab.h"
#include "gguf/dtype.h"
#include "gguf/gguf.h"
#include "random_tensor.h"

/* ---- Presets -------------------------------------------------------------------------------- */

int random_llama_preset(const char *name, random_llama_config *c) {
    static const struct {
        const char *name;
        int32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab;
    } k_presets[] = {
        {"tiny", 256, 4, 8, 8, 688, 1320},
        {"1b", 2048, 22, 32, 4, 5632, 32000}, /* TinyLlama-1.1B, GQA included */
        {"7b", 4096, 32, 32, 32, 11008, 32000},
        {"13b", 5120, 40, 40, 40, 13824, 32001}, /* Vicuna v0 appends [PAD] to LLaMA's 32000 */
    };
    for (size_t i = 0; i < sizeof k_presets / sizeof k_presets[0]; i++) {
        if (strcmp(name, k_presets[i].name) != 0) continue;
        *c = (random_llama_config){
            .n_embd = k_presets[i].n_embd, .n_layer = k_presets[i].n_layer,
            .n_head = k_presets[i].n_head, .n_head_kv = k_presets[i].n_head_kv,
            .n_ff = k_presets[i].n_ff, .n_vocab = k_presets[i].n_vocab, .n_ctx = 2048,
            .type = PG_DTYPE_F16, .seed = 1234,
        };
        return 1;
    }
    return 0;
}

uint32_t random_llama_file_type(uint32_t type) { return random_tensor_file_type(type); }

uint64_t random_llama_n_params(const random_llama_config *c) {
    uint64_t e = (uint64_t)c->n_embd, kv = e / (uint64_t)c->n_head * (uint64_t)c->n_head_kv;
    uint64_t layer = 2 * e + 2 * e * e + 2 * e * kv + 3 * e * (uint64_t)c->n_ff;
    return 2 * e * (uint64_t)c->n_vocab + (uint64_t)c->n_layer * layer + e;
}

/* ---- The file ------------------------------------------------------------------------------- */

static void add_tensor(const random_llama_config *c, random_tensor_spec *t, int32_t *n,
                       const char *name, int n_dims, int64_t ne0, int64_t ne1, float mean,
                       float std) {
    random_tensor_spec *s = &t[(*n)++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->type = n_dims == 1 ? PG_DTYPE_F32 : random_tensor_matrix_type(c->type, ne0);
    s->n_dims = n_dims, s->ne[0] = ne0, s->ne[1] = ne1, s->mean = mean, s->std = std;
}

/* llama.cpp's tensor order: token_embd, the blocks, output, output_norm. Linears are
 * N(0, 1/fan_in), fan_in being ne[0]. */
static int32_t list_tensors(const random_llama_config *c, random_tensor_spec *t) {
    int64_t e = c->n_embd, kv = e / c->n_head * c->n_head_kv, ff = c->n_ff;
    float se = (float)(1.0 / sqrt((double)e)), sf = (float)(1.0 / sqrt((double)ff));
    int32_t n = 0;
    char nm[48];
    add_tensor(c, t, &n, "token_embd.weight", 2, e, c->n_vocab, 0.0f, 1.0f);
    for (int l = 0; l < c->n_layer; l++) {
#define BLK(suffix) (snprintf(nm, sizeof nm, "blk.%d." suffix ".weight", l), nm)
        add_tensor(c, t, &n, BLK("attn_norm"), 1, e, 1, 1.0f, 0.1f);
        add_tensor(c, t, &n, BLK("attn_q"), 2, e, e, 0.0f, se);
        add_tensor(c, t, &n, BLK("attn_k"), 2, e, kv, 0.0f, se);
        add_tensor(c, t, &n, BLK("attn_v"), 2, e, kv, 0.0f, se);
        add_tensor(c, t, &n, BLK("attn_output"), 2, e, e, 0.0f, se);
        add_tensor(c, t, &n, BLK("ffn_norm"), 1, e, 1, 1.0f, 0.1f);
        add_tensor(c, t, &n, BLK("ffn_gate"), 2, e, ff, 0.0f, se);
        add_tensor(c, t, &n, BLK("ffn_up"), 2, e, ff, 0.0f, se);
        add_tensor(c, t, &n, BLK("ffn_down"), 2, ff, e, 0.0f, sf);
#undef BLK
    }
    add_tensor(c, t, &n, "output.weight", 2, e, c->n_vocab, 0.0f, se);
    add_tensor(c, t, &n, "output_norm.weight", 1, e, 1, 1.0f, 0.1f);
    return n;
}

/* ---- same_layers: every block a copy of block 0 ---------------------------------------------- */

#define BLOCK_TENSORS 9 /* per block, in list_tensors' order */

/* One block tensor's bytes, handed out by copy_fill however the writer chunks them. */
typedef struct block_copy {
    const uint8_t *src; /* block 0's tensor, inside block0's image */
    size_t nbytes, pos;
} block_copy;

static void copy_fill(void *ctx, void *dst, size_t nbytes) {
    block_copy *b = ctx;
    size_t k = b->nbytes - b->pos < nbytes ? b->nbytes - b->pos : nbytes;
    memcpy(dst, b->src + b->pos, k);
    if (k < nbytes) memset((uint8_t *)dst + k, 0, nbytes - k);
    b->pos += k;
}

/* Block 0 made once, in memory: a GGUF image of its tensors (by the same generators, so the
 * same bytes as in a full file) and a view of it. */
typedef struct block0 {
    void *image;
    gguf_file *f;
    block_copy *copies; /* (n_layer, BLOCK_TENSORS) */
} block0;

static void block0_free(block0 *b) {
    gguf_close(b->f);
    free(b->image);
    free(b->copies);
}

/* Adds the n_layer·BLOCK_TENSORS block tensors of spec (block 0's first) to w, each a copy of
 * block 0's tensor at the same place in its block; *b holds block 0 until w is written. */
static pg_status add_copied_blocks(const random_llama_config *c, const random_tensor_spec *spec,
                                   gguf_writer *w, block0 *b) {
    gguf_writer *w0 = gguf_writer_new();
    random_tensors *g0 = NULL;
    size_t size = 0;
    pg_status st = PG_ERR_OUT_OF_MEMORY;
    b->copies = calloc((size_t)c->n_layer * BLOCK_TENSORS, sizeof *b->copies);
    if (!w0 || !b->copies) {
        pg_set_error(st, "random_llama: out of memory (block copies)");
        goto done;
    }
    st = random_tensors_add(w0, spec, BLOCK_TENSORS, c->seed, "random_llama", &g0);
    if (st == PG_OK) st = gguf_writer_to_memory(w0, &b->image, &size);
    if (st == PG_OK) st = gguf_open_memory(b->image, size, "random_llama block 0", &b->f);
    for (int32_t l = 0; st == PG_OK && l < c->n_layer; l++) {
        for (int j = 0; j < BLOCK_TENSORS; j++) {
            const random_tensor_spec *s = &spec[l * BLOCK_TENSORS + j];
            const gguf_tensor *t = &b->f->tensors[j];
            block_copy *bc = &b->copies[l * BLOCK_TENSORS + j];
            *bc = (block_copy){t->data, t->nbytes, 0};
            gguf_writer_add_tensor_fill(w, s->name, s->type, s->n_dims, s->ne, copy_fill, bc);
        }
    }
done:
    random_tensors_free(g0);
    gguf_writer_free(w0);
    return st;
}

pg_status random_llama_write(const random_llama_config *c, const char *path, const char *name) {
    if (!c || !path || c->n_embd <= 0 || c->n_layer <= 0 || c->n_head <= 0 ||
        c->n_head_kv <= 0 || c->n_ff <= 0 || c->n_vocab <= 0 || c->n_ctx <= 0 ||
        c->n_embd % c->n_head != 0 || c->n_head % c->n_head_kv != 0 ||
        (c->n_embd / c->n_head) % 2 != 0)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "random_llama: inconsistent config");
    if (!pg_dtype_supported(c->type))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "random_llama: unsupported type %u",
                            (unsigned)c->type);

    pg_status st = PG_ERR_OUT_OF_MEMORY;
    int32_t n_tensors = 3 + BLOCK_TENSORS * c->n_layer;
    random_tensor_spec *spec = calloc((size_t)n_tensors, sizeof *spec);
    random_tensors *gens = NULL, *gens_tail = NULL;
    block0 blk0 = {0};
    gguf_writer *w = gguf_writer_new();
    demo_vocab *v = demo_vocab_build(c->n_vocab);
    if (!spec || !w || !v) {
        pg_set_error(PG_ERR_OUT_OF_MEMORY, "random_llama: out of memory (vocabulary of %d)",
                     (int)c->n_vocab);
        goto done;
    }

    int32_t head_dim = c->n_embd / c->n_head;
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.name", name ? name : "libpandagpt random llama");
    gguf_writer_set_u32(w, "general.file_type", random_llama_file_type(c->type));
    gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)c->n_vocab);
    gguf_writer_set_u32(w, "llama.context_length", (uint32_t)c->n_ctx);
    gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c->n_embd);
    gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->n_layer);
    gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)c->n_ff);
    gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_head);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_head_kv);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-6f);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)head_dim);
    gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", "default");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->pieces,
                            (uint64_t)v->n);
    gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", v->scores, (uint64_t)v->n);
    gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", v->types, (uint64_t)v->n);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 1);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", 0);

    list_tensors(c, spec);
    if (!c->same_layers) {
        st = random_tensors_add(w, spec, n_tensors, c->seed, "random_llama", &gens);
    } else { /* token_embd, the copied blocks, output and output_norm, in this order */
        st = random_tensors_add(w, spec, 1, c->seed, "random_llama", &gens);
        if (st == PG_OK) st = add_copied_blocks(c, spec + 1, w, &blk0);
        if (st == PG_OK)
            st = random_tensors_add(w, spec + n_tensors - 2, 2, c->seed, "random_llama",
                                    &gens_tail);
    }
    if (st != PG_OK) goto done;
    st = gguf_writer_write(w, path);

done:
    gguf_writer_free(w);
    demo_vocab_free(v);
    random_tensors_free(gens);
    random_tensors_free(gens_tail);
    block0_free(&blk0);
    free(spec);
    return st;
}
