// Minimal ROS 2 node: subscribes to a camera topic (sensor_msgs/Image, mono8 / rgb8 / bgr8),
// resizes each frame to the model's input (nearest neighbour), classifies it with tinv's
// adaptive controller and publishes "class confidence depth flops latency_us" on ~/class.
//
//   ros2 run tinv_example classifier_node --ros-args -p model:=/opt/tinv/fmnist/model.tinv -p budget:=0.3
//
// tinv's own log records (why TINV_BACKEND_AUTO chose the CPU, a refused worker thread) go to
// the node's logger; a model that cannot be opened ends the node with one fatal log line.
#include <rclcpp/rclcpp.hpp>
#include <sensor_msgs/msg/image.hpp>
#include <std_msgs/msg/string.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "tinv_classifier.hpp"

class ClassifierNode : public rclcpp::Node {
  public:
    ClassifierNode()
        : Node("tinv_classifier"),
          classifier_(declare_parameter<std::string>("model", "model.tinv"),
                      static_cast<float>(declare_parameter<double>("budget", -1.0))),
          chw_(classifier_.input_len()),
          frame_(classifier_.height() * classifier_.width() * 3) {
        // Colour frames feed 1- or 3-channel models only (tinv_model_image_input refuses others).
        if (classifier_.channels() != 1 && classifier_.channels() != 3)
            throw std::runtime_error("this node feeds 1- or 3-channel models; the model has " +
                                     std::to_string(classifier_.channels()) + " channels");
        // `ros2 param set ... budget` takes effect (a bad value is refused with the reason).
        on_set_ = add_on_set_parameters_callback([this](const std::vector<rclcpp::Parameter> &ps) {
            rcl_interfaces::msg::SetParametersResult r;
            r.successful = true;
            for (const auto &p : ps) {
                if (p.get_name() == "model") {
                    r.successful = false;
                    r.reason = "model is read at start-up only";
                } else if (p.get_name() == "budget") {
                    try {
                        classifier_.set_budget(static_cast<float>(p.as_double()));
                    } catch (const std::exception &e) {
                        r.successful = false;
                        r.reason = e.what();
                    }
                }
            }
            return r;
        });
        pub_ = create_publisher<std_msgs::msg::String>("~/class", 10);
        sub_ = create_subscription<sensor_msgs::msg::Image>(
            "image", rclcpp::SensorDataQoS(),
            [this](sensor_msgs::msg::Image::ConstSharedPtr msg) { on_image(*msg); });
        RCLCPP_INFO(get_logger(), "tinv %s: input %zux%zux%zu on %s", tinv_version_string(),
                    classifier_.channels(), classifier_.height(), classifier_.width(),
                    classifier_.backend_name());
    }

  private:
    // Image → CHW floats in [0, 1] at the model's size: resized by nearest neighbour into a
    // frame of the model's size (tinv-run refuses an image of another size instead), then
    // converted by the library (grey into every channel, BT.601 luma for a grey model), as
    // `tinv-run classify` converts a file. Both buffers were sized once at start-up.
    bool to_chw(const sensor_msgs::msg::Image &img) {
        const size_t h = classifier_.height(), w = classifier_.width();
        size_t src_c;
        tinv_pixels format;
        if (img.encoding == "mono8") src_c = 1, format = TINV_PIXELS_GRAY8;
        else if (img.encoding == "rgb8") src_c = 3, format = TINV_PIXELS_RGB8;
        else if (img.encoding == "bgr8") src_c = 3, format = TINV_PIXELS_BGR8;
        else {
            why_ = "unsupported encoding (mono8, rgb8, bgr8)";
            return false;
        }
        if (img.width == 0 || img.height == 0 || img.step < img.width * src_c ||
            img.data.size() < static_cast<size_t>(img.step) * img.height) {
            why_ = "malformed image (size, step or data length)";
            return false;
        }
        for (size_t y = 0; y < h; y++) {
            const size_t sy = y * img.height / h;
            for (size_t x = 0; x < w; x++) {
                const uint8_t *px = &img.data[sy * img.step + (x * img.width / w) * src_c];
                for (size_t k = 0; k < src_c; k++) frame_[(y * w + x) * src_c + k] = px[k];
            }
        }
        if (classifier_.image_input(frame_.data(), w, h, w * src_c, format, chw_.data(),
                                    chw_.size()) != TINV_OK) {
            why_ = tinv_last_error();
            return false;
        }
        return true;
    }

    void on_image(const sensor_msgs::msg::Image &img) {
        if (!to_chw(img)) {
            RCLCPP_WARN_THROTTLE(get_logger(), *get_clock(), 5000, "%s: %s %ux%u", why_,
                                 img.encoding.c_str(), img.width, img.height);
            return;
        }
        tinv_example::Result r;
        tinv_status s = classifier_.classify(chw_.data(), chw_.size(), r);
        if (s != TINV_OK) {
            RCLCPP_ERROR_THROTTLE(get_logger(), *get_clock(), 5000, "tinv: %s: %s", tinv_status_str(s),
                                  tinv_last_error());
            return;
        }
        char text[128];
        std::snprintf(text, sizeof text, "%u %.3f %u %llu %.0f", r.class_id, r.confidence, r.depth,
                      static_cast<unsigned long long>(r.flops), r.latency_us);
        std_msgs::msg::String out;
        out.data = text;
        pub_->publish(out);
    }

    tinv_example::Classifier classifier_;
    std::vector<float> chw_;
    std::vector<uint8_t> frame_;  // the resized frame, up to 3 bytes per pixel
    const char *why_ = "";        // valid until the next tinv call on this thread
    rclcpp::node_interfaces::OnSetParametersCallbackHandle::SharedPtr on_set_;
    rclcpp::Publisher<std_msgs::msg::String>::SharedPtr pub_;
    rclcpp::Subscription<sensor_msgs::msg::Image>::SharedPtr sub_;
};

// tinv's log records, from whichever thread logs (rclcpp's loggers are thread-safe).
// noexcept, and nothing escapes it: an exception thrown out of a tinv callback aborts the
// process (tinv.h), and rclcpp's logging may throw (std::bad_alloc).
static void on_tinv_log(uint32_t level, const char *message, void *) noexcept {
    try {
        const auto logger = rclcpp::get_logger("tinv");
        if (level <= 1) RCLCPP_ERROR(logger, "%s", message);
        else if (level == 2) RCLCPP_WARN(logger, "%s", message);
        else if (level == 3) RCLCPP_INFO(logger, "%s", message);
        else RCLCPP_DEBUG(logger, "%s", message);
    } catch (...) {
    }
}

int main(int argc, char **argv) {
    rclcpp::init(argc, argv);
    if (tinv_set_log_callback(on_tinv_log, nullptr, 4) != TINV_OK)
        RCLCPP_WARN(rclcpp::get_logger("tinv_classifier"), "tinv's log records stay unseen: %s",
                    tinv_last_error());
    int rc = 0;
    try {
        rclcpp::spin(std::make_shared<ClassifierNode>());
    } catch (const std::exception &e) {
        // A missing or bad model, or a parameter of the wrong type (`budget:=1`, an integer):
        // say so once instead of std::terminate.
        RCLCPP_FATAL(rclcpp::get_logger("tinv_classifier"), "%s", e.what());
        rc = 1;
    }
    // Returns once no thread is inside on_tinv_log.
    tinv_set_log_callback(nullptr, nullptr, 0);
    rclcpp::shutdown();
    return rc;
}
