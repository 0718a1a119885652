/*
 * C test of libtinv: version, model queries, forced-depth and adaptive inference compared with
 * the Rust API's results (expectation file written by tests/capi.rs), stats, error paths
 * (errors.c) and threads (threads.c).
 *
 *   test_tinv MODEL.tinv EXPECT.bin [--quick]
 *
 * --quick skips the long thread loops (used under qemu). Prints one "PRED i class depth" line
 * per input of the adaptive run, so runs on two architectures can be compared. Exit status 0
 * when every check passed.
 */
#include "suite.h"

int g_failures = 0;

static void test_version(void) {
    CHECK(tinv_version_number() == TINV_VERSION_NUMBER);
    CHECK(strcmp(tinv_version_string(), TINV_VERSION_STRING) == 0);
    CHECK(strcmp(tinv_status_str(TINV_OK), "ok") == 0);
    CHECK(strcmp(tinv_status_str(TINV_ERR_INVALID_HANDLE), "stale, freed or foreign handle") == 0);
    CHECK(strcmp(tinv_status_str((tinv_status)12345), "unknown status") == 0);
    CHECK(tinv_last_error() != NULL);
}

static void test_options(void) {
    tinv_model_options mo = tinv_model_options_default();
    tinv_session_options so = tinv_session_options_default();
    CHECK(mo.struct_size == sizeof mo);
    CHECK(mo.backend == TINV_BACKEND_AUTO && mo.verify == 0 && mo.reserved == 0);
    CHECK(mo.engines_dir == NULL);
    CHECK(so.struct_size == sizeof so);
    CHECK(so.mode == TINV_MODE_ADAPTIVE && so.budget < 0.0f && so.max_batch == 1 && so.threads == 1);
}

static int g_log_count = 0, g_log_level = 0, g_log_cpu = 0;

static void on_log(uint32_t level, const char *message, void *user) {
    g_log_count++;
    g_log_level = (int)level;
    g_log_cpu |= strstr(message, "using the CPU") != NULL && strncmp(message, "tinv: ", 6) == 0;
    CHECK(user == &g_log_count);
}

/* Removes the callback from inside its first call (tinv.h allows tinv_set_log_callback there). */
static int g_self_removals = 0;

static void on_log_remove_self(uint32_t level, const char *message, void *user) {
    (void)level;
    (void)message;
    (void)user;
    if (g_self_removals++ == 0) CHECK_OK(tinv_set_log_callback(NULL, NULL, 0));
}

/* The log callback receives the library's records up to its level, and nothing once removed:
 * opening a model with TINV_BACKEND_AUTO and no engines says (at debug level) that it chose
 * the CPU. */
static void test_log(const char *path) {
    tinv_model *m = NULL;
    CHECK_STATUS(tinv_set_log_callback(on_log, &g_log_count, 6), TINV_ERR_INVALID_ARG);
    CHECK_OK(tinv_set_log_callback(on_log, &g_log_count, 4));
    CHECK_OK(tinv_model_open(path, NULL, &m));
    CHECK(g_log_count >= 1 && g_log_level == 4 && g_log_cpu);
    CHECK_OK(tinv_model_free(m));
    g_log_count = 0;
    CHECK_OK(tinv_set_log_callback(on_log, &g_log_count, 2)); /* warnings and errors only */
    CHECK_OK(tinv_model_open(path, NULL, &m));
    CHECK_OK(tinv_model_free(m));
    CHECK(g_log_count == 0);
    CHECK_OK(tinv_set_log_callback(NULL, NULL, 5)); /* removed: nothing more arrives */
    CHECK_OK(tinv_model_open(path, NULL, &m));
    CHECK_OK(tinv_model_free(m));
    CHECK(g_log_count == 0);
    /* Removed from inside its own call: that removal returns (it waits for other threads'
     * calls only), and no record arrives after it. */
    CHECK_OK(tinv_set_log_callback(on_log_remove_self, NULL, 4));
    CHECK_OK(tinv_model_open(path, NULL, &m));
    CHECK_OK(tinv_model_free(m));
    CHECK(g_self_removals == 1);
}

/* Model queries agree with what the Rust API reported. */
static void test_model_info(const tinv_model *m, const expectation *e) {
    size_t c = 0, h = 0, w = 0, len = 0, classes = 0, paths = 0, k, depth = 0;
    uint64_t flops = 0, wbytes = 0;
    uint32_t backend = 99;
    float budget = -1.0f;
    CHECK_OK(tinv_model_input_shape(m, &c, &h, &w));
    CHECK_OK(tinv_model_input_len(m, &len));
    CHECK(len == c * h * w && len == e->input_len);
    CHECK_OK(tinv_model_num_classes(m, &classes));
    CHECK(classes == e->classes);
    CHECK_OK(tinv_model_num_paths(m, &paths));
    CHECK(paths == e->paths);
    for (k = 0; k < paths; k++) {
        CHECK_OK(tinv_model_path_info(m, k, &depth, &flops));
        CHECK(depth == e->depth[k] && flops == e->path_flops[k]);
        if (k > 0) CHECK(e->path_flops[k] > e->path_flops[k - 1]);
    }
    CHECK_OK(tinv_model_weight_bytes(m, &wbytes));
    CHECK(wbytes > 0);
    CHECK_OK(tinv_model_default_budget(m, &budget));
    CHECK(budget >= 0.0f && budget <= 1.0f);
    CHECK_OK(tinv_model_backend(m, &backend));
    CHECK(backend == TINV_BACKEND_CPU);
}

/* Softmax max of one row, computed here independently of the library. */
static float softmax_max(const float *row, size_t k) {
    size_t i, arg = 0;
    double sum = 0.0;
    for (i = 1; i < k; i++)
        if (row[i] > row[arg]) arg = i;
    for (i = 0; i < k; i++) sum += exp((double)row[i] - (double)row[arg]);
    return (float)(1.0 / sum);
}

static size_t argmax(const float *row, size_t k) {
    size_t i, arg = 0;
    for (i = 1; i < k; i++)
        if (row[i] > row[arg]) arg = i;
    return arg;
}

/* Every path at forced depth: logits equal the Rust API's; stats are self-consistent. */
static void test_forced_depth(tinv_session *s, const expectation *e, double tol) {
    size_t n = e->n, k, i, count = 0, in_len = (size_t)n * e->input_len, out_len = (size_t)n * e->classes;
    float *logits = (float *)malloc((out_len + 1) * sizeof(float));
    tinv_stats *st = (tinv_stats *)calloc(n, sizeof *st);
    for (k = 0; k < e->paths; k++) {
        logits[out_len] = 42.0f; /* sentinel past the result: must stay untouched */
        CHECK_OK(tinv_session_infer_depth(s, e->input, in_len, n, e->depth[k], logits, out_len + 1));
        CHECK(logits[out_len] == 42.0f);
        if (max_rel_diff(logits, e->path_logits + k * out_len, out_len) > tol) {
            fprintf(stderr, "depth %u: logits differ from the Rust API by %g\n", e->depth[k],
                    max_rel_diff(logits, e->path_logits + k * out_len, out_len));
            g_failures++;
        }
        CHECK_OK(tinv_session_last_stats(s, st, n, &count));
        CHECK(count == n);
        for (i = 0; i < n && count == n; i++) {
            const float *row = logits + i * e->classes;
            CHECK(st[i].depth == e->depth[k] && st[i].path == k && st[i].start_depth == e->depth[k]);
            CHECK(st[i].escalations == 0);
            CHECK(st[i].predicted_path == -1); /* no controller at forced depth */
            /* Forced depth runs exactly the path: stem + blocks + its exit. */
            CHECK(st[i].flops == e->path_flops[k]);
            CHECK(st[i].flops == e->path_stats_flops[k * n + i]);
            CHECK(st[i].class_id == argmax(row, e->classes));
            CHECK(fabsf(st[i].confidence - softmax_max(row, e->classes)) < 1e-4f);
            CHECK(st[i].weight_bytes > 0 && st[i].latency_us > 0.0);
            CHECK(st[i].latency_us == st[0].latency_us);
        }
    }
    free(st);
    free(logits);
}

/* The adaptive policy (session defaults) reproduces the Rust API's choices and logits. */
static void test_adaptive(tinv_session *s, const expectation *e, double tol, int print) {
    size_t n = e->n, i, count = 0, in_len = (size_t)n * e->input_len, out_len = (size_t)n * e->classes;
    float *logits = (float *)malloc(out_len * sizeof(float));
    tinv_stats *st = (tinv_stats *)calloc(n, sizeof *st);
    CHECK_OK(tinv_session_infer(s, e->input, in_len, n, logits, out_len));
    CHECK(max_rel_diff(logits, e->adaptive_logits, out_len) <= tol);
    CHECK_OK(tinv_session_last_stats(s, st, n, &count));
    CHECK(count == n);
    for (i = 0; i < n && count == n; i++) {
        const expect_stats *x = &e->adaptive[i];
        CHECK(st[i].depth == x->depth && st[i].path == x->path);
        CHECK(st[i].start_depth == x->start_depth && st[i].escalations == x->escalations);
        CHECK(st[i].class_id == x->class_id && st[i].predicted_path == x->predicted_path);
        CHECK(st[i].flops == x->flops && st[i].weight_bytes == x->weight_bytes);
        CHECK(fabsf(st[i].confidence - x->confidence) <= 1e-4f);
        /* With a controller its cost comes on top of the path; without one, adaptive mode runs
         * the deepest path and nothing else. */
        if (x->predicted_path >= 0)
            CHECK(st[i].flops > e->path_flops[st[i].path]);
        else
            CHECK(st[i].flops == e->path_flops[e->paths - 1] && st[i].depth == e->depth[e->paths - 1]);
        CHECK(st[i].depth >= st[i].start_depth);
        if (print) printf("PRED %zu %u %u\n", i, st[i].class_id, st[i].depth);
    }
    free(st);
    free(logits);
}

/* Mode and budget setters change what runs: with threshold 1.0 an input stops early only if its
 * softmax saturated to exactly 1.0f, otherwise it reaches the deepest path; graph mode never
 * escalates. */
static void test_modes(tinv_session *s, const expectation *e) {
    size_t n = e->n, i, count = 0, in_len = (size_t)n * e->input_len, out_len = (size_t)n * e->classes;
    float *logits = (float *)malloc(out_len * sizeof(float));
    tinv_stats *st = (tinv_stats *)calloc(n, sizeof *st);
    CHECK_OK(tinv_session_set_mode(s, TINV_MODE_THRESHOLD, 1.0f));
    CHECK_OK(tinv_session_infer(s, e->input, in_len, n, logits, out_len));
    CHECK_OK(tinv_session_last_stats(s, st, n, &count));
    CHECK(count == n);
    for (i = 0; i < count; i++) {
        const size_t k = e->classes, deepest = (e->paths - 1) * out_len;
        CHECK(st[i].start_depth == e->depth[0] && st[i].predicted_path == -1);
        CHECK(st[i].escalations == st[i].path);
        CHECK(st[i].depth == e->depth[e->paths - 1] || st[i].confidence >= 1.0f);
        if (st[i].depth == e->depth[e->paths - 1])
            CHECK(max_rel_diff(logits + i * k, e->path_logits + deepest + i * k, k) <= expect_tolerance());
    }
    CHECK_OK(tinv_session_set_mode(s, TINV_MODE_GRAPH, 0.0f));
    CHECK_OK(tinv_session_set_budget(s, 0.0f));
    CHECK_OK(tinv_session_infer(s, e->input, in_len, n, logits, out_len));
    CHECK_OK(tinv_session_last_stats(s, st, n, &count));
    CHECK(count == n);
    for (i = 0; i < count; i++) CHECK(st[i].escalations == 0 && st[i].depth == st[i].start_depth);
    CHECK_OK(tinv_session_set_budget(s, 1.0f));
    CHECK_OK(tinv_session_infer(s, e->input, in_len, n, logits, out_len));
    CHECK_OK(tinv_session_last_stats(s, st, n, &count));
    CHECK(count == n);
    for (i = 0; i < count; i++) CHECK(st[i].escalations == 0 && st[i].depth == st[i].start_depth);
    free(st);
    free(logits);
}

int main(int argc, char **argv) {
    expectation e;
    tinv_model *m = NULL;
    tinv_session *s = NULL;
    tinv_session_options so = tinv_session_options_default();
    size_t arena = 0, max_batch = 0;
    double tol = expect_tolerance();
    int quick = argc > 3 && strcmp(argv[3], "--quick") == 0;
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.tinv EXPECT.bin [--quick]\n", argv[0]);
        return 2;
    }
    if (!expectation_load(argv[2], &e)) return 2;
    test_version();
    test_options();
    test_log(argv[1]);
    CHECK_OK(tinv_model_open(argv[1], NULL, &m));
    if (!m) {
        expectation_free(&e);
        return 1;
    }
    test_model_info(m, &e);
    so.max_batch = e.n;
    CHECK_OK(tinv_session_open(m, &so, &s));
    CHECK_OK(tinv_session_arena_bytes(s, &arena));
    CHECK(arena > 0);
    CHECK_OK(tinv_session_max_batch(s, &max_batch));
    CHECK(max_batch == e.n);
    test_forced_depth(s, &e, tol);
    test_adaptive(s, &e, tol, 1);
    test_modes(s, &e);
    test_errors(argv[1], m, s, &e);
    CHECK_OK(tinv_session_free(s));
    test_threads(argv[1], m, &e, quick);
    CHECK_OK(tinv_model_free(m));
    expectation_free(&e);
    if (g_failures) {
        fprintf(stderr, "test_tinv: %d check(s) failed\n", g_failures);
        return 1;
    }
    printf("test_tinv: all checks passed\n");
    return 0;
}
