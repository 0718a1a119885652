/*
 * Shared by the C and C++ tests: CHECK macros and the reader of the expectation file that
 * tests/capi.rs writes with the Rust API (little-endian; layout below).
 *
 *   "TINVEXP1"                                    8 bytes
 *   u32 n, input_len, classes, paths
 *   u32 depth[paths]; u64 flops[paths]            (Model::costs)
 *   f32 input[n * input_len]
 *   per path k:  f32 logits[n * classes]; u64 flops[n]     (Session::infer_depth, batch n)
 *   adaptive:    f32 logits[n * classes]                    (Session::infer, defaults, batch n)
 *                per input: u32 depth, path, start_depth, escalations, class;
 *                           i32 predicted_path; u64 flops, weight_bytes; f32 confidence
 */
#ifndef TINV_TEST_EXPECT_H
#define TINV_TEST_EXPECT_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinv.h"

extern int g_failures;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
            g_failures++;                                                                  \
        }                                                                                  \
    } while (0)

/* Checks a call's status and, for failures, that tinv_last_error() is non-empty. */
#define CHECK_STATUS(call, want)                                                           \
    do {                                                                                   \
        tinv_status got_ = (call);                                                         \
        if (got_ != (want)) {                                                              \
            fprintf(stderr, "%s:%d: %s returned %d (%s: %s), expected %d\n", __FILE__,     \
                    __LINE__, #call, (int)got_, tinv_status_str(got_), tinv_last_error(),  \
                    (int)(want));                                                          \
            g_failures++;                                                                  \
        } else if ((want) != TINV_OK && tinv_last_error()[0] == '\0') {                    \
            fprintf(stderr, "%s:%d: %s failed without a message\n", __FILE__, __LINE__,    \
                    #call);                                                                \
            g_failures++;                                                                  \
        }                                                                                  \
    } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, TINV_OK)

typedef struct expect_stats {
    uint32_t depth, path, start_depth, escalations, class_id;
    int32_t predicted_path;
    uint64_t flops, weight_bytes;
    float confidence;
} expect_stats;

typedef struct expectation {
    uint32_t n, input_len, classes, paths;
    uint32_t *depth;
    uint64_t *path_flops;
    float *input;
    float *path_logits;      /* [paths][n * classes] */
    uint64_t *path_stats_flops; /* [paths][n] */
    float *adaptive_logits;  /* [n * classes] */
    expect_stats *adaptive;  /* [n] */
} expectation;

static inline int expect_read(FILE *f, void *dst, size_t size, size_t count) {
    return fread(dst, size, count, f) == count;
}

/* Loads the file; returns 0 on any error (message on stderr). */
static inline int expectation_load(const char *path, expectation *e) {
    char magic[8];
    uint32_t k, i;
    int ok;
    FILE *f = fopen(path, "rb");
    memset(e, 0, sizeof *e);
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 0;
    }
    ok = expect_read(f, magic, 1, 8) && memcmp(magic, "TINVEXP1", 8) == 0 &&
         expect_read(f, &e->n, 4, 1) && expect_read(f, &e->input_len, 4, 1) &&
         expect_read(f, &e->classes, 4, 1) && expect_read(f, &e->paths, 4, 1) && e->n > 0 &&
         e->paths > 0;
    if (ok) {
        e->depth = (uint32_t *)calloc(e->paths, sizeof *e->depth);
        e->path_flops = (uint64_t *)calloc(e->paths, sizeof *e->path_flops);
        e->input = (float *)calloc((size_t)e->n * e->input_len, sizeof *e->input);
        e->path_logits = (float *)calloc((size_t)e->paths * e->n * e->classes, sizeof(float));
        e->path_stats_flops = (uint64_t *)calloc((size_t)e->paths * e->n, sizeof(uint64_t));
        e->adaptive_logits = (float *)calloc((size_t)e->n * e->classes, sizeof(float));
        e->adaptive = (expect_stats *)calloc(e->n, sizeof *e->adaptive);
        ok = e->depth && e->path_flops && e->input && e->path_logits && e->path_stats_flops &&
             e->adaptive_logits && e->adaptive;
    }
    ok = ok && expect_read(f, e->depth, 4, e->paths) && expect_read(f, e->path_flops, 8, e->paths) &&
         expect_read(f, e->input, 4, (size_t)e->n * e->input_len);
    for (k = 0; ok && k < e->paths; k++) {
        ok = expect_read(f, e->path_logits + (size_t)k * e->n * e->classes, 4,
                         (size_t)e->n * e->classes) &&
             expect_read(f, e->path_stats_flops + (size_t)k * e->n, 8, e->n);
    }
    ok = ok && expect_read(f, e->adaptive_logits, 4, (size_t)e->n * e->classes);
    for (i = 0; ok && i < e->n; i++) {
        expect_stats *s = &e->adaptive[i];
        ok = expect_read(f, &s->depth, 4, 1) && expect_read(f, &s->path, 4, 1) &&
             expect_read(f, &s->start_depth, 4, 1) && expect_read(f, &s->escalations, 4, 1) &&
             expect_read(f, &s->class_id, 4, 1) && expect_read(f, &s->predicted_path, 4, 1) &&
             expect_read(f, &s->flops, 8, 1) && expect_read(f, &s->weight_bytes, 8, 1) &&
             expect_read(f, &s->confidence, 4, 1);
    }
    if (ok && fgetc(f) != EOF) ok = 0;
    fclose(f);
    if (!ok) fprintf(stderr, "%s: malformed expectation file\n", path);
    return ok;
}

static inline void expectation_free(expectation *e) {
    free(e->depth);
    free(e->path_flops);
    free(e->input);
    free(e->path_logits);
    free(e->path_stats_flops);
    free(e->adaptive_logits);
    free(e->adaptive);
    memset(e, 0, sizeof *e);
}

/* Largest |a - b| / max(1, |b|) over n floats. */
static inline double max_rel_diff(const float *a, const float *b, size_t n) {
    double worst = 0.0;
    size_t i;
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double s = fabs((double)b[i]) > 1.0 ? fabs((double)b[i]) : 1.0;
        if (!(d / s <= worst)) worst = d / s; /* also catches NaN */
    }
    return worst;
}

/* Tolerance for logits: TINV_TEST_TOL (e.g. on another architecture), else 1e-5 (same
 * machine, same code: results are expected to be bit-identical; the slack is for libm). */
static inline double expect_tolerance(void) {
    const char *t = getenv("TINV_TEST_TOL");
    return t ? atof(t) : 1e-5;
}

#endif
