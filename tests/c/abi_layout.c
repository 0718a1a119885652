/* Prints the header's struct sizes and field offsets, status codes with their texts, and enum
 * constants; tests/capi_header.rs compares every line with the Rust definitions. */
#include <stddef.h>
#include <stdio.h>

#include "tinv.h"

#define SIZE(t) printf("sizeof %s %zu\n", #t, sizeof(t))
#define OFF(t, f) printf("offsetof %s %s %zu\n", #t, #f, offsetof(t, f))
#define CONST(c) printf("const %s %u\n", #c, (unsigned)(c))

static const tinv_status statuses[] = {
    TINV_OK, TINV_ERR_NULL_ARG, TINV_ERR_INVALID_ARG, TINV_ERR_BUFFER_TOO_SMALL,
    TINV_ERR_INPUT_LENGTH, TINV_ERR_INVALID_INPUT, TINV_ERR_INVALID_HANDLE,
    TINV_ERR_OPTIONS_VERSION, TINV_ERR_SESSION_BUSY, TINV_ERR_NUMERIC, TINV_ERR_IO, TINV_ERR_FORMAT,
    TINV_ERR_CHECKSUM, TINV_ERR_MODEL, TINV_ERR_BACKEND_UNAVAILABLE, TINV_ERR_BACKEND,
    TINV_ERR_ENGINES_STALE, TINV_ERR_OUT_OF_MEMORY, TINV_ERR_OUT_OF_HANDLES, TINV_ERR_PANIC,
    TINV_ERR_INTERNAL,
};

int main(void) {
    size_t i;
    SIZE(tinv_model_options);
    SIZE(tinv_session_options);
    SIZE(tinv_stats);
    SIZE(tinv_status);
    SIZE(tinv_backend);
    SIZE(tinv_mode);
    SIZE(tinv_pixels);
    OFF(tinv_model_options, struct_size);
    OFF(tinv_model_options, backend);
    OFF(tinv_model_options, verify);
    OFF(tinv_model_options, reserved);
    OFF(tinv_model_options, engines_dir);
    OFF(tinv_session_options, struct_size);
    OFF(tinv_session_options, mode);
    OFF(tinv_session_options, threshold);
    OFF(tinv_session_options, budget);
    OFF(tinv_session_options, max_batch);
    OFF(tinv_session_options, threads);
    OFF(tinv_stats, depth);
    OFF(tinv_stats, path);
    OFF(tinv_stats, start_depth);
    OFF(tinv_stats, escalations);
    OFF(tinv_stats, flops);
    OFF(tinv_stats, weight_bytes);
    OFF(tinv_stats, class_id);
    OFF(tinv_stats, confidence);
    OFF(tinv_stats, predicted_path);
    OFF(tinv_stats, reserved);
    OFF(tinv_stats, latency_us);
    for (i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        printf("status %u %s\n", (unsigned)statuses[i], tinv_status_str(statuses[i]));
    CONST(TINV_BACKEND_AUTO);
    CONST(TINV_BACKEND_CPU);
    CONST(TINV_BACKEND_TENSORRT);
    CONST(TINV_MODE_ADAPTIVE);
    CONST(TINV_MODE_GRAPH);
    CONST(TINV_MODE_THRESHOLD);
    CONST(TINV_PIXELS_GRAY8);
    CONST(TINV_PIXELS_RGB8);
    CONST(TINV_PIXELS_BGR8);
    CONST(TINV_PIXELS_RGBA8);
    CONST(TINV_PIXELS_BGRA8);
    return 0;
}
