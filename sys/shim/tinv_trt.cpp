// tinv_trt.cpp -- the C++ shim behind tinv_trt.h, over TensorRT's C++ API (8.5, 8.6, 10.x, 11.x).
//
// Built once per TensorRT major (libtinv_trt<MAJOR>.so). It never links libnvinfer: it dlopens
// libnvinfer / libnvonnxparser and resolves only the exported C factories
// (createInferRuntime_INTERNAL, createInferBuilder_INTERNAL, createNvOnnxParser_INTERNAL,
// getInferLibVersion). The public inline create*() wrappers are never called because they would
// add a link-time reference. Every exported function is noexcept and catches everything.

#include "tinv_trt.h"

#include <NvInfer.h>
#include <NvInferVersion.h>
#include <NvOnnxParser.h>

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#if NV_TENSORRT_MAJOR < 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR < 5)
#error "tinv's TensorRT shim needs TensorRT >= 8.5 (enqueueV3 and name-based I/O)"
#endif
#if NV_TENSORRT_MAJOR == 9
#error "TensorRT 9.x is not a supported target (use 8.5/8.6, 10.x or 11.x)"
#endif

// True when the headers are at least major.minor.
#define TINV_TRT_AT_LEAST(major, minor) \
  (NV_TENSORRT_MAJOR > (major) || (NV_TENSORRT_MAJOR == (major) && NV_TENSORRT_MINOR >= (minor)))

// Deprecated-but-needed APIs (kFP16 on 10.12+, setPrecision on 10.16, tactic sources on 10.x)
// are wrapped so the shim builds warning-free with -Werror.
#define TINV_ALLOW_DEPRECATED_BEGIN \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wdeprecated-declarations\"")
#define TINV_ALLOW_DEPRECATED_END _Pragma("GCC diagnostic pop")

namespace {

using nvinfer1::ILogger;

using CreateFn = void* (*)(void* logger, int32_t version);
using ParserCreateFn = void* (*)(void* network, void* logger, int version);
using VersionFn = int32_t (*)();

constexpr uint64_t kAlignment = 256;

// ---- per-call error capture -------------------------------------------------------------------

// Errors TensorRT logs while a shim call runs on this thread are collected here, so each call's
// error message carries TensorRT's own explanation (per call, never process-global).
struct CallCapture {
  std::string errors;
};
thread_local CallCapture* t_capture = nullptr;

// Installs a capture for the duration of one shim call (restoring any outer one).
class CallScope {
 public:
  CallScope() : outer_(t_capture) { t_capture = &capture_; }
  ~CallScope() { t_capture = outer_; }
  CallScope(CallScope const&) = delete;
  CallScope& operator=(CallScope const&) = delete;
  std::string const& errors() const { return capture_.errors; }

 private:
  CallCapture capture_;
  CallCapture* outer_;
};

int32_t severity_code(ILogger::Severity s) {
  switch (s) {
    case ILogger::Severity::kINTERNAL_ERROR: return TINV_TRT_SEVERITY_INTERNAL_ERROR;
    case ILogger::Severity::kERROR: return TINV_TRT_SEVERITY_ERROR;
    case ILogger::Severity::kWARNING: return TINV_TRT_SEVERITY_WARNING;
    case ILogger::Severity::kINFO: return TINV_TRT_SEVERITY_INFO;
    case ILogger::Severity::kVERBOSE: return TINV_TRT_SEVERITY_VERBOSE;
  }
  return TINV_TRT_SEVERITY_VERBOSE;
}

// Routes TensorRT messages to the C callback, and error messages into the capture of the call
// under way: the current thread's, or (on a thread with no shim call of its own, i.e. one of
// TensorRT's builder workers) every build under way. One lock orders all of it.
//
// Never deleted once TensorRT has seen it: TensorRT may keep using the first logger it was
// given after the lib that owned it is freed, so `tinv_trt_lib_free` only detaches it (no
// callback, no capture afterwards) and leaves the few bytes behind.
class Logger final : public ILogger {
 public:
  Logger(tinv_trt_log_fn fn, void* user, int32_t min_severity)
      : fn_(fn), user_(user), min_severity_(min_severity) {}

  void log(Severity severity, char const* msg) noexcept override {
    try {
      int32_t const code = severity_code(severity);
      char const* text = msg != nullptr ? msg : "(null)";
      // Recursive: a callback that logs again through TensorRT on this thread must not deadlock.
      std::lock_guard<std::recursive_mutex> guard(mu_);
      if (code <= TINV_TRT_SEVERITY_ERROR) {
        if (t_capture != nullptr) {
          append(*t_capture, text);
        } else {
          for (CallCapture* c : builds_) append(*c, text);
        }
      }
      if (fn_ != nullptr && code <= min_severity_) fn_(user_, code, text);
    } catch (...) {
      // A logger must not throw into TensorRT; dropping the message is the only safe choice.
    }
  }

  // While a build runs, errors from threads without a capture of their own also go to `c`.
  void add_build(CallCapture* c) {
    std::lock_guard<std::recursive_mutex> guard(mu_);
    builds_.push_back(c);
  }
  void remove_build(CallCapture* c) noexcept {
    try {
      std::lock_guard<std::recursive_mutex> guard(mu_);
      for (auto it = builds_.begin(); it != builds_.end(); ++it) {
        if (*it == c) {
          builds_.erase(it);
          break;
        }
      }
    } catch (...) {
    }
  }

  // No callback and no capture from now on (the lib that owned this logger is being freed).
  void detach() noexcept {
    try {
      std::lock_guard<std::recursive_mutex> guard(mu_);
      fn_ = nullptr;
      user_ = nullptr;
      builds_.clear();
    } catch (...) {
    }
  }

 private:
  static void append(CallCapture& c, char const* text) {
    if (!c.errors.empty()) c.errors += " | ";
    c.errors += text;
  }

  std::recursive_mutex mu_;
  tinv_trt_log_fn fn_;
  void* user_;
  int32_t min_severity_;
  std::vector<CallCapture*> builds_;  // guarded by mu_
};

// Writes "what[: TensorRT errors]" into err (truncated to fit) and returns status.
int32_t fail(tinv_trt_error* err, int32_t status, std::string const& what) noexcept {
  if (err == nullptr) return status;
  try {
    std::string line = what;
    if (t_capture != nullptr && !t_capture->errors.empty()) line += ": " + t_capture->errors;
    for (char& c : line) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    size_t const n = line.size() < TINV_TRT_ERROR_LEN - 1 ? line.size() : TINV_TRT_ERROR_LEN - 1;
    std::memcpy(err->msg, line.data(), n);
    err->msg[n] = '\0';
  } catch (...) {
    std::strncpy(err->msg, "error message could not be formatted", TINV_TRT_ERROR_LEN - 1);
    err->msg[TINV_TRT_ERROR_LEN - 1] = '\0';
  }
  return status;
}

int32_t fail_exception(tinv_trt_error* err, char const* where) noexcept {
  try {
    throw;
  } catch (std::bad_alloc const&) {
    return fail(err, TINV_TRT_ERR_NO_MEMORY, std::string(where) + ": out of host memory");
  } catch (std::exception const& e) {
    return fail(err, TINV_TRT_ERR_EXCEPTION, std::string(where) + ": exception: " + e.what());
  } catch (...) {
    return fail(err, TINV_TRT_ERR_EXCEPTION, std::string(where) + ": unknown exception");
  }
}

// getInferLibVersion() encodes 8.x as M*1000+m*100+p and >= 10 as M*10000+m*100+p.
tinv_trt_version decode_version(int32_t raw) {
  tinv_trt_version v{};
  v.raw = raw;
  if (raw >= 100000) {
    v.major = raw / 10000;
    v.minor = (raw / 100) % 100;
  } else {
    v.major = raw / 1000;
    v.minor = (raw / 100) % 10;
  }
  v.patch = raw % 100;
  return v;
}

int32_t dtype_code(nvinfer1::DataType t) {
  switch (t) {
    case nvinfer1::DataType::kFLOAT: return TINV_TRT_DTYPE_FLOAT;
    case nvinfer1::DataType::kHALF: return TINV_TRT_DTYPE_HALF;
    case nvinfer1::DataType::kINT8: return TINV_TRT_DTYPE_INT8;
    case nvinfer1::DataType::kINT32: return TINV_TRT_DTYPE_INT32;
    case nvinfer1::DataType::kBOOL: return TINV_TRT_DTYPE_BOOL;
    case nvinfer1::DataType::kUINT8: return TINV_TRT_DTYPE_UINT8;
#if TINV_TRT_AT_LEAST(8, 6)
    case nvinfer1::DataType::kFP8: return TINV_TRT_DTYPE_FP8;
#endif
#if NV_TENSORRT_MAJOR >= 10
    case nvinfer1::DataType::kBF16: return TINV_TRT_DTYPE_BF16;
    case nvinfer1::DataType::kINT64: return TINV_TRT_DTYPE_INT64;
#endif
    default: return TINV_TRT_DTYPE_OTHER;
  }
}

int32_t io_mode_code(nvinfer1::TensorIOMode m) {
  switch (m) {
    case nvinfer1::TensorIOMode::kINPUT: return TINV_TRT_IO_INPUT;
    case nvinfer1::TensorIOMode::kOUTPUT: return TINV_TRT_IO_OUTPUT;
    default: return TINV_TRT_IO_NONE;
  }
}

std::string lib_name(char const* prefix) {
  return std::string(prefix) + ".so." + std::to_string(NV_TENSORRT_MAJOR);
}

std::string dl_error() {
  char const* e = dlerror();
  return e != nullptr ? std::string(e) : std::string("unknown dlopen error");
}

}  // namespace

// ---- handles ----------------------------------------------------------------------------------

struct tinv_trt_lib {
  Logger* logger;               // never deleted once TensorRT has it (see Logger)
  bool logger_given = false;    // whether TensorRT has it
  void* nvinfer = nullptr;
  void* parser_dl = nullptr;
  std::string parser_path;
  std::mutex parser_mu;  // guards the lazy parser dlopen
  CreateFn create_builder = nullptr;
  ParserCreateFn create_parser = nullptr;
  nvinfer1::IRuntime* runtime = nullptr;
  tinv_trt_version version{};

  tinv_trt_lib(tinv_trt_log_fn fn, void* user, int32_t min_severity)
      : logger(new Logger(fn, user, min_severity)) {}
  // The libraries stay loaded: NVIDIA documents no unloading of libnvinfer (or of the CUDA
  // runtime linked into it), and trtexec never does; a later open finds them already mapped.
  ~tinv_trt_lib() {
    delete runtime;
    if (logger_given) {
      logger->detach();
    } else {
      delete logger;
    }
  }
  tinv_trt_lib(tinv_trt_lib const&) = delete;
  tinv_trt_lib& operator=(tinv_trt_lib const&) = delete;
};

struct tinv_trt_engine {
  tinv_trt_lib* lib;
  nvinfer1::ICudaEngine* engine;
};

struct tinv_trt_context {
  tinv_trt_engine* engine;
  nvinfer1::IExecutionContext* ctx;
};

// ---- versions ---------------------------------------------------------------------------------

extern "C" uint32_t tinv_trt_abi_version(void) noexcept { return TINV_TRT_ABI_VERSION; }

extern "C" int32_t tinv_trt_header_major(void) noexcept { return NV_TENSORRT_MAJOR; }

extern "C" int32_t tinv_trt_header_version(void) noexcept {
  return NV_TENSORRT_MAJOR * 10000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH;
}

// ---- library ----------------------------------------------------------------------------------

extern "C" int32_t tinv_trt_lib_open(char const* nvinfer_path, char const* onnxparser_path,
                                     tinv_trt_log_fn log, void* log_user, int32_t min_severity,
                                     tinv_trt_lib** out, tinv_trt_error* err) noexcept {
  CallScope scope;
  try {
    if (out == nullptr) return fail(err, TINV_TRT_ERR_ARGUMENT, "tinv_trt_lib_open: out is NULL");
    auto lib = std::make_unique<tinv_trt_lib>(log, log_user, min_severity);
    std::string const path = nvinfer_path != nullptr ? nvinfer_path : lib_name("libnvinfer");
    lib->parser_path = onnxparser_path != nullptr ? onnxparser_path : lib_name("libnvonnxparser");
    lib->nvinfer = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib->nvinfer == nullptr) {
      return fail(err, TINV_TRT_ERR_LOAD, "cannot load " + path + ": " + dl_error());
    }
    auto version = reinterpret_cast<VersionFn>(dlsym(lib->nvinfer, "getInferLibVersion"));
    auto create_runtime = reinterpret_cast<CreateFn>(dlsym(lib->nvinfer, "createInferRuntime_INTERNAL"));
    lib->create_builder = reinterpret_cast<CreateFn>(dlsym(lib->nvinfer, "createInferBuilder_INTERNAL"));
    if (version == nullptr || create_runtime == nullptr || lib->create_builder == nullptr) {
      return fail(err, TINV_TRT_ERR_LOAD, path + " lacks a TensorRT factory symbol: " + dl_error());
    }
    lib->version = decode_version(version());
    if (lib->version.major != NV_TENSORRT_MAJOR) {
      return fail(err, TINV_TRT_ERR_VERSION,
                  path + " is TensorRT " + std::to_string(lib->version.major) + "." +
                      std::to_string(lib->version.minor) + " but this shim was built for TensorRT " +
                      std::to_string(NV_TENSORRT_MAJOR) + ".x headers");
    }
    // The calls were chosen by the headers' minor (setMaxAuxStreams from 8.6, the V2 device
    // memory calls from 10.1): an older library lacks them.
    if (lib->version.minor < NV_TENSORRT_MINOR) {
      return fail(err, TINV_TRT_ERR_VERSION,
                  path + " is TensorRT " + std::to_string(lib->version.major) + "." +
                      std::to_string(lib->version.minor) + " but this shim was built with " +
                      std::to_string(NV_TENSORRT_MAJOR) + "." + std::to_string(NV_TENSORRT_MINOR) +
                      " headers and needs that version or newer; build it against this "
                      "device's headers");
    }
    lib->logger_given = true;
    lib->runtime = static_cast<nvinfer1::IRuntime*>(create_runtime(lib->logger, NV_TENSORRT_VERSION));
    if (lib->runtime == nullptr) {
      return fail(err, TINV_TRT_ERR_TENSORRT, "createInferRuntime failed (no usable CUDA device?)");
    }
    *out = lib.release();
    return TINV_TRT_OK;
  } catch (...) {
    return fail_exception(err, "tinv_trt_lib_open");
  }
}

extern "C" void tinv_trt_lib_free(tinv_trt_lib* lib) noexcept {
  try {
    delete lib;
  } catch (...) {
    // Destructors of TensorRT objects are noexcept; nothing can be reported from a free.
  }
}

extern "C" int32_t tinv_trt_lib_version(tinv_trt_lib const* lib, tinv_trt_version* out,
                                        tinv_trt_error* err) noexcept {
  if (lib == nullptr || out == nullptr) {
    return fail(err, TINV_TRT_ERR_ARGUMENT, "tinv_trt_lib_version: NULL argument");
  }
  *out = lib->version;
  return TINV_TRT_OK;
}

// ---- engines ----------------------------------------------------------------------------------

extern "C" int32_t tinv_trt_engine_deserialize(tinv_trt_lib* lib, void const* plan, size_t size,
                                               tinv_trt_engine** out, tinv_trt_error* err) noexcept {
  CallScope scope;
  try {
    if (lib == nullptr || plan == nullptr || size == 0 || out == nullptr) {
      return fail(err, TINV_TRT_ERR_ARGUMENT, "tinv_trt_engine_deserialize: NULL or empty argument");
    }
    // Owned until its wrapper exists: a `new` that throws must not leak the engine.
    std::unique_ptr<nvinfer1::ICudaEngine> engine(lib->runtime->deserializeCudaEngine(plan, size));
    if (engine == nullptr) {
      // One signal for every cause (another TensorRT version or GPU, a damaged file, no device
      // memory for the weights): TensorRT's own message, appended by `fail`, tells them apart.
      return fail(err, TINV_TRT_ERR_TENSORRT, "TensorRT could not deserialize the plan");
    }
    *out = new tinv_trt_engine{lib, engine.get()};
    engine.release();
    return TINV_TRT_OK;
  } catch (...) {
    return fail_exception(err, "tinv_trt_engine_deserialize");
  }
}

extern "C" void tinv_trt_engine_free(tinv_trt_engine* engine) noexcept {
  if (engine == nullptr) return;
  delete engine->engine;
  delete engine;
}

extern "C" int32_t tinv_trt_engine_io_count(tinv_trt_engine const* engine, int32_t* out,
                                            tinv_trt_error* err) noexcept {
  if (engine == nullptr || out == nullptr) {
    return fail(err, TINV_TRT_ERR_ARGUMENT, "tinv_trt_engine_io_count: NULL argument");
  }
  *out = engine->engine->getNbIOTensors();
  return TINV_TRT_OK;
}

extern "C" int32_t tinv_trt_engine_io_info(tinv_trt_engine const* engine, int32_t index,
                                           tinv_trt_io_info* out, tinv_trt_error* err) noexcept {
  CallScope scope;
  try {
    if (engine == nullptr || out == nullptr) {
      return fail(err, TINV_TRT_ERR_ARGUMENT, "tinv_trt_engine_io_info: NULL argument");
    }
    nvinfer1::ICudaEngine const& e = *engine->engine;
    if (index < 0 || index >= e.getNbIOTensors()) {
      return fail(err, TINV_TRT_ERR_ARGUMENT,
                  "I/O tensor index " + std::to_string(index) + " out of range (engine has " +
                      std::to_string(e.getNbIOTensors()) + ")");
    }
    char const* name = e.getIOTensorName(index);
    if (name == nullptr) return fail(err, TINV_TRT_ERR_TENSORRT, "getIOTensorName returned NULL");
    nvinfer1::Dims const dims = e.getTensorShape(name);
    if (dims.nbDims < 0 || dims.nbDims > TINV_TRT_MAX_DIMS) {
      return fail(err, TINV_TRT_ERR_TENSORRT,
                  std::string("tensor ") + name + " has invalid rank " + std::to_string(dims.nbDims));
    }
    tinv_trt_io_info info{};
    info.name = name;
    info.mode = io_mode_code(e.getTensorIOMode(name));
    info.dtype = dtype_code(e.getTensorDataType(name));
    info.shape.nb_dims = dims.nbDims;
    for (int32_t i = 0; i < dims.nbDims; ++i) info.shape.d[i] = static_cast<int64_t>(dims.d[i]);
    *out = info;
    return TINV_TRT_OK;
  } catch (...) {
    return fail_exception(err, "tinv_trt_engine_io_info");
  }
}

extern "C" int32_t tinv_trt_engine_device_memory_size(tinv_trt_engine const* engine, uint64_t* out,
                                                      tinv_trt_error* err) noexcept {
  CallScope scope;
  try {
    if (engine == nullptr || out == nullptr) {
      return fail(err, TINV_TRT_ERR_ARGUMENT, "tinv_trt_engine_device_memory_size: NULL argument");
    }
#if TINV_TRT_AT_LEAST(10, 1)
    int64_t const size = engine->engine->getDeviceMemorySizeV2();
    if (size < 0) return fail(err, TINV_TRT_ERR_TENSORRT, "getDeviceMemorySizeV2 returned a negative size");
    *out = static_cast<uint64_t>(size);
#else
    TINV_ALLOW_DEPRECATED_BEGIN
    *out = static_cast<uint64_t>(engine->engine->getDeviceMemorySize());
    TINV_ALLOW_DEPRECATED_END
#endif
    return TINV_TRT_OK;
  } catch (...) {
    return fail_exception(err, "tinv_trt_engine_device_memory_size");
  }
}

// ---- execution contexts -----------------------------------------------------------------------

extern "C" int32_t tinv_trt_context_create(tinv_trt_engine* engine, tinv_trt_context** out,
                                           tinv_trt_error* err) noexcept {
  CallScope scope;
  try {
    if (engine == nullptr || out == nullptr) {
      return fail(err, TINV_TRT_ERR_ARGUMENT, "tinv_trt_context_create: NULL argument");
    }
    // Owned until its wrapper exists: a `new` that throws must not leak the context.
#if NV_TENSORRT_MAJOR >= 10
    std::unique_ptr<nvinfer1::IExecutionContext> ctx(engine->engine->createExecutionContext(
        nvinfer1::ExecutionContextAllocationStrategy::kUSER_MANAGED));
#else
    std::unique_ptr<nvinfer1::IExecutionContext> ctx(
        engine->engine->createExecutionContextWithoutDeviceMemory());
#endif
    if (ctx == nullptr) return fail(err, TINV_TRT_ERR_TENSORRT, "createExecutionContext failed");
    *out = new tinv_trt_context{engine, ctx.get()};
    ctx.release();
    return TINV_TRT_OK;
  } catch (...) {
    return fail_exception(err, "tinv_trt_context_create");
  }
}

extern "C" void tinv_trt_context_free(tinv_trt_context* ctx) noexcept {
  if (ctx == nullptr) return;
  delete ctx->ctx;
  delete ctx;
}

extern "C" int32_t tinv_trt_context_set_device_memory(tinv_trt_context* ctx, void* mem, uint64_t size,
                                                      tinv_trt_error* err) noexcept {
  CallScope scope;
  try {
    if (ctx == nullptr || mem == nullptr) {
      return fail(err, TINV_TRT_ERR_ARGUMENT, "tinv_trt_context_set_device_memory: NULL argument");
    }
    if (reinterpret_cast<uintptr_t>(mem) % kAlignment != 0) {
      return fail(err, TINV_TRT_ERR_ARGUMENT, "device memory is not 256-byte aligned");
    }
    uint64_t needed = 0;
    int32_t const status = tinv_trt_engine_device_memory_size(ctx->engine, &needed, err);
    if (status != TINV_TRT_OK) return status;
    if (size < needed) {
      return fail(err, TINV_TRT_ERR_ARGUMENT,
                  "device memory of " + std::to_string(size) + " bytes is smaller than the engine's " +
                      std::to_string(needed));
    }
#if TINV_TRT_AT_LEAST(10, 1)
    ctx->ctx->setDeviceMemoryV2(mem, static_cast<int64_t>(size));
#else
    TINV_ALLOW_DEPRECATED_BEGIN
    ctx->ctx->setDeviceMemory(mem);
    TINV_ALLOW_DEPRECATED_END
#endif
    return TINV_TRT_OK;
  } catch (...) {
    return fail_exception(err, "tinv_trt_context_set_device_memory");
  }
}

extern "C" int32_t tinv_trt_context_set_tensor_address(tinv_trt_context* ctx, char const* name, void* addr,
                                                       tinv_trt_error* err) noexcept {
  CallScope scope;
  try {
    if (ctx == nullptr || name == nullptr || addr == nullptr) {
      return fail(err, TINV_TRT_ERR_ARGUMENT, "tinv_trt_context_set_tensor_address: NULL argument");
    }
    if (ctx->engine->engine->getTensorIOMode(name) == nvinfer1::TensorIOMode::kNONE) {
      return fail(err, TINV_TRT_ERR_UNKNOWN_TENSOR, std::string("engine has no I/O tensor named ") + name);
    }
    if (reinterpret_cast<uintptr_t>(addr) % kAlignment != 0) {
      return fail(err, TINV_TRT_ERR_ARGUMENT, std::string("address of tensor ") + name + " is not 256-byte aligned");
    }
    if (!ctx->ctx->setTensorAddress(name, addr)) {
      return fail(err, TINV_TRT_ERR_TENSORRT, std::string("setTensorAddress(") + name + ") failed");
    }
    return TINV_TRT_OK;
  } catch (...) {
    return fail_exception(err, "tinv_trt_context_set_tensor_address");
  }
}

extern "C" int32_t tinv_trt_context_set_input_shape(tinv_trt_context* ctx, char const* name,
                                                    tinv_trt_dims const* shape, tinv_trt_error* err) noexcept {
  CallScope scope;
  try {
    if (ctx == nullptr || name == nullptr || shape == nullptr) {
      return fail(err, TINV_TRT_ERR_ARGUMENT, "tinv_trt_context_set_input_shape: NULL argument");
    }
    if (ctx->engine->engine->getTensorIOMode(name) != nvinfer1::TensorIOMode::kINPUT) {
      return fail(err, TINV_TRT_ERR_UNKNOWN_TENSOR, std::string("engine has no input tensor named ") + name);
    }
    if (shape->nb_dims < 0 || shape->nb_dims > TINV_TRT_MAX_DIMS) {
      return fail(err, TINV_TRT_ERR_ARGUMENT, "rank " + std::to_string(shape->nb_dims) + " out of range");
    }
    nvinfer1::Dims dims{};
    dims.nbDims = shape->nb_dims;
    for (int32_t i = 0; i < shape->nb_dims; ++i) {
      using Dim = typename std::remove_reference<decltype(dims.d[0])>::type;
      int64_t const v = shape->d[i];
      // 8.x dimensions are int32: refuse what would not round-trip.
      if (v < 0 || static_cast<int64_t>(static_cast<Dim>(v)) != v) {
        return fail(err, TINV_TRT_ERR_ARGUMENT, "dimension " + std::to_string(v) + " of " + name + " is invalid");
      }
      dims.d[i] = static_cast<Dim>(v);
    }
    if (!ctx->ctx->setInputShape(name, dims)) {
      return fail(err, TINV_TRT_ERR_TENSORRT, std::string("setInputShape(") + name + ") failed");
    }
    return TINV_TRT_OK;
  } catch (...) {
    return fail_exception(err, "tinv_trt_context_set_input_shape");
  }
}

extern "C" int32_t tinv_trt_context_enqueue(tinv_trt_context* ctx, void* stream, tinv_trt_error* err) noexcept {
  CallScope scope;
  try {
    if (ctx == nullptr || stream == nullptr) {
      return fail(err, TINV_TRT_ERR_ARGUMENT, "tinv_trt_context_enqueue: NULL context or default stream");
    }
    if (!ctx->ctx->enqueueV3(static_cast<cudaStream_t>(stream))) {
      return fail(err, TINV_TRT_ERR_TENSORRT, "enqueueV3 failed");
    }
    return TINV_TRT_OK;
  } catch (...) {
    return fail_exception(err, "tinv_trt_context_enqueue");
  }
}

// The builder half (options, ONNX parsing, serialization) is in tinv_trt_build.inc so that each
// file stays readable; it is part of this translation unit.
#include "tinv_trt_build.inc"
