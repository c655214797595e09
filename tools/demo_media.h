/*
 * demo_media.h — the demo's picture and sound, drawn and synthesised here and written by
 * hand-made encoders, so README command 1 has media to chat about without a download and
 * without an image or audio library at write time.
 *
 *   picture  160×120 RGB: a sky gradient, a sun disc with a halo, two green hills. Integer
 *            arithmetic only, so the pixels are the same on every machine. Written as a PNG:
 *            8-bit truecolour, no interlace, filter 0 on every row, and a zlib stream of
 *            "stored" (uncompressed) deflate blocks with its Adler-32, each chunk with its CRC-32
 *            (PNG spec §5, RFC 1950, RFC 1951 §3.2.4).
 *   sound    3 s of 16-bit PCM mono at 22050 Hz: a bird's song, six rising chirps (a linear
 *            frequency sweep with a sin² envelope and a soft second harmonic) over a faint low
 *            hum. Written as a canonical 44-byte-header RIFF/WAVE file.
 *
 * The same calls give the same bytes every time (the sound uses libm's sin, correctly rounded in
 * glibc's implementation).
 */
#ifndef PG_DEMO_MEDIA_H
#define PG_DEMO_MEDIA_H

#include <stddef.h>
#include <stdint.h>

#include "pandagpt.h"

#define DEMO_IMAGE_WIDTH 160
#define DEMO_IMAGE_HEIGHT 120
#define DEMO_AUDIO_RATE 22050
#define DEMO_AUDIO_FRAMES (3 * DEMO_AUDIO_RATE)

/* Draws the picture: DEMO_IMAGE_WIDTH × DEMO_IMAGE_HEIGHT interleaved RGB bytes, rows top to
 * bottom, into rgb (3 · 160 · 120 bytes). */
void demo_image_draw(uint8_t *rgb);

/* Synthesises the sound: DEMO_AUDIO_FRAMES samples at DEMO_AUDIO_RATE into pcm. */
void demo_audio_synth(int16_t *pcm);

/* Encodes w × h interleaved RGB bytes as a PNG; *out (malloc'd, free it) holds *size bytes.
 * Errors: PG_ERR_INVALID_ARGUMENT (NULL pointer, a side outside 1..16384),
 * PG_ERR_OUT_OF_MEMORY; each with a message (pg_last_error). */
pg_status demo_png_encode(const uint8_t *rgb, int32_t w, int32_t h, uint8_t **out,
                          size_t *size);

/* demo_png_encode, then the bytes to path. Errors: those, and PG_ERR_IO. */
pg_status demo_png_write(const char *path, const uint8_t *rgb, int32_t w, int32_t h);

/* Writes n_frames 16-bit mono samples at rate Hz as a RIFF/WAVE file (PCM, little-endian).
 * Errors: PG_ERR_INVALID_ARGUMENT (NULL pointer, rate <= 0, more than fits in 4 GiB),
 * PG_ERR_IO. */
pg_status demo_wav_write(const char *path, const int16_t *pcm, size_t n_frames, int32_t rate);

/* Draws, synthesises and writes both files: the picture to png_path, the sound to wav_path. */
pg_status demo_media_write(const char *png_path, const char *wav_path);

#endif
