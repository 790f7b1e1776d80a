/* Reading damaged or foreign files fails with a message that names the file
 * and what is wrong: not HDF5, missing, truncated, another format version,
 * a plain HDF5 file, a missing task group and a mis-shaped tensor. */
#include "dmnsp/checkpoint.h"
#include "dmnsp/error.h"
#include "fake_run.h"
#include "test_util.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int copy_file(const char *from, const char *to)
{
    long size = 0;
    char *data = test_read_file(from, &size);
    if (data == NULL)
        return -1;
    int status = test_write_file(to, data, (size_t)size);
    free(data);
    return status;
}

static void expect_open_fails(const char *path, const char *needle)
{
    checkpoint_reader *reader = NULL;
    CHECK_FAILS_WITH(checkpoint_open(path, &reader), needle);
    CHECK_STR_CONTAINS(dmnsp_last_error(), path);
    CHECK(reader == NULL);
    checkpoint_close(reader);
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const char *good = "good.h5";
    remove(good);
    fake_run run;
    CHECK_OK(fake_run_init(&run, 3));
    CHECK_OK(fake_run_write(&run, good, "method: DMNSP\n"));

    /* Not HDF5 at all, and no file. */
    const char *text = "dataset: cifar100\n";
    CHECK_OK(test_write_file("not_hdf5.h5", text, strlen(text)));
    expect_open_fails("not_hdf5.h5", "not an HDF5 file");
    expect_open_fails("missing.h5", "cannot read");

    /* The first half of a valid checkpoint. */
    long size = 0;
    char *data = test_read_file(good, &size);
    CHECK(data != NULL);
    CHECK(size > 1000);
    if (data != NULL)
        CHECK_OK(test_write_file("truncated.h5", data, (size_t)size / 2));
    free(data);
    expect_open_fails("truncated.h5", "truncated file: eof");

    /* Another format version. */
    CHECK_OK(copy_file(good, "version2.h5"));
    hid_t file = H5Fopen("version2.h5", H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(file >= 0);
    hid_t attr = H5Aopen_by_name(file, "/", "format_version", H5P_DEFAULT, H5P_DEFAULT);
    long long two = 2;
    CHECK(attr >= 0);
    CHECK(H5Awrite(attr, H5T_NATIVE_LLONG, &two) >= 0);
    H5Aclose(attr);
    H5Fclose(file);
    expect_open_fails("version2.h5", "format_version 2 is not supported");

    /* An HDF5 file that is not a checkpoint. */
    file = H5Fcreate("plain.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(file >= 0);
    H5Fclose(file);
    expect_open_fails("plain.h5", "'format_version' is missing");

    /* A task group removed from the middle. */
    CHECK_OK(copy_file(good, "gap.h5"));
    file = H5Fopen("gap.h5", H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(file >= 0);
    CHECK(H5Ldelete(file, "/tasks/task_01", H5P_DEFAULT) >= 0);
    H5Fclose(file);
    expect_open_fails("gap.h5", "task_01 is missing");

    /* A tensor with the wrong shape opens but fails to read, naming it. */
    CHECK_OK(copy_file(good, "shape.h5"));
    file = H5Fopen("shape.h5", H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(file >= 0);
    CHECK(H5Ldelete(file, "/model/text/block_01/up_b", H5P_DEFAULT) >= 0);
    hsize_t three[1] = {3};
    hid_t space = H5Screate_simple(1, three, NULL);
    hid_t dataset = H5Dcreate2(file, "/model/text/block_01/up_b", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                               H5P_DEFAULT);
    CHECK(dataset >= 0);
    H5Dclose(dataset);
    H5Sclose(space);
    H5Fclose(file);
    checkpoint_reader *reader = NULL;
    CHECK_OK(checkpoint_open("shape.h5", &reader));
    float *buffer = malloc(run.adapter_count * sizeof(float));
    if (reader != NULL && buffer != NULL) {
        CHECK_FAILS_WITH(checkpoint_read_model(reader, &run.config, buffer),
                         "/model/text/block_01/up_b has shape [3], expected [8]");
        CHECK_STR_CONTAINS(dmnsp_last_error(), "shape.h5");
    }
    checkpoint_close(reader);

    /* Appending to a damaged file is rejected before anything is written. */
    checkpoint_task_record rec;
    fake_run_record(&run, 0, 1, &rec);
    checkpoint_header header = {"", NULL, 1};
    CHECK_FAILS_WITH(checkpoint_append_task("truncated.h5", &header, &run.config, run.snapshots[0], NULL, &rec),
                     "cannot extend the existing checkpoint");

    free(buffer);
    fake_run_free(&run);
    return test_finish("test_checkpoint_bad_files");
}
