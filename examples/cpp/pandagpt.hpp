// pandagpt.hpp — C++17 wrappers over libpandagpt's C API (include/pandagpt.h), header only.
//
//   pandagpt::ModelParams params;
//   params.encoder_path = "imagebind.gguf";
//   pandagpt::Model model("vicuna.gguf", params);
//   pandagpt::Session session(model);
//   pandagpt::Media image(PG_MODALITY_IMAGE, "cat.jpg");
//   std::string answer = session.chat("What is in this image?", {image},
//                                     [](std::string_view piece) { std::cout << piece; });
//
// Model, Session and Media own their C handle (std::unique_ptr with a deleter calling the
// pg_*_free function): they are move-only, and a moved-from object holds nothing. A Session keeps
// a pointer to its Model, which must outlive it (declare the Model first). Every failing call
// throws pandagpt::Error with the pg_status and pg_last_error()'s text, read at once on the
// failing thread. The threading rules are the C API's: a Model may be shared between threads, a
// Session used from one thread at a time, a Media read from any number at once.
//
// Session::chat streams the answer to any callable taking std::string_view, returning void or
// bool (false stops the answer). The callable runs inside pg_session_chat, a C function that
// exceptions must not unwind through: the C callback catches whatever the callable throws, stops
// generation, and chat rethrows it once pg_session_chat has returned, with the session usable.
// This file is an example (examples/cpp); it is not installed.
#ifndef PANDAGPT_HPP
#define PANDAGPT_HPP

#include <pandagpt.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace pandagpt {

// ---- Errors

// A failed call: what() is "PG_ERR_IO: input/output error: <pg_last_error()>".
class Error : public std::runtime_error {
public:
    Error(pg_status status, const std::string &message)
        : std::runtime_error(std::string(pg_status_string(status)) + ": " + message),
          status_(status), message_(message) {}
    pg_status status() const noexcept { return status_; }
    // pg_last_error()'s text alone
    const std::string &message() const noexcept { return message_; }

private:
    pg_status status_;
    std::string message_;
};

// Throws Error for any status but PG_OK. Call it right after the failing call: the message is
// the calling thread's pg_last_error(), which the next failing call replaces.
inline void check(pg_status status)
{
    if (status != PG_OK)
        throw Error(status, pg_last_error());
}

inline std::string version() { return pg_version_string(); }

// ---- Options: the C structs, with the library's defaults filled in by their constructors

struct ModelParams : pg_model_params {
    ModelParams() noexcept : pg_model_params() { pg_model_params_init(this); }
};
struct SessionParams : pg_session_params {
    SessionParams() noexcept : pg_session_params() { pg_session_params_init(this); }
};
struct GenerateParams : pg_generate_params {
    GenerateParams() noexcept : pg_generate_params() { pg_generate_params_init(this); }
};

namespace detail {
struct FreeModel {
    void operator()(pg_model *m) const noexcept { pg_model_free(m); }
};
struct FreeSession {
    void operator()(pg_session *s) const noexcept { pg_session_free(s); }
};
struct FreeMedia {
    void operator()(pg_media *m) const noexcept { pg_media_free(m); }
};
} // namespace detail

// ---- Media: one decoded, preprocessed input

class Media {
public:
    // Decodes and preprocesses a file as mod (pg_media_load_file).
    Media(pg_modality mod, const std::string &path)
    {
        pg_media *m = nullptr;
        check(pg_media_load_file(mod, path.c_str(), &m));
        media_.reset(m);
    }
    // Encoded bytes in memory (pg_media_load_memory).
    static Media from_memory(pg_modality mod, const void *data, std::size_t size)
    {
        pg_media *m = nullptr;
        check(pg_media_load_memory(mod, data, size, &m));
        return Media(m);
    }
    // Interleaved 8-bit RGB pixels, IMAGE or THERMAL (pg_media_from_rgb8).
    static Media from_rgb8(pg_modality mod, const std::uint8_t *rgb, std::int32_t width,
                           std::int32_t height)
    {
        pg_media *m = nullptr;
        check(pg_media_from_rgb8(mod, rgb, width, height, &m));
        return Media(m);
    }
    // Interleaved float PCM in [-1, 1] at any rate (pg_media_from_pcm).
    static Media from_pcm(const float *interleaved, std::size_t n_frames, std::int32_t channels,
                          std::int32_t sample_rate)
    {
        pg_media *m = nullptr;
        check(pg_media_from_pcm(interleaved, n_frames, channels, sample_rate, &m));
        return Media(m);
    }
    // An encoder input tensor, already preprocessed (pg_media_from_tensor); the IMU's way in.
    static Media from_tensor(pg_modality mod, const float *data,
                             const std::vector<std::int64_t> &shape)
    {
        pg_media *m = nullptr;
        check(pg_media_from_tensor(mod, data, shape.data(), static_cast<std::int32_t>(shape.size()),
                                   &m));
        return Media(m);
    }

    pg_media *get() const noexcept { return media_.get(); }

private:
    explicit Media(pg_media *m) noexcept : media_(m) {}
    std::unique_ptr<pg_media, detail::FreeMedia> media_;
};

// The media of one chat turn: a braced list of Media ({image, sound}) or a std::vector<Media>.
// It holds the handles, not the Media: they must outlive it.
class MediaList {
public:
    MediaList() = default;
    MediaList(std::initializer_list<std::reference_wrapper<const Media>> media)
    {
        for (const Media &m : media)
            handles_.push_back(m.get());
    }
    MediaList(const std::vector<Media> &media)
    {
        for (const Media &m : media)
            handles_.push_back(m.get());
    }
    pg_media *const *data() const noexcept { return handles_.empty() ? nullptr : handles_.data(); }
    std::size_t size() const noexcept { return handles_.size(); }

private:
    std::vector<pg_media *> handles_;
};

// ---- Model: the weights (LLM, encoder), immutable once loaded

class Model {
public:
    // Loads llm_path with the encoder and adapter that params name. An empty llm_path gives an
    // embedding-only model (params.encoder_path needed): embed() and project(), no sessions.
    explicit Model(const std::string &llm_path, const ModelParams &params = ModelParams())
    {
        pg_model *m = nullptr;
        check(pg_model_load(llm_path.empty() ? nullptr : llm_path.c_str(), &params, &m));
        model_.reset(m);
    }

    std::int32_t n_vocab() const noexcept { return pg_model_n_vocab(model_.get()); }
    std::int32_t n_embd() const noexcept { return pg_model_n_embd(model_.get()); }
    std::int32_t embed_dim() const noexcept { return pg_model_embed_dim(model_.get()); }

    // The ImageBind vector of one input (pg_embed): embed_dim() floats. Safe from many threads.
    std::vector<float> embed(const Media &media) const
    {
        std::vector<float> out(static_cast<std::size_t>(embed_dim()));
        check(pg_embed(model_.get(), media.get(), out.data(), out.size()));
        return out;
    }
    // llama_proj applied to an embedding (pg_project): n_embd() floats.
    std::vector<float> project(const std::vector<float> &embedding) const
    {
        std::vector<float> out(static_cast<std::size_t>(n_embd()));
        check(pg_project(model_.get(), embedding.data(), embedding.size(), out.data(),
                         out.size()));
        return out;
    }
    // The token ids of text (pg_tokenize).
    std::vector<std::int32_t> tokenize(std::string_view text, bool add_bos = true) const
    {
        std::size_t n = 0;
        pg_status st = pg_tokenize(model_.get(), text.data(), text.size(), add_bos, nullptr, 0, &n);
        if (st != PG_OK && n == 0)
            check(st); // not "capacity too small": a real error
        std::vector<std::int32_t> tokens(n);
        check(pg_tokenize(model_.get(), text.data(), text.size(), add_bos, tokens.data(),
                          tokens.size(), &n));
        return tokens;
    }

    pg_model *get() const noexcept { return model_.get(); }

private:
    std::unique_ptr<pg_model, detail::FreeModel> model_;
};

// ---- Session: one conversation

namespace detail {
// What the C callback needs to reach a C++ callable: a plain function that calls it (false:
// stop), and where to keep what it threw.
struct PieceSink {
    void *callable;
    bool (*call)(void *callable, std::string_view piece);
    std::exception_ptr thrown;
    bool stopped = false;
};

// The pg_token_callback given to pg_session_chat: C language linkage, and nothing thrown out.
extern "C" inline int pandagpt_hpp_on_piece(const char *piece, std::size_t len, std::int32_t,
                                            void *user_data) noexcept
{
    auto *sink = static_cast<PieceSink *>(user_data);
    try {
        if (sink->call(sink->callable, std::string_view(piece, len)))
            return 0;
        sink->stopped = true;
    } catch (...) {
        sink->thrown = std::current_exception();
    }
    return 1; // nonzero: pg_session_chat stops and returns PG_ERR_CANCELLED
}
} // namespace detail

class Session {
public:
    // A conversation on model, which must outlive the session.
    explicit Session(Model &model, const SessionParams &params = SessionParams())
    {
        pg_session *s = nullptr;
        check(pg_session_new(model.get(), &params, &s));
        session_.reset(s);
    }

    // One chat turn (pg_session_chat), streaming the answer to on_piece(std::string_view),
    // which returns void, or bool where false stops the answer. Returns the answer; after a stop
    // it is what was streamed, and the turn does not join the history. Whatever on_piece throws
    // is rethrown here, the session unchanged as after any failed turn.
    template <class OnPiece,
              class = std::enable_if_t<std::is_invocable_v<OnPiece &, std::string_view>>>
    std::string chat(const std::string &text, const MediaList &media, OnPiece &&on_piece,
                     const GenerateParams &params = GenerateParams())
    {
        using F = std::remove_reference_t<OnPiece>;
        if constexpr (std::is_function_v<F>) {
            return chat(text, media, &on_piece, params); // a function: call through a pointer
        } else {
            detail::PieceSink sink;
            sink.callable = const_cast<void *>(static_cast<const void *>(std::addressof(on_piece)));
            sink.call = [](void *callable, std::string_view piece) -> bool {
                F &f = *static_cast<F *>(callable);
                if constexpr (std::is_void_v<std::invoke_result_t<F &, std::string_view>>) {
                    f(piece);
                    return true;
                } else {
                    return static_cast<bool>(f(piece));
                }
            };
            pg_status st = pg_session_chat(session_.get(), text.c_str(), media.data(),
                                           media.size(), &params, detail::pandagpt_hpp_on_piece,
                                           &sink);
            if (sink.thrown)
                std::rethrow_exception(sink.thrown);
            if (!(st == PG_ERR_CANCELLED && sink.stopped))
                check(st);
            return answer();
        }
    }
    // The same without streaming.
    std::string chat(const std::string &text, const MediaList &media = MediaList(),
                     const GenerateParams &params = GenerateParams())
    {
        check(pg_session_chat(session_.get(), text.c_str(), media.data(), media.size(), &params,
                              nullptr, nullptr));
        return answer();
    }

    // The last turn's answer (pg_session_answer).
    std::string answer() const
    {
        std::string text(256, '\0');
        std::size_t len = 0;
        for (;;) {
            pg_status st = pg_session_answer(session_.get(), &text[0], text.size(), &len);
            if (st == PG_OK)
                break;
            if (len <= text.size())
                check(st); // not "buffer too small": a real error
            text.resize(len);
        }
        text.resize(len);
        return text;
    }

    // Forgets the conversation: history, modality slot, KV cache (pg_session_reset).
    void reset() { check(pg_session_reset(session_.get())); }

    // Where the time of the last turn went (pg_session_timings).
    pg_timings timings() const
    {
        pg_timings t{};
        t.struct_size = sizeof t;
        check(pg_session_timings(session_.get(), &t));
        return t;
    }
    std::int32_t n_past() const noexcept { return pg_session_n_past(session_.get()); }
    std::int32_t n_ctx() const noexcept { return pg_session_n_ctx(session_.get()); }

    pg_session *get() const noexcept { return session_.get(); }

private:
    std::unique_ptr<pg_session, detail::FreeSession> session_;
};

} // namespace pandagpt

#endif // PANDAGPT_HPP
