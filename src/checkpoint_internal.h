/* checkpoint_internal: HDF5 helpers shared by the checkpoint writer and
 * reader (src/checkpoint_*.c only). Every helper returns 0 or -1 after
 * dmnsp_fail("checkpoint: FILE: ... OBJECT ..."), where FILE is the path
 * given by the caller (the final checkpoint path, also while PATH.tmp is
 * being written) and OBJECT the HDF5 path of the dataset or attribute. */
#ifndef DMNSP_CHECKPOINT_INTERNAL_H
#define DMNSP_CHECKPOINT_INTERNAL_H

#include "dmnsp/checkpoint.h"

#include <hdf5.h>

struct checkpoint_reader {
    char *path;
    hid_t file;
    char *config_text;
    char *git_describe;
    int ranks;
    int task_count; /* tasks completed: 0..task_count-1 */
    int *stored;     /* task_count flags: 1 when /tasks/task_TT exists */
    int stored_count;
    int has_optimizer;
    checkpoint_shape shape;
};

/* Switches off HDF5's automatic error printing (idempotent). */
void ck_silence_hdf5(void);
/* Records "checkpoint: FILE: WHAT OBJECT (HDF5: innermost error)"; returns -1. */
int ck_fail_h5(const char *file, const char *what, const char *object);
/* A file access property list with file locking used only where the file
 * system supports it; the caller closes it. */
hid_t ck_file_access(void);

/* Names: "block_07", "task_03". */
void ck_block_name(char *buf, size_t size, int block);
void ck_task_name(char *buf, size_t size, int task);

/* Writing. FILE is only for messages. Scalars use rank 0 and dims NULL. */
hid_t ck_create_group(const char *file, hid_t parent, const char *name);
int ck_write_dataset(const char *file, hid_t parent, const char *name, hid_t file_type, hid_t mem_type, int rank,
                     const hsize_t *dims, const void *data, const char *description);
int ck_write_attr_long(const char *file, hid_t object, const char *name, long value);
int ck_write_attr_string(const char *file, hid_t object, const char *name, const char *text);
/* A 1-D int64 attribute of COUNT > 0 values. */
int ck_write_attr_longs(const char *file, hid_t object, const char *name, const long *values, int count);

/* Reading. OBJECT is an absolute HDF5 path. ck_read_dataset checks the
 * dataset's rank and dims against RANK and DIMS. */
int ck_exists(hid_t file, const char *object);
int ck_read_dataset(const char *file, hid_t h5file, const char *object, hid_t mem_type, int rank,
                    const hsize_t *dims, void *out);
/* Reads a 1-D dataset of any length into a malloc'd buffer of ELEMENT_SIZE
 * bytes per value. */
int ck_read_vector(const char *file, hid_t h5file, const char *object, hid_t mem_type, size_t element_size,
                   void **out, int *count);
int ck_read_attr_long(const char *file, hid_t object, const char *object_name, const char *name, long *value);
/* Reads a 1-D integer attribute into *VALUES (malloc'd, *COUNT values). */
int ck_read_attr_longs(const char *file, hid_t object, const char *object_name, const char *name, long **values,
                       int *count);
/* Reads a fixed- or variable-length string attribute into a malloc'd text. */
int ck_read_attr_string(const char *file, hid_t object, const char *object_name, const char *name, char **text);

/* Adapter tensors of one buffer under GROUP/{visual,text}/block_NN. */
int ck_write_adapters(const char *file, hid_t group, const clip_config *config, const float *adapters,
                      const char *what);
int ck_read_adapters(const char *file, hid_t h5file, const char *group_path, const clip_config *config,
                     float *adapters);

#endif
