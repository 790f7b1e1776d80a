/* safetensors: reading and writing tensors in the safetensors format.
 *
 * File layout: an 8-byte little-endian header length N, N bytes of JSON
 * {name: {"dtype": D, "shape": [...], "data_offsets": [begin, end]}, ...,
 * optional "__metadata__": {string: string}}, then the data section with
 * every tensor in row-major little-endian order at its byte offsets.
 *
 * The reader checks the whole header when a file is opened: header length
 * within the file, well-formed JSON, known dtype, offsets inside the data
 * section, no two tensors overlapping, and shape product × dtype size equal
 * to the byte length. Floating-point tensors (F32, F16, BF16) are read as
 * float; integer tensors (I32, I64) as int32/int64. The format's other
 * dtypes (F64, U8, BOOL, ...) may sit in a file that is opened, but reading
 * such a tensor is an error naming it and its dtype, and a dtype the format
 * does not define fails the open. Tensor data is read on demand, so
 * opening a multi-GB file costs one header read.
 *
 * The writer collects named F32 and I32 tensors and writes the file
 * atomically: to "PATH.tmp.PID", then renamed over PATH.
 *
 * NOTE: data is assumed little-endian in memory (x86-64, AArch64); a
 * big-endian host would need byte swaps in the read and write paths.
 */
#ifndef DMNSP_SAFETENSORS_H
#define DMNSP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define SAFETENSORS_MAX_DIMS 8
/* Largest header accepted, in bytes (the format's reference limit). */
#define SAFETENSORS_MAX_HEADER_BYTES (100u * 1000u * 1000u)

typedef enum {
    SAFETENSORS_F32,
    SAFETENSORS_F16,
    SAFETENSORS_BF16,
    SAFETENSORS_I32,
    SAFETENSORS_I64,
    /* Accepted in a header, but reading them is an error. */
    SAFETENSORS_F64,
    SAFETENSORS_I8,
    SAFETENSORS_U8,
    SAFETENSORS_I16,
    SAFETENSORS_U16,
    SAFETENSORS_U32,
    SAFETENSORS_U64,
    SAFETENSORS_BOOL,
    SAFETENSORS_F8_E4M3,
    SAFETENSORS_F8_E5M2,
} safetensors_dtype;

/* One tensor as the header describes it. */
typedef struct {
    const char *name;
    safetensors_dtype dtype;
    int ndim; /* 0 for a scalar */
    int64_t shape[SAFETENSORS_MAX_DIMS];
    size_t count;      /* product of shape (1 for a scalar) */
    uint64_t begin;    /* byte offsets into the data section */
    uint64_t end;
} safetensors_tensor;

typedef struct safetensors_file safetensors_file;

/* ---- reading ------------------------------------------------------------ */

/* Opens PATH and validates its header. On success *FILE is owned by the
 * caller (safetensors_close). Errors name PATH and, where one is involved,
 * the tensor. */
int safetensors_open(const char *path, safetensors_file **file);
void safetensors_close(safetensors_file *file);

const char *safetensors_path(const safetensors_file *file);

/* Tensors in header order: index 0 .. count-1. The returned pointers stay
 * valid until safetensors_close. */
int safetensors_count(const safetensors_file *file);
const safetensors_tensor *safetensors_at(const safetensors_file *file, int index);
/* The tensor named NAME, or NULL (no error recorded). */
const safetensors_tensor *safetensors_find(const safetensors_file *file, const char *name);

/* String value of KEY in "__metadata__", or NULL. */
const char *safetensors_metadata(const safetensors_file *file, const char *key);

/* Reads tensor NAME (F32, F16 or BF16) into OUT[COUNT] as float. COUNT must
 * equal the tensor's element count; errors name the tensor, its shape and
 * the expected count, or report that the tensor is missing. */
int safetensors_read_f32(const safetensors_file *file, const char *name, float *out, size_t count);

/* Same as safetensors_read_f32, but the stored shape must equal
 * SHAPE[0..NDIM) exactly; a mismatch is an error naming the tensor and
 * both shapes. */
int safetensors_read_f32_shape(const safetensors_file *file, const char *name, int ndim, const int64_t *shape,
                               float *out);

/* Reads tensor NAME into a malloc'd float array (*OUT, *COUNT elements);
 * the caller frees it. COUNT may be NULL. */
int safetensors_read_f32_alloc(const safetensors_file *file, const char *name, float **out, size_t *count);

/* Reads an I32 or I64 tensor into int32 (values outside int32 are an
 * error) or an I32/I64 tensor into int64; COUNT as above. */
int safetensors_read_i32(const safetensors_file *file, const char *name, int32_t *out, size_t count);
int safetensors_read_i64(const safetensors_file *file, const char *name, int64_t *out, size_t count);

/* The dtype's name in the format: "F32", "F16", "BF16", "I32", "U8", ... */
const char *safetensors_dtype_name(safetensors_dtype dtype);

/* Formats SHAPE as "[a, b, c]" into BUFFER (always terminated); returns
 * BUFFER, for error messages. */
char *safetensors_format_shape(int ndim, const int64_t *shape, char *buffer, size_t size);

/* IEEE binary16 and bfloat16 bit patterns to float (exact). */
float safetensors_f16_to_f32(uint16_t bits);
float safetensors_bf16_to_f32(uint16_t bits);

/* ---- writing ------------------------------------------------------------ */

typedef struct safetensors_writer safetensors_writer;

int safetensors_writer_create(safetensors_writer **writer);
void safetensors_writer_free(safetensors_writer *writer);

/* Adds tensor NAME with SHAPE[0..NDIM) (NDIM 0 = scalar). The data is NOT
 * copied: DATA must stay valid until safetensors_writer_write returns.
 * Duplicate names and names starting with "__" are errors. */
int safetensors_writer_add_f32(safetensors_writer *writer, const char *name, int ndim, const int64_t *shape,
                               const float *data);
int safetensors_writer_add_i32(safetensors_writer *writer, const char *name, int ndim, const int64_t *shape,
                               const int32_t *data);
/* Adds a "__metadata__" string entry (both strings are copied). */
int safetensors_writer_add_metadata(safetensors_writer *writer, const char *key, const char *value);

/* Writes all tensors (in the order added) to PATH atomically. The writer
 * can be written again or freed afterwards. */
int safetensors_writer_write(safetensors_writer *writer, const char *path);

#endif
