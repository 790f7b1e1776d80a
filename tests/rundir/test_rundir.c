/* rundir: what a new run may do with an existing output folder, and atomic
 * writes. */
#include "dmnsp/error.h"
#include "dmnsp/rundir.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_text(const char *path, const char *text)
{
    CHECK(test_write_file(path, text, strlen(text)) == 0);
}

int main(void)
{
    rundir_plan plan;
    CHECK_EQ_INT(system("rm -rf runs"), 0);

    /* A new folder is created, with parents, for a fresh start. */
    CHECK_OK(rundir_prepare("runs/a/b", "", 0, &plan));
    CHECK_EQ_INT(plan.start, RUNDIR_FRESH);
    CHECK(rundir_exists("runs/a/b"));

    /* resume=auto without a checkpoint starts fresh. */
    CHECK_OK(rundir_prepare("runs/a/b", "auto", 0, &plan));
    CHECK_EQ_INT(plan.start, RUNDIR_FRESH);

    /* An unfinished run needs resume or overwrite. */
    write_text("runs/a/b/metrics.json", "{\"task\": 0, \"acc\": 50.00}\n");
    write_text("runs/a/b/checkpoint.h5", "x");
    CHECK_FAILS_WITH(rundir_prepare("runs/a/b", "", 0, &plan), "holds an unfinished run; continue it with resume=auto");
    CHECK_OK(rundir_prepare("runs/a/b", "auto", 0, &plan));
    CHECK_EQ_INT(plan.start, RUNDIR_RESUME);
    CHECK(strcmp(plan.resume_path, "runs/a/b/checkpoint.h5") == 0);

    /* A finished run is never replaced silently. */
    write_text("runs/a/b/metrics.json", "{\"task\": 0, \"acc\": 50.00}\n{\"summary\": true, \"last\": 50.00}\n");
    CHECK_FAILS_WITH(rundir_prepare("runs/a/b", "", 0, &plan), "already holds a finished run");
    CHECK_FAILS_WITH(rundir_prepare("runs/a/b", "auto", 0, &plan), "nothing to resume");
    CHECK(rundir_exists("runs/a/b/metrics.json"));
    CHECK_FAILS_WITH(rundir_prepare("runs/a/b", "auto", 1, &plan), "contradict");
    CHECK_FAILS_WITH(rundir_prepare("runs/a/b", "runs/a/b/checkpoint.h5", 0, &plan), "already holds a finished run");

    /* overwrite=true removes dmnsp's own files and nothing else. */
    write_text("runs/a/b/notes.txt", "mine");
    CHECK_OK(rundir_prepare("runs/a/b", "", 1, &plan));
    CHECK(!rundir_exists("runs/a/b/metrics.json"));
    CHECK(!rundir_exists("runs/a/b/checkpoint.h5"));
    CHECK(rundir_exists("runs/a/b/notes.txt"));

    /* An explicit checkpoint must exist. */
    CHECK_FAILS_WITH(rundir_prepare("runs/c", "runs/none.h5", 0, &plan), "runs/none.h5: checkpoint not found");

    /* A folder that cannot be created (a file is in the way). */
    write_text("runs/file", "x");
    CHECK_FAILS_WITH(rundir_prepare("runs/file/sub", "", 0, &plan), "cannot create folder runs/file/sub");

    /* Atomic writes replace the content and leave no temporary file. */
    CHECK_OK(rundir_write_atomic("runs/x.json", "new\n", 4));
    CHECK(!rundir_exists("runs/x.json.tmp"));
    CHECK_FAILS_WITH(rundir_write_atomic("runs/file/x.json", "new\n", 4), "cannot write runs/file/x.json: creating the temporary file");

    return test_finish("test_rundir");
}
