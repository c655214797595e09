/* consumer.c — a program built against an installed libpandagpt (tests/install/run.sh builds it
 * with pkg-config and with CMake from a staged install, and runs it). It checks that the header
 * it was compiled with and the library it runs with are the same version, and that an error
 * comes back as a status and a message. */
#include <pandagpt.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    char header_version[32];
    snprintf(header_version, sizeof header_version, "%d.%d.%d", PG_VERSION_MAJOR,
             PG_VERSION_MINOR, PG_VERSION_PATCH);
    uint32_t header_packed =
        ((uint32_t)PG_VERSION_MAJOR << 16) | ((uint32_t)PG_VERSION_MINOR << 8) | PG_VERSION_PATCH;

    pg_model *m = NULL;
    pg_status s = pg_model_load("/nonexistent.gguf", NULL, &m);
    printf("libpandagpt %s (header %s): load of a missing file -> %s (%s)\n", pg_version_string(),
           header_version, pg_status_string(s), pg_last_error());
    if (strcmp(pg_version_string(), header_version) != 0 || pg_version() != header_packed) {
        fprintf(stderr, "consumer: library version %s (0x%06x), header %s (0x%06x)\n",
                pg_version_string(), (unsigned)pg_version(), header_version,
                (unsigned)header_packed);
        return 1;
    }
    if (s != PG_ERR_IO || m != NULL || pg_last_error()[0] == '\0') {
        fprintf(stderr, "consumer: expected PG_ERR_IO, a NULL model and a message\n");
        return 1;
    }
    return 0;
}
