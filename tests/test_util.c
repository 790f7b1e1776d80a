/* test_util: the small harness behind dmnsp's C tests. */
#include "test_util.h"

#include "dmnsp/error.h"

#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

int test_failures = 0;

void test_report_failure(const char *file, int line, const char *fmt, ...)
{
    va_list args;
    fprintf(stderr, "%s:%d: ", file, line);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    test_failures++;
}

void test_check_ok(int status, const char *expr, const char *file, int line)
{
    if (status != 0)
        test_report_failure(file, line, "%s returned %d: %s", expr, status, dmnsp_last_error());
}

void test_check_fails_with(int status, const char *expr, const char *needle, const char *file, int line)
{
    if (status == 0) {
        test_report_failure(file, line, "%s succeeded, expected a failure mentioning '%s'", expr, needle);
        return;
    }
    if (strstr(dmnsp_last_error(), needle) == NULL)
        test_report_failure(file, line, "%s failed with '%s', expected the message to mention '%s'", expr,
                            dmnsp_last_error(), needle);
    else
        printf("expected failure: %s\n", dmnsp_last_error());
}

void test_check_near(double a, double b, double tol, const char *a_expr, const char *b_expr, const char *file,
                     int line)
{
    if (!(fabs(a - b) <= tol))
        test_report_failure(file, line, "%s = %.9g, %s = %.9g, difference %.3g exceeds %.3g", a_expr, a, b_expr, b,
                            fabs(a - b), tol);
}

void test_check_eq_long(long a, long b, const char *a_expr, const char *b_expr, const char *file, int line)
{
    if (a != b)
        test_report_failure(file, line, "%s = %ld, expected %s = %ld", a_expr, a, b_expr, b);
}

void test_check_contains(const char *hay, const char *needle, const char *file, int line)
{
    if (hay == NULL || strstr(hay, needle) == NULL)
        test_report_failure(file, line, "expected text to contain '%s', got: %s", needle, hay ? hay : "(null)");
}

static double compare(const char *name, size_t n, double tol, double rel_floor, double (*get)(const void *, size_t),
                      const void *a, const void *b)
{
    double worst = 0;
    size_t worst_index = 0;
    for (size_t i = 0; i < n; i++) {
        double x = get(a, i), y = get(b, i);
        double diff = fabs(x - y);
        if (rel_floor > 0)
            diff /= fmax(fabs(y), rel_floor);
        if (!(diff <= worst) || isnan(diff)) {
            worst = isnan(diff) ? INFINITY : diff;
            worst_index = i;
        }
    }
    printf("%s: max %s diff %.3g at index %zu (got %.9g, expected %.9g) over %zu values\n", name,
           rel_floor > 0 ? "relative" : "abs", worst, worst_index, n ? get(a, worst_index) : 0.0,
           n ? get(b, worst_index) : 0.0, n);
    if (!(worst <= tol)) {
        fprintf(stderr, "%s: max diff %.3g exceeds tolerance %.3g\n", name, worst, tol);
        test_failures++;
    }
    return worst;
}

static double get_float(const void *p, size_t i) { return ((const float *)p)[i]; }
static double get_double(const void *p, size_t i) { return ((const double *)p)[i]; }

double test_compare_floats(const char *name, const float *a, const float *b, size_t n, double tol, double rel_floor)
{
    return compare(name, n, tol, rel_floor, get_float, a, b);
}

double test_compare_doubles(const char *name, const double *a, const double *b, size_t n, double tol,
                            double rel_floor)
{
    return compare(name, n, tol, rel_floor, get_double, a, b);
}

const char *test_env(const char *name, const char *fallback)
{
    const char *value = getenv(name);
    return value && value[0] ? value : fallback;
}

int test_write_file(const char *path, const void *data, size_t bytes)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    size_t written = fwrite(data, 1, bytes, f);
    return (fclose(f) == 0 && written == bytes) ? 0 : -1;
}

char *test_read_file(const char *path, long *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    long length = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        length = ftell(f);
    char *data = NULL;
    if (length >= 0 && fseek(f, 0, SEEK_SET) == 0)
        data = malloc((size_t)length + 1);
    if (data != NULL && fread(data, 1, (size_t)length, f) != (size_t)length) {
        free(data);
        data = NULL;
    }
    fclose(f);
    if (data == NULL)
        return NULL;
    data[length] = '\0';
    if (size != NULL)
        *size = length;
    return data;
}

int test_run_command(const char *command, char **output)
{
    char *full = malloc(strlen(command) + 16);
    if (full == NULL)
        return -1;
    sprintf(full, "%s 2>&1", command);
    FILE *pipe = popen(full, "r");
    free(full);
    if (pipe == NULL)
        return -1;

    size_t size = 0, capacity = 4096;
    char *text = malloc(capacity);
    int c;
    while (text != NULL && (c = fgetc(pipe)) != EOF) {
        if (size + 1 >= capacity) {
            char *bigger = realloc(text, capacity *= 2);
            if (bigger == NULL) {
                free(text);
                text = NULL;
                break;
            }
            text = bigger;
        }
        text[size++] = (char)c;
    }
    if (text != NULL)
        text[size] = '\0';
    int status = pclose(pipe);
    if (output != NULL)
        *output = text;
    else
        free(text);
    if (status == -1 || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

void test_sum_failures_over_ranks(void)
{
    int failures = test_failures, all_failures = 0;
    MPI_Allreduce(&failures, &all_failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    test_failures = all_failures;
}

int test_finish(const char *test_name)
{
    if (test_failures > 0) {
        fprintf(stderr, "%s: %d check(s) failed\n", test_name, test_failures);
        return 1;
    }
    printf("%s: all checks passed\n", test_name);
    return 0;
}

_Noreturn void test_skip(const char *reason)
{
    printf("skipped: %s\n", reason);
    exit(77);
}
