/*
 * llama.c — Vicuna / LLaMA-1 forward pass (spec §3) over the backend op table.
 *
 * Loading reads llama.cpp's metadata keys and tensor names from the GGUF, checks every shape,
 * and keeps weights as views into the mapping (zero copy). The forward pass reads like the
 * paper's figure: RMSNorm, Q/K/V, RoPE (GGUF adjacent pairs), causal attention over the KV
 * cache, output projection + residual, RMSNorm, SwiGLU FFN + residual; final norm and LM head
 * on the last position only.
 */
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "gguf/dtype.h"
#include "models/weight.h"

#define LLAMA_N_BATCH 256 /* prefill rows per chunk: scratch is sized for this */

// ---------------------------------------------------------------------------------------------
// Loading

static pg_status get_i32(const gguf_file *f, const char *key, int32_t *out) {
    uint32_t v;
    pg_status s = gguf_get_u32(f, key, &v);
    if (s != PG_OK) return s;
    if (v == 0 || v > (1u << 24))
        return pg_set_error(PG_ERR_FORMAT, "%s: key '%s' = %u is out of range", f->path, key, v);
    *out = (int32_t)v;
    return PG_OK;
}

static pg_status load_hparams(const gguf_file *f, llama_hparams *hp) {
    gguf_str arch;
    pg_status s = gguf_get_str(f, "general.architecture", &arch);
    if (s != PG_OK) return s;
    if (!gguf_str_eq(arch, "llama"))
        return pg_set_error(PG_ERR_FORMAT, "%s: general.architecture is '%.*s', expected 'llama'",
                            f->path, (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
    if ((s = get_i32(f, "llama.context_length", &hp->n_ctx_train)) ||
        (s = get_i32(f, "llama.embedding_length", &hp->n_embd)) ||
        (s = get_i32(f, "llama.block_count", &hp->n_layer)) ||
        (s = get_i32(f, "llama.feed_forward_length", &hp->n_ff)) ||
        (s = get_i32(f, "llama.attention.head_count", &hp->n_head)))
        return s;
    uint32_t v;
    if ((s = gguf_get_u32_or(f, "llama.attention.head_count_kv", (uint32_t)hp->n_head, &v)))
        return s;
    hp->n_head_kv = (int32_t)v;
    if (hp->n_embd % hp->n_head != 0)
        return pg_set_error(PG_ERR_FORMAT, "%s: embedding_length %d is not a multiple of "
                            "head_count %d", f->path, hp->n_embd, hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv != 0)
        return pg_set_error(PG_ERR_FORMAT, "%s: head_count_kv %d does not divide head_count %d",
                            f->path, hp->n_head_kv, hp->n_head);
    if ((s = gguf_get_u32_or(f, "llama.rope.dimension_count", (uint32_t)hp->head_dim, &v)))
        return s;
    hp->n_rot = (int32_t)v;
    if (hp->n_rot <= 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return pg_set_error(PG_ERR_FORMAT, "%s: rope.dimension_count %d invalid for head size %d",
                            f->path, hp->n_rot, hp->head_dim);
    if ((s = gguf_get_f32_or(f, "llama.attention.layer_norm_rms_epsilon", 1e-6f, &hp->rms_eps)) ||
        (s = gguf_get_f32_or(f, "llama.rope.freq_base", 10000.0f, &hp->rope_base)))
        return s;
    if (!(hp->rms_eps > 0.0f) || !(hp->rope_base > 1.0f))
        return pg_set_error(PG_ERR_FORMAT, "%s: rms epsilon %g or rope freq_base %g invalid",
                            f->path, hp->rms_eps, hp->rope_base);
    return PG_OK;
}

/* A norm vector of n floats; converted into *store when the file keeps it in another type. */
static pg_status get_norm(const gguf_file *f, const char *name, int64_t n, float **store,
                          const float **out) {
    const gguf_tensor *t;
    pg_status s = gguf_get_tensor(f, name, 1, &n, &t);
    if (s != PG_OK) return s;
    if (t->type == PG_DTYPE_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = (const float *)t->data;
    } else {
        pg_dequantize_row(t->type, t->data, *store, n);
        *out = *store;
        *store += n;
    }
    return PG_OK;
}

static pg_status load_vocab(const gguf_file *f, int32_t n_vocab, pg_vocab **out) {
    gguf_str model;
    pg_status s = gguf_get_str(f, "tokenizer.ggml.model", &model);
    if (s != PG_OK) return s;
    if (!gguf_str_eq(model, "llama"))
        return pg_set_error(PG_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model '%.*s' is not "
                            "supported (only 'llama' SentencePiece-BPE)", f->path,
                            (int)(model.len > 64 ? 64 : model.len), model.ptr);
    const gguf_kv *tokens, *scores = NULL, *types = NULL;
    if ((s = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens))) return s;
    if (tokens->n == 0 || tokens->n > (uint64_t)n_vocab)
        return pg_set_error(PG_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries but the "
                            "embedding has %d rows", f->path, (unsigned long long)tokens->n,
                            n_vocab);
    if (gguf_find_kv(f, "tokenizer.ggml.scores") &&
        (s = gguf_get_arr(f, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, &scores)))
        return s;
    if (gguf_find_kv(f, "tokenizer.ggml.token_type") &&
        (s = gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &types)))
        return s;
    if ((scores && scores->n != tokens->n) || (types && types->n != tokens->n))
        return pg_set_error(PG_ERR_FORMAT, "%s: tokenizer.ggml.scores/token_type lengths differ "
                            "from tokenizer.ggml.tokens (%llu)", f->path,
                            (unsigned long long)tokens->n);
    uint32_t bos, eos, unk;
    if ((s = gguf_get_u32_or(f, "tokenizer.ggml.bos_token_id", 1, &bos)) ||
        (s = gguf_get_u32_or(f, "tokenizer.ggml.eos_token_id", 2, &eos)) ||
        (s = gguf_get_u32_or(f, "tokenizer.ggml.unknown_token_id", 0, &unk)))
        return s;
    if (bos >= tokens->n || eos >= tokens->n || unk >= tokens->n)
        return pg_set_error(PG_ERR_FORMAT, "%s: special token ids bos %u / eos %u / unk %u out of "
                            "range (%llu tokens)", f->path, bos, eos, unk,
                            (unsigned long long)tokens->n);

    size_t n = (size_t)tokens->n;
    const char **pieces = malloc(n * sizeof *pieces);
    uint64_t *lens = malloc(n * sizeof *lens);
    float *sc = scores ? malloc(n * sizeof *sc) : NULL;
    int32_t *ty = types ? malloc(n * sizeof *ty) : NULL;
    if (!pieces || !lens || (scores && !sc) || (types && !ty)) {
        s = pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: cannot allocate the vocabulary (%zu tokens)",
                         f->path, n);
    } else {
        for (size_t i = 0; i < n; i++) {
            pieces[i] = tokens->strs[i].ptr;
            lens[i] = tokens->strs[i].len;
            if (sc) sc[i] = (float)gguf_arr_num(scores, i);
            if (ty) ty[i] = (int32_t)gguf_arr_num(types, i);
        }
        s = pg_vocab_new((int32_t)n, pieces, lens, sc, ty, (int32_t)bos, (int32_t)eos,
                         (int32_t)unk, out);
        if (s != PG_OK) pg_error_prefix(s, "%s: tokenizer", f->path);
    }
    free(pieces);
    free(lens);
    free(sc);
    free(ty);
    return s;
}

static pg_status load_weights(llama_model *m) {
    const gguf_file *f = m->file;
    const llama_hparams *hp = &m->hp;
    llama_weights *w = &m->w;
    int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    char name[96];
    pg_status s;

    const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    if (!emb || emb->n_dims != 2)
        return pg_set_error(PG_ERR_FORMAT, "%s: tensor 'token_embd.weight' is missing or not "
                            "2-D", f->path);
    if (emb->ne[1] > (1 << 24))
        return pg_set_error(PG_ERR_FORMAT, "%s: token_embd has %lld rows", f->path,
                            (long long)emb->ne[1]);
    m->hp.n_vocab = (int32_t)emb->ne[1];
    if ((s = pg_weight_from_gguf(f, "token_embd.weight", hp->n_embd, hp->n_vocab, &w->token_embd)))
        return s;

    /* norms: at most 2 per layer + 1, converted to F32 only when stored otherwise */
    m->norm_store = malloc(sizeof(float) * (size_t)hp->n_embd * (2 * (size_t)hp->n_layer + 1));
    w->layers = calloc((size_t)hp->n_layer, sizeof *w->layers);
    if (!m->norm_store || !w->layers)
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: cannot allocate layer tables", f->path);
    float *store = m->norm_store;

    for (int32_t i = 0; i < hp->n_layer; i++) {
        llama_layer *l = &w->layers[i];
#define W(field, suffix, nin, nout)                                                         \
        snprintf(name, sizeof name, "blk.%d." suffix ".weight", i);                         \
        if ((s = pg_weight_from_gguf(f, name, nin, nout, &l->field))) return s;
#define N(field, suffix)                                                                    \
        snprintf(name, sizeof name, "blk.%d." suffix ".weight", i);                         \
        if ((s = get_norm(f, name, hp->n_embd, &store, &l->field))) return s;
        N(attn_norm, "attn_norm")
        W(attn_q, "attn_q", hp->n_embd, (int64_t)hp->n_head * hp->head_dim)
        W(attn_k, "attn_k", hp->n_embd, kv_dim)
        W(attn_v, "attn_v", hp->n_embd, kv_dim)
        W(attn_output, "attn_output", (int64_t)hp->n_head * hp->head_dim, hp->n_embd)
        N(ffn_norm, "ffn_norm")
        W(ffn_gate, "ffn_gate", hp->n_embd, hp->n_ff)
        W(ffn_up, "ffn_up", hp->n_embd, hp->n_ff)
        W(ffn_down, "ffn_down", hp->n_ff, hp->n_embd)
#undef W
#undef N
    }
    if ((s = get_norm(f, "output_norm.weight", hp->n_embd, &store, &w->output_norm))) return s;
    if (gguf_find_tensor(f, "output.weight")) {
        if ((s = pg_weight_from_gguf(f, "output.weight", hp->n_embd, hp->n_vocab, &w->output))) return s;
    } else {
        w->output = w->token_embd; /* tied embeddings, as llama.cpp allows */
    }

    m->weight_bytes = (uint64_t)w->output.row_bytes * (uint64_t)w->output.n_out;
    for (int32_t i = 0; i < hp->n_layer; i++) {
        const llama_layer *l = &w->layers[i];
        const pg_weight *ws[] = {&l->attn_q, &l->attn_k, &l->attn_v, &l->attn_output,
                                 &l->ffn_gate, &l->ffn_up, &l->ffn_down};
        for (size_t j = 0; j < sizeof ws / sizeof ws[0]; j++)
            m->weight_bytes += (uint64_t)ws[j]->row_bytes * (uint64_t)ws[j]->n_out;
    }
    return PG_OK;
}

pg_status llama_model_load(gguf_file *f, llama_model **out) {
    *out = NULL;
    llama_model *m = calloc(1, sizeof *m);
    if (!m) {
        gguf_close(f);
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "cannot allocate the model");
    }
    m->file = f;
    pg_status s = load_hparams(f, &m->hp);
    if (s == PG_OK) s = load_weights(m);
    if (s == PG_OK) s = load_vocab(f, m->hp.n_vocab, &m->vocab);
    if (s != PG_OK) {
        llama_model_free(m);
        return s;
    }
    *out = m;
    return PG_OK;
}

void llama_model_free(llama_model *m) {
    if (!m) return;
    if (m->device_arena) m->free_arena(m->device_arena);
    pg_vocab_free(m->vocab);
    free(m->w.layers);
    free(m->norm_store);
    for (int32_t i = 0; i < m->n_lora_store; i++) free(m->lora_store[i]);
    free(m->lora_store);
    gguf_close(m->file);
    free(m);
}

// ---------------------------------------------------------------------------------------------
// Session state

pg_status llama_state_new(const llama_model *m, pg_backend *b, int32_t n_ctx, llama_state **out) {
    const llama_hparams *hp = &m->hp;
    *out = NULL;
    if (n_ctx <= 0) n_ctx = hp->n_ctx_train;
    llama_state *st = calloc(1, sizeof *st);
    if (!st) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "cannot allocate the session state");
    st->n_ctx = n_ctx;
    st->n_batch = n_ctx < LLAMA_N_BATCH ? n_ctx : LLAMA_N_BATCH;
    size_t nb = (size_t)st->n_batch, q_dim = (size_t)hp->n_head * hp->head_dim;
    size_t kv = (size_t)hp->n_layer * (size_t)n_ctx * (size_t)hp->n_head_kv * hp->head_dim;
    const pg_backend_ops *ops = b->ops;
    pg_status s = PG_OK;
    st->ids = malloc(sizeof(int32_t) * (size_t)n_ctx);
    if (!st->ids) s = pg_set_error(PG_ERR_OUT_OF_MEMORY, "cannot allocate %d cache ids", n_ctx);
    struct { float **p; size_t n; const char *what; } bufs[] = {
        {&st->x, nb * hp->n_embd, "x"},     {&st->xb, nb * hp->n_embd, "xb"},
        {&st->q, nb * q_dim, "q"},          {&st->att, nb * q_dim, "att"},
        {&st->hb, nb * hp->n_ff, "hb"},     {&st->hb2, nb * hp->n_ff, "hb2"},
        {&st->logits, (size_t)hp->n_vocab, "logits"},
        {&st->embd_row, (size_t)hp->n_embd, "embd_row"},
        {&st->kv_row, 2 * (size_t)hp->n_head_kv * hp->head_dim, "kv_row"},
        {&st->k_cache, kv, "k_cache"},      {&st->v_cache, kv, "v_cache"},
    };
    for (size_t i = 0; s == PG_OK && i < sizeof bufs / sizeof bufs[0]; i++) {
        s = ops->alloc(b, bufs[i].n * sizeof(float), (void **)bufs[i].p);
        if (s != PG_OK) pg_error_prefix(s, "session %s buffer (n_ctx %d)", bufs[i].what, n_ctx);
    }
    if (s == PG_OK && (s = ops->alloc(b, 2 * sizeof(int32_t), (void **)&st->step)))
        pg_error_prefix(s, "session step buffer");
    if (s != PG_OK) {
        llama_state_free(st, b);
        return s;
    }
    *out = st;
    return PG_OK;
}

void llama_state_free(llama_state *st, pg_backend *b) {
    if (!st) return;
    if (st->graph) b->ops->graph_free(b, st->graph);
    void *bufs[] = {st->x, st->xb, st->q, st->att, st->hb, st->hb2, st->logits, st->embd_row,
                    st->kv_row, st->k_cache, st->v_cache, st->step};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) b->ops->free(b, bufs[i]);
    free(st->ids);
    free(st);
}

// ---------------------------------------------------------------------------------------------
// Forward

/* One chunk of n ≤ n_batch inputs, whose embeddings are already in st->x, at st->n_past. */
static void forward_chunk(const llama_model *m, llama_state *st, pg_backend *b, int n) {
    const llama_hparams *hp = &m->hp;
    const pg_backend_ops *op = b->ops;
    const int pos0 = st->n_past;
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t layer_kv = (size_t)st->n_ctx * kv_dim;

    for (int32_t l = 0; l < hp->n_layer; l++) {
        const llama_layer *w = &m->w.layers[l];
        float *k_cache = st->k_cache + (size_t)l * layer_kv; /* (n_ctx, kv_dim) */
        float *v_cache = st->v_cache + (size_t)l * layer_kv;
        float *k_new = k_cache + (size_t)pos0 * kv_dim;      /* this chunk's rows */
        float *v_new = v_cache + (size_t)pos0 * kv_dim;

        /* attention: x += Wo · attn(rope(Wq·h), rope(Wk·h), Wv·h),  h = rmsnorm(x) */
        op->rmsnorm(b, st->xb, st->x, w->attn_norm, n, hp->n_embd, hp->rms_eps);
        op->matmul(b, &w->attn_q, st->xb, st->q, n);
        op->matmul(b, &w->attn_k, st->xb, k_new, n);
        op->matmul(b, &w->attn_v, st->xb, v_new, n);
        op->rope(b, st->q, n, hp->n_head, hp->head_dim, hp->n_rot, pos0, hp->rope_base);
        op->rope(b, k_new, n, hp->n_head_kv, hp->head_dim, hp->n_rot, pos0, hp->rope_base);
        op->attention(b, st->att, st->q, k_cache, v_cache, n, pos0, hp->n_head, hp->n_head_kv,
                      hp->head_dim);
        op->matmul_add(b, &w->attn_output, st->att, st->x, n);

        /* feed-forward: x += W2 · (silu(W1·h) ⊙ W3·h),  h = rmsnorm(x) */
        op->rmsnorm(b, st->xb, st->x, w->ffn_norm, n, hp->n_embd, hp->rms_eps);
        op->matmul(b, &w->ffn_gate, st->xb, st->hb, n);
        op->matmul(b, &w->ffn_up, st->xb, st->hb2, n);
        op->silu_mul(b, st->hb, st->hb2, (size_t)n * hp->n_ff);
        op->matmul_add(b, &w->ffn_down, st->hb, st->x, n);
    }
}

/* Final norm and LM head on the last row of the chunk only: nobody reads the other logits. */
static void forward_logits(const llama_model *m, llama_state *st, pg_backend *b, int n) {
    const llama_hparams *hp = &m->hp;
    const float *last = st->x + (size_t)(n - 1) * hp->n_embd;
    b->ops->rmsnorm(b, st->xb, last, m->w.output_norm, 1, hp->n_embd, hp->rms_eps);
    b->ops->matmul(b, &m->w.output, st->xb, st->logits, 1);
}

// ---------------------------------------------------------------------------------------------
// Decode: one token, its work independent of the token and the position

typedef struct decode_args {
    const llama_model *m;
    llama_state *st;
    pg_backend *b;
} decode_args;

/* The forward pass of the token st->step[0] at position st->step[1] (backend memory), logits
 * included: the computation of forward_chunk + forward_logits for n = 1, but every op that
 * depends on the position reads it at run time, and the new key and value rows are computed
 * apart, then stored at it — so that a backend can record this once and replay it at every
 * step. */
static void decode_body(void *ctx) {
    const decode_args *a = ctx;
    const llama_model *m = a->m;
    llama_state *st = a->st;
    pg_backend *b = a->b;
    const llama_hparams *hp = &m->hp;
    const pg_backend_ops *op = b->ops;
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t layer_kv = (size_t)st->n_ctx * kv_dim;
    float *k_row = st->kv_row, *v_row = st->kv_row + kv_dim;
    const int32_t *pos = st->step + 1;

    op->get_rows_at(b, &m->w.token_embd, st->step, 1, st->x);
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const llama_layer *w = &m->w.layers[l];
        float *k_cache = st->k_cache + (size_t)l * layer_kv; /* (n_ctx, kv_dim) */
        float *v_cache = st->v_cache + (size_t)l * layer_kv;

        op->rmsnorm(b, st->xb, st->x, w->attn_norm, 1, hp->n_embd, hp->rms_eps);
        op->matmul(b, &w->attn_q, st->xb, st->q, 1);
        op->matmul(b, &w->attn_k, st->xb, k_row, 1);
        op->matmul(b, &w->attn_v, st->xb, v_row, 1);
        op->rope_at(b, st->q, hp->n_head, hp->head_dim, hp->n_rot, pos, hp->rope_base);
        op->rope_at(b, k_row, hp->n_head_kv, hp->head_dim, hp->n_rot, pos, hp->rope_base);
        op->store_row_at(b, k_cache, k_row, kv_dim, pos, st->n_ctx);
        op->store_row_at(b, v_cache, v_row, kv_dim, pos, st->n_ctx);
        op->attention_at(b, st->att, st->q, k_cache, v_cache, pos, st->n_ctx, hp->n_head,
                         hp->n_head_kv, hp->head_dim);
        op->matmul_add(b, &w->attn_output, st->att, st->x, 1);

        op->rmsnorm(b, st->xb, st->x, w->ffn_norm, 1, hp->n_embd, hp->rms_eps);
        op->matmul(b, &w->ffn_gate, st->xb, st->hb, 1);
        op->matmul(b, &w->ffn_up, st->xb, st->hb2, 1);
        op->silu_mul(b, st->hb, st->hb2, (size_t)hp->n_ff);
        op->matmul_add(b, &w->ffn_down, st->hb, st->x, 1);
    }
    forward_logits(m, st, b, 1);
}

/* Records the decode step into st->graph; 1 on success. */
static int record_step(llama_state *st, pg_backend *b, decode_args *a) {
    return b->ops->graph_capture && b->ops->graph_capture(b, decode_body, a, &st->graph) == PG_OK;
}

/* Queues the decode of token at st->n_past. The first step of a state runs as it is queued (it
 * also sizes the backend's attention scratch for the whole context); the second is recorded
 * into a graph where the backend has them, and every later step replays it: one launch instead
 * of a dozen per layer. A backend that cannot record it runs every step as queued. */
static void decode_step(const llama_model *m, llama_state *st, pg_backend *b, int32_t token) {
    const int32_t step[2] = {token, st->n_past};
    b->ops->upload(b, st->step, step, sizeof step);
    decode_args a = {m, st, b};
    if (st->graph_state == 0 && st->n_steps >= 1) st->graph_state = record_step(st, b, &a) ? 1 : -1;
    if (st->graph_state == 1 && b->ops->graph_launch(b, st->graph) != PG_OK) {
        /* the backend has replaced a buffer the graph names: record the step again */
        b->ops->graph_free(b, st->graph);
        st->graph = NULL;
        st->graph_state = record_step(st, b, &a) && b->ops->graph_launch(b, st->graph) == PG_OK
                              ? 1 : -1;
        if (st->graph_state < 0) decode_body(&a);
    } else if (st->graph_state != 1) {
        decode_body(&a);
    }
    st->n_steps++;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

pg_status llama_eval(const llama_model *m, llama_state *st, pg_backend *b, const int32_t *tokens,
                     const float *embd, int32_t n) {
    const llama_hparams *hp = &m->hp;
    if (n <= 0) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "nothing to evaluate");
    if (n > st->n_ctx - st->n_past)
        return pg_set_error(PG_ERR_CONTEXT_FULL, "%d inputs do not fit: %d of %d positions used",
                            n, st->n_past, st->n_ctx);
    if (tokens)
        for (int32_t i = 0; i < n; i++)
            if (tokens[i] != LLAMA_ID_ROW && (tokens[i] < 0 || tokens[i] >= hp->n_vocab))
                return pg_set_error(PG_ERR_INVALID_ARGUMENT, "token %d at index %d is out of "
                                    "range [0, %d)", tokens[i], i, hp->n_vocab);
    st->has_logits = 0;
    const int32_t n_past0 = st->n_past;
    if (tokens && n == 1 && tokens[0] >= 0) { /* one token: the recorded decode step */
        decode_step(m, st, b, tokens[0]);
        st->ids[st->n_past++] = tokens[0];
    }
    for (int32_t done = st->n_past - n_past0; done < n;) {
        int chunk = n - done < st->n_batch ? n - done : st->n_batch;
        if (tokens) {
            /* a LLAMA_ID_ROW gets a row of zeros here (an id outside the table), then its row */
            b->ops->get_rows(b, &m->w.token_embd, tokens + done, chunk, st->x);
            for (int i = 0; i < chunk; i++)
                if (tokens[done + i] == LLAMA_ID_ROW)
                    b->ops->copy(b, st->x + (size_t)i * hp->n_embd, st->embd_row,
                                 (size_t)hp->n_embd);
        } else {
            b->ops->upload(b, st->x, embd + (size_t)done * hp->n_embd,
                           sizeof(float) * (size_t)chunk * hp->n_embd);
        }
        forward_chunk(m, st, b, chunk);
        for (int i = 0; i < chunk; i++)
            st->ids[st->n_past + i] = tokens ? tokens[done + i] : LLAMA_ID_EMBD;
        st->n_past += chunk;
        done += chunk;
        if (done == n) forward_logits(m, st, b, chunk);
    }
    pg_status s = b->ops->sync(b);
    if (s != PG_OK) { /* a device failure: what this call wrote to the cache is not trusted */
        st->n_past = n_past0;
        return s;
    }
    st->has_logits = 1;
    return PG_OK;
}
