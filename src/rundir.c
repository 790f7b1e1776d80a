/* rundir: the experiment folder rules (see include/dmnsp/rundir.h). */
#include "dmnsp/rundir.h"

#include "dmnsp/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int rundir_exists(const char *path)
{
    struct stat info;
    return stat(path, &info) == 0;
}

int rundir_make_folders(const char *path)
{
    char partial[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof partial)
        return dmnsp_fail("output folder path '%s' is empty or too long", path);
    memcpy(partial, path, n + 1);

    for (size_t i = 1; i <= n; i++) {
        if (partial[i] != '/' && partial[i] != '\0')
            continue;
        char saved = partial[i];
        partial[i] = '\0';
        if (mkdir(partial, 0775) != 0 && errno != EEXIST)
            return dmnsp_fail("cannot create folder %s: %s", partial, strerror(errno));
        partial[i] = saved;
    }
    struct stat info;
    if (stat(path, &info) != 0 || !S_ISDIR(info.st_mode))
        return dmnsp_fail("%s exists but is not a folder", path);
    return 0;
}

int rundir_write_atomic(const char *path, const void *data, size_t bytes)
{
    char temporary[4200];
    snprintf(temporary, sizeof temporary, "%s.tmp", path);

    int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0664);
    if (fd < 0)
        return dmnsp_fail("cannot write %s: creating the temporary file %s failed: %s", path, temporary,
                          strerror(errno));
    const char *p = data;
    size_t left = bytes;
    while (left > 0) {
        ssize_t written = write(fd, p, left);
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0) {
            int saved = errno;
            close(fd);
            unlink(temporary);
            return dmnsp_fail("writing %s failed: %s", temporary, strerror(saved));
        }
        p += written;
        left -= (size_t)written;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(temporary);
        return dmnsp_fail("flushing %s failed: %s", temporary, strerror(errno));
    }
    if (rename(temporary, path) != 0) {
        int saved = errno;
        unlink(temporary);
        return dmnsp_fail("cannot rename %s to %s: %s", temporary, path, strerror(saved));
    }
    return 0;
}

int rundir_metrics_finished(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[8192];
    int finished = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strstr(line, "\"summary\"") != NULL)
            finished = 1;
    }
    fclose(f);
    return finished;
}

static int check_writable(const char *dir)
{
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.dmnsp-write-test.%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return dmnsp_fail("output folder %s is not writable: %s", dir, strerror(errno));
    close(fd);
    unlink(probe);
    return 0;
}

/* Removes the run files dmnsp itself writes; other files stay. */
static int remove_run_files(const char *dir)
{
    static const char *names[] = {"metrics.json", "checkpoint.h5", "config.yaml", "train.log"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            return dmnsp_fail("overwrite=true: cannot remove %s: %s", path, strerror(errno));
    }
    return 0;
}

int rundir_prepare(const char *output_dir, const char *resume, int overwrite, rundir_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    DMNSP_TRY(rundir_make_folders(output_dir));
    DMNSP_TRY(check_writable(output_dir));

    char metrics[4200], checkpoint[4200];
    snprintf(metrics, sizeof metrics, "%s/metrics.json", output_dir);
    snprintf(checkpoint, sizeof checkpoint, "%s/checkpoint.h5", output_dir);
    int has_metrics = rundir_exists(metrics);
    int finished = rundir_metrics_finished(metrics);

    if (overwrite) {
        if (resume[0] != '\0')
            return dmnsp_fail("resume=%s and overwrite=true contradict each other: choose one", resume);
        return remove_run_files(output_dir);
    }

    if (resume[0] == '\0') {
        if (finished)
            return dmnsp_fail("%s already holds a finished run (%s has a summary line); pass overwrite=true "
                              "to replace it, or choose another output_dir",
                              output_dir, metrics);
        if (has_metrics || rundir_exists(checkpoint))
            return dmnsp_fail("%s holds an unfinished run; continue it with resume=auto, or pass "
                              "overwrite=true to start again",
                              output_dir);
        return 0;
    }

    if (strcmp(resume, "auto") == 0) {
        if (finished)
            return dmnsp_fail("%s already holds a finished run (%s has a summary line): nothing to resume; pass "
                              "overwrite=true to run it again",
                              output_dir, metrics);
        if (!rundir_exists(checkpoint)) {
            /* No task finished yet: a resubmitted job starts from the beginning. */
            if (has_metrics)
                return dmnsp_fail("%s has metrics.json but no checkpoint.h5 to resume from; pass overwrite=true",
                                  output_dir);
            return 0;
        }
        plan->start = RUNDIR_RESUME;
        snprintf(plan->resume_path, sizeof plan->resume_path, "%s", checkpoint);
        return 0;
    }

    if (!rundir_exists(resume))
        return dmnsp_fail("resume=%s: checkpoint not found", resume);
    if (finished)
        return dmnsp_fail("%s already holds a finished run (%s has a summary line); pass overwrite=true to run it "
                          "again, or resume into another output_dir",
                          output_dir, metrics);
    plan->start = RUNDIR_RESUME;
    snprintf(plan->resume_path, sizeof plan->resume_path, "%s", resume);
    return 0;
}
