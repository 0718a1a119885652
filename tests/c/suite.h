/* The parts of the C test program (test_tinv.c, errors.c, threads.c). */
#ifndef TINV_TEST_SUITE_H
#define TINV_TEST_SUITE_H

#include "expect.h"

/* Every error path: NULL arguments, bad files and options, buffer and input checks, stale and
 * double-freed handles. `m` and `s` are a live model and a session with max_batch e->n. */
void test_errors(const char *model_path, tinv_model *m, tinv_session *s, const expectation *e);

/* Concurrency: threads with their own sessions on one model, concurrent open/close, a session
 * raced by two threads, a model freed while its sessions run. */
void test_threads(const char *model_path, tinv_model *m, const expectation *e, int quick);

#endif
