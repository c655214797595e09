/*
 * make_demo.c — pandagpt-make-demo: writes the demo model, a random-weight llama GGUF with the
 * vocabulary trained by demo_vocab.c, a random-weight ImageBind encoder to go with it, and a
 * picture and a sound to chat about, so the library can be tried without downloading anything.
 *
 *   pandagpt-make-demo [--type f32|f16|bf16|q8_0|q4_0] [--seed N] OUTDIR
 *
 * OUTDIR/demo-llm.gguf      n_embd 256, 4 layers, 8 heads, n_ff 688, the trained vocabulary;
 *                           F16 weights and F32 norms unless --type says otherwise.
 * OUTDIR/demo-encoder.gguf  random_imagebind's "tiny" towers (D 32) and a llama_proj [256, 32],
 *                           all F32 (the encoder's type does not follow --type).
 * OUTDIR/demo.png           160×120 picture: sky, sun, hills (tools/demo_media.h).
 * OUTDIR/demo.wav           3 s of bird chirps, 16-bit mono at 22050 Hz.
 * The same seed gives the same bytes; --seed seeds both models (defaults: the presets' 1234 for
 * the LLM, 4321 for the encoder).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "demo_media.h"
#include "demo_vocab.h"
#include "gguf/dtype.h"
#include "random_imagebind.h"
#include "random_llama.h"

static int parse_type(const char *s, uint32_t *type) {
    static const struct { const char *name; uint32_t type; } k_types[] = {
        {"f32", PG_DTYPE_F32}, {"f16", PG_DTYPE_F16}, {"bf16", PG_DTYPE_BF16},
        {"q8_0", PG_DTYPE_Q8_0}, {"q4_0", PG_DTYPE_Q4_0},
    };
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++)
        if (strcmp(s, k_types[i].name) == 0) return *type = k_types[i].type, 1;
    return 0;
}

static int usage(const char *argv0) {
    fprintf(stderr, "usage: %s [--type f32|f16|bf16|q8_0|q4_0] [--seed N] OUTDIR\n"
                    "writes into OUTDIR: demo-llm.gguf (a random-weight llama model with a "
                    "trained demo vocabulary),\ndemo-encoder.gguf (a random-weight ImageBind "
                    "encoder with llama_proj), demo.png and demo.wav\n", argv0);
    return 2;
}

/* OUTDIR/name, malloc'd (NULL on out of memory). */
static char *path_in(const char *dir, const char *name) {
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static long long file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

static int fail(const char *argv0, pg_status st) {
    fprintf(stderr, "%s: %s: %s\n", argv0, pg_status_string(st), pg_last_error());
    return 1;
}

int main(int argc, char **argv) {
    random_llama_config c;
    random_llama_preset("tiny", &c);
    random_imagebind_config e;
    random_imagebind_preset("tiny", &e);
    const char *outdir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--type") == 0 && i + 1 < argc) {
            if (!parse_type(argv[++i], &c.type)) return usage(argv[0]);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            char *end;
            c.seed = e.seed = strtoull(argv[++i], &end, 0);
            if (*end) return usage(argv[0]);
        } else if (argv[i][0] == '-' || outdir) {
            return usage(argv[0]);
        } else {
            outdir = argv[i];
        }
    }
    if (!outdir) return usage(argv[0]);
    if (mkdir(outdir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: cannot create %s: %s\n", argv[0], outdir, strerror(errno));
        return 1;
    }
    e.llama_proj_out = c.n_embd; /* the modality slot is one row of the LLM's input */
    e.type = PG_DTYPE_F32;

    int rc = 1;
    char *llm = path_in(outdir, "demo-llm.gguf"), *enc = path_in(outdir, "demo-encoder.gguf");
    char *png = path_in(outdir, "demo.png"), *wav = path_in(outdir, "demo.wav");
    demo_vocab *v = NULL;
    pg_status st;
    if (!llm || !enc || !png || !wav) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        goto done;
    }
    if (!(v = demo_vocab_build(c.n_vocab))) {
        fprintf(stderr, "%s: cannot build the vocabulary\n", argv[0]);
        goto done;
    }
    if ((st = random_llama_write(&c, llm, "libpandagpt demo (random weights)"))) {
        rc = fail(argv[0], st);
        goto done;
    }
    printf("wrote %s (%lld bytes)\n", llm, file_size(llm));
    printf("  llama: n_embd %d, %d layers, %d heads (head_dim %d), n_ff %d, n_ctx %d\n",
           (int)c.n_embd, (int)c.n_layer, (int)c.n_head, (int)(c.n_embd / c.n_head),
           (int)c.n_ff, (int)c.n_ctx);
    printf("  weights: %s (norms F32%s), seed %llu, %llu parameters\n", pg_dtype_name(c.type),
           c.n_ff % pg_dtype_block_elems(c.type) ? "; ffn_down F16: its rows are not a "
                                                   "multiple of 32" : "",
           (unsigned long long)c.seed, (unsigned long long)random_llama_n_params(&c));
    printf("  vocabulary: %d pieces = 259 special/byte + %d learned merges + %d characters + "
           "%d padding (from a %zu-byte built-in corpus)\n", (int)v->n, (int)v->n_merges,
           (int)v->n_chars, (int)v->n_padding, strlen(demo_vocab_corpus()));

    if ((st = random_imagebind_write(&e, enc, "libpandagpt demo encoder (random weights)"))) {
        rc = fail(argv[0], st);
        goto done;
    }
    printf("wrote %s (%lld bytes)\n", enc, file_size(enc));
    printf("  imagebind: vision %d, audio %d, thermal %d, depth %d, imu %d wide, %d blocks "
           "each; embed_dim %d; llama_proj %d -> %d\n",
           (int)e.m[RANDOM_IMAGEBIND_VISION].width, (int)e.m[RANDOM_IMAGEBIND_AUDIO].width,
           (int)e.m[RANDOM_IMAGEBIND_THERMAL].width, (int)e.m[RANDOM_IMAGEBIND_DEPTH].width,
           (int)e.m[RANDOM_IMAGEBIND_IMU].width, (int)e.m[RANDOM_IMAGEBIND_VISION].blocks,
           (int)e.dim, (int)e.dim, (int)e.llama_proj_out);
    printf("  weights: F32, seed %llu, %llu parameters\n", (unsigned long long)e.seed,
           (unsigned long long)random_imagebind_n_params(&e));

    if ((st = demo_media_write(png, wav))) {
        rc = fail(argv[0], st);
        goto done;
    }
    printf("wrote %s (%lld bytes): %dx%d RGB, sky, sun and hills\n", png, file_size(png),
           DEMO_IMAGE_WIDTH, DEMO_IMAGE_HEIGHT);
    printf("wrote %s (%lld bytes): %d s of bird chirps, 16-bit mono at %d Hz\n", wav,
           file_size(wav), DEMO_AUDIO_FRAMES / DEMO_AUDIO_RATE, DEMO_AUDIO_RATE);
    rc = 0;

done:
    demo_vocab_free(v);
    free(llm);
    free(enc);
    free(png);
    free(wav);
    return rc;
}
