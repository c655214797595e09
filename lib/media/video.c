/*
 * video.c — ImageBind's video input (spec §5.2): decode with FFmpeg, pick the first and last
 * frame of 5 clip windows of 2 s, ShortSideScale(224) bilinear, CLIP Normalize, 3 spatial crops:
 * out is [15,3,2,224,224] float32.
 *
 * Upstream decodes with decord at native resolution to RGB24. Here libavformat reads the memory
 * buffer through a custom AVIOContext, libavcodec decodes (send_packet/receive_frame) and
 * libswscale converts to RGB24 with the conversion decord's "scale" filter would use: the frame's
 * YCbCr matrix (BT.601 when unspecified) and range. Two passes (see video_internal.h): count the
 * frames, then decode again from the start and convert only the 10 selected ones, so memory is
 * 10 RGB frames whatever the length. Undecodable packets are skipped and a read error ends the
 * stream, as FFmpeg's own tools do; both passes see the same frames since they decode the same
 * bytes the same way. Known differences from decord on unusual files: decord's len() is the number
 * of the stream's packets (frame i = the i-th in pts order), ours the number of decoded frames —
 * equal for intact streams; decord stops on any decode error where we skip; recent decord versions
 * rotate frames by the stream's display matrix, which the spec does not ask for and we do not do.
 * The preprocessing reproduces the reference's torch CPU arithmetic bit for
 * bit, including the fused multiply-adds of its bilinear kernel (see media_video_preprocess).
 *
 * Logging: FFmpeg writes warnings to stderr through av_log, and a library must not print. The
 * only switch is process-global (av_log_set_callback / av_log_set_level), and whether the
 * application installed its own callback cannot be detected. We install a silent callback once
 * (pthread_once), at the first video load. Trade-off: this also silences FFmpeg for the rest of
 * the process; an application that wants FFmpeg's messages sets its own callback after its first
 * video load, which then stays in place. Nested opens (playlists, external references) are
 * refused through io_open, so the input is only ever the caller's buffer.
 */
#include "media/video_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"

#ifdef PG_HAVE_FFMPEG
#  include <pthread.h>
#  include <libavcodec/avcodec.h>
#  include <libavformat/avformat.h>
#  include <libavutil/imgutils.h>
#  include <libavutil/log.h>
#  include <libswscale/swscale.h>
#endif

// ---- Clip windows and frame selection (spec §5.2 steps 2–4)

/* a + b = s + e exactly (Knuth's TwoSum). */
static double two_sum(double a, double b, double *e) {
    double s = a + b, bb = s - a;
    *e = (a - (s - bb)) + (b - bb);
    return s;
}

/* a + b rounded to odd: of the two doubles around the exact sum, the one with an odd last bit. */
static double add_round_odd(double a, double b) {
    double e, s = two_sum(a, b, &e);
    if (e != 0.0) {
        uint64_t bits;
        memcpy(&bits, &s, sizeof bits);
        if ((bits & 1) == 0) s = nextafter(s, e > 0 ? INFINITY : -INFINITY);
    }
    return s;
}

/* The double nearest to a + b + c (Boldo & Melquiond, "Emulation of FMA and correctly rounded
 * sums: proved algorithms using rounding to odd", 2008). */
static double sum3_rounded(double a, double b, double c) {
    double ul, tl;
    double uh = two_sum(b, c, &ul);
    double th = two_sum(a, uh, &tl);
    return th + add_round_odd(tl, ul);
}

void media_video_clip_bounds(double max_start, int k, double *start, double *end) {
    /* pytorchvideo: start = Fraction(max_start)/4·k and end = start + Fraction(2), converted with
     * float() where they meet the fps. k·m/4 is one rounding of k·m then an exact /4, so it is
     * the nearest double; start + 2 is too, except for k = 3 where start itself was rounded: there
     * the exact 3m = hi + lo (fma) gives end = nearest(hi/4 + lo/4 + 2). */
    double hi = (double)k * max_start;
    *start = hi / 4.0;
    if (k == 3) {
        double lo = fma(3.0, max_start, -hi);
        *end = sum3_rounded(hi / 4.0, lo / 4.0, MEDIA_VIDEO_CLIP_SECONDS);
    } else {
        *end = *start + MEDIA_VIDEO_CLIP_SECONDS;
    }
}

/* ceil(x) as a frame index clamped to [0, n]; x is finite and >= 0 here. */
static int64_t ceil_index(double x, int64_t n) {
    double c = ceil(x);
    return c >= (double)n ? n : (int64_t)c;
}

pg_status media_video_select_frames(int64_t n_frames, double fps,
                                    int64_t index[MEDIA_VIDEO_SLOTS]) {
    if (!index || n_frames < 1 || !(fps > 0.0) || !isfinite(fps))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "video: %lld frames at %g fps",
                            (long long)n_frames, fps);
    /* decord: duration = len / avg_fps; pytorchvideo: max(duration - clip_duration, 0). */
    double duration = (double)n_frames / fps;
    double max_start = duration - MEDIA_VIDEO_CLIP_SECONDS;
    if (!(max_start > 0.0)) max_start = 0.0;
    for (int k = 0; k < MEDIA_VIDEO_CLIPS; k++) {
        double start, end;
        media_video_clip_bounds(max_start, k, &start, &end);
        /* EncodedVideoDecord.get_clip: range(ceil(fps·start), min(ceil(fps·end), len)), the
         * product in double; UniformTemporalSubsample(2) keeps its first and last frame. */
        int64_t first = ceil_index(fps * start, n_frames);
        int64_t stop = ceil_index(fps * end, n_frames);
        if (first < stop) {
            index[2 * k] = first;
            index[2 * k + 1] = stop - 1;
        } else {
            /* Empty window (fps < 0.5): upstream raises; we take the frame nearest to it. */
            int64_t near = first < n_frames ? first : n_frames - 1;
            index[2 * k] = index[2 * k + 1] = near;
        }
    }
    return PG_OK;
}

// ---- Preprocessing of the 10 selected frames (spec §5.2 steps 5–8)

/* One output coordinate of torch's upsample_bilinear2d (CPU, align_corners=False). */
typedef struct bilinear_tap {
    int32_t i0, i1;    /* source indices */
    float l0, l1;      /* their weights */
} bilinear_tap;

static bilinear_tap bilinear_tap_at(int32_t in, int32_t out, int64_t o) {
    bilinear_tap t;
    if (in == out) { /* torch copies when the size is unchanged */
        t.i0 = t.i1 = (int32_t)o;
        t.l0 = 1.0f;
        t.l1 = 0.0f;
        return t;
    }
    /* scale = float32 in/out; the source coordinate in double; lambdas in float32 [spec]. */
    float scale = (float)in / (float)out;
    double s = (double)scale * ((double)o + 0.5) - 0.5;
    if (s < 0.0) s = 0.0;
    int64_t i0 = (int64_t)s;
    if (i0 > in - 1) i0 = in - 1; /* cannot happen for o < out; keeps reads in bounds */
    float l1 = (float)(s - (double)i0);
    if (l1 > 1.0f) l1 = 1.0f;
    t.i0 = (int32_t)i0;
    t.i1 = (int32_t)(i0 + (i0 < in - 1 ? 1 : 0));
    t.l1 = l1;
    t.l0 = 1.0f - l1;
    return t;
}

/* One 224×224 crop of one channel of one frame: bilinear sample, /255, Normalize. src points at
 * the channel's first byte (pixels 3 bytes apart). */
#if defined(__GNUC__) || defined(__clang__)
#  define VIDEO_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#  define VIDEO_ALWAYS_INLINE inline
#endif
static VIDEO_ALWAYS_INLINE void
video_kernel_body(const uint8_t *src, size_t stride, const bilinear_tap *ty, const bilinear_tap *tx,
                  const float *unit, int c, float *dst) {
    /* Normalize: (x − mean)/std in float32 with the Python doubles rounded to float as
     * torch.as_tensor does. */
    static const float mean[3] = {(float)0.48145466, (float)0.4578275, (float)0.40821073};
    static const float std[3] = {(float)0.26862954, (float)0.26130258, (float)0.27577711};
    for (int32_t y = 0; y < MEDIA_IMAGE_SIZE; y++) {
        const bilinear_tap *py = &ty[y];
        const uint8_t *row0 = src + (size_t)py->i0 * stride;
        const uint8_t *row1 = src + (size_t)py->i1 * stride;
        for (int32_t x = 0; x < MEDIA_IMAGE_SIZE; x++) {
            const bilinear_tap *px = &tx[x];
            size_t a = (size_t)px->i0 * 3, b = (size_t)px->i1 * 3;
            /* torch's order, h0λ·(w0λ·p00 + w1λ·p01) + h1λ·(w0λ·p10 + w1λ·p11), with the
             * contraction its AVX2 kernel build makes of each `t·w + t2·w2`: fma(t, w, t2·w2).
             * With it the reference's video.clip0_center.npy is reproduced bit for bit; plain
             * multiply-adds differ by 1 ulp in 13% of the values, with a bias that shows in
             * the sums. */
            float top = fmaf(unit[row0[a]], px->l0, unit[row0[b]] * px->l1);
            float bot = fmaf(unit[row1[a]], px->l0, unit[row1[b]] * px->l1);
            float v = fmaf(top, py->l0, bot * py->l1);
            dst[(size_t)y * MEDIA_IMAGE_SIZE + x] = (v - mean[c]) / std[c];
        }
    }
}

typedef void (*video_kernel_fn)(const uint8_t *, size_t, const bilinear_tap *,
                                const bilinear_tap *, const float *, int, float *);

static void video_kernel_generic(const uint8_t *src, size_t stride, const bilinear_tap *ty,
                                 const bilinear_tap *tx, const float *unit, int c, float *dst) {
    video_kernel_body(src, stride, ty, tx, unit, c, dst);
}

/* The library is built for baseline x86-64, where fmaf is a libm call (exact, but several
 * times slower here); the same code compiled for FMA inlines it. fmaf is exactly rounded either
 * way, so both give the same bits. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#  define PG_VIDEO_FMA_CLONE 1
__attribute__((target("fma"))) static void
video_kernel_fma(const uint8_t *src, size_t stride, const bilinear_tap *ty, const bilinear_tap *tx,
                 const float *unit, int c, float *dst) {
    video_kernel_body(src, stride, ty, tx, unit, c, dst);
}
#else
#  define PG_VIDEO_FMA_CLONE 0
#endif

pg_status media_video_preprocess(const uint8_t *const frames[MEDIA_VIDEO_SLOTS], int32_t width,
                                 int32_t height, size_t stride, float *out) {
    if (!frames || !out)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "video preprocess: NULL argument");
    for (int j = 0; j < MEDIA_VIDEO_SLOTS; j++)
        if (!frames[j])
            return pg_set_error(PG_ERR_INVALID_ARGUMENT, "video preprocess: frame %d is NULL", j);
    if (width < 1 || height < 1 || width > MEDIA_MAX_IMAGE_SIDE || height > MEDIA_MAX_IMAGE_SIDE ||
        (int64_t)width * height > MEDIA_MAX_IMAGE_PIXELS || stride < (size_t)width * 3)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT,
                            "video preprocess: %dx%d frames (stride %zu) out of limits", width,
                            height, stride);

    /* pytorchvideo short_side_scale: the short side becomes 224, the long one
     * floor(long/short·224) with the ratio in double. */
    const int32_t S = MEDIA_IMAGE_SIZE;
    int32_t new_w, new_h;
    if (width < height) {
        new_w = S;
        new_h = (int32_t)floor((double)height / width * S);
    } else {
        new_h = S;
        new_w = (int32_t)floor((double)width / height * S);
    }
    /* uniform_crop on the scaled frame: y, x offsets = ceil((size - 224)/2), and along the long
     * axis (height > width: y, else x) spatial_idx 0 -> 0 and 2 -> size - 224. */
    int32_t y_off[MEDIA_VIDEO_CROPS], x_off[MEDIA_VIDEO_CROPS];
    for (int r = 0; r < MEDIA_VIDEO_CROPS; r++) {
        y_off[r] = (new_h - S + 1) / 2;
        x_off[r] = (new_w - S + 1) / 2;
    }
    if (new_h > new_w) {
        y_off[0] = 0;
        y_off[2] = new_h - S;
    } else {
        x_off[0] = 0;
        x_off[2] = new_w - S;
    }

    bilinear_tap ty[MEDIA_VIDEO_CROPS][MEDIA_IMAGE_SIZE], tx[MEDIA_VIDEO_CROPS][MEDIA_IMAGE_SIZE];
    for (int r = 0; r < MEDIA_VIDEO_CROPS; r++)
        for (int32_t o = 0; o < S; o++) {
            ty[r][o] = bilinear_tap_at(height, new_h, (int64_t)y_off[r] + o);
            tx[r][o] = bilinear_tap_at(width, new_w, (int64_t)x_off[r] + o);
        }

    /* video_clip / 255.0: float32 true division, tabulated. */
    float unit[256];
    for (int v = 0; v < 256; v++) unit[v] = (float)v / 255.0f;
    video_kernel_fn kernel = video_kernel_generic;
#if PG_VIDEO_FMA_CLONE
    __builtin_cpu_init();
    if (__builtin_cpu_supports("fma")) kernel = video_kernel_fma;
#endif
    const size_t plane = (size_t)S * S;
    for (int j = 0; j < MEDIA_VIDEO_SLOTS; j++) {
        const int clip = j / 2, t = j % 2;
        for (int r = 0; r < MEDIA_VIDEO_CROPS; r++) {
            float *entry = out + (size_t)(clip * MEDIA_VIDEO_CROPS + r) * 3 * 2 * plane;
            for (int c = 0; c < 3; c++)
                kernel(frames[j] + c, stride, ty[r], tx[r], unit, c,
                       entry + ((size_t)c * 2 + (size_t)t) * plane);
        }
    }
    return PG_OK;
}

// ---- Decoding (FFmpeg)

void media_video_frames_free(media_video_frames *f) {
    if (!f) return;
    free(f->buf);
    memset(f, 0, sizeof *f);
}

#ifdef PG_HAVE_FFMPEG

static void silent_log(void *avcl, int level, const char *fmt, va_list vl) {
    (void)avcl;
    (void)level;
    (void)fmt;
    (void)vl;
}

static pthread_once_t silence_once = PTHREAD_ONCE_INIT;
static void silence_ffmpeg(void) { av_log_set_callback(silent_log); }

/* The caller's buffer as an AVIOContext source. */
typedef struct mem_reader {
    const uint8_t *data;
    size_t size, pos;
} mem_reader;

static int mem_read(void *opaque, uint8_t *buf, int buf_size) {
    mem_reader *m = opaque;
    size_t left = m->size - m->pos;
    if (left == 0 || buf_size <= 0) return AVERROR_EOF;
    size_t n = left < (size_t)buf_size ? left : (size_t)buf_size;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (int)n;
}

static int64_t mem_seek(void *opaque, int64_t offset, int whence) {
    mem_reader *m = opaque;
    int64_t base;
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE: return (int64_t)m->size;
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = (int64_t)m->pos; break;
    case SEEK_END: base = (int64_t)m->size; break;
    default: return AVERROR(EINVAL);
    }
    if ((offset > 0 && base > INT64_MAX - offset) || base + offset < 0 ||
        base + offset > (int64_t)m->size)
        return AVERROR(EINVAL);
    m->pos = (size_t)(base + offset);
    return (int64_t)m->pos;
}

/* Only the caller's buffer may be read: no nested files or URLs (HLS, concat, mov drefs). */
static int deny_io_open(struct AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
                        AVDictionary **options) {
    (void)s;
    (void)pb;
    (void)url;
    (void)flags;
    (void)options;
    return AVERROR(EPERM);
}

/* One opened demuxer + decoder over the buffer. */
typedef struct vdec {
    mem_reader mem;
    AVIOContext *avio;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    int stream;
    double fps;
} vdec;

static void vdec_close(vdec *d) {
    avformat_close_input(&d->fmt); /* does not touch a custom pb */
    if (d->avio) {
        av_freep(&d->avio->buffer);
        avio_context_free(&d->avio);
    }
    avcodec_free_context(&d->dec);
    av_packet_free(&d->pkt);
    av_frame_free(&d->frame);
}

static pg_status av_failure(int err, const char *what, const char *step) {
    if (err == AVERROR(ENOMEM))
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: out of memory (%s)", what, step);
    char msg[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(err, msg, sizeof msg);
    return pg_set_error(PG_ERR_FORMAT, "%s: not a readable video (%s: %s)", what, step, msg);
}

static pg_status vdec_open(vdec *d, const void *data, size_t size, const char *what) {
    memset(d, 0, sizeof *d);
    d->mem.data = data;
    d->mem.size = size;
    const int io_size = 1 << 16;
    uint8_t *io_buf = av_malloc(io_size);
    if (!io_buf) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    d->avio = avio_alloc_context(io_buf, io_size, 0, &d->mem, mem_read, NULL, mem_seek);
    if (!d->avio) {
        av_free(io_buf);
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    }
    d->fmt = avformat_alloc_context();
    if (!d->fmt) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    d->fmt->pb = d->avio;
    d->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    d->fmt->io_open = deny_io_open;
    int err = avformat_open_input(&d->fmt, NULL, NULL, NULL); /* frees fmt on failure */
    if (err < 0) return av_failure(err, what, "open");
    err = avformat_find_stream_info(d->fmt, NULL);
    if (err < 0) return av_failure(err, what, "stream info");

    const AVCodec *codec = NULL;
    d->stream = av_find_best_stream(d->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (d->stream < 0 || !codec) {
        if (d->stream == AVERROR_DECODER_NOT_FOUND)
            return pg_set_error(PG_ERR_UNSUPPORTED, "%s: no decoder for its video stream", what);
        return pg_set_error(PG_ERR_FORMAT, "%s: no video stream", what);
    }
    AVStream *st = d->fmt->streams[d->stream];

    /* Checked before anything is decoded; the decoded frames are checked again. */
    const AVCodecParameters *par = st->codecpar;
    if (par->width > MEDIA_MAX_IMAGE_SIDE || par->height > MEDIA_MAX_IMAGE_SIDE ||
        (int64_t)par->width * par->height > MEDIA_MAX_IMAGE_PIXELS)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: %dx%d video is over the %dx%d limit",
                            what, par->width, par->height, MEDIA_MAX_IMAGE_SIDE,
                            MEDIA_MAX_IMAGE_SIDE);
    if (d->fmt->duration != AV_NOPTS_VALUE &&
        d->fmt->duration / AV_TIME_BASE > MEDIA_MAX_VIDEO_SECONDS)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: %lld s of video is over the %d s limit",
                            what, (long long)(d->fmt->duration / AV_TIME_BASE),
                            MEDIA_MAX_VIDEO_SECONDS);

    /* decord's get_avg_fps: avg_frame_rate, else r_frame_rate. */
    AVRational rate = st->avg_frame_rate;
    if (rate.num <= 0 || rate.den <= 0) rate = st->r_frame_rate;
    if (rate.num <= 0 || rate.den <= 0)
        return pg_set_error(PG_ERR_FORMAT, "%s: the video stream has no frame rate", what);
    d->fps = (double)rate.num / (double)rate.den;

    d->dec = avcodec_alloc_context3(codec);
    d->pkt = av_packet_alloc();
    d->frame = av_frame_alloc();
    if (!d->dec || !d->pkt || !d->frame)
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    err = avcodec_parameters_to_context(d->dec, par);
    if (err < 0) return av_failure(err, what, "decoder parameters");
    d->dec->thread_count = 1; /* no threads of our own inside the caller's process */
    err = avcodec_open2(d->dec, codec, NULL);
    if (err < 0) return av_failure(err, what, "decoder");
    return PG_OK;
}

/* Called with each decoded frame in order; sets *stop to end the pass early. */
typedef pg_status (*frame_fn)(void *user, int64_t index, const AVFrame *frame, int *stop);

static pg_status vdec_drain(vdec *d, const char *what, int64_t *index, frame_fn fn, void *user,
                            int *stop) {
    while (!*stop) {
        int err = avcodec_receive_frame(d->dec, d->frame);
        if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return PG_OK;
        if (err == AVERROR(ENOMEM)) return av_failure(err, what, "decode");
        if (err < 0) return PG_OK; /* a broken frame: skipped, like a broken packet */
        pg_status s = fn(user, (*index)++, d->frame, stop);
        av_frame_unref(d->frame);
        if (s != PG_OK) return s;
    }
    return PG_OK;
}

/* Decodes the video stream from the start, calling fn for each frame. */
static pg_status vdec_run(vdec *d, const char *what, frame_fn fn, void *user) {
    int64_t index = 0;
    int stop = 0;
    pg_status s = PG_OK;
    while (!stop) {
        int err = av_read_frame(d->fmt, d->pkt);
        if (err == AVERROR(ENOMEM)) return av_failure(err, what, "read");
        if (err < 0) break; /* end of stream, or the rest is unreadable */
        if (d->pkt->stream_index != d->stream) {
            av_packet_unref(d->pkt);
            continue;
        }
        err = avcodec_send_packet(d->dec, d->pkt);
        av_packet_unref(d->pkt);
        if (err == AVERROR(ENOMEM)) return av_failure(err, what, "decode");
        /* Other errors: invalid data, skipped as ffmpeg does. */
        s = vdec_drain(d, what, &index, fn, user, &stop);
        if (s != PG_OK) return s;
    }
    if (!stop) {
        int err = avcodec_send_packet(d->dec, NULL); /* flush: the delayed (B-)frames */
        if (err == AVERROR(ENOMEM)) return av_failure(err, what, "decode");
        s = vdec_drain(d, what, &index, fn, user, &stop);
    }
    return s;
}

/* Pass 1: count the frames, take the size of the first. */
typedef struct count_pass {
    const char *what;
    double fps;
    int64_t n;
    int32_t width, height;
} count_pass;

static pg_status count_frame(void *user, int64_t index, const AVFrame *f, int *stop) {
    count_pass *c = user;
    (void)stop;
    if (index == 0) {
        if (f->width < 1 || f->height < 1 || f->width > MEDIA_MAX_IMAGE_SIDE ||
            f->height > MEDIA_MAX_IMAGE_SIDE ||
            (int64_t)f->width * f->height > MEDIA_MAX_IMAGE_PIXELS)
            return pg_set_error(PG_ERR_INVALID_ARGUMENT,
                                "%s: %dx%d frames are outside the limits (1..%d per side, "
                                "%lld pixels)",
                                c->what, f->width, f->height, MEDIA_MAX_IMAGE_SIDE,
                                (long long)MEDIA_MAX_IMAGE_PIXELS);
        c->width = f->width;
        c->height = f->height;
    }
    c->n = index + 1;
    if ((double)c->n / c->fps > MEDIA_MAX_VIDEO_SECONDS)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT,
                            "%s: more than %d s of video (%lld frames at %g fps)", c->what,
                            MEDIA_MAX_VIDEO_SECONDS, (long long)c->n, c->fps);
    return PG_OK;
}

/* Pass 2: convert the selected frames to RGB24 into their slots. */
typedef struct keep_pass {
    const char *what;
    media_video_frames *out;
    int64_t last;            /* the highest selected index */
    int32_t n_distinct;      /* frames converted so far */
    struct SwsContext *sws;
} keep_pass;

static pg_status keep_frame(void *user, int64_t index, const AVFrame *f, int *stop) {
    keep_pass *k = user;
    media_video_frames *o = k->out;
    uint8_t *dst = NULL;
    for (int j = 0; j < MEDIA_VIDEO_SLOTS; j++) {
        if (o->index[j] != index) continue;
        if (!dst) {
            dst = o->buf + (size_t)k->n_distinct++ * o->stride * (size_t)o->height;
            if (f->width < 1 || f->height < 1 || f->format < 0 ||
                !sws_isSupportedInput((enum AVPixelFormat)f->format))
                return pg_set_error(PG_ERR_UNSUPPORTED, "%s: frame %lld: pixel format %d",
                                    k->what, (long long)index, f->format);
            k->sws = sws_getCachedContext(k->sws, f->width, f->height,
                                          (enum AVPixelFormat)f->format, o->width, o->height,
                                          AV_PIX_FMT_RGB24, SWS_BILINEAR, NULL, NULL, NULL);
            if (!k->sws)
                return pg_set_error(PG_ERR_UNSUPPORTED, "%s: frame %lld: cannot convert %s",
                                    k->what, (long long)index,
                                    av_get_pix_fmt_name((enum AVPixelFormat)f->format));
            /* As vf_scale's in_color_matrix=auto: the frame's matrix, BT.601 when it has none
             * (sws_getCoefficients maps the unknown ones to it); full range when tagged so. */
            int *inv, *tab, src_range, dst_range, bri, con, sat;
            if (sws_getColorspaceDetails(k->sws, &inv, &src_range, &tab, &dst_range, &bri, &con,
                                         &sat) >= 0) {
                int cs = f->colorspace;
                if (cs < 1 || cs > 10 || cs == 8) cs = AVCOL_SPC_BT470BG;
                if (f->color_range == AVCOL_RANGE_JPEG) src_range = 1;
                sws_setColorspaceDetails(k->sws, sws_getCoefficients(cs), src_range, tab,
                                         dst_range, bri, con, sat);
            }
            uint8_t *planes[4] = {dst, NULL, NULL, NULL};
            int strides[4] = {(int)o->stride, 0, 0, 0};
            if (sws_scale(k->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height,
                          planes, strides) <= 0)
                return pg_set_error(PG_ERR_FORMAT, "%s: frame %lld: RGB conversion failed",
                                    k->what, (long long)index);
        }
        o->slot[j] = dst;
    }
    if (index >= k->last) *stop = 1;
    return PG_OK;
}

static pg_status decode_ffmpeg(const void *data, size_t size, const char *what,
                               media_video_frames *out) {
    pthread_once(&silence_once, silence_ffmpeg);

    vdec d;
    pg_status s = vdec_open(&d, data, size, what);
    count_pass c = {what, d.fps, 0, 0, 0};
    if (s == PG_OK) s = vdec_run(&d, what, count_frame, &c);
    vdec_close(&d);
    if (s != PG_OK) return s;
    if (c.n == 0) return pg_set_error(PG_ERR_FORMAT, "%s: no decodable video frame", what);

    out->n_frames = c.n;
    out->fps = c.fps;
    out->width = c.width;
    out->height = c.height;
    s = media_video_select_frames(c.n, c.fps, out->index);
    if (s != PG_OK) return pg_error_prefix(s, "%s", what);

    int32_t n_distinct = 0;
    int64_t last = 0;
    for (int j = 0; j < MEDIA_VIDEO_SLOTS; j++) {
        int seen = 0;
        for (int i = 0; i < j; i++) seen |= out->index[i] == out->index[j];
        n_distinct += !seen;
        if (out->index[j] > last) last = out->index[j];
    }
    /* Rows 64-byte aligned, and 64 bytes of slack after the last frame, for swscale's SIMD. */
    out->stride = ((size_t)c.width * 3 + 63) & ~(size_t)63;
    out->buf = malloc(out->stride * (size_t)c.height * (size_t)n_distinct + 64);
    if (!out->buf) {
        media_video_frames_free(out);
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: out of memory for %d %dx%d frames", what,
                            n_distinct, c.width, c.height);
    }

    keep_pass k = {what, out, last, 0, NULL};
    s = vdec_open(&d, data, size, what);
    if (s == PG_OK) s = vdec_run(&d, what, keep_frame, &k);
    vdec_close(&d);
    sws_freeContext(k.sws);
    for (int j = 0; s == PG_OK && j < MEDIA_VIDEO_SLOTS; j++)
        if (!out->slot[j])
            s = pg_set_error(PG_ERR_FORMAT, "%s: frame %lld of %lld missing on the second pass",
                             what, (long long)out->index[j], (long long)c.n);
    if (s != PG_OK) media_video_frames_free(out);
    return s;
}

#endif /* PG_HAVE_FFMPEG */

pg_status media_video_decode(const void *data, size_t size, const char *what,
                             media_video_frames *out) {
    if (!what) what = "video";
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: NULL output", what);
    memset(out, 0, sizeof *out);
    if (!data && size) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: NULL data", what);
    if (size == 0) return pg_set_error(PG_ERR_FORMAT, "%s: empty input", what);
    if (size > MEDIA_MAX_FILE_BYTES)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: %zu bytes is over the %zu byte limit",
                            what, size, MEDIA_MAX_FILE_BYTES);
#ifdef PG_HAVE_FFMPEG
    return decode_ffmpeg(data, size, what, out);
#else
    return pg_set_error(PG_ERR_UNSUPPORTED,
                        "%s: video decoding needs FFmpeg, absent from this build", what);
#endif
}

// ---- The whole path

pg_status media_video_load(const void *data, size_t size, const char *what, float *out) {
    if (!what) what = "video";
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: NULL output", what);
    media_video_frames f;
    pg_status s = media_video_decode(data, size, what, &f);
    if (s != PG_OK) return s;
    s = media_video_preprocess(f.slot, f.width, f.height, f.stride, out);
    media_video_frames_free(&f);
    return s;
}
