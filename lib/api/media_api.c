/*
 * media_api.c — the media and encoder entry points of the contract. ImageBind (decoding,
 * preprocessing, the six encoders and llama_proj) lands with issue [3/6]; until then each call
 * checks its arguments and answers PG_ERR_UNSUPPORTED, saying so.
 */
#include "api/error.h"
#include "internal.h"

static pg_status no_media(const char *fn) {
    return pg_set_error(PG_ERR_UNSUPPORTED, "%s: media decoding and ImageBind encoders are not "
                        "available in libpandagpt %s", fn, pg_version_string());
}

pg_status pg_media_load_file(pg_modality mod, const char *path, pg_media **out) {
    (void)mod; (void)path;
    if (out) *out = NULL;
    return no_media("pg_media_load_file");
}

pg_status pg_media_load_memory(pg_modality mod, const void *data, size_t size, pg_media **out) {
    (void)mod; (void)data; (void)size;
    if (out) *out = NULL;
    return no_media("pg_media_load_memory");
}

pg_status pg_media_from_rgb8(pg_modality mod, const uint8_t *rgb, int32_t width, int32_t height,
                             pg_media **out) {
    (void)mod; (void)rgb; (void)width; (void)height;
    if (out) *out = NULL;
    return no_media("pg_media_from_rgb8");
}

pg_status pg_media_from_pcm(const float *interleaved, size_t n_frames, int32_t n_channels,
                            int32_t sample_rate, pg_media **out) {
    (void)interleaved; (void)n_frames; (void)n_channels; (void)sample_rate;
    if (out) *out = NULL;
    return no_media("pg_media_from_pcm");
}

pg_status pg_media_from_tensor(pg_modality mod, const float *data, const int64_t *shape,
                               int32_t n_dims, pg_media **out) {
    (void)mod; (void)data; (void)shape; (void)n_dims;
    if (out) *out = NULL;
    return no_media("pg_media_from_tensor");
}

void pg_media_free(pg_media *media) { (void)media; }

pg_status pg_embed(pg_model *m, const pg_media *media, float *out, size_t n_out) {
    (void)m; (void)media; (void)out; (void)n_out;
    return no_media("pg_embed");
}

pg_status pg_project(pg_model *m, const float *embed, size_t n, float *out, size_t n_out) {
    (void)m; (void)embed; (void)n; (void)out; (void)n_out;
    return no_media("pg_project");
}
