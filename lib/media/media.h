/*
 * media.h — a preprocessed ImageBind input (struct pg_media) and the decoders and preprocessors
 * that make one (spec §5.1–§5.6).
 *
 * A pg_media holds exactly the tensor PandaGPT hands to the encoder, float32, C order, per
 * modality (clips first where there are clips):
 *   IMAGE   [3, 224, 224]             CLIP-normalised RGB               (image.c)
 *   THERMAL [1, 224, 224]             Pillow "L" luma / 255             (image.c)
 *   AUDIO   [3, 1, 128, 204]          normalised Kaldi fbank, 3 clips   (audio.c, resample.c, fbank.c)
 *   VIDEO   [15, 3, 2, 224, 224]      5 clips × 3 crops, 2 frames each  (video.c)
 *   DEPTH   [1, 224, 224]             disparity, as the encoder takes it
 *   IMU     [6, 2000]                 6 channels × 2000 samples
 * Decoding uses the kept libraries when the build found them (PG_HAVE_JPEG, PG_HAVE_PNG,
 * PG_HAVE_SNDFILE, PG_HAVE_FFMPEG); without one the matching format is PG_ERR_UNSUPPORTED.
 * Every function here checks sizes against the limits below before allocating for them.
 */
#ifndef PG_MEDIA_H
#define PG_MEDIA_H

#include <stddef.h>
#include <stdint.h>

#include "pandagpt.h"

/* Limits: inputs beyond them are refused (PG_ERR_INVALID_ARGUMENT) before anything is
 * allocated for them. */
#define MEDIA_MAX_FILE_BYTES   ((size_t)2 << 30)  /* 2 GiB of encoded bytes */
#define MEDIA_MAX_IMAGE_SIDE   16384              /* pixels per side */
#define MEDIA_MAX_IMAGE_PIXELS ((int64_t)1 << 28) /* 268M pixels */
#define MEDIA_MAX_AUDIO_SECONDS 3600              /* one hour */
#define MEDIA_MAX_AUDIO_RATE   768000             /* Hz */
#define MEDIA_MAX_CHANNELS     64
#define MEDIA_MAX_AUDIO_SAMPLES ((size_t)1 << 28) /* frames × channels decoded: 1 GiB of floats */
#define MEDIA_MAX_VIDEO_SECONDS 36000             /* ten hours */

#define MEDIA_IMAGE_SIZE 224
#define MEDIA_AUDIO_CLIPS 3
#define MEDIA_AUDIO_MELS 128
#define MEDIA_AUDIO_FRAMES 204
#define MEDIA_AUDIO_RATE 16000
#define MEDIA_VIDEO_CLIPS 5
#define MEDIA_VIDEO_CROPS 3
#define MEDIA_IMU_CHANNELS 6
#define MEDIA_IMU_SAMPLES 2000

struct pg_media {
    pg_modality mod;
    int32_t n_clips;   /* AUDIO 3, VIDEO 15 (or what pg_media_from_tensor got), otherwise 1 */
    int32_t n_dims;    /* of shape */
    int64_t shape[6];  /* the tensor's shape, clips first (table above) */
    size_t n;          /* floats in data */
    float *data;       /* owned */
};

/* ---- media.c: the object and the dispatch (the public pg_media_* call these) ---- */
const char *media_modality_name(pg_modality mod);
void media_free(pg_media *m);
/* The encoder's input tensor as given (shape rules of pg_media_from_tensor), copied. */
pg_status media_from_tensor(pg_modality mod, const float *data, const int64_t *shape,
                            int32_t n_dims, pg_media **out);
pg_status media_from_rgb8(pg_modality mod, const uint8_t *rgb, int32_t width, int32_t height,
                          pg_media **out);
pg_status media_from_pcm(const float *pcm, size_t n_frames, int32_t n_channels,
                         int32_t sample_rate, pg_media **out);
/* Encoded bytes of a file of modality mod; what names them in messages. */
pg_status media_load(pg_modality mod, const void *data, size_t size, const char *what,
                     pg_media **out);

/* A decoded 8-bit image: rows top to bottom, channels interleaved (3 = RGB, 1 = L). */
typedef struct media_image8 {
    int32_t width, height, channels;
    uint8_t *pixels; /* malloc'd, width*height*channels */
} media_image8;

/* ---- image.c (libjpeg-turbo's TurboJPEG API, libpng) ---- */
/* Decodes JPEG or PNG bytes (sniffed from the magic) to RGB (channels 3) or, with gray nonzero,
 * to Pillow's "L" (channels 1) — exactly Pillow's open().convert("RGB"/"L"): alpha dropped
 * without compositing, palette and grey expanded, L = (19595 R + 38470 G + 7471 B + 0x8000)>>16.
 * what names the input in messages (a path or "memory"). */
pg_status media_image_decode(const void *data, size_t size, const char *what, int gray,
                             media_image8 *out);
void media_image8_free(media_image8 *img);
/* Pillow-exact BICUBIC resize of an 8-bit image (spec §5.1: horizontal pass then vertical,
 * 22-bit fixed point, uint8 intermediate, a pass skipped when that size is unchanged). */
pg_status media_resize_bicubic(const media_image8 *in, int32_t out_w, int32_t out_h,
                               media_image8 *out);
/* Short side -> 224 (bicubic), centre crop 224 (round half to even), ToTensor, and for IMAGE the
 * CLIP mean/std: out is [3,224,224] (IMAGE) or [1,224,224] (THERMAL, no normalisation). */
pg_status media_image_preprocess(pg_modality mod, const media_image8 *img, float *out);

/* ---- audio.c, resample.c, fbank.c (libsndfile) ---- */
/* Decodes any file libsndfile reads to interleaved float PCM in [-1, 1] (malloc'd). */
pg_status media_audio_decode(const void *data, size_t size, const char *what, float **pcm,
                             size_t *n_frames, int32_t *n_channels, int32_t *sample_rate);
/* torchaudio's resample to 16 kHz (spec §5.3), 3 clips, fbank, pad/crop, normalise:
 * out is [3,1,128,204]. */
pg_status media_audio_preprocess(const float *pcm, size_t n_frames, int32_t n_channels,
                                 int32_t sample_rate, float *out);

/* ---- depth.c (libpng; our convention, docs/media.md) ---- */
/* A grey 8/16-bit PNG of disparity -> v/(2^bits-1), short side 224 (bilinear, no antialias),
 * centre crop: out is [1,224,224]. */
pg_status media_depth_load(const void *data, size_t size, const char *what, float *out);
/* The same resize and crop of a float map of w×h. */
pg_status media_depth_preprocess(const float *map, int32_t w, int32_t h, float *out);

/* ---- video.c (FFmpeg: libavformat, libavcodec, libswscale) ---- */
/* Decodes a video and preprocesses it as spec §5.2: out is [15,3,2,224,224]. */
pg_status media_video_load(const void *data, size_t size, const char *what, float *out);

#endif
