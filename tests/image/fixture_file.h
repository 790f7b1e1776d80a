/* fixture_file: a minimal safetensors reader for the data module's tests.
 *
 * Loads the whole file and finds a tensor's bytes by name with a plain
 * string search of the JSON header. That suffices for the flat headers the
 * generator scripts in this folder write. */
#ifndef DMNSP_TEST_FIXTURE_FILE_H
#define DMNSP_TEST_FIXTURE_FILE_H

#include <stddef.h>

typedef struct {
    unsigned char *bytes;
    size_t size;
    size_t header_length;
} fixture_file;

/* Reads PATH; returns 0 or -1 (message printed). */
int fixture_open(fixture_file *file, const char *path);
void fixture_close(fixture_file *file);

/* Pointer to tensor NAME's data (unaligned: tensors are packed without
 * padding) and its shape (up to 4 dimensions), or
 * NULL when the tensor is absent. */
const void *fixture_tensor(const fixture_file *file, const char *name, int *rank, long shape[4]);

#endif
