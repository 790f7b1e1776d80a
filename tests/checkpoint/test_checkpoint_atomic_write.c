/* A failed write leaves the previous checkpoint byte for byte intact and
 * removes its temporary file: the temporary name is taken, the write fails
 * half-way, or (when not running as root) the folder is read-only. */
#include "dmnsp/checkpoint.h"
#include "dmnsp/error.h"
#include "fake_run.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void check_unchanged(const char *path, const char *before, long before_size, int tasks)
{
    long size = 0;
    char *now = test_read_file(path, &size);
    CHECK(now != NULL);
    CHECK_EQ_INT(size, before_size);
    if (now != NULL && size == before_size)
        CHECK(memcmp(now, before, (size_t)size) == 0);
    free(now);
    checkpoint_reader *reader = NULL;
    CHECK_OK(checkpoint_open(path, &reader));
    if (reader != NULL)
        CHECK_EQ_INT(checkpoint_task_count(reader), tasks);
    checkpoint_close(reader);
}

int main(void)
{
    const char *path = "atomic.h5";
    const char *tmp = "atomic.h5.tmp";
    remove(path);
    rmdir(tmp);
    fake_run run;
    CHECK_OK(fake_run_init(&run, 3));
    run.tasks = 2;
    CHECK_OK(fake_run_write(&run, path, "method: DMNSP\n"));
    long size = 0;
    char *before = test_read_file(path, &size);
    CHECK(before != NULL);

    checkpoint_task_record rec;
    fake_run_record(&run, 2, 1, &rec);
    checkpoint_header header = {"method: DMNSP\n", NULL, 1};

    /* The temporary name is a folder: creating the file fails. */
    CHECK(mkdir(tmp, 0755) == 0);
    CHECK_FAILS_WITH(checkpoint_append_task(path, &header, &run.config, run.snapshots[2], NULL, &rec),
                     "cannot create the temporary file");
    CHECK(rmdir(tmp) == 0);
    check_unchanged(path, before, size, 2);

    /* The write fails after the temporary file exists (config too long for
     * an attribute): the temporary file is removed. */
    size_t long_size = 70000;
    char *long_config = malloc(long_size + 1);
    CHECK(long_config != NULL);
    if (long_config != NULL) {
        memset(long_config, '#', long_size);
        long_config[long_size] = '\0';
        checkpoint_header long_header = {long_config, NULL, 1};
        CHECK_FAILS_WITH(checkpoint_append_task(path, &long_header, &run.config, run.snapshots[2], NULL, &rec),
                         "more than the 60000 bytes");
        CHECK(access(tmp, F_OK) != 0);
        check_unchanged(path, before, size, 2);
    }
    free(long_config);

    /* A read-only folder; root ignores permissions, so only other users test it. */
    if (geteuid() != 0) {
        CHECK(mkdir("readonly", 0755) == 0 || access("readonly", F_OK) == 0);
        remove("readonly/atomic.h5");
        run.tasks = 2;
        CHECK_OK(fake_run_write(&run, "readonly/atomic.h5", "method: DMNSP\n"));
        long ro_size = 0;
        char *ro_before = test_read_file("readonly/atomic.h5", &ro_size);
        CHECK(chmod("readonly", 0555) == 0);
        CHECK_FAILS_WITH(checkpoint_append_task("readonly/atomic.h5", &header, &run.config, run.snapshots[2], NULL, &rec),
                         "cannot create the temporary file");
        CHECK(chmod("readonly", 0755) == 0);
        if (ro_before != NULL)
            check_unchanged("readonly/atomic.h5", ro_before, ro_size, 2);
        free(ro_before);
    } else {
        printf("read-only folder case not run: running as root\n");
    }

    /* After the failures the same append succeeds. */
    CHECK_OK(checkpoint_append_task(path, &header, &run.config, run.snapshots[2], NULL, &rec));
    CHECK(access(tmp, F_OK) != 0);
    checkpoint_reader *reader = NULL;
    CHECK_OK(checkpoint_open(path, &reader));
    if (reader != NULL)
        CHECK_EQ_INT(checkpoint_task_count(reader), 3);
    checkpoint_close(reader);

    free(before);
    fake_run_free(&run);
    return test_finish("test_checkpoint_atomic_write");
}
