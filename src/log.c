/* log: rank-aware logging and progress lines (see include/dmnsp/log.h). */
#include "dmnsp/log.h"

#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int log_rank = 0;
static int log_every_rank = 0;
static log_level log_threshold = LOG_INFO;
static FILE *log_file = NULL;
static volatile sig_atomic_t log_fd = -1; /* log_file's descriptor, for the signal handler */

static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_set_rank(int rank) { log_rank = rank; }
void log_all_ranks(int enable) { log_every_rank = enable; }
void log_set_level(log_level level) { log_threshold = level; }

int log_parse_level(const char *name, log_level *level)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *level = (log_level)i;
            return 0;
        }
    }
    return -1;
}

int log_open_file(const char *path)
{
    if (log_rank != 0)
        return 0;
    log_close_file();
    log_file = fopen(path, "a");
    if (log_file == NULL)
        return dmnsp_fail("log: cannot open %s for appending", path);
    log_fd = fileno(log_file);
    return 0;
}

void log_close_file(void)
{
    log_fd = -1;
    if (log_file != NULL)
        fclose(log_file);
    log_file = NULL;
}

/* Writes why the run stopped to stderr and the log file (rank 0), then
 * ends the process by the default action of the signal. Only
 * async-signal-safe calls. */
static void note_interruption(int signal_number)
{
    static const char term[] = "dmnsp: stopped by SIGTERM; continue the run with resume=auto\n";
    static const char intr[] = "dmnsp: stopped by SIGINT; continue the run with resume=auto\n";
    const char *text = signal_number == SIGTERM ? term : intr;
    size_t length = signal_number == SIGTERM ? sizeof term - 1 : sizeof intr - 1;
    if (log_rank == 0) {
        ssize_t ignored = write(STDERR_FILENO, text, length);
        if (log_fd >= 0)
            ignored = write(log_fd, text, length);
        (void)ignored;
    }
    signal(signal_number, SIG_DFL);
    raise(signal_number);
}

void log_note_interruptions(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = note_interruption;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
}

void log_text(const char *fmt, ...)
{
    if (log_rank != 0 && !log_every_rank)
        return;
    va_list args;
    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);
    if (log_file != NULL) {
        va_start(args, fmt);
        vfprintf(log_file, fmt, args);
        va_end(args);
    }
}

double log_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void format_timestamp(char *buf, size_t size)
{
    time_t now = time(NULL);
    struct tm local;
    localtime_r(&now, &local);
    strftime(buf, size, "%Y-%m-%d %H:%M:%S", &local);
}

static int should_print(log_level level)
{
    if (level < log_threshold)
        return 0;
    return log_rank == 0 || log_every_rank || level == LOG_ERROR;
}

void log_msg(log_level level, const char *fmt, ...)
{
    if (!should_print(level))
        return;

    char stamp[32];
    char text[4096];
    char prefix[48] = "";
    va_list args;

    format_timestamp(stamp, sizeof stamp);
    va_start(args, fmt);
    vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    if (log_every_rank || log_rank != 0)
        snprintf(prefix, sizeof prefix, "[rank %d] ", log_rank);

    FILE *out = level >= LOG_WARN ? stderr : stdout;
    const char *tag = level == LOG_INFO ? "" : level_names[level];
    fprintf(out, "%s %s%s%s%s\n", stamp, prefix, tag, *tag ? ": " : "", text);
    fflush(out);
    if (log_file != NULL) {
        fprintf(log_file, "%s %s%s%s%s\n", stamp, prefix, tag, *tag ? ": " : "", text);
        fflush(log_file);
    }
}

void log_format_duration(double seconds, char *buf, size_t size)
{
    if (seconds < 0 || seconds != seconds)
        seconds = 0;
    long whole = (long)(seconds + 0.5);
    if (seconds < 60)
        snprintf(buf, size, "%.1fs", seconds);
    else if (whole < 3600)
        snprintf(buf, size, "%ldm%02lds", whole / 60, whole % 60);
    else
        snprintf(buf, size, "%ldh%02ldm%02lds", whole / 3600, (whole / 60) % 60, whole % 60);
}

/* Open MPI, MPICH and Slurm give ranks a pseudo-terminal or pipe their
 * output into files; a redrawn bar only suits a plain interactive run. */
static int under_mpi_launcher(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMI_SIZE") != NULL || getenv("SLURM_STEP_ID") != NULL;
}

void log_file_line(const char *text)
{
    if (log_file == NULL)
        return;
    char stamp[32];
    format_timestamp(stamp, sizeof stamp);
    fprintf(log_file, "%s %s\n", stamp, text);
    fflush(log_file);
}

void log_progress_begin(log_progress *p, const char *label, long total, double interval_seconds)
{
    p->label = label;
    p->total = total > 0 ? total : 1;
    p->start_time = log_now();
    p->last_print = 0;
    p->interval_seconds = interval_seconds;
    p->last_printed = -1;
    p->done_before = 0;
    p->is_tty = log_rank == 0 && isatty(STDOUT_FILENO) && !under_mpi_launcher();
}

void log_progress_skip(log_progress *p, long done)
{
    p->done_before = done;
}

static void progress_line(log_progress *p, long done, const char *detail, char *line, size_t size)
{
    double elapsed = log_now() - p->start_time;
    long done_here = done - p->done_before;
    double remaining = done_here > 0 ? elapsed * (double)(p->total - done) / (double)done_here : 0;
    char elapsed_text[32], eta_text[32];
    log_format_duration(elapsed, elapsed_text, sizeof elapsed_text);
    log_format_duration(remaining, eta_text, sizeof eta_text);
    snprintf(line, size, "%s %ld/%ld (%3.0f%%) elapsed %s ETA %s%s%s", p->label, done, p->total,
             100.0 * (double)done / (double)p->total, elapsed_text, eta_text, detail ? " " : "",
             detail ? detail : "");
}

void log_progress_update(log_progress *p, long done, const char *detail)
{
    if (log_rank != 0)
        return;
    double now = log_now();
    if (now - p->last_print < (p->is_tty ? 0.2 : p->interval_seconds) && done < p->total)
        return;
    p->last_print = now;
    p->last_printed = done;

    char line[1024];
    progress_line(p, done, detail, line, sizeof line);
    if (p->is_tty) {
        log_file_line(line);
        int width = 24;
        int filled = (int)((double)width * (double)done / (double)p->total);
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        printf("\r[%s] %s\033[K", bar, line);
        fflush(stdout);
    } else {
        log_info("%s", line);
    }
}

void log_progress_done(log_progress *p, const char *detail)
{
    /* A plain line for the last unit was printed already. */
    if (log_rank != 0 || (!p->is_tty && p->last_printed == p->total))
        return;
    if (p->is_tty) {
        printf("\r\033[K");
        fflush(stdout);
    }
    char line[1024];
    progress_line(p, p->total, detail, line, sizeof line);
    log_info("%s", line);
}
