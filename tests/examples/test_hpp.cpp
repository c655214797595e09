// test_hpp.cpp — the C++ wrappers of examples/cpp/pandagpt.hpp on the demo model: errors become
// pandagpt::Error with status and message, an exception thrown by the streaming callable comes
// out of chat() (not through the C frames) and leaves the session usable, a callable returning
// false stops the answer, handles move.
//   test_hpp DEMO-LLM.gguf DEMO-ENCODER.gguf DEMO.png
// Exit status 0 passed, 1 failed (each failure says what was expected and what came), 77 skipped
// (a build without libpng cannot decode the demo picture).
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "pandagpt.hpp"

namespace {

int g_failures = 0;

void expect(bool ok, const char *what, const std::string &got = std::string())
{
    if (!ok) {
        std::printf("FAIL: %s%s%s\n", what, got.empty() ? "" : "; got: ", got.c_str());
        g_failures++;
    }
}

// A custom exception that the callable throws, to tell it from pandagpt::Error.
struct Stop : std::runtime_error {
    explicit Stop(int n) : std::runtime_error("stop after " + std::to_string(n)), pieces(n) {}
    int pieces;
};

static_assert(!std::is_copy_constructible_v<pandagpt::Model>, "Model is move-only");
static_assert(!std::is_copy_constructible_v<pandagpt::Session>, "Session is move-only");
static_assert(!std::is_copy_constructible_v<pandagpt::Media>, "Media is move-only");
static_assert(std::is_nothrow_move_constructible_v<pandagpt::Media>, "Media moves");

} // namespace

int main(int argc, char **argv)
{
    if (argc != 4) {
        std::fprintf(stderr, "usage: test_hpp DEMO-LLM.gguf DEMO-ENCODER.gguf DEMO.png\n");
        return 2;
    }
    const std::string llm = argv[1], encoder = argv[2], png = argv[3];

    // A missing file: Error carrying PG_ERR_IO and a message naming the file.
    try {
        pandagpt::Media missing(PG_MODALITY_IMAGE, png + ".missing.png");
        expect(false, "loading a missing file throws");
    } catch (const pandagpt::Error &e) {
        expect(e.status() == PG_ERR_IO, "missing file: status PG_ERR_IO",
               pg_status_string(e.status()));
        expect(e.message().find(png + ".missing.png") != std::string::npos,
               "missing file: the message names the file", e.message());
        expect(std::string(e.what()).rfind("PG_ERR_IO", 0) == 0,
               "what() starts with the status name", e.what());
    }

    try {
        std::vector<pandagpt::Media> media;
        try {
            media.emplace_back(PG_MODALITY_IMAGE, png);
        } catch (const pandagpt::Error &e) {
            if (e.status() == PG_ERR_UNSUPPORTED) {
                std::printf("SKIP: this build cannot decode %s: %s\n", png.c_str(), e.what());
                return 77;
            }
            throw;
        }
        pandagpt::Media moved = std::move(media[0]);
        expect(media[0].get() == nullptr && moved.get() != nullptr,
               "a moved-from Media holds nothing");
        media[0] = std::move(moved);

        // Embedding-only model: embed() gives a unit vector (IMAGE is L2-normalised).
        {
            pandagpt::ModelParams params;
            params.encoder_path = encoder.c_str();
            pandagpt::Model encoder_only("", params);
            std::vector<float> v = encoder_only.embed(media[0]);
            double norm = 0.0;
            for (float x : v)
                norm += static_cast<double>(x) * x;
            expect(!v.empty() && v.size() == static_cast<size_t>(encoder_only.embed_dim()),
                   "embed() returns embed_dim floats", std::to_string(v.size()));
            expect(std::fabs(std::sqrt(norm) - 1.0) < 1e-4, "the image embedding has norm 1",
                   std::to_string(std::sqrt(norm)));
            try {
                pandagpt::Session s(encoder_only);
                expect(false, "a session on an embedding-only model throws");
            } catch (const pandagpt::Error &e) {
                expect(e.status() == PG_ERR_INVALID_ARGUMENT,
                       "session on an embedding-only model: PG_ERR_INVALID_ARGUMENT", e.what());
            }
        }

        pandagpt::ModelParams params;
        params.encoder_path = encoder.c_str();
        pandagpt::Model model(llm, params);
        const std::string question = "What is in this image?";

        // The reference: a fresh session's answer, streamed piece by piece.
        std::string streamed;
        int n_pieces = 0;
        std::string reference;
        {
            pandagpt::Session fresh(model);
            reference = fresh.chat(question, media, [&](std::string_view piece) {
                streamed += piece;
                n_pieces++;
            });
        }
        expect(!reference.empty(), "the demo model answers");
        expect(streamed == reference, "the streamed pieces make the answer", streamed);
        expect(n_pieces > 1, "the answer comes in more than one piece", std::to_string(n_pieces));

        // A callable that throws: chat() rethrows that very exception, the session stays usable.
        pandagpt::Session session(model);
        int calls = 0;
        try {
            session.chat(question, media, [&](std::string_view) {
                if (++calls == 2)
                    throw Stop(calls);
            });
            expect(false, "an exception thrown by the callable comes out of chat()");
        } catch (const Stop &e) {
            expect(e.pieces == 2 && calls == 2, "the callable is not called after it threw",
                   std::to_string(calls));
        }
        std::string again = session.chat(question, media);
        expect(again == reference, "after the exception the same turn gives the same answer",
               again);

        // A callable returning false: the answer stops there, no exception.
        session.reset();
        std::string partial_streamed;
        std::string partial = session.chat(question, media, [&](std::string_view piece) {
            partial_streamed += piece;
            return false;
        });
        expect(!partial.empty() && partial == partial_streamed &&
                   reference.compare(0, partial.size(), partial) == 0,
               "stopping after one piece returns that piece", partial);

        // Handles move: the session keeps working from its new owner.
        pandagpt::Session moved_session = std::move(session);
        expect(session.get() == nullptr, "a moved-from Session holds nothing");
        moved_session.reset();
        std::string text = moved_session.chat("Tell me about pandas.");
        expect(!text.empty() && text == moved_session.answer(), "text-only turn after a move",
               text);
        pg_timings t = moved_session.timings();
        expect(t.n_generated > 0, "timings of the last turn", std::to_string(t.n_generated));
        expect(!model.tokenize("hello panda").empty(), "tokenize");
    } catch (const std::exception &e) {
        std::printf("FAIL: unexpected exception: %s\n", e.what());
        return 1;
    }
    if (g_failures == 0)
        std::printf("pandagpt.hpp: all checks passed\n");
    return g_failures ? 1 : 0;
}
