/*
 * simple.c — the shortest complete libpandagpt program: load PandaGPT, ask one question about an
 * image and stream the answer to stdout.
 *
 *   simple vicuna.gguf imagebind.gguf cat.jpg ["What is in this image?"]
 *
 * Build against an installed library:  cc simple.c $(pkg-config --cflags --libs pandagpt)
 * Exit status: 0 answered, 1 failed (pg_last_error() on stderr says why), 2 usage error.
 */
#include <stdio.h>

#include <pandagpt.h>

/* Called for each piece of the answer as it is generated; returning 0 asks for more. */
static int print_piece(const char *piece, size_t len, int32_t token, void *user_data) {
    (void)token;
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s LLM.gguf ENCODER.gguf IMAGE [QUESTION]\n", argv[0]);
        return 2;
    }
    const char *question = argc == 5 ? argv[4] : "What is in this image?";

    pg_model_params params;
    pg_model_params_init(&params);
    params.encoder_path = argv[2];

    pg_media *image = NULL;
    pg_model *model = NULL;
    pg_session *session = NULL;
    /* Each step runs only if every one before it succeeded; st holds the first failure. */
    pg_status st = pg_media_load_file(PG_MODALITY_IMAGE, argv[3], &image);
    if (st == PG_OK)
        st = pg_model_load(argv[1], &params, &model);
    if (st == PG_OK)
        st = pg_session_new(model, NULL, &session);
    if (st == PG_OK)
        st = pg_session_chat(session, question, &image, 1, NULL, print_piece, NULL);

    if (st == PG_OK)
        putchar('\n');
    else
        fprintf(stderr, "%s: %s: %s\n", argv[0], pg_status_string(st), pg_last_error());
    pg_session_free(session); /* sessions before their model; NULL is a no-op */
    pg_model_free(model);
    pg_media_free(image);
    return st == PG_OK ? 0 : 1;
}
