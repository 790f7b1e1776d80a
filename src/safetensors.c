/* safetensors: header validation, dtype conversion and the atomic writer
 * (see include/dmnsp/safetensors.h). */
#include "dmnsp/safetensors.h"

#include "dmnsp/error.h"
#include "dmnsp/json_parse.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct safetensors_file {
    char *path;
    int fd;
    uint64_t data_start; /* 8 + header length */
    uint64_t data_size;
    safetensors_tensor *tensors;
    char **names; /* owned copies behind tensors[i].name */
    int count;
    int *hash_slots; /* open addressing over tensor indices, -1 = empty */
    size_t hash_size;
    char **metadata_keys;
    char **metadata_values;
    int metadata_count;
};

/* ---- small helpers ------------------------------------------------------ */

/* Every dtype of the format, with its element size. Only the first five
 * can be read; the others are accepted in a header so that a file with an
 * unused buffer (a U8 mask, F64 statistics) still opens. */
static const struct {
    safetensors_dtype dtype;
    const char *name;
    size_t size;
} dtypes[] = {
    {SAFETENSORS_F32, "F32", 4},         {SAFETENSORS_F16, "F16", 2},         {SAFETENSORS_BF16, "BF16", 2},
    {SAFETENSORS_I32, "I32", 4},         {SAFETENSORS_I64, "I64", 8},         {SAFETENSORS_F64, "F64", 8},
    {SAFETENSORS_I8, "I8", 1},           {SAFETENSORS_U8, "U8", 1},           {SAFETENSORS_I16, "I16", 2},
    {SAFETENSORS_U16, "U16", 2},         {SAFETENSORS_U32, "U32", 4},         {SAFETENSORS_U64, "U64", 8},
    {SAFETENSORS_BOOL, "BOOL", 1},       {SAFETENSORS_F8_E4M3, "F8_E4M3", 1}, {SAFETENSORS_F8_E5M2, "F8_E5M2", 1},
};

static const int dtype_count = (int)(sizeof dtypes / sizeof dtypes[0]);

static size_t dtype_size(safetensors_dtype dtype)
{
    for (int i = 0; i < dtype_count; i++) {
        if (dtypes[i].dtype == dtype)
            return dtypes[i].size;
    }
    return 0;
}

const char *safetensors_dtype_name(safetensors_dtype dtype)
{
    for (int i = 0; i < dtype_count; i++) {
        if (dtypes[i].dtype == dtype)
            return dtypes[i].name;
    }
    return "unknown";
}

static int parse_dtype(const char *text, safetensors_dtype *dtype)
{
    for (int i = 0; i < dtype_count; i++) {
        if (strcmp(text, dtypes[i].name) == 0) {
            *dtype = dtypes[i].dtype;
            return 0;
        }
    }
    return -1;
}

char *safetensors_format_shape(int ndim, const int64_t *shape, char *buffer, size_t size)
{
    size_t used = 0;
    if (size == 0)
        return buffer;
    buffer[0] = '\0';
    used += (size_t)snprintf(buffer + used, size - used, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buffer + used, size - used, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (used < size)
        snprintf(buffer + used, size - used, "]");
    return buffer;
}

float safetensors_f16_to_f32(uint16_t bits)
{
    uint32_t sign = (uint32_t)(bits & 0x8000u) << 16;
    uint32_t exponent = (bits >> 10) & 0x1fu;
    uint32_t mantissa = bits & 0x3ffu;
    uint32_t out;
    if (exponent == 0) {
        /* Zero or subnormal: mantissa × 2^-24, exact in float. */
        float magnitude = ldexpf((float)mantissa, -24);
        return sign ? -magnitude : magnitude;
    }
    if (exponent == 31)
        out = sign | 0x7f800000u | (mantissa << 13); /* inf or NaN */
    else
        out = sign | ((exponent + 112) << 23) | (mantissa << 13);
    float value;
    memcpy(&value, &out, sizeof value);
    return value;
}

float safetensors_bf16_to_f32(uint16_t bits)
{
    uint32_t out = (uint32_t)bits << 16;
    float value;
    memcpy(&value, &out, sizeof value);
    return value;
}

static uint64_t hash_name(const char *name)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
        h ^= *s;
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- opening and validating -------------------------------------------- */

static int read_exact(int fd, uint64_t offset, void *buffer, size_t bytes)
{
    char *out = buffer;
    while (bytes > 0) {
        ssize_t got = pread(fd, out, bytes, (off_t)offset);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return dmnsp_fail("read of %zu bytes at offset %" PRIu64 " failed: %s", bytes, offset, strerror(errno));
        }
        if (got == 0)
            return dmnsp_fail("file ends before offset %" PRIu64 " (%zu bytes short)", offset, bytes);
        out += got;
        offset += (uint64_t)got;
        bytes -= (size_t)got;
    }
    return 0;
}

/* Fills one tensor entry from its header object; errors name the tensor. */
static int parse_tensor_entry(safetensors_file *f, const char *name, const json_value *entry,
                              safetensors_tensor *t)
{
    if (entry->type != JSON_OBJECT)
        return dmnsp_fail("tensor '%s': header entry is a %s, expected an object", name, json_type_name(entry->type));

    const json_value *dtype = json_object_get(entry, "dtype");
    const json_value *shape = json_object_get(entry, "shape");
    const json_value *offsets = json_object_get(entry, "data_offsets");
    if (dtype == NULL || dtype->type != JSON_STRING)
        return dmnsp_fail("tensor '%s': missing or non-string \"dtype\"", name);
    if (shape == NULL || shape->type != JSON_ARRAY)
        return dmnsp_fail("tensor '%s': missing or non-array \"shape\"", name);
    if (offsets == NULL || offsets->type != JSON_ARRAY || offsets->count != 2)
        return dmnsp_fail("tensor '%s': \"data_offsets\" must be an array [begin, end]", name);
    for (size_t i = 0; i < entry->count; i++) {
        const char *key = entry->keys[i];
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 && strcmp(key, "data_offsets") != 0)
            return dmnsp_fail("tensor '%s': unexpected header field \"%s\"", name, key);
    }

    if (parse_dtype(dtype->string, &t->dtype) != 0)
        return dmnsp_fail("tensor '%s': unknown dtype %s (the format defines F64, F32, F16, BF16, F8_E4M3, F8_E5M2, "
                          "I64, I32, I16, I8, U64, U32, U16, U8, BOOL)",
                          name,
                          dtype->string);

    if (shape->count > SAFETENSORS_MAX_DIMS)
        return dmnsp_fail("tensor '%s': %zu dimensions, at most %d supported", name, shape->count,
                          SAFETENSORS_MAX_DIMS);
    t->ndim = (int)shape->count;
    t->count = 1;
    for (int i = 0; i < t->ndim; i++) {
        const json_value *d = &shape->items[i];
        if (d->type != JSON_NUMBER || !d->is_integer || d->integer < 0)
            return dmnsp_fail("tensor '%s': shape entry %d is not a non-negative integer", name, i);
        t->shape[i] = d->integer;
        if (d->integer > 0 && t->count > SIZE_MAX / 8 / (size_t)d->integer)
            return dmnsp_fail("tensor '%s': shape is too large", name);
        t->count *= (size_t)d->integer;
    }

    const json_value *b = &offsets->items[0], *e = &offsets->items[1];
    if (b->type != JSON_NUMBER || !b->is_integer || b->integer < 0 || e->type != JSON_NUMBER || !e->is_integer ||
        e->integer < b->integer)
        return dmnsp_fail("tensor '%s': data_offsets must be integers 0 <= begin <= end", name);
    t->begin = (uint64_t)b->integer;
    t->end = (uint64_t)e->integer;
    if (t->end > f->data_size)
        return dmnsp_fail("tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] go past the data section of %" PRIu64
                          " bytes (file truncated?)",
                          name, t->begin, t->end, f->data_size);

    uint64_t expected = (uint64_t)t->count * dtype_size(t->dtype);
    if (t->end - t->begin != expected) {
        char text[160];
        return dmnsp_fail("tensor '%s': shape %s of %s needs %" PRIu64 " bytes, data_offsets give %" PRIu64, name,
                          safetensors_format_shape(t->ndim, t->shape, text, sizeof text),
                          safetensors_dtype_name(t->dtype), expected, t->end - t->begin);
    }
    return 0;
}

static int parse_metadata(safetensors_file *f, const json_value *metadata)
{
    if (metadata->type != JSON_OBJECT)
        return dmnsp_fail("\"__metadata__\" is a %s, expected an object of strings", json_type_name(metadata->type));
    f->metadata_keys = calloc(metadata->count + 1, sizeof *f->metadata_keys);
    f->metadata_values = calloc(metadata->count + 1, sizeof *f->metadata_values);
    if (f->metadata_keys == NULL || f->metadata_values == NULL)
        return dmnsp_fail("out of memory for the metadata");
    for (size_t i = 0; i < metadata->count; i++) {
        if (metadata->items[i].type != JSON_STRING)
            return dmnsp_fail("\"__metadata__\" entry \"%s\" is a %s, expected a string", metadata->keys[i],
                              json_type_name(metadata->items[i].type));
        f->metadata_keys[i] = strdup(metadata->keys[i]);
        f->metadata_values[i] = strdup(metadata->items[i].string);
        f->metadata_count++;
        if (f->metadata_keys[i] == NULL || f->metadata_values[i] == NULL)
            return dmnsp_fail("out of memory for the metadata");
    }
    return 0;
}

static int build_hash(safetensors_file *f)
{
    f->hash_size = 16;
    while (f->hash_size < 2 * (size_t)f->count)
        f->hash_size *= 2;
    f->hash_slots = malloc(f->hash_size * sizeof *f->hash_slots);
    if (f->hash_slots == NULL)
        return dmnsp_fail("out of memory for the tensor index");
    for (size_t i = 0; i < f->hash_size; i++)
        f->hash_slots[i] = -1;
    for (int i = 0; i < f->count; i++) {
        size_t slot = (size_t)hash_name(f->tensors[i].name) & (f->hash_size - 1);
        while (f->hash_slots[slot] >= 0)
            slot = (slot + 1) & (f->hash_size - 1);
        f->hash_slots[slot] = i;
    }
    return 0;
}

static int compare_by_begin(const void *a, const void *b)
{
    const safetensors_tensor *x = *(const safetensors_tensor *const *)a;
    const safetensors_tensor *y = *(const safetensors_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

static int check_overlaps(const safetensors_file *f)
{
    const safetensors_tensor **order = malloc(((size_t)f->count + 1) * sizeof *order);
    if (order == NULL)
        return dmnsp_fail("out of memory checking tensor offsets");
    for (int i = 0; i < f->count; i++)
        order[i] = &f->tensors[i];
    qsort(order, (size_t)f->count, sizeof *order, compare_by_begin);

    int status = 0;
    const safetensors_tensor *previous = NULL;
    for (int i = 0; i < f->count; i++) {
        const safetensors_tensor *t = order[i];
        if (t->begin == t->end)
            continue; /* empty tensors occupy no bytes */
        if (previous != NULL && t->begin < previous->end) {
            status = dmnsp_fail("tensors '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' [%" PRIu64 ", %" PRIu64
                                ") overlap in the data section",
                                previous->name, previous->begin, previous->end, t->name, t->begin, t->end);
            break;
        }
        previous = t;
    }
    free(order);
    return status;
}

static int parse_header(safetensors_file *f, const char *header, size_t length)
{
    json_value *root = NULL;
    if (json_parse(header, length, &root) != 0)
        return dmnsp_fail_prefix("header is not valid JSON");
    int status = 0;
    if (root->type != JSON_OBJECT) {
        status = dmnsp_fail("header is a JSON %s, expected an object", json_type_name(root->type));
        goto done;
    }

    f->tensors = calloc(root->count + 1, sizeof *f->tensors);
    f->names = calloc(root->count + 1, sizeof *f->names);
    if (f->tensors == NULL || f->names == NULL) {
        status = dmnsp_fail("out of memory for %zu tensor entries", root->count);
        goto done;
    }
    for (size_t i = 0; i < root->count && status == 0; i++) {
        const char *key = root->keys[i];
        if (strcmp(key, "__metadata__") == 0) {
            status = parse_metadata(f, &root->items[i]);
            continue;
        }
        f->names[f->count] = strdup(key);
        if (f->names[f->count] == NULL) {
            status = dmnsp_fail("out of memory for tensor names");
            break;
        }
        safetensors_tensor *t = &f->tensors[f->count];
        t->name = f->names[f->count];
        f->count++;
        status = parse_tensor_entry(f, key, &root->items[i], t);
    }
    if (status == 0)
        status = check_overlaps(f);
    if (status == 0)
        status = build_hash(f);
done:
    json_free(root);
    return status;
}

int safetensors_open(const char *path, safetensors_file **file)
{
    *file = NULL;
    safetensors_file *f = calloc(1, sizeof *f);
    if (f == NULL)
        return dmnsp_fail("safetensors: %s: out of memory", path);
    f->fd = -1;
    f->path = strdup(path);
    char *header = NULL;
    int status = 0;

    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        status = dmnsp_fail("cannot open: %s", strerror(errno));
        goto done;
    }
    struct stat st;
    if (fstat(f->fd, &st) != 0) {
        status = dmnsp_fail("cannot stat: %s", strerror(errno));
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        status = dmnsp_fail("this is a folder, not a safetensors file; a dmnsp run folder becomes a weights file "
                            "with: dmnsp export RUN_DIR --out FILE.safetensors");
        goto done;
    }
    uint64_t file_size = (uint64_t)st.st_size;
    if (file_size < 8) {
        status = dmnsp_fail("file is %" PRIu64 " bytes, too short for the 8-byte header length", file_size);
        goto done;
    }

    unsigned char length_bytes[8];
    if ((status = read_exact(f->fd, 0, length_bytes, 8)) != 0)
        goto done;
    if (memcmp(length_bytes, "\x89HDF\r\n\x1a\n", 8) == 0) {
        status = dmnsp_fail("this is an HDF5 file, not safetensors; a dmnsp run's checkpoint.h5 becomes a weights "
                            "file with: dmnsp export RUN_DIR --out FILE.safetensors");
        goto done;
    }
    uint64_t header_length = 0;
    for (int i = 7; i >= 0; i--)
        header_length = (header_length << 8) | length_bytes[i];
    if (header_length > file_size - 8) {
        status = dmnsp_fail("header length %" PRIu64 " goes past the end of the file (%" PRIu64
                            " bytes): truncated or not a safetensors file",
                            header_length, file_size);
        goto done;
    }
    if (header_length > SAFETENSORS_MAX_HEADER_BYTES) {
        status = dmnsp_fail("header length %" PRIu64 " exceeds the %u-byte limit", header_length,
                            SAFETENSORS_MAX_HEADER_BYTES);
        goto done;
    }
    f->data_start = 8 + header_length;
    f->data_size = file_size - f->data_start;

    header = malloc(header_length + 1);
    if (header == NULL) {
        status = dmnsp_fail("out of memory for a %" PRIu64 "-byte header", header_length);
        goto done;
    }
    if ((status = read_exact(f->fd, 8, header, header_length)) != 0)
        goto done;
    status = parse_header(f, header, header_length);

done:
    free(header);
    if (status != 0) {
        dmnsp_fail_prefix("safetensors: %s", path);
        safetensors_close(f);
        return -1;
    }
    *file = f;
    return 0;
}

void safetensors_close(safetensors_file *f)
{
    if (f == NULL)
        return;
    if (f->fd >= 0)
        close(f->fd);
    for (int i = 0; i < f->count; i++)
        free(f->names[i]);
    for (int i = 0; i < f->metadata_count; i++) {
        free(f->metadata_keys[i]);
        free(f->metadata_values[i]);
    }
    free(f->metadata_keys);
    free(f->metadata_values);
    free(f->names);
    free(f->tensors);
    free(f->hash_slots);
    free(f->path);
    free(f);
}

/* ---- lookup ------------------------------------------------------------- */

const char *safetensors_path(const safetensors_file *f)
{
    return f->path;
}

int safetensors_count(const safetensors_file *f)
{
    return f->count;
}

const safetensors_tensor *safetensors_at(const safetensors_file *f, int index)
{
    if (index < 0 || index >= f->count)
        return NULL;
    return &f->tensors[index];
}

const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name)
{
    size_t slot = (size_t)hash_name(name) & (f->hash_size - 1);
    while (f->hash_slots[slot] >= 0) {
        const safetensors_tensor *t = &f->tensors[f->hash_slots[slot]];
        if (strcmp(t->name, name) == 0)
            return t;
        slot = (slot + 1) & (f->hash_size - 1);
    }
    return NULL;
}

const char *safetensors_metadata(const safetensors_file *f, const char *key)
{
    for (int i = 0; i < f->metadata_count; i++) {
        if (strcmp(f->metadata_keys[i], key) == 0)
            return f->metadata_values[i];
    }
    return NULL;
}

/* ---- reading data ------------------------------------------------------- */

static int find_for_read(const safetensors_file *f, const char *name, size_t count, const safetensors_tensor **out)
{
    const safetensors_tensor *t = safetensors_find(f, name);
    if (t == NULL)
        return dmnsp_fail("safetensors: %s: tensor '%s' not found", f->path, name);
    if (t->count != count) {
        char text[160];
        return dmnsp_fail("safetensors: %s: tensor '%s' has shape %s (%zu elements), expected %zu elements", f->path,
                          name, safetensors_format_shape(t->ndim, t->shape, text, sizeof text), t->count, count);
    }
    *out = t;
    return 0;
}

/* Elements converted per chunk when the stored type differs from the
 * output type: bounds the temporary buffer to 4 MiB. */
#define CONVERT_CHUNK (512u * 1024u)

static int read_tensor_bytes(const safetensors_file *f, const safetensors_tensor *t, uint64_t first, size_t n,
                             void *out)
{
    size_t size = dtype_size(t->dtype);
    if (read_exact(f->fd, f->data_start + t->begin + first * size, out, n * size) != 0)
        return dmnsp_fail_prefix("safetensors: %s: tensor '%s'", f->path, t->name);
    return 0;
}

int safetensors_read_f32(const safetensors_file *f, const char *name, float *out, size_t count)
{
    const safetensors_tensor *t;
    DMNSP_TRY(find_for_read(f, name, count, &t));
    if (t->dtype == SAFETENSORS_F32)
        return read_tensor_bytes(f, t, 0, count, out);
    if (t->dtype != SAFETENSORS_F16 && t->dtype != SAFETENSORS_BF16)
        return dmnsp_fail("safetensors: %s: tensor '%s' has dtype %s, expected a floating-point dtype (F32, F16, BF16)",
                          f->path, name, safetensors_dtype_name(t->dtype));

    size_t chunk = count < CONVERT_CHUNK ? count : CONVERT_CHUNK;
    uint16_t *bits = malloc((chunk ? chunk : 1) * sizeof *bits);
    if (bits == NULL)
        return dmnsp_fail("safetensors: %s: out of memory converting tensor '%s'", f->path, name);
    int status = 0;
    for (size_t done = 0; done < count && status == 0; done += chunk) {
        size_t n = count - done < chunk ? count - done : chunk;
        status = read_tensor_bytes(f, t, done, n, bits);
        if (status != 0)
            break;
        if (t->dtype == SAFETENSORS_F16) {
            for (size_t i = 0; i < n; i++)
                out[done + i] = safetensors_f16_to_f32(bits[i]);
        } else {
            for (size_t i = 0; i < n; i++)
                out[done + i] = safetensors_bf16_to_f32(bits[i]);
        }
    }
    free(bits);
    return status;
}

int safetensors_read_f32_shape(const safetensors_file *f, const char *name, int ndim, const int64_t *shape,
                               float *out)
{
    const safetensors_tensor *t = safetensors_find(f, name);
    if (t == NULL)
        return dmnsp_fail("safetensors: %s: tensor '%s' not found", f->path, name);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char found[160], expected[160];
        return dmnsp_fail("safetensors: %s: tensor '%s' has shape %s, expected %s", f->path, name,
                          safetensors_format_shape(t->ndim, t->shape, found, sizeof found),
                          safetensors_format_shape(ndim, shape, expected, sizeof expected));
    }
    return safetensors_read_f32(f, name, out, t->count);
}

int safetensors_read_f32_alloc(const safetensors_file *f, const char *name, float **out, size_t *count)
{
    *out = NULL;
    const safetensors_tensor *t = safetensors_find(f, name);
    if (t == NULL)
        return dmnsp_fail("safetensors: %s: tensor '%s' not found", f->path, name);
    float *data = malloc((t->count ? t->count : 1) * sizeof *data);
    if (data == NULL)
        return dmnsp_fail("safetensors: %s: out of memory for tensor '%s' (%zu floats)", f->path, name, t->count);
    if (safetensors_read_f32(f, name, data, t->count) != 0) {
        free(data);
        return -1;
    }
    *out = data;
    if (count != NULL)
        *count = t->count;
    return 0;
}

int safetensors_read_i64(const safetensors_file *f, const char *name, int64_t *out, size_t count)
{
    const safetensors_tensor *t;
    DMNSP_TRY(find_for_read(f, name, count, &t));
    if (t->dtype == SAFETENSORS_I64)
        return read_tensor_bytes(f, t, 0, count, out);
    if (t->dtype != SAFETENSORS_I32)
        return dmnsp_fail("safetensors: %s: tensor '%s' has dtype %s, expected I32 or I64", f->path, name,
                          safetensors_dtype_name(t->dtype));
    /* Widen in place from the back (element i of the int32 data sits at
     * byte 4i, below the int64 slot 8i it moves to), so no temporary
     * buffer is needed. */
    unsigned char *bytes = (unsigned char *)out;
    DMNSP_TRY(read_tensor_bytes(f, t, 0, count, bytes));
    for (size_t i = count; i-- > 0;) {
        int32_t narrow;
        memcpy(&narrow, bytes + 4 * i, sizeof narrow);
        out[i] = narrow;
    }
    return 0;
}

int safetensors_read_i32(const safetensors_file *f, const char *name, int32_t *out, size_t count)
{
    const safetensors_tensor *t;
    DMNSP_TRY(find_for_read(f, name, count, &t));
    if (t->dtype == SAFETENSORS_I32)
        return read_tensor_bytes(f, t, 0, count, out);
    if (t->dtype != SAFETENSORS_I64)
        return dmnsp_fail("safetensors: %s: tensor '%s' has dtype %s, expected I32 or I64", f->path, name,
                          safetensors_dtype_name(t->dtype));
    int64_t *wide = malloc((count ? count : 1) * sizeof *wide);
    if (wide == NULL)
        return dmnsp_fail("safetensors: %s: out of memory reading tensor '%s'", f->path, name);
    int status = read_tensor_bytes(f, t, 0, count, wide);
    for (size_t i = 0; i < count && status == 0; i++) {
        if (wide[i] < INT32_MIN || wide[i] > INT32_MAX)
            status = dmnsp_fail("safetensors: %s: tensor '%s' element %zu = %" PRId64 " does not fit in int32",
                                f->path, name, i, wide[i]);
        else
            out[i] = (int32_t)wide[i];
    }
    free(wide);
    return status;
}

/* ---- writing ------------------------------------------------------------ */

typedef struct {
    char *name;
    safetensors_dtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    size_t count;
    const void *data;
} writer_entry;

struct safetensors_writer {
    writer_entry *entries;
    int count;
    int capacity;
    char **metadata_keys;
    char **metadata_values;
    int metadata_count;
};

int safetensors_writer_create(safetensors_writer **writer)
{
    *writer = calloc(1, sizeof **writer);
    if (*writer == NULL)
        return dmnsp_fail("safetensors writer: out of memory");
    return 0;
}

void safetensors_writer_free(safetensors_writer *w)
{
    if (w == NULL)
        return;
    for (int i = 0; i < w->count; i++)
        free(w->entries[i].name);
    for (int i = 0; i < w->metadata_count; i++) {
        free(w->metadata_keys[i]);
        free(w->metadata_values[i]);
    }
    free(w->entries);
    free(w->metadata_keys);
    free(w->metadata_values);
    free(w);
}

static int writer_add(safetensors_writer *w, const char *name, safetensors_dtype dtype, int ndim,
                      const int64_t *shape, const void *data)
{
    if (ndim < 0 || ndim > SAFETENSORS_MAX_DIMS)
        return dmnsp_fail("safetensors writer: tensor '%s': %d dimensions, expected 0 to %d", name, ndim,
                          SAFETENSORS_MAX_DIMS);
    if (strncmp(name, "__", 2) == 0)
        return dmnsp_fail("safetensors writer: tensor name '%s' must not start with \"__\"", name);
    for (int i = 0; i < w->count; i++) {
        if (strcmp(w->entries[i].name, name) == 0)
            return dmnsp_fail("safetensors writer: tensor '%s' added twice", name);
    }
    if (w->count == w->capacity) {
        int capacity = w->capacity ? 2 * w->capacity : 64;
        writer_entry *grown = realloc(w->entries, (size_t)capacity * sizeof *grown);
        if (grown == NULL)
            return dmnsp_fail("safetensors writer: out of memory");
        w->entries = grown;
        w->capacity = capacity;
    }
    writer_entry *e = &w->entries[w->count];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (e->name == NULL)
        return dmnsp_fail("safetensors writer: out of memory");
    e->dtype = dtype;
    e->ndim = ndim;
    e->count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            free(e->name);
            return dmnsp_fail("safetensors writer: tensor '%s': negative dimension %" PRId64, name, shape[i]);
        }
        e->shape[i] = shape[i];
        e->count *= (size_t)shape[i];
    }
    e->data = data;
    w->count++;
    return 0;
}

int safetensors_writer_add_f32(safetensors_writer *w, const char *name, int ndim, const int64_t *shape,
                               const float *data)
{
    return writer_add(w, name, SAFETENSORS_F32, ndim, shape, data);
}

int safetensors_writer_add_i32(safetensors_writer *w, const char *name, int ndim, const int64_t *shape,
                               const int32_t *data)
{
    return writer_add(w, name, SAFETENSORS_I32, ndim, shape, data);
}

int safetensors_writer_add_metadata(safetensors_writer *w, const char *key, const char *value)
{
    char **keys = realloc(w->metadata_keys, ((size_t)w->metadata_count + 1) * sizeof *keys);
    if (keys == NULL)
        return dmnsp_fail("safetensors writer: out of memory");
    w->metadata_keys = keys;
    char **values = realloc(w->metadata_values, ((size_t)w->metadata_count + 1) * sizeof *values);
    if (values == NULL)
        return dmnsp_fail("safetensors writer: out of memory");
    w->metadata_values = values;
    keys[w->metadata_count] = strdup(key);
    values[w->metadata_count] = strdup(value);
    w->metadata_count++;
    if (keys[w->metadata_count - 1] == NULL || values[w->metadata_count - 1] == NULL)
        return dmnsp_fail("safetensors writer: out of memory");
    return 0;
}

/* Growable text for the JSON header. */
typedef struct {
    char *data;
    size_t length;
    size_t capacity;
    int failed;
} text_buffer;

static void text_append(text_buffer *b, const char *bytes, size_t n)
{
    if (b->failed)
        return;
    if (b->length + n + 1 > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 4096;
        while (b->length + n + 1 > capacity)
            capacity *= 2;
        char *grown = realloc(b->data, capacity);
        if (grown == NULL) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, bytes, n);
    b->length += n;
    b->data[b->length] = '\0';
}

static void text_printf(text_buffer *b, const char *fmt, ...) DMNSP_PRINTF(2, 3);

static void text_printf(text_buffer *b, const char *fmt, ...)
{
    char small[256];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(small, sizeof small, fmt, args);
    va_end(args);
    if (n < 0 || (size_t)n >= sizeof small) {
        b->failed = 1;
        return;
    }
    text_append(b, small, (size_t)n);
}

static void text_json_string(text_buffer *b, const char *s)
{
    text_append(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char escaped[2] = {'\\', (char)*c};
            text_append(b, escaped, 2);
        } else if (*c < 0x20) {
            text_printf(b, "\\u%04x", *c);
        } else {
            text_append(b, (const char *)c, 1);
        }
    }
    text_append(b, "\"", 1);
}

static int build_header(const safetensors_writer *w, text_buffer *b)
{
    uint64_t offset = 0;
    text_append(b, "{", 1);
    if (w->metadata_count > 0) {
        text_append(b, "\"__metadata__\":{", 16);
        for (int i = 0; i < w->metadata_count; i++) {
            if (i)
                text_append(b, ",", 1);
            text_json_string(b, w->metadata_keys[i]);
            text_append(b, ":", 1);
            text_json_string(b, w->metadata_values[i]);
        }
        text_append(b, "}", 1);
    }
    for (int i = 0; i < w->count; i++) {
        const writer_entry *e = &w->entries[i];
        uint64_t bytes = (uint64_t)e->count * dtype_size(e->dtype);
        if (i || w->metadata_count > 0)
            text_append(b, ",", 1);
        text_json_string(b, e->name);
        text_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", safetensors_dtype_name(e->dtype));
        for (int d = 0; d < e->ndim; d++)
            text_printf(b, "%s%" PRId64, d ? "," : "", e->shape[d]);
        text_printf(b, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", offset, offset + bytes);
        offset += bytes;
    }
    text_append(b, "}", 1);
    /* Pad with spaces so the data section starts 8-byte aligned. */
    while (!b->failed && (b->length % 8) != 0)
        text_append(b, " ", 1);
    if (b->failed)
        return dmnsp_fail("out of memory building the header");
    return 0;
}

static int write_all(FILE *out, const void *data, size_t bytes)
{
    if (bytes > 0 && fwrite(data, 1, bytes, out) != bytes)
        return dmnsp_fail("write failed: %s", strerror(errno));
    return 0;
}

int safetensors_writer_write(safetensors_writer *w, const char *path)
{
    text_buffer header = {0};
    char *temporary = NULL;
    FILE *out = NULL;
    int status = build_header(w, &header);

    if (status == 0) {
        size_t n = strlen(path) + 32;
        temporary = malloc(n);
        if (temporary == NULL)
            status = dmnsp_fail("out of memory");
        else
            snprintf(temporary, n, "%s.tmp.%ld", path, (long)getpid());
    }
    if (status == 0) {
        out = fopen(temporary, "wb");
        if (out == NULL)
            status = dmnsp_fail("cannot write %s: creating the temporary file %s failed: %s", path, temporary,
                                strerror(errno));
    }
    if (status == 0) {
        unsigned char length_bytes[8];
        uint64_t length = header.length;
        for (int i = 0; i < 8; i++)
            length_bytes[i] = (unsigned char)(length >> (8 * i));
        status = write_all(out, length_bytes, 8);
        if (status == 0)
            status = write_all(out, header.data, header.length);
        for (int i = 0; i < w->count && status == 0; i++)
            status = write_all(out, w->entries[i].data, w->entries[i].count * dtype_size(w->entries[i].dtype));
    }
    if (out != NULL) {
        if (fflush(out) != 0 && status == 0)
            status = dmnsp_fail("write failed: %s", strerror(errno));
        if (status == 0 && fsync(fileno(out)) != 0)
            status = dmnsp_fail("fsync failed: %s", strerror(errno));
        if (fclose(out) != 0 && status == 0)
            status = dmnsp_fail("close failed: %s", strerror(errno));
    }
    if (status == 0 && rename(temporary, path) != 0)
        status = dmnsp_fail("cannot rename %s to the final name: %s", temporary, strerror(errno));
    if (status != 0 && temporary != NULL)
        remove(temporary);

    free(temporary);
    free(header.data);
    if (status != 0)
        return dmnsp_fail_prefix("safetensors: writing %s", path);
    return 0;
}
