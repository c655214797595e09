/*
 * depth.c — depth maps from PNG files (our convention; neither ImageBind nor PandaGPT ships a
 * depth loader, spec §5.5).
 *
 * A depth file is a single-channel PNG, 8 or 16 bits per sample, holding disparity (larger =
 * nearer), as ImageBind's depth encoder was trained on. The value v becomes v / (2^bits − 1),
 * so the encoder sees [0, 1]; the map is resized so its short side is 224 (bilinear, no
 * antialias, like the video path) and centre-cropped to 224×224 (round half to even, like the
 * image path). Callers with metric depth convert it to disparity themselves and pass the
 * [1,224,224] tensor to pg_media_from_tensor. docs/media.md states the same.
 */
#include "media/media.h"

#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"

#ifdef PG_HAVE_PNG
#include <png.h>

typedef struct png_src {
    const uint8_t *data;
    size_t size, pos;
    char msg[160];
} png_src;

static void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
    png_src *src = png_get_io_ptr(png);
    if (n > src->size - src->pos) png_error(png, "file ends early");
    memcpy(out, src->data + src->pos, n);
    src->pos += n;
}

static void png_fail(png_structp png, png_const_charp msg) {
    png_src *src = png_get_error_ptr(png);
    snprintf(src->msg, sizeof src->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_quiet(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

/* Decodes a grey PNG to floats in [0, 1]; *out is malloc'd w*h. */
static pg_status decode_depth_png(const void *data, size_t size, const char *what, float **out,
                                  int32_t *w_out, int32_t *h_out) {
    png_src src = {data, size, 0, ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_fail, png_quiet);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: cannot start libpng", what);
    }
    uint16_t *volatile pix = NULL;
    float *volatile f = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(pix);
        free(f);
        png_destroy_read_struct(&png, &info, NULL);
        return pg_set_error(PG_ERR_FORMAT, "%s: not a readable PNG depth map (%s)", what, src.msg);
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), color = png_get_color_type(png, info);
    if (w == 0 || h == 0 || w > MEDIA_MAX_IMAGE_SIDE || h > MEDIA_MAX_IMAGE_SIDE ||
        (int64_t)w * h > MEDIA_MAX_IMAGE_PIXELS) {
        png_destroy_read_struct(&png, &info, NULL);
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: %ux%u pixels is outside the limits "
                            "(%d per side, %lld in all)", what, w, h, MEDIA_MAX_IMAGE_SIDE,
                            (long long)MEDIA_MAX_IMAGE_PIXELS);
    }
    if (color != PNG_COLOR_TYPE_GRAY && color != PNG_COLOR_TYPE_GRAY_ALPHA) {
        png_destroy_read_struct(&png, &info, NULL);
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: a depth map is a single-channel "
                            "(grey) PNG; this one has colour type %d", what, color);
    }
    if (depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    if (depth == 16) png_set_swap(png); /* little-endian uint16 rows */
    png_read_update_info(png, info);
    int bytes = depth == 16 ? 2 : 1;
    pix = malloc((size_t)w * h * sizeof(uint16_t));
    f = malloc((size_t)w * h * sizeof(float));
    png_bytep *rows = malloc(h * sizeof *rows);
    if (!pix || !f || !rows) {
        free(rows);
        png_error(png, "out of memory");
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = (png_bytep)pix + (size_t)y * w * bytes;
    png_read_image(png, rows);
    free(rows);
    /* 1/2/4-bit grey was scaled to 8 bits by libpng (v·255/(2^d−1)): v/255 is the same [0,1] */
    double maxv = depth == 16 ? 65535.0 : 255.0;
    for (size_t i = 0; i < (size_t)w * h; i++)
        f[i] = (float)((bytes == 2 ? pix[i] : ((const uint8_t *)pix)[i]) / maxv);
    free(pix);
    png_destroy_read_struct(&png, &info, NULL);
    *out = f;
    *w_out = (int32_t)w;
    *h_out = (int32_t)h;
    return PG_OK;
}
#endif

/* Bilinear, align_corners = False, no antialias (torch's upsample_bilinear2d on the CPU). */
static void resize_bilinear(const float *in, int32_t iw, int32_t ih, float *out, int32_t ow,
                            int32_t oh) {
    float sx = (float)iw / (float)ow, sy = (float)ih / (float)oh;
    for (int32_t y = 0; y < oh; y++) {
        double fy = (double)sy * (y + 0.5) - 0.5;
        if (fy < 0) fy = 0;
        int32_t y0 = (int32_t)fy, y1 = y0 + (y0 < ih - 1);
        float ly1 = (float)(fy - y0), ly0 = 1.0f - ly1;
        for (int32_t x = 0; x < ow; x++) {
            double fx = (double)sx * (x + 0.5) - 0.5;
            if (fx < 0) fx = 0;
            int32_t x0 = (int32_t)fx, x1 = x0 + (x0 < iw - 1);
            float lx1 = (float)(fx - x0), lx0 = 1.0f - lx1;
            const float *r0 = in + (size_t)y0 * iw, *r1 = in + (size_t)y1 * iw;
            out[(size_t)y * ow + x] = ly0 * (lx0 * r0[x0] + lx1 * r0[x1]) +
                                      ly1 * (lx0 * r1[x0] + lx1 * r1[x1]);
        }
    }
}

/* Python's round() of a non-negative half-integer or integer: half to even. */
static int32_t round_half_even(double v) {
    double r = floor(v + 0.5);
    if (r - v == 0.5 && fmod(r, 2.0) != 0.0) r -= 1.0;
    return (int32_t)r;
}

pg_status media_depth_preprocess(const float *map, int32_t w, int32_t h, float *out) {
    const int32_t S = MEDIA_IMAGE_SIZE;
    int32_t ow, oh;
    if (w <= h) {
        ow = S;
        oh = (int32_t)((double)S * h / w);
    } else {
        oh = S;
        ow = (int32_t)((double)S * w / h);
    }
    float *tmp = malloc((size_t)ow * oh * sizeof *tmp);
    if (!tmp) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "depth: %dx%d resize", ow, oh);
    resize_bilinear(map, w, h, tmp, ow, oh);
    int32_t top = round_half_even((oh - S) / 2.0), left = round_half_even((ow - S) / 2.0);
    for (int32_t y = 0; y < S; y++)
        memcpy(out + (size_t)y * S, tmp + (size_t)(y + top) * ow + left, S * sizeof(float));
    free(tmp);
    return PG_OK;
}

pg_status media_depth_load(const void *data, size_t size, const char *what, float *out) {
#ifdef PG_HAVE_PNG
    float *map;
    int32_t w, h;
    pg_status s = decode_depth_png(data, size, what, &map, &w, &h);
    if (s != PG_OK) return s;
    s = media_depth_preprocess(map, w, h, out);
    free(map);
    return s;
#else
    (void)data; (void)size; (void)out;
    return pg_set_error(PG_ERR_UNSUPPORTED, "%s: depth PNGs need libpng, which this build of "
                        "libpandagpt lacks (pass the map with pg_media_from_tensor)", what);
#endif
}
