/* metrics: reading metrics.json back (see include/dmnsp/metrics.h). Each
 * line is one flat JSON object whose values are numbers, null, booleans,
 * strings or arrays of numbers and nulls. The parser below handles exactly
 * that subset. */
#include "dmnsp/metrics.h"

#include "dmnsp/error.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_MAX_ARRAY 100000

typedef struct {
    const char *text;
    const char *at;
    const char *path;
    int line;
} json_cursor;

static int json_error(json_cursor *cursor, const char *problem)
{
    return dmnsp_fail("metrics: %s: line %d, column %d: %s", cursor->path, cursor->line,
                      (int)(cursor->at - cursor->text) + 1, problem);
}

static void skip_space(json_cursor *cursor)
{
    while (*cursor->at == ' ' || *cursor->at == '\t' || *cursor->at == '\r')
        cursor->at++;
}

static int expect_char(json_cursor *cursor, char c)
{
    skip_space(cursor);
    if (*cursor->at != c) {
        char what[64];
        snprintf(what, sizeof what, "expected '%c'", c);
        return json_error(cursor, what);
    }
    cursor->at++;
    return 0;
}

/* Parses a number or null (NAN). */
static int parse_number(json_cursor *cursor, double *value)
{
    skip_space(cursor);
    if (strncmp(cursor->at, "null", 4) == 0) {
        cursor->at += 4;
        *value = NAN;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    *value = strtod(cursor->at, &end);
    if (end == cursor->at || errno != 0 || !(isdigit((unsigned char)*cursor->at) || *cursor->at == '-'))
        return json_error(cursor, "expected a number or null");
    cursor->at = end;
    return 0;
}

static int parse_string(json_cursor *cursor, char *out, size_t size)
{
    DMNSP_TRY(expect_char(cursor, '"'));
    size_t used = 0;
    while (*cursor->at != '"') {
        char c = *cursor->at;
        if (c == '\0' || c == '\n')
            return json_error(cursor, "unterminated string");
        if (c == '\\') {
            cursor->at++;
            c = *cursor->at;
            if (c == 'u') {
                unsigned code = 0;
                if (sscanf(cursor->at + 1, "%4x", &code) != 1)
                    return json_error(cursor, "invalid \\u escape");
                c = code < 0x80 ? (char)code : '?';
                cursor->at += 4;
            } else if (c == 'n') {
                c = '\n';
            } else if (c == 't') {
                c = '\t';
            } else if (c != '"' && c != '\\' && c != '/') {
                return json_error(cursor, "invalid escape in string");
            }
        }
        if (used + 1 < size)
            out[used++] = c;
        cursor->at++;
    }
    cursor->at++;
    out[used] = '\0';
    return 0;
}

/* Parses an array of numbers/nulls into a malloc'd array. */
static int parse_number_array(json_cursor *cursor, double **values, int *count)
{
    *values = NULL;
    *count = 0;
    DMNSP_TRY(expect_char(cursor, '['));
    int capacity = 0;
    skip_space(cursor);
    if (*cursor->at == ']') {
        cursor->at++;
        return 0;
    }
    for (;;) {
        if (*count == capacity) {
            if (capacity >= METRICS_MAX_ARRAY) {
                free(*values);
                *values = NULL;
                return json_error(cursor, "array too long");
            }
            capacity = capacity ? capacity * 2 : 16;
            double *bigger = realloc(*values, sizeof(double) * (size_t)capacity);
            if (bigger == NULL) {
                free(*values);
                *values = NULL;
                return json_error(cursor, "out of memory");
            }
            *values = bigger;
        }
        if (parse_number(cursor, &(*values)[*count]) != 0) {
            free(*values);
            *values = NULL;
            return -1;
        }
        (*count)++;
        skip_space(cursor);
        if (*cursor->at == ',') {
            cursor->at++;
            continue;
        }
        if (*cursor->at == ']') {
            cursor->at++;
            return 0;
        }
        free(*values);
        *values = NULL;
        return json_error(cursor, "expected ',' or ']' in array");
    }
}

static long *to_longs(const double *values, int count)
{
    long *out = malloc(sizeof(long) * (size_t)(count > 0 ? count : 1));
    if (out != NULL)
        for (int i = 0; i < count; i++)
            out[i] = isnan(values[i]) ? -1 : (long)values[i];
    return out;
}

static void free_line(metrics_file_line *line)
{
    free(line->acc_per_task);
    free(line->correct_per_task);
    free(line->samples_per_task);
    memset(line, 0, sizeof *line);
}

/* Parses one object line into LINE (a task line) or into FILE's summary. */
static int parse_line(json_cursor *cursor, metrics_file_line *line, metrics_file *file, int *is_summary)
{
    memset(line, 0, sizeof *line);
    line->task = -1;
    line->acc = line->avg_acc = line->forgetting = line->bwt = line->fwt = NAN;
    line->next_task_correct = line->next_task_samples = -1;
    *is_summary = 0;
    int per_task = -1, seen_task = 0;

    DMNSP_TRY(expect_char(cursor, '{'));
    skip_space(cursor);
    if (*cursor->at == '}')
        return json_error(cursor, "empty object");
    for (;;) {
        char key[64];
        DMNSP_TRY(parse_string(cursor, key, sizeof key));
        DMNSP_TRY(expect_char(cursor, ':'));
        skip_space(cursor);

        double number = 0.0;
        int status = 0;
        if (strcmp(key, "summary") == 0) {
            if (strncmp(cursor->at, "true", 4) != 0)
                return json_error(cursor, "\"summary\" must be true");
            cursor->at += 4;
            *is_summary = 1;
        } else if (strcmp(key, "dataset") == 0) {
            status = parse_string(cursor, file->dataset, sizeof file->dataset);
        } else if (strcmp(key, "method") == 0) {
            status = parse_string(cursor, file->method, sizeof file->method);
        } else if (strcmp(key, "acc_per_task") == 0 || strcmp(key, "correct_per_task") == 0 ||
                   strcmp(key, "samples_per_task") == 0) {
            double *values = NULL;
            int count = 0;
            DMNSP_TRY(parse_number_array(cursor, &values, &count));
            if (per_task >= 0 && count != per_task) {
                free(values);
                return json_error(cursor, "per-task arrays differ in length");
            }
            per_task = count;
            if (strcmp(key, "acc_per_task") == 0) {
                free(line->acc_per_task);
                line->acc_per_task = values;
                values = NULL;
            } else if (strcmp(key, "correct_per_task") == 0) {
                free(line->correct_per_task);
                line->correct_per_task = to_longs(values, count);
            } else {
                free(line->samples_per_task);
                line->samples_per_task = to_longs(values, count);
            }
            free(values);
        } else {
            status = parse_number(cursor, &number);
            if (status == 0) {
                if (strcmp(key, "task") == 0) {
                    line->task = (int)number;
                    seen_task = 1;
                } else if (strcmp(key, "acc") == 0) {
                    line->acc = number;
                } else if (strcmp(key, "avg_acc") == 0) {
                    line->avg_acc = number;
                } else if (strcmp(key, "forgetting") == 0) {
                    line->forgetting = number;
                } else if (strcmp(key, "bwt") == 0) {
                    line->bwt = number;
                } else if (strcmp(key, "fwt") == 0) {
                    line->fwt = number;
                } else if (strcmp(key, "nonfinite") == 0) {
                    line->nonfinite = (long)number;
                } else if (strcmp(key, "next_task_correct") == 0) {
                    line->next_task_correct = isnan(number) ? -1 : (long)number;
                } else if (strcmp(key, "next_task_samples") == 0) {
                    line->next_task_samples = isnan(number) ? -1 : (long)number;
                } else if (strcmp(key, "last") == 0) {
                    file->last = number;
                } else if (strcmp(key, "avg") == 0) {
                    file->avg = number;
                } else if (strcmp(key, "avg_forgetting") == 0) {
                    file->avg_forgetting = number;
                } else if (strcmp(key, "wall_seconds") == 0) {
                    file->wall_seconds = number;
                } else if (strcmp(key, "ranks") == 0) {
                    file->ranks = (int)number;
                }
                /* Unknown numeric keys are skipped: newer writers may add fields. */
            }
        }
        if (status != 0)
            return -1;

        skip_space(cursor);
        if (*cursor->at == ',') {
            cursor->at++;
            skip_space(cursor);
            continue;
        }
        if (*cursor->at == '}') {
            cursor->at++;
            break;
        }
        return json_error(cursor, "expected ',' or '}' after a value");
    }
    skip_space(cursor);
    if (*cursor->at != '\0')
        return json_error(cursor, "unexpected text after the object");
    if (*is_summary)
        return 0;
    if (!seen_task)
        return json_error(cursor, "task line without \"task\"");
    if (line->acc_per_task == NULL)
        return json_error(cursor, "task line without \"acc_per_task\"");
    line->per_task_count = per_task;
    if (per_task != line->task + 1)
        return json_error(cursor, "\"acc_per_task\" length is not task + 1");
    return 0;
}

void metrics_file_free(metrics_file *file)
{
    if (file == NULL)
        return;
    for (int i = 0; i < file->line_count; i++)
        free_line(&file->lines[i]);
    free(file->lines);
    memset(file, 0, sizeof *file);
}

int metrics_read_json(const char *path, metrics_file *out)
{
    memset(out, 0, sizeof *out);
    FILE *stream = fopen(path, "r");
    if (stream == NULL)
        return dmnsp_fail("metrics: %s: cannot open: %s", path, strerror(errno));

    char *text = NULL;
    size_t capacity = 0;
    ssize_t length;
    int line_number = 0, capacity_lines = 0, status = 0;
    while (status == 0 && (length = getline(&text, &capacity, stream)) >= 0) {
        line_number++;
        while (length > 0 && (text[length - 1] == '\n' || text[length - 1] == '\r'))
            text[--length] = '\0';
        if (length == 0)
            continue;
        if (out->has_summary) {
            status = dmnsp_fail("metrics: %s: line %d follows the summary line (expected the summary last)", path,
                                line_number);
            break;
        }
        json_cursor cursor = {text, text, path, line_number};
        metrics_file_line line;
        int is_summary = 0;
        status = parse_line(&cursor, &line, out, &is_summary);
        if (status != 0) {
            free_line(&line);
            break;
        }
        if (is_summary) {
            out->has_summary = 1;
            free_line(&line);
            continue;
        }
        if (line.task != out->line_count) {
            status = dmnsp_fail("metrics: %s: line %d is task %d (expected task %d: task lines run 0, 1, 2, ...)",
                                path, line_number, line.task, out->line_count);
            free_line(&line);
            break;
        }
        if (out->line_count == capacity_lines) {
            capacity_lines = capacity_lines ? capacity_lines * 2 : 16;
            metrics_file_line *bigger = realloc(out->lines, sizeof *bigger * (size_t)capacity_lines);
            if (bigger == NULL) {
                free_line(&line);
                status = dmnsp_fail("metrics: %s: out of memory", path);
                break;
            }
            out->lines = bigger;
        }
        out->lines[out->line_count++] = line;
    }
    free(text);
    fclose(stream);
    if (status != 0) {
        metrics_file_free(out);
        return -1;
    }
    return 0;
}

int metrics_restore(metrics_matrix *m, int task_count, const metrics_file *file)
{
    if (file->line_count > task_count)
        return dmnsp_fail("metrics: the file has %d task lines but the run has %d tasks", file->line_count,
                          task_count);
    DMNSP_TRY(metrics_init(m, task_count));
    for (int i = 0; i < file->line_count; i++) {
        const metrics_file_line *line = &file->lines[i];
        if (line->correct_per_task == NULL || line->samples_per_task == NULL) {
            metrics_free(m);
            return dmnsp_fail("metrics: task line %d has no correct_per_task/samples_per_task counts (cannot restore "
                              "the accuracy matrix)",
                              i);
        }
        for (int j = 0; j <= i; j++) {
            if (line->samples_per_task[j] < 0)
                continue;
            if (metrics_record(m, i, j, line->correct_per_task[j], line->samples_per_task[j]) != 0) {
                metrics_free(m);
                return dmnsp_fail_prefix("metrics: task line %d", i);
            }
        }
        if (line->next_task_samples >= 0 && i + 1 < task_count &&
            metrics_record(m, i, i + 1, line->next_task_correct, line->next_task_samples) != 0) {
            metrics_free(m);
            return dmnsp_fail_prefix("metrics: task line %d", i);
        }
        m->nonfinite[i] = line->nonfinite;
    }
    return 0;
}
