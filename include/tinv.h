/*
 * tinv.h — C API of tinv, a static, embedded runtime for input-adaptive-depth Vision
 * Transformers (libtinv.so / libtinv.a). C99; usable from C++ (extern "C").
 *
 * Objects
 *   tinv_model    A validated, memory-mapped .tinv file: configuration, weights, one plan per
 *                 depth path. Read-only after open: every function taking a `const tinv_model *`
 *                 may be called from any number of threads at once, and sessions on one model
 *                 may run on different threads at the same time.
 *   tinv_session  One thread's state for running a model: the fixed arena, worker pool,
 *                 controller buffers, the stats of the last call. A session may move between
 *                 threads but must be used by one thread at a time; a second thread entering a
 *                 call on a busy session gets TINV_ERR_SESSION_BUSY (never a data race).
 *
 * Handles are opaque and never dereferenced by the library: each is an id checked against a
 * registry with a generation counter, so passing a freed (stale), twice-freed or wrong-kind
 * handle returns TINV_ERR_INVALID_HANDLE and touches no freed memory. A forged value is refused
 * on a best-effort basis: ids are small integers, so a made-up one may name a live object.
 *
 * Conventions
 *   - Every fallible function returns a tinv_status; TINV_OK is 0. On failure a one-line
 *     message is available from tinv_last_error() on the same thread.
 *   - Arguments come in the order object, inputs, outputs; every buffer is followed by its
 *     length in elements. Outputs (including `*out` handles) are written only on success.
 *   - Every required pointer argument that is NULL gives TINV_ERR_NULL_ARG, and one that is
 *     not aligned for its type gives TINV_ERR_INVALID_ARG (each naming it).
 *   - The caller owns every buffer; a successful inference never allocates (a failed one
 *     may, for its message) and no call keeps a pointer to a caller buffer after it returns. (With libtinv.so loaded by dlopen, glibc
 *     allocates the library's thread-local block on a thread's first use: call
 *     tinv_last_error() once on a real-time thread before its loop; see docs/C_API.md.)
 *   - No Rust panic crosses this boundary: one is caught and returned as TINV_ERR_PANIC, and
 *     its message goes to the log callback (level 1), not to stderr.
 *   - No function is a POSIX cancellation point: with deferred cancellation (the default), a
 *     pthread_cancel() of a thread inside a call takes effect at the thread's first
 *     cancellation point after the call returns. (Under asynchronous cancellation a cancel
 *     pending when a call returns aborts the process: do not call tinv in that mode.)
 *   - Options structs start with `struct_size`; fill them with tinv_*_options_default()
 *     and change fields, so a library and a header of different versions detect each other
 *     (TINV_ERR_OPTIONS_VERSION). Passing NULL options means the defaults.
 *
 * Input: float32, CHW, raw pixel values in [0, 1] (the model's mean/std normalization is
 * applied inside). NaN/Inf policy: an input holding a NaN or an infinity is rejected with
 * TINV_ERR_INVALID_INPUT before anything runs; a call whose logits, or whose controller's
 * outputs, come out NaN or infinite (finite inputs far outside [0, 1], or a model file with
 * non-finite weights) fails with TINV_ERR_NUMERIC. Either way the logits buffer is left
 * untouched.
 *
 * Status codes listed per function are the specific ones; any function may also return
 * TINV_ERR_PANIC or TINV_ERR_INTERNAL (bugs in tinv).
 */
#ifndef TINV_H
#define TINV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this header; tinv_version_number() gives the library's (they must agree). */
#define TINV_VERSION_MAJOR 0
#define TINV_VERSION_MINOR 1
#define TINV_VERSION_PATCH 0
#define TINV_VERSION_STRING "0.1.0"
#define TINV_VERSION_NUMBER (TINV_VERSION_MAJOR * 1000000 + TINV_VERSION_MINOR * 1000 + TINV_VERSION_PATCH)

/* ---- Status ---------------------------------------------------------------------------- */

/* One status type. Numbers come in families (argument 1xx, file/format 2xx, device 3xx,
 * resources 4xx, internal 9xx) and are never reused. Every enum of this header ends in a
 * 0x7fffffff sentinel, so it is 32 bits wide under -fshort-enums too (the library passes and
 * returns them as uint32_t). */
typedef enum tinv_status {
    TINV_OK = 0,
    /* Argument errors. */
    TINV_ERR_NULL_ARG = 100,          /* a required pointer argument is NULL */
    TINV_ERR_INVALID_ARG = 101,       /* batch, depth, budget, threshold, mode, backend, option out of range */
    TINV_ERR_BUFFER_TOO_SMALL = 102,  /* an output buffer's length is smaller than the result */
    TINV_ERR_INPUT_LENGTH = 103,      /* input element count is not batch * C * H * W */
    TINV_ERR_INVALID_INPUT = 104,     /* input holds NaN or +-Inf */
    TINV_ERR_INVALID_HANDLE = 105,    /* stale (freed), double-freed or wrong-kind handle (forged:
                                         best effort) */
    TINV_ERR_OPTIONS_VERSION = 106,   /* options.struct_size unknown to this library */
    TINV_ERR_SESSION_BUSY = 107,      /* another thread is inside a call on this session */
    TINV_ERR_NUMERIC = 108,           /* the logits or the controller's outputs came out NaN or
                                         infinite: an input far outside [0, 1], or non-finite
                                         weights */
    /* File and format errors. */
    TINV_ERR_IO = 200,                /* the model file could not be opened or mapped */
    TINV_ERR_FORMAT = 201,            /* the bytes are not a valid .tinv file */
    TINV_ERR_CHECKSUM = 202,          /* a checksum mismatched: the metadata's or the content hash (checked at every open) or a tensor's (verify option) */
    TINV_ERR_MODEL = 203,             /* valid file, but not a model this runtime can run */
    /* Device / backend errors. */
    TINV_ERR_BACKEND_UNAVAILABLE = 300, /* backend not built into this library or not usable here */
    TINV_ERR_BACKEND = 301,           /* the backend failed while running */
    TINV_ERR_ENGINES_STALE = 302,     /* the TensorRT engines were built for another model,
                                         TensorRT version, GPU or exporter version, or a plan
                                         is missing or refused: rebuild them (`tinv-run build`);
                                         tinv_last_error() names the field or the plan */
    /* Resources. */
    TINV_ERR_OUT_OF_MEMORY = 400,     /* host memory for a session, or for an f16 model's f32
                                          copies, could not be allocated */
    TINV_ERR_OUT_OF_HANDLES = 401,    /* more than 2^20 live models (or sessions) */
    /* Internal errors (bugs in tinv; please report them with tinv_last_error()). */
    TINV_ERR_PANIC = 900,             /* a Rust panic was caught at the boundary */
    TINV_ERR_INTERNAL = 901,          /* an internal invariant failed */
    TINV_STATUS_MAX_ = 0x7fffffff     /* not a status: keeps the enum 32 bits wide */
} tinv_status;

/* Static, NUL-terminated description of a status ("unknown status" for other values).
 * Never NULL; never freed. Thread-safe. */
const char *tinv_status_str(tinv_status status);

/* This thread's message for the last failed call ("" after a successful call). Never NULL.
 * The string is owned by the library and valid until this thread's next call into tinv
 * (tinv_last_error, tinv_status_str, the version functions and tinv_*_options_default do not
 * count). Thread-local:
 * each thread sees its own message. */
const char *tinv_last_error(void);

/* Library version as "MAJOR.MINOR.PATCH" (static) and as TINV_VERSION_NUMBER encodes it.
 * Compare with the header macros to detect a header/library mismatch. Thread-safe. */
const char *tinv_version_string(void);
uint32_t tinv_version_number(void);

/* ---- Logging ------------------------------------------------------------------------------ */

/* Receives one log record: level 1 error, 2 warning, 3 info, 4 debug, 5 trace; a one-line,
 * NUL-terminated message starting "tinv: ", valid only during the call; the user_data given to
 * tinv_set_log_callback. Called from whichever thread logs (worker threads included), so it must
 * be thread-safe; it must not call into tinv other than tinv_set_log_callback, and it must
 * return: a C++ exception thrown out of it aborts the process (declare it noexcept), and a
 * longjmp out of it leaves the library waiting for it for ever. */
typedef void (*tinv_log_callback)(uint32_t level, const char *message, void *user_data);

/* Sends the library's log records up to max_level (0 off, 1 error ... 5 trace) to `callback`:
 * a worker thread the OS refused, why TINV_BACKEND_AUTO chose the CPU, TensorRT's messages.
 * Without a callback the library prints nothing. NULL removes the callback. Process-wide and
 * thread-safe; may be called at any time. When it returns, the callback it replaced is no longer
 * running on any other thread and will not be called again: its user_data may be freed (so that
 * callback must not wait for a thread that is calling tinv_set_log_callback). Returns TINV_OK,
 * TINV_ERR_INVALID_ARG (max_level above 5, or another logger already installed in this process
 * by a Rust host). */
tinv_status tinv_set_log_callback(tinv_log_callback callback, void *user_data, uint32_t max_level);

/* ---- Handles and enums ------------------------------------------------------------------ */

typedef struct tinv_model tinv_model;
typedef struct tinv_session tinv_session;

/* Stored in tinv_model_options.backend (uint32_t). */
typedef enum tinv_backend {
    TINV_BACKEND_AUTO = 0,     /* TensorRT when built in and the model's engines open, else the
                                  CPU; decided by tinv_model_open (see tinv_model_backend) */
    TINV_BACKEND_CPU = 1,      /* the CPU reference backend (SIMD chosen at run time) */
    TINV_BACKEND_TENSORRT = 2, /* NVIDIA TensorRT; TINV_ERR_BACKEND_UNAVAILABLE in CPU-only builds */
    TINV_BACKEND_MAX_ = 0x7fffffff /* not a backend: keeps the enum 32 bits wide */
} tinv_backend;

/* Stored in tinv_session_options.mode and passed to tinv_session_set_mode. */
typedef enum tinv_mode {
    TINV_MODE_ADAPTIVE = 0,  /* controller picks a start path; the layer-wise policy may go deeper */
    TINV_MODE_GRAPH = 1,     /* controller picks one path per input before it runs (no escalation) */
    TINV_MODE_THRESHOLD = 2, /* baseline: shallowest path first, go deeper while max softmax < tau */
    TINV_MODE_MAX_ = 0x7fffffff /* not a mode: keeps the enum 32 bits wide */
} tinv_mode;

/* ---- Model ------------------------------------------------------------------------------ */

typedef struct tinv_model_options {
    uint32_t struct_size;     /* sizeof(tinv_model_options); set by tinv_model_options_default() */
    uint32_t backend;         /* a tinv_backend; default TINV_BACKEND_AUTO (0) */
    uint32_t verify;          /* nonzero: recompute every tensor checksum at open (reads every
                                 page once; TINV_ERR_CHECKSUM) and compare each device-section
                                 copy with its host tensor (TINV_ERR_MODEL); 0 (default):
                                 structural validation and the metadata checksum only */
    uint32_t reserved;        /* must be 0 */
    const char *engines_dir;  /* directory of built TensorRT engines (`tinv-run build`);
                                 NULL (default) = the `plans` directory beside the model file
                                 for tinv_model_open, no directory for tinv_model_open_bytes
                                 (the current directory is never searched). A relative path is
                                 resolved against the current directory during the open call.
                                 Not read by TINV_BACKEND_CPU, nor by AUTO in a CPU-only build;
                                 where read, "" is TINV_ERR_INVALID_ARG. Only read during the
                                 open call. */
} tinv_model_options;

/* Default model options (backend auto, no verify). Thread-safe. */
tinv_model_options tinv_model_options_default(void);

/* Opens and validates the .tinv file at `path` (NUL-terminated, any bytes the OS accepts) and
 * stores a new model handle in *out. The file is memory-mapped: it must not be modified or
 * truncated while the model (or a session on it) is alive; replace model files by renaming.
 * `options` may be NULL (defaults); it is only read during the call.
 * The backend is decided here, once for every session on the model:
 *   TINV_BACKEND_CPU       the CPU.
 *   TINV_BACKEND_TENSORRT  the engines of the engines folder (engines_dir, or its default) are
 *                          opened now: manifest checked against the model, this TensorRT and
 *                          this GPU, weights uploaded to the GPU once per model. If that fails,
 *                          so does this call: TINV_ERR_ENGINES_STALE when the engines were
 *                          built for another model, TensorRT or GPU or a plan is missing or
 *                          refused, else
 *                          TINV_ERR_BACKEND_UNAVAILABLE, with a message saying what is missing
 *                          or stale (either way `tinv-run build` makes the engines).
 *   TINV_BACKEND_AUTO      as TENSORRT when this library has TensorRT and the engines folder
 *                          holds a manifest; the CPU when it does not or when opening the
 *                          engines fails (the reason is logged, the call succeeds).
 * Free with tinv_model_free. Thread-safe.
 * Returns TINV_OK, TINV_ERR_NULL_ARG (path, out), TINV_ERR_OPTIONS_VERSION, TINV_ERR_INVALID_ARG
 * (backend, reserved, misaligned options pointer, engines_dir "" where it is read),
 * TINV_ERR_BACKEND_UNAVAILABLE (TENSORRT in a CPU-only build, no manifest, a plan that cannot be
 * read, or TensorRT or the GPU not usable),
 * TINV_ERR_ENGINES_STALE (TENSORRT, engines built for another model, TensorRT or GPU, or a
 * plan missing or refused),
 * TINV_ERR_IO (also when `path` is a directory), TINV_ERR_FORMAT, TINV_ERR_CHECKSUM,
 * TINV_ERR_MODEL, TINV_ERR_OUT_OF_MEMORY (an f16 model's controller tensors widened to f32 on the
 * host; its other tensors are widened by the first CPU session, see tinv_session_open),
 * TINV_ERR_OUT_OF_HANDLES. */
tinv_status tinv_model_open(const char *path, const tinv_model_options *options, tinv_model **out);

/* As tinv_model_open, from `len` bytes at `data`, which are copied: the caller may free `data`
 * when the call returns. Such a model has no directory of its own: with engines_dir NULL, AUTO
 * uses the CPU and TENSORRT fails with TINV_ERR_BACKEND_UNAVAILABLE. Same status codes
 * (TINV_ERR_NULL_ARG for data, out; TINV_ERR_INVALID_ARG also for len > PTRDIFF_MAX; no
 * TINV_ERR_IO except when memory for the copy cannot be mapped). */
tinv_status tinv_model_open_bytes(const void *data, size_t len, const tinv_model_options *options,
                                  tinv_model **out);

/* Releases the handle. NULL is a no-op (TINV_OK). Sessions opened on the model stay valid: they
 * keep the weights alive until the last of them is freed. Any thread; do not race it against
 * other calls on the same handle if you rely on their result (they will see either the model or
 * TINV_ERR_INVALID_HANDLE, never freed memory).
 * Returns TINV_OK, TINV_ERR_INVALID_HANDLE (already freed, or not a model handle). */
tinv_status tinv_model_free(tinv_model *model);

/* Model queries. Each writes its outputs only on success and is thread-safe.
 * Returns TINV_OK, TINV_ERR_NULL_ARG, TINV_ERR_INVALID_HANDLE (and TINV_ERR_INVALID_ARG for
 * a path index out of range). */

/* Input shape: channels, height, width. Inputs are float32 CHW in [0, 1]. */
tinv_status tinv_model_input_shape(const tinv_model *model, size_t *channels, size_t *height,
                                   size_t *width);
/* Floats per input: channels * height * width. */
tinv_status tinv_model_input_len(const tinv_model *model, size_t *out);
/* Pixel layouts of tinv_model_image_input: 8 bits per channel, interleaved. */
typedef enum tinv_pixels {
    TINV_PIXELS_GRAY8 = 0,   /* grey */
    TINV_PIXELS_RGB8 = 1,    /* red, green, blue (ROS rgb8) */
    TINV_PIXELS_BGR8 = 2,    /* blue, green, red (ROS bgr8, OpenCV) */
    TINV_PIXELS_RGBA8 = 3,   /* red, green, blue, alpha (alpha dropped) */
    TINV_PIXELS_BGRA8 = 4,   /* blue, green, red, alpha (alpha dropped) */
    TINV_PIXELS_MAX_ = 0x7fffffff /* not a layout: keeps the enum 32 bits wide */
} tinv_pixels;

/* Converts a camera image of the model's size (width x height pixels of `format`, a tinv_pixels,
 * rows `stride` bytes apart) into the model's input in out[0 .. tinv_model_input_len): CHW
 * floats, value / 255; grey feeds every channel; colour feeds a 3-channel model as R, G, B and a
 * 1-channel model through ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B), as `tinv-run
 * classify` converts its files; alpha is dropped. No resizing. `pixels` must hold
 * stride * (height - 1) + width * bytes-per-pixel bytes, and must not overlap `out` (no
 * conversion in place).
 * Returns TINV_OK, TINV_ERR_NULL_ARG, TINV_ERR_INVALID_HANDLE, TINV_ERR_INVALID_ARG (another
 * size than the model's, a stride shorter than a row, an unknown format, colour pixels for a
 * model of other than 1 or 3 channels, a misaligned `out`, `pixels` overlapping `out`),
 * TINV_ERR_BUFFER_TOO_SMALL (out_len below tinv_model_input_len). */
tinv_status tinv_model_image_input(const tinv_model *model, const uint8_t *pixels, size_t width,
                                   size_t height, size_t stride, uint32_t format, float *out,
                                   size_t out_len);
/* Number of classes = logits per input. */
tinv_status tinv_model_num_classes(const tinv_model *model, size_t *out);
/* Number of depth paths (exits). */
tinv_status tinv_model_num_paths(const tinv_model *model, size_t *out);
/* Path `index` (0 .. num_paths-1, shallowest first): its depth (encoder blocks run) and FLOPs
 * per input of the stem, blocks 1..depth and its exit head (controller not included). */
tinv_status tinv_model_path_info(const tinv_model *model, size_t index, size_t *depth,
                                 uint64_t *flops);
/* Bytes of host weights (every tensor of the file the CPU backend reads). */
tinv_status tinv_model_weight_bytes(const tinv_model *model, uint64_t *out);
/* The budget lambda stored in the model (0 when the model has no controller). */
tinv_status tinv_model_default_budget(const tinv_model *model, float *out);
/* The backend every session on the model runs on, as decided by the open call:
 * TINV_BACKEND_CPU or TINV_BACKEND_TENSORRT, never TINV_BACKEND_AUTO. */
tinv_status tinv_model_backend(const tinv_model *model, uint32_t *out);

/* ---- Session ---------------------------------------------------------------------------- */

typedef struct tinv_session_options {
    uint32_t struct_size;  /* sizeof(tinv_session_options); set by tinv_session_options_default() */
    uint32_t mode;         /* a tinv_mode; default TINV_MODE_ADAPTIVE (0) */
    float threshold;       /* tau in [0, 1] for TINV_MODE_THRESHOLD; ignored otherwise; default 0 */
    float budget;          /* lambda in [0, 1] (0 = accuracy first, 1 = fewest FLOPs);
                              negative (default -1) = the model's stored default; NaN is invalid */
    uint32_t max_batch;    /* most inputs per infer call, 1..4096 (the arena is sized for it);
                              0 = 1; default 1 */
    uint32_t threads;      /* threads one call may use, 1..256 (1 = only the calling thread);
                              0 = 1; default 1 */
} tinv_session_options;

/* Default session options (adaptive, the model's budget, max_batch 1, 1 thread). */
tinv_session_options tinv_session_options_default(void);

/* Opens a session on `model` and stores its handle in *out. Allocates everything the session
 * will ever use (arena, worker threads, plans; on TensorRT its device arena, I/O buffers and
 * CUDA graphs). It runs on the backend tinv_model_backend reports; it never switches to another.
 * The session holds a reference to the model, so
 * the model handle may be freed first. Thread-safe (many threads may open sessions on one model).
 * Returns TINV_OK, TINV_ERR_NULL_ARG (model, out), TINV_ERR_INVALID_HANDLE,
 * TINV_ERR_OPTIONS_VERSION, TINV_ERR_INVALID_ARG (an option out of range, misaligned options
 * pointer, or a max_batch whose arena would exceed 2 GiB for this model), TINV_ERR_BACKEND (TensorRT models only: the device could not set up the session,
 * e.g. out of GPU memory), TINV_ERR_OUT_OF_MEMORY (the arena or a batch-sized buffer could not
 * be allocated, or, for the first CPU session on an f16 model, the f32 copies of its weights;
 * a TensorRT session never makes them), TINV_ERR_OUT_OF_HANDLES. */
tinv_status tinv_session_open(const tinv_model *model, const tinv_session_options *options,
                              tinv_session **out);

/* Releases the session (joins its worker threads). NULL is a no-op (TINV_OK). If another thread
 * is inside a call on the session, that call completes normally and the memory is released when
 * it returns; later calls get TINV_ERR_INVALID_HANDLE.
 * Returns TINV_OK, TINV_ERR_INVALID_HANDLE (already freed, or not a session handle). */
tinv_status tinv_session_free(tinv_session *session);

/* Classifies `batch` inputs (1 .. max_batch) with the session's mode and budget.
 * input:  batch * C * H * W floats (input-major, each CHW in [0, 1]); input_len must be exactly
 *         that count.
 * logits: capacity logits_len >= batch * classes; receives batch * classes floats (input-major);
 *         entries beyond are untouched. Written only on success.
 * Per-input stats: tinv_session_last_stats (cleared by a failed call, the failures below with a
 * valid session handle included). Allocates nothing; one thread at a time per session.
 * Returns TINV_OK, TINV_ERR_NULL_ARG (session, input, logits), TINV_ERR_INVALID_HANDLE,
 * TINV_ERR_INVALID_ARG (batch, misaligned pointer), TINV_ERR_INPUT_LENGTH,
 * TINV_ERR_BUFFER_TOO_SMALL, TINV_ERR_INVALID_INPUT, TINV_ERR_NUMERIC (logits left untouched),
 * TINV_ERR_SESSION_BUSY, TINV_ERR_BACKEND. */
tinv_status tinv_session_infer(tinv_session *session, const float *input, size_t input_len,
                               size_t batch, float *logits, size_t logits_len);

/* As tinv_session_infer, but every input runs the path of depth `depth` (a depth reported by
 * tinv_model_path_info), without the controller. Same status codes; TINV_ERR_INVALID_ARG when
 * `depth` is not a path of the model (checked after the lengths and before the input's values:
 * a bad depth with a NaN input is TINV_ERR_INVALID_ARG). */
tinv_status tinv_session_infer_depth(tinv_session *session, const float *input, size_t input_len,
                                     size_t batch, size_t depth, float *logits, size_t logits_len);

/* Sets the budget lambda in [0, 1] for later calls; a negative value restores the model's stored
 * default (as budget -1 in tinv_session_options).
 * Returns TINV_OK, TINV_ERR_NULL_ARG, TINV_ERR_INVALID_HANDLE, TINV_ERR_INVALID_ARG (above 1
 * or NaN), TINV_ERR_SESSION_BUSY. */
tinv_status tinv_session_set_budget(tinv_session *session, float budget);

/* Sets the mode (a tinv_mode); `threshold` is tau in [0, 1] for TINV_MODE_THRESHOLD and ignored
 * otherwise. Same status codes as tinv_session_set_budget. */
tinv_status tinv_session_set_mode(tinv_session *session, uint32_t mode, float threshold);

/* What happened to one input of the last call. Its layout is fixed for the 0.x ABI (callers
 * pass arrays of it); fields added later will come through a new function, not a new size. */
typedef struct tinv_stats {
    uint32_t depth;          /* blocks run: depth of the path whose exit answered */
    uint32_t path;           /* index of that path */
    uint32_t start_depth;    /* depth of the path the controller started with */
    uint32_t escalations;    /* times the policy (or threshold) continued to a deeper path */
    uint64_t flops;          /* every FLOP run for this input: controller, stem, blocks, exits */
    uint64_t weight_bytes;   /* bytes of weights read for this input, each tensor once, as stored */
    uint32_t class_id;       /* predicted class: argmax of the logits */
    float confidence;        /* softmax probability of that class */
    int32_t predicted_path;  /* path the complexity predictor rated best; -1 if it did not run */
    uint32_t reserved;       /* 0 */
    double latency_us;       /* wall time of the whole call in microseconds (same for a batch) */
} tinv_stats;

/* Copies the stats of the latest tinv_session_infer / tinv_session_infer_depth call on this
 * session, one per input, into stats[0 .. *count): *count = that call's batch if it succeeded,
 * 0 if it failed for any reason (a NULL buffer and TINV_ERR_SESSION_BUSY included) and before
 * the first call. A call with an invalid session handle has no session and changes nothing.
 * stats_len is the capacity of `stats` in entries; tinv_session_max_batch entries always suffice.
 * Returns TINV_OK, TINV_ERR_NULL_ARG (session, stats, count), TINV_ERR_INVALID_HANDLE,
 * TINV_ERR_INVALID_ARG (misaligned stats pointer), TINV_ERR_BUFFER_TOO_SMALL
 * (stats_len < batch), TINV_ERR_SESSION_BUSY. */
tinv_status tinv_session_last_stats(tinv_session *session, tinv_stats *stats, size_t stats_len,
                                    size_t *count);

/* tinv_session_infer and the call's stats in one call: on success stats[0 .. batch) holds one
 * entry per input (what tinv_session_last_stats would copy). stats_len is the capacity of
 * `stats` in entries; below `batch` is TINV_ERR_BUFFER_TOO_SMALL before anything runs. On
 * failure `stats`, like `logits`, is left untouched.
 * Returns the status codes of tinv_session_infer; TINV_ERR_NULL_ARG also for `stats`,
 * TINV_ERR_INVALID_ARG also for a misaligned `stats`. */
tinv_status tinv_session_infer_stats(tinv_session *session, const float *input, size_t input_len,
                                     size_t batch, float *logits, size_t logits_len,
                                     tinv_stats *stats, size_t stats_len);

/* Bytes of the session's host arena (all activations of the largest path at max_batch); 0 for
 * a TensorRT session, whose arena is on the device. Fixed when the session opens: this and the
 * two calls below may run while another thread's call uses the session (no SESSION_BUSY).
 * Returns TINV_OK, TINV_ERR_NULL_ARG, TINV_ERR_INVALID_HANDLE. */
tinv_status tinv_session_arena_bytes(const tinv_session *session, size_t *out);

/* The session's max_batch. Same status codes as tinv_session_arena_bytes. */
tinv_status tinv_session_max_batch(const tinv_session *session, size_t *out);

/* The threads the session runs on, the calling thread included: options.threads, or fewer when
 * the OS refused to start a worker (the session then works on the ones it got); 1 for a
 * TensorRT session, which starts no CPU workers. Same status
 * codes as tinv_session_arena_bytes. */
tinv_status tinv_session_threads(const tinv_session *session, size_t *out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TINV_H */
