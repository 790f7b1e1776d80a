/* error: per-thread failure messages (see include/dmnsp/error.h). */
#include "dmnsp/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_MESSAGE_MAX 2048

static _Thread_local char error_message[ERROR_MESSAGE_MAX];
static _Thread_local int error_is_secondary;

int dmnsp_fail(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, args);
    va_end(args);
    error_is_secondary = 0;
    return -1;
}

int dmnsp_fail_secondary(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, args);
    va_end(args);
    error_is_secondary = 1;
    return -1;
}

int dmnsp_last_error_is_secondary(void)
{
    return error_is_secondary;
}

int dmnsp_fail_prefix(const char *fmt, ...)
{
    char prefix[ERROR_MESSAGE_MAX];
    char previous[ERROR_MESSAGE_MAX];
    va_list args;

    va_start(args, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, args);
    va_end(args);
    memcpy(previous, error_message, sizeof previous);

    /* prefix, then ": " and the earlier message, cut at the buffer's end */
    size_t used = strlen(prefix);
    memcpy(error_message, prefix, used + 1);
    if (previous[0] != '\0' && used + 3 < sizeof error_message) {
        memcpy(error_message + used, ": ", 3);
        used += 2;
        size_t rest = strlen(previous);
        if (rest > sizeof error_message - 1 - used)
            rest = sizeof error_message - 1 - used;
        memcpy(error_message + used, previous, rest);
        error_message[used + rest] = '\0';
    }
    return -1;
}

const char *dmnsp_last_error(void)
{
    return error_message;
}

void dmnsp_clear_error(void)
{
    error_message[0] = '\0';
    error_is_secondary = 0;
}

void *dmnsp_malloc(size_t bytes, const char *what)
{
    void *p = malloc(bytes ? bytes : 1);
    if (p == NULL)
        dmnsp_fail("out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}

void *dmnsp_calloc(size_t count, size_t size, const char *what)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        dmnsp_fail("out of memory allocating %zu x %zu bytes for %s", count, size, what);
    return p;
}
