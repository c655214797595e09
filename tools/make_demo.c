/*
 * make_demo.c — pandagpt-make-demo: writes the demo model, a random-weight llama GGUF with the
 * vocabulary trained by demo_vocab.c, so the library can be tried without downloading anything.
 *
 *   pandagpt-make-demo [--type f32|f16|bf16|q8_0|q4_0] [--seed N] OUTDIR
 *
 * OUTDIR/demo-llm.gguf: n_embd 256, 4 layers, 8 heads, n_ff 688, vocab 4000, F16 weights and F32
 * norms unless --type says otherwise. The same seed gives the same bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "demo_vocab.h"
#include "gguf/dtype.h"
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
                    "writes OUTDIR/demo-llm.gguf, a random-weight llama model with a trained "
                    "demo vocabulary\n", argv0);
    return 2;
}

int main(int argc, char **argv) {
    random_llama_config c;
    random_llama_preset("tiny", &c);
    const char *outdir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--type") == 0 && i + 1 < argc) {
            if (!parse_type(argv[++i], &c.type)) return usage(argv[0]);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            char *end;
            c.seed = strtoull(argv[++i], &end, 0);
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

    size_t plen = strlen(outdir) + sizeof "/demo-llm.gguf";
    char *path = malloc(plen);
    if (!path) return 1;
    snprintf(path, plen, "%s/demo-llm.gguf", outdir);

    demo_vocab *v = demo_vocab_build(c.n_vocab);
    if (!v) {
        fprintf(stderr, "%s: cannot build the vocabulary\n", argv[0]);
        free(path);
        return 1;
    }
    pg_status st = random_llama_write(&c, path, "libpandagpt demo (random weights)");
    if (st != PG_OK) {
        fprintf(stderr, "%s: %s: %s\n", argv[0], pg_status_string(st), pg_last_error());
        demo_vocab_free(v);
        free(path);
        return 1;
    }

    struct stat sb;
    long long size = stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
    printf("wrote %s (%lld bytes)\n", path, size);
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
    demo_vocab_free(v);
    free(path);
    return 0;
}
