/*
 * video_internal.h — the stages of media_video_load (video.c, spec §5.2), exposed so that the
 * tests can check each one on its own: which frames the clips use, the decoder, and the
 * preprocessing of the selected frames.
 *
 * Design: the 5 clips use only 2 frames each (the first and last of their 2 s window), so the
 * decoder never keeps the whole video. It decodes twice: pass 1 counts the frames (n_frames is
 * what the clip windows depend on), pass 2 converts to RGB only the frames that are selected.
 * The preprocessing then takes just those 10 frames, in slot order (slot 2k+t = clip k, frame t).
 */
#ifndef PG_MEDIA_VIDEO_INTERNAL_H
#define PG_MEDIA_VIDEO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "media/media.h"

#define MEDIA_VIDEO_SLOTS (2 * MEDIA_VIDEO_CLIPS) /* 10 frames: first and last of 5 clips */
#define MEDIA_VIDEO_CLIP_SECONDS 2.0

/* Clip k's window in seconds (pytorchvideo ConstantClipsPerVideoSampler, 5 clips of 2 s):
 * start = k·max_start/4 and end = start + 2, each the double nearest to the exact rational,
 * as Python's float(Fraction) gives them. max_start = max(duration − 2, 0). */
void media_video_clip_bounds(double max_start, int k, double *start, double *end);

/* The frame index of each slot for a stream of n_frames frames at fps (spec §5.2 steps 2–4):
 * index[2k] and index[2k+1] are the first and last frame of
 * range(ceil(fps·start_k), min(ceil(fps·end_k), n_frames)) (the same frame twice when it holds
 * one). A window that holds no frame at all (only when fps < 0.5, where upstream fails) uses
 * frame min(ceil(fps·start_k), n_frames − 1) twice: the frame nearest to the window.
 * Errors: PG_ERR_INVALID_ARGUMENT (n_frames < 1, fps not finite and > 0). */
pg_status media_video_select_frames(int64_t n_frames, double fps, int64_t index[MEDIA_VIDEO_SLOTS]);

/* The decoder's result: the selected frames as RGB24, top row first. */
typedef struct media_video_frames {
    int64_t n_frames;                  /* frames the stream decodes to */
    double fps;                        /* avg_frame_rate (else r_frame_rate) as a double */
    int64_t index[MEDIA_VIDEO_SLOTS];  /* frame index of each slot (media_video_select_frames) */
    int32_t width, height;             /* of every frame: the first decoded frame's size */
    size_t stride;                     /* bytes from one row to the next (>= 3·width) */
    const uint8_t *slot[MEDIA_VIDEO_SLOTS]; /* [height][stride] each; slots with the same index
                                              share one frame in buf */
    uint8_t *buf;                      /* owned: the distinct frames */
} media_video_frames;

/* Decodes data (any container and codec FFmpeg reads; the best video stream) and keeps the
 * selected frames. what names the input in messages. On failure *out is zeroed.
 * Errors: PG_ERR_FORMAT (not a video, no decodable frame, corrupt), PG_ERR_INVALID_ARGUMENT
 * (NULL arguments, over the MEDIA_MAX_* limits), PG_ERR_OUT_OF_MEMORY, PG_ERR_UNSUPPORTED
 * (built without FFmpeg, a pixel format swscale cannot convert). */
pg_status media_video_decode(const void *data, size_t size, const char *what,
                             media_video_frames *out);
void media_video_frames_free(media_video_frames *f);

/* Spec §5.2 steps 5–8 on the 10 slot frames (RGB24, width×height, rows stride bytes apart):
 * /255, ShortSideScale(224) bilinear (torch CPU, align_corners=False, no antialias), CLIP
 * Normalize, 3 spatial crops. out is [15][3][2][224][224] = [clip·3 + crop][C][T][H][W]. Only the
 * cropped 224×224 regions of the scaled frames are computed (the scaled frame itself can be
 * millions of pixels wide). Errors: PG_ERR_INVALID_ARGUMENT (NULL, sizes out of the limits). */
pg_status media_video_preprocess(const uint8_t *const frames[MEDIA_VIDEO_SLOTS], int32_t width,
                                 int32_t height, size_t stride, float *out);

#endif
