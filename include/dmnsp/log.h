/* log: rank-aware logging for dmnsp.
 *
 * Rank 0 prints by default (log_all_ranks() lets every rank print, prefixed
 * with its rank). Each line carries a timestamp and the level. Warnings and
 * errors go to stderr, other lines to stdout, and every line also goes to a
 * log file once log_open_file() is called. The progress helper draws a bar
 * when stdout is a terminal outside an MPI launcher (which gives ranks a
 * pseudo-terminal) and prints plain lines otherwise.
 */
#ifndef DMNSP_LOG_H
#define DMNSP_LOG_H

#include "dmnsp/error.h"

#include <stdio.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 } log_level;

/* Sets this process's rank (only rank 0 prints unless log_all_ranks). */
void log_set_rank(int rank);
void log_all_ranks(int enable);
void log_set_level(log_level level);
/* Parses "debug", "info", "warn", "error"; returns -1 on an unknown name. */
int log_parse_level(const char *name, log_level *level);

/* Also appends every printed line to PATH (rank 0 only); 0 or -1. */
int log_open_file(const char *path);
void log_close_file(void);
/* Installs SIGINT and SIGTERM handlers that write "stopped by SIGTERM;
 * continue the run with resume=auto" to stderr and the log file (rank 0)
 * before the process ends as the signal's default action would. Call it
 * after SlepcInitialize, whose own handlers it replaces. */
void log_note_interruptions(void);

void log_msg(log_level level, const char *fmt, ...) DMNSP_PRINTF(2, 3);
/* Appends "TIMESTAMP TEXT" to the log file of rank 0 only (not to the
 * terminal): a message already printed elsewhere, such as the error that
 * ends a run. */
void log_file_line(const char *text);
/* Writes text as it is (no timestamp or level) to stdout and the log file,
 * from rank 0 only: tables such as the summary of a run. */
void log_text(const char *fmt, ...) DMNSP_PRINTF(1, 2);
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* A progress indicator over TOTAL units of work.
 * log_progress_update() prints at most every interval_seconds on a non-tty
 * (a full line) and redraws the bar on a tty; log_progress_done() ends it. */
typedef struct {
    const char *label;
    long total;
    double start_time;
    double last_print;
    double interval_seconds;
    int is_tty;
    long last_printed; /* units done at the last printed line */
    long done_before;  /* units finished before this process began them (resumed work) */
} log_progress;

void log_progress_begin(log_progress *p, const char *label, long total, double interval_seconds);
/* Counts DONE units as finished earlier (a resumed task), so the ETA comes
 * from the rate of the units done since log_progress_begin. */
void log_progress_skip(log_progress *p, long done);
/* DETAIL is an optional extra text ("loss 0.52 lr 1.0e-03"), may be NULL. */
void log_progress_update(log_progress *p, long done, const char *detail);
void log_progress_done(log_progress *p, const char *detail);

/* Seconds on a monotonic clock. */
double log_now(void);
/* Formats SECONDS as "1h02m03s", "2m05s" or "7.3s" into buf. */
void log_format_duration(double seconds, char *buf, size_t size);

#endif
