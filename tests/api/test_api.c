/*
 * test_api.c — the public contract under misuse: NULLs, bad struct_size, zero-length inputs,
 * out-of-range ids, files that are missing, not GGUF, not llama, missing a tensor, truncated at
 * every header byte, or bit-flipped. Each must give its status code and a message, never a crash.
 * The model files are made here, with tools/random_llama.
 */
#include <pandagpt.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gguf/dtype.h"
#include "gguf/gguf.h"
#include "random_llama.h"
#ifdef PG_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

static char tmpdir[] = "/tmp/pg_test_api_XXXXXX";

static void path_in_tmp(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static void write_all(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(data, 1, size, f) == size);
    fclose(f);
}

/* Expect status want from a load of path, with a message containing needle (may be NULL). */
static void expect_load(const char *path, const pg_model_params *p, pg_status want,
                        const char *needle) {
    pg_model *m = (pg_model *)1;
    pg_status s = pg_model_load(path, p, &m);
    CHECK_MSG(s == want, "load %s: expected %d, got %d (%s)", path ? path : "(null)", want, s,
              pg_last_error());
    CHECK(m == NULL || s == PG_OK);
    if (s != PG_OK) {
        CHECK_MSG(pg_last_error()[0] != '\0', "no message for status %d", s);
        if (needle)
            CHECK_MSG(strstr(pg_last_error(), needle), "message '%s' lacks '%s'",
                      pg_last_error(), needle);
    }
    if (s == PG_OK) pg_model_free(m);
}

static void test_versions(void) {
    CHECK_EQ_INT(pg_version(), 0x000200);
    CHECK(strcmp(pg_version_string(), "0.2.0") == 0);
    for (int s = 0; s <= 9; s++) CHECK(strncmp(pg_status_string((pg_status)s), "PG_", 3) == 0);
    CHECK(pg_status_string((pg_status)1234) != NULL);
    CHECK(pg_last_error() != NULL);
}

static void test_load_errors(const char *good) {
    pg_model_params p;
    pg_model_params_init(&p);
    CHECK_STATUS(pg_model_load(good, &p, NULL), PG_ERR_INVALID_ARGUMENT);
    expect_load(NULL, &p, PG_ERR_INVALID_ARGUMENT, "no LLM path");
    p.struct_size = 0;
    expect_load(good, &p, PG_ERR_INVALID_ARGUMENT, "struct_size");
    p.struct_size = 8;
    expect_load(good, &p, PG_ERR_INVALID_ARGUMENT, "struct_size");
    pg_model_params_init(&p);
    p.device = (pg_device)7;
    expect_load(good, &p, PG_ERR_INVALID_ARGUMENT, "device");
    pg_model_params_init(&p);
    p.n_threads = -1;
    expect_load(good, &p, PG_ERR_INVALID_ARGUMENT, "n_threads");
    pg_model_params_init(&p);
    p.lora_path = "adapter.gguf";
    expect_load(good, &p, PG_ERR_IO, "adapter.gguf"); /* not there: gguf_open names it */
    pg_model_params_init(&p);
    p.device = PG_DEVICE_CPU;
    expect_load("/nonexistent/model.gguf", &p, PG_ERR_IO, "/nonexistent/model.gguf");
    expect_load(tmpdir, &p, PG_ERR_IO, NULL); /* a directory */

    char path[512];
    path_in_tmp(path, sizeof path, "not-gguf.bin");
    write_all(path, "hello, this is not a model file at all", 38);
    expect_load(path, &p, PG_ERR_FORMAT, "not-gguf.bin");
    path_in_tmp(path, sizeof path, "empty.gguf");
    write_all(path, "", 0);
    expect_load(path, &p, PG_ERR_FORMAT, NULL);

    /* valid GGUF, wrong architecture */
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "clip");
    path_in_tmp(path, sizeof path, "clip.gguf");
    CHECK_OK(gguf_writer_write(w, path));
    gguf_writer_free(w);
    expect_load(path, &p, PG_ERR_FORMAT, "architecture");

    /* a llama GGUF without one tensor, and one with a wrong shape: rebuild from the good file */
    gguf_file *f;
    CHECK_OK(gguf_open(good, &f));
    for (int variant = 0; variant < 3 && f; variant++) {
        w = gguf_writer_new();
        for (uint64_t i = 0; i < f->n_kv; i++) {
            const gguf_kv *kv = &f->kv[i];
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
            if (kv->type == GGUF_TYPE_STRING) {
                char val[256];
                snprintf(val, sizeof val, "%.*s", (int)kv->strs[0].len, kv->strs[0].ptr);
                gguf_writer_set_str(w, key, val);
            } else if (kv->type == GGUF_TYPE_UINT32 || kv->type == GGUF_TYPE_INT32) {
                gguf_writer_set_u32(w, key, (uint32_t)gguf_arr_num(kv, 0));
            } else if (kv->type == GGUF_TYPE_FLOAT32) {
                gguf_writer_set_f32(w, key, (float)gguf_arr_num(kv, 0));
            } else if (kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_STRING) {
                const char **v = malloc(sizeof(char *) * kv->n);
                char **own = malloc(sizeof(char *) * kv->n);
                for (uint64_t j = 0; j < kv->n; j++) {
                    own[j] = malloc(kv->strs[j].len + 1);
                    memcpy(own[j], kv->strs[j].ptr, kv->strs[j].len);
                    own[j][kv->strs[j].len] = '\0';
                    v[j] = own[j];
                }
                gguf_writer_set_arr_str(w, key, v, kv->n);
                for (uint64_t j = 0; j < kv->n; j++) free(own[j]);
                free(own);
                free(v);
            } else if (kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_FLOAT32) {
                float *v = malloc(sizeof(float) * kv->n);
                for (uint64_t j = 0; j < kv->n; j++) v[j] = (float)gguf_arr_num(kv, j);
                gguf_writer_set_arr_f32(w, key, v, kv->n);
                free(v);
            } else if (kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_INT32) {
                int32_t *v = malloc(sizeof(int32_t) * kv->n);
                for (uint64_t j = 0; j < kv->n; j++) v[j] = (int32_t)gguf_arr_num(kv, j);
                gguf_writer_set_arr_i32(w, key, v, kv->n);
                free(v);
            }
        }
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const gguf_tensor *t = &f->tensors[i];
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
            if (variant == 0 && strcmp(name, "blk.0.ffn_up.weight") == 0) continue;
            int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
            if (variant == 1 && strcmp(name, "blk.0.ffn_gate.weight") == 0) {
                ne[0] = t->ne[1];  /* transposed view of the same bytes count */
                ne[1] = t->ne[0];
            }
            if (variant == 2 && (strcmp(name, "token_embd.weight") == 0 ||
                                 strcmp(name, "output.weight") == 0)) {
                /* Vicuna v0: one more row ([PAD], id n) than the tokenizer has pieces */
                size_t row = pg_dtype_row_bytes(t->type, t->ne[0]);
                unsigned char *grown = calloc((size_t)t->ne[1] + 1, row);
                memcpy(grown, t->data, row * (size_t)t->ne[1]);
                ne[1] = t->ne[1] + 1;
                gguf_writer_add_tensor(w, name, t->type, 2, ne, grown);
                free(grown);
                continue;
            }
            gguf_writer_add_tensor(w, name, t->type, (int)t->n_dims, ne, t->data);
        }
        static const char *names[] = {"missing.gguf", "bad-shape.gguf", "pad-row.gguf"};
        path_in_tmp(path, sizeof path, names[variant]);
        CHECK_OK(gguf_writer_write(w, path));
        gguf_writer_free(w);
        if (variant < 2) {
            expect_load(path, &p, PG_ERR_FORMAT, variant ? "blk.0.ffn_gate.weight"
                                                         : "blk.0.ffn_up.weight");
            continue;
        }
        /* the [PAD] row loads, decodes to nothing, and can be evaluated and scored */
        pg_model *m = NULL;
        CHECK_OK(pg_model_load(path, &p, &m));
        if (!m) continue;
        int32_t pad = pg_model_n_vocab(m) - 1;
        CHECK_EQ_INT(pad, 512); /* the test model has 512 pieces */
        char piece[8];
        size_t plen = 99;
        CHECK_OK(pg_token_to_piece(m, pad, piece, sizeof piece, &plen));
        CHECK_EQ_INT(plen, 0);
        pg_session *s;
        CHECK_OK(pg_session_new(m, NULL, &s));
        CHECK_OK(pg_session_eval_tokens(s, &pad, 1));
        float *logits = malloc(sizeof(float) * (size_t)(pad + 1));
        CHECK_OK(pg_session_logits(s, logits, (size_t)pad + 1));
        CHECK(logits[pad] == 0.0f); /* a zero output row gives a zero logit */
        free(logits);
        pg_session_free(s);
        pg_model_free(m);
    }
    gguf_close(f);
}

/* Every truncation of the header and some of the data, and random bit flips: no crash, and an
 * error with a message for every file that is not loadable. */
/* PG_DEVICE_CUDA loads where a device is present, and otherwise fails with a message that
 * says why: PG_ERR_DEVICE in a CUDA build, PG_ERR_UNSUPPORTED in a build without CUDA. AUTO
 * loads everywhere (CUDA when present, else the CPU). */
static void test_cuda_device(const char *good) {
    pg_model_params p;
    pg_model_params_init(&p);
    p.device = PG_DEVICE_CUDA;
#ifdef PG_HAVE_CUDA
    int n = -1;
    CHECK_OK(pg_cuda_device_count(&n));
    CHECK(n >= 0);
    if (n == 0) {
        expect_load(good, &p, PG_ERR_DEVICE, "no CUDA device");
    } else {
        expect_load(good, &p, PG_OK, NULL);
        p.cuda_device = n;
        expect_load(good, &p, PG_ERR_INVALID_ARGUMENT, "cuda_device");
        p.cuda_device = -1;
        expect_load(good, &p, PG_ERR_INVALID_ARGUMENT, "cuda_device");
    }
#else
    expect_load(good, &p, PG_ERR_UNSUPPORTED, "no CUDA");
#endif
    pg_model_params_init(&p);
    expect_load(good, &p, PG_OK, NULL);
}

static void test_corrupt_files(const char *good) {
    size_t size;
    unsigned char *bytes = read_all(good, &size);
    CHECK(bytes != NULL);
    if (!bytes) return;
    gguf_file *f;
    CHECK_OK(gguf_open(good, &f));
    size_t header = f ? (size_t)f->data_offset : size;
    gguf_close(f);

    pg_model_params p;
    pg_model_params_init(&p);
    p.device = PG_DEVICE_CPU;
    p.n_threads = 1;
    char path[512];
    path_in_tmp(path, sizeof path, "corrupt.gguf");
    int n_trunc = 0, n_flip_ok = 0, n_flip_err = 0;
    for (size_t len = 0; len < size; len += (len < header ? 1 + len / 512 : size / 16)) {
        write_all(path, bytes, len);
        expect_load(path, &p, PG_ERR_FORMAT, "corrupt.gguf");
        n_trunc++;
    }
    uint64_t rng = 42;
    unsigned char *copy = malloc(size);
    for (int trial = 0; trial < 300; trial++) {
        memcpy(copy, bytes, size);
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        size_t at = (size_t)((rng >> 33) % header);
        copy[at] ^= (unsigned char)(1u << ((rng >> 20) & 7));
        write_all(path, copy, size);
        pg_model *m = NULL;
        pg_status s = pg_model_load(path, &p, &m);
        if (s == PG_OK) {
            /* a flip that keeps the file valid (a score, a name byte): it must also run */
            pg_session *sess;
            pg_session_params sp;
            pg_session_params_init(&sp);
            sp.n_ctx = 16;
            if (pg_session_new(m, &sp, &sess) == PG_OK) {
                int32_t tok = 1;
                pg_session_eval_tokens(sess, &tok, 1);
                pg_session_free(sess);
            }
            pg_model_free(m);
            n_flip_ok++;
        } else {
            CHECK_MSG(pg_last_error()[0], "bit flip at %zu: status %d without a message", at, s);
            n_flip_err++;
        }
    }
    printf("corrupt files: %d truncations rejected; 300 bit flips: %d rejected, %d still "
           "valid\n", n_trunc, n_flip_err, n_flip_ok);
    free(copy);
    free(bytes);
}

static void test_session_errors(pg_model *m) {
    pg_session *s = (pg_session *)1;
    pg_session_params sp;
    pg_session_params_init(&sp);
    CHECK_STATUS(pg_session_new(NULL, &sp, &s), PG_ERR_INVALID_ARGUMENT);
    CHECK(s == NULL);
    CHECK_STATUS(pg_session_new(m, &sp, NULL), PG_ERR_INVALID_ARGUMENT);
    sp.struct_size = 2;
    CHECK_STATUS(pg_session_new(m, &sp, &s), PG_ERR_INVALID_ARGUMENT);
    pg_session_params_init(&sp);
    sp.n_ctx = -5;
    CHECK_STATUS(pg_session_new(m, &sp, &s), PG_ERR_INVALID_ARGUMENT);
    CHECK(strstr(pg_last_error(), "n_ctx") != NULL);
    sp.n_ctx = 32;
    CHECK_OK(pg_session_new(m, &sp, &s));
    CHECK_EQ_INT(pg_session_n_ctx(s), 32);

    /* tokenizer */
    int32_t toks[64];
    size_t n = 99;
    CHECK_STATUS(pg_tokenize(NULL, "a", 1, 0, toks, 64, &n), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(pg_tokenize(m, "a", 1, 0, toks, 64, NULL), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(pg_tokenize(m, NULL, 3, 0, toks, 64, &n), PG_ERR_INVALID_ARGUMENT);
    CHECK_OK(pg_tokenize(m, NULL, 0, 0, toks, 64, &n));
    CHECK_EQ_INT(n, 0);
    CHECK_OK(pg_tokenize(m, "", 0, 1, toks, 64, &n));
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(toks[0], 1);
    const char *long_text = "a fairly long sentence about a dog in the park";
    CHECK_STATUS(pg_tokenize(m, long_text, strlen(long_text), 0, toks, 2, &n),
                 PG_ERR_INVALID_ARGUMENT);
    CHECK(n > 2);
    size_t need = n;
    CHECK_STATUS(pg_tokenize(m, long_text, strlen(long_text), 0, NULL, 0, &n),
                 PG_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(n, need);
    char piece[64];
    size_t plen;
    CHECK_STATUS(pg_token_to_piece(m, -1, piece, 64, &plen), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(pg_token_to_piece(m, pg_model_n_vocab(m), piece, 64, &plen),
                 PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(pg_token_to_piece(m, 3 + 'A', piece, 0, &plen), PG_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(plen, 1);
    CHECK_OK(pg_token_to_piece(m, 3 + 'A', piece, 64, &plen));  /* byte token <0x41> */
    CHECK(plen == 1 && piece[0] == 'A');
    CHECK_OK(pg_token_to_piece(m, 1, piece, 64, &plen));        /* <s> decodes to nothing */
    CHECK_EQ_INT(plen, 0);

    /* low level */
    float *logits = malloc(sizeof(float) * (size_t)pg_model_n_vocab(m));
    CHECK_STATUS(pg_session_logits(s, logits, (size_t)pg_model_n_vocab(m)),
                 PG_ERR_INVALID_ARGUMENT);  /* nothing evaluated yet */
    CHECK_STATUS(pg_session_eval_tokens(s, toks, 0), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(pg_session_eval_tokens(s, NULL, 1), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(pg_session_eval_tokens(NULL, toks, 1), PG_ERR_INVALID_ARGUMENT);
    int32_t bad[2] = {5, pg_model_n_vocab(m)};
    CHECK_STATUS(pg_session_eval_tokens(s, bad, 2), PG_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(pg_session_n_past(s), 0);
    int32_t many[40] = {0};
    CHECK_STATUS(pg_session_eval_tokens(s, many, 40), PG_ERR_CONTEXT_FULL);
    CHECK_EQ_INT(pg_session_n_past(s), 0);
    CHECK_OK(pg_session_eval_tokens(s, toks, 1));
    CHECK_STATUS(pg_session_logits(s, logits, 10), PG_ERR_INVALID_ARGUMENT);
    CHECK_OK(pg_session_logits(s, logits, (size_t)pg_model_n_vocab(m)));
    CHECK_STATUS(pg_session_eval_embeddings(s, NULL, 1), PG_ERR_INVALID_ARGUMENT);
    float *row = calloc((size_t)pg_model_n_embd(m), sizeof(float));
    CHECK_OK(pg_session_eval_embeddings(s, row, 1));
    CHECK_EQ_INT(pg_session_n_past(s), 2);
    free(row);

    /* chat */
    pg_generate_params g;
    pg_generate_params_init(&g);
    CHECK_STATUS(pg_session_chat(NULL, "hi", NULL, 0, &g, NULL, NULL), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(pg_session_chat(s, NULL, NULL, 0, &g, NULL, NULL), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(pg_session_chat(s, "hi", NULL, 1, &g, NULL, NULL), PG_ERR_INVALID_ARGUMENT);
    pg_media *fake = NULL;
    CHECK_STATUS(pg_session_chat(s, "hi", &fake, 1, &g, NULL, NULL), PG_ERR_INVALID_ARGUMENT);
    float tensor[3 * 224 * 224] = {0};
    int64_t ishape[3] = {3, 224, 224};
    CHECK_OK(pg_media_from_tensor(PG_MODALITY_IMAGE, tensor, ishape, 3, &fake));
    /* media, but no encoder loaded */
    CHECK_STATUS(pg_session_chat(s, "hi", &fake, 1, &g, NULL, NULL), PG_ERR_INVALID_ARGUMENT);
    CHECK_MSG(strstr(pg_last_error(), "encoder") != NULL, "%s", pg_last_error());
    float emb[8];
    CHECK_STATUS(pg_embed(m, fake, emb, 8), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(pg_project(m, emb, 8, emb, 8), PG_ERR_INVALID_ARGUMENT);
    pg_media_free(fake);
    g.struct_size = 0;
    CHECK_STATUS(pg_session_chat(s, "hi", NULL, 0, &g, NULL, NULL), PG_ERR_INVALID_ARGUMENT);
    pg_generate_params_init(&g);
    g.max_tokens = 0;
    CHECK_STATUS(pg_session_chat(s, "hi", NULL, 0, &g, NULL, NULL), PG_ERR_INVALID_ARGUMENT);
    pg_generate_params_init(&g);
    g.temperature = -1;
    CHECK_STATUS(pg_session_chat(s, "hi", NULL, 0, &g, NULL, NULL), PG_ERR_INVALID_ARGUMENT);
    pg_generate_params_init(&g);
    g.top_p = 2;
    CHECK_STATUS(pg_session_chat(s, "hi", NULL, 0, &g, NULL, NULL), PG_ERR_INVALID_ARGUMENT);

    /* a prompt longer than the context, then reset, then a turn that fits */
    pg_generate_params_init(&g);
    g.max_tokens = 4;
    CHECK_STATUS(pg_session_chat(s, "one two three four five six seven eight nine ten eleven "
                                 "twelve thirteen fourteen fifteen sixteen", NULL, 0, &g, NULL,
                                 NULL), PG_ERR_CONTEXT_FULL);
    CHECK_OK(pg_session_reset(s));
    CHECK_OK(pg_session_chat(s, "hi", NULL, 0, &g, NULL, NULL));
    size_t alen, alen2;
    char abuf[4096];
    pg_session_answer(s, NULL, 0, &alen);  /* asks for the length only */
    CHECK_OK(pg_session_answer(s, abuf, sizeof abuf, &alen2));
    CHECK_EQ_INT(alen2, alen);
    CHECK_STATUS(pg_session_answer(NULL, NULL, 0, &alen), PG_ERR_INVALID_ARGUMENT);
    pg_timings t = {0};
    CHECK_STATUS(pg_session_timings(s, &t), PG_ERR_INVALID_ARGUMENT);  /* struct_size 0 */
    t.struct_size = sizeof t;
    CHECK_OK(pg_session_timings(s, &t));
    CHECK(t.n_prompt > 0 && t.n_generated == 4 && t.n_decode == 3);
    CHECK_STATUS(pg_session_reset(NULL), PG_ERR_INVALID_ARGUMENT);

    /* a missing media file, and free(NULL)-style calls are no-ops */
    pg_media *media = (pg_media *)1;
    CHECK_STATUS(pg_media_load_file(PG_MODALITY_IMAGE, "no-such-cat.jpg", &media), PG_ERR_IO);
    CHECK(media == NULL);
    CHECK_MSG(strstr(pg_last_error(), "no-such-cat.jpg") != NULL, "%s", pg_last_error());
    CHECK_EQ_INT(pg_model_embed_dim(m), 0);
    CHECK_EQ_INT(pg_model_proj_dim(m), 0);
    CHECK_EQ_INT(pg_model_proj_dim(NULL), 0);
    pg_media_free(NULL);
    pg_session_free(NULL);
    pg_model_free(NULL);
    CHECK_EQ_INT(pg_model_n_vocab(NULL), 0);
    free(logits);
    pg_session_free(s);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_versions();
    random_llama_config c;
    random_llama_preset("tiny", &c);
    c.n_embd = 32;
    c.n_layer = 1;
    c.n_head = 2;
    c.n_head_kv = 2;
    c.n_ff = 64;
    c.n_vocab = 512;
    c.type = PG_DTYPE_F16;
    char good[512];
    path_in_tmp(good, sizeof good, "good.gguf");
    CHECK_OK(random_llama_write(&c, good, "test"));

    test_load_errors(good);
    test_cuda_device(good);
    test_corrupt_files(good);
    pg_model_params p;
    pg_model_params_init(&p);
    p.n_threads = 2;
    pg_model *m = NULL;
    CHECK_OK(pg_model_load(good, &p, &m));
    if (m) {
        CHECK_EQ_INT(pg_model_n_vocab(m), 512);
        CHECK_EQ_INT(pg_model_n_embd(m), 32);
        test_session_errors(m);
        pg_model_free(m);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_done("api");
}
