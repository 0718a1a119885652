/* Concurrency tests (pthreads): the model is shared read-only, sessions are per thread, handles
 * are opened and freed from many threads at once, and misuse (two threads on one session,
 * freeing a handle another thread uses) is reported, never a crash. Also fork(): a child may use
 * and free a session its parent opened with worker threads; and removing the log callback
 * while other threads log. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "suite.h"

#define THREADS 4

typedef struct worker {
    const char *path;
    const tinv_model *model;
    tinv_session *shared_session; /* for the busy test */
    const expectation *e;
    int rounds;
    int failures;  /* per thread: g_failures is not touched from workers */
    int busy_seen;
} worker;

/* Each thread: its own session on the shared model, forced depth for every path and the
 * adaptive run, all equal to the single-threaded (Rust API) results. */
static void *own_session(void *arg) {
    worker *w = (worker *)arg;
    const expectation *e = w->e;
    size_t n = e->n, in_len = (size_t)n * e->input_len, out_len = (size_t)n * e->classes, k, count = 0, i;
    float *logits = (float *)malloc(out_len * sizeof(float));
    tinv_stats *st = (tinv_stats *)calloc(n, sizeof *st);
    tinv_session_options so = tinv_session_options_default();
    tinv_session *s = NULL;
    int r;
    so.max_batch = n;
    if (tinv_session_open(w->model, &so, &s) != TINV_OK) w->failures++;
    for (r = 0; s && r < w->rounds; r++) {
        for (k = 0; k < e->paths; k++) {
            if (tinv_session_infer_depth(s, e->input, in_len, n, e->depth[k], logits, out_len) != TINV_OK ||
                max_rel_diff(logits, e->path_logits + k * out_len, out_len) > expect_tolerance())
                w->failures++;
        }
        if (tinv_session_infer(s, e->input, in_len, n, logits, out_len) != TINV_OK ||
            max_rel_diff(logits, e->adaptive_logits, out_len) > expect_tolerance() ||
            tinv_session_last_stats(s, st, n, &count) != TINV_OK || count != n)
            w->failures++;
        for (i = 0; i < count; i++)
            if (st[i].depth != e->adaptive[i].depth || st[i].class_id != e->adaptive[i].class_id) w->failures++;
    }
    if (tinv_session_free(s) != TINV_OK) w->failures++;
    free(st);
    free(logits);
    return NULL;
}

/* Each thread opens and frees models and sessions in a loop; every call must succeed and every
 * freed handle must be refused afterwards. */
static void *open_close(void *arg) {
    worker *w = (worker *)arg;
    const expectation *e = w->e;
    float *logits = (float *)malloc(e->classes * sizeof(float));
    int r;
    for (r = 0; r < w->rounds; r++) {
        tinv_model *m = NULL;
        tinv_session *s = NULL, *s2 = NULL;
        size_t z;
        if (tinv_model_open(w->path, NULL, &m) != TINV_OK) { w->failures++; continue; }
        if (tinv_session_open(m, NULL, &s) != TINV_OK) w->failures++;
        if (tinv_session_open(w->model, NULL, &s2) != TINV_OK) w->failures++;
        if (r % 2 == 0 && tinv_model_free(m) != TINV_OK) w->failures++;
        if (tinv_session_infer_depth(s, e->input, e->input_len, 1, e->depth[0], logits, e->classes) != TINV_OK)
            w->failures++;
        if (tinv_session_free(s) != TINV_OK || tinv_session_free(s2) != TINV_OK) w->failures++;
        if (r % 2 == 1 && tinv_model_free(m) != TINV_OK) w->failures++;
        if (tinv_session_free(s) != TINV_ERR_INVALID_HANDLE) w->failures++;
        if (tinv_model_num_classes(m, &z) != TINV_ERR_INVALID_HANDLE) w->failures++;
    }
    free(logits);
    return NULL;
}

/* Two threads call into one session (a contract violation): each call either runs and gives the
 * right answer or returns TINV_ERR_SESSION_BUSY. */
static void *race_one_session(void *arg) {
    worker *w = (worker *)arg;
    const expectation *e = w->e;
    size_t in_len = (size_t)e->n * e->input_len, out_len = (size_t)e->n * e->classes;
    float *logits = (float *)malloc(out_len * sizeof(float));
    int r;
    for (r = 0; r < w->rounds; r++) {
        tinv_status st = tinv_session_infer_depth(w->shared_session, e->input, in_len, e->n, e->depth[0], logits, out_len);
        if (st == TINV_ERR_SESSION_BUSY)
            w->busy_seen++;
        else if (st != TINV_OK || max_rel_diff(logits, e->path_logits, out_len) > expect_tolerance())
            w->failures++;
    }
    free(logits);
    return NULL;
}

/* One thread runs a session while the main thread frees it: the thread signals after its first
 * successful call, the main thread frees the session, and the thread keeps calling until it
 * sees TINV_ERR_INVALID_HANDLE. Every call either ran correctly (the registry keeps the session
 * alive until a call returns) or saw the freed handle; nothing else. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static int g_started = 0;

static void *run_until_freed(void *arg) {
    worker *w = (worker *)arg;
    const expectation *e = w->e;
    float *logits = (float *)malloc(e->classes * sizeof(float));
    long r;
    for (r = 0; r < 10000000L; r++) {
        tinv_status st = tinv_session_infer_depth(w->shared_session, e->input, e->input_len, 1, e->depth[0], logits, e->classes);
        if (st == TINV_ERR_INVALID_HANDLE) {
            w->busy_seen = 1;
            break;
        }
        if (st != TINV_OK || max_rel_diff(logits, e->path_logits, e->classes) > expect_tolerance()) w->failures++;
        w->rounds++;
        if (r == 0) {
            pthread_mutex_lock(&g_lock);
            g_started = 1;
            pthread_cond_signal(&g_cond);
            pthread_mutex_unlock(&g_lock);
        }
    }
    free(logits);
    return NULL;
}

/* Removing the log callback while other threads log: once tinv_set_log_callback(NULL) returns,
 * the callback is neither running nor called again, so its user_data may be freed. Each round
 * registers a fresh context and marks it dead right after the removal; the callback looks at
 * its context before and after a pause, so a call that started before the removal and ran past
 * it counts as late too. */
typedef struct log_ctx {
    int dead;
} log_ctx;

static int g_stop_logging = 0, g_late_logs = 0, g_logs = 0;

static void on_log_checked(uint32_t level, const char *message, void *user_data) {
    log_ctx *c = (log_ctx *)user_data;
    int late = __atomic_load_n(&c->dead, __ATOMIC_SEQ_CST);
    (void)level;
    (void)message;
    sched_yield();
    late |= __atomic_load_n(&c->dead, __ATOMIC_SEQ_CST);
    if (late) __atomic_add_fetch(&g_late_logs, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&g_logs, 1, __ATOMIC_SEQ_CST);
}

/* Opens and frees the model until told to stop: every open logs (debug) why it runs on the CPU. */
static void *open_free_logging(void *arg) {
    worker *w = (worker *)arg;
    while (!__atomic_load_n(&g_stop_logging, __ATOMIC_SEQ_CST)) {
        tinv_model *m = NULL;
        if (tinv_model_open(w->path, NULL, &m) != TINV_OK) w->failures++;
        if (tinv_model_free(m) != TINV_OK) w->failures++;
    }
    return NULL;
}

/* Two log-callback swaps that overlap: a removal that waits for a slow call to the old
 * callback, and an installation that returns while it waits. The callback installed last must
 * get the records afterwards (the removal, returning last, turned their level off). The order
 * is confirmed, not assumed: an installation that came before the removal had to wait for the
 * slow call itself, so a slow installation means the round is retried (a loaded machine may
 * start the remover late). */
static volatile int g_slow_entered = 0, g_fast_logs = 0;

static void on_log_slow(uint32_t level, const char *message, void *user_data) {
    const struct timespec wait = {0, 400000000}; /* 0.4 s */
    (void)level;
    (void)message;
    (void)user_data;
    __atomic_store_n(&g_slow_entered, 1, __ATOMIC_SEQ_CST);
    nanosleep(&wait, NULL);
}

static void on_log_fast(uint32_t level, const char *message, void *user_data) {
    (void)level;
    (void)message;
    (void)user_data;
    __atomic_add_fetch(&g_fast_logs, 1, __ATOMIC_SEQ_CST);
}

static void *open_free_once(void *arg) {
    worker *w = (worker *)arg;
    tinv_model *m = NULL;
    if (tinv_model_open(w->path, NULL, &m) != TINV_OK) w->failures++;
    if (tinv_model_free(m) != TINV_OK) w->failures++;
    return NULL;
}

static void *remove_log_callback(void *arg) {
    worker *w = (worker *)arg;
    if (tinv_set_log_callback(NULL, NULL, 5) != TINV_OK) w->failures++;
    return NULL;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void overlapping_log_swaps(worker *w) {
    const struct timespec pause = {0, 1000000}, settle = {0, 50000000}; /* 1 ms, 50 ms */
    int attempt, spins, ok, confirmed = 0;
    tinv_model *m = NULL;
    w[0].failures = w[1].failures = 0;
    for (attempt = 0; attempt < 5 && !confirmed; attempt++) {
        pthread_t opener, remover;
        double t0, waited;
        __atomic_store_n(&g_slow_entered, 0, __ATOMIC_SEQ_CST);
        CHECK_OK(tinv_set_log_callback(on_log_slow, NULL, 5));
        ok = pthread_create(&opener, NULL, open_free_once, &w[0]) == 0;
        CHECK(ok);
        if (!ok) return;
        for (spins = 0; spins < 10000 && !__atomic_load_n(&g_slow_entered, __ATOMIC_SEQ_CST); spins++)
            nanosleep(&pause, NULL);
        CHECK(g_slow_entered);
        ok = pthread_create(&remover, NULL, remove_log_callback, &w[1]) == 0;
        CHECK(ok);
        nanosleep(&settle, NULL); /* the removal should now be waiting for the slow call */
        t0 = now_s();
        CHECK_OK(tinv_set_log_callback(on_log_fast, NULL, 5));
        waited = now_s() - t0;
        if (ok) pthread_join(remover, NULL);
        pthread_join(opener, NULL);
        /* Under 0.2 s: it replaced no callback in flight, so the removal had come first. */
        confirmed = waited < 0.2;
        if (!confirmed) continue;
        __atomic_store_n(&g_fast_logs, 0, __ATOMIC_SEQ_CST);
        CHECK_OK(tinv_model_open(w[0].path, NULL, &m));
        CHECK_OK(tinv_model_free(m));
        CHECK(g_fast_logs >= 1);
    }
    g_failures += w[0].failures + w[1].failures;
    CHECK_OK(tinv_set_log_callback(NULL, NULL, 0));
    if (confirmed)
        printf("overlapping_log_swaps: %d record(s) reached the callback installed last\n", g_fast_logs);
    else
        printf("overlapping_log_swaps: skipped, the removal never came first in 5 rounds\n");
}

static void log_callback_removal_waits(worker *w, int rounds) {
    pthread_t t[2];
    log_ctx *ctx = (log_ctx *)calloc((size_t)rounds, sizeof *ctx);
    int i, started = 0, spins;
    const struct timespec pause = {0, 100000}; /* 0.1 ms */
    __atomic_store_n(&g_stop_logging, 0, __ATOMIC_SEQ_CST);
    for (i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, open_free_logging, &w[i]) == 0) started++;
    CHECK(started == 2 && ctx != NULL);
    for (i = 0; ctx && i < rounds; i++) {
        CHECK_OK(tinv_set_log_callback(on_log_checked, &ctx[i], 5));
        sched_yield();
        /* The first round waits (up to 10 s) for a record, so that the test always sees some:
         * under qemu on a loaded host the logging threads may not have run yet. */
        for (spins = 0; i == 0 && spins < 100000 && !__atomic_load_n(&g_logs, __ATOMIC_SEQ_CST); spins++)
            nanosleep(&pause, NULL);
        CHECK_OK(tinv_set_log_callback(NULL, NULL, 0));
        __atomic_store_n(&ctx[i].dead, 1, __ATOMIC_SEQ_CST);
    }
    __atomic_store_n(&g_stop_logging, 1, __ATOMIC_SEQ_CST);
    for (i = 0; i < started; i++) pthread_join(t[i], NULL);
    for (i = 0; i < started; i++) g_failures += w[i].failures;
    CHECK(g_logs > 0);
    CHECK(g_late_logs == 0);
    printf("log_callback_removal_waits: %d records in %d rounds, %d after removal\n", g_logs, rounds,
           g_late_logs);
    free(ctx);
}

/* Opens and frees the model until cancelled: the cancel lands at pthread_testcancel, between
 * calls. Inside a call cancellation is off: glibc's forced unwind through the library's Rust
 * frames would abort the process. */
static void *open_free_until_cancelled(void *arg) {
    worker *w = (worker *)arg;
    for (;;) {
        tinv_model *m = NULL;
        if (tinv_model_open(w->path, NULL, &m) == TINV_OK) tinv_model_free(m);
        w->rounds++;
        pthread_testcancel();
    }
    return NULL;
}

/* Cancels a thread many times at random points of its open/free loop. */
static void cancel_during_calls(worker *w) {
    int i, cancelled = 0;
    for (i = 0; i < 20; i++) {
        pthread_t t;
        void *ret = NULL;
        struct timespec pause = {0, 1000000L * (1 + i % 7)};
        w->rounds = 0;
        if (pthread_create(&t, NULL, open_free_until_cancelled, w) != 0) break;
        nanosleep(&pause, NULL);
        CHECK(pthread_cancel(t) == 0);
        CHECK(pthread_join(t, &ret) == 0);
        cancelled += ret == PTHREAD_CANCELED;
    }
    CHECK(cancelled == 20);
    printf("cancel_during_calls: %d threads cancelled inside the open/free loop\n", cancelled);
}

static void run_all(void *(*fn)(void *), worker *w, int n, const char *what) {
    pthread_t t[THREADS];
    int i, started = 0;
    for (i = 0; i < n; i++) {
        if (pthread_create(&t[i], NULL, fn, &w[i]) != 0) break;
        started++;
    }
    CHECK(started == n);
    for (i = 0; i < started; i++) pthread_join(t[i], NULL);
    for (i = 0; i < started; i++) {
        if (w[i].failures) fprintf(stderr, "%s: thread %d had %d failures\n", what, i, w[i].failures);
        g_failures += w[i].failures;
        w[i].failures = 0;
    }
}

/* A two-thread session used once, then fork(): the child has none of the parent's worker
 * threads, yet its inference gives the parent's logits and freeing the session succeeds. */
static void fork_child_uses_and_frees(tinv_model *m, const expectation *e) {
    tinv_session_options so = tinv_session_options_default();
    tinv_session *s = NULL;
    size_t threads = 0;
    float *parent = (float *)malloc(e->classes * sizeof(float));
    float *child = (float *)malloc(e->classes * sizeof(float));
    pid_t pid;
    int status = -1;
    so.threads = 2;
    CHECK_OK(tinv_session_open(m, &so, &s));
    CHECK_OK(tinv_session_threads(s, &threads));
    CHECK(threads == 2);
    CHECK_OK(tinv_session_infer(s, e->input, e->input_len, 1, parent, e->classes));
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        size_t i;
        int bad = tinv_session_infer(s, e->input, e->input_len, 1, child, e->classes) != TINV_OK;
        for (i = 0; !bad && i < e->classes; i++) bad = memcmp(&child[i], &parent[i], sizeof(float)) != 0;
        bad |= tinv_session_free(s) != TINV_OK;
        _exit(bad);
    }
    CHECK(pid > 0);
    if (pid > 0) {
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        printf("fork: the child ran and freed a 2-thread session (status %d)\n", status);
    }
    CHECK_OK(tinv_session_free(s));
    free(parent);
    free(child);
}

void test_threads(const char *path, tinv_model *m, const expectation *e, int quick) {
    /* Under valgrind the child's forgotten worker handles (a few hundred bytes, by design)
     * would count as leaks. */
    if (!getenv("TINV_TEST_NO_FORK")) fork_child_uses_and_frees(m, e);
    worker w[THREADS];
    tinv_session *s = NULL;
    tinv_session_options so = tinv_session_options_default();
    int i, busy = 0;
    memset(w, 0, sizeof w);
    for (i = 0; i < THREADS; i++) {
        w[i].path = path;
        w[i].model = m;
        w[i].e = e;
        w[i].rounds = quick ? 1 : 3;
    }
    run_all(own_session, w, THREADS, "own_session");

    for (i = 0; i < THREADS; i++) w[i].rounds = quick ? 2 : 10;
    run_all(open_close, w, THREADS, "open_close");
    log_callback_removal_waits(w, quick ? 20 : 300);
    cancel_during_calls(&w[0]);
    overlapping_log_swaps(w);

    so.max_batch = e->n;
    CHECK_OK(tinv_session_open(m, &so, &s));
    for (i = 0; i < 2; i++) {
        w[i].shared_session = s;
        w[i].rounds = quick ? 3 : 20;
    }
    run_all(race_one_session, w, 2, "race_one_session");
    for (i = 0; i < 2; i++) busy += w[i].busy_seen;
    printf("race_one_session: %d of %d calls saw TINV_ERR_SESSION_BUSY\n", busy, 2 * w[0].rounds);
    CHECK_OK(tinv_session_free(s));

    {
        pthread_t t;
        CHECK_OK(tinv_session_open(m, NULL, &s));
        w[0].shared_session = s;
        w[0].rounds = 0;
        w[0].busy_seen = 0;
        if (pthread_create(&t, NULL, run_until_freed, &w[0]) == 0) {
            pthread_mutex_lock(&g_lock);
            while (!g_started) pthread_cond_wait(&g_cond, &g_lock);
            pthread_mutex_unlock(&g_lock);
            CHECK_OK(tinv_session_free(s));
            pthread_join(t, NULL);
        } else {
            CHECK(!"pthread_create failed");
            CHECK_OK(tinv_session_free(s));
        }
        g_failures += w[0].failures;
        CHECK(w[0].rounds >= 1 && w[0].busy_seen == 1);
        printf("run_until_freed: %d calls ran before the session was freed\n", w[0].rounds);
    }
}
