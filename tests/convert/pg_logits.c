/*
 * pg_logits.c — logits of a token/embedding sequence through the public API only, for the
 * converter's test (tests/convert/test_convert.py).
 *
 *   pg-logits MODEL.gguf [--lora FILE] [--lora-scale S] --ids 1,5,E,7 [--embd FILE.f32]
 *             --out FILE.f32 [--all] [--threads N]
 *
 * Each `E` in --ids is a position filled by the next row of --embd (raw little-endian float32,
 * pg_model_n_embd floats a row) through pg_session_eval_embeddings; the other entries are token
 * ids for pg_session_eval_tokens. Without --all, each run of consecutive tokens is one batch and
 * each run of consecutive rows one batch, and the last position's logits (n_vocab float32) are
 * written. With --all, positions are evaluated one at a time and every position's logits are
 * written (T × n_vocab). On a library error the message of pg_last_error() goes to stderr and the
 * exit status is 1; on a usage error it is 2.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pandagpt.h>

/* One entry of --ids: a token id, or EMBD_ROW for the next --embd row. */
#define EMBD_ROW (-1)

typedef struct options {
    const char *model, *lora, *embd, *out;
    float lora_scale;
    int all, n_threads;
    int32_t *items; /* [n_items] token ids or EMBD_ROW */
    size_t n_items, n_rows;
} options;

static int usage(const char *why) {
    fprintf(stderr, "pg-logits: %s\nusage: pg-logits MODEL.gguf [--lora FILE] [--lora-scale S] "
                    "--ids 1,5,E,7 [--embd FILE.f32] --out FILE.f32 [--all] [--threads N]\n",
            why);
    return 2;
}

static int parse_ids(options *o, const char *list) {
    size_t cap = 1;
    for (const char *c = list; *c; c++) cap += *c == ',';
    o->items = malloc(cap * sizeof *o->items);
    if (!o->items) return 0;
    const char *c = list;
    while (*c) {
        if (*c == 'E' && (c[1] == ',' || !c[1])) {
            o->items[o->n_items++] = EMBD_ROW;
            o->n_rows++;
            c++;
        } else {
            char *end;
            errno = 0;
            long v = strtol(c, &end, 10);
            if (end == c || errno || v < 0 || v > INT32_MAX || (*end && *end != ',')) return 0;
            o->items[o->n_items++] = (int32_t)v;
            c = end;
        }
        if (*c == ',') c++;
    }
    return o->n_items > 0;
}

static int parse_args(options *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->lora_scale = 1.0f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "--all")) o->all = 1;
        else if (!strcmp(a, "--lora") && has_value) o->lora = argv[++i];
        else if (!strcmp(a, "--lora-scale") && has_value) o->lora_scale = strtof(argv[++i], NULL);
        else if (!strcmp(a, "--embd") && has_value) o->embd = argv[++i];
        else if (!strcmp(a, "--out") && has_value) o->out = argv[++i];
        else if (!strcmp(a, "--threads") && has_value) o->n_threads = atoi(argv[++i]);
        else if (!strcmp(a, "--ids") && has_value) {
            if (!parse_ids(o, argv[++i])) return usage("bad --ids list");
        } else if (a[0] != '-' && !o->model) o->model = a;
        else {
            fprintf(stderr, "pg-logits: unknown or incomplete argument '%s'\n", a);
            return usage("bad arguments");
        }
    }
    if (!o->model || !o->out || !o->n_items) return usage("MODEL, --ids and --out are needed");
    if (o->n_rows && !o->embd) return usage("--ids has E entries but no --embd file");
    return 0;
}

/* Reads exactly n_rows rows of n_embd floats; NULL (after a message) on a size mismatch. */
static float *read_rows(const char *path, size_t n_rows, size_t n_embd) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "pg-logits: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t want = n_rows * n_embd;
    float *rows = malloc((want + 1) * sizeof *rows);
    size_t got = rows ? fread(rows, sizeof *rows, want + 1, f) : 0;
    fclose(f);
    if (!rows || got != want) {
        fprintf(stderr, "pg-logits: %s holds %zu floats, --ids needs %zu rows of %zu\n", path, got,
                n_rows, n_embd);
        free(rows);
        return NULL;
    }
    return rows;
}

static int fail(const char *what, pg_status s) {
    fprintf(stderr, "pg-logits: %s: %s: %s\n", what, pg_status_string(s), pg_last_error());
    return 1;
}

int main(int argc, char **argv) {
    options o;
    int rc = parse_args(&o, argc, argv);
    if (rc) {
        free(o.items);
        return rc;
    }

    pg_model_params mp;
    pg_model_params_init(&mp);
    mp.device = PG_DEVICE_CPU; /* the CPU path is the oracle here; tests/gpu checks CUDA */
    mp.n_threads = o.n_threads;
    mp.lora_path = o.lora;
    mp.lora_scale = o.lora_scale;
    pg_model *m = NULL;
    pg_session *s = NULL;
    float *rows = NULL, *logits = NULL;
    FILE *out = NULL;
    pg_status st = pg_model_load(o.model, &mp, &m);
    if (st != PG_OK) {
        rc = fail("pg_model_load", st);
        goto done;
    }
    size_t n_vocab = (size_t)pg_model_n_vocab(m), n_embd = (size_t)pg_model_n_embd(m);
    if ((st = pg_session_new(m, NULL, &s)) != PG_OK) {
        rc = fail("pg_session_new", st);
        goto done;
    }
    if (o.n_rows && !(rows = read_rows(o.embd, o.n_rows, n_embd))) {
        rc = 1;
        goto done;
    }
    logits = malloc(n_vocab * sizeof *logits);
    out = fopen(o.out, "wb");
    if (!logits || !out) {
        fprintf(stderr, "pg-logits: cannot %s\n", logits ? "create the output file" : "allocate");
        rc = 1;
        goto done;
    }

    /* A batch is one position with --all, else a maximal run of tokens or of rows. */
    const float *next_row = rows;
    for (size_t i = 0; i < o.n_items;) {
        int is_row = o.items[i] == EMBD_ROW;
        size_t n = 1;
        while (!o.all && i + n < o.n_items && (o.items[i + n] == EMBD_ROW) == is_row) n++;
        if (is_row) {
            st = pg_session_eval_embeddings(s, next_row, n);
            next_row += n * n_embd;
        } else {
            st = pg_session_eval_tokens(s, o.items + i, n);
        }
        if (st != PG_OK) {
            rc = fail(is_row ? "pg_session_eval_embeddings" : "pg_session_eval_tokens", st);
            goto done;
        }
        i += n;
        if (o.all || i == o.n_items) {
            if ((st = pg_session_logits(s, logits, n_vocab)) != PG_OK) {
                rc = fail("pg_session_logits", st);
                goto done;
            }
            if (fwrite(logits, sizeof *logits, n_vocab, out) != n_vocab) {
                fprintf(stderr, "pg-logits: cannot write %s\n", o.out);
                rc = 1;
                goto done;
            }
        }
    }

done:
    if (out && fclose(out) && !rc) {
        fprintf(stderr, "pg-logits: cannot write %s\n", o.out);
        rc = 1;
    }
    free(logits);
    free(rows);
    free(o.items);
    pg_session_free(s);
    pg_model_free(m);
    return rc;
}
