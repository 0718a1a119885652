/*
 * A fake libtinv_trt<MAJOR>.so for tests/fake_shim*.rs: every function of shim/tinv_trt.h with
 * scripted behaviour, no TensorRT and no GPU. Written for tinv; nothing here comes from NVIDIA.
 *
 * - Handles are calloc'ed structs with a magic number and an id (L1, E1, C1, B1), never freed
 *   (so a double free or a use after free reads FREED, not reused memory). Misuse (double free,
 *   forged handle, an engine freed before its contexts, a handle freed during a call on it, a
 *   second free begun while the first runs) is counted as a "VIOLATION ..." line in the log.
 * - Every call appends one line to a log the test reads with fake_log().
 * - fake_script(fn, after, status, mode, msg) makes the call of `fn` after `after` more calls
 *   fail with `status` (its message written per `mode`), or block until fake_release(fn), or
 *   return OK with a NULL output.
 * - A plan is text: "FAKEPLAN mem=<bytes> [count=<n>] io=<name>:<mode>:<dtype>:<rank>[,<dim>]*...".
 *
 * Variants (compile-time): -DFAKE_ABI=<n>, -DFAKE_MAJOR=<n>, -DFAKE_OMIT_ENQUEUE.
 */
#define _POSIX_C_SOURCE 200809L
#include "tinv_trt.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FAKE_ABI
#define FAKE_ABI TINV_TRT_ABI_VERSION
#endif
#ifndef FAKE_MAJOR
#define FAKE_MAJOR 10
#endif
#define FAKE_MINOR 3
#define FAKE_PATCH 1

#define LIVE 0x11feu
#define FREED 0xdeadu

enum { M_MSG = 0, M_UNTERMINATED = 1, M_NO_MSG = 2, M_BAD_UTF8 = 3, M_NULL_OUT = 4, M_PARTIAL = 5, M_BLOCK = 6 };
enum { K_LIB = 0, K_ENGINE = 1, K_CONTEXT = 2, K_BUFFER = 3 };

struct tinv_trt_lib {
  unsigned magic;
  int id, engines;
};
struct io {
  char name[32];
  int32_t mode, dtype, nb_dims;
  int64_t d[TINV_TRT_MAX_DIMS];
};
struct tinv_trt_engine {
  unsigned magic;
  int id, contexts, calls, freeing, count, nio;
  tinv_trt_lib *lib;
  uint64_t mem;
  struct io io[16];
};
struct tinv_trt_context {
  unsigned magic;
  int id, calls, freeing;
  tinv_trt_engine *engine;
};
struct buffer {
  void *data;
  int id, freed;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char log_buf[1 << 16];
static size_t log_len;
static int violations, waiting;
/* The function whose blocked call fake_release() lets go ("" = none). */
static char release_fn[64];
static int ids[4], live[4];
static struct buffer buffers[64];
/* What a failed context creation hands out in M_PARTIAL mode: Rust must never pass it back. */
static tinv_trt_context poison = {0x9015u, 0, 0, 0, NULL};

struct script {
  char fn[64];
  int after, status, mode, armed;
  char msg[2048];
};
static struct script scripts[8];

/* Appends a line to the log; called with `mu` held. */
static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (log_len < sizeof log_buf) {
    int n = vsnprintf(log_buf + log_len, sizeof log_buf - log_len, fmt, ap);
    if (n > 0) log_len += (size_t)n;
    if (log_len < sizeof log_buf - 1) log_buf[log_len++] = '\n';
    if (log_len >= sizeof log_buf) log_len = sizeof log_buf - 1;
  }
  va_end(ap);
}

#define VIOLATION(...)      \
  do {                      \
    violations++;           \
    say("VIOLATION " __VA_ARGS__); \
  } while (0)

/* The script armed for `fn`, if its turn has come (copied into `s` and disarmed); an M_BLOCK
 * script waits here (letting go of `mu`) until fake_release(). Called with `mu` held. */
static int take(const char *fn, struct script *s) {
  for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
    struct script *t = &scripts[i];
    if (!t->armed || strcmp(t->fn, fn) != 0) continue;
    if (t->after > 0) {
      t->after--;
      return 0;
    }
    *s = *t;
    t->armed = 0;
    if (s->mode == M_BLOCK) {
      waiting++;
      pthread_cond_broadcast(&cv);
      while (strcmp(release_fn, fn) != 0) pthread_cond_wait(&cv, &mu);
      release_fn[0] = 0;
      waiting--;
    }
    return 1;
  }
  return 0;
}

/* Writes `msg` into `err`, cut to the buffer and NUL-terminated. */
static void put(tinv_trt_error *err, const char *msg) {
  size_t n = strlen(msg);
  if (n > TINV_TRT_ERROR_LEN - 1) n = TINV_TRT_ERROR_LEN - 1;
  memcpy(err->msg, msg, n);
  err->msg[n] = 0;
}

/* Writes the script's message into `err` as its mode says and returns its status. */
static int32_t fail(const struct script *s, tinv_trt_error *err) {
  if (err != NULL) {
    size_t n = strlen(s->msg);
    switch (s->mode) {
      case M_UNTERMINATED:
        for (size_t i = 0; i < TINV_TRT_ERROR_LEN; i++) err->msg[i] = n ? s->msg[i % n] : 'x';
        break;
      case M_NO_MSG:
        break;
      case M_BAD_UTF8:
        put(err, "bad \xff\xfe! utf-8");
        break;
      default:
        put(err, s->msg);
    }
  }
  return s->status;
}

static int32_t fail_with(tinv_trt_error *err, int32_t status, const char *msg) {
  if (err != NULL) put(err, msg);
  return status;
}

/* Whether the script makes this call fail (it has a status). */
static int failing(int scripted, const struct script *s) { return scripted && s->status != 0; }
static int null_out(int scripted, const struct script *s) { return scripted && s->mode == M_NULL_OUT; }

static int bad_lib(const tinv_trt_lib *lib, const char *fn) {
  if (lib == NULL) return 1;
  if (lib->magic == LIVE) return 0;
  if (lib->magic == FREED) VIOLATION("%s: L%d used after its free", fn, lib->id);
  else VIOLATION("%s: forged lib", fn);
  return 1;
}

static int bad_engine(const tinv_trt_engine *e, const char *fn) {
  if (e == NULL) return 1;
  if (e->magic == LIVE) return 0;
  if (e->magic == FREED) VIOLATION("%s: E%d used after its free", fn, e->id);
  else VIOLATION("%s: forged engine", fn);
  return 1;
}

static int bad_context(const tinv_trt_context *c, const char *fn) {
  if (c == NULL) return 1;
  if (c == &poison) {
    VIOLATION("%s: the output of a failed tinv_trt_context_create", fn);
    return 1;
  }
  if (c->magic == FREED) {
    VIOLATION("%s: C%d used after its free", fn, c->id);
    return 1;
  }
  if (c->magic != LIVE) {
    VIOLATION("%s: forged context", fn);
    return 1;
  }
  if (c->engine->magic != LIVE) {
    VIOLATION("%s: C%d used after its engine E%d was freed", fn, c->id, c->engine->id);
    return 1;
  }
  return 0;
}

/* ---- versions ---- */

uint32_t tinv_trt_abi_version(void) { return FAKE_ABI; }
int32_t tinv_trt_header_major(void) { return FAKE_MAJOR; }
int32_t tinv_trt_header_version(void) { return FAKE_MAJOR * 10000 + FAKE_MINOR * 100 + FAKE_PATCH; }

/* ---- library ---- */

int32_t tinv_trt_lib_open(const char *nvinfer_path, const char *onnxparser_path, tinv_trt_log_fn log,
                          void *log_user, int32_t min_severity, tinv_trt_lib **out, tinv_trt_error *err) {
  struct script s;
  pthread_mutex_lock(&mu);
  int scripted = take("tinv_trt_lib_open", &s);
  char line[512];
  snprintf(line, sizeof line, "lib_open nvinfer=%s parser=%s log=%d user=%s sev=%d",
           nvinfer_path ? nvinfer_path : "NULL", onnxparser_path ? onnxparser_path : "NULL", log != NULL,
           log_user ? "set" : "NULL", min_severity);
  if (failing(scripted, &s) || out == NULL) {
    say("%s -> fail", line);
    pthread_mutex_unlock(&mu);
    return out == NULL ? fail_with(err, TINV_TRT_ERR_ARGUMENT, "out is NULL") : fail(&s, err);
  }
  tinv_trt_lib *lib = calloc(1, sizeof *lib);
  lib->magic = LIVE;
  lib->id = ++ids[K_LIB];
  live[K_LIB]++;
  say("%s -> L%d", line, lib->id);
  pthread_mutex_unlock(&mu);
  /* TensorRT logs during the call: every severity, and a NULL message the callback must skip. */
  if (log != NULL) {
    for (int32_t sev = 0; sev <= 4; sev++) {
      char msg[600];
      snprintf(msg, sizeof msg, "fake log %d from %s", sev, nvinfer_path ? nvinfer_path : "NULL");
      log(log_user, sev, msg);
    }
    log(log_user, TINV_TRT_SEVERITY_ERROR, NULL);
  }
  *out = lib;
  return TINV_TRT_OK;
}

void tinv_trt_lib_free(tinv_trt_lib *lib) {
  pthread_mutex_lock(&mu);
  if (lib == NULL) {
    say("lib_free NULL");
  } else if (lib->magic == FREED) {
    VIOLATION("double free of L%d", lib->id);
  } else if (lib->magic != LIVE) {
    VIOLATION("lib_free of a forged lib");
  } else {
    if (lib->engines > 0) VIOLATION("L%d freed with %d live engine(s)", lib->id, lib->engines);
    lib->magic = FREED;
    live[K_LIB]--;
    say("lib_free L%d", lib->id);
  }
  pthread_mutex_unlock(&mu);
}

int32_t tinv_trt_lib_version(const tinv_trt_lib *lib, tinv_trt_version *out, tinv_trt_error *err) {
  struct script s;
  pthread_mutex_lock(&mu);
  int scripted = take("tinv_trt_lib_version", &s);
  int bad = bad_lib(lib, "lib_version");
  say("lib_version L%d", bad ? 0 : lib->id);
  pthread_mutex_unlock(&mu);
  if (failing(scripted, &s)) return fail(&s, err);
  if (bad || out == NULL) return fail_with(err, TINV_TRT_ERR_ARGUMENT, "lib_version: bad argument");
  out->major = FAKE_MAJOR;
  out->minor = FAKE_MINOR;
  out->patch = FAKE_PATCH;
  out->raw = FAKE_MAJOR * (FAKE_MAJOR >= 10 ? 10000 : 1000) + FAKE_MINOR * 100 + FAKE_PATCH;
  return TINV_TRT_OK;
}

/* ---- engines ---- */

/* Parses a fake plan into `e`; 0 when it is not one. */
static int parse_plan(char *text, tinv_trt_engine *e) {
  char *save = NULL;
  char *tok = strtok_r(text, " ", &save);
  if (tok == NULL || strcmp(tok, "FAKEPLAN") != 0) return 0;
  int have_count = 0;
  while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
    unsigned long long mem;
    int count, n = 0;
    if (sscanf(tok, "mem=%llu%n", &mem, &n) == 1 && tok[n] == 0) {
      e->mem = mem;
    } else if (sscanf(tok, "count=%d%n", &count, &n) == 1 && tok[n] == 0) {
      e->count = count;
      have_count = 1;
    } else if (strncmp(tok, "io=", 3) == 0 && e->nio < 16) {
      struct io *t = &e->io[e->nio++];
      const char *p = tok + 3;
      if (sscanf(p, "%31[^:]:%d:%d:%d%n", t->name, &t->mode, &t->dtype, &t->nb_dims, &n) != 4) return 0;
      p += n;
      for (int i = 0; *p == ','; i++) {
        long long d;
        if (sscanf(p, ",%lld%n", &d, &n) != 1) return 0;
        if (i < TINV_TRT_MAX_DIMS) t->d[i] = d;
        p += n;
      }
      if (*p != 0) return 0;
    } else {
      return 0;
    }
  }
  if (!have_count) e->count = e->nio;
  return 1;
}

int32_t tinv_trt_engine_deserialize(tinv_trt_lib *lib, const void *plan, size_t size, tinv_trt_engine **out,
                                    tinv_trt_error *err) {
  struct script s;
  pthread_mutex_lock(&mu);
  int scripted = take("tinv_trt_engine_deserialize", &s);
  int bad = bad_lib(lib, "engine_deserialize") || plan == NULL || out == NULL;
  tinv_trt_engine *e = calloc(1, sizeof *e);
  char *text = malloc(size + 1);
  int parsed = 0;
  if (!bad) {
    memcpy(text, plan, size);
    text[size] = 0;
    parsed = parse_plan(text, e);
  }
  free(text);
  int32_t status = TINV_TRT_OK;
  if (failing(scripted, &s)) {
    status = fail(&s, err);
  } else if (bad) {
    status = fail_with(err, TINV_TRT_ERR_ARGUMENT, "deserialize: bad argument");
  } else if (!parsed) {
    status = fail_with(err, TINV_TRT_ERR_TENSORRT, "plan refused: not a fake plan");
  } else if (null_out(scripted, &s)) {
    *out = NULL;
    say("deserialize L%d size=%zu -> NULL", lib->id, size);
  } else {
    e->magic = LIVE;
    e->id = ++ids[K_ENGINE];
    e->lib = lib;
    lib->engines++;
    live[K_ENGINE]++;
    *out = e;
    say("deserialize L%d size=%zu -> E%d", lib->id, size, e->id);
    e = NULL;
  }
  free(e);
  if (status != TINV_TRT_OK) say("deserialize size=%zu -> fail %d", size, status);
  pthread_mutex_unlock(&mu);
  return status;
}

void tinv_trt_engine_free(tinv_trt_engine *e) {
  struct script s;
  pthread_mutex_lock(&mu);
  if (e == NULL) {
    say("engine_free NULL");
  } else if (e->magic == FREED) {
    VIOLATION("double free of E%d", e->id);
  } else if (e->magic != LIVE) {
    VIOLATION("engine_free of a forged engine");
  } else if (e->freeing) {
    VIOLATION("second free of E%d while its first runs", e->id);
  } else {
    e->freeing = 1;
    take("tinv_trt_engine_free", &s);
    if (e->contexts > 0) VIOLATION("E%d freed with %d live context(s)", e->id, e->contexts);
    if (e->calls > 0) VIOLATION("E%d freed during a call on it", e->id);
    e->magic = FREED;
    e->lib->engines--;
    live[K_ENGINE]--;
    say("engine_free E%d", e->id);
  }
  pthread_mutex_unlock(&mu);
}

/* Begins a call on engine `e`: 0 (and `err` written) when the handle is bad. */
static int enter_engine(const tinv_trt_engine *e, const char *fn, tinv_trt_error *err, int32_t *status) {
  if (bad_engine(e, fn)) {
    *status = fail_with(err, TINV_TRT_ERR_ARGUMENT, "bad engine handle");
    return 0;
  }
  ((tinv_trt_engine *)e)->calls++;
  return 1;
}

int32_t tinv_trt_engine_io_count(const tinv_trt_engine *e, int32_t *out, tinv_trt_error *err) {
  struct script s;
  int32_t status = TINV_TRT_OK;
  pthread_mutex_lock(&mu);
  if (enter_engine(e, "engine_io_count", err, &status)) {
    int scripted = take("tinv_trt_engine_io_count", &s);
    say("io_count E%d", e->id);
    if (failing(scripted, &s)) status = fail(&s, err);
    else *out = e->count;
    ((tinv_trt_engine *)e)->calls--;
  }
  pthread_mutex_unlock(&mu);
  return status;
}

int32_t tinv_trt_engine_io_info(const tinv_trt_engine *e, int32_t index, tinv_trt_io_info *out,
                                tinv_trt_error *err) {
  struct script s;
  int32_t status = TINV_TRT_OK;
  pthread_mutex_lock(&mu);
  if (enter_engine(e, "engine_io_info", err, &status)) {
    int scripted = take("tinv_trt_engine_io_info", &s);
    say("io_info E%d %d", e->id, index);
    if (failing(scripted, &s)) {
      status = fail(&s, err);
    } else if (index < 0 || index >= e->nio) {
      status = fail_with(err, TINV_TRT_ERR_ARGUMENT, "io_info: index out of range");
    } else {
      const struct io *t = &e->io[index];
      out->name = null_out(scripted, &s) ? NULL : t->name;
      out->mode = t->mode;
      out->dtype = t->dtype;
      out->shape.nb_dims = t->nb_dims;
      for (int i = 0; i < TINV_TRT_MAX_DIMS; i++) out->shape.d[i] = t->d[i];
    }
    ((tinv_trt_engine *)e)->calls--;
  }
  pthread_mutex_unlock(&mu);
  return status;
}

int32_t tinv_trt_engine_device_memory_size(const tinv_trt_engine *e, uint64_t *out, tinv_trt_error *err) {
  struct script s;
  int32_t status = TINV_TRT_OK;
  pthread_mutex_lock(&mu);
  if (enter_engine(e, "engine_device_memory_size", err, &status)) {
    int scripted = take("tinv_trt_engine_device_memory_size", &s);
    say("device_memory_size E%d", e->id);
    if (failing(scripted, &s)) status = fail(&s, err);
    else *out = e->mem;
    ((tinv_trt_engine *)e)->calls--;
  }
  pthread_mutex_unlock(&mu);
  return status;
}

/* ---- execution contexts ---- */

int32_t tinv_trt_context_create(tinv_trt_engine *e, tinv_trt_context **out, tinv_trt_error *err) {
  struct script s;
  int32_t status = TINV_TRT_OK;
  pthread_mutex_lock(&mu);
  if (enter_engine(e, "context_create", err, &status)) {
    int scripted = take("tinv_trt_context_create", &s);
    if (failing(scripted, &s)) {
      /* M_PARTIAL: a shim that wrote its output before failing (the header forbids it). */
      if (s.mode == M_PARTIAL) *out = &poison;
      status = fail(&s, err);
      say("context_create E%d -> fail %d", e->id, status);
    } else if (null_out(scripted, &s)) {
      *out = NULL;
      say("context_create E%d -> NULL", e->id);
    } else {
      tinv_trt_context *c = calloc(1, sizeof *c);
      c->magic = LIVE;
      c->id = ++ids[K_CONTEXT];
      c->engine = e;
      e->contexts++;
      live[K_CONTEXT]++;
      *out = c;
      say("context_create E%d -> C%d", e->id, c->id);
    }
    e->calls--;
  }
  pthread_mutex_unlock(&mu);
  return status;
}

void tinv_trt_context_free(tinv_trt_context *c) {
  struct script s;
  pthread_mutex_lock(&mu);
  if (c == NULL) {
    say("context_free NULL");
  } else if (c == &poison) {
    VIOLATION("context_free of the output of a failed tinv_trt_context_create");
  } else if (c->magic == FREED) {
    VIOLATION("double free of C%d", c->id);
  } else if (c->magic != LIVE) {
    VIOLATION("context_free of a forged context");
  } else if (c->freeing) {
    VIOLATION("second free of C%d while its first runs", c->id);
  } else {
    c->freeing = 1;
    take("tinv_trt_context_free", &s);
    if (c->calls > 0) VIOLATION("C%d freed during a call on it", c->id);
    if (c->engine->magic != LIVE) VIOLATION("C%d freed after its engine E%d", c->id, c->engine->id);
    c->magic = FREED;
    c->engine->contexts--;
    live[K_CONTEXT]--;
    say("context_free C%d", c->id);
  }
  pthread_mutex_unlock(&mu);
}

/* Begins a call on context `c`, taking its script: 0 (and `status` set) when the call ends
 * here (a bad handle, or a scripted failure). Called with `mu` held. */
static int enter_context(tinv_trt_context *c, const char *fn, tinv_trt_error *err, int32_t *status,
                         struct script *s) {
  if (bad_context(c, fn)) {
    *status = fail_with(err, TINV_TRT_ERR_ARGUMENT, "bad context handle");
    return 0;
  }
  c->calls++;
  if (take(fn, s) && s->status != 0) {
    *status = fail(s, err);
    c->calls--;
    return 0;
  }
  return 1;
}

static const struct io *find_io(const tinv_trt_context *c, const char *name) {
  for (int i = 0; name != NULL && i < c->engine->nio; i++) {
    if (strcmp(c->engine->io[i].name, name) == 0) return &c->engine->io[i];
  }
  return NULL;
}

int32_t tinv_trt_context_set_device_memory(tinv_trt_context *c, void *mem, uint64_t size, tinv_trt_error *err) {
  struct script s;
  int32_t status = TINV_TRT_OK;
  pthread_mutex_lock(&mu);
  if (enter_context(c, "tinv_trt_context_set_device_memory", err, &status, &s)) {
    say("set_device_memory C%d mem=%#llx size=%llu", c->id, (unsigned long long)(uintptr_t)mem,
        (unsigned long long)size);
    if (mem == NULL || (uintptr_t)mem % 256 != 0) status = fail_with(err, TINV_TRT_ERR_ARGUMENT, "misaligned");
    else if (size < c->engine->mem) status = fail_with(err, TINV_TRT_ERR_ARGUMENT, "too small");
    c->calls--;
  }
  pthread_mutex_unlock(&mu);
  return status;
}

int32_t tinv_trt_context_set_tensor_address(tinv_trt_context *c, const char *name, void *addr,
                                            tinv_trt_error *err) {
  struct script s;
  int32_t status = TINV_TRT_OK;
  pthread_mutex_lock(&mu);
  if (enter_context(c, "tinv_trt_context_set_tensor_address", err, &status, &s)) {
    say("set_tensor_address C%d %s %#llx", c->id, name ? name : "NULL", (unsigned long long)(uintptr_t)addr);
    if (find_io(c, name) == NULL) {
      char msg[128];
      snprintf(msg, sizeof msg, "no I/O tensor named %.60s", name ? name : "NULL");
      status = fail_with(err, TINV_TRT_ERR_UNKNOWN_TENSOR, msg);
    }
    c->calls--;
  }
  pthread_mutex_unlock(&mu);
  return status;
}

int32_t tinv_trt_context_set_input_shape(tinv_trt_context *c, const char *name, const tinv_trt_dims *shape,
                                         tinv_trt_error *err) {
  struct script s;
  int32_t status = TINV_TRT_OK;
  pthread_mutex_lock(&mu);
  if (enter_context(c, "tinv_trt_context_set_input_shape", err, &status, &s)) {
    char dims[256] = "";
    size_t n = 0;
    for (int i = 0; shape != NULL && i < shape->nb_dims && i < TINV_TRT_MAX_DIMS; i++) {
      n += (size_t)snprintf(dims + n, sizeof dims - n, "%s%lld", i ? "," : "", (long long)shape->d[i]);
    }
    say("set_input_shape C%d %s rank=%d [%s]", c->id, name ? name : "NULL", shape ? shape->nb_dims : -1, dims);
    if (find_io(c, name) == NULL) status = fail_with(err, TINV_TRT_ERR_UNKNOWN_TENSOR, "no such input");
    c->calls--;
  }
  pthread_mutex_unlock(&mu);
  return status;
}

#ifndef FAKE_OMIT_ENQUEUE
int32_t tinv_trt_context_enqueue(tinv_trt_context *c, void *stream, tinv_trt_error *err) {
  struct script s;
  int32_t status = TINV_TRT_OK;
  pthread_mutex_lock(&mu);
  if (enter_context(c, "tinv_trt_context_enqueue", err, &status, &s)) {
    say("enqueue C%d stream=%#llx", c->id, (unsigned long long)(uintptr_t)stream);
    c->calls--;
  }
  pthread_mutex_unlock(&mu);
  return status;
}
#endif

/* ---- builder ---- */

void tinv_trt_build_options_default(tinv_trt_build_options *opts) {
  if (opts == NULL) return;
  memset(opts, 0, sizeof *opts);
  opts->struct_size = sizeof *opts;
  opts->precision = TINV_TRT_PRECISION_FP16;
  opts->workspace_bytes = 1ull << 30;
  opts->disable_external_tactics = 1;
  opts->max_aux_streams = 0;
  pthread_mutex_lock(&mu);
  say("build_options_default");
  pthread_mutex_unlock(&mu);
}

int32_t tinv_trt_build_from_onnx_file(tinv_trt_lib *lib, const char *onnx_path, const tinv_trt_build_options *o,
                                      tinv_trt_buffer *out, tinv_trt_error *err) {
  struct script s;
  pthread_mutex_lock(&mu);
  int scripted = take("tinv_trt_build_from_onnx_file", &s);
  int bad = bad_lib(lib, "build_from_onnx_file") || onnx_path == NULL || o == NULL || out == NULL;
  if (!bad) {
    say("build %s struct_size=%u precision=%d workspace=%llu no_external=%d aux=%d fp32=%s progress=%d user=%s",
        onnx_path, o->struct_size, o->precision, (unsigned long long)o->workspace_bytes,
        o->disable_external_tactics, o->max_aux_streams,
        o->fp32_layer_substring ? o->fp32_layer_substring : "NULL", o->progress != NULL,
        o->progress_user ? "set" : "NULL");
  }
  pthread_mutex_unlock(&mu);
  if (failing(scripted, &s)) return fail(&s, err);
  if (bad) return fail_with(err, TINV_TRT_ERR_ARGUMENT, "build: bad argument");
  if (o->progress != NULL) {
    /* A NULL phase first (the callback must not call the closure), then the shim's "parse"
     * and "build", and inside "build" a TensorRT phase that honours a cancel. */
    static const struct {
      const char *phase;
      int32_t step, steps;
    } seq[] = {{NULL, 0, 0},          {"parse", -1, 1},  {"parse", 1, 1}, {"build", -1, 1},
               {"tactics", -1, 2},   {"tactics", 1, 2}, {"tactics", 2, 2}, {"build", 1, 1}};
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
      int32_t go = o->progress(o->progress_user, seq[i].phase, seq[i].step, seq[i].steps);
      pthread_mutex_lock(&mu);
      say("progress %s %d/%d -> %d", seq[i].phase ? seq[i].phase : "NULL", seq[i].step, seq[i].steps, go);
      pthread_mutex_unlock(&mu);
      if (go == 0 && seq[i].phase != NULL && strcmp(seq[i].phase, "tactics") == 0) {
        return fail_with(err, TINV_TRT_ERR_TENSORRT, "build cancelled by the progress callback");
      }
    }
  }
  if (null_out(scripted, &s)) {
    out->data = NULL;
    out->size = 0;
    return TINV_TRT_OK;
  }
  /* The plan: "PLAN<path>" then three bytes that are not text (a NUL among them). */
  size_t n = strlen(onnx_path);
  unsigned char *tail = malloc(n + 9);
  memcpy(tail, "PLAN<", 5);
  memcpy(tail + 5, onnx_path, n);
  memcpy(tail + 5 + n, ">\0\1\xff", 4);
  pthread_mutex_lock(&mu);
  int id = ++ids[K_BUFFER];
  if (id <= 64) buffers[id - 1] = (struct buffer){tail, id, 0};
  live[K_BUFFER]++;
  say("build -> B%d size=%zu", id, n + 9);
  pthread_mutex_unlock(&mu);
  out->data = tail;
  out->size = n + 9;
  return TINV_TRT_OK;
}

int32_t tinv_trt_build_from_onnx_memory(tinv_trt_lib *lib, const void *onnx, size_t size, const char *model_path,
                                        const tinv_trt_build_options *opts, tinv_trt_buffer *out,
                                        tinv_trt_error *err) {
  (void)lib, (void)onnx, (void)model_path, (void)opts, (void)out;
  pthread_mutex_lock(&mu);
  say("build_from_onnx_memory size=%zu", size);
  pthread_mutex_unlock(&mu);
  return fail_with(err, TINV_TRT_ERR_UNSUPPORTED, "not in the fake");
}

void tinv_trt_buffer_free(tinv_trt_buffer *buf) {
  if (buf == NULL) return;
  pthread_mutex_lock(&mu);
  if (buf->data == NULL) {
    say("buffer_free empty");
  } else {
    struct buffer *b = NULL;
    for (int i = 0; i < 64; i++) {
      if (buffers[i].data == buf->data) b = &buffers[i];
    }
    if (b == NULL) {
      VIOLATION("buffer_free of a forged buffer");
    } else if (b->freed) {
      VIOLATION("double free of B%d", b->id);
    } else {
      b->freed = 1; /* kept allocated: a second free must find it */
      live[K_BUFFER]--;
      say("buffer_free B%d", b->id);
    }
  }
  buf->data = NULL;
  buf->size = 0;
  pthread_mutex_unlock(&mu);
}

/* ---- control, for the test ---- */

void fake_script(const char *fn, int32_t after, int32_t status, int32_t mode, const char *msg) {
  pthread_mutex_lock(&mu);
  for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
    struct script *t = &scripts[i];
    if (t->armed) continue;
    snprintf(t->fn, sizeof t->fn, "%s", fn);
    snprintf(t->msg, sizeof t->msg, "%s", msg ? msg : "");
    t->after = after;
    t->status = status;
    t->mode = mode;
    t->armed = 1;
    break;
  }
  pthread_mutex_unlock(&mu);
}

/* Copies the log (up to `cap` bytes) and returns its length. */
size_t fake_log(char *buf, size_t cap) {
  pthread_mutex_lock(&mu);
  size_t n = log_len < cap ? log_len : cap;
  memcpy(buf, log_buf, n);
  size_t len = log_len;
  pthread_mutex_unlock(&mu);
  return len;
}

int32_t fake_violations(void) {
  pthread_mutex_lock(&mu);
  int32_t v = violations;
  pthread_mutex_unlock(&mu);
  return v;
}

int32_t fake_live(int32_t kind) {
  pthread_mutex_lock(&mu);
  int32_t v = kind >= 0 && kind < 4 ? live[kind] : -1;
  pthread_mutex_unlock(&mu);
  return v;
}

int32_t fake_waiting(void) {
  pthread_mutex_lock(&mu);
  int32_t v = waiting;
  pthread_mutex_unlock(&mu);
  return v;
}

void fake_release(const char *fn) {
  pthread_mutex_lock(&mu);
  snprintf(release_fn, sizeof release_fn, "%s", fn);
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}
