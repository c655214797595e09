/*
 * pandagpt-cli — chat with PandaGPT from the terminal, through the public API only.
 *
 *   pandagpt-cli -m vicuna.gguf -e imagebind.gguf --image cat.jpg -p "What is in the picture?"
 *   pandagpt-cli -m vicuna.gguf                      (interactive: one line = one turn)
 *   pandagpt-cli embed -e imagebind.gguf --image cat.jpg --audio meow.wav [--json]
 *
 * With -p the program answers once and exits; without it, it reads lines from stdin, each a turn
 * of the same conversation (history and KV cache kept), with the commands /reset and /quit.
 * The media given on the command line go into the conversation's first turn, as in PandaGPT's
 * demo, where later turns reuse the modality slot; after /reset they are given again.
 *
 * `embed` loads the encoder alone (pg_model_load with no LLM), embeds every input (pg_embed) and
 * prints each vector and the cosine similarities of all of them: cross-modal retrieval from the
 * command line. --json prints the same (full vectors) as one JSON object, for scripts.
 *
 * IMU traces have no file format upstream (docs/media.md): --imu takes a NumPy .npy file of
 * float32 [6, N] (or [1, 6, N]) or a raw file of 6·N little-endian float32 values, channel by
 * channel, and hands the array to pg_media_from_tensor.
 *
 * The answer is streamed to stdout; everything else (load time, model facts, per-turn timings,
 * notes and errors) goes to stderr, so `pandagpt-cli ... -p Q > answer.txt` captures the answer.
 * Ctrl-C stops the answer being generated (the session stays usable); a second Ctrl-C while
 * waiting for input exits.
 *
 * Exit status: 0 done, 1 failed (the message says why), 2 usage error, 3 not supported by this
 * build (PG_ERR_UNSUPPORTED: e.g. a media decoder library it was built without).
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pandagpt.h"

#define MAX_MEDIA 64
#define EXIT_UNSUPPORTED 3

/* Ctrl-C presses since the last turn started: the token callback stops generation when nonzero. */
static volatile sig_atomic_t g_sigint;

static void on_sigint(int sig)
{
    (void)sig;
    if (g_sigint < 2)
        g_sigint = g_sigint + 1;
}

/* ---- Command line */

typedef struct cli_media {
    pg_modality modality;
    const char *path;
} cli_media;

/* The media flags, indexed by pg_modality; the flag without "--" is the modality's name. */
static const char *const MEDIA_FLAGS[] = {"--image", "--video", "--audio", "--depth",
                                          "--thermal", "--imu"};

typedef struct cli_options {
    int embed;                     /* the `embed` subcommand */
    int json;                      /* embed --json */
    const char *llm_path;
    const char *prompt;            /* NULL: interactive */
    cli_media media[MAX_MEDIA];
    size_t n_media;
    pg_model_params model;
    pg_session_params session;
    pg_generate_params gen;
} cli_options;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: pandagpt-cli -m LLM.gguf [-e ENCODER.gguf] [MEDIA...] [options]\n"
        "       pandagpt-cli embed -e ENCODER.gguf MEDIA... [--json] [-t N]\n"
        "chat (one prompt with -p, else interactive):\n"
        "  -m FILE               LLaMA/Vicuna GGUF (required)\n"
        "  -e FILE               ImageBind + llama_proj encoder GGUF (needed with media)\n"
        "  --lora FILE           LoRA adapter GGUF, merged at load\n"
        "  --lora-scale F        multiplier of the adapter's alpha/r (default 1.0)\n"
        "  -p PROMPT             answer one prompt and exit (default: interactive)\n"
        "  -n N                  max new tokens per turn (default 256)\n"
        "  --temp F              temperature, 0 = greedy (default 1.0)\n"
        "  --top-k N             top-k, 0 = off (default 50)\n"
        "  --top-p F             top-p, 1 = off (default 0.01)\n"
        "  --repeat-penalty F    HF repetition penalty, 1 = off (default 1.0)\n"
        "  --seed N              sampling seed (default 0)\n"
        "  -t, --threads N       CPU threads, 0 = all cores (default 0)\n"
        "  --device D            auto, cpu or cuda (default auto)\n"
        "  --ctx N               KV cache positions, 0 = model's context (default 0)\n"
        "  --greedy              same as --temp 0\n"
        "  -h, --help            this help\n"
        "  interactive commands: /reset (new conversation), /quit\n"
        "embed: prints each input's vector (first 8 values, L2 norm) and the cosine similarity\n"
        "  matrix of all inputs\n"
        "  -e FILE               ImageBind encoder GGUF (required)\n"
        "  --json                everything as one JSON object (full vectors) on stdout\n"
        "  -t, --threads N       CPU threads, 0 = all cores (default 0)\n"
        "MEDIA (chat: the first turn's, summed into its modality slot; embed: the inputs;\n"
        "       each flag repeatable, any mix, %d in all at most):\n"
        "  --image F             JPEG or PNG\n"
        "  --video F             anything FFmpeg reads\n"
        "  --audio F             anything libsndfile reads (WAV, FLAC, OGG, ...)\n"
        "  --depth F             grey 8/16-bit PNG of disparity\n"
        "  --thermal F           JPEG or PNG\n"
        "  --imu F               float32 [6, N]: a .npy file, or raw little-endian float32,\n"
        "                        6 channels of N samples one after the other\n"
        "exit status: 0 done, 1 failed, 2 usage error, 3 not supported by this build\n"
        "  (e.g. a media decoder library it was built without)\n",
        MAX_MEDIA);
}

static int parse_i32(const char *s, long lo, long hi, int32_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return 0;
    *out = (int32_t)v;
    return 1;
}

static int parse_f32(const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || strchr(s, '-'))
        return 0;
    *out = (uint64_t)v;
    return 1;
}

/* The modality of a media flag, or -1. */
static int media_flag(const char *a)
{
    for (int k = 0; k < (int)(sizeof MEDIA_FLAGS / sizeof MEDIA_FLAGS[0]); k++)
        if (!strcmp(a, MEDIA_FLAGS[k]))
            return k;
    return -1;
}

/* The flags `embed` takes besides the media ones. */
static int embed_flag(const char *a)
{
    return !strcmp(a, "-e") || !strcmp(a, "-t") || !strcmp(a, "--threads") ||
           !strcmp(a, "--json") || !strcmp(a, "-h") || !strcmp(a, "--help");
}

/* Fills *o from argv; returns 0 on success, 2 for a usage error, 1 after -h. */
static int parse_args(int argc, char **argv, cli_options *o)
{
    int greedy = 0, first = 1;
    if (argc > 1 && !strcmp(argv[1], "embed")) {
        o->embed = 1;
        first = 2;
    }
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        int mod = media_flag(a);
        if (o->embed && mod < 0 && !embed_flag(a)) {
            fprintf(stderr, "pandagpt-cli embed: %s is not an embed flag\n", a);
            return 2;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--greedy")) {
            greedy = 1;
            continue;
        }
        if (!strcmp(a, "--json")) {
            if (!o->embed) {
                fprintf(stderr, "pandagpt-cli: --json goes with the embed subcommand\n");
                return 2;
            }
            o->json = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "pandagpt-cli: %s: unknown flag or missing value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        int ok = 1;
        if (mod >= 0) {
            if (o->n_media == MAX_MEDIA) {
                fprintf(stderr, "pandagpt-cli: more than %d media\n", MAX_MEDIA);
                return 2;
            }
            o->media[o->n_media++] = (cli_media){(pg_modality)mod, v};
        }
        else if (!strcmp(a, "-m"))              o->llm_path = v;
        else if (!strcmp(a, "-e"))              o->model.encoder_path = v;
        else if (!strcmp(a, "--lora"))          o->model.lora_path = v;
        else if (!strcmp(a, "--lora-scale"))    ok = parse_f32(v, &o->model.lora_scale);
        else if (!strcmp(a, "-p"))              o->prompt = v;
        else if (!strcmp(a, "-n"))              ok = parse_i32(v, 1, INT32_MAX, &o->gen.max_tokens);
        else if (!strcmp(a, "--temp"))          ok = parse_f32(v, &o->gen.temperature);
        else if (!strcmp(a, "--top-k"))         ok = parse_i32(v, 0, INT32_MAX, &o->gen.top_k);
        else if (!strcmp(a, "--top-p"))         ok = parse_f32(v, &o->gen.top_p);
        else if (!strcmp(a, "--repeat-penalty")) ok = parse_f32(v, &o->gen.repeat_penalty);
        else if (!strcmp(a, "--seed"))          ok = parse_u64(v, &o->gen.seed);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            ok = parse_i32(v, 0, 4096, &o->model.n_threads);
        else if (!strcmp(a, "--ctx"))           ok = parse_i32(v, 0, INT32_MAX, &o->session.n_ctx);
        else if (!strcmp(a, "--device")) {
            if (!strcmp(v, "auto"))      o->model.device = PG_DEVICE_AUTO;
            else if (!strcmp(v, "cpu"))  o->model.device = PG_DEVICE_CPU;
            else if (!strcmp(v, "cuda")) o->model.device = PG_DEVICE_CUDA;
            else                         ok = 0;
        } else {
            fprintf(stderr, "pandagpt-cli: unknown flag %s\n", a);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "pandagpt-cli: bad value for %s: '%s'\n", a, v);
            return 2;
        }
    }
    if (greedy)
        o->gen.temperature = 0.0f;
    if (o->embed) {
        if (!o->model.encoder_path || o->n_media == 0) {
            fprintf(stderr, "pandagpt-cli embed: %s\n", !o->model.encoder_path
                    ? "-e ENCODER.gguf is required" : "give at least one input (--image F, ...)");
            return 2;
        }
        return 0;
    }
    if (!o->llm_path) {
        fprintf(stderr, "pandagpt-cli: -m LLM.gguf is required\n");
        return 2;
    }
    if (o->n_media && !o->model.encoder_path) {
        fprintf(stderr, "pandagpt-cli: media need an encoder: -e ENCODER.gguf\n");
        return 2;
    }
    return 0;
}

/* ---- Media */

static int exit_status(pg_status st)
{
    return st == PG_OK ? 0 : st == PG_ERR_UNSUPPORTED ? EXIT_UNSUPPORTED : 1;
}

/* Reads a whole file of at most max bytes; on failure returns NULL with why filled. */
static uint8_t *read_file(const char *path, size_t max, size_t *size, char *why, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, cap, "cannot open (%s)", strerror(errno));
        return NULL;
    }
    uint8_t *data = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0)
        snprintf(why, cap, "cannot seek (not a regular file?)");
    else if ((unsigned long)n > max)
        snprintf(why, cap, "%ld bytes is more than an IMU trace can hold (%zu)", n, max);
    else if (!(data = malloc(n ? (size_t)n : 1)))
        snprintf(why, cap, "cannot allocate %ld bytes", n);
    else if (fread(data, 1, (size_t)n, f) != (size_t)n) {
        snprintf(why, cap, "read error");
        free(data);
        data = NULL;
    }
    fclose(f);
    *size = n > 0 ? (size_t)n : 0;
    return data;
}

static float f32_from_bytes(const uint8_t *p, int big_endian)
{
    uint32_t u = big_endian
        ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
        : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The text after "'key':" in a NumPy header dict (spaces skipped), or NULL. */
static const char *npy_field(const char *hdr, const char *key)
{
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s'", key);
    const char *p = strstr(hdr, quoted);
    if (!p) {
        snprintf(quoted, sizeof quoted, "\"%s\"", key);
        p = strstr(hdr, quoted);
    }
    if (!p)
        return NULL;
    p += strlen(quoted);
    while (*p == ' ')
        p++;
    if (*p++ != ':')
        return NULL;
    while (*p == ' ')
        p++;
    return p;
}

#define IMU_CHANNELS 6
#define IMU_MAX_SAMPLES ((int64_t)1 << 24) /* pg_media_from_tensor's limit per dimension */
#define NPY_MAX_HEADER 65536

/* An IMU trace from a NumPy file (float32, [6, N] or [1, 6, N], either byte order, C or Fortran
 * order) or a raw file of 6·N little-endian float32 values (channel after channel). On success
 * *out is malloc'd [6, N] in C order and returns 1; on failure why says what is wrong. */
static int read_imu(const char *path, float **out, int64_t *n_samples, char *why, size_t cap)
{
    const size_t max = NPY_MAX_HEADER + 12 + (size_t)IMU_CHANNELS * IMU_MAX_SAMPLES * 4;
    size_t size;
    uint8_t *bytes = read_file(path, max, &size, why, cap);
    if (!bytes)
        return 0;
    const uint8_t *data = bytes;
    size_t n_values = size / 4;
    int64_t n = 0;
    int big_endian = 0, fortran = 0, ok = 0;
    char *hdr = NULL;
    if (size >= 10 && !memcmp(bytes, "\x93NUMPY", 6)) {
        /* NumPy format 1.0 / 2.0 / 3.0: magic, version, header length (2 or 4 bytes, LE), a
         * Python dict literal padded with spaces, then the data. */
        size_t at = bytes[6] == 1 ? 10 : 12;
        size_t hlen = bytes[6] == 1 ? (size_t)bytes[8] | (size_t)bytes[9] << 8
                    : size >= 12 ? (size_t)bytes[8] | (size_t)bytes[9] << 8 |
                                   (size_t)bytes[10] << 16 | (size_t)bytes[11] << 24 : SIZE_MAX;
        if (bytes[6] < 1 || bytes[6] > 3 || hlen > NPY_MAX_HEADER || at + hlen > size) {
            snprintf(why, cap, "not a readable NumPy file (version %d, header of %zu bytes)",
                     bytes[6], hlen);
            goto done;
        }
        if (!(hdr = malloc(hlen + 1))) {
            snprintf(why, cap, "out of memory");
            goto done;
        }
        memcpy(hdr, bytes + at, hlen);
        hdr[hlen] = '\0';
        const char *descr = npy_field(hdr, "descr"), *order = npy_field(hdr, "fortran_order");
        const char *shape = npy_field(hdr, "shape");
        if (!descr || !order || !shape) {
            snprintf(why, cap, "NumPy header without descr, fortran_order or shape: %s", hdr);
            goto done;
        }
        if ((descr[0] != '\'' && descr[0] != '"') || (descr[1] != '<' && descr[1] != '>') ||
            strncmp(descr + 2, "f4", 2) || descr[4] != descr[0]) {
            snprintf(why, cap, "the array is not float32 (descr %.*s); save it with "
                     "a.astype(np.float32)", (int)strcspn(descr, ","), descr);
            goto done;
        }
        big_endian = descr[1] == '>';
        fortran = !strncmp(order, "True", 4);
        int64_t dims[8];
        int nd = 0;
        const char *p = shape + 1;
        if (shape[0] != '(')
            nd = -1;
        while (nd >= 0 && *p != ')') {
            char *end;
            long long d = strtoll(p, &end, 10);
            if (end == p || nd == 8 || d < 0) {
                nd = -1;
                break;
            }
            dims[nd++] = d;
            for (p = end; *p == ' ' || *p == ','; p++) {}
        }
        if (nd == 3 && dims[0] == 1) { /* a batch of one */
            dims[0] = dims[1], dims[1] = dims[2];
            nd = 2;
        }
        if (nd != 2 || dims[0] != IMU_CHANNELS) {
            snprintf(why, cap, "want a float32 array of shape (6, N) — accelerometer x, y, z, "
                     "gyroscope x, y, z — got shape %.*s%s", (int)strcspn(shape, ")") + 1, shape,
                     nd == 2 && dims[1] == IMU_CHANNELS ? "; transpose it "
                     "(np.save(f, a.T.copy()))" : "");
            goto done;
        }
        n = dims[1];
        data = bytes + at + hlen;
        n_values = (size - at - hlen) / 4;
        if (n < 1 || n > IMU_MAX_SAMPLES || (size - at - hlen) != (size_t)n * IMU_CHANNELS * 4) {
            snprintf(why, cap, "shape (6, %lld) but %zu data bytes", (long long)n,
                     size - at - hlen);
            goto done;
        }
    } else {
        if (size == 0 || size % (IMU_CHANNELS * 4)) {
            snprintf(why, cap, "%zu bytes: a raw IMU file holds 6·N float32 values (a multiple "
                     "of 24 bytes); or give a .npy file", size);
            goto done;
        }
        n = (int64_t)(size / (IMU_CHANNELS * 4));
    }
    float *x = malloc(sizeof(float) * n_values);
    if (!x) {
        snprintf(why, cap, "out of memory (%zu values)", n_values);
        goto done;
    }
    for (int64_t c = 0; c < IMU_CHANNELS; c++)
        for (int64_t t = 0; t < n; t++) {
            size_t from = fortran ? (size_t)(t * IMU_CHANNELS + c) : (size_t)(c * n + t);
            x[c * n + t] = f32_from_bytes(data + 4 * from, big_endian);
        }
    *out = x;
    *n_samples = n;
    ok = 1;
done:
    free(hdr);
    free(bytes);
    return ok;
}

/* Decodes one media of the command line. On failure prints why and returns the exit status. */
static int load_media(const cli_media *cm, pg_media **out)
{
    const char *flag = MEDIA_FLAGS[cm->modality];
    pg_status st;
    if (cm->modality == PG_MODALITY_IMU) {
        float *x;
        int64_t shape[2] = {IMU_CHANNELS, 0};
        char why[512];
        if (!read_imu(cm->path, &x, &shape[1], why, sizeof why)) {
            fprintf(stderr, "pandagpt-cli: %s %s: %s\n", flag, cm->path, why);
            return 1;
        }
        st = pg_media_from_tensor(PG_MODALITY_IMU, x, shape, 2, out);
        free(x);
    } else {
        st = pg_media_load_file(cm->modality, cm->path, out);
    }
    if (st != PG_OK) {
        fprintf(stderr, "pandagpt-cli: %s %s: %s: %s\n", flag, cm->path, pg_status_string(st),
                pg_last_error());
        return exit_status(st);
    }
    return 0;
}

/* ---- Chat */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* user_data: a size_t counting the bytes streamed in this turn. */
static int print_piece(const char *piece, size_t len, int32_t token, void *user_data)
{
    (void)token;
    *(size_t *)user_data += len;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return g_sigint != 0;
}

static void print_timings(const pg_session *s)
{
    pg_timings t = {.struct_size = sizeof t};
    if (pg_session_timings(s, &t) != PG_OK)
        return;
    double p_rate = t.prompt_ms > 0 ? t.n_prompt * 1e3 / t.prompt_ms : 0.0;
    double d_rate = t.decode_ms > 0 ? t.n_generated * 1e3 / t.decode_ms : 0.0;
    fprintf(stderr,
            "prompt: %d tokens (%d reused) in %.1f ms, %.1f tok/s | "
            "decode: %d tokens in %.1f ms, %.1f tok/s\n",
            t.n_prompt, t.n_reused, t.prompt_ms, p_rate, t.n_generated, t.decode_ms, d_rate);
}

static void print_error(pg_status st)
{
    fprintf(stderr, "pandagpt-cli: %s: %s\n", pg_status_string(st), pg_last_error());
}

/* One turn. Returns PG_OK or a recoverable status (cancelled, context full), which it explains;
 * any other status is returned for the caller to report as fatal. */
static pg_status turn(pg_session *s, const char *text, pg_media *const *media, size_t n_media,
                      const pg_generate_params *g)
{
    size_t streamed = 0;
    g_sigint = 0;
    pg_status st = pg_session_chat(s, text, media, n_media, g, print_piece, &streamed);
    if (st == PG_OK || streamed > 0)
        fputc('\n', stdout);
    fflush(stdout);
    if (st == PG_ERR_CONTEXT_FULL) {
        /* No timings: a turn that did not fit may have evaluated nothing. */
        fprintf(stderr, "note: context full: %s\nnote: type /reset to start a new conversation\n",
                pg_last_error());
        return st;
    }
    if (st == PG_ERR_CANCELLED)
        fprintf(stderr, "[cancelled]\n");
    else if (st != PG_OK)
        return st;
    print_timings(s);
    g_sigint = 0;
    return st;
}

/* Reads lines from stdin until EOF, /quit or a second Ctrl-C; returns the first fatal status. */
static pg_status repl(pg_session *s, pg_media *const *media, size_t n_media,
                      const pg_generate_params *g)
{
    int tty = isatty(STDIN_FILENO);
    int media_pending = n_media > 0; /* until a turn succeeds, the modality slot is empty */
    char *line = NULL;
    size_t cap = 0;
    pg_status st = PG_OK;
    for (;;) {
        if (tty)
            fputs("> ", stderr);
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) {
            if (ferror(stdin) && errno == EINTR) {
                clearerr(stdin);
                if (g_sigint >= 2)
                    break;
                fputs("\n(Ctrl-C again to exit)\n", stderr);
                continue;
            }
            break; /* EOF */
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        g_sigint = 0;
        if (n == 0)
            continue;
        if (!strcmp(line, "/quit"))
            break;
        if (!strcmp(line, "/reset")) {
            if ((st = pg_session_reset(s)) != PG_OK)
                break;
            media_pending = n_media > 0;
            fputs("(conversation reset)\n", stderr);
            continue;
        }
        st = turn(s, line, media_pending ? media : NULL, media_pending ? n_media : 0, g);
        if (st == PG_OK)
            media_pending = 0;
        else if (st != PG_ERR_CANCELLED && st != PG_ERR_CONTEXT_FULL)
            break;
        st = PG_OK;
    }
    if (tty && feof(stdin))
        fputc('\n', stderr);
    free(line);
    return st;
}

/* ---- Embed */

/* "image:path" */
static void media_label(const cli_media *cm, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s:%s", MEDIA_FLAGS[cm->modality] + 2, cm->path);
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* A number JSON can hold: float32 round-trips in 9 significant digits; NaN and ±inf are null. */
static void json_number(FILE *f, double x)
{
    if (isfinite(x))
        fprintf(f, "%.9g", x);
    else
        fputs("null", f);
}

static void print_embed_json(const cli_options *o, const float *vec, int32_t dim,
                             const double *norm, const double *cos)
{
    const size_t n = o->n_media;
    printf("{\n  \"embed_dim\": %d,\n  \"inputs\": [\n", dim);
    for (size_t i = 0; i < n; i++) {
        char label[4200];
        media_label(&o->media[i], label, sizeof label);
        printf("    {\"label\": ");
        json_string(stdout, label);
        printf(", \"modality\": \"%s\", \"path\": ", MEDIA_FLAGS[o->media[i].modality] + 2);
        json_string(stdout, o->media[i].path);
        printf(", \"norm\": ");
        json_number(stdout, norm[i]);
        printf(",\n     \"embedding\": [");
        for (int32_t d = 0; d < dim; d++) {
            if (d)
                fputs(d % 8 ? ", " : ",\n       ", stdout);
            json_number(stdout, vec[i * (size_t)dim + (size_t)d]);
        }
        printf("]}%s\n", i + 1 < n ? "," : "");
    }
    printf("  ],\n  \"cosine_similarity\": [\n");
    for (size_t i = 0; i < n; i++) {
        printf("    [");
        for (size_t j = 0; j < n; j++) {
            if (j)
                fputs(", ", stdout);
            json_number(stdout, cos[i * n + j]);
        }
        printf("]%s\n", i + 1 < n ? "," : "");
    }
    printf("  ]\n}\n");
}

static void print_embed_text(const cli_options *o, const float *vec, int32_t dim,
                             const double *norm, const double *cos)
{
    const size_t n = o->n_media;
    const int32_t shown = dim < 8 ? dim : 8;
    int width = 0;
    char label[4200];
    for (size_t i = 0; i < n; i++) {
        media_label(&o->media[i], label, sizeof label);
        int w = (int)strlen(label);
        width = w > width ? w : width;
    }
    for (size_t i = 0; i < n; i++) {
        media_label(&o->media[i], label, sizeof label);
        printf("[%zu] %s  |v| %.4f\n   ", i, label, norm[i]);
        for (int32_t d = 0; d < shown; d++)
            printf(" %+.4f", vec[i * (size_t)dim + (size_t)d]);
        printf("%s (%d of %d)\n", shown < dim ? " ..." : "", shown, dim);
    }
    printf("\ncosine similarity\n%*s", width + 6, "");
    for (size_t j = 0; j < n; j++)
        printf(" %7s", (snprintf(label, sizeof label, "[%zu]", j), label));
    putchar('\n');
    for (size_t i = 0; i < n; i++) {
        char row[sizeof label + 32];
        media_label(&o->media[i], label, sizeof label);
        snprintf(row, sizeof row, "[%zu] %s", i, label);
        printf("%-*s", width + 6, row);
        for (size_t j = 0; j < n; j++)
            printf(" %7.4f", cos[i * n + j]);
        putchar('\n');
    }
}

/* pandagpt-cli embed: the encoder alone, every input through pg_embed, then the table. */
static int run_embed(const cli_options *o)
{
    pg_media *media[MAX_MEDIA] = {0};
    pg_model *model = NULL;
    float *vec = NULL;
    double *norm = NULL, *cos = NULL;
    pg_status st = PG_OK;
    int rc = 0;
    const size_t n = o->n_media;

    for (size_t i = 0; i < n && rc == 0; i++)
        rc = load_media(&o->media[i], &media[i]);
    if (rc)
        goto done;

    double t0 = now_ms();
    if ((st = pg_model_load(NULL, &o->model, &model)) != PG_OK)
        goto done;
    const int32_t dim = pg_model_embed_dim(model);
    long threads = o->model.n_threads > 0 ? o->model.n_threads : sysconf(_SC_NPROCESSORS_ONLN);
    fprintf(stderr, "load: %.1f ms\nencoder: embed_dim %d, threads %ld, libpandagpt %s\n",
            now_ms() - t0, dim, threads, pg_version_string());

    vec = malloc(sizeof(float) * n * (size_t)dim);
    norm = malloc(sizeof(double) * n);
    cos = malloc(sizeof(double) * n * n);
    if (!vec || !norm || !cos) {
        fprintf(stderr, "pandagpt-cli: out of memory\n");
        rc = 1;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        float *v = vec + i * (size_t)dim;
        char label[4200];
        media_label(&o->media[i], label, sizeof label);
        t0 = now_ms();
        if ((st = pg_embed(model, media[i], v, (size_t)dim)) != PG_OK) {
            fprintf(stderr, "pandagpt-cli: %s: %s: %s\n", label, pg_status_string(st),
                    pg_last_error());
            rc = exit_status(st);
            goto done;
        }
        fprintf(stderr, "embed %s: %.1f ms\n", label, now_ms() - t0);
        double ss = 0.0;
        for (int32_t d = 0; d < dim; d++)
            ss += (double)v[d] * v[d];
        norm[i] = sqrt(ss);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double dot = 0.0;
            for (int32_t d = 0; d < dim; d++)
                dot += (double)vec[i * (size_t)dim + (size_t)d] * vec[j * (size_t)dim + (size_t)d];
            cos[i * n + j] = norm[i] > 0 && norm[j] > 0 ? dot / (norm[i] * norm[j]) : NAN;
        }
    if (o->json)
        print_embed_json(o, vec, dim, norm, cos);
    else
        print_embed_text(o, vec, dim, norm, cos);
    fflush(stdout);

done:
    if (st != PG_OK && rc == 0) {
        print_error(st);
        rc = exit_status(st);
    }
    free(vec);
    free(norm);
    free(cos);
    pg_model_free(model);
    for (size_t i = 0; i < n; i++)
        pg_media_free(media[i]);
    return rc;
}

/* ---- Main */

int main(int argc, char **argv)
{
    static cli_options o; /* static: the media table is large-ish and zeroed for free */
    pg_model_params_init(&o.model);
    pg_session_params_init(&o.session);
    pg_generate_params_init(&o.gen);
    int rc = parse_args(argc, argv, &o);
    if (rc == 1)
        return 0;
    if (rc == 2) {
        fputs("usage: pandagpt-cli -m LLM.gguf [-e ENCODER.gguf] [MEDIA...] [options]\n"
              "       pandagpt-cli embed -e ENCODER.gguf MEDIA... [--json] [-t N]\n"
              "(pandagpt-cli -h lists every option)\n", stderr);
        return 2;
    }
    if (o.embed)
        return run_embed(&o);

    pg_media *media[MAX_MEDIA] = {0};
    pg_model *model = NULL;
    pg_session *session = NULL;
    pg_status st = PG_OK;
    int exit_code = 0;

    /* Media first: a missing or undecodable file fails before the (slow) model load. */
    for (size_t i = 0; i < o.n_media && exit_code == 0; i++)
        exit_code = load_media(&o.media[i], &media[i]);
    if (exit_code)
        goto done;

    double t0 = now_ms();
    if ((st = pg_model_load(o.llm_path, &o.model, &model)) != PG_OK)
        goto done;
    if ((st = pg_session_new(model, &o.session, &session)) != PG_OK)
        goto done;
    long threads = o.model.n_threads > 0 ? o.model.n_threads : sysconf(_SC_NPROCESSORS_ONLN);
    fprintf(stderr, "load: %.1f ms\n", now_ms() - t0);
    fprintf(stderr, "model: n_vocab %d, n_embd %d, embed_dim %d, n_ctx %d, threads %ld, "
                    "libpandagpt %s\n",
            pg_model_n_vocab(model), pg_model_n_embd(model), pg_model_embed_dim(model),
            pg_session_n_ctx(session), threads, pg_version_string());
    if (o.n_media) {
        fputs("media:", stderr);
        for (size_t i = 0; i < o.n_media; i++)
            fprintf(stderr, "%s %s:%s", i ? "," : "", MEDIA_FLAGS[o.media[i].modality] + 2,
                    o.media[i].path);
        fputs(" (summed into the first turn's modality slot)\n", stderr);
    }

    /* Installed after loading, so that Ctrl-C during the load still just ends the program.
     * No SA_RESTART: a Ctrl-C must interrupt the REPL's blocking read. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);

    if (o.prompt) {
        st = turn(session, o.prompt, media, o.n_media, &o.gen);
        if (st == PG_ERR_CANCELLED || st == PG_ERR_CONTEXT_FULL) {
            exit_code = 1; /* an incomplete answer, already explained by turn() */
            st = PG_OK;
        }
    } else {
        st = repl(session, media, o.n_media, &o.gen);
    }

done:
    if (st != PG_OK) {
        print_error(st);
        exit_code = exit_status(st);
    }
    pg_session_free(session);
    pg_model_free(model);
    for (size_t i = 0; i < o.n_media; i++)
        pg_media_free(media[i]);
    return exit_code;
}
