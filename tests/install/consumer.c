/* consumer.c — a program built against an installed libpandagpt with pkg-config only
 * (scripts/test.sh installs into a temporary prefix, builds this, and runs it). */
#include <pandagpt.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    pg_model *m = NULL;
    pg_status s = pg_model_load("/nonexistent.gguf", NULL, &m);
    printf("libpandagpt %s: load of a missing file -> %s (%s)\n", pg_version_string(),
           pg_status_string(s), pg_last_error());
    return s == PG_ERR_IO && m == NULL && strcmp(pg_version_string(), "0.1.0") == 0 ? 0 : 1;
}
