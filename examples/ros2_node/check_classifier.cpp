// Builds without ROS: runs tinv_classifier.hpp on a model and one CHW input file (raw
// little-endian f32) and prints "class depth". tests/capi.rs compiles and runs it, so the
// wrapper the ROS 2 node uses is checked on every `cargo test`.
//
//   check_classifier MODEL.tinv INPUT.f32
#include <cstdio>
#include <string>
#include <vector>

#include "tinv_classifier.hpp"

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s MODEL.tinv INPUT.f32\n", argv[0]);
        return 2;
    }
    try {
        tinv_example::Classifier c(argv[1]);
        std::vector<float> x(c.input_len());
        std::FILE *f = std::fopen(argv[2], "rb");
        if (!f || std::fread(x.data(), sizeof(float), x.size(), f) != x.size()) {
            std::fprintf(stderr, "cannot read %zu floats from %s\n", x.size(), argv[2]);
            if (f) std::fclose(f);
            return 2;
        }
        std::fclose(f);
        tinv_example::Result r;
        tinv_status s = c.classify(x.data(), x.size(), r);
        if (s != TINV_OK) {
            std::fprintf(stderr, "classify: %s: %s\n", tinv_status_str(s), tinv_last_error());
            return 1;
        }
        std::printf("%u %u\n", r.class_id, r.depth);
        // Camera pixels through the library's conversion: grey bytes become value / 255 in
        // every channel.
        std::vector<uint8_t> grey(c.width() * c.height());
        for (size_t i = 0; i < grey.size(); i++) grey[i] = static_cast<uint8_t>(i * 7);
        if (c.image_input(grey.data(), c.width(), c.height(), c.width(), TINV_PIXELS_GRAY8,
                          x.data(), x.size()) != TINV_OK)
            return 1;
        for (size_t i = 0; i < x.size(); i++)
            if (x[i] != static_cast<float>(grey[i % grey.size()]) / 255.0f) return 1;
        if (c.image_input(grey.data(), c.width() + 1, c.height(), c.width() + 1,
                          TINV_PIXELS_GRAY8, x.data(), x.size()) != TINV_ERR_INVALID_ARG)
            return 1;
        // A CPU-only build (and any model without engines) runs on the CPU.
        if (std::string(c.backend_name()) != "cpu") return 1;
        // Setup errors surface as exceptions with the library's message.
        try {
            tinv_example::Classifier bad("/nonexistent.tinv");
            return 1;
        } catch (const tinv_example::Error &e) {
            if (e.status() != TINV_ERR_IO) return 1;
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
