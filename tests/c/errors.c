/* Error paths of the C API: every pointer argument NULL, bad files and options, buffer and input
 * checks, stale / double-freed / wrong-kind handles. Outputs must be untouched on failure. */
#include <stdint.h>

#include "suite.h"

#define SENTINEL 1234.5f

static void test_null_args(const char *path, tinv_model *m, tinv_session *s, const expectation *e) {
    size_t z = 0, in_len = (size_t)e->n * e->input_len, out_len = (size_t)e->n * e->classes;
    uint64_t u = 0;
    uint32_t b = 0;
    float f = 0.0f, *logits = (float *)malloc(out_len * sizeof(float));
    tinv_model *mo = NULL;
    tinv_session *so = NULL;
    tinv_stats st[1];
    static const char bytes[4] = {0, 1, 2, 3};

    CHECK_STATUS(tinv_model_open(NULL, NULL, &mo), TINV_ERR_NULL_ARG);
    CHECK(strstr(tinv_last_error(), "'path'") != NULL);
    CHECK_STATUS(tinv_model_open(path, NULL, NULL), TINV_ERR_NULL_ARG);
    CHECK(strstr(tinv_last_error(), "'out'") != NULL);
    CHECK_STATUS(tinv_model_open_bytes(NULL, 4, NULL, &mo), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_open_bytes(bytes, 4, NULL, NULL), TINV_ERR_NULL_ARG);
    CHECK(mo == NULL);
    CHECK_OK(tinv_model_free(NULL));
    CHECK_OK(tinv_session_free(NULL));

    CHECK_STATUS(tinv_model_input_shape(NULL, &z, &z, &z), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_input_shape(m, NULL, &z, &z), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_input_shape(m, &z, NULL, &z), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_input_shape(m, &z, &z, NULL), TINV_ERR_NULL_ARG);
    CHECK(strstr(tinv_last_error(), "'width'") != NULL);
    CHECK_STATUS(tinv_model_input_len(NULL, &z), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_input_len(m, NULL), TINV_ERR_NULL_ARG);
    {
        /* Every out pointer is checked for alignment, not only the float and stats buffers. */
        size_t words[2] = {7, 7};
        size_t *odd = (size_t *)(void *)((char *)words + 1);
        CHECK_STATUS(tinv_model_input_len(m, odd), TINV_ERR_INVALID_ARG);
        CHECK(strstr(tinv_last_error(), "'out' is misaligned") != NULL);
        CHECK_STATUS(tinv_session_last_stats(s, st, 1, odd), TINV_ERR_INVALID_ARG);
        CHECK(words[0] == 7 && words[1] == 7);
    }
    CHECK_STATUS(tinv_model_num_classes(NULL, &z), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_num_classes(m, NULL), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_num_paths(NULL, &z), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_num_paths(m, NULL), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_path_info(NULL, 0, &z, &u), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_path_info(m, 0, NULL, &u), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_path_info(m, 0, &z, NULL), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_weight_bytes(NULL, &u), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_weight_bytes(m, NULL), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_default_budget(NULL, &f), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_default_budget(m, NULL), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_backend(NULL, &b), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_model_backend(m, NULL), TINV_ERR_NULL_ARG);

    CHECK_STATUS(tinv_session_open(NULL, NULL, &so), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_session_open(m, NULL, NULL), TINV_ERR_NULL_ARG);
    CHECK(so == NULL);
    CHECK_STATUS(tinv_session_infer(NULL, e->input, in_len, e->n, logits, out_len), TINV_ERR_NULL_ARG);
    CHECK(strstr(tinv_last_error(), "tinv_session_infer: argument 'session'") != NULL);
    CHECK_STATUS(tinv_session_infer(s, NULL, in_len, e->n, logits, out_len), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_session_infer(s, e->input, in_len, e->n, NULL, out_len), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_session_infer_depth(NULL, e->input, in_len, e->n, e->depth[0], logits, out_len),
                 TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_session_infer_depth(s, NULL, in_len, e->n, e->depth[0], logits, out_len),
                 TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_session_infer_depth(s, e->input, in_len, e->n, e->depth[0], NULL, out_len),
                 TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_session_set_budget(NULL, 0.5f), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_session_set_mode(NULL, TINV_MODE_GRAPH, 0.0f), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_session_last_stats(NULL, st, 1, &z), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_session_last_stats(s, NULL, 1, &z), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_session_last_stats(s, st, 1, NULL), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_session_arena_bytes(NULL, &z), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_session_arena_bytes(s, NULL), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_session_max_batch(NULL, &z), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_session_max_batch(s, NULL), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_session_threads(NULL, &z), TINV_ERR_NULL_ARG);
    CHECK_STATUS(tinv_session_threads(s, NULL), TINV_ERR_NULL_ARG);
    free(logits);
}

static void test_bad_files_and_options(const char *path, tinv_model *m) {
    tinv_model *mo = NULL;
    tinv_session *so = NULL;
    tinv_model_options opt = tinv_model_options_default();
    tinv_session_options sopt = tinv_session_options_default();
    static const char garbage[64] = "this is not a tinv file, it is sixty-four bytes of text......";
    size_t z = 7;
    uint64_t u = 7;

    CHECK_STATUS(tinv_model_open("/nonexistent/dir/model.tinv", NULL, &mo), TINV_ERR_IO);
    CHECK(strstr(tinv_last_error(), "/nonexistent/dir/model.tinv") != NULL);
    CHECK_STATUS(tinv_model_open("/", NULL, &mo), TINV_ERR_IO);
    CHECK(strstr(tinv_last_error(), "/: is a directory") != NULL);
    /* The message stays one line when the path does not. */
    CHECK_STATUS(tinv_model_open("/nonexistent/new\nline\r.tinv", NULL, &mo), TINV_ERR_IO);
    CHECK(strstr(tinv_last_error(), "/nonexistent/new line .tinv") != NULL);
    CHECK(strchr(tinv_last_error(), '\n') == NULL && strchr(tinv_last_error(), '\r') == NULL);
    CHECK_STATUS(tinv_model_open_bytes(garbage, sizeof garbage, NULL, &mo), TINV_ERR_FORMAT);
    CHECK_STATUS(tinv_model_open_bytes(garbage, 3, NULL, &mo), TINV_ERR_FORMAT);
    CHECK_STATUS(tinv_model_open_bytes(garbage, 0, NULL, &mo), TINV_ERR_FORMAT);
    CHECK(mo == NULL);

    opt.backend = TINV_BACKEND_TENSORRT;
    CHECK_STATUS(tinv_model_open(path, &opt, &mo), TINV_ERR_BACKEND_UNAVAILABLE);
    /* CPU-only build: not built; TensorRT build: no engines beside this scratch model. */
    CHECK(strstr(tinv_last_error(), "TensorRT") != NULL);
    opt.backend = 7;
    CHECK_STATUS(tinv_model_open(path, &opt, &mo), TINV_ERR_INVALID_ARG);
    opt = tinv_model_options_default();
    opt.struct_size = 8;
    CHECK_STATUS(tinv_model_open(path, &opt, &mo), TINV_ERR_OPTIONS_VERSION);
    opt = tinv_model_options_default();
    opt.reserved = 1;
    CHECK_STATUS(tinv_model_open(path, &opt, &mo), TINV_ERR_INVALID_ARG);
    CHECK(mo == NULL);
    opt = tinv_model_options_default();
    opt.backend = TINV_BACKEND_CPU;
    opt.verify = 1;
    CHECK_OK(tinv_model_open(path, &opt, &mo));
    CHECK(mo != NULL);
    CHECK_OK(tinv_model_free(mo));

    sopt.struct_size = sizeof sopt + 4;
    CHECK_STATUS(tinv_session_open(m, &sopt, &so), TINV_ERR_OPTIONS_VERSION);
    sopt = tinv_session_options_default();
    sopt.max_batch = 5000;
    CHECK_STATUS(tinv_session_open(m, &sopt, &so), TINV_ERR_INVALID_ARG);
    sopt = tinv_session_options_default();
    sopt.threads = 1000;
    CHECK_STATUS(tinv_session_open(m, &sopt, &so), TINV_ERR_INVALID_ARG);
    sopt = tinv_session_options_default();
    sopt.mode = 9;
    CHECK_STATUS(tinv_session_open(m, &sopt, &so), TINV_ERR_INVALID_ARG);
    sopt = tinv_session_options_default();
    sopt.mode = TINV_MODE_THRESHOLD;
    sopt.threshold = 1.5f;
    CHECK_STATUS(tinv_session_open(m, &sopt, &so), TINV_ERR_INVALID_ARG);
    sopt = tinv_session_options_default();
    sopt.budget = 2.0f;
    CHECK_STATUS(tinv_session_open(m, &sopt, &so), TINV_ERR_INVALID_ARG);
    sopt.budget = NAN;
    CHECK_STATUS(tinv_session_open(m, &sopt, &so), TINV_ERR_INVALID_ARG);
    CHECK(so == NULL);
    /* Zero-initialised counts mean 1. */
    sopt = tinv_session_options_default();
    sopt.max_batch = 0;
    sopt.threads = 0;
    CHECK_OK(tinv_session_open(m, &sopt, &so));
    CHECK_OK(tinv_session_max_batch(so, &z));
    CHECK(z == 1);
    CHECK_OK(tinv_session_free(so));

    CHECK_STATUS(tinv_model_path_info(m, 1000, &z, &u), TINV_ERR_INVALID_ARG);
    CHECK(z == 1 && u == 7); /* untouched on failure */
}

/* Input and buffer checks; the logits buffer keeps its sentinel on every failure. */
static void test_buffers(tinv_session *s, const expectation *e) {
    size_t n = e->n, i, count = 99, in_len = (size_t)n * e->input_len, out_len = (size_t)n * e->classes;
    float *logits = (float *)malloc(out_len * sizeof(float));
    float *bad = (float *)malloc(in_len * sizeof(float));
    tinv_stats *st = (tinv_stats *)calloc(n, sizeof *st);
    int untouched = 1;
    for (i = 0; i < out_len; i++) logits[i] = SENTINEL;

    CHECK_STATUS(tinv_session_infer(s, e->input, in_len, n, logits, out_len - 1), TINV_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(tinv_session_infer(s, e->input, in_len - 1, n, logits, out_len), TINV_ERR_INPUT_LENGTH);
    CHECK_STATUS(tinv_session_infer(s, e->input, in_len + 1, n, logits, out_len), TINV_ERR_INPUT_LENGTH);
    CHECK_STATUS(tinv_session_infer(s, e->input, 0, n, logits, out_len), TINV_ERR_INPUT_LENGTH);
    CHECK_STATUS(tinv_session_infer(s, e->input, 0, 0, logits, out_len), TINV_ERR_INVALID_ARG);
    CHECK_STATUS(tinv_session_infer(s, e->input, in_len, n + 1, logits, out_len), TINV_ERR_INVALID_ARG);
    CHECK_STATUS(tinv_session_infer(s, e->input, SIZE_MAX, n, logits, out_len), TINV_ERR_INPUT_LENGTH);
    CHECK_STATUS(tinv_session_infer_depth(s, e->input, in_len, n, e->depth[e->paths - 1] + 1, logits, out_len),
                 TINV_ERR_INVALID_ARG);
    CHECK_STATUS(tinv_session_infer_depth(s, e->input, in_len, n, 0, logits, out_len), TINV_ERR_INVALID_ARG);
    CHECK_STATUS(tinv_session_infer((tinv_session *)s, (const float *)((const char *)e->input + 1),
                                    in_len, n, logits, out_len),
                 TINV_ERR_INVALID_ARG);
    CHECK(strstr(tinv_last_error(), "tinv_session_infer: argument 'input' is misaligned") != NULL);
    /* Alignment is checked before any length, and each pointer is named. */
    CHECK_STATUS(tinv_session_infer_depth(s, e->input, in_len + 1, n, e->depth[0],
                                          (float *)(void *)((char *)logits + 2), out_len - 1),
                 TINV_ERR_INVALID_ARG);
    CHECK(strstr(tinv_last_error(), "tinv_session_infer_depth: argument 'logits' is misaligned") != NULL);
    CHECK_STATUS(tinv_session_infer_stats(s, e->input, in_len, n, logits, out_len,
                                          (tinv_stats *)(void *)((char *)st + 4), 0),
                 TINV_ERR_INVALID_ARG);
    CHECK(strstr(tinv_last_error(), "tinv_session_infer_stats: argument 'stats' is misaligned") != NULL);

    memcpy(bad, e->input, in_len * sizeof(float));
    bad[in_len - 1] = NAN;
    CHECK_STATUS(tinv_session_infer(s, bad, in_len, n, logits, out_len), TINV_ERR_INVALID_INPUT);
    CHECK(strstr(tinv_last_error(), "NaN or infinite") != NULL);
    bad[in_len - 1] = e->input[in_len - 1];
    bad[0] = INFINITY;
    CHECK_STATUS(tinv_session_infer_depth(s, bad, in_len, n, e->depth[0], logits, out_len), TINV_ERR_INVALID_INPUT);
    bad[0] = -INFINITY;
    CHECK_STATUS(tinv_session_infer(s, bad, in_len, n, logits, out_len), TINV_ERR_INVALID_INPUT);
    /* Finite but far outside [0, 1]: the normalization's sums overflow, the logits come out NaN,
     * and the call fails instead of answering with them. */
    for (i = 0; i < in_len; i++) bad[i] = (i % 2) ? 3e38f : 0.0f;
    CHECK_STATUS(tinv_session_infer(s, bad, in_len, n, logits, out_len), TINV_ERR_NUMERIC);
    CHECK(strstr(tinv_last_error(), "far outside [0, 1]") != NULL);
    CHECK_STATUS(tinv_session_infer_depth(s, bad, in_len, n, e->depth[0], logits, out_len), TINV_ERR_NUMERIC);
    for (i = 0; i < out_len; i++) untouched &= logits[i] == SENTINEL;
    CHECK(untouched);

    /* A failed call leaves no stats behind; a successful one at batch 1 gives one entry. */
    CHECK_OK(tinv_session_last_stats(s, st, n, &count));
    CHECK(count == 0);
    CHECK_OK(tinv_session_infer(s, e->input, e->input_len, 1, logits, e->classes));
    CHECK_OK(tinv_session_last_stats(s, st, 1, &count));
    CHECK(count == 1);
    CHECK_OK(tinv_session_infer(s, e->input, in_len, n, logits, out_len));
    count = 99;
    CHECK_STATUS(tinv_session_last_stats(s, st, n - 1, &count), n > 1 ? TINV_ERR_BUFFER_TOO_SMALL : TINV_OK);
    if (n > 1) CHECK(count == 99);
    /* Failures caught before the session is reached (a NULL buffer) clear the stats too. */
    CHECK_STATUS(tinv_session_infer(s, NULL, in_len, n, logits, out_len), TINV_ERR_NULL_ARG);
    CHECK_OK(tinv_session_last_stats(s, st, n, &count));
    CHECK(count == 0);
    CHECK_OK(tinv_session_infer_depth(s, e->input, e->input_len, 1, e->depth[0], logits, e->classes));
    CHECK_OK(tinv_session_last_stats(s, st, n, &count));
    CHECK(count == 1);
    CHECK_STATUS(tinv_session_infer_depth(s, e->input, e->input_len, 1, e->depth[0], NULL, e->classes),
                 TINV_ERR_NULL_ARG);
    CHECK(strstr(tinv_last_error(), "'logits'") != NULL);
    CHECK_OK(tinv_session_last_stats(s, st, n, &count));
    CHECK(count == 0);
    /* A misaligned stats pointer is an argument error; *count is untouched. */
    count = 99;
    CHECK_OK(tinv_session_infer(s, e->input, e->input_len, 1, logits, e->classes));
    CHECK_STATUS(tinv_session_last_stats(s, (tinv_stats *)(void *)((char *)st + 1), n, &count),
                 TINV_ERR_INVALID_ARG);
    CHECK(count == 99);

    CHECK_STATUS(tinv_session_set_budget(s, 1.5f), TINV_ERR_INVALID_ARG);
    CHECK_OK(tinv_session_set_budget(s, -1.0f)); /* the model's default again */
    CHECK_STATUS(tinv_session_set_budget(s, NAN), TINV_ERR_INVALID_ARG);
    CHECK_STATUS(tinv_session_set_mode(s, 3, 0.0f), TINV_ERR_INVALID_ARG);
    CHECK_STATUS(tinv_session_set_mode(s, TINV_MODE_THRESHOLD, NAN), TINV_ERR_INVALID_ARG);
    CHECK_STATUS(tinv_session_set_mode(s, TINV_MODE_THRESHOLD, -1.0f), TINV_ERR_INVALID_ARG);
    free(st);
    free(bad);
    free(logits);
}

/* Freed handles are detected through the registry: use after free, double free, a model handle
 * passed as a session and the reverse, and a forged value. */
static void test_stale_handles(const char *path, tinv_model *live, const expectation *e) {
    tinv_model *m = NULL;
    tinv_session *s = NULL, *s2 = NULL;
    size_t z = 5, out_len = e->classes;
    float *logits = (float *)malloc(out_len * sizeof(float));

    CHECK_OK(tinv_session_open(live, NULL, &s));
    CHECK_OK(tinv_session_free(s));
    CHECK_STATUS(tinv_session_free(s), TINV_ERR_INVALID_HANDLE);
    CHECK(strstr(tinv_last_error(), "double free") != NULL);
    CHECK_STATUS(tinv_session_infer(s, e->input, e->input_len, 1, logits, out_len), TINV_ERR_INVALID_HANDLE);
    CHECK_STATUS(tinv_session_arena_bytes(s, &z), TINV_ERR_INVALID_HANDLE);
    CHECK(z == 5);
    /* A new session may reuse the slot; the stale handle must still be refused. */
    CHECK_OK(tinv_session_open(live, NULL, &s2));
    CHECK(s2 != s);
    CHECK_STATUS(tinv_session_set_budget(s, 0.5f), TINV_ERR_INVALID_HANDLE);
    CHECK_OK(tinv_session_set_budget(s2, 0.5f));
    /* The handle is checked before the arguments: a stale handle with a bad mode, or a bad
     * options struct, is still a stale handle. */
    CHECK_STATUS(tinv_session_set_mode(s, 7, 0.0f), TINV_ERR_INVALID_HANDLE);
    CHECK_STATUS(tinv_session_set_mode(s2, 7, 0.0f), TINV_ERR_INVALID_ARG);

    CHECK_STATUS(tinv_session_open((const tinv_model *)s2, NULL, &s), TINV_ERR_INVALID_HANDLE);
    CHECK(strstr(tinv_last_error(), "not a model") != NULL);
    CHECK_STATUS(tinv_session_free((tinv_session *)live), TINV_ERR_INVALID_HANDLE);
    CHECK_STATUS(tinv_model_free((tinv_model *)s2), TINV_ERR_INVALID_HANDLE);
    CHECK_STATUS(tinv_model_num_classes((const tinv_model *)(uintptr_t)0x7fff0000u, &z), TINV_ERR_INVALID_HANDLE);
    CHECK_STATUS(tinv_session_max_batch((tinv_session *)(uintptr_t)0xdeadbeefu, &z), TINV_ERR_INVALID_HANDLE);
    CHECK_STATUS(tinv_session_threads((tinv_session *)(uintptr_t)0xdeadbeefu, &z), TINV_ERR_INVALID_HANDLE);
    CHECK_OK(tinv_session_free(s2));

    /* Model freed before its session: the session keeps the weights alive and still gives the
     * Rust API's logits; the model handle is dead. */
    CHECK_OK(tinv_model_open(path, NULL, &m));
    CHECK_OK(tinv_session_open(m, NULL, &s));
    CHECK_OK(tinv_model_free(m));
    CHECK_STATUS(tinv_model_num_classes(m, &z), TINV_ERR_INVALID_HANDLE);
    CHECK_STATUS(tinv_session_open(m, NULL, &s2), TINV_ERR_INVALID_HANDLE);
    {
        tinv_session_options so = tinv_session_options_default();
        so.struct_size = 0;
        CHECK_STATUS(tinv_session_open(m, &so, &s2), TINV_ERR_INVALID_HANDLE);
    }
    CHECK_STATUS(tinv_model_free(m), TINV_ERR_INVALID_HANDLE);
    /* Batch 1 here, batch n in the expectation: the row must not depend on the batch. */
    CHECK_OK(tinv_session_infer_depth(s, e->input, e->input_len, 1, e->depth[0], logits, out_len));
    CHECK(max_rel_diff(logits, e->path_logits, out_len) <= expect_tolerance());
    CHECK_OK(tinv_session_free(s));
    free(logits);
}

void test_errors(const char *path, tinv_model *m, tinv_session *s, const expectation *e) {
    test_null_args(path, m, s, e);
    test_bad_files_and_options(path, m);
    test_buffers(s, e);
    test_stale_handles(path, m, e);
}
