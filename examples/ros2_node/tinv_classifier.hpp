// A small C++17 wrapper over tinv.h for robotics nodes: RAII handles, exceptions for the
// non-real-time setup calls, and an allocation-free classify() for the per-frame path.
// Header-only; no ROS dependency (the ROS 2 node in classifier_node.cpp uses it).
#pragma once

#include <tinv.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace tinv_example {

// Thrown by setup calls; carries the status and tinv_last_error().
class Error : public std::runtime_error {
  public:
    Error(tinv_status status, const std::string &what)
        : std::runtime_error(what + ": " + tinv_status_str(status) + ": " + tinv_last_error()),
          status_(status) {}
    tinv_status status() const noexcept { return status_; }

  private:
    tinv_status status_;
};

inline void check(tinv_status s, const char *what) {
    if (s != TINV_OK) throw Error(s, what);
}

struct Result {
    uint32_t class_id = 0;
    float confidence = 0.0f;
    uint32_t depth = 0;
    uint64_t flops = 0;
    double latency_us = 0.0;
};

// One model and one session: use one Classifier per thread (in ROS 2, per mutually exclusive
// callback group: a reentrant group runs classify() on two threads at once, which the session
// refuses with TINV_ERR_SESSION_BUSY). Neither copyable nor movable: a moved-from object would
// keep its shape but no session; hold it in place or in a std::unique_ptr.
class Classifier {
  public:
    Classifier(const Classifier &) = delete;
    Classifier &operator=(const Classifier &) = delete;
    Classifier(Classifier &&) = delete;
    Classifier &operator=(Classifier &&) = delete;

    // budget < 0: the model's stored default.
    explicit Classifier(const std::string &model_path, float budget = -1.0f, uint32_t threads = 1) {
        tinv_model *m = nullptr;
        check(tinv_model_open(model_path.c_str(), nullptr, &m), "tinv_model_open");
        model_.reset(m);
        tinv_session_options o = tinv_session_options_default();
        o.budget = budget;
        o.threads = threads;
        tinv_session *s = nullptr;
        check(tinv_session_open(model_.get(), &o, &s), "tinv_session_open");
        session_.reset(s);
        size_t c = 0, h = 0, w = 0, k = 0;
        check(tinv_model_input_shape(model_.get(), &c, &h, &w), "tinv_model_input_shape");
        check(tinv_model_num_classes(model_.get(), &k), "tinv_model_num_classes");
        channels_ = c, height_ = h, width_ = w;
        logits_.resize(k);
    }

    size_t channels() const noexcept { return channels_; }
    size_t height() const noexcept { return height_; }
    size_t width() const noexcept { return width_; }
    size_t input_len() const noexcept { return channels_ * height_ * width_; }

    // Camera pixels of the model's size (rows `stride` bytes apart) into the model's input
    // `out` (input_len() floats): the library's conversion, the one `tinv-run classify` uses
    // (tinv_model_image_input). No allocation; returns the status.
    tinv_status image_input(const uint8_t *pixels, size_t width, size_t height, size_t stride,
                            tinv_pixels format, float *out, size_t out_len) const noexcept {
        return tinv_model_image_input(model_.get(), pixels, width, height, stride, format, out,
                                      out_len);
    }

    // Classifies one CHW image with values in [0, 1]. No allocation; returns the status
    // instead of throwing so it can sit on a real-time path.
    tinv_status classify(const float *chw, size_t len, Result &out) noexcept {
        // The logits and the stats of one call, together: no second call for another thread's
        // call to come between.
        tinv_stats st{};
        tinv_status s = tinv_session_infer_stats(session_.get(), chw, len, 1, logits_.data(),
                                                 logits_.size(), &st, 1);
        if (s != TINV_OK) return s;
        out.class_id = st.class_id;
        out.confidence = st.confidence;
        out.depth = st.depth;
        out.flops = st.flops;
        out.latency_us = st.latency_us;
        return TINV_OK;
    }

    void set_budget(float budget) { check(tinv_session_set_budget(session_.get(), budget), "tinv_session_set_budget"); }

    // "tensorrt" or "cpu": what TINV_BACKEND_AUTO chose when the model was opened (on a Jetson,
    // "cpu" means the engines were missing or unusable; the log callback says why).
    const char *backend_name() const {
        uint32_t b = 0;
        check(tinv_model_backend(model_.get(), &b), "tinv_model_backend");
        return b == TINV_BACKEND_TENSORRT ? "tensorrt" : "cpu";
    }
    const std::vector<float> &logits() const noexcept { return logits_; }

  private:
    struct ModelFree {
        void operator()(tinv_model *m) const noexcept { tinv_model_free(m); }
    };
    struct SessionFree {
        void operator()(tinv_session *s) const noexcept { tinv_session_free(s); }
    };
    std::unique_ptr<tinv_model, ModelFree> model_;
    std::unique_ptr<tinv_session, SessionFree> session_;  // freed first (declared last)
    size_t channels_ = 0, height_ = 0, width_ = 0;
    std::vector<float> logits_;
};

}  // namespace tinv_example
