/* error: how dmnsp modules report failures.
 *
 * A failing function records one message with dmnsp_fail() and returns a
 * non-zero status; callers may prefix context with dmnsp_fail_prefix() and
 * pass the status up. Only the top level (main, a test) decides to print the
 * message and end the job (dist_abort() under MPI). Messages are per thread.
 *
 *   if (fread(...) != n)
 *       return dmnsp_fail("cifar100: %s: truncated record %d", path, i);
 */
#ifndef DMNSP_ERROR_H
#define DMNSP_ERROR_H

#include <stddef.h>

#if defined(__GNUC__)
#define DMNSP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DMNSP_PRINTF(a, b)
#endif

/* Records a formatted message (replacing any earlier one); returns -1. */
int dmnsp_fail(const char *fmt, ...) DMNSP_PRINTF(1, 2);

/* Puts "<prefix>: " in front of the recorded message; returns -1. */
int dmnsp_fail_prefix(const char *fmt, ...) DMNSP_PRINTF(1, 2);

/* Records a message that only echoes a failure elsewhere ("rank 1
 * failed"), so that job-wide reporting prefers the original message. */
int dmnsp_fail_secondary(const char *fmt, ...) DMNSP_PRINTF(1, 2);
/* 1 when the recorded message came from dmnsp_fail_secondary. */
int dmnsp_last_error_is_secondary(void);

/* The last recorded message of this thread ("" when none). */
const char *dmnsp_last_error(void);

/* Forgets the recorded message. */
void dmnsp_clear_error(void);

/* Evaluates a call returning a status and returns it from the caller when
 * it is non-zero. */
#define DMNSP_TRY(call)           \
    do {                          \
        int dmnsp_try_status_ = (call); \
        if (dmnsp_try_status_ != 0)     \
            return dmnsp_try_status_;   \
    } while (0)

/* malloc/calloc that record "out of memory allocating N bytes for WHAT". */
void *dmnsp_malloc(size_t bytes, const char *what);
void *dmnsp_calloc(size_t count, size_t size, const char *what);

#endif
