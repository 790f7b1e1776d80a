/* fixture_file: see fixture_file.h. */
#include "fixture_file.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fixture_open(fixture_file *file, const char *path)
{
    memset(file, 0, sizeof *file);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "fixture: cannot open %s\n", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    file->bytes = malloc((size_t)size + 1);
    if (file->bytes == NULL || fread(file->bytes, 1, (size_t)size, f) != (size_t)size || size < 8) {
        fprintf(stderr, "fixture: cannot read %s\n", path);
        fclose(f);
        free(file->bytes);
        file->bytes = NULL;
        return -1;
    }
    fclose(f);
    file->size = (size_t)size;
    uint64_t length = 0;
    for (int i = 7; i >= 0; i--)
        length = (length << 8) | file->bytes[i];
    if (length + 8 > file->size) {
        fprintf(stderr, "fixture: %s: header length %llu exceeds the file\n", path, (unsigned long long)length);
        free(file->bytes);
        file->bytes = NULL;
        return -1;
    }
    file->header_length = (size_t)length;
    return 0;
}

void fixture_close(fixture_file *file)
{
    free(file->bytes);
    memset(file, 0, sizeof *file);
}

const void *fixture_tensor(const fixture_file *file, const char *name, int *rank, long shape[4])
{
    char key[512];
    snprintf(key, sizeof key, "\"%s\":{", name);
    char *header = malloc(file->header_length + 1);
    memcpy(header, file->bytes + 8, file->header_length);
    header[file->header_length] = '\0';
    const char *entry = strstr(header, key);
    if (entry == NULL) {
        free(header);
        return NULL;
    }
    const char *shape_text = strstr(entry, "\"shape\":[");
    const char *offsets_text = strstr(entry, "\"data_offsets\":[");
    if (shape_text == NULL || offsets_text == NULL) {
        free(header);
        return NULL;
    }
    shape_text += strlen("\"shape\":[");
    *rank = 0;
    while (*shape_text != ']' && *rank < 4) {
        char *end;
        shape[(*rank)++] = strtol(shape_text, &end, 10);
        shape_text = end;
        if (*shape_text == ',')
            shape_text++;
    }
    long begin = strtol(offsets_text + strlen("\"data_offsets\":["), NULL, 10);
    free(header);
    return file->bytes + 8 + file->header_length + begin;
}
