/*
 * pandagpt-cli — chat with PandaGPT from the terminal, through the public API only.
 *
 *   pandagpt-cli -m vicuna.gguf -e imagebind.gguf --image cat.jpg -p "What is in the picture?"
 *   pandagpt-cli -m vicuna.gguf                      (interactive: one line = one turn)
 *
 * With -p the program answers once and exits; without it, it reads lines from stdin, each a turn
 * of the same conversation (history and KV cache kept), with the commands /reset and /quit.
 * The media given on the command line go into the conversation's first turn, as in PandaGPT's
 * demo, where later turns reuse the modality slot; after /reset they are given again.
 *
 * The answer is streamed to stdout; everything else (load time, model facts, per-turn timings,
 * notes and errors) goes to stderr, so `pandagpt-cli ... -p Q > answer.txt` captures the answer.
 * Ctrl-C stops the answer being generated (the session stays usable); a second Ctrl-C while
 * waiting for input exits.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pandagpt.h"

#define MAX_MEDIA 64

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

typedef struct cli_options {
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
        "usage: pandagpt-cli -m LLM.gguf [options]\n"
        "  -m FILE               LLaMA/Vicuna GGUF (required)\n"
        "  -e FILE               ImageBind + llama_proj encoder GGUF\n"
        "  --lora FILE           LoRA adapter GGUF, merged at load\n"
        "  --lora-scale F        multiplier of the adapter's alpha/r (default 1.0)\n"
        "  --image F, --video F, --audio F, --depth F, --thermal F, --imu F\n"
        "                        media for the first turn (repeatable, %d at most)\n"
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
        "interactive commands: /reset (new conversation), /quit\n",
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

/* Fills *o from argv; returns 0 on success, 2 for a usage error, 1 after -h. */
static int parse_args(int argc, char **argv, cli_options *o)
{
    static const struct { const char *flag; pg_modality modality; } media_flags[] = {
        {"--image", PG_MODALITY_IMAGE},   {"--video", PG_MODALITY_VIDEO},
        {"--audio", PG_MODALITY_AUDIO},   {"--depth", PG_MODALITY_DEPTH},
        {"--thermal", PG_MODALITY_THERMAL}, {"--imu", PG_MODALITY_IMU},
    };
    int greedy = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--greedy")) {
            greedy = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "pandagpt-cli: %s: unknown flag or missing value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        int ok = 1, is_media = 0;
        for (size_t k = 0; k < sizeof media_flags / sizeof media_flags[0]; k++) {
            if (strcmp(a, media_flags[k].flag))
                continue;
            is_media = 1;
            if (o->n_media == MAX_MEDIA) {
                fprintf(stderr, "pandagpt-cli: more than %d media\n", MAX_MEDIA);
                return 2;
            }
            o->media[o->n_media++] = (cli_media){media_flags[k].modality, v};
        }
        if (is_media)                           continue;
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
    if (!o->llm_path) {
        fprintf(stderr, "pandagpt-cli: -m LLM.gguf is required\n");
        return 2;
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
        usage(stderr);
        return 2;
    }

    pg_media *media[MAX_MEDIA] = {0};
    pg_model *model = NULL;
    pg_session *session = NULL;
    pg_status st = PG_OK;
    int exit_code = 0;

    /* Media first: a missing or undecodable file fails before the (slow) model load. */
    for (size_t i = 0; i < o.n_media; i++) {
        st = pg_media_load_file(o.media[i].modality, o.media[i].path, &media[i]);
        if (st != PG_OK)
            goto done;
    }

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
    if (st != PG_OK)
        print_error(st);
    pg_session_free(session);
    pg_model_free(model);
    for (size_t i = 0; i < o.n_media; i++)
        pg_media_free(media[i]);
    return st == PG_OK ? exit_code : 1;
}
