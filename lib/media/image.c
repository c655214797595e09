/*
 * image.c — JPEG and PNG bytes to an 8-bit RGB or "L" image, exactly as Pillow's
 * Image.open(...).convert("RGB") / .convert("L") gives them (spec §5.1 step 1, §5.4 step 1).
 *
 * JPEG goes through libjpeg-turbo's TurboJPEG API with the library's defaults (ISLOW DCT, fancy
 * upsampling), which is how Pillow drives libjpeg(-turbo). PNG goes through libpng's classic API
 * with only the transforms that reproduce Pillow's unpacking. What Pillow does and we follow:
 *   - no EXIF orientation, no gamma or ICC handling;
 *   - alpha is dropped, never composited; tRNS is ignored;
 *   - palette and grey (1/2/4/8-bit, scaled by 255/85/17/1) are expanded;
 *   - 16-bit RGB, RGBA and grey+alpha keep the high byte (Pillow's "RGB;16B"/"LA;16B" unpackers);
 *     16-bit grey is Pillow mode "I", whose conversion to RGB or L clips to 255;
 *   - "L" from a colour image is (19595 R + 38470 G + 7471 B + 0x8000) >> 16; from a grey image
 *     it is the grey value itself (the same number the formula gives for R = G = B);
 *   - libjpeg warnings (recoverable corrupt data) are decoded through, as Pillow ignores them,
 *     except a file that ends before its EOI marker, which Pillow reports as truncated;
 *   - a PNG needs its image data whole, not its trailing chunks or IEND.
 * Where we do not follow Pillow: CMYK and YCCK JPEGs are refused (PG_ERR_UNSUPPORTED) rather
 * than converted with Pillow's version-dependent CMYK->RGB formula; progressive JPEGs of more
 * than 500 scans are refused (TurboJPEG's guard against CPU-time bombs); libpng skips an
 * ancillary chunk with a bad CRC where Pillow refuses the file.
 *
 * Neither library prints: TurboJPEG keeps its messages in its error string, libpng gets a
 * silent warning handler and an error handler that longjmps back here with the text.
 */
#include "media/media.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"

#ifdef PG_HAVE_JPEG
#include <turbojpeg.h>
#endif
#ifdef PG_HAVE_PNG
#include <png.h>
#endif

/* ---- shared helpers */

#if defined(PG_HAVE_JPEG) || defined(PG_HAVE_PNG)

/* Checks header dimensions against the limits before anything is allocated for the pixels. */
static pg_status check_dims(const char *what, const char *fmt, int64_t w, int64_t h) {
    if (w < 1 || h < 1)
        return pg_set_error(PG_ERR_FORMAT, "%s: %s header gives an empty image (%lldx%lld)", what,
                            fmt, (long long)w, (long long)h);
    if (w > MEDIA_MAX_IMAGE_SIDE || h > MEDIA_MAX_IMAGE_SIDE || w * h > MEDIA_MAX_IMAGE_PIXELS)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT,
                            "%s: %s image of %lldx%lld pixels is over the limits (%d per side, "
                            "%lld pixels)", what, fmt, (long long)w, (long long)h,
                            MEDIA_MAX_IMAGE_SIDE, (long long)MEDIA_MAX_IMAGE_PIXELS);
    return PG_OK;
}

/* Pillow's rgb2l, in place: pixel i's L is written at i, after pixels 3i.. have been read. */
static void rgb_to_l(uint8_t *px, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const uint32_t r = px[3 * i], g = px[3 * i + 1], b = px[3 * i + 2];
        px[i] = (uint8_t)((19595u * r + 38470u * g + 7471u * b + 0x8000u) >> 16);
    }
}

/* Finishes an RGB buffer as the caller asked: RGB as is, or L (shrunk in place). */
static void finish_rgb(media_image8 *out, uint8_t *px, int32_t w, int32_t h, int gray) {
    out->width = w;
    out->height = h;
    out->channels = gray ? 1 : 3;
    if (gray) {
        rgb_to_l(px, (size_t)w * (size_t)h);
        uint8_t *shrunk = realloc(px, (size_t)w * (size_t)h);
        if (shrunk) px = shrunk; /* keeping the larger block is harmless */
    }
    out->pixels = px;
}
#endif

/* ---- JPEG (TurboJPEG 2.x API) */

#ifdef PG_HAVE_JPEG
/* Whether the EOI marker follows the image's first SOS. Without it libjpeg reads to the end,
 * warns and pads the rest, where Pillow reports "image file is truncated". The walk skips the
 * marker segments before the SOS (an EXIF thumbnail's EOI sits inside APP1) and, as libjpeg
 * does, stray bytes between them; after the SOS an FF D9 can only be EOI, since entropy-coded
 * data stuffs every FF with 00. */
static int jpeg_has_eoi(const uint8_t *p, size_t n) {
    size_t i = 2;
    while (i + 1 < n) {
        if (p[i] != 0xFF || p[i + 1] == 0xFF) { /* stray byte or fill byte */
            i++;
            continue;
        }
        const uint8_t m = p[i + 1];
        if (m == 0xDA) break;
        if (m == 0xD9) return 1;
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { /* markers without a length */
            i += 2;
            continue;
        }
        if (i + 3 >= n) return 0;
        i += 2 + ((size_t)p[i + 2] << 8 | p[i + 3]);
    }
    for (; i + 1 < n; i++)
        if (p[i] == 0xFF && p[i + 1] == 0xD9) return 1;
    return 0;
}

static pg_status decode_jpeg(const uint8_t *data, size_t size, const char *what, int gray,
                             media_image8 *out) {
    tjhandle tj = tjInitDecompress();
    if (!tj) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: JPEG: %s", what, tjGetErrorStr());

    pg_status st = PG_OK;
    uint8_t *px = NULL;
    int w = 0, h = 0, subsamp = -1, cs = -1;
    /* The header call fails (with a warning, or on a subsampling TurboJPEG cannot name) in
     * cases tjDecompress2 still handles, so only missing dimensions or colour space stop us. */
    (void)tjDecompressHeader3(tj, data, (unsigned long)size, &w, &h, &subsamp, &cs);
    if (w < 1 || h < 1) {
        st = pg_set_error(PG_ERR_FORMAT, "%s: JPEG: %s", what, tjGetErrorStr2(tj));
        goto done;
    }
    if (cs == TJCS_CMYK || cs == TJCS_YCCK) {
        st = pg_set_error(PG_ERR_UNSUPPORTED, "%s: CMYK/YCCK JPEG is not supported (convert it "
                          "to RGB first)", what);
        goto done;
    }
    if (cs != TJCS_GRAY && cs != TJCS_RGB && cs != TJCS_YCbCr) {
        st = pg_set_error(PG_ERR_UNSUPPORTED, "%s: JPEG with an unknown colour space", what);
        goto done;
    }
    if ((st = check_dims(what, "JPEG", w, h)) != PG_OK) goto done;

    /* A grey JPEG asked for as L is decoded straight to grey (Pillow keeps it "L"); anything
     * else is decoded to RGB (libjpeg replicates grey, as Pillow's L->RGB does). */
    const int direct_gray = gray && cs == TJCS_GRAY;
    const int pf = direct_gray ? TJPF_GRAY : TJPF_RGB;
    const int nch = direct_gray ? 1 : 3;
    px = malloc((size_t)w * (size_t)h * (size_t)nch);
    if (!px) {
        st = pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: %dx%d JPEG: cannot allocate %zu bytes", what,
                          w, h, (size_t)w * (size_t)h * (size_t)nch);
        goto done;
    }
    /* Flags: ISLOW DCT and fancy upsampling are the defaults (no FASTDCT/FASTUPSAMPLE);
     * LIMITSCANS refuses progressive files of more than 500 scans, a CPU-time bomb, and changes
     * no pixel. The first pass stops at the first warning (most files have none): then a file
     * without its EOI is truncated, and any other is decoded again through its warnings.
     * TurboJPEG's error code says "warning" even when a fatal error followed one, so the
     * second pass is judged by the text, which libjpeg formats for the first warning and for a
     * fatal error only. */
    const int flags = TJFLAG_LIMITSCANS;
    if (tjDecompress2(tj, data, (unsigned long)size, px, w, w * nch, h, pf,
                      flags | TJFLAG_STOPONWARNING) != 0) {
        char first[256]; /* libjpeg's messages are at most 200 bytes (JMSG_LENGTH_MAX) */
        snprintf(first, sizeof first, "%s", tjGetErrorStr2(tj));
        if (tjGetErrorCode(tj) != TJERR_WARNING) {
            st = pg_set_error(PG_ERR_FORMAT, "%s: JPEG: %s", what, first);
            goto done;
        }
        if (!jpeg_has_eoi(data, size)) {
            st = pg_set_error(PG_ERR_FORMAT, "%s: JPEG is truncated: no EOI marker after the "
                              "image data (%s)", what, first);
            goto done;
        }
        /* Recoverable corrupt data: decode through the warnings, as Pillow does. */
        if (tjDecompress2(tj, data, (unsigned long)size, px, w, w * nch, h, pf, flags) != 0 &&
            (tjGetErrorCode(tj) != TJERR_WARNING || strcmp(tjGetErrorStr2(tj), first) != 0)) {
            st = pg_set_error(PG_ERR_FORMAT, "%s: JPEG: %s", what, tjGetErrorStr2(tj));
            goto done;
        }
    }
    if (direct_gray) {
        out->width = w;
        out->height = h;
        out->channels = 1;
        out->pixels = px;
    } else {
        finish_rgb(out, px, w, h, gray);
    }
    px = NULL;
done:
    free(px);
    tjDestroy(tj);
    return st;
}
#endif

/* ---- PNG (libpng classic API) */

#ifdef PG_HAVE_PNG
typedef struct png_source {
    const uint8_t *data;
    size_t size, pos;
    char msg[256]; /* libpng's error text */
} png_source;

static void png_read_memory(png_structp png, png_bytep dst, size_t n) {
    png_source *src = png_get_io_ptr(png);
    if (n > src->size - src->pos) png_error(png, "unexpected end of data (truncated file)");
    memcpy(dst, src->data + src->pos, n);
    src->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    png_source *src = png_get_error_ptr(png);
    snprintf(src->msg, sizeof src->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* Pillow ignores what libpng would warn about (bad ancillary CRCs and the like) */
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t png_crc(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static pg_status decode_png(const uint8_t *data, size_t size, const char *what, int gray,
                            media_image8 *out) {
    /* The IHDR comes first: an intact one's size is checked before libpng reads on
     * (png_read_info reads every chunk up to the first IDAT). A damaged one is left to libpng,
     * which reports it as malformed. */
    pg_status st0;
    if (size >= 33 && be32(data + 8) == 13 && memcmp(data + 12, "IHDR", 4) == 0 &&
        png_crc(data + 12, 17) == be32(data + 29) &&
        (st0 = check_dims(what, "PNG", be32(data + 16), be32(data + 20))) != PG_OK)
        return st0;
    png_source src = {data, size, 0, ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error,
                                             png_on_warning);
    if (!png) return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: PNG: cannot create the decoder", what);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: PNG: cannot create the decoder", what);
    }
    /* Written between setjmp and a possible longjmp: volatile, so the error path sees them. */
    uint8_t *volatile px = NULL;
    uint8_t *volatile wide = NULL;    /* 16-bit grey rows, before clipping */
    png_bytep *volatile rows = NULL;
    volatile pg_status st = PG_OK;

    if (setjmp(png_jmpbuf(png))) {
        st = pg_set_error(PG_ERR_FORMAT, "%s: PNG: %s", what, src.msg);
        goto done;
    }
    png_set_read_fn(png, &src, png_read_memory);
    png_read_info(png, info);
    png_uint_32 w32, h32;
    int depth, ctype;
    png_get_IHDR(png, info, &w32, &h32, &depth, &ctype, NULL, NULL, NULL);
    if ((st = check_dims(what, "PNG", w32, h32)) != PG_OK) goto done;
    const int32_t w = (int32_t)w32, h = (int32_t)h32;

    /* Pillow opens 16-bit grey as mode "I" and clips it to 255 when converting; we read the
     * 16-bit samples and clip the same way. Everything else becomes 8-bit RGB or grey. */
    const int grey_source = !(ctype & PNG_COLOR_MASK_COLOR) && ctype != PNG_COLOR_TYPE_PALETTE;
    const int grey16 = ctype == PNG_COLOR_TYPE_GRAY && depth == 16; /* not grey+alpha: "LA;16B" */
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (grey_source && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16 && !grey16) png_set_strip_16(png); /* the high byte, as Pillow's ;16B */
    if (ctype & PNG_COLOR_MASK_ALPHA || png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_strip_alpha(png); /* palette tRNS is expanded to alpha by palette_to_rgb */
    if (grey_source && !gray) png_set_gray_to_rgb(png);
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);

    /* Grey stays one channel when L is asked for; a colour source is read as RGB (and turned
     * into L afterwards). */
    const int nch = grey_source && gray ? 1 : 3;
    const size_t want_rowbytes = (size_t)w * (size_t)nch * (grey16 ? 2 : 1);
    if (png_get_channels(png, info) != nch || png_get_rowbytes(png, info) != want_rowbytes) {
        st = pg_set_error(PG_ERR_INTERNAL, "%s: PNG: libpng gives %d channels, %zu bytes a row; "
                          "expected %d, %zu", what, png_get_channels(png, info),
                          (size_t)png_get_rowbytes(png, info), nch, want_rowbytes);
        goto done;
    }
    const size_t n_px = (size_t)w * (size_t)h;
    px = malloc(n_px * (size_t)nch);
    if (grey16) wide = malloc(n_px * (size_t)nch * 2);
    rows = malloc(sizeof(png_bytep) * (size_t)h);
    if (!px || !rows || (grey16 && !wide)) {
        st = pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: %dx%d PNG: cannot allocate %zu bytes", what,
                          w, h, n_px * (size_t)nch * (grey16 ? 3 : 1));
        goto done;
    }
    uint8_t *base = grey16 ? wide : px;
    for (int32_t y = 0; y < h; y++) rows[y] = base + (size_t)y * want_rowbytes;
    png_read_image(png, rows);
    /* The trailing chunks (up to IEND) are not read: the image is complete here. */

    if (grey16) {
        for (size_t i = 0; i < n_px * (size_t)nch; i++) /* big-endian samples, clipped */
            px[i] = wide[2 * i] ? 255 : wide[2 * i + 1];
    }
    if (nch == 3) {
        finish_rgb(out, px, w, h, gray);
    } else {
        out->width = w;
        out->height = h;
        out->channels = 1;
        out->pixels = px;
    }
    px = NULL;
done:
    png_destroy_read_struct(&png, &info, NULL);
    free(px);
    free(wide);
    free(rows);
    return st;
}
#endif

/* ---- entry points */

static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

pg_status media_image_decode(const void *data, size_t size, const char *what, int gray,
                             media_image8 *out) {
    if (!what) what = "memory";
    if (!out)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: media_image_decode: NULL out", what);
    memset(out, 0, sizeof *out);
    if (!data && size > 0)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: NULL data with %zu bytes", what, size);
    if (size == 0) return pg_set_error(PG_ERR_FORMAT, "%s: empty input (0 bytes)", what);
    if (size > MEDIA_MAX_FILE_BYTES)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: %zu bytes is over the %zu-byte limit",
                            what, size, MEDIA_MAX_FILE_BYTES);
    const uint8_t *p = data;
    (void)gray; /* unused in a build with neither decoder */

    if (size >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) {
#ifdef PG_HAVE_JPEG
        return decode_jpeg(p, size, what, gray, out);
#else
        return pg_set_error(PG_ERR_UNSUPPORTED, "%s: JPEG, but this build has no libjpeg-turbo "
                            "(TurboJPEG)", what);
#endif
    }
    if (size >= sizeof png_magic && memcmp(p, png_magic, sizeof png_magic) == 0) {
#ifdef PG_HAVE_PNG
        return decode_png(p, size, what, gray, out);
#else
        return pg_set_error(PG_ERR_UNSUPPORTED, "%s: PNG, but this build has no libpng", what);
#endif
    }
    return pg_set_error(PG_ERR_FORMAT, "%s: not a JPEG or PNG (%zu bytes, starting %02x %02x %02x)",
                        what, size, p[0], size > 1 ? p[1] : 0, size > 2 ? p[2] : 0);
}

void media_image8_free(media_image8 *img) {
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}
