/*
 * media_api.c — the media and encoder entry points of the contract: pg_media_* (argument checks,
 * then lib/media), pg_embed and pg_project (lib/models/imagebind), and the modality vector a
 * chat turn puts in its slot.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/error.h"
#include "internal.h"
#include "media/media.h"

/* Reads a whole file, refusing more than MEDIA_MAX_FILE_BYTES before allocating. */
static pg_status read_file(const char *path, void **data, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return pg_set_error(PG_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    pg_status s = PG_OK;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        s = pg_set_error(PG_ERR_IO, "%s: cannot seek (not a regular file?)", path);
    } else if ((unsigned long)n > MEDIA_MAX_FILE_BYTES) {
        s = pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: %ld bytes is over the %zu-byte limit",
                         path, n, MEDIA_MAX_FILE_BYTES);
    } else if (!(*data = malloc(n ? (size_t)n : 1))) {
        s = pg_set_error(PG_ERR_OUT_OF_MEMORY, "%s: cannot allocate %ld bytes", path, n);
    } else if (fread(*data, 1, (size_t)n, f) != (size_t)n) {
        free(*data);
        s = pg_set_error(PG_ERR_IO, "%s: read error", path);
    }
    *size = (size_t)n;
    fclose(f);
    return s;
}

static pg_status check_out_mod(const char *fn, pg_modality mod, pg_media **out) {
    if (!out) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    *out = NULL;
    if ((unsigned)mod > PG_MODALITY_IMU)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "%s: modality %d is not a pg_modality", fn,
                            (int)mod);
    return PG_OK;
}

pg_status pg_media_load_file(pg_modality mod, const char *path, pg_media **out) {
    pg_status s = check_out_mod("pg_media_load_file", mod, out);
    if (s != PG_OK) return s;
    if (!path) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_media_load_file: path is NULL");
    void *data = NULL;
    size_t size = 0;
    if ((s = read_file(path, &data, &size))) return s;
    s = media_load(mod, data, size, path, out);
    free(data);
    return s;
}

pg_status pg_media_load_memory(pg_modality mod, const void *data, size_t size, pg_media **out) {
    pg_status s = check_out_mod("pg_media_load_memory", mod, out);
    if (s != PG_OK) return s;
    if (!data && size)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_media_load_memory: data is NULL, size "
                            "%zu", size);
    return media_load(mod, data, size, "memory", out);
}

pg_status pg_media_from_rgb8(pg_modality mod, const uint8_t *rgb, int32_t width, int32_t height,
                             pg_media **out) {
    pg_status s = check_out_mod("pg_media_from_rgb8", mod, out);
    if (s != PG_OK) return s;
    if (!rgb) return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_media_from_rgb8: rgb is NULL");
    return media_from_rgb8(mod, rgb, width, height, out);
}

pg_status pg_media_from_pcm(const float *interleaved, size_t n_frames, int32_t n_channels,
                            int32_t sample_rate, pg_media **out) {
    pg_status s = check_out_mod("pg_media_from_pcm", PG_MODALITY_AUDIO, out);
    if (s != PG_OK) return s;
    if (!interleaved)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_media_from_pcm: interleaved is NULL");
    return media_from_pcm(interleaved, n_frames, n_channels, sample_rate, out);
}

pg_status pg_media_from_tensor(pg_modality mod, const float *data, const int64_t *shape,
                               int32_t n_dims, pg_media **out) {
    pg_status s = check_out_mod("pg_media_from_tensor", mod, out);
    if (s != PG_OK) return s;
    if (!data || !shape)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_media_from_tensor: %s is NULL",
                            !data ? "data" : "shape");
    if (n_dims < 1 || n_dims > 6)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_media_from_tensor: n_dims %d not in "
                            "[1, 6]", n_dims);
    for (int i = 0; i < n_dims; i++)
        if (shape[i] <= 0 || shape[i] > (1 << 24))
            return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_media_from_tensor: shape[%d] = "
                                "%lld", i, (long long)shape[i]);
    return media_from_tensor(mod, data, shape, n_dims, out);
}

void pg_media_free(pg_media *media) { media_free(media); }

/* A backend and encoder state for one pg_embed call, freed at its end: pg_embed may run
 * concurrently on one model, so nothing of the call is shared. */
static pg_status embed_once(pg_model *m, const pg_media *media, float *out) {
    pg_backend *b = NULL;
    imagebind_state *st = NULL;
    int max_rows, max_ctx;
    int64_t max_n_in;
    int32_t clips = media->n_clips < IB_MAX_CLIPS_DEFAULT ? media->n_clips : IB_MAX_CLIPS_DEFAULT;
    pg_status s = pg_model_backend_new(m, 0, &b);
    if (s == PG_OK) {
        imagebind_scratch_needs(m->enc, clips, &max_rows, &max_n_in, &max_ctx);
        s = pg_model_backend_reserve(m, b, max_rows, max_n_in, max_ctx);
    }
    if (s == PG_OK) s = imagebind_state_new(m->enc, b, clips, &st);
    if (s == PG_OK)
        s = imagebind_encode(m->enc, st, b, media->mod, media->data, media->n_clips, out, NULL,
                             NULL);
    if (st) imagebind_state_free(st, b);
    pg_backend_free(b);
    return s;
}

/* On CUDA, making a backend (stream, cuBLAS handle, scratch) and a state costs more than
 * encoding an image, and freeing device memory waits for the whole device: the model keeps one
 * pair, made at the first call and sized for the default clip count, and lends it to one call
 * at a time. A call that finds it in use does not wait: it makes its own (embed_once), so
 * concurrent calls stay concurrent. */
static pg_status embed_cuda(pg_model *m, const pg_media *media, float *out) {
    if (pthread_mutex_trylock(&m->embed_lock) != 0) return embed_once(m, media, out);
    pg_status s = PG_OK;
    if (!m->embed_backend) {
        s = pg_model_backend_new(m, 0, &m->embed_backend);
        if (s == PG_OK) s = imagebind_state_new(m->enc, m->embed_backend, 0, &m->embed_state);
        if (s != PG_OK) {
            pg_backend_free(m->embed_backend);
            m->embed_backend = NULL;
        }
    }
    if (s == PG_OK)
        s = imagebind_encode(m->enc, m->embed_state, m->embed_backend, media->mod, media->data,
                             media->n_clips, out, NULL, NULL);
    pthread_mutex_unlock(&m->embed_lock);
    return s;
}

pg_status pg_embed(pg_model *m, const pg_media *media, float *out, size_t n_out) {
    if (!m || !media || !out)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_embed: %s is NULL",
                            !m ? "model" : !media ? "media" : "out");
    if (!m->enc)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_embed: the model has no encoder (load "
                            "it with pg_model_params.encoder_path)");
    if (n_out < (size_t)m->enc->dim)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_embed: out holds %zu floats, the "
                            "embedding has %d", n_out, m->enc->dim);
    pg_status s = m->device == PG_DEVICE_CPU ? embed_once(m, media, out)
                                             : embed_cuda(m, media, out);
    if (s != PG_OK) pg_error_prefix(s, "pg_embed (%s)", media_modality_name(media->mod));
    return s;
}

pg_status pg_project(pg_model *m, const float *embed, size_t n, float *out, size_t n_out) {
    if (!m || !embed || !out)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_project: %s is NULL",
                            !m ? "model" : !embed ? "embed" : "out");
    if (!m->enc || !m->enc->has_llama_proj)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_project: the model's encoder file has "
                            "no llama_proj (convert it with --delta)");
    if (n != (size_t)m->enc->dim || n_out < (size_t)m->enc->proj_n_out)
        return pg_set_error(PG_ERR_INVALID_ARGUMENT, "pg_project: takes %d floats and writes "
                            "%d; got n %zu, n_out %zu", m->enc->dim, m->enc->proj_n_out, n,
                            n_out);
    return imagebind_project(m->enc, embed, out);
}

pg_status pg_media_slot(pg_model *m, imagebind_state *st, pg_backend *b, pg_media *const *media,
                        size_t n_media, float *out) {
    pg_status s = PG_OK;
    for (size_t i = 0; i < n_media && s == PG_OK; i++) {
        s = imagebind_encode_to(m->enc, st, b, media[i]->mod, media[i]->data, media[i]->n_clips);
        if (s == PG_OK) s = imagebind_project_to(m->enc, b, st->vec, out, i > 0);
        if (s != PG_OK)
            pg_error_prefix(s, "pg_session_chat: media %zu (%s)", i,
                            media_modality_name(media[i]->mod));
    }
    return s;
}
