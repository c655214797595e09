/*
 * test_media_video.c — the VIDEO input (lib/media/video.c, spec §5.2) against
 * ../shared/reference/imagebind-tiny (media/testsrc_128x96.mp4 and preproc/video.*).
 *
 * Without reference data (runs first):
 *   - clip windows: media_video_clip_bounds against exact rationals (Python fractions) for maxima
 *     where the naive (3·m)/4 + 2 rounds the wrong way;
 *   - frame selection: a table computed with upstream's own formulas in Python
 *     (pytorchvideo ConstantClipsPerVideoSampler + EncodedVideoDecord.get_clip);
 *   - empty, NULL and garbage inputs give an error with a message;
 *   - preprocessing geometry: portrait frames give the transposed landscape output (crops along
 *     y), a 224×224 frame passes unscaled (output = normalised input), bad sizes are refused.
 * Golden:
 *   1. the selection for 30 frames at 10 fps equals manifest.json["video"]["clips"][k]
 *      ["subsampled_frame_indices"];
 *   2. media_video_preprocess of preproc/video.used_frames_rgb.npy (the reference's 10 decoded
 *      frames) reproduces video.clip0_center.npy and video.stride8.npy within 1e-5 and
 *      video.clip_sums.npy within a relative 1e-6 (in fact bit for bit, see video.c);
 *   3. the whole media_video_load of testsrc_128x96.mp4: n_frames, fps and indices as the
 *      manifest; decoded frames vs video.used_frames_rgb.npy (reference: PyAV/swscale) and the
 *      output vs the reference, with the bound that frame difference implies;
 *   4. robustness: ~100 truncations and ~100 seeded byte-flip sets of the mp4 (read here, never
 *      copied into the repository) return PG_OK or an error with a message, never crash (the
 *      test also runs under ASan+UBSan).
 * Without the reference the first part still runs; the test then exits 77 (skip).
 */
#include <pandagpt.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "media/media.h"
#include "media/video_internal.h"
#include "npy.h"

#define S MEDIA_IMAGE_SIZE
#define ENTRY_FLOATS ((size_t)3 * 2 * S * S)
#define OUT_FLOATS ((size_t)MEDIA_VIDEO_CLIPS * MEDIA_VIDEO_CROPS * ENTRY_FLOATS)

static int have_ffmpeg = 1; /* cleared when the build lacks FFmpeg */

// ---- helpers

static uint8_t *read_whole(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return p;
}

static uint64_t rng_state = 0x5EED0F5EED0F5EEDull;
static uint32_t rng_next(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A failure must come with a message. */
static void check_error_has_message(pg_status s, const char *where) {
    if (s != PG_OK) {
        const char *msg = pg_last_error();
        CHECK_MSG(msg && *msg, "%s: status %d without a message", where, (int)s);
    }
}

// ---- clip windows and frame selection (no reference needed)

static void test_clip_bounds(void) {
    /* k = 3 for maxima m where (3·m)/4 + 2 in doubles is one ulp off float(Fraction(m)·3/4 + 2);
     * expected start and end from Python's fractions. */
    static const struct { double m, start3, end3; } cases[] = {
        {0x1.89a48ba11a1a9p+1, 0x1.273b68b8d393fp+1, 0x1.139db45c69c9fp+2},
        {0x1.6d68133d242b6p-3, 0x1.120e0e6ddb208p-3, 0x1.1120e0e6ddb21p+1},
        {0x1.fbb65e48d782ep-1, 0x1.7cc8c6b6a1a22p-1, 0x1.5f3231ada8689p+1},
        {0x1.55807ca6647a9p+0, 0x1.00205d7ccb5bfp+0, 0x1.80102ebe65adfp+1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double st, en;
        media_video_clip_bounds(cases[i].m, 3, &st, &en);
        CHECK_MSG(st == cases[i].start3 && en == cases[i].end3,
                  "m=%a: expected [%a, %a], got [%a, %a]", cases[i].m, cases[i].start3,
                  cases[i].end3, st, en);
    }
    /* The reference video: m = 1, starts 0, 1/4, 1/2, 3/4, 1 (manifest clips[k].start). */
    for (int k = 0; k < 5; k++) {
        double st, en;
        media_video_clip_bounds(1.0, k, &st, &en);
        CHECK_MSG(st == k / 4.0 && en == k / 4.0 + 2.0, "k=%d: got [%g, %g]", k, st, en);
    }
}

static void test_select_table(void) {
    /* Expected values: upstream's formulas run in Python (fps·Fraction -> float product, ceil,
     * range, first and last). Windows upstream leaves empty (fps < 0.5) use the nearest frame. */
    static const struct { int64_t n; double fps; int64_t idx[10]; } cases[] = {
        {30, 10.0, {0, 19, 3, 22, 5, 24, 8, 27, 10, 29}}, /* the manifest's */
        {1, 10.0, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
        {15, 10.0, {0, 14, 0, 14, 0, 14, 0, 14, 0, 14}},
        {20, 10.0, {0, 19, 0, 19, 0, 19, 0, 19, 0, 19}},
        {21, 10.0, {0, 19, 1, 20, 1, 20, 1, 20, 2, 20}},
        {299, 30000.0 / 1001.0, {0, 59, 60, 119, 120, 179, 180, 239, 240, 298}},
        {100, 0.4, {0, 0, 25, 25, 50, 50, 75, 75, 99, 99}}, /* clip 4 empty upstream */
        {7, 0.25, {0, 0, 2, 2, 4, 4, 5, 5, 6, 6}},          /* clips 2, 4 empty upstream */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t got[10];
        CHECK_OK(media_video_select_frames(cases[i].n, cases[i].fps, got));
        CHECK_MSG(memcmp(got, cases[i].idx, sizeof got) == 0,
                  "n=%lld fps=%g: expected %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld, got "
                  "%lld %lld %lld %lld %lld %lld %lld %lld %lld %lld",
                  (long long)cases[i].n, cases[i].fps, (long long)cases[i].idx[0],
                  (long long)cases[i].idx[1], (long long)cases[i].idx[2],
                  (long long)cases[i].idx[3], (long long)cases[i].idx[4],
                  (long long)cases[i].idx[5], (long long)cases[i].idx[6],
                  (long long)cases[i].idx[7], (long long)cases[i].idx[8],
                  (long long)cases[i].idx[9], (long long)got[0], (long long)got[1],
                  (long long)got[2], (long long)got[3], (long long)got[4], (long long)got[5],
                  (long long)got[6], (long long)got[7], (long long)got[8], (long long)got[9]);
    }
    int64_t idx[10];
    CHECK_STATUS(media_video_select_frames(0, 10.0, idx), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(media_video_select_frames(10, 0.0, idx), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(media_video_select_frames(10, NAN, idx), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(media_video_select_frames(10, INFINITY, idx), PG_ERR_INVALID_ARGUMENT);
    /* Long videos at high frame rates stay within [0, n). */
    CHECK_OK(media_video_select_frames(36000LL * 240, 240.0, idx));
    for (int j = 0; j < 10; j++) CHECK(idx[j] >= 0 && idx[j] < 36000LL * 240);
}

static void test_bad_inputs(float *out) {
    static const uint8_t zeros[64];
    pg_status s = media_video_load(zeros, 0, "empty", out);
    CHECK(s != PG_OK);
    check_error_has_message(s, "empty");
    CHECK_STATUS(media_video_load(NULL, 10, "null", out), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(media_video_load(zeros, sizeof zeros, "null out", NULL), PG_ERR_INVALID_ARGUMENT);
    s = media_video_load(zeros, sizeof zeros, "zeros", out);
    if (s == PG_ERR_UNSUPPORTED) {
        have_ffmpeg = 0;
        printf("FFmpeg absent from this build: %s\n", pg_last_error());
        return;
    }
    CHECK_STATUS(s, PG_ERR_FORMAT);
    check_error_has_message(s, "zeros");
    uint8_t *garbage = malloc(1 << 16);
    for (int trial = 0; trial < 8; trial++) {
        for (size_t i = 0; i < 1 << 16; i++) garbage[i] = (uint8_t)rng_next();
        s = media_video_load(garbage, (size_t)1 << (9 + trial % 8), "garbage", out);
        CHECK(s != PG_OK);
        check_error_has_message(s, "garbage");
    }
    free(garbage);
    /* The error names the input. */
    s = media_video_load(zeros, sizeof zeros, "clip-name.mp4", out);
    CHECK_MSG(strstr(pg_last_error(), "clip-name.mp4") != NULL, "message: %s", pg_last_error());
}

// ---- preprocessing geometry (no reference needed)

/* Portrait frames are the transposed landscape ones: the scale and the crops (along y instead of
 * x) must give the transposed entries, up to the order of the fma's (rows vs columns first).
 * A 224×224 frame passes unscaled (torch copies), so the output is the normalised input, and a
 * square frame gives three identical crops. */
static void test_preprocess_geometry(float *out) {
    const int32_t w = 40, h = 30;
    uint8_t *land = malloc((size_t)w * h * 3), *port = malloc((size_t)w * h * 3);
    float *out2 = malloc(OUT_FLOATS * sizeof(float));
    for (size_t i = 0; i < (size_t)w * h * 3; i++) land[i] = (uint8_t)rng_next();
    for (int32_t y = 0; y < h; y++)
        for (int32_t x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                port[((size_t)x * h + (size_t)y) * 3 + (size_t)c] =
                    land[((size_t)y * w + (size_t)x) * 3 + (size_t)c];
    const uint8_t *sl[10], *sp[10];
    for (int j = 0; j < 10; j++) sl[j] = land, sp[j] = port;
    CHECK_OK(media_video_preprocess(sl, w, h, (size_t)w * 3, out));
    CHECK_OK(media_video_preprocess(sp, h, w, (size_t)h * 3, out2));
    double max_t = 0;
    for (size_t e = 0; e < 15 * 6; e++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                double d = fabs((double)out[e * S * S + (size_t)y * S + (size_t)x] -
                                (double)out2[e * S * S + (size_t)x * S + (size_t)y]);
                if (d > max_t) max_t = d;
            }
    printf("portrait = transposed landscape: max|d| %.3g\n", max_t);
    CHECK_MSG(max_t <= 2e-6, "portrait vs landscape transposed: %g", max_t);

    uint8_t *sq = malloc((size_t)S * S * 3);
    for (size_t i = 0; i < (size_t)S * S * 3; i++) sq[i] = (uint8_t)rng_next();
    const uint8_t *ss[10];
    for (int j = 0; j < 10; j++) ss[j] = sq;
    CHECK_OK(media_video_preprocess(ss, S, S, (size_t)S * 3, out));
    const float mean[3] = {(float)0.48145466, (float)0.4578275, (float)0.40821073};
    const float std[3] = {(float)0.26862954, (float)0.26130258, (float)0.27577711};
    int mismatch = 0;
    for (size_t e = 0; e < 15; e++)
        for (int c = 0; c < 3; c++)
            for (int t = 0; t < 2; t++)
                for (size_t p = 0; p < (size_t)S * S; p++) {
                    float want = ((float)sq[p * 3 + (size_t)c] / 255.0f - mean[c]) / std[c];
                    mismatch += out[((e * 3 + (size_t)c) * 2 + (size_t)t) * S * S + p] != want;
                }
    CHECK_EQ_INT(mismatch, 0);

    CHECK_STATUS(media_video_preprocess(sl, 0, h, 0, out), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(media_video_preprocess(sl, w, h, (size_t)w * 3 - 1, out), PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(media_video_preprocess(sl, MEDIA_MAX_IMAGE_SIDE + 1, 1, 1 << 20, out),
                 PG_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(media_video_preprocess(NULL, w, h, (size_t)w * 3, out), PG_ERR_INVALID_ARGUMENT);
    free(land);
    free(port);
    free(sq);
    free(out2);
}

// ---- golden

/* out (our [15,3,2,224,224]) against the three reference files; returns max |Δ|. */
static double compare_output(const float *out, const npy_array *center, const npy_array *stride8,
                             const npy_array *sums, double tol_abs, double tol_rel_sum,
                             const char *label) {
    const float *c0 = center->data, *s8 = stride8->data;
    const double *cs = sums->data;
    double max_center = 0, max_s8 = 0, max_rel_sum = 0;
    size_t worst = 0;
    for (size_t i = 0; i < ENTRY_FLOATS; i++) { /* entry 1 = clip 0, centre crop */
        double d = fabs((double)out[ENTRY_FLOATS + i] - (double)c0[i]);
        if (d > max_center) max_center = d, worst = i;
    }
    for (int e = 0; e < 15; e++)
        for (int ct = 0; ct < 6; ct++)
            for (int y = 0; y < 28; y++)
                for (int x = 0; x < 28; x++) {
                    double g = out[(size_t)e * ENTRY_FLOATS + (size_t)ct * S * S +
                                   (size_t)(8 * y) * S + (size_t)(8 * x)];
                    double w = s8[(((size_t)e * 6 + (size_t)ct) * 28 + (size_t)y) * 28 + (size_t)x];
                    if (fabs(g - w) > max_s8) max_s8 = fabs(g - w);
                }
    for (int e = 0; e < 15; e++) {
        double sum = 0;
        for (size_t i = 0; i < ENTRY_FLOATS; i++) sum += out[(size_t)e * ENTRY_FLOATS + i];
        double rel = fabs(sum - cs[e]) / fabs(cs[e]);
        if (rel > max_rel_sum) max_rel_sum = rel;
    }
    printf("%s: clip0_center max|d| %.3g (at %zu), stride8 max|d| %.3g, clip_sums max rel %.3g\n",
           label, max_center, worst, max_s8, max_rel_sum);
    CHECK_MSG(max_center <= tol_abs, "%s: clip0_center max|d| %g > %g", label, max_center, tol_abs);
    CHECK_MSG(max_s8 <= tol_abs, "%s: stride8 max|d| %g > %g", label, max_s8, tol_abs);
    CHECK_MSG(max_rel_sum <= tol_rel_sum, "%s: clip_sums rel %g > %g", label, max_rel_sum,
              tol_rel_sum);
    return max_center > max_s8 ? max_center : max_s8;
}

static void test_robustness(const uint8_t *mp4, size_t size, float *out) {
    uint8_t *copy = malloc(size);
    int ok = 0, failed = 0;
    double t0 = now_s();
    /* Truncations: every length size·i/100, plus the first bytes one by one. */
    for (int i = 0; i < 100; i++) {
        size_t n = i < 16 ? (size_t)i : size * (size_t)i / 100;
        memcpy(copy, mp4, n);
        pg_status s = media_video_load(copy, n, "truncated", out);
        check_error_has_message(s, "truncated");
        if (s == PG_OK) ok++; else failed++;
    }
    /* Byte flips: 100 seeded sets of 1..16 random bytes xor'ed with nonzero values. */
    for (int i = 0; i < 100; i++) {
        memcpy(copy, mp4, size);
        int flips = 1 + (int)(rng_next() % 16);
        for (int f = 0; f < flips; f++)
            copy[rng_next() % size] ^= (uint8_t)(1 + rng_next() % 255);
        pg_status s = media_video_load(copy, size, "flipped", out);
        check_error_has_message(s, "flipped");
        if (s == PG_OK) ok++; else failed++;
    }
    printf("robustness: 200 damaged inputs, %d decoded, %d refused with a message, %.2f s\n", ok,
           failed, now_s() - t0);
    free(copy);
}

int main(void) {
    double t_start = now_s();
    float *out = malloc(OUT_FLOATS * sizeof(float));
    if (!out) return 1;

    test_clip_bounds();
    test_select_table();
    test_bad_inputs(out);
    test_preprocess_geometry(out);

    const char *ref = check_reference_dir();
    if (!ref) {
        free(out);
        int rc = check_done("test_media_video (synthetic part)");
        return rc ? rc : CHECK_SKIP;
    }
    char path[4096 + 128]; /* the reference dir is at most 4095 chars */
    npy_array frames = {0}, center = {0}, stride8 = {0}, sums = {0};
    const char *names[4] = {"video.used_frames_rgb.npy", "video.clip0_center.npy",
                            "video.stride8.npy", "video.clip_sums.npy"};
    npy_array *arrays[4] = {&frames, &center, &stride8, &sums};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/imagebind-tiny/preproc/%s", ref, names[i]);
        if (npy_load(path, arrays[i]) != 0) {
            fprintf(stderr, "cannot load %s\n", path);
            return 1;
        }
    }
    CHECK(frames.n_dims == 4 && frames.shape[0] == 10 && frames.shape[1] == 96 &&
          frames.shape[2] == 128 && frames.shape[3] == 3 && strcmp(frames.dtype, "|u1") == 0);
    CHECK(center.n == ENTRY_FLOATS && strcmp(center.dtype, "<f4") == 0);
    CHECK(stride8.n == (size_t)15 * 6 * 28 * 28 && strcmp(stride8.dtype, "<f4") == 0);
    CHECK(sums.n == 15 && strcmp(sums.dtype, "<f8") == 0);
    if (check_failures) return check_done("test_media_video");
    const int32_t W = 128, H = 96;
    const size_t frame_bytes = (size_t)W * H * 3;

    /* 2. Preprocessing from the reference's decoded frames. They are stored by frame index
     * (0 3 5 8 10 19 22 24 27 29); slot 2k+t (clip k, frame t) uses manifest_idx[2k+t]. */
    static const int64_t manifest_idx[10] = {0, 19, 3, 22, 5, 24, 8, 27, 10, 29};
    const uint8_t *slots[10];
    for (int j = 0; j < 10; j++) {
        int rank = 0; /* position of manifest_idx[j] among the sorted distinct indices */
        for (int i = 0; i < 10; i++) rank += manifest_idx[i] < manifest_idx[j];
        slots[j] = (const uint8_t *)frames.data + (size_t)rank * frame_bytes;
    }
    CHECK_OK(media_video_preprocess(slots, W, H, (size_t)W * 3, out));
    compare_output(out, &center, &stride8, &sums, 1e-5, 1e-6, "preprocess(used_frames)");

    /* 3. The whole path from the mp4. */
    snprintf(path, sizeof path, "%s/imagebind-tiny/media/testsrc_128x96.mp4", ref);
    size_t mp4_size = 0;
    uint8_t *mp4 = read_whole(path, &mp4_size);
    CHECK_MSG(mp4 != NULL, "cannot read %s", path);
    if (mp4 && have_ffmpeg) {
        media_video_frames vf;
        double t0 = now_s();
        CHECK_OK(media_video_decode(mp4, mp4_size, "testsrc_128x96.mp4", &vf));
        printf("decode: %lld frames at %g fps, %dx%d, %.3f s\n", (long long)vf.n_frames, vf.fps,
               vf.width, vf.height, now_s() - t0);
        CHECK_EQ_INT(vf.n_frames, 30); /* manifest video.num_frames */
        CHECK(vf.fps == 10.0);         /* manifest video.avg_fps */
        for (int j = 0; j < 10; j++) CHECK_EQ_INT(vf.index[j], manifest_idx[j]);
        int max_frame_diff = 0;
        double mean_frame_diff = 0;
        if (vf.buf && vf.width == W && vf.height == H) {
            for (int j = 0; j < 10; j++)
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W * 3; x++) {
                        int d = abs((int)vf.slot[j][(size_t)y * vf.stride + (size_t)x] -
                                    (int)slots[j][(size_t)y * W * 3 + (size_t)x]);
                        if (d > max_frame_diff) max_frame_diff = d;
                        mean_frame_diff += d;
                    }
            mean_frame_diff /= (double)(10 * frame_bytes);
        }
        printf("decoded frames vs used_frames_rgb (PyAV/swscale): max |d| %d levels, mean %.4f\n",
               max_frame_diff, mean_frame_diff);
        /* The README: decord's YUV->RGB may differ by a few levels near chroma edges. A wrong
         * matrix or range, or a wrong frame, moves many pixels by tens of levels. */
        CHECK_MSG(max_frame_diff <= 16 && mean_frame_diff <= 1.0, "frames max %d mean %g",
                  max_frame_diff, mean_frame_diff);
        media_video_frames_free(&vf);

        t0 = now_s();
        CHECK_OK(media_video_load(mp4, mp4_size, "testsrc_128x96.mp4", out));
        printf("media_video_load: %.3f s\n", now_s() - t0);
        /* Bilinear weights are convex, so a frame difference of L levels moves an output by at
         * most L/255/min(std); the sums get the mean difference the same way. */
        double bound = max_frame_diff / 255.0 / 0.26130258 + 1e-5;
        double min_sum = INFINITY;
        for (int e = 0; e < 15; e++)
            if (fabs(((const double *)sums.data)[e]) < min_sum)
                min_sum = fabs(((const double *)sums.data)[e]);
        double rel_sum_bound =
            1e-6 + mean_frame_diff / 255.0 / 0.26130258 * (double)ENTRY_FLOATS / min_sum;
        double d = compare_output(out, &center, &stride8, &sums, bound, rel_sum_bound,
                                  "media_video_load(mp4)");
        printf("media_video_load vs reference: max |d| %.3g (bound from the frames %.3g)\n", d,
               bound);

        /* 4. Robustness. */
        test_robustness(mp4, mp4_size, out);
    }
    free(mp4);
    for (int i = 0; i < 4; i++) npy_free(arrays[i]);
    free(out);
    printf("test_media_video: %.2f s\n", now_s() - t_start);
    return check_done("test_media_video");
}
