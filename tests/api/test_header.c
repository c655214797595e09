/* test_header.c — pandagpt.h compiles alone as strict C99 and its constants are what the
 * contract fixes. */
#include <pandagpt.h>
#include <stdio.h>

int main(void) {
    pg_model_params mp;
    pg_session_params sp;
    pg_generate_params gp;
    pg_model_params_init(&mp);
    pg_session_params_init(&sp);
    pg_generate_params_init(&gp);
    int ok = PG_OK == 0 && PG_ERR_INTERNAL == 9 && PG_DEVICE_CUDA == 2 && PG_MODALITY_IMU == 5 &&
             mp.struct_size == sizeof mp && gp.max_tokens == 256 &&
             pg_version() == ((PG_VERSION_MAJOR << 16) | (PG_VERSION_MINOR << 8) | PG_VERSION_PATCH);
    printf("header (C): %s, version %s\n", ok ? "ok" : "MISMATCH", pg_version_string());
    return ok ? 0 : 1;
}
