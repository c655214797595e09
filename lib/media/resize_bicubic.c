/*
 * resize_bicubic.c — Pillow's BICUBIC resize of 8-bit images, bit for bit, and the IMAGE and
 * THERMAL preprocessing built on it: short side to 224, centre crop 224, ToTensor and, for
 * IMAGE, CLIP's mean/std (spec §5.1 steps 2–5, §5.4 steps 2–5, §7 item 15).
 *
 * The resize follows Pillow's libImaging/Resample.c, 8-bit path: separable, horizontal pass
 * first, a pass skipped when its axis keeps its size; per output index the cubic (a = -0.5)
 * weights over a support widened by the downscale factor, normalised in double, rounded away
 * from zero to 22-bit fixed point; accumulation in int32 from 1 << 21, >> 22, clamp to [0,255];
 * the intermediate after the horizontal pass is uint8.
 *
 * Each output pixel depends only on its own row's and column's coefficients, so the resize is
 * computed for a window of the output: the whole image for media_resize_bicubic, only the 224 x
 * 224 crop for the preprocessing. The bytes are those of resizing whole and cropping, without a
 * 224 x 3.7M intermediate for a 1 x 16384 strip.
 *
 * Floating point: the weights are plain double arithmetic, which must not be fused into FMAs to
 * round as Pillow's x86-64 build does. GCC in ISO C mode (-std=c11) does not contract, and the
 * baseline x86-64 target has no FMA; a build for an FMA target with a contracting compiler
 * (clang's default) could move a weight across a rounding boundary, which the test would show.
 */
#include "media/media.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"

#define PIL_PRECISION_BITS 22 /* 32 - 8 - 2, Resample.c's PRECISION_BITS for 8-bit images */

/* ---- coefficients */

/* The cubic convolution kernel with a = -0.5, support 2 (Resample.c's bicubic_filter). */
static double bicubic_filter(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* The taps of output indices [o0, o0 + n) of one axis resized from in_size to out_size. */
typedef struct pil_coeffs {
    int32_t ksize;  /* taps reserved per output index: 2 * ceil(support) + 1 */
    int32_t *first; /* (n,) first input index read */
    int32_t *count; /* (n,) input indices read, <= ksize */
    int32_t *k;     /* (n, ksize) weights in 22-bit fixed point */
} pil_coeffs;

static void pil_coeffs_free(pil_coeffs *c) {
    free(c->first);
    free(c->count);
    free(c->k);
    memset(c, 0, sizeof *c);
}

/* Resample.c's precompute_coeffs + normalize_coeffs_8bpc, for a window of output indices. */
static pg_status pil_coeffs_make(int32_t in_size, int64_t out_size, int32_t o0, int32_t n,
                                 pil_coeffs *c) {
    memset(c, 0, sizeof *c);
    const double scale = (double)in_size / (double)out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = 2.0 * filterscale;
    const double ss = 1.0 / filterscale;
    c->ksize = (int32_t)ceil(support) * 2 + 1;
    c->first = malloc(sizeof(int32_t) * (size_t)n);
    c->count = malloc(sizeof(int32_t) * (size_t)n);
    c->k = malloc(sizeof(int32_t) * (size_t)n * (size_t)c->ksize);
    double *w = malloc(sizeof(double) * (size_t)c->ksize);
    if (!c->first || !c->count || !c->k || !w) {
        const int32_t ksize = c->ksize;
        free(w);
        pil_coeffs_free(c);
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "bicubic resize %d -> %lld: cannot allocate "
                            "%d x %d coefficients", in_size, (long long)out_size, n, ksize);
    }
    for (int32_t i = 0; i < n; i++) {
        const double center = ((double)(o0 + i) + 0.5) * scale;
        int32_t xmin = (int32_t)(center - support + 0.5); /* C truncation, as Pillow's (int) */
        if (xmin < 0) xmin = 0;
        int32_t xmax = (int32_t)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        if (xmax > c->ksize) xmax = c->ksize; /* cannot happen: the support bounds the span */
        double ww = 0.0;
        for (int32_t x = 0; x < xmax; x++) {
            const double v = bicubic_filter(((double)(x + xmin) - center + 0.5) * ss);
            w[x] = v;
            ww += v;
        }
        int32_t *k = c->k + (size_t)i * (size_t)c->ksize;
        for (int32_t x = 0; x < c->ksize; x++) {
            double v = x < xmax ? w[x] : 0.0;
            if (x < xmax && ww != 0.0) v /= ww;
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PIL_PRECISION_BITS))
                         : (int32_t)(0.5 + v * (1 << PIL_PRECISION_BITS));
        }
        c->first[i] = xmin;
        c->count[i] = xmax;
    }
    free(w);
    return PG_OK;
}

static inline uint8_t clip8(int32_t acc) {
    if (acc >= (1 << PIL_PRECISION_BITS << 8)) return 255;
    if (acc <= 0) return 0;
    return (uint8_t)(acc >> PIL_PRECISION_BITS);
}

/* ---- the two passes */

/* Resizes in to out_w x out_h but computes only the window of cw x chh output pixels at
 * (x0, y0), written to dst (chh rows of cw pixels, channels interleaved). */
static pg_status pil_bicubic_window(const media_image8 *in, int64_t out_w, int64_t out_h,
                                    int32_t x0, int32_t y0, int32_t cw, int32_t chh,
                                    uint8_t *dst) {
    const int32_t C = in->channels;
    const int need_h = out_w != in->width, need_v = out_h != in->height;
    pil_coeffs hc = {0}, vc = {0};
    uint8_t *tmp = NULL;
    pg_status st = PG_OK;

    /* Source rows the vertical pass reads (Resample.c's ybox_first / ybox_last). */
    int32_t r0 = y0, r1 = y0 + chh;
    if (need_v) {
        if ((st = pil_coeffs_make(in->height, out_h, y0, chh, &vc)) != PG_OK) goto done;
        r0 = vc.first[0];
        r1 = vc.first[chh - 1] + vc.count[chh - 1];
    }

    /* src: rows r0..r1 of the horizontally resized (or untouched) image, window columns. */
    const uint8_t *src;
    size_t stride;
    if (need_h) {
        if ((st = pil_coeffs_make(in->width, out_w, x0, cw, &hc)) != PG_OK) goto done;
        stride = (size_t)cw * (size_t)C;
        tmp = malloc((size_t)(r1 - r0) * stride);
        if (!tmp) {
            st = pg_set_error(PG_ERR_OUT_OF_MEMORY, "bicubic resize: cannot allocate %zu bytes",
                              (size_t)(r1 - r0) * stride);
            goto done;
        }
        for (int32_t r = r0; r < r1; r++) {
            const uint8_t *s = in->pixels + (size_t)r * (size_t)in->width * (size_t)C;
            uint8_t *d = tmp + (size_t)(r - r0) * stride;
            for (int32_t i = 0; i < cw; i++) {
                const int32_t *k = hc.k + (size_t)i * (size_t)hc.ksize;
                const uint8_t *sp = s + (size_t)hc.first[i] * (size_t)C;
                const int32_t n = hc.count[i];
                for (int32_t ch = 0; ch < C; ch++) {
                    int32_t acc = 1 << (PIL_PRECISION_BITS - 1);
                    for (int32_t t = 0; t < n; t++) acc += sp[(size_t)t * (size_t)C + ch] * k[t];
                    d[(size_t)i * (size_t)C + ch] = clip8(acc);
                }
            }
        }
        src = tmp;
    } else {
        stride = (size_t)in->width * (size_t)C;
        src = in->pixels + (size_t)r0 * stride + (size_t)x0 * (size_t)C;
    }

    const size_t row_bytes = (size_t)cw * (size_t)C;
    if (!need_v) {
        for (int32_t y = 0; y < chh; y++)
            memcpy(dst + (size_t)y * row_bytes, src + (size_t)y * stride, row_bytes);
        goto done;
    }
    for (int32_t y = 0; y < chh; y++) {
        const int32_t *k = vc.k + (size_t)y * (size_t)vc.ksize;
        const uint8_t *s = src + (size_t)(vc.first[y] - r0) * stride;
        const int32_t n = vc.count[y];
        uint8_t *d = dst + (size_t)y * row_bytes;
        for (size_t x = 0; x < row_bytes; x++) {
            int32_t acc = 1 << (PIL_PRECISION_BITS - 1);
            for (int32_t t = 0; t < n; t++) acc += s[(size_t)t * stride + x] * k[t];
            d[x] = clip8(acc);
        }
    }
done:
    pil_coeffs_free(&hc);
    pil_coeffs_free(&vc);
    free(tmp);
    return st;
}

/* The shared checks on an input image. */
static pg_status check_image(const char *fn, const media_image8 *img) {
    if (!img || !img->pixels)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: NULL image", fn);
    if (img->channels != 1 && img->channels != 3)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: %d channels (1 or 3 expected)", fn,
                            img->channels);
    if (img->width < 1 || img->height < 1 || img->width > MEDIA_MAX_IMAGE_SIDE ||
        img->height > MEDIA_MAX_IMAGE_SIDE ||
        (int64_t)img->width * img->height > MEDIA_MAX_IMAGE_PIXELS)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: image of %dx%d pixels is empty or over "
                            "the limits (%d per side, %lld pixels)", fn, img->width, img->height,
                            MEDIA_MAX_IMAGE_SIDE, (long long)MEDIA_MAX_IMAGE_PIXELS);
    return PG_OK;
}

/* ---- entry points */

pg_status media_resize_bicubic(const media_image8 *in, int32_t out_w, int32_t out_h,
                               media_image8 *out) {
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "media_resize_bicubic: NULL out");
    memset(out, 0, sizeof *out);
    pg_status st = check_image("media_resize_bicubic", in);
    if (st != PG_OK) return st;
    if (out_w < 1 || out_h < 1 || out_w > MEDIA_MAX_IMAGE_SIDE || out_h > MEDIA_MAX_IMAGE_SIDE ||
        (int64_t)out_w * out_h > MEDIA_MAX_IMAGE_PIXELS)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "media_resize_bicubic: output %dx%d is "
                            "empty or over the limits (%d per side, %lld pixels)", out_w, out_h,
                            MEDIA_MAX_IMAGE_SIDE, (long long)MEDIA_MAX_IMAGE_PIXELS);
    const size_t bytes = (size_t)out_w * (size_t)out_h * (size_t)in->channels;
    uint8_t *px = malloc(bytes);
    if (!px)
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "media_resize_bicubic: cannot allocate %zu "
                            "bytes", bytes);
    if ((st = pil_bicubic_window(in, out_w, out_h, 0, 0, out_w, out_h, px)) != PG_OK) {
        free(px);
        return st;
    }
    out->width = out_w;
    out->height = out_h;
    out->channels = in->channels;
    out->pixels = px;
    return PG_OK;
}

/* torchvision's CenterCrop offset: Python round((size - 224) / 2.0), half to even. */
static int32_t crop_offset(int64_t excess) {
    int64_t q = excess / 2;
    if (excess % 2 != 0 && q % 2 != 0) q++;
    return (int32_t)q;
}

pg_status media_image_preprocess(pg_modality mod, const media_image8 *img, float *out) {
    static const char fn[] = "media_image_preprocess";
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: NULL out", fn);
    if (mod != PG_MODALITY_IMAGE && mod != PG_MODALITY_THERMAL)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: modality %d is neither IMAGE nor "
                            "THERMAL", fn, (int)mod);
    pg_status st = check_image(fn, img);
    if (st != PG_OK) return st;
    const int32_t C = mod == PG_MODALITY_IMAGE ? 3 : 1;
    if (img->channels != C)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: %s needs a %d-channel image, got %d",
                            fn, mod == PG_MODALITY_IMAGE ? "IMAGE (RGB)" : "THERMAL (L)", C,
                            img->channels);

    /* torchvision Resize(224): the short side becomes 224, the long one int(224 * long / short)
     * with Python's true division (exact integers, one rounding) and truncation. */
    const int64_t w = img->width, h = img->height, S = MEDIA_IMAGE_SIZE;
    int64_t out_w, out_h;
    if (w <= h) {
        out_w = S;
        out_h = (int64_t)((double)(S * h) / (double)w);
    } else {
        out_w = (int64_t)((double)(S * w) / (double)h);
        out_h = S;
    }
    const int32_t left = crop_offset(out_w - S), top = crop_offset(out_h - S);

    uint8_t *crop = malloc((size_t)(S * S * C));
    if (!crop) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: cannot allocate the crop", fn);
    st = pil_bicubic_window(img, out_w, out_h, left, top, (int32_t)S, (int32_t)S, crop);
    if (st != PG_OK) {
        free(crop);
        return st;
    }

    /* ToTensor (v / 255 in float32) and, for IMAGE, Normalize as torchvision computes it:
     * (x - mean) / std with float32 tensors made from Python's doubles — hence the casts from
     * double literals, and a true division rather than a multiply by 1/std. */
    static const float clip_mean[3] = {(float)0.48145466, (float)0.4578275, (float)0.40821073};
    static const float clip_std[3] = {(float)0.26862954, (float)0.26130258, (float)0.27577711};
    const size_t plane = (size_t)(S * S);
    for (int32_t c = 0; c < C; c++) {
        float *o = out + (size_t)c * plane;
        for (size_t i = 0; i < plane; i++) {
            const float x = (float)crop[i * (size_t)C + (size_t)c] / 255.0f;
            o[i] = mod == PG_MODALITY_IMAGE ? (x - clip_mean[c]) / clip_std[c] : x;
        }
    }
    free(crop);
    return PG_OK;
}
