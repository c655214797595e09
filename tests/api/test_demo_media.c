/*
 * test_demo_media.c — the demo's picture and sound (tools/demo_media) through the library's
 * decoders, and a multimodal chat with the demo's kind of models.
 *
 *   picture  the PNG written by our stored-deflate encoder decodes (libpng, media_image_decode)
 *            to exactly the pixels demo_image_draw drew, and pg_media_load_file gives exactly
 *            the tensor pg_media_from_rgb8 makes of those pixels;
 *   sound    the WAV decodes (libsndfile) to exactly the synthesised samples / 32768, and
 *            pg_media_load_file gives exactly the tensor pg_media_from_pcm makes of them;
 *   chat     a tiny random LLM and the tiny random encoder (llama_proj 256) load together; a
 *            turn with both media and a turn without succeed with timings, the second reusing
 *            the first's whole prompt (its modality row included) and answering as it does when
 *            the media are given again (later turns keep the first turn's modality vector);
 *   embed    the image vector has unit norm, the audio one (the mean of 3 unit clip vectors) a
 *            norm of at most 1, and an embedding-only model gives the same vectors.
 * A build without libpng or libsndfile skips that decode (saying why) and chats with the media
 * made from the generator's pixels and samples instead.
 */
#include <pandagpt.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "demo_media.h"
#include "media/media.h"
#include "random_imagebind.h"
#include "random_llama.h"

static char tmpdir[] = "/tmp/pg_test_demo_media_XXXXXX";
static char png_path[256], wav_path[256], llm_path[256], enc_path[256];

static uint8_t *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return b;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Number of elements where two media tensors differ (exact comparison), or -1 on a shape
 * mismatch; the first difference is printed. */
static long media_diff(const char *what, const pg_media *a, const pg_media *b) {
    if (a->n != b->n || a->mod != b->mod || a->n_clips != b->n_clips) {
        fprintf(stderr, "%s: tensors of %zu and %zu floats\n", what, a->n, b->n);
        return -1;
    }
    long bad = 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->data[i] != b->data[i] && bad++ == 0)
            fprintf(stderr, "%s: element %zu: file %.9g, raw %.9g\n", what, i, a->data[i],
                    b->data[i]);
    return bad;
}

// ---------------------------------------------------------------------------------------------
// The picture

/* Writes demo.png and checks it; returns the image media to chat with. */
static pg_media *test_picture(void) {
    const size_t n = 3 * (size_t)DEMO_IMAGE_WIDTH * DEMO_IMAGE_HEIGHT;
    uint8_t *rgb = malloc(n), *again = malloc(n);
    demo_image_draw(rgb);
    demo_image_draw(again);
    CHECK_MSG(memcmp(rgb, again, n) == 0, "two drawings of the picture differ");
    /* sky at the top, sun, grass at the bottom left: the scene is there */
    CHECK_MSG(rgb[2] > rgb[0] && rgb[2] > 180, "top-left pixel (%d,%d,%d) is not sky", rgb[0],
              rgb[1], rgb[2]);
    const uint8_t *sun = rgb + 3 * (32 * DEMO_IMAGE_WIDTH + 118);
    CHECK_MSG(sun[0] == 255 && sun[1] > 200 && sun[2] < 128, "sun centre is (%d,%d,%d)", sun[0],
              sun[1], sun[2]);
    const uint8_t *grass = rgb + 3 * ((DEMO_IMAGE_HEIGHT - 1) * DEMO_IMAGE_WIDTH + 10);
    CHECK_MSG(grass[1] > grass[0] && grass[1] > grass[2], "bottom-left pixel (%d,%d,%d) is not "
              "green", grass[0], grass[1], grass[2]);

    /* the encoder: the same bytes twice, a PNG signature, an IHDR for 160×120 RGB8 */
    uint8_t *png1, *png2;
    size_t size1, size2;
    CHECK_OK(demo_png_encode(rgb, DEMO_IMAGE_WIDTH, DEMO_IMAGE_HEIGHT, &png1, &size1));
    CHECK_OK(demo_png_encode(rgb, DEMO_IMAGE_WIDTH, DEMO_IMAGE_HEIGHT, &png2, &size2));
    CHECK(size1 == size2 && memcmp(png1, png2, size1) == 0);
    CHECK(memcmp(png1, "\x89PNG\r\n\x1a\n", 8) == 0 && memcmp(png1 + 12, "IHDR", 4) == 0);
    CHECK_EQ_INT(be32(png1 + 16), DEMO_IMAGE_WIDTH);
    CHECK_EQ_INT(be32(png1 + 20), DEMO_IMAGE_HEIGHT);
    CHECK(png1[24] == 8 && png1[25] == 2);
    CHECK(memcmp(png1 + size1 - 12, "\0\0\0\0IEND\xae\x42\x60\x82", 12) == 0);
    free(png1);
    free(png2);
    CHECK_STATUS(demo_png_encode(rgb, 0, 1, &png1, &size1), PG_ERR_INVALID_ARGUMENT);

    CHECK_OK(demo_png_write(png_path, rgb, DEMO_IMAGE_WIDTH, DEMO_IMAGE_HEIGHT));
    size_t size;
    uint8_t *file = slurp(png_path, &size);
    CHECK(file != NULL);
    media_image8 img = {0};
    pg_status st = file ? media_image_decode(file, size, png_path, 0, &img) : PG_ERR_IO;
    if (st == PG_ERR_UNSUPPORTED) {
        printf("SKIP picture decode: %s\n", pg_last_error());
    } else {
        CHECK_OK(st);
        if (st == PG_OK) {
            CHECK(img.width == DEMO_IMAGE_WIDTH && img.height == DEMO_IMAGE_HEIGHT &&
                  img.channels == 3);
            long bad = 0;
            for (size_t i = 0; i < n && img.channels == 3; i++)
                if (img.pixels[i] != rgb[i] && bad++ == 0)
                    fprintf(stderr, "pixel %zu channel %zu: decoded %d, drawn %d\n",
                            i / 3, i % 3, img.pixels[i], rgb[i]);
            CHECK_MSG(bad == 0, "%ld bytes of the decoded picture differ from the drawing", bad);
            media_image8_free(&img);
        }
    }
    free(file);

    pg_media *raw = NULL, *loaded = NULL;
    CHECK_OK(pg_media_from_rgb8(PG_MODALITY_IMAGE, rgb, DEMO_IMAGE_WIDTH, DEMO_IMAGE_HEIGHT,
                                &raw));
    st = pg_media_load_file(PG_MODALITY_IMAGE, png_path, &loaded);
    if (st == PG_ERR_UNSUPPORTED) {
        printf("SKIP pg_media_load_file(IMAGE): %s; chatting with pg_media_from_rgb8\n",
               pg_last_error());
    } else {
        CHECK_OK(st);
        if (loaded && raw) CHECK_EQ_INT(media_diff("image", loaded, raw), 0);
    }
    free(rgb);
    free(again);
    if (loaded) {
        pg_media_free(raw);
        return loaded;
    }
    return raw;
}

// ---------------------------------------------------------------------------------------------
// The sound

/* Writes demo.wav and checks it; returns the audio media to chat with. */
static pg_media *test_sound(void) {
    int16_t *pcm = malloc(sizeof(int16_t) * DEMO_AUDIO_FRAMES);
    int16_t *again = malloc(sizeof(int16_t) * DEMO_AUDIO_FRAMES);
    demo_audio_synth(pcm);
    demo_audio_synth(again);
    CHECK_MSG(memcmp(pcm, again, sizeof(int16_t) * DEMO_AUDIO_FRAMES) == 0,
              "two syntheses of the sound differ");
    int peak = 0;
    for (int i = 0; i < DEMO_AUDIO_FRAMES; i++) peak = abs(pcm[i]) > peak ? abs(pcm[i]) : peak;
    CHECK_MSG(peak > 8000 && peak < 32767, "peak %d: silent or clipped", peak);
    CHECK_EQ_INT(pcm[0], 0); /* the hum fades in from silence */

    CHECK_OK(demo_wav_write(wav_path, pcm, DEMO_AUDIO_FRAMES, DEMO_AUDIO_RATE));
    size_t size;
    uint8_t *file = slurp(wav_path, &size);
    CHECK(file != NULL);
    if (file) {
        CHECK_EQ_INT(size, 44 + 2 * DEMO_AUDIO_FRAMES);
        CHECK(memcmp(file, "RIFF", 4) == 0 && memcmp(file + 8, "WAVEfmt ", 8) == 0 &&
              memcmp(file + 36, "data", 4) == 0);
        CHECK_EQ_INT(le32(file + 4), size - 8);
        CHECK_EQ_INT(le32(file + 24), DEMO_AUDIO_RATE);
        CHECK_EQ_INT(le32(file + 40), 2 * DEMO_AUDIO_FRAMES);
    }

    float *want = malloc(sizeof(float) * DEMO_AUDIO_FRAMES);
    for (int i = 0; i < DEMO_AUDIO_FRAMES; i++) want[i] = pcm[i] / 32768.0f;
    float *got = NULL;
    size_t n_frames = 0;
    int32_t channels = 0, rate = 0;
    pg_status st = file ? media_audio_decode(file, size, wav_path, &got, &n_frames, &channels,
                                             &rate)
                        : PG_ERR_IO;
    if (st == PG_ERR_UNSUPPORTED) {
        printf("SKIP sound decode: %s\n", pg_last_error());
    } else {
        CHECK_OK(st);
        if (st == PG_OK) {
            CHECK_EQ_INT(n_frames, DEMO_AUDIO_FRAMES);
            CHECK_EQ_INT(channels, 1);
            CHECK_EQ_INT(rate, DEMO_AUDIO_RATE);
            long bad = 0;
            for (size_t i = 0; i < n_frames && i < DEMO_AUDIO_FRAMES; i++)
                if (got[i] != want[i] && bad++ == 0)
                    fprintf(stderr, "sample %zu: decoded %.9g, want %d/32768 = %.9g\n", i,
                            got[i], pcm[i], want[i]);
            CHECK_MSG(bad == 0, "%ld decoded samples differ from the synthesis", bad);
            free(got);
        }
    }
    free(file);

    pg_media *raw = NULL, *loaded = NULL;
    CHECK_OK(pg_media_from_pcm(want, DEMO_AUDIO_FRAMES, 1, DEMO_AUDIO_RATE, &raw));
    st = pg_media_load_file(PG_MODALITY_AUDIO, wav_path, &loaded);
    if (st == PG_ERR_UNSUPPORTED) {
        printf("SKIP pg_media_load_file(AUDIO): %s; chatting with pg_media_from_pcm\n",
               pg_last_error());
    } else {
        CHECK_OK(st);
        if (loaded && raw) CHECK_EQ_INT(media_diff("audio", loaded, raw), 0);
    }
    free(pcm);
    free(again);
    free(want);
    if (loaded) {
        pg_media_free(raw);
        return loaded;
    }
    return raw;
}

// ---------------------------------------------------------------------------------------------
// Chat and embeddings

typedef struct collect {
    char text[4096];
    size_t len;
} collect;

static int on_piece(const char *piece, size_t len, int32_t token, void *user_data) {
    collect *c = user_data;
    (void)token;
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, piece, len);
        c->len += len;
    }
    return 0;
}

/* One turn: PG_OK, the streamed text equals the answer, timings filled. */
static pg_timings chat_turn(pg_session *s, const char *text, pg_media *const *media, size_t n,
                            collect *c, const char *what) {
    pg_generate_params g;
    pg_generate_params_init(&g);
    g.max_tokens = 8;
    memset(c, 0, sizeof *c);
    pg_timings t = {.struct_size = sizeof t};
    CHECK_OK(pg_session_chat(s, text, media, n, &g, on_piece, c));
    char answer[4096];
    size_t len = 0;
    CHECK_OK(pg_session_answer(s, answer, sizeof answer, &len));
    CHECK_MSG(len == c->len && memcmp(answer, c->text, len) == 0,
              "%s: streamed '%.*s', answer '%.*s'", what, (int)c->len, c->text, (int)len,
              answer);
    CHECK_OK(pg_session_timings(s, &t));
    CHECK_MSG(t.n_prompt > 0 && t.prompt_ms > 0.0 && t.n_generated > 0 && t.decode_ms > 0.0,
              "%s: timings n_prompt %d in %.3f ms, %d generated in %.3f ms", what, t.n_prompt,
              t.prompt_ms, t.n_generated, t.decode_ms);
    printf("%s: %d prompt (%d reused) in %.2f ms, %d generated in %.2f ms: '%.*s'\n", what,
           t.n_prompt, t.n_reused, t.prompt_ms, t.n_generated, t.decode_ms, (int)c->len,
           c->text);
    return t;
}

static double norm2(const float *v, int n) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)v[i] * v[i];
    return sqrt(ss);
}

static void test_chat_and_embed(pg_media *image, pg_media *audio) {
    random_llama_config lc;
    CHECK(random_llama_preset("tiny", &lc));
    CHECK_OK(random_llama_write(&lc, llm_path, NULL));
    random_imagebind_config ec;
    CHECK(random_imagebind_preset("tiny", &ec));
    ec.llama_proj_out = 256;
    CHECK_EQ_INT(lc.n_embd, ec.llama_proj_out);
    CHECK_OK(random_imagebind_write(&ec, enc_path, NULL));

    pg_model_params mp;
    pg_model_params_init(&mp);
    mp.device = PG_DEVICE_CPU; /* the CPU path is the oracle here; tests/gpu checks CUDA */
    mp.encoder_path = enc_path;
    pg_model *m = NULL;
    CHECK_OK(pg_model_load(llm_path, &mp, &m));
    if (!m) return;
    CHECK_EQ_INT(pg_model_n_embd(m), 256);
    CHECK_EQ_INT(pg_model_embed_dim(m), ec.dim);
    CHECK_EQ_INT(pg_model_proj_dim(m), 256); /* llama_proj feeds the LLM's 256 */

    pg_media *both[2] = {image, audio};
    const char *q1 = "What do you see and hear?", *q2 = "And what colour is it?";
    pg_session *s = NULL, *s2 = NULL;
    CHECK_OK(pg_session_new(m, NULL, &s));
    CHECK_OK(pg_session_new(m, NULL, &s2));
    collect c1, c2, c1b, c2b;
    pg_timings t1 = chat_turn(s, q1, both, 2, &c1, "turn 1 (image + audio)");
    pg_timings t2 = chat_turn(s, q2, NULL, 0, &c2, "turn 2 (no media)");
    /* the second prompt starts with the first one, modality row included: all of it reused */
    CHECK_MSG(t2.n_reused >= t1.n_prompt, "turn 2 reused %d positions, turn 1's prompt had %d",
              t2.n_reused, t1.n_prompt);
    /* media given again to a later turn are not encoded: the same answer as without them */
    chat_turn(s2, q1, both, 2, &c1b, "session 2, turn 1 (image + audio)");
    pg_timings t2b = chat_turn(s2, q2, both, 2, &c2b, "session 2, turn 2 (media again)");
    CHECK(c1.len == c1b.len && memcmp(c1.text, c1b.text, c1.len) == 0);
    CHECK_MSG(c2.len == c2b.len && memcmp(c2.text, c2b.text, c2.len) == 0,
              "turn 2 answered '%.*s' without media, '%.*s' with them", (int)c2.len, c2.text,
              (int)c2b.len, c2b.text);
    CHECK_EQ_INT(t2b.n_reused, t2.n_reused);
    pg_session_free(s);
    pg_session_free(s2);

    const int dim = pg_model_embed_dim(m);
    float *vi = calloc((size_t)dim, sizeof(float)), *va = calloc((size_t)dim, sizeof(float));
    float *wi = calloc((size_t)dim, sizeof(float)), *wa = calloc((size_t)dim, sizeof(float));
    CHECK_OK(pg_embed(m, image, vi, (size_t)dim));
    CHECK_OK(pg_embed(m, audio, va, (size_t)dim));
    double ni = norm2(vi, dim), na = norm2(va, dim);
    printf("embed: |image| %.7f, |audio| %.7f\n", ni, na);
    CHECK_MSG(fabs(ni - 1.0) < 1e-5, "image vector norm %.9g, want 1", ni);
    CHECK_MSG(na > 0.0 && na <= 1.0 + 1e-5, "audio vector norm %.9g, want (0, 1]", na);

    /* an embedding-only model (no LLM) gives the same vectors */
    pg_model *e = NULL;
    CHECK_OK(pg_model_load(NULL, &mp, &e));
    if (e) {
        CHECK_EQ_INT(pg_model_n_embd(e), 0);
        CHECK_OK(pg_embed(e, image, wi, (size_t)dim));
        CHECK_OK(pg_embed(e, audio, wa, (size_t)dim));
        double d = 0.0;
        for (int i = 0; i < dim; i++)
            d = fmax(d, fmax(fabs((double)wi[i] - vi[i]), fabs((double)wa[i] - va[i])));
        CHECK_MSG(d <= 1e-6, "embedding-only model differs by %.3g", d);
        pg_model_free(e);
    }
    free(vi);
    free(va);
    free(wi);
    free(wa);
    pg_model_free(m);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(png_path, sizeof png_path, "%s/demo.png", tmpdir);
    snprintf(wav_path, sizeof wav_path, "%s/demo.wav", tmpdir);
    snprintf(llm_path, sizeof llm_path, "%s/llm.gguf", tmpdir);
    snprintf(enc_path, sizeof enc_path, "%s/encoder.gguf", tmpdir);

    pg_media *image = test_picture();
    pg_media *audio = test_sound();
    if (image && audio)
        test_chat_and_embed(image, audio);
    else
        CHECK_MSG(0, "no media to chat with (image %p, audio %p)", (void *)image, (void *)audio);
    pg_media_free(image);
    pg_media_free(audio);

    unlink(png_path);
    unlink(wav_path);
    unlink(llm_path);
    unlink(enc_path);
    rmdir(tmpdir);
    return check_done("demo_media");
}
