/*
 * resample.c — torchaudio.functional.resample (torchaudio 0.13.1 defaults: sinc_interpolation,
 * i.e. a Hann-windowed sinc, lowpass_filter_width 6, rolloff 0.99), spec §5.3 step 2.
 *
 * With g = gcd(from, to), o = from/g and n = to/g, torchaudio builds n polyphase filters over the
 * taps t = −width .. width+o−1 and runs them as one conv1d with stride o over the signal padded
 * with width zeros on the left and width+o on the right; output b·n + j is phase j of block b,
 * and the result is cut to ceil(n·N/o) samples. The kernel is built in the waveform's dtype,
 * float32, one torch op after another; kernel_arg and kernel_tap below repeat those ops in that
 * order, each rounded to float, so the taps equal torchaudio's up to the last bit of sin/cos.
 *
 * One deliberate difference: torchaudio clamps the sinc argument to ±6 and keeps every tap, but
 * a clamped tap is sinc(6π)·cos²(π/2) evaluated in float32, about 1e-23 — so we keep only the
 * taps strictly inside the window. That drops nothing measurable (< 1e-20 per output sample) and
 * bounds a phase to ~12·o/min(o,n) taps, so odd rate pairs such as 44101 -> 16000 (o = 44101)
 * do not need torchaudio's 16000 × 88000-tap kernel.
 *
 * The correlation repeats torch's float32 arithmetic too. The reference (Debian's torch 1.13 on
 * OpenBLAS) behaves as one fused multiply-add chain per output over the taps in order — inferred
 * from the data, not from its source: with fmaf that way 79% of the reference samples of
 * speech_22k and tones_stereo_44k come out bit-identical, against 47% / 32% for a correctly
 * rounded double sum and less for reversed, split or interleaved chains; the rest differ by an
 * ulp (presumably torch's vectorised sin/cos are not glibc's in a few taps), or are torch's ~1e-23
 * from the clamped taps in digital silence, where we give 0. It matters downstream:
 * near-silent mel bins are sensitive to the last bit of the waveform, and with the double sum
 * tones_stereo_44k's fbank was 1.5e-3 off the reference instead of 6e-4.
 */
#include "audio_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "media.h"

#define LOWPASS_WIDTH 6
#define ROLLOFF 0.99

static int32_t gcd32(int32_t a, int32_t b) {
    while (b) {
        int32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* ---- the kernel, float32 op by op as torchaudio's _get_sinc_resample_kernel ---- */

typedef struct kernel_consts {
    float o, n;      /* reduced rates as float */
    float base;      /* float(min(o, n) · 0.99) */
    float scale;     /* float(base / o), base in double as Python has it */
    float pi;        /* float(math.pi) */
} kernel_consts;

/* t = (arange(0,−n,−1)/n + arange(−width, width+o)/o) · base, before the clamp. */
static float kernel_arg(const kernel_consts *k, int32_t j, int64_t tap) {
    float idx = (float)tap / k->o;
    float phase = (float)(-j) / k->n;
    float t = phase + idx;
    return t * k->base;
}

/* window = cos(t·π/6/2)², t *= π, kernel = sin(t)/t (1 at 0), kernel *= window·scale. */
static float kernel_tap(const kernel_consts *k, float t) {
    float a = t * k->pi;
    a = a / (float)LOWPASS_WIDTH;
    a = a / 2.0f;
    float c = cosf(a);
    float window = c * c;
    float x = t * k->pi;
    float s = 1.0f;
    if (x != 0.0f) s = sinf(x) / x;
    float ws = window * k->scale;
    return s * ws;
}

void media_resampler_free(media_resampler *r) {
    if (!r) return;
    free(r->first);
    free(r->count);
    free(r->offset);
    free(r->taps);
    memset(r, 0, sizeof *r);
}

pg_status media_resampler_init(media_resampler *r, int32_t from_rate, int32_t to_rate) {
    if (!r) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "resample: NULL resampler");
    memset(r, 0, sizeof *r);
    if (from_rate < 1 || from_rate > MEDIA_MAX_AUDIO_RATE || to_rate < 1 ||
        to_rate > MEDIA_MAX_AUDIO_RATE)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT,
                            "resample: rates %d -> %d Hz outside [1, %d]", (int)from_rate,
                            (int)to_rate, MEDIA_MAX_AUDIO_RATE);
    const int32_t g = gcd32(from_rate, to_rate);
    const int32_t o = from_rate / g, n = to_rate / g;
    const double base = (double)(o < n ? o : n) * ROLLOFF;
    const int32_t width = (int32_t)ceil((double)LOWPASS_WIDTH * o / base);
    const kernel_consts kc = {(float)o, (float)n, (float)base, (float)(base / o), (float)M_PI};
    r->o = o;
    r->n = n;
    r->width = width;

    r->first = malloc((size_t)n * sizeof *r->first);
    r->count = malloc((size_t)n * sizeof *r->count);
    r->offset = malloc((size_t)n * sizeof *r->offset);
    if (!r->first || !r->count || !r->offset) goto oom;

    /* Pass 1: each phase's taps with |t| < 6 form one run (t rises with the tap), found by
     * scanning a double-precision estimate of the run widened by 2 taps on each side. */
    const double half = (double)LOWPASS_WIDTH * o / base;
    size_t total = 0;
    for (int32_t j = 0; j < n; j++) {
        const double centre = (double)o * j / n;
        int64_t lo = (int64_t)floor(centre - half) - 2, hi = (int64_t)ceil(centre + half) + 2;
        if (lo < -width) lo = -width;
        if (hi > (int64_t)width + o - 1) hi = (int64_t)width + o - 1;
        int64_t a = lo, b = hi;
        while (a <= b && fabsf(kernel_arg(&kc, j, a)) >= (float)LOWPASS_WIDTH) a++;
        while (b >= a && fabsf(kernel_arg(&kc, j, b)) >= (float)LOWPASS_WIDTH) b--;
        r->first[j] = a;
        r->count[j] = (int32_t)(b - a + 1);
        r->offset[j] = total;
        total += (size_t)r->count[j];
    }
    r->taps = malloc((total ? total : 1) * sizeof *r->taps);
    if (!r->taps) goto oom;
    for (int32_t j = 0; j < n; j++) {
        float *dst = r->taps + r->offset[j];
        for (int32_t q = 0; q < r->count[j]; q++)
            dst[q] = kernel_tap(&kc, kernel_arg(&kc, j, r->first[j] + q));
    }
    return PG_OK;

oom:
    media_resampler_free(r);
    return pg_set_error(PG_ERR_OUT_OF_MEMORY, "resample: out of memory for the %d -> %d Hz kernel",
                        (int)from_rate, (int)to_rate);
}

size_t media_resampled_length(const media_resampler *r, size_t n_in) {
    /* ceil(n·n_in / o), without forming n·n_in */
    const size_t o = (size_t)r->o, n = (size_t)r->n;
    return (n_in / o) * n + ((n_in % o) * n + o - 1) / o;
}

void media_resampler_run(const media_resampler *r, const float *in, size_t n_in, size_t stride,
                         size_t first, size_t count, float *out) {
    const size_t n = (size_t)r->n;
    for (size_t i = first; i < first + count; i++) {
        const size_t j = i % n;
        const int64_t start = (int64_t)(i / n) * r->o + r->first[j];
        const float *k = r->taps + r->offset[j];
        int64_t q0 = 0, q1 = r->count[j];
        if (start < 0) q0 = -start;
        if (start + q1 > (int64_t)n_in) q1 = (int64_t)n_in - start;
        float acc = 0.0f;
        for (int64_t q = q0; q < q1; q++) acc = fmaf(k[q], in[(size_t)(start + q) * stride], acc);
        out[i - first] = acc;
    }
}

pg_status media_resample(const float *in, size_t n, int32_t from_rate, int32_t to_rate,
                         float **out, size_t *n_out) {
    if (out) *out = NULL;
    if (n_out) *n_out = 0;
    if (!in || !out || !n_out)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "resample: NULL argument");
    if (n == 0) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "resample: empty signal");
    media_resampler r;
    pg_status s = media_resampler_init(&r, from_rate, to_rate);
    if (s != PG_OK) return s;
    const size_t len = from_rate == to_rate ? n : media_resampled_length(&r, n);
    float *y = len <= SIZE_MAX / sizeof(float) ? malloc(len * sizeof(float)) : NULL;
    if (!y) {
        media_resampler_free(&r);
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "resample: out of memory for %zu samples", len);
    }
    if (from_rate == to_rate) /* torchaudio returns the waveform itself */
        memcpy(y, in, n * sizeof(float));
    else
        media_resampler_run(&r, in, n, 1, 0, len, y);
    media_resampler_free(&r);
    *out = y;
    *n_out = len;
    return PG_OK;
}
