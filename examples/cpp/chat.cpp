// chat.cpp — chat with PandaGPT from C++17 through pandagpt.hpp (RAII wrappers over the C API).
//
//   chat vicuna.gguf --encoder imagebind.gguf --image cat.png --audio meow.wav "What is this?"
//   chat vicuna.gguf "Tell me about pandas."
//   chat vicuna.gguf --encoder imagebind.gguf --image cat.png    (questions from stdin)
//
// With a question, answers it and exits. Without one, each line of stdin is a turn of the same
// conversation. The media (--image, --audio, --video, --thermal, --depth; each repeatable) go
// into the first turn, summed into its modality slot as in PandaGPT's demo; later turns talk
// about the same media. The answer streams to stdout; errors go to stderr.
// Exit status: 0 done, 1 failed (the library's message says why), 2 usage error.
#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pandagpt.hpp"

namespace {

struct MediaFlag {
    const char *flag;
    pg_modality modality;
};
constexpr MediaFlag kMediaFlags[] = {
    {"--image", PG_MODALITY_IMAGE},     {"--audio", PG_MODALITY_AUDIO},
    {"--video", PG_MODALITY_VIDEO},     {"--thermal", PG_MODALITY_THERMAL},
    {"--depth", PG_MODALITY_DEPTH},
};

int usage()
{
    std::cerr << "usage: chat LLM.gguf [--encoder ENCODER.gguf] [--image F] [--audio F]\n"
                 "            [--video F] [--thermal F] [--depth F] [QUESTION]\n"
                 "(without QUESTION, each line of stdin is a turn)\n";
    return 2;
}

// Streams the answer to stdout; stops it if stdout fails (a closed pipe).
bool print_piece(std::string_view piece)
{
    std::cout << piece << std::flush;
    return static_cast<bool>(std::cout);
}

} // namespace

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-')
        return usage();
    const std::string llm_path = argv[1];
    std::string encoder_path, question;
    std::vector<std::pair<pg_modality, std::string>> media_files;
    bool have_question = false;
    for (int i = 2; i < argc; i++) {
        const std::string_view arg = argv[i];
        const MediaFlag *media_flag = nullptr;
        for (const MediaFlag &f : kMediaFlags)
            if (arg == f.flag)
                media_flag = &f;
        if ((media_flag || arg == "--encoder") && i + 1 == argc) {
            std::cerr << "chat: " << arg << " needs a file\n";
            return usage();
        }
        if (media_flag)
            media_files.emplace_back(media_flag->modality, argv[++i]);
        else if (arg == "--encoder")
            encoder_path = argv[++i];
        else if (arg.size() > 1 && arg[0] == '-') {
            std::cerr << "chat: unknown flag " << arg << "\n";
            return usage();
        } else if (have_question) {
            std::cerr << "chat: one question at most (quote it)\n";
            return usage();
        } else {
            question = arg;
            have_question = true;
        }
    }
    if (!media_files.empty() && encoder_path.empty()) {
        std::cerr << "chat: media need an encoder: --encoder ENCODER.gguf\n";
        return usage();
    }

    try {
        // Media first: a missing file fails before the model is loaded.
        std::vector<pandagpt::Media> media;
        for (const auto &[modality, path] : media_files)
            media.emplace_back(modality, path);

        pandagpt::ModelParams params;
        if (!encoder_path.empty())
            params.encoder_path = encoder_path.c_str();
        pandagpt::Model model(llm_path, params);
        pandagpt::Session session(model); // declared after the model: destroyed before it

        if (have_question) {
            session.chat(question, media, print_piece);
            std::cout << '\n';
            return std::cout ? 0 : 1;
        }
        // The first turn brings the media; later turns reuse its modality slot, so none are
        // given to them again (pg_session_chat would not encode them).
        bool first = true;
        for (std::string line; std::getline(std::cin, line);) {
            if (line.empty())
                continue;
            session.chat(line, first ? pandagpt::MediaList(media) : pandagpt::MediaList(),
                         print_piece);
            std::cout << '\n';
            if (!std::cout)
                return 1; // stdout is gone: nobody reads the answers
            first = false;
        }
        return 0;
    } catch (const std::exception &e) {
        // pandagpt::Error's what() is the status name and pg_last_error(): "PG_ERR_IO: ..."
        std::cerr << "chat: " << e.what() << '\n';
    }
    return 1;
}
