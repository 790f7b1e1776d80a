/* test_util: a small harness for dmnsp's C tests.
 *
 * Each CHECK prints the file, line and the values involved when it fails
 * and counts the failure; test_finish() returns the exit status (0 pass,
 * 1 fail). test_skip() exits with 77, which ctest reports as skipped.
 * Comparisons of arrays print the largest difference and where it is.
 */
#ifndef DMNSP_TEST_UTIL_H
#define DMNSP_TEST_UTIL_H

#include <stddef.h>

extern int test_failures;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond))                                                                      \
            test_report_failure(__FILE__, __LINE__, "CHECK(%s) failed", #cond);           \
    } while (0)

/* Checks a status-returning call for 0, printing dmnsp_last_error() if not. */
#define CHECK_OK(call) test_check_ok((call), #call, __FILE__, __LINE__)
/* Checks a call for a non-zero status whose message contains NEEDLE. */
#define CHECK_FAILS_WITH(call, needle) test_check_fails_with((call), #call, (needle), __FILE__, __LINE__)
#define CHECK_NEAR(a, b, tol) test_check_near((double)(a), (double)(b), (double)(tol), #a, #b, __FILE__, __LINE__)
#define CHECK_EQ_INT(a, b) test_check_eq_long((long)(a), (long)(b), #a, #b, __FILE__, __LINE__)
#define CHECK_STR_CONTAINS(hay, needle) test_check_contains((hay), (needle), __FILE__, __LINE__)

void test_report_failure(const char *file, int line, const char *fmt, ...);
void test_check_ok(int status, const char *expr, const char *file, int line);
void test_check_fails_with(int status, const char *expr, const char *needle, const char *file, int line);
void test_check_near(double a, double b, double tol, const char *a_expr, const char *b_expr, const char *file, int line);
void test_check_eq_long(long a, long b, const char *a_expr, const char *b_expr, const char *file, int line);
void test_check_contains(const char *hay, const char *needle, const char *file, int line);

/* Largest |a-b| (or |a-b|/max(|b|, floor) when REL_FLOOR > 0) over N values;
 * prints "NAME: max diff D at index I (a=.., b=..)" and fails when D > TOL. */
double test_compare_floats(const char *name, const float *a, const float *b, size_t n, double tol, double rel_floor);
double test_compare_doubles(const char *name, const double *a, const double *b, size_t n, double tol, double rel_floor);

/* Environment helpers: value of NAME or FALLBACK. */
const char *test_env(const char *name, const char *fallback);
/* Writes BYTES bytes to PATH; returns 0 or -1. */
int test_write_file(const char *path, const void *data, size_t bytes);
/* Reads all of PATH into a malloc'd buffer of *SIZE bytes plus a '\0'.
 * SIZE may be NULL. Returns NULL when PATH cannot be read. */
char *test_read_file(const char *path, long *size);
/* Runs a shell command, captures stdout+stderr into OUTPUT (malloc'd, may be
 * NULL) and returns the exit status (or -1). */
int test_run_command(const char *command, char **output);

/* Sums test_failures over the ranks of MPI_COMM_WORLD, so that every rank
 * exits non-zero when a check failed on any rank. Collective: every rank
 * calls it, before MPI is finalized. */
void test_sum_failures_over_ranks(void);

int test_finish(const char *test_name);
_Noreturn void test_skip(const char *reason);

#endif
