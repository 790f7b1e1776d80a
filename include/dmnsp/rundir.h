/* rundir: the experiment folder (output_dir) and its files.
 *
 * A run folder contains config.yaml (fully resolved), metrics.json,
 * checkpoint.h5 and train.log. rundir_prepare() decides, on rank 0, what
 * a new `dmnsp train` may do with a folder that already exists: a
 * finished run (metrics.json ends with a summary line) is never replaced
 * without overwrite=true, an unfinished one is continued only with
 * resume=..., and nothing is deleted unless overwrite=true asks for it.
 */
#ifndef DMNSP_RUNDIR_H
#define DMNSP_RUNDIR_H

#include <stddef.h>

typedef enum {
    RUNDIR_FRESH = 0,  /* start at task 0 */
    RUNDIR_RESUME = 1, /* continue from resume_path */
} rundir_start;

typedef struct {
    rundir_start start;
    char resume_path[4224]; /* checkpoint to continue from (RUNDIR_RESUME) */
} rundir_plan;

/* Creates OUTPUT_DIR (with parents) when missing, checks that it is
 * writable, and applies the rules above. RESUME is "" (none), "auto" (the
 * folder's own checkpoint.h5; a fresh start when there is none yet) or a
 * checkpoint path. Returns 0, or -1 with a message that tells the user what
 * to do next. */
int rundir_prepare(const char *output_dir, const char *resume, int overwrite, rundir_plan *plan);

/* Writes BYTES bytes to PATH through PATH.tmp + fsync + rename, so readers
 * see the old or the new content, never a mix. Returns 0 or -1. */
int rundir_write_atomic(const char *path, const void *data, size_t bytes);

/* Creates PATH and its missing parents (like mkdir -p). Returns 0 or -1. */
int rundir_make_folders(const char *path);

/* 1 when PATH exists (any file type), 0 otherwise. */
int rundir_exists(const char *path);

/* 1 when the metrics.json at PATH ends with a summary line. */
int rundir_metrics_finished(const char *path);

#endif
