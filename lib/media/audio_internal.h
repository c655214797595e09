/*
 * audio_internal.h — the pieces of the audio path (spec §5.3) that audio.c puts together and the
 * tests reach directly: torchaudio's sinc resampler (resample.c), the Kaldi fbank (fbank.c) and
 * the clip arithmetic (audio.c). Not part of the public API.
 */
#ifndef PG_MEDIA_AUDIO_INTERNAL_H
#define PG_MEDIA_AUDIO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "pandagpt.h"

/* ---- resample.c: torchaudio.functional.resample (sinc_interp_hann, width 6, rolloff 0.99) ---- */

/* The polyphase kernel for one rate pair, reduced by their gcd: every o input samples give n
 * output samples, output b·n + j = Σ_t taps_j[t] · x[b·o + t]. Only the taps whose argument lies
 * strictly inside the Hann window are kept (torchaudio's clamped taps are ~1e-23, see resample.c),
 * so a phase holds about 12·o/min(o,n) taps instead of torchaudio's 2·width + o. */
typedef struct media_resampler {
    int32_t o, n;      /* reduced input and output rates (from/g, to/g) */
    int32_t width;     /* torchaudio's zero padding on the left: ceil(6·o / (0.99·min(o,n))) */
    int64_t *first;    /* [n] tap index t of phase j's first kept tap (t may be negative) */
    int32_t *count;    /* [n] kept taps of phase j */
    size_t *offset;    /* [n] where phase j's taps start in taps */
    float *taps;       /* all phases' kept taps, fp32 exactly as torchaudio builds them */
} media_resampler;

/* Builds the kernel for from_rate -> to_rate (both in [1, MEDIA_MAX_AUDIO_RATE]).
 * Errors: PG_ERR_INVALID_ARGUMENT (rate out of range), PG_ERR_OUT_OF_MEMORY. */
pg_status media_resampler_init(media_resampler *r, int32_t from_rate, int32_t to_rate);
void media_resampler_free(media_resampler *r);
/* torchaudio's output length for n_in input samples: ceil(n·n_in / o). */
size_t media_resampled_length(const media_resampler *r, size_t n_in);
/* Output samples [first, first + count) of the resampled signal (first + count must not pass
 * media_resampled_length), reading input sample i at in[i·stride] (stride = channels for one
 * channel of interleaved PCM). Samples outside [0, n_in) are the zero padding. */
void media_resampler_run(const media_resampler *r, const float *in, size_t n_in, size_t stride,
                         size_t first, size_t count, float *out);
/* One channel, whole signal: *out (malloc'd) gets media_resampled_length samples. A plain copy
 * when the rates are equal. Errors: PG_ERR_INVALID_ARGUMENT (NULL pointers, rate out of range,
 * n = 0), PG_ERR_OUT_OF_MEMORY. */
pg_status media_resample(const float *in, size_t n, int32_t from_rate, int32_t to_rate,
                         float **out, size_t *n_out);

/* ---- fbank.c: torchaudio.compliance.kaldi.fbank with ImageBind's arguments ---- */

#define MEDIA_FBANK_WINDOW 400 /* 25 ms at 16 kHz */
#define MEDIA_FBANK_SHIFT 160  /* 10 ms */

/* Frames of a signal of n samples with snip_edges: 1 + (n − 400)/160, or 0 when n < 400. */
size_t media_fbank_frames(size_t n);
/* Log-mel energies of the first n_frames frames (n_frames <= media_fbank_frames(n)) of a 16 kHz
 * signal: out is [n_frames][128], frame-major as torchaudio returns it.
 * Errors: PG_ERR_INVALID_ARGUMENT (NULL pointers, n_frames too large), PG_ERR_OUT_OF_MEMORY. */
pg_status media_kaldi_fbank(const float *wave, size_t n, size_t n_frames, float *out);

/* ---- audio.c: the clip arithmetic of spec §5.3 step 3 ---- */

/* Sample slices [begin[k], end[k]) of the 3 clips of a 16 kHz signal of n16 samples:
 * floor(start_k·16000) with start_k = k·max(n16/16000 − 2, 0)/2 as an exact rational of the
 * double, end = begin + 32000, both clamped to n16 as Python slicing does. */
void media_audio_clip_bounds(size_t n16, size_t begin[3], size_t end[3]);

#endif
