/*
 * media.c — the pg_media object: allocation, the accepted tensor shapes per modality, and the
 * dispatch from encoded bytes / raw pixels / PCM to the decoders and preprocessors.
 *
 * The public entry points (lib/api/media_api.c) check their arguments and call these.
 */
#include "media/media.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"

#define MEDIA_MAX_CLIPS 64       /* clips of an AUDIO / VIDEO tensor */
#define MEDIA_MAX_IMU_SAMPLES (1 << 24)

static const char *const MODALITY_NAMES[] = {"image", "video", "audio", "depth", "thermal",
                                             "imu"};

const char *media_modality_name(pg_modality mod) {
    return (unsigned)mod < 6 ? MODALITY_NAMES[mod] : "unknown";
}

/* A media with the given per-modality shape (clips first when n_clips > 0), data zeroed. */
static pg_status media_new(pg_modality mod, int32_t n_clips, int n_dims, const int64_t *shape,
                           pg_media **out) {
    pg_media *m = calloc(1, sizeof *m);
    if (!m) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "cannot allocate a media");
    m->mod = mod;
    m->n_clips = n_clips > 0 ? n_clips : 1;
    m->n_dims = n_dims;
    m->n = 1;
    for (int i = 0; i < n_dims; i++) {
        m->shape[i] = shape[i];
        m->n *= (size_t)shape[i];
    }
    m->data = calloc(m->n, sizeof(float));
    if (!m->data) {
        size_t n = m->n;
        free(m);
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "cannot allocate a %s tensor of %zu floats",
                            media_modality_name(mod), n);
    }
    *out = m;
    return PG_OK;
}

void media_free(pg_media *m) {
    if (!m) return;
    free(m->data);
    free(m);
}

// ---------------------------------------------------------------------------------------------
// Tensors given by the caller

/* The fixed per-clip shape of each modality (IMU's sample count is resampled, see below). */
static int clip_shape(pg_modality mod, int64_t *shape) {
    const int64_t S = MEDIA_IMAGE_SIZE;
    switch (mod) {
    case PG_MODALITY_IMAGE: shape[0] = 3; shape[1] = S; shape[2] = S; return 3;
    case PG_MODALITY_VIDEO: shape[0] = 3; shape[1] = 2; shape[2] = S; shape[3] = S; return 4;
    case PG_MODALITY_AUDIO:
        shape[0] = 1; shape[1] = MEDIA_AUDIO_MELS; shape[2] = MEDIA_AUDIO_FRAMES; return 3;
    case PG_MODALITY_DEPTH:
    case PG_MODALITY_THERMAL: shape[0] = 1; shape[1] = S; shape[2] = S; return 3;
    case PG_MODALITY_IMU: shape[0] = MEDIA_IMU_CHANNELS; shape[1] = MEDIA_IMU_SAMPLES; return 2;
    }
    return 0;
}

static void shape_str(const int64_t *shape, int n, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < n && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* IMU traces of another length are linearly resampled to 2000 samples over the same span
 * (align-corners: the first and last samples are kept), per channel. */
static void imu_resample(const float *in, int64_t n, float *out) {
    for (int c = 0; c < MEDIA_IMU_CHANNELS; c++) {
        const float *x = in + (size_t)c * (size_t)n;
        float *y = out + (size_t)c * MEDIA_IMU_SAMPLES;
        for (int t = 0; t < MEDIA_IMU_SAMPLES; t++) {
            double s = (double)t * (double)(n - 1) / (MEDIA_IMU_SAMPLES - 1);
            int64_t i0 = (int64_t)s;
            if (i0 >= n - 1) i0 = n - 2;
            double f = s - (double)i0;
            y[t] = (float)((1.0 - f) * x[i0] + f * x[i0 + 1]);
        }
    }
}

pg_status media_from_tensor(pg_modality mod, const float *data, const int64_t *shape,
                            int32_t n_dims, pg_media **out) {
    int64_t want[6];
    int nw = clip_shape(mod, want);
    int has_clips = mod == PG_MODALITY_VIDEO || mod == PG_MODALITY_AUDIO;
    char got[128];
    shape_str(shape, n_dims, got, sizeof got);

    /* drop a leading batch dimension of 1 */
    int extra = n_dims - nw - has_clips;
    if (extra == 1 && shape[0] == 1) {
        shape++;
        n_dims--;
    }
    int64_t clips = 1;
    if (has_clips) {
        if (n_dims != nw + 1 || shape[0] < 1 || shape[0] > MEDIA_MAX_CLIPS)
            goto bad;
        clips = shape[0];
        shape++;
        n_dims--;
    } else if (mod == PG_MODALITY_IMU) {
        if (n_dims != 2 || shape[0] != MEDIA_IMU_CHANNELS || shape[1] < 2 ||
            shape[1] > MEDIA_MAX_IMU_SAMPLES)
            goto bad;
        pg_status s = media_new(mod, 1, nw, want, out);
        if (s != PG_OK) return s;
        for (size_t i = 0; i < (size_t)shape[0] * (size_t)shape[1]; i++)
            if (!isfinite(data[i])) {
                media_free(*out);
                *out = NULL;
                return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_media_from_tensor: imu element "
                                    "%zu is not finite", i);
            }
        if (shape[1] == MEDIA_IMU_SAMPLES)
            memcpy((*out)->data, data, (*out)->n * sizeof(float));
        else
            imu_resample(data, shape[1], (*out)->data);
        return PG_OK;
    }
    if (n_dims != nw) goto bad;
    for (int i = 0; i < nw; i++)
        if (shape[i] != want[i]) goto bad;

    int64_t full[6];
    int nf = 0;
    if (has_clips) full[nf++] = clips;
    for (int i = 0; i < nw; i++) full[nf++] = want[i];
    pg_status s = media_new(mod, (int32_t)clips, nf, full, out);
    if (s != PG_OK) return s;
    for (size_t i = 0; i < (*out)->n; i++)
        if (!isfinite(data[i])) {
            media_free(*out);
            *out = NULL;
            return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_media_from_tensor: %s element %zu "
                                "is not finite", media_modality_name(mod), i);
        }
    memcpy((*out)->data, data, (*out)->n * sizeof(float));
    return PG_OK;

bad:;
    char exp[128];
    shape_str(want, nw, exp, sizeof exp);
    return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_media_from_tensor: a %s tensor has shape "
                        "%s%s (a leading batch dimension of 1 is accepted%s), got %s",
                        media_modality_name(mod), has_clips ? "[clips]+" : "", exp,
                        mod == PG_MODALITY_IMU ? "; any sample count >= 2 is resampled to 2000"
                                               : "", got);
}

// ---------------------------------------------------------------------------------------------
// Pixels, PCM and encoded bytes

static pg_status image_media(pg_modality mod, const media_image8 *img, pg_media **out) {
    int64_t shape[6];
    int n = clip_shape(mod, shape);
    pg_status s = media_new(mod, 1, n, shape, out);
    if (s != PG_OK) return s;
    if ((s = media_image_preprocess(mod, img, (*out)->data)) != PG_OK) {
        media_free(*out);
        *out = NULL;
    }
    return s;
}

pg_status media_from_rgb8(pg_modality mod, const uint8_t *rgb, int32_t w, int32_t h,
                          pg_media **out) {
    if (mod != PG_MODALITY_IMAGE && mod != PG_MODALITY_THERMAL)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_media_from_rgb8: RGB pixels make an "
                            "image or a thermal input, not %s", media_modality_name(mod));
    if (w <= 0 || h <= 0 || w > MEDIA_MAX_IMAGE_SIDE || h > MEDIA_MAX_IMAGE_SIDE ||
        (int64_t)w * h > MEDIA_MAX_IMAGE_PIXELS)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_media_from_rgb8: %dx%d pixels is "
                            "outside 1..%d per side and %lld in all", w, h,
                            MEDIA_MAX_IMAGE_SIDE, (long long)MEDIA_MAX_IMAGE_PIXELS);
    media_image8 img = {w, h, 3, (uint8_t *)rgb};
    if (mod == PG_MODALITY_IMAGE) return image_media(mod, &img, out);

    /* thermal: Pillow's convert("L") of the RGB pixels */
    media_image8 gray = {w, h, 1, malloc((size_t)w * (size_t)h)};
    if (!gray.pixels)
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "pg_media_from_rgb8: %dx%d pixels", w, h);
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++) {
        const uint8_t *p = rgb + 3 * i;
        gray.pixels[i] = (uint8_t)((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 0x8000u) >> 16);
    }
    pg_status s = image_media(mod, &gray, out);
    free(gray.pixels);
    return s;
}

pg_status media_from_pcm(const float *pcm, size_t n_frames, int32_t n_channels,
                         int32_t sample_rate, pg_media **out) {
    if (n_channels <= 0 || n_channels > MEDIA_MAX_CHANNELS || sample_rate <= 0 ||
        sample_rate > MEDIA_MAX_AUDIO_RATE)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_media_from_pcm: %d channels at %d Hz "
                            "(limits: 1..%d channels, 1..%d Hz)", n_channels, sample_rate,
                            MEDIA_MAX_CHANNELS, MEDIA_MAX_AUDIO_RATE);
    if (n_frames == 0 || n_frames / (size_t)sample_rate > MEDIA_MAX_AUDIO_SECONDS ||
        n_frames > MEDIA_MAX_AUDIO_SAMPLES / (size_t)n_channels)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_media_from_pcm: %zu frames at %d Hz "
                            "(1 frame .. %d s, %zu samples in all)", n_frames, sample_rate,
                            MEDIA_MAX_AUDIO_SECONDS, MEDIA_MAX_AUDIO_SAMPLES);
    for (size_t i = 0; i < n_frames * (size_t)n_channels; i++)
        if (!isfinite(pcm[i]))
            return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_media_from_pcm: sample %zu is not "
                                "finite", i);
    int64_t shape[4] = {MEDIA_AUDIO_CLIPS, 1, MEDIA_AUDIO_MELS, MEDIA_AUDIO_FRAMES};
    pg_status s = media_new(PG_MODALITY_AUDIO, MEDIA_AUDIO_CLIPS, 4, shape, out);
    if (s != PG_OK) return s;
    if ((s = media_audio_preprocess(pcm, n_frames, n_channels, sample_rate, (*out)->data))) {
        media_free(*out);
        *out = NULL;
    }
    return s;
}

pg_status media_load(pg_modality mod, const void *data, size_t size, const char *what,
                     pg_media **out) {
    if (size == 0) return pg_set_error(PG_ERR_FORMAT, "%s: empty input", what);
    if (size > MEDIA_MAX_FILE_BYTES)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: %zu bytes is over the %zu-byte limit",
                            what, size, MEDIA_MAX_FILE_BYTES);
    pg_status s;
    switch (mod) {
    case PG_MODALITY_IMAGE:
    case PG_MODALITY_THERMAL: {
        media_image8 img;
        if ((s = media_image_decode(data, size, what, mod == PG_MODALITY_THERMAL, &img)))
            return s;
        s = image_media(mod, &img, out);
        media_image8_free(&img);
        if (s != PG_OK) pg_error_prefix(s, "%s", what);
        return s;
    }
    case PG_MODALITY_AUDIO: {
        float *pcm;
        size_t n;
        int32_t ch, sr;
        if ((s = media_audio_decode(data, size, what, &pcm, &n, &ch, &sr))) return s;
        s = media_from_pcm(pcm, n, ch, sr, out);
        free(pcm);
        if (s != PG_OK) pg_error_prefix(s, "%s", what);
        return s;
    }
    case PG_MODALITY_VIDEO: {
        int64_t shape[5] = {MEDIA_VIDEO_CLIPS * MEDIA_VIDEO_CROPS, 3, 2, MEDIA_IMAGE_SIZE,
                            MEDIA_IMAGE_SIZE};
        if ((s = media_new(mod, MEDIA_VIDEO_CLIPS * MEDIA_VIDEO_CROPS, 5, shape, out)))
            return s;
        if ((s = media_video_load(data, size, what, (*out)->data))) {
            media_free(*out);
            *out = NULL;
        }
        return s;
    }
    case PG_MODALITY_DEPTH: {
        int64_t shape[3] = {1, MEDIA_IMAGE_SIZE, MEDIA_IMAGE_SIZE};
        if ((s = media_new(mod, 1, 3, shape, out))) return s;
        if ((s = media_depth_load(data, size, what, (*out)->data))) {
            media_free(*out);
            *out = NULL;
        }
        return s;
    }
    case PG_MODALITY_IMU:
        return pg_set_error(PG_ERR_UNSUPPORTED, "%s: IMU traces have no file format upstream; "
                            "pass the [6, N] array with pg_media_from_tensor (docs/media.md)",
                            what);
    }
    return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: modality %d is not a pg_modality", what,
                        (int)mod);
}
