// C++17 consumer of tinv.h: RAII ownership with std::unique_ptr, std::vector buffers, std::thread
// sessions on one shared model, results compared with the Rust API's (expectation file).
//
//   test_tinv_cpp MODEL.tinv EXPECT.bin
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "expect.h"

int g_failures = 0;

namespace {

struct ModelDeleter {
    void operator()(tinv_model *m) const noexcept { tinv_model_free(m); }
};
struct SessionDeleter {
    void operator()(tinv_session *s) const noexcept { tinv_session_free(s); }
};
using Model = std::unique_ptr<tinv_model, ModelDeleter>;
using Session = std::unique_ptr<tinv_session, SessionDeleter>;

Model open_model(const char *path) {
    tinv_model *m = nullptr;
    CHECK_OK(tinv_model_open(path, nullptr, &m));
    return Model(m);
}

Session open_session(const tinv_model *m, uint32_t max_batch) {
    tinv_session_options o = tinv_session_options_default();
    o.max_batch = max_batch;
    tinv_session *s = nullptr;
    CHECK_OK(tinv_session_open(m, &o, &s));
    return Session(s);
}

// Runs every path and the adaptive policy; returns the number of mismatches.
int run_all(tinv_session *s, const expectation &e) {
    const size_t n = e.n, out_len = n * e.classes;
    std::vector<float> logits(out_len);
    std::vector<tinv_stats> stats(n);
    int bad = 0;
    for (size_t k = 0; k < e.paths; k++) {
        bad += tinv_session_infer_depth(s, e.input, n * e.input_len, n, e.depth[k], logits.data(), logits.size()) != TINV_OK;
        bad += max_rel_diff(logits.data(), e.path_logits + k * out_len, out_len) > expect_tolerance();
    }
    size_t count = 0;
    bad += tinv_session_infer(s, e.input, n * e.input_len, n, logits.data(), logits.size()) != TINV_OK;
    bad += max_rel_diff(logits.data(), e.adaptive_logits, out_len) > expect_tolerance();
    bad += tinv_session_last_stats(s, stats.data(), stats.size(), &count) != TINV_OK || count != n;
    for (size_t i = 0; i < count; i++) {
        const expect_stats &x = e.adaptive[i];
        bad += stats[i].depth != x.depth || stats[i].class_id != x.class_id || stats[i].flops != x.flops ||
               stats[i].predicted_path != x.predicted_path || stats[i].escalations != x.escalations;
    }
    return bad;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s MODEL.tinv EXPECT.bin\n", argv[0]);
        return 2;
    }
    expectation e;
    if (!expectation_load(argv[2], &e)) return 2;
    {
        Model model = open_model(argv[1]);
        if (!model) return 1;
        size_t classes = 0;
        CHECK_OK(tinv_model_num_classes(model.get(), &classes));
        CHECK(classes == e.classes);

        Session s = open_session(model.get(), e.n);
        CHECK(run_all(s.get(), e) == 0);

        // Errors come back as codes with a message, also from C++.
        std::vector<float> small(1);
        CHECK_STATUS(tinv_session_infer(s.get(), e.input, e.n * e.input_len, e.n, small.data(), small.size()),
                     e.n * e.classes > 1 ? TINV_ERR_BUFFER_TOO_SMALL : TINV_OK);
        tinv_model *none = nullptr;
        CHECK_STATUS(tinv_model_open("/nonexistent.tinv", nullptr, &none), TINV_ERR_IO);
        CHECK(none == nullptr);

        // Four threads, each with its own session on the shared model.
        std::vector<int> bad(4, 0);
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; t++) {
            threads.emplace_back([&, t] {
                Session own = open_session(model.get(), e.n);
                bad[t] = own ? run_all(own.get(), e) : 1;
            });
        }
        for (auto &t : threads) t.join();
        for (int b : bad) CHECK(b == 0);
    }  // sessions and the model are freed here, in reverse order
    expectation_free(&e);
    if (g_failures) {
        std::fprintf(stderr, "test_tinv_cpp: %d check(s) failed\n", g_failures);
        return 1;
    }
    std::printf("test_tinv_cpp: all checks passed\n");
    return 0;
}
