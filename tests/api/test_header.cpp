// test_header.cpp — pandagpt.h compiles as C++ and links (extern "C" names).
#include <pandagpt.h>
#include <cstdio>
#include <string_view>

int main() {
    pg_generate_params gp;
    pg_generate_params_init(&gp);
    const bool ok = gp.top_k == 50 && std::string_view(pg_version_string()).size() > 0 &&
                    pg_status_string(PG_ERR_CONTEXT_FULL) != nullptr;
    std::printf("header (C++): %s\n", ok ? "ok" : "MISMATCH");
    return ok ? 0 : 1;
}
