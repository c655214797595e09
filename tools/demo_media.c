/*
 * demo_media.c — the demo's picture (a PNG) and sound (a WAV), made without any library: see
 * demo_media.h for what they show and which parts of the formats are used.
 */
#include "demo_media.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"

#define PNG_MAX_SIDE 16384
#define DEFLATE_STORED_MAX 65535 /* bytes of one stored block (RFC 1951 §3.2.4: LEN is 16 bits) */

// ---------------------------------------------------------------------------------------------
// The picture

static uint8_t clamp_u8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

/* a + (b - a)·w/256, per channel */
static void blend(uint8_t *px, const int *to, int w) {
    for (int c = 0; c < 3; c++) px[c] = clamp_u8(px[c] + ((to[c] - px[c]) * w) / 256);
}

void demo_image_draw(uint8_t *rgb) {
    const int W = DEMO_IMAGE_WIDTH, H = DEMO_IMAGE_HEIGHT;
    const int sun_x = 118, sun_y = 32, sun_r = 13, halo_r = 22;
    const int sun[3] = {255, 226, 92}, halo[3] = {255, 244, 200};
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            uint8_t *px = rgb + 3 * ((size_t)y * W + x);
            /* sky: deep blue at the top to a pale haze at the bottom */
            px[0] = clamp_u8(30 + 140 * y / (H - 1));
            px[1] = clamp_u8(90 + 120 * y / (H - 1));
            px[2] = clamp_u8(200 + 50 * y / (H - 1));
            /* sun: a disc in a halo that fades out linearly in squared distance */
            int d2 = (x - sun_x) * (x - sun_x) + (y - sun_y) * (y - sun_y);
            if (d2 <= sun_r * sun_r)
                memcpy(px, (uint8_t[3]){sun[0], sun[1], sun[2]}, 3);
            else if (d2 <= halo_r * halo_r)
                blend(px, halo, 200 * (halo_r * halo_r - d2) / (halo_r * halo_r - sun_r * sun_r));
            /* two hills, parabolas: a far, bluish one on the right, a near one on the left */
            int far_top = 78 + (x - 110) * (x - 110) / 120;
            int near_top = 88 + (x - 45) * (x - 45) / 90;
            int grain = (x * 7 + y * 13) % 5 - 2; /* a little texture in the grass */
            if (y >= near_top) {
                int depth = y - near_top;
                px[0] = clamp_u8(52 + grain);
                px[1] = clamp_u8(172 - depth + 2 * grain);
                px[2] = clamp_u8(44 + grain);
            } else if (y >= far_top) {
                int depth = y - far_top;
                px[0] = clamp_u8(84 + grain);
                px[1] = clamp_u8(150 - depth / 2 + grain);
                px[2] = clamp_u8(96 + grain);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The sound

void demo_audio_synth(int16_t *pcm) {
    const double two_pi = 6.283185307179586476925286766559;
    const double dur = 0.16;  /* seconds per chirp */
    for (int i = 0; i < DEMO_AUDIO_FRAMES; i++) {
        const double t = (double)i / DEMO_AUDIO_RATE;
        /* a faint 110 Hz hum under everything, faded in and out over 0.25 s */
        double fade = t < 0.25 ? t / 0.25 : t > 2.75 ? (3.0 - t) / 0.25 : 1.0;
        double v = 0.03 * fade * sin(two_pi * 110.0 * t);
        /* six chirps, each sweeping up 1800 Hz from 2200, 2350 or 2500 Hz */
        for (int k = 0; k < 6; k++) {
            const double tau = t - (0.25 + 0.42 * k);
            if (tau < 0.0 || tau >= dur) continue;
            const double f0 = 2200.0 + 150.0 * (k % 3), f1 = f0 + 1800.0;
            const double phase = two_pi * (f0 * tau + (f1 - f0) * tau * tau / (2.0 * dur));
            const double env = sin(0.5 * two_pi * tau / dur);
            v += 0.45 * env * env * (sin(phase) + 0.2 * sin(2.0 * phase));
        }
        double s = floor(v * 32767.0 + 0.5);
        pcm[i] = (int16_t)(s > 32767.0 ? 32767 : s < -32768.0 ? -32768 : s);
    }
}

// ---------------------------------------------------------------------------------------------
// PNG: chunks with CRC-32, a zlib stream of stored blocks with Adler-32

/* Bit by bit: the picture is 58 KB, so a table would save nothing worth its state. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = crc & 1 ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
    }
    return ~crc;
}

static uint32_t adler32(const uint8_t *p, size_t n) {
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < n; i++) {
        a = (a + p[i]) % 65521u;
        b = (b + a) % 65521u;
    }
    return b << 16 | a;
}

static uint8_t *put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

/* A chunk whose len data bytes are already at p + 8: writes length, type and CRC around them. */
static uint8_t *put_chunk(uint8_t *p, const char type[4], uint32_t len) {
    put_be32(p, len);
    memcpy(p + 4, type, 4);
    return put_be32(p + 8 + len, crc32_update(0, p + 4, 4 + (size_t)len));
}

pg_status demo_png_encode(const uint8_t *rgb, int32_t w, int32_t h, uint8_t **out,
                          size_t *size) {
    if (!rgb || !out || !size)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "demo_png_encode: NULL argument");
    if (w < 1 || h < 1 || w > PNG_MAX_SIDE || h > PNG_MAX_SIDE)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "demo_png_encode: %dx%d is outside "
                            "1..%d per side", w, h, PNG_MAX_SIDE);
    const size_t row = 1 + 3 * (size_t)w; /* filter byte, then the pixels */
    const size_t raw = row * (size_t)h;
    const size_t n_blocks = (raw + DEFLATE_STORED_MAX - 1) / DEFLATE_STORED_MAX;
    const size_t zlen = 2 + raw + 5 * n_blocks + 4; /* header, blocks, Adler-32 */
    const size_t total = 8 + (12 + 13) + (12 + zlen) + 12;
    uint8_t *png = malloc(total);
    uint8_t *filtered = malloc(raw);
    if (!png || !filtered) {
        free(png);
        free(filtered);
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "demo_png_encode: %zu bytes", total + raw);
    }
    for (int32_t y = 0; y < h; y++) {
        filtered[(size_t)y * row] = 0; /* filter type None */
        memcpy(filtered + (size_t)y * row + 1, rgb + (size_t)y * 3 * (size_t)w, row - 1);
    }

    uint8_t *p = png;
    memcpy(p, "\x89PNG\r\n\x1a\n", 8);
    p += 8;
    uint8_t *d = p + 8; /* IHDR */
    d = put_be32(d, (uint32_t)w);
    d = put_be32(d, (uint32_t)h);
    memcpy(d, (const uint8_t[5]){8, 2, 0, 0, 0}, 5); /* 8 bits, truecolour, deflate, none, none */
    p = put_chunk(p, "IHDR", 13);

    d = p + 8; /* IDAT: the whole zlib stream */
    *d++ = 0x78; /* CM 8 (deflate), CINFO 7 (32K window) */
    *d++ = 0x01; /* FLEVEL 0, no dictionary; (0x78·256 + 0x01) % 31 == 0 */
    for (size_t off = 0; off < raw; off += DEFLATE_STORED_MAX) {
        const size_t n = raw - off < DEFLATE_STORED_MAX ? raw - off : DEFLATE_STORED_MAX;
        *d++ = off + n == raw; /* BFINAL on the last block, BTYPE 00 (stored) */
        d[0] = (uint8_t)n, d[1] = (uint8_t)(n >> 8);
        d[2] = (uint8_t)~n, d[3] = (uint8_t)(~n >> 8);
        memcpy(d + 4, filtered + off, n);
        d += 4 + n;
    }
    put_be32(d, adler32(filtered, raw));
    p = put_chunk(p, "IDAT", (uint32_t)zlen);
    p = put_chunk(p, "IEND", 0);
    free(filtered);
    *out = png;
    *size = (size_t)(p - png);
    return PG_OK;
}

// ---------------------------------------------------------------------------------------------
// Files

static pg_status write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return pg_set_error(PG_ERR_IO, "%s: cannot create (%s)", path, strerror(errno));
    int ok = fwrite(data, 1, size, f) == size;
    if (fclose(f) != 0) ok = 0;
    return ok ? PG_OK : pg_set_error(PG_ERR_IO, "%s: write error", path);
}

pg_status demo_png_write(const char *path, const uint8_t *rgb, int32_t w, int32_t h) {
    if (!path) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "demo_png_write: path is NULL");
    uint8_t *png;
    size_t size;
    pg_status s = demo_png_encode(rgb, w, h, &png, &size);
    if (s != PG_OK) return s;
    s = write_file(path, png, size);
    free(png);
    return s;
}

static uint8_t *put_le(uint8_t *p, uint32_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
    return p + bytes;
}

pg_status demo_wav_write(const char *path, const int16_t *pcm, size_t n_frames, int32_t rate) {
    if (!path || !pcm || rate <= 0)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "demo_wav_write: %s",
                            !path ? "path is NULL" : !pcm ? "pcm is NULL" : "rate <= 0");
    if (n_frames > (UINT32_MAX - 44) / 2)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "demo_wav_write: %zu frames do not fit a "
                            "RIFF file", n_frames);
    const uint32_t data_bytes = (uint32_t)(2 * n_frames);
    uint8_t *wav = malloc(44 + (size_t)data_bytes);
    if (!wav)
        return pg_set_error(PG_ERR_OUT_OF_MEMORY, "demo_wav_write: %zu bytes",
                            44 + (size_t)data_bytes);
    uint8_t *p = wav;
    memcpy(p, "RIFF", 4), p = put_le(p + 4, 36 + data_bytes, 4);
    memcpy(p, "WAVEfmt ", 8), p = put_le(p + 8, 16, 4);
    p = put_le(p, 1, 2);                     /* WAVE_FORMAT_PCM */
    p = put_le(p, 1, 2);                     /* mono */
    p = put_le(p, (uint32_t)rate, 4);
    p = put_le(p, 2 * (uint32_t)rate, 4);    /* bytes per second */
    p = put_le(p, 2, 2);                     /* block align */
    p = put_le(p, 16, 2);                    /* bits per sample */
    memcpy(p, "data", 4), p = put_le(p + 4, data_bytes, 4);
    for (size_t i = 0; i < n_frames; i++) p = put_le(p, (uint16_t)pcm[i], 2);
    pg_status s = write_file(path, wav, 44 + (size_t)data_bytes);
    free(wav);
    return s;
}

pg_status demo_media_write(const char *png_path, const char *wav_path) {
    uint8_t *rgb = malloc(3 * (size_t)DEMO_IMAGE_WIDTH * DEMO_IMAGE_HEIGHT);
    int16_t *pcm = malloc(sizeof(int16_t) * DEMO_AUDIO_FRAMES);
    pg_status s = PG_OK;
    if (!rgb || !pcm) {
        s = pg_set_error(PG_ERR_OUT_OF_MEMORY, "demo_media_write: the picture and the sound");
    } else {
        demo_image_draw(rgb);
        demo_audio_synth(pcm);
        s = demo_png_write(png_path, rgb, DEMO_IMAGE_WIDTH, DEMO_IMAGE_HEIGHT);
        if (s == PG_OK) s = demo_wav_write(wav_path, pcm, DEMO_AUDIO_FRAMES, DEMO_AUDIO_RATE);
    }
    free(rgb);
    free(pcm);
    return s;
}
