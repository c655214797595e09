/*
 * fbank.c — torchaudio.compliance.kaldi.fbank (torchaudio 0.13.1) with ImageBind's arguments,
 * spec §5.3 step 4.2: 16 kHz, frame_length 25 ms (400 samples), frame_shift 10 ms (160),
 * snip_edges, dither 0, remove_dc_offset, preemphasis 0.97, window "hanning" (symmetric Hann,
 * not Kaldi's default povey), round_to_power_of_two (FFT size 512), power spectrum, 128 mel bins
 * from 20 Hz to Nyquist, log with the float32 epsilon floor; use_energy false, so the raw energy
 * torchaudio computes is never used and is not computed here; htk_compat only moves that energy
 * column, so it has no effect either.
 *
 * Precision: everything up to the windowed frame is float32 op by op as torch does it (frame
 * mean, pre-emphasis, the float32 Hann window), and so is the mel filterbank (torch builds it in
 * the default dtype). The FFT, the power spectrum and the filterbank product are computed in
 * double: torch's float32 FFT adds rounding noise of ~1e-7 of a frame's energy to every bin,
 * which is what makes near-silent mel bins differ by up to ~5e-4 after normalisation (the
 * reference README measured the same between torch fp32 and fp64); it cannot be reproduced, so
 * we take the exact value.
 */
#include "audio_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "media.h"

#define FFT_SIZE 512              /* next power of two above 400 */
#define FFT_LOG2 9
#define N_BINS (FFT_SIZE / 2 + 1) /* 257 */
#define N_MELS MEDIA_AUDIO_MELS   /* 128 */
#define PREEMPH 0.97f
#define LOW_FREQ 20.0
#define SAMPLE_RATE 16000.0
#define LOG_FLOOR 1.1920928955078125e-07 /* float32 epsilon */

typedef struct fbank_tables {
    float window[MEDIA_FBANK_WINDOW];  /* torch.hann_window(400, periodic=False), float32 */
    double cos_tw[FFT_SIZE / 2];       /* FFT twiddles e^{-2πik/512} */
    double sin_tw[FFT_SIZE / 2];
    float bank[N_MELS][N_BINS - 1];    /* mel weights of FFT bins 0..255 (bin 256 has none) */
    int32_t lo[N_MELS], hi[N_MELS];    /* nonzero bins of each filter: [lo, hi) */
} fbank_tables;

size_t media_fbank_frames(size_t n) {
    return n < MEDIA_FBANK_WINDOW ? 0 : 1 + (n - MEDIA_FBANK_WINDOW) / MEDIA_FBANK_SHIFT;
}

/* mel_scale (tensor form, float32): 1127·log(1 + f/700). */
static float mel_f32(float f) {
    float r = f / 700.0f;
    r = 1.0f + r;
    r = logf(r);
    return 1127.0f * r;
}

static void tables_init(fbank_tables *t) {
    /* hamming_window(400, alpha=beta=0.5): arange · float(2π/399), cos, ·(−0.5), +0.5 */
    const float step = (float)(2.0 * M_PI / (double)(MEDIA_FBANK_WINDOW - 1));
    for (int i = 0; i < MEDIA_FBANK_WINDOW; i++) {
        float a = (float)i * step;
        float c = cosf(a) * -0.5f;
        t->window[i] = c + 0.5f;
    }
    for (int k = 0; k < FFT_SIZE / 2; k++) {
        t->cos_tw[k] = cos(2.0 * M_PI * k / FFT_SIZE);
        t->sin_tw[k] = -sin(2.0 * M_PI * k / FFT_SIZE);
    }
    /* get_mel_banks: the scalars in double (Python), the tensors in float32 */
    const double mel_lo = 1127.0 * log(1.0 + LOW_FREQ / 700.0);
    const double mel_hi = 1127.0 * log(1.0 + (SAMPLE_RATE / 2) / 700.0);
    const float delta = (float)((mel_hi - mel_lo) / (N_MELS + 1));
    const float lo_f = (float)mel_lo;
    const float bin_width = (float)(SAMPLE_RATE / FFT_SIZE);
    float mel[N_BINS - 1];
    for (int k = 0; k < N_BINS - 1; k++) mel[k] = mel_f32((float)k * bin_width);
    for (int b = 0; b < N_MELS; b++) {
        const float left = lo_f + (float)b * delta;
        const float centre = lo_f + ((float)b + 1.0f) * delta;
        const float right = lo_f + ((float)b + 2.0f) * delta;
        t->lo[b] = N_BINS - 1;
        t->hi[b] = 0;
        for (int k = 0; k < N_BINS - 1; k++) {
            const float up = (mel[k] - left) / (centre - left);
            const float down = (right - mel[k]) / (right - centre);
            float w = up < down ? up : down;
            if (!(w > 0.0f)) w = 0.0f;
            t->bank[b][k] = w;
            if (w > 0.0f) {
                if (k < t->lo[b]) t->lo[b] = k;
                t->hi[b] = k + 1;
            }
        }
    }
}

/* In-place radix-2 decimation-in-time FFT of 512 complex values (re, im). */
static void fft512(const fbank_tables *t, double *re, double *im) {
    for (unsigned i = 0; i < FFT_SIZE; i++) { /* bit reversal */
        unsigned j = 0;
        for (int b = 0; b < FFT_LOG2; b++) j |= ((i >> b) & 1u) << (FFT_LOG2 - 1 - b);
        if (j > i) {
            double x = re[i]; re[i] = re[j]; re[j] = x;
            x = im[i]; im[i] = im[j]; im[j] = x;
        }
    }
    for (int len = 2; len <= FFT_SIZE; len <<= 1) {
        const int half = len / 2, stride = FFT_SIZE / len;
        for (int s = 0; s < FFT_SIZE; s += len) {
            for (int k = 0; k < half; k++) {
                const double wr = t->cos_tw[k * stride], wi = t->sin_tw[k * stride];
                const int a = s + k, b = a + half;
                const double xr = re[b] * wr - im[b] * wi;
                const double xi = re[b] * wi + im[b] * wr;
                re[b] = re[a] - xr;
                im[b] = im[a] - xi;
                re[a] += xr;
                im[a] += xi;
            }
        }
    }
}

pg_status media_kaldi_fbank(const float *wave, size_t n, size_t n_frames, float *out) {
    if (!wave || !out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "fbank: NULL argument");
    if (n_frames > media_fbank_frames(n))
        return pg_set_error(PG_ERR_INVALID_ARGUMENT,
                            "fbank: %zu frames asked of %zu samples, which hold %zu", n_frames,
                            n, media_fbank_frames(n));
    fbank_tables *t = malloc(sizeof *t);
    if (!t) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "fbank: out of memory for the tables");
    tables_init(t);

    float frame[MEDIA_FBANK_WINDOW];
    double re[FFT_SIZE], im[FFT_SIZE], power[N_BINS];
    for (size_t f = 0; f < n_frames; f++) {
        const float *x = wave + f * MEDIA_FBANK_SHIFT;
        /* remove_dc_offset: torch.mean of the float32 row */
        double sum = 0.0;
        for (int i = 0; i < MEDIA_FBANK_WINDOW; i++) sum += x[i];
        const float mean = (float)(sum / MEDIA_FBANK_WINDOW);
        for (int i = 0; i < MEDIA_FBANK_WINDOW; i++) frame[i] = x[i] - mean;
        /* pre-emphasis against the replicate-padded row: y[0] = x[0] − 0.97·x[0] */
        for (int i = MEDIA_FBANK_WINDOW - 1; i >= 0; i--) {
            const float p = PREEMPH * frame[i > 0 ? i - 1 : 0];
            frame[i] = frame[i] - p;
        }
        for (int i = 0; i < MEDIA_FBANK_WINDOW; i++) {
            re[i] = (double)(frame[i] * t->window[i]);
            im[i] = 0.0;
        }
        for (int i = MEDIA_FBANK_WINDOW; i < FFT_SIZE; i++) re[i] = im[i] = 0.0;
        fft512(t, re, im);
        for (int k = 0; k < N_BINS; k++) power[k] = re[k] * re[k] + im[k] * im[k];
        float *dst = out + f * N_MELS;
        for (int b = 0; b < N_MELS; b++) {
            double e = 0.0;
            for (int k = t->lo[b]; k < t->hi[b]; k++) e += power[k] * t->bank[b][k];
            dst[b] = (float)log(e > LOG_FLOOR ? e : LOG_FLOOR);
        }
    }
    free(t);
    return PG_OK;
}
