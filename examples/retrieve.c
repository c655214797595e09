/*
 * retrieve.c — cross-modal retrieval with ImageBind: embed every file of a folder (pictures,
 * sounds, videos, thermal and depth images) and rank them by cosine similarity to a query file,
 * which may be of any modality.
 *
 *   retrieve imagebind.gguf query.jpg photos-and-sounds/
 *
 * Prints one line per file, `similarity  modality  path`, best first. Entries whose similarities
 * print the same are ordered by name, so the order does not depend on the last bits of the
 * arithmetic (CPU or CUDA, number of threads). Only the encoder is loaded (pg_model_load with no
 * LLM), once; each file is embedded once, and the query file, when it is in the folder too, is
 * not embedded again.
 *
 * The modality comes from the file name: .jpg .jpeg .png image (name.thermal.png or .jpg:
 * thermal, name.depth.png: depth map), .wav .flac .ogg .mp3 audio, .mp4 .mkv .webm .avi .mov
 * video. Subfolders, hidden files and other extensions are passed over (the last with a note).
 * A file this build has no decoder for (PG_ERR_UNSUPPORTED: built without libpng, FFmpeg, ...)
 * is skipped with a note; a file that cannot be read or decoded is reported and skipped, and the
 * ranking of the others is still printed. Notes and errors go to stderr.
 *
 * Exit status: 0 every file ranked or skipped with a note, 1 the query or the encoder failed
 * (nothing is ranked) or some file of the folder could not be read, 2 usage error.
 */
#define _POSIX_C_SOURCE 200809L /* opendir, stat */

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <pandagpt.h>

/* ---- Files and their modality */

#define SIMILARITY_FORMAT "%7.4f" /* -1.0000 to  1.0000 */

static const char *const MODALITY_NAMES[] = {"image", "video", "audio", "depth", "thermal", "imu"};

/* Whether name ends with suffix, ignoring ASCII case. */
static int ends_with(const char *name, const char *suffix) {
    size_t n = strlen(name), k = strlen(suffix);
    if (k > n)
        return 0;
    for (size_t i = 0; i < k; i++) {
        char c = name[n - k + i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != suffix[i])
            return 0;
    }
    return 1;
}

/* The modality of a file from its name, or -1 when the extension is not one we know. */
static int modality_of(const char *name) {
    static const struct { const char *suffix; pg_modality mod; } k_suffixes[] = {
        /* the two-part suffixes first: name.thermal.png is a thermal image, not a picture */
        {".thermal.png", PG_MODALITY_THERMAL}, {".thermal.jpg", PG_MODALITY_THERMAL},
        {".thermal.jpeg", PG_MODALITY_THERMAL}, {".depth.png", PG_MODALITY_DEPTH},
        {".jpg", PG_MODALITY_IMAGE}, {".jpeg", PG_MODALITY_IMAGE}, {".png", PG_MODALITY_IMAGE},
        {".wav", PG_MODALITY_AUDIO}, {".flac", PG_MODALITY_AUDIO}, {".ogg", PG_MODALITY_AUDIO},
        {".mp3", PG_MODALITY_AUDIO}, {".mp4", PG_MODALITY_VIDEO}, {".mkv", PG_MODALITY_VIDEO},
        {".webm", PG_MODALITY_VIDEO}, {".avi", PG_MODALITY_VIDEO}, {".mov", PG_MODALITY_VIDEO},
    };
    for (size_t i = 0; i < sizeof k_suffixes / sizeof k_suffixes[0]; i++)
        if (ends_with(name, k_suffixes[i].suffix))
            return (int)k_suffixes[i].mod;
    return -1;
}

/* One file of the folder. */
typedef struct entry {
    char *name;        /* file name in the folder */
    char *path;        /* folder/name */
    pg_modality mod;
    double similarity; /* cosine similarity to the query; NAN for a zero vector */
    long long key;     /* sort_key(similarity) */
} entry;

static int compare_entries(const void *pa, const void *pb) {
    const entry *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key > b->key ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int compare_names(const void *pa, const void *pb) {
    return strcmp(*(char *const *)pa, *(char *const *)pb);
}

/* The visible names of a folder's entries, sorted, as a malloc'd array of malloc'd strings
 * (*n of them); NULL on failure, with the reason printed. */
static char **list_folder(const char *folder, size_t *n) {
    *n = 0;
    DIR *dir = opendir(folder);
    if (!dir) {
        fprintf(stderr, "retrieve: %s: %s\n", folder, strerror(errno));
        return NULL;
    }
    size_t cap = 64;
    char **names = malloc(cap * sizeof *names);
    const char *failed = names ? NULL : "out of memory";
    struct dirent *d;
    while (!failed && (errno = 0, d = readdir(dir)) != NULL) {
        if (d->d_name[0] == '.')
            continue; /* ".", ".." and hidden files */
        if (*n == cap) {
            char **grown = realloc(names, 2 * cap * sizeof *names);
            if (!grown) {
                failed = "out of memory";
                break;
            }
            names = grown;
            cap *= 2;
        }
        if (!(names[*n] = malloc(strlen(d->d_name) + 1)))
            failed = "out of memory";
        else
            strcpy(names[(*n)++], d->d_name);
    }
    if (!failed && errno)
        failed = strerror(errno); /* readdir failed */
    closedir(dir);
    if (failed) {
        fprintf(stderr, "retrieve: listing %s: %s\n", folder, failed);
        while (*n)
            free(names[--*n]);
        free(names);
        return NULL;
    }
    qsort(names, *n, sizeof *names, compare_names);
    return names;
}

/* folder/name, malloc'd; no second slash when folder ends with one. NULL: out of memory. */
static char *path_join(const char *folder, const char *name) {
    size_t n = strlen(folder);
    const char *slash = n && folder[n - 1] == '/' ? "" : "/";
    size_t len = n + strlen(slash) + strlen(name) + 1;
    char *path = malloc(len);
    if (path)
        snprintf(path, len, "%s%s%s", folder, slash, name);
    return path;
}

/* ---- Embeddings */

/* Decodes path as mod and embeds it into vec (dim floats). */
static pg_status embed_file(pg_model *model, pg_modality mod, const char *path, float *vec,
                            int32_t dim) {
    pg_media *media = NULL;
    pg_status st = pg_media_load_file(mod, path, &media);
    if (st == PG_OK)
        st = pg_embed(model, media, vec, (size_t)dim);
    pg_media_free(media);
    return st;
}

static double cosine(const float *a, const float *b, int32_t dim) {
    double ab = 0.0, aa = 0.0, bb = 0.0;
    for (int32_t i = 0; i < dim; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0.0 && bb > 0.0 ? ab / sqrt(aa * bb) : NAN;
}

/* The similarity as printed, in units of 1e-4 (read back from the text, so that two values that
 * print the same have the same key); NaN, from a zero vector, sorts last. */
static long long sort_key(double similarity) {
    char printed[32];
    if (isnan(similarity))
        return LLONG_MIN;
    snprintf(printed, sizeof printed, SIMILARITY_FORMAT, similarity);
    return llround(strtod(printed, NULL) * 1e4);
}

/* ---- Main */

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s ENCODER.gguf QUERY-FILE FOLDER\n", argv[0]);
        return 2;
    }
    const char *encoder_path = argv[1], *query_path = argv[2], *folder = argv[3];
    const int query_mod = modality_of(query_path);
    if (query_mod < 0) {
        fprintf(stderr, "retrieve: %s: unknown extension; the query is a picture (.jpg .jpeg "
                        ".png), a sound (.wav .flac .ogg .mp3) or a video (.mp4 .mkv .webm .avi "
                        ".mov)\n", query_path);
        return 1;
    }
    struct stat query_stat;
    if (stat(query_path, &query_stat) != 0) {
        fprintf(stderr, "retrieve: %s: %s\n", query_path, strerror(errno));
        return 1;
    }

    pg_model *model = NULL;
    float *query = NULL, *vec = NULL;
    entry *entries = NULL;
    char **names = NULL;
    size_t n_names = 0, n_entries = 0;
    int rc = 1;

    pg_model_params params;
    pg_model_params_init(&params);
    params.encoder_path = encoder_path;
    pg_status st = pg_model_load(NULL, &params, &model); /* no LLM: an embedding-only model */
    if (st != PG_OK) {
        fprintf(stderr, "retrieve: %s: %s\n", pg_status_string(st), pg_last_error());
        goto done;
    }
    const int32_t dim = pg_model_embed_dim(model);
    if (!(names = list_folder(folder, &n_names)))
        goto done;
    query = malloc(sizeof(float) * (size_t)dim);
    vec = malloc(sizeof(float) * (size_t)dim);
    entries = calloc(n_names ? n_names : 1, sizeof *entries);
    if (!query || !vec || !entries) {
        fprintf(stderr, "retrieve: out of memory\n");
        goto done;
    }
    if ((st = embed_file(model, (pg_modality)query_mod, query_path, query, dim)) != PG_OK) {
        fprintf(stderr, "retrieve: query %s (%s): %s: %s\n", query_path, MODALITY_NAMES[query_mod],
                pg_status_string(st), pg_last_error());
        goto done;
    }

    rc = 0;
    for (size_t i = 0; i < n_names; i++) {
        char *path = path_join(folder, names[i]);
        if (!path) {
            fprintf(stderr, "retrieve: out of memory\n");
            rc = 1;
            goto done;
        }
        struct stat sb;
        int mod = modality_of(names[i]);
        if (stat(path, &sb) != 0) {
            fprintf(stderr, "retrieve: %s: %s\n", path, strerror(errno));
            rc = 1;
        } else if (!S_ISREG(sb.st_mode)) {
            /* subfolders and special files are not ranked */
        } else if (mod < 0) {
            fprintf(stderr, "note: skipped %s: not a known media extension\n", path);
        } else {
            /* The query itself, when the folder holds it, is not embedded a second time. */
            int is_query = sb.st_dev == query_stat.st_dev && sb.st_ino == query_stat.st_ino &&
                           mod == query_mod;
            st = is_query ? PG_OK : embed_file(model, (pg_modality)mod, path, vec, dim);
            if (st == PG_OK) {
                entry *e = &entries[n_entries++];
                e->name = names[i];
                e->path = path;
                e->mod = (pg_modality)mod;
                e->similarity = cosine(query, is_query ? query : vec, dim);
                e->key = sort_key(e->similarity);
                path = NULL;
            } else {
                /* a decoder or tower this build or encoder lacks is a note, not a failure */
                fprintf(stderr, "%s: skipped %s (%s): %s: %s\n",
                        st == PG_ERR_UNSUPPORTED ? "note" : "retrieve", path,
                        MODALITY_NAMES[mod], pg_status_string(st), pg_last_error());
                if (st != PG_ERR_UNSUPPORTED)
                    rc = 1;
            }
        }
        free(path);
    }

    if (n_entries == 0)
        fprintf(stderr, "note: %s holds no media file to rank\n", folder);
    qsort(entries, n_entries, sizeof *entries, compare_entries);
    for (size_t i = 0; i < n_entries; i++)
        printf(SIMILARITY_FORMAT "  %-7s  %s\n", entries[i].similarity,
               MODALITY_NAMES[entries[i].mod], entries[i].path);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "retrieve: writing the ranking: %s\n", strerror(errno));
        rc = 1;
    }

done:
    for (size_t i = 0; i < n_entries; i++)
        free(entries[i].path);
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    free(entries);
    free(vec);
    free(query);
    pg_model_free(model);
    return rc;
}
