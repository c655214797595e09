/*
 * pandagpt.h — the public C API of libpandagpt, and its reference manual.
 *
 * libpandagpt runs PandaGPT (arXiv 2305.16355): ImageBind-huge encoders, a linear projection
 * (`llama_proj`) and Vicuna (LLaMA-1) with the PandaGPT LoRA merged, answering instructions about
 * images, video, audio, depth, thermal and IMU inputs.
 *
 * Objects
 *   pg_model    the "context": weights (LLM GGUF, optional encoder GGUF, optional LoRA adapter),
 *               the device they live on. Immutable after pg_model_load; share it freely between
 *               threads.
 *   pg_session  the "session": one conversation — its history, its modality slot and its KV cache.
 *               Use a session from one thread at a time (different sessions of one model may run
 *               on different threads at once).
 *   pg_media    one decoded, preprocessed input (image, audio clip, ...), ready for an encoder.
 *
 * Errors
 *   Every function that can fail returns a pg_status. On failure, pg_last_error() returns a text
 *   saying what failed and where (file, tensor, offset); the text is per thread and stays valid
 *   until this thread's next failing call. The library never aborts, never exits and never prints.
 *   Unless a function says otherwise, a failed call leaves every handle it was given usable and
 *   unchanged.
 *
 * ABI
 *   Handles are opaque. Every params struct starts with `uint32_t struct_size`, which the caller
 *   sets (the *_params_init functions do it) to sizeof the struct as it was compiled; the library
 *   reads only the fields that size covers and uses defaults for the rest, so programs built
 *   against an older header keep working when fields are appended. Enum values are fixed.
 *   SONAME libpandagpt.so.0; semantic version from pg_version().
 *
 * Minimal use
 *   pg_model_params mp; pg_model_params_init(&mp);
 *   pg_model *m; if (pg_model_load("vicuna.gguf", &mp, &m) != PG_OK) puts(pg_last_error());
 *   pg_session *s; pg_session_new(m, NULL, &s);
 *   pg_session_chat(s, "Hello!", NULL, 0, NULL, print_piece, NULL);
 *   pg_session_free(s); pg_model_free(m);
 */
#ifndef PANDAGPT_H
#define PANDAGPT_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(PG_BUILDING_LIBRARY)
#  define PG_API __declspec(dllexport)
#elif defined(_WIN32)
#  define PG_API __declspec(dllimport)
#elif defined(__GNUC__) && defined(PG_BUILDING_LIBRARY)
#  define PG_API __attribute__((visibility("default")))
#else
#  define PG_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header: major.minor.patch, semantic. pg_version() gives the library's, which
 * may be newer (same major) when a program runs against a later libpandagpt.so.0. */
#define PG_VERSION_MAJOR 0
#define PG_VERSION_MINOR 2
#define PG_VERSION_PATCH 0

/* ---------------------------------------------------------------------------------------------
 * Versions and errors
 * ------------------------------------------------------------------------------------------- */

/* Result of every fallible call. Values are fixed forever. docs/errors.md says, for each, what
 * causes it, what to do and whether the handle stays usable. */
typedef enum pg_status {
    PG_OK = 0,                   /* success */
    PG_ERR_INVALID_ARGUMENT = 1, /* NULL where a value is needed, bad struct_size, out of range */
    PG_ERR_IO = 2,               /* a file could not be opened, read or mapped */
    PG_ERR_FORMAT = 3,           /* a file is malformed: bad GGUF, missing tensor, wrong shape */
    PG_ERR_UNSUPPORTED = 4,      /* valid but not handled by this build (tensor type, device) */
    PG_ERR_OUT_OF_MEMORY = 5,    /* host or device allocation failed */
    PG_ERR_DEVICE = 6,           /* the accelerator reported an error */
    PG_ERR_CONTEXT_FULL = 7,     /* the session's KV cache (n_ctx positions) is exhausted */
    PG_ERR_CANCELLED = 8,        /* the token callback returned nonzero */
    PG_ERR_INTERNAL = 9          /* a bug in libpandagpt; please report it with the message */
} pg_status;

/* The library version as (major << 16) | (minor << 8) | patch. Thread-safe. */
PG_API uint32_t pg_version(void);

/* The library version as "major.minor.patch", a static string. Thread-safe. */
PG_API const char *pg_version_string(void);

/* A static, human-readable name for a status ("PG_ERR_FORMAT: malformed file"); never NULL, also
 * for values outside the enum. Thread-safe. */
PG_API const char *pg_status_string(pg_status s);

/* The message of the last failure on the calling thread: what failed and where. Never NULL ("" if
 * nothing failed yet). Owned by the library; valid until the next failing call on this thread. */
PG_API const char *pg_last_error(void);

/* ---------------------------------------------------------------------------------------------
 * Model ("context"): weights and device
 * ------------------------------------------------------------------------------------------- */

/* The three opaque handles (see "Objects" above): made by pg_model_load,
 * pg_session_new and the pg_media_* constructors, freed by the matching *_free function. */
typedef struct pg_model pg_model;
typedef struct pg_session pg_session;
typedef struct pg_media pg_media;

/* Where the model runs. Values are fixed. */
typedef enum pg_device {
    PG_DEVICE_AUTO = 0, /* CUDA when the build has it, a device is present and cuBLAS loads,
                           else CPU */
    PG_DEVICE_CPU = 1,  /* the CPU backend, in every build */
    PG_DEVICE_CUDA = 2  /* the NVIDIA GPU cuda_device; needs a build with CUDA (docs/cuda.md) */
} pg_device;

/* Input kinds. Values are fixed. */
typedef enum pg_modality {
    PG_MODALITY_IMAGE = 0,   /* a picture: JPEG, PNG or RGB pixels; tensor [3,224,224] */
    PG_MODALITY_VIDEO = 1,   /* a video FFmpeg reads; tensor [15,3,2,224,224] */
    PG_MODALITY_AUDIO = 2,   /* a sound libsndfile reads, or PCM; tensor [3,1,128,204] */
    PG_MODALITY_DEPTH = 3,   /* a disparity map: grey PNG; tensor [1,224,224] */
    PG_MODALITY_THERMAL = 4, /* a thermal picture: JPEG or PNG as grey; tensor [1,224,224] */
    PG_MODALITY_IMU = 5      /* accelerometer and gyroscope traces; tensor [6,2000] */
} pg_modality;

/* Options for pg_model_load. Fields of the first version, in this order; later versions append. */
typedef struct pg_model_params {
    uint32_t struct_size;     /* sizeof(pg_model_params) as the caller compiled it */
    pg_device device;         /* default PG_DEVICE_AUTO: CUDA when this build has it and a
                                 device is present, else the CPU */
    int32_t cuda_device;      /* CUDA device ordinal; default 0; read only when the model goes
                                 to CUDA, then it must be a present device */
    int32_t n_threads;        /* CPU worker threads per session; 0 (default) = all online cores */
    const char *encoder_path; /* ImageBind + llama_proj GGUF, or NULL (default) */
    const char *lora_path;    /* LoRA adapter GGUF merged into the LLM at load, or NULL
                                 (default); see pg_model_load */
    float lora_scale;         /* multiplier of the adapter's alpha/r; default 1.0; must be
                                 finite (also without an adapter) */
} pg_model_params;

/* Fills *p with the defaults above and sets p->struct_size. p must not be NULL. */
PG_API void pg_model_params_init(pg_model_params *p);

/* Loads a model.
 *   llm_path  a `llama`-architecture GGUF v3 (Vicuna with the PandaGPT LoRA merged, or any LLaMA
 *             GGUF in F32/F16/BF16/Q8_0/Q4_0); may be NULL when p->encoder_path is set, giving an
 *             embedding-only model (no sessions, pg_embed and pg_project only).
 *   p         options, or NULL for the defaults.
 *   out       receives the model; set to NULL on failure. Free with pg_model_free.
 * The file is memory-mapped and every header field, string, array and tensor extent is checked
 * against its size before use. Thread-safe (loads share nothing).
 * LoRA (p->lora_path, needs llm_path): a llama.cpp-style adapter GGUF (docs/format.md §2:
 * general.architecture "llama", general.type "adapter", adapter.type "lora", optional f32
 * adapter.lora.alpha; tensors `<weight>.lora_a` ne {n_in, r} and `<weight>.lora_b` ne {r, n_out}
 * in pairs, for blk.N.{attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down}.weight and
 * output.weight) is checked completely, then merged: W + scale·B·A computed in float32 with
 * scale = lora_scale·alpha/r, or lora_scale when alpha is missing or 0 (llama.cpp's rule). Each
 * merged matrix is a heap copy in the base weight's type (a quantized base is re-quantized, row
 * by row); the other weights stay mapped, and a tied LM head is merged without changing the
 * token embedding. lora_scale 0 checks the adapter and leaves the weights as they are. The
 * adapter file is not kept open.
 * Encoders (p->encoder_path): an `imagebind` GGUF (docs/format.md §3: the towers it lists and,
 * when converted with the PandaGPT delta, llama_proj), mapped like the LLM. With both files,
 * llama_proj's output size must equal the LLM's hidden size.
 * On CUDA the weights (LoRA merged first) are copied to the device at load, llama_proj too (a
 * chat's modality slot is computed there); pg_project keeps using llama_proj's host mapping.
 * Errors: PG_ERR_INVALID_ARGUMENT (NULL out, bad struct_size, no path at all, lora_path without
 * llm_path, non-finite lora_scale), PG_ERR_IO (cannot open or map the model or the adapter),
 * PG_ERR_FORMAT (malformed GGUF, wrong architecture, missing tensor or key, wrong shape — the
 * message names the key or tensor and the file offset; for the adapter: a wrong or missing key,
 * a tensor that is not half of a lora_a/lora_b pair, a weight the model does not have, a shape
 * or rank mismatch, no LoRA tensor at all — named with the adapter's path), PG_ERR_UNSUPPORTED
 * (a tensor type, device or feature this build lacks; PG_DEVICE_CUDA in a build without CUDA),
 * PG_ERR_OUT_OF_MEMORY (host memory, or device memory for the weights: the message gives the
 * bytes needed and free), PG_ERR_DEVICE (PG_DEVICE_CUDA with no CUDA device present or no cuBLAS to open — the
 * message says why — or a copy to the device failed), and PG_ERR_INVALID_ARGUMENT for a
 * cuda_device that is not present. */
PG_API pg_status pg_model_load(const char *llm_path, const pg_model_params *p, pg_model **out);

/* Frees a model and everything it owns. Every session of the model must have been freed first.
 * NULL is a no-op. */
PG_API void pg_model_free(pg_model *m);

/* Rows of the LLM's embedding and LM head (32000 for LLaMA, 32001 for Vicuna v0 with [PAD]);
 * 0 for an embedding-only model or NULL. Thread-safe. */
PG_API int32_t pg_model_n_vocab(const pg_model *m);

/* The LLM hidden size (4096 for 7B, 5120 for 13B); 0 for an embedding-only model or NULL. */
PG_API int32_t pg_model_n_embd(const pg_model *m);

/* The ImageBind joint embedding size (1024 for imagebind_huge); 0 when no encoder is loaded.
 * pg_embed writes this many floats. */
PG_API int32_t pg_model_embed_dim(const pg_model *m);

/* The output size of the encoder file's llama_proj, H: the LLM hidden size it feeds and the
 * floats pg_project writes (with an LLM loaded, pg_model_load checked it equals
 * pg_model_n_embd); 0 when no encoder is loaded, its file has no llama_proj, or m is NULL.
 * Since 0.2. Thread-safe. */
PG_API int32_t pg_model_proj_dim(const pg_model *m);

/* ---------------------------------------------------------------------------------------------
 * Text
 * ------------------------------------------------------------------------------------------- */

/* Tokenizes len bytes of text (need not be NUL-terminated; may contain any bytes) with the model's
 * SentencePiece-BPE vocabulary: a dummy-prefix space, no whitespace collapsing, byte fallback;
 * "<s>" and "</s>" in the text are plain text. With add_bos nonzero the BOS id comes first.
 *   tokens, cap  output array and its capacity (tokens may be NULL when cap is 0)
 *   n_tokens     always receives the number of tokens the text needs
 * Errors: PG_ERR_INVALID_ARGUMENT (NULL m/n_tokens, NULL text with len > 0, no LLM), and
 * PG_ERR_INVALID_ARGUMENT when cap is too small (n_tokens says how much is needed; the first cap
 * tokens are written), PG_ERR_OUT_OF_MEMORY (working memory in proportion to len). Thread-safe. */
PG_API pg_status pg_tokenize(const pg_model *m, const char *text, size_t len, int add_bos,
                             int32_t *tokens, size_t cap, size_t *n_tokens);

/* The text of one token as it appears in decoded output: "▁" becomes a space, a byte token
 * <0xNN> is the single byte NN (which may be part of a multi-byte UTF-8 character), control and
 * unknown tokens (<s>, </s>, <unk>, [PAD]) are empty. No NUL is written.
 *   buf, cap  output buffer and its capacity
 *   len       always receives the piece's length
 * Errors: PG_ERR_INVALID_ARGUMENT (token out of range, NULL len, cap too small). Thread-safe. */
PG_API pg_status pg_token_to_piece(const pg_model *m, int32_t token, char *buf, size_t cap,
                                   size_t *len);

/* ---------------------------------------------------------------------------------------------
 * Media (ImageBind inputs; docs/media.md)
 *
 * A pg_media holds the encoder's input tensor, preprocessed exactly as PandaGPT does it (spec §5):
 * decoding, resizing, cropping, resampling and the fbank happen when the media is made, so one
 * media can be embedded or chatted about many times. A media is immutable and may be used from
 * any number of threads at once. Decoders come from kept libraries (libjpeg-turbo, libpng,
 * libsndfile, FFmpeg); a build without one answers PG_ERR_UNSUPPORTED for its formats, naming the
 * library. Inputs beyond the documented limits (2 GiB of bytes, 16384 pixels a side, an hour of
 * audio, ten hours of video) are refused with PG_ERR_INVALID_ARGUMENT before anything is
 * allocated for them; corrupt or truncated data gives PG_ERR_FORMAT. No decoder prints.
 * ------------------------------------------------------------------------------------------- */

/* Decodes a file and preprocesses it as PandaGPT does for mod:
 *   IMAGE    JPEG or PNG: Pillow's RGB conversion, bicubic short side 224, centre crop, CLIP
 *            mean/std (bit-exact with Pillow + torchvision);
 *   THERMAL  JPEG or PNG as Pillow "L", same resize and crop, no normalisation;
 *   AUDIO    any format libsndfile reads: resampled to 16 kHz as torchaudio does, 3 clips of 2 s,
 *            128-bin Kaldi fbank, 204 frames, normalised;
 *   VIDEO    any container/codec FFmpeg reads: 5 clips × 3 spatial crops of 2 frames;
 *   DEPTH    a grey 8/16-bit PNG of disparity (our convention, docs/media.md);
 *   IMU      no file format: use pg_media_from_tensor.
 * *out gets a new media (NULL on failure) to free with pg_media_free.
 * Errors: PG_ERR_INVALID_ARGUMENT (NULL arguments, bad modality, limits), PG_ERR_IO (cannot
 * read path), PG_ERR_FORMAT (not that kind of file, corrupt), PG_ERR_UNSUPPORTED (this build lacks
 * the decoder, IMU, a CMYK JPEG), PG_ERR_OUT_OF_MEMORY. Thread-safe. */
PG_API pg_status pg_media_load_file(pg_modality mod, const char *path, pg_media **out);
/* Same, from encoded bytes in memory (not kept after the call). Messages say "memory". */
PG_API pg_status pg_media_load_memory(pg_modality mod, const void *data, size_t size,
                                      pg_media **out);
/* Interleaved 8-bit RGB pixels, rows top to bottom (IMAGE or THERMAL; THERMAL converts them to
 * Pillow's "L" first), then the same preprocessing as a decoded file. The pixels are not kept.
 * Errors: PG_ERR_INVALID_ARGUMENT (another modality, NULL rgb, size outside 1..16384 a side). */
PG_API pg_status pg_media_from_rgb8(pg_modality mod, const uint8_t *rgb, int32_t width,
                                    int32_t height, pg_media **out);
/* Interleaved float PCM in [-1, 1] (AUDIO) at any rate, then resampling, clips and fbank as for a
 * file (only channel 0 reaches the fbank; the mean subtracted covers all channels, as upstream).
 * Errors: PG_ERR_INVALID_ARGUMENT (NULL, 0 or > 64 channels, rate outside 1..768000 Hz, fewer
 * than 25 ms of samples, more than an hour, a non-finite sample). */
PG_API pg_status pg_media_from_pcm(const float *interleaved, size_t n_frames, int32_t n_channels,
                                   int32_t sample_rate, pg_media **out);
/* The encoder's input tensor itself, already preprocessed, C order float32 (copied):
 * IMAGE [3,224,224], VIDEO [clips,3,2,224,224], AUDIO [clips,1,128,204] (clips 1..64),
 * DEPTH [1,224,224] (disparity in [0, 1]), THERMAL [1,224,224], IMU [6,N] (N = 2000 is used as
 * is, any other N >= 2 is linearly resampled to 2000 samples); a leading batch dimension of 1 is
 * accepted. Errors: PG_ERR_INVALID_ARGUMENT (NULL, another shape — the message gives the
 * expected one —, a non-finite value). */
PG_API pg_status pg_media_from_tensor(pg_modality mod, const float *data, const int64_t *shape,
                                      int32_t n_dims, pg_media **out);
/* Frees a media. NULL is a no-op. */
PG_API void pg_media_free(pg_media *media);
/* The ImageBind vector PandaGPT feeds to llama_proj (spec §5.9): IMAGE the L2-normalised vision
 * embedding; VIDEO the mean of its 15 clips' normalised vectors; AUDIO the mean of its 3 clips'
 * normalised vectors (without upstream ImageBind's ×20, as PandaGPT); THERMAL normalised ×10;
 * DEPTH and IMU normalised ×5 (upstream's factors; PandaGPT cannot reach them).
 *   out, n_out  at least pg_model_embed_dim floats.
 * Runs on the model's device, in its own scratch: safe to call concurrently on one model, and
 * alongside sessions. On the CPU it uses the model's n_threads; on CUDA the first call makes a
 * stream and encoder buffers that the model keeps for later calls (freed by pg_model_free), and
 * a call made while another uses them makes its own for that call.
 * Errors: PG_ERR_INVALID_ARGUMENT (NULL, no encoder, n_out too small), PG_ERR_UNSUPPORTED (the
 * encoder file lacks that tower), PG_ERR_OUT_OF_MEMORY, PG_ERR_DEVICE. */
PG_API pg_status pg_embed(pg_model *m, const pg_media *media, float *out, size_t n_out);
/* Applies llama_proj to one embedding: out[H] = W·embed + b, with n == pg_model_embed_dim and
 * n_out >= H (pg_model_proj_dim: the LLM's hidden size). A chat turn sums these over its
 * media, each carrying its own bias (spec §1). Thread-safe.
 * Errors: PG_ERR_INVALID_ARGUMENT (NULL, no encoder or no llama_proj in it, wrong sizes). */
PG_API pg_status pg_project(pg_model *m, const float *embed, size_t n, float *out, size_t n_out);

/* ---------------------------------------------------------------------------------------------
 * Session: one conversation, its history and KV cache
 * ------------------------------------------------------------------------------------------- */

/* Options for pg_session_new. */
typedef struct pg_session_params {
    uint32_t struct_size; /* sizeof(pg_session_params) as the caller compiled it */
    int32_t n_ctx;        /* KV cache positions; 0 (default) = the model's context length */
} pg_session_params;

/* Fills *p with the defaults and sets p->struct_size. p must not be NULL. */
PG_API void pg_session_params_init(pg_session_params *p);

/* Creates a conversation on model m. p may be NULL for the defaults. The KV cache and every
 * scratch buffer are allocated here, once: decoding allocates nothing. The session keeps a
 * pointer to m, which must outlive it. Thread-safe with respect to m. On CUDA each session has
 * its own stream, so sessions of one model run concurrently on the device.
 * Errors: PG_ERR_INVALID_ARGUMENT (NULL m/out, bad struct_size, n_ctx < 0, embedding-only model),
 * PG_ERR_OUT_OF_MEMORY (host or device; the message gives the bytes asked for), PG_ERR_DEVICE
 * (the CUDA stream or cuBLAS handle cannot be made). Calls that run the model may also return
 * PG_ERR_DEVICE when the device reports an error. */
PG_API pg_status pg_session_new(pg_model *m, const pg_session_params *p, pg_session **out);

/* Frees a session. NULL is a no-op. */
PG_API void pg_session_free(pg_session *s);

/* Forgets the history, the modality slot, the KV cache contents and the last answer. The memory
 * stays allocated. Errors: PG_ERR_INVALID_ARGUMENT (NULL). */
PG_API pg_status pg_session_reset(pg_session *s);

/* Sampling options for one chat turn. */
typedef struct pg_generate_params {
    uint32_t struct_size;  /* sizeof(pg_generate_params) as the caller compiled it */
    int32_t max_tokens;    /* new tokens at most; default 256 (PandaGPT demo) */
    float temperature;     /* default 1.0; 0 = greedy (argmax) */
    int32_t top_k;         /* default 50; 0 = off */
    float top_p;           /* default 0.01 (PandaGPT demo; with top_k 50 this is greedy); 1 = off */
    float repeat_penalty;  /* HF's repetition penalty over the tokens generated in this turn (what
                              PandaGPT's generate() sees as input_ids); default 1.0 = off */
    uint64_t seed;         /* sampling RNG seed; the same seed gives the same text; default 0 */
} pg_generate_params;

/* Fills *p with the PandaGPT demo defaults above and sets p->struct_size. p must not be NULL. */
PG_API void pg_generate_params_init(pg_generate_params *p);

/* Receives the answer as it is generated: piece is len bytes of valid UTF-8 (not NUL-terminated,
 * valid only during the call), token the last token that contributed to it, user_data the pointer
 * given to pg_session_chat. Return 0 to go on, nonzero to stop generation. */
typedef int (*pg_token_callback)(const char *piece, size_t len, int32_t token, void *user_data);

/* One chat turn: the PandaGPT conversation template (spec §2; docs/chat.md), the user's text, and
 * the media projected and summed into the one modality slot. Tokens shared with the previous turn
 * stay in the KV cache; only the new part of the prompt is evaluated. Generation stops at the
 * "##" token (the start of the next "### Human:"), at EOS, or after max_tokens; the answer is
 * trimmed as PandaGPT trims it (the last two generated tokens are dropped).
 *   user_text  NUL-terminated UTF-8, not NULL (may be empty)
 *   media      n_media inputs (any mix of modalities), or NULL when n_media is 0. Each is
 *              encoded (pg_embed), projected (pg_project) and the results summed into the one
 *              modality slot of the prompt. The first turn that brings media fixes the
 *              conversation's modality vector: later turns reuse it and media given to them are
 *              NOT encoded, exactly as PandaGPT's demo caches it (spec §2.4); call
 *              pg_session_reset to talk about other media. A turn without any media so far uses
 *              the text-only template (docs/chat.md).
 *   g          sampling options, or NULL for the demo defaults
 *   cb         may be NULL; the concatenation of the pieces it receives equals the final answer
 *              (pg_session_answer) exactly.
 * On PG_OK the turn (question and answer) joins the session's history. On any error the history
 * is unchanged and the session stays usable; the KV cache may keep the evaluated prompt, which a
 * later turn reuses where it matches.
 * Errors: PG_ERR_INVALID_ARGUMENT (NULL s or user_text, bad struct_size, media NULL with n_media,
 * a NULL media, media but no encoder or no llama_proj), PG_ERR_UNSUPPORTED (the encoder file lacks
 * a tower), PG_ERR_CONTEXT_FULL (prompt or answer does not fit
 * in n_ctx; call pg_session_reset), PG_ERR_CANCELLED (cb returned nonzero). */
PG_API pg_status pg_session_chat(pg_session *s, const char *user_text, pg_media *const *media,
                                 size_t n_media, const pg_generate_params *g, pg_token_callback cb,
                                 void *user_data);

/* The answer of the last pg_session_chat call (also of a cancelled or context-full one: what was
 * streamed so far), as UTF-8 without a NUL unless cap leaves room for one, in which case one is
 * appended. len always receives the answer's length in bytes.
 * Errors: PG_ERR_INVALID_ARGUMENT (NULL s or len, cap too small — the first cap bytes are
 * written). */
PG_API pg_status pg_session_answer(const pg_session *s, char *buf, size_t cap, size_t *len);

/* Where the time of the last pg_session_chat call went. */
typedef struct pg_timings {
    uint32_t struct_size;  /* sizeof(pg_timings) as the caller compiled it */
    int32_t n_reused;      /* prompt positions kept from the KV cache (not re-evaluated) */
    int32_t n_prompt;      /* prompt positions evaluated */
    double prompt_ms;      /* wall time evaluating them */
    int32_t n_generated;   /* tokens sampled */
    int32_t n_decode;      /* generated tokens evaluated (one per step but the last) */
    double decode_ms;      /* wall time of generation: evaluation and sampling */
} pg_timings;

/* Fills *out (set out->struct_size first; fields past it are not written) with the timings of the
 * session's last chat turn (zeros before the first). Errors: PG_ERR_INVALID_ARGUMENT (NULL, bad
 * struct_size). */
PG_API pg_status pg_session_timings(const pg_session *s, pg_timings *out);

/* ---------------------------------------------------------------------------------------------
 * Low level: custom generation loops and tests
 * ------------------------------------------------------------------------------------------- */

/* Evaluates n tokens at the next n positions of the KV cache; afterwards pg_session_logits gives
 * the logits of the last one. Errors: PG_ERR_INVALID_ARGUMENT (NULL, n == 0, token id out of
 * range), PG_ERR_CONTEXT_FULL (nothing is evaluated when the n tokens do not fit). */
PG_API pg_status pg_session_eval_tokens(pg_session *s, const int32_t *tokens, size_t n);

/* Like pg_session_eval_tokens for input embedding rows given directly: n_rows rows of
 * pg_model_n_embd floats each (PandaGPT's modality slot is one such row). */
PG_API pg_status pg_session_eval_embeddings(pg_session *s, const float *rows, size_t n_rows);

/* Copies the logits of the last evaluated position (n_vocab floats, n_vocab >= pg_model_n_vocab).
 * Errors: PG_ERR_INVALID_ARGUMENT (NULL, n_vocab too small, nothing evaluated yet). */
PG_API pg_status pg_session_logits(pg_session *s, float *out, size_t n_vocab);

/* Number of positions now held in the session's KV cache, and its capacity (n_ctx). */
PG_API int32_t pg_session_n_past(const pg_session *s);
PG_API int32_t pg_session_n_ctx(const pg_session *s);

#ifdef __cplusplus
}
#endif

#endif /* PANDAGPT_H */
