/*
 * audio.c — ImageBind's load_and_transform_audio_data (spec §5.3): decoding with libsndfile,
 * then resampling to 16 kHz (resample.c), 3 clips of 2 s, the in-place mean quirk, the Kaldi
 * fbank of channel 0 (fbank.c), pad/crop to 204 frames and the normalisation.
 *
 * Channels: every channel is resampled and takes part in each clip's mean (spec §7 item 2), only
 * channel 0 reaches the fbank; there is no down-mix.
 *
 * Only the samples the 3 clips cover (at most 3 × 32000 per channel) are resampled and kept:
 * resampling is local, so they equal the same samples of a full resampling, and an hour of
 * 64-channel audio costs no more than 6 s of it.
 *
 * Short audio: torchaudio's fbank asserts when a clip is shorter than one 400-sample frame
 * (25 ms at 16 kHz). We refuse such input with PG_ERR_INVALID_ARGUMENT rather than invent a
 * padding upstream never had. From 400 samples on, the clip gives 1 + (n − 400)/160 frames and
 * the rest of the 204 columns are padding, as upstream.
 */
#include "media.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "audio_internal.h"

#ifdef PG_HAVE_SNDFILE
#include <sndfile.h>
#endif

#define CLIP_SAMPLES (2 * MEDIA_AUDIO_RATE) /* clip_duration 2 s */
#define NORM_MEAN (-4.268f)
#define NORM_STD 9.138f

/* ---- decoding (libsndfile virtual I/O over the caller's bytes) ---- */

#ifdef PG_HAVE_SNDFILE
typedef struct mem_file {
    const unsigned char *data;
    sf_count_t size, pos;
} mem_file;

static sf_count_t vio_len(void *user) { return ((mem_file *)user)->size; }

static sf_count_t vio_seek(sf_count_t off, int whence, void *user) {
    mem_file *m = user;
    sf_count_t from;
    switch (whence) {
    case SEEK_SET: from = 0; break;
    case SEEK_CUR: from = m->pos; break;
    case SEEK_END: from = m->size; break;
    default: return -1;
    }
    /* offsets come from header fields (64-bit in W64/RF64): refuse any that would overflow */
    if ((off > 0 && from > INT64_MAX - off) || from + off < 0) return -1;
    const sf_count_t at = from + off;
    m->pos = at; /* past the end is allowed, as for a file; reads there return 0 */
    return at;
}

static sf_count_t vio_read(void *dst, sf_count_t count, void *user) {
    mem_file *m = user;
    if (count <= 0 || m->pos >= m->size) return 0;
    sf_count_t k = m->size - m->pos;
    if (k > count) k = count;
    memcpy(dst, m->data + m->pos, (size_t)k);
    m->pos += k;
    return k;
}

static sf_count_t vio_write(const void *src, sf_count_t count, void *user) {
    (void)src; (void)count; (void)user;
    return 0; /* read-only */
}

static sf_count_t vio_tell(void *user) { return ((mem_file *)user)->pos; }
#endif

pg_status media_audio_decode(const void *data, size_t size, const char *what, float **pcm,
                             size_t *n_frames, int32_t *n_channels, int32_t *sample_rate) {
    if (pcm) *pcm = NULL;
    if (n_frames) *n_frames = 0;
    if (n_channels) *n_channels = 0;
    if (sample_rate) *sample_rate = 0;
    if (!what) what = "memory";
    if (!pcm || !n_frames || !n_channels || !sample_rate || (!data && size))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: audio decode: NULL argument", what);
    if (size > MEDIA_MAX_FILE_BYTES)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: %zu bytes, more than the %zu allowed",
                            what, size, MEDIA_MAX_FILE_BYTES);
    if (size == 0) return pg_set_error(PG_ERR_FORMAT, "%s: empty audio file", what);
#ifndef PG_HAVE_SNDFILE
    return pg_set_error(PG_ERR_UNSUPPORTED,
                        "%s: audio decoding needs libsndfile, which this build lacks (decode "
                        "elsewhere and pass PCM to pg_media_from_pcm)", what);
#else
    mem_file m = {data, (sf_count_t)size, 0};
    SF_VIRTUAL_IO vio = {vio_len, vio_seek, vio_read, vio_write, vio_tell};
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open_virtual(&vio, SFM_READ, &info, &m);
    if (!sf)
        return pg_set_error(PG_ERR_FORMAT, "%s: not an audio file libsndfile reads (%s)", what,
                            sf_error_number(sf_error(NULL)));

    pg_status s = PG_OK;
    float *buf = NULL;
    size_t got = 0;
    if (info.channels < 1 || info.channels > MEDIA_MAX_CHANNELS) {
        s = pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: %d channels, outside [1, %d]", what,
                         info.channels, MEDIA_MAX_CHANNELS);
        goto done;
    }
    if (info.samplerate < 1 || info.samplerate > MEDIA_MAX_AUDIO_RATE) {
        s = pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: sample rate %d Hz, outside [1, %d]", what,
                         info.samplerate, MEDIA_MAX_AUDIO_RATE);
        goto done;
    }
    const size_t ch = (size_t)info.channels;
    /* at most an hour, and at most MEDIA_MAX_AUDIO_SAMPLES decoded floats in all */
    sf_count_t max_frames = (sf_count_t)MEDIA_MAX_AUDIO_SECONDS * info.samplerate;
    if (max_frames > (sf_count_t)(MEDIA_MAX_AUDIO_SAMPLES / ch))
        max_frames = (sf_count_t)(MEDIA_MAX_AUDIO_SAMPLES / ch);
    /* SF_COUNT_MAX means the length is unknown: read until the end, up to the limit. */
    const int known = info.frames >= 0 && info.frames != SF_COUNT_MAX;
    if (known && info.frames > max_frames) {
        s = pg_set_error(PG_ERR_INVALID_ARGUMENT,
                         "%s: %lld frames of %zu channels at %d Hz is over the limit (%d s, "
                         "%zu samples)", what, (long long)info.frames, ch, info.samplerate,
                         MEDIA_MAX_AUDIO_SECONDS, MEDIA_MAX_AUDIO_SAMPLES);
        goto done;
    }
    /* The header's length is a claim: grow the buffer as frames actually arrive. */
    const size_t expect = (size_t)(known ? info.frames : max_frames);
    size_t cap = 0;
    for (;;) {
        if (got == cap) {
            if (cap == expect) {
                if (known) break;
                float probe[MEDIA_MAX_CHANNELS];
                if (sf_readf_float(sf, probe, 1) > 0) {
                    s = pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: longer than %d s at %d Hz",
                                     what, MEDIA_MAX_AUDIO_SECONDS, info.samplerate);
                    goto done;
                }
                break;
            }
            size_t ncap = cap ? cap * 2 : 65536;
            if (ncap > expect) ncap = expect;
            float *nb = realloc(buf, ncap * ch * sizeof(float));
            if (!nb) {
                s = pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu frames", what,
                                 ncap);
                goto done;
            }
            buf = nb;
            cap = ncap;
        }
        sf_count_t r = sf_readf_float(sf, buf + got * ch, (sf_count_t)(cap - got));
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (sf_error(sf) != SF_ERR_NO_ERROR) {
        s = pg_set_error(PG_ERR_FORMAT, "%s: corrupt audio after %zu frames (%s)", what, got,
                         sf_strerror(sf));
        goto done;
    }
    if (got == 0) {
        s = pg_set_error(PG_ERR_FORMAT, "%s: no audio frames", what);
        goto done;
    }
    for (size_t i = 0; i < got * ch; i++) {
        if (!isfinite(buf[i])) {
            s = pg_set_error(PG_ERR_FORMAT, "%s: sample %zu of channel %zu is not finite", what,
                             i / ch, i % ch);
            goto done;
        }
    }
    if (got < cap) { /* give back what the header overstated */
        float *nb = realloc(buf, got * ch * sizeof(float));
        if (nb) buf = nb;
    }

done:
    sf_close(sf);
    if (s != PG_OK) {
        free(buf);
        return s;
    }
    *pcm = buf;
    *n_frames = got;
    *n_channels = info.channels;
    *sample_rate = info.samplerate;
    return PG_OK;
#endif
}

/* ---- the clip arithmetic (spec §5.3 step 3) ---- */

/* floor(m·c) of the exact product: TwoProduct (p + e = m·c exactly, via fma). When p is not an
 * integer, |e| <= ulp(p)/2 cannot reach the integer below it; when it is, e < 0 steps down. */
static double floor_exact_product(double m, double c) {
    const double p = m * c;
    const double e = fma(m, c, -p);
    double f = floor(p);
    if (p == f && e < 0.0) f -= 1.0;
    return f;
}

void media_audio_clip_bounds(size_t n16, size_t begin[3], size_t end[3]) {
    /* pytorchvideo's ConstantClipsPerVideoSampler: Fraction(max(D − 2, 0)) / 2 · k, D a double;
     * the slice is [int(start·16000), int(end·16000)) and end = start + 2 exactly. */
    const double d = (double)n16 / (double)MEDIA_AUDIO_RATE;
    double m = d - 2.0;
    if (!(m > 0.0)) m = 0.0;
    for (int k = 0; k < MEDIA_AUDIO_CLIPS; k++) {
        size_t b = (size_t)floor_exact_product(m, (double)(k * (MEDIA_AUDIO_RATE / 2)));
        size_t e = b + CLIP_SAMPLES;
        begin[k] = b < n16 ? b : n16;
        end[k] = e < n16 ? e : n16;
    }
}

/* ---- preprocessing ---- */

/* The union of the clip slices as disjoint runs, each with its place in the kept buffer. */
typedef struct runs {
    int n;
    size_t begin[MEDIA_AUDIO_CLIPS], end[MEDIA_AUDIO_CLIPS], at[MEDIA_AUDIO_CLIPS];
    size_t total;
} runs;

static void runs_make(runs *r, const size_t *begin, const size_t *end) {
    r->n = 0;
    r->total = 0;
    for (int k = 0; k < MEDIA_AUDIO_CLIPS; k++) { /* begins are non-decreasing */
        if (r->n && begin[k] <= r->end[r->n - 1]) {
            if (end[k] > r->end[r->n - 1]) r->end[r->n - 1] = end[k];
            continue;
        }
        r->begin[r->n] = begin[k];
        r->end[r->n] = end[k];
        r->n++;
    }
    for (int i = 0; i < r->n; i++) {
        r->at[i] = r->total;
        r->total += r->end[i] - r->begin[i];
    }
}

/* Where sample s (inside some run) lives in a channel's part of the kept buffer. */
static size_t runs_index(const runs *r, size_t s) {
    int i = r->n - 1;
    while (i > 0 && s < r->begin[i]) i--;
    return r->at[i] + (s - r->begin[i]);
}

pg_status media_audio_preprocess(const float *pcm, size_t n_frames, int32_t n_channels,
                                 int32_t sample_rate, float *out) {
    if (!pcm || !out)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "audio preprocess: NULL argument");
    if (n_channels < 1 || n_channels > MEDIA_MAX_CHANNELS)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "audio: %d channels, outside [1, %d]",
                            (int)n_channels, MEDIA_MAX_CHANNELS);
    if (sample_rate < 1 || sample_rate > MEDIA_MAX_AUDIO_RATE)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "audio: sample rate %d Hz, outside [1, %d]",
                            (int)sample_rate, MEDIA_MAX_AUDIO_RATE);
    if (n_frames == 0) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "audio: no samples");
    if ((uint64_t)n_frames > (uint64_t)MEDIA_MAX_AUDIO_SECONDS * (uint64_t)sample_rate)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "audio: %zu frames at %d Hz is longer than "
                            "%d s", n_frames, (int)sample_rate, MEDIA_MAX_AUDIO_SECONDS);

    const size_t ch = (size_t)n_channels;
    const int resample = sample_rate != MEDIA_AUDIO_RATE;
    media_resampler rs;
    memset(&rs, 0, sizeof rs);
    float *kept = NULL, *fb = NULL;
    pg_status s = PG_OK;
    if (resample && (s = media_resampler_init(&rs, sample_rate, MEDIA_AUDIO_RATE)) != PG_OK)
        return pg_error_prefix(s, "audio");
    const size_t n16 = resample ? media_resampled_length(&rs, n_frames) : n_frames;
    if (n16 < MEDIA_FBANK_WINDOW) {
        s = pg_set_error(PG_ERR_INVALID_ARGUMENT,
                         "audio: %zu samples at 16 kHz (%.2f ms) is shorter than one 25 ms "
                         "fbank frame (%d samples)", n16, 1000.0 * (double)n16 / MEDIA_AUDIO_RATE,
                         MEDIA_FBANK_WINDOW);
        goto done;
    }

    size_t begin[MEDIA_AUDIO_CLIPS], end[MEDIA_AUDIO_CLIPS];
    media_audio_clip_bounds(n16, begin, end);
    runs r;
    runs_make(&r, begin, end);

    /* kept[c·total + i]: channel c's samples of the runs, at 16 kHz */
    kept = malloc(ch * r.total * sizeof(float));
    fb = malloc((size_t)MEDIA_AUDIO_FRAMES * MEDIA_AUDIO_MELS * sizeof(float));
    if (!kept || !fb) {
        s = pg_set_error(PG_ERR_OUT_OF_MEMORY, "audio: out of memory for %zu × %zu samples", ch,
                         r.total);
        goto done;
    }
    for (size_t c = 0; c < ch; c++) {
        for (int i = 0; i < r.n; i++) {
            float *dst = kept + c * r.total + r.at[i];
            const size_t len = r.end[i] - r.begin[i];
            if (resample) {
                media_resampler_run(&rs, pcm + c, n_frames, ch, r.begin[i], len, dst);
            } else {
                for (size_t t = 0; t < len; t++) dst[t] = pcm[(r.begin[i] + t) * ch + c];
            }
        }
    }
    for (size_t i = 0; i < ch * r.total; i++) {
        if (!isfinite(kept[i])) {
            s = pg_set_error(PG_ERR_INVALID_ARGUMENT,
                             "audio: channel %zu holds a non-finite sample near %.3f s", i / r.total,
                             (double)(i % r.total) / MEDIA_AUDIO_RATE);
            goto done;
        }
    }

    for (int k = 0; k < MEDIA_AUDIO_CLIPS; k++) {
        const size_t len = end[k] - begin[k], at = runs_index(&r, begin[k]);
        /* waveform2melspec: `waveform -= waveform.mean()` on a view of the whole waveform, all
         * channels, so later overlapping clips see the shifted samples. */
        double sum = 0.0;
        for (size_t c = 0; c < ch; c++) {
            const float *x = kept + c * r.total + at;
            for (size_t t = 0; t < len; t++) sum += x[t];
        }
        const float mean = (float)(sum / (double)(len * ch));
        for (size_t c = 0; c < ch; c++) {
            float *x = kept + c * r.total + at;
            for (size_t t = 0; t < len; t++) x[t] = x[t] - mean;
        }

        size_t frames = media_fbank_frames(len);
        if (frames > MEDIA_AUDIO_FRAMES) frames = MEDIA_AUDIO_FRAMES; /* crop */
        if ((s = media_kaldi_fbank(kept + at, len, frames, fb)) != PG_OK) {
            pg_error_prefix(s, "audio clip %d", k);
            goto done;
        }
        /* [frames, 128] -> [128, 204], zero-padded on the right, then Normalize(mean, std) in
         * float32: the padding becomes (0 + 4.268)/9.138 = 0.4670606... */
        float *dst = out + (size_t)k * MEDIA_AUDIO_MELS * MEDIA_AUDIO_FRAMES;
        const float pad = (0.0f - NORM_MEAN) / NORM_STD;
        for (int b = 0; b < MEDIA_AUDIO_MELS; b++) {
            float *row = dst + (size_t)b * MEDIA_AUDIO_FRAMES;
            for (size_t f = 0; f < frames; f++)
                row[f] = (fb[f * MEDIA_AUDIO_MELS + (size_t)b] - NORM_MEAN) / NORM_STD;
            for (size_t f = frames; f < MEDIA_AUDIO_FRAMES; f++) row[f] = pad;
        }
    }

done:
    media_resampler_free(&rs);
    free(kept);
    free(fb);
    return s;
}
