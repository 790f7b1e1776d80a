/* safetensors: writer/reader round trip, F16/BF16 conversion against
 * hand-computed bit patterns, integer tensors, and rejection of truncated,
 * overlapping, mis-shaped and malformed files. */
#include "dmnsp/error.h"
#include "dmnsp/safetensors.h"
#include "test_util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes a safetensors file from a JSON header and raw data bytes. */
static void write_raw(const char *path, const char *header, const void *data, size_t data_bytes)
{
    size_t header_bytes = strlen(header);
    size_t total = 8 + header_bytes + data_bytes;
    unsigned char *buffer = malloc(total);
    for (int i = 0; i < 8; i++)
        buffer[i] = (unsigned char)((uint64_t)header_bytes >> (8 * i));
    memcpy(buffer + 8, header, header_bytes);
    if (data_bytes)
        memcpy(buffer + 8 + header_bytes, data, data_bytes);
    CHECK_OK(test_write_file(path, buffer, total));
    free(buffer);
}

static void test_round_trip(void)
{
    float weight[2 * 3] = {1.5f, -2.25f, 3.0f, 0.0f, 1e-30f, -7.125f};
    float scalar = 4.6052f;
    int32_t ids[4] = {49406, 320, -5, 49407};
    int64_t weight_shape[2] = {2, 3};
    int64_t ids_shape[1] = {4};

    safetensors_writer *w;
    CHECK_OK(safetensors_writer_create(&w));
    CHECK_OK(safetensors_writer_add_f32(w, "layer.weight", 2, weight_shape, weight));
    CHECK_OK(safetensors_writer_add_f32(w, "logit_scale", 0, NULL, &scalar));
    CHECK_OK(safetensors_writer_add_i32(w, "ids \"quoted\"", 1, ids_shape, ids));
    CHECK_OK(safetensors_writer_add_metadata(w, "format", "pt"));
    CHECK_FAILS_WITH(safetensors_writer_add_f32(w, "logit_scale", 0, NULL, &scalar), "added twice");
    CHECK_FAILS_WITH(safetensors_writer_add_f32(w, "__metadata__", 0, NULL, &scalar), "must not start");
    CHECK_OK(safetensors_writer_write(w, "round_trip.safetensors"));
    safetensors_writer_free(w);

    safetensors_file *f;
    CHECK_OK(safetensors_open("round_trip.safetensors", &f));
    if (f == NULL)
        return;
    CHECK_EQ_INT(safetensors_count(f), 3);
    CHECK(strcmp(safetensors_at(f, 0)->name, "layer.weight") == 0);
    const char *format = safetensors_metadata(f, "format");
    CHECK(format != NULL);
    if (format != NULL)
        CHECK(strcmp(format, "pt") == 0);
    CHECK(safetensors_metadata(f, "missing") == NULL);

    const safetensors_tensor *t = safetensors_find(f, "layer.weight");
    CHECK(t != NULL);
    if (t != NULL) {
        CHECK_EQ_INT(t->dtype, SAFETENSORS_F32);
        CHECK_EQ_INT(t->ndim, 2);
        CHECK_EQ_INT(t->shape[0], 2);
        CHECK_EQ_INT(t->shape[1], 3);
        CHECK_EQ_INT(t->count, 6);
    }
    CHECK(safetensors_find(f, "nope") == NULL);

    float read_weight[6] = {0};
    CHECK_OK(safetensors_read_f32(f, "layer.weight", read_weight, 6));
    CHECK(memcmp(read_weight, weight, sizeof weight) == 0);
    CHECK_OK(safetensors_read_f32_shape(f, "layer.weight", 2, weight_shape, read_weight));

    float read_scalar = 0;
    CHECK_OK(safetensors_read_f32(f, "logit_scale", &read_scalar, 1));
    CHECK(read_scalar == scalar);
    CHECK_EQ_INT(safetensors_find(f, "logit_scale")->ndim, 0);

    int32_t read_ids[4] = {0};
    CHECK_OK(safetensors_read_i32(f, "ids \"quoted\"", read_ids, 4));
    CHECK(memcmp(read_ids, ids, sizeof ids) == 0);
    int64_t wide_ids[4] = {0};
    CHECK_OK(safetensors_read_i64(f, "ids \"quoted\"", wide_ids, 4));
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(wide_ids[i], ids[i]);

    float *allocated = NULL;
    size_t allocated_count = 0;
    CHECK_OK(safetensors_read_f32_alloc(f, "layer.weight", &allocated, &allocated_count));
    CHECK_EQ_INT(allocated_count, 6);
    if (allocated != NULL)
        CHECK(memcmp(allocated, weight, sizeof weight) == 0);
    free(allocated);

    /* Errors while reading name the tensor and both shapes. */
    CHECK_FAILS_WITH(safetensors_read_f32(f, "layer.weight", read_weight, 5), "[2, 3]");
    CHECK_FAILS_WITH(safetensors_read_f32(f, "layer.weight", read_weight, 5), "expected 5 elements");
    int64_t wrong_shape[2] = {3, 2};
    CHECK_FAILS_WITH(safetensors_read_f32_shape(f, "layer.weight", 2, wrong_shape, read_weight),
                     "tensor 'layer.weight' has shape [2, 3], expected [3, 2]");
    CHECK_FAILS_WITH(safetensors_read_f32(f, "missing.bias", read_weight, 6), "tensor 'missing.bias' not found");
    CHECK_FAILS_WITH(safetensors_read_f32(f, "missing.bias", read_weight, 6), "round_trip.safetensors");
    CHECK_FAILS_WITH(safetensors_read_f32(f, "ids \"quoted\"", read_weight, 4), "has dtype I32");
    CHECK_FAILS_WITH(safetensors_read_i32(f, "layer.weight", read_ids, 6), "expected I32 or I64");
    safetensors_close(f);

    /* The data section starts 8-byte aligned. */
    FILE *raw = fopen("round_trip.safetensors", "rb");
    unsigned char length_bytes[8] = {0};
    CHECK(raw != NULL);
    if (raw != NULL) {
        CHECK_EQ_INT(fread(length_bytes, 1, 8, raw), 8);
        fclose(raw);
    }
    CHECK_EQ_INT(length_bytes[0] % 8, 0);
}

static void test_half_conversion(void)
{
    /* IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
    const struct {
        uint16_t bits;
        float value;
    } f16[] = {
        {0x0000, 0.0f},           {0x3c00, 1.0f},          {0xc000, -2.0f},
        {0x3555, 0.333251953125f}, {0x7bff, 65504.0f},     {0x0400, 6.103515625e-05f},
        {0x0001, 5.9604644775390625e-08f} /* smallest subnormal 2^-24 */,
        {0x03ff, 6.097555160522461e-05f} /* largest subnormal 1023 * 2^-24 */,
        {0x8001, -5.9604644775390625e-08f},
    };
    for (size_t i = 0; i < sizeof f16 / sizeof f16[0]; i++) {
        float got = safetensors_f16_to_f32(f16[i].bits);
        if (got != f16[i].value)
            test_report_failure(__FILE__, __LINE__, "f16 0x%04x -> %.9g, expected %.9g", f16[i].bits, got,
                                f16[i].value);
    }
    CHECK(isinf(safetensors_f16_to_f32(0x7c00)));
    CHECK(safetensors_f16_to_f32(0x7c00) > 0);
    CHECK(isinf(safetensors_f16_to_f32(0xfc00)));
    CHECK(safetensors_f16_to_f32(0xfc00) < 0);
    CHECK(isnan(safetensors_f16_to_f32(0x7e00)));
    CHECK(signbit(safetensors_f16_to_f32(0x8000)));

    /* bfloat16: the upper 16 bits of a binary32. */
    CHECK(safetensors_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(safetensors_bf16_to_f32(0xc040) == -3.0f);
    CHECK(safetensors_bf16_to_f32(0x4049) == 3.140625f);
    CHECK(safetensors_bf16_to_f32(0x0001) == 9.183549615799121e-41f);

    /* Whole tensors through the reader: F16 [3] then BF16 [2]. */
    uint16_t data[5] = {0x3c00, 0xc000, 0x3555, 0x3f80, 0xc040};
    write_raw("half.safetensors",
              "{\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},"
              "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[6,10]}}",
              data, sizeof data);
    safetensors_file *f;
    CHECK_OK(safetensors_open("half.safetensors", &f));
    if (f == NULL)
        return;
    float h[3], b[2];
    CHECK_OK(safetensors_read_f32(f, "h", h, 3));
    CHECK_OK(safetensors_read_f32(f, "b", b, 2));
    CHECK(h[0] == 1.0f);
    CHECK(h[1] == -2.0f);
    CHECK(h[2] == 0.333251953125f);
    CHECK(b[0] == 1.0f);
    CHECK(b[1] == -3.0f);
    safetensors_close(f);
}

static void check_open_fails(const char *path, const char *needle)
{
    safetensors_file *f = NULL;
    CHECK_FAILS_WITH(safetensors_open(path, &f), needle);
    CHECK(f == NULL);
    if (f != NULL)
        safetensors_close(f);
}

static void test_bad_files(void)
{
    float data[4] = {1, 2, 3, 4};

    /* Shorter than the length prefix, and a length beyond the file. */
    CHECK_OK(test_write_file("short.safetensors", "abc", 3));
    check_open_fails("short.safetensors", "too short");
    write_raw("long_header.safetensors", "{}", NULL, 0);
    FILE *f = fopen("long_header.safetensors", "r+b");
    if (f != NULL) {
        unsigned char big[8] = {0x00, 0x10, 0, 0, 0, 0, 0, 0};
        fwrite(big, 1, 8, f);
        fclose(f);
    }
    check_open_fails("long_header.safetensors", "header length 4096 goes past the end of the file");
    check_open_fails("long_header.safetensors", "long_header.safetensors");

    /* Truncated: the data section ends before the last tensor's end offset. */
    write_raw("truncated.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", data, 12);
    check_open_fails("truncated.safetensors", "tensor 'w': data_offsets [0, 16] go past the data section of 12 bytes");

    write_raw("overlap.safetensors",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
              data, 16);
    check_open_fails("overlap.safetensors", "overlap");

    /* A dtype the format defines but dmnsp does not read opens; reading it
     * fails. A dtype the format does not define fails the open. */
    write_raw("u8.safetensors", "{\"counts\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", data, 4);
    safetensors_file *u8 = NULL;
    CHECK_OK(safetensors_open("u8.safetensors", &u8));
    if (u8 != NULL) {
        float values[4];
        int32_t ids[4];
        CHECK_FAILS_WITH(safetensors_read_f32(u8, "counts", values, 4), "tensor 'counts' has dtype U8");
        CHECK_FAILS_WITH(safetensors_read_i32(u8, "counts", ids, 4), "tensor 'counts' has dtype U8");
        safetensors_close(u8);
    }
    write_raw("dtype.safetensors", "{\"counts\":{\"dtype\":\"Q4\",\"shape\":[4],\"data_offsets\":[0,4]}}", data, 4);
    check_open_fails("dtype.safetensors", "tensor 'counts': unknown dtype Q4");

    write_raw("mismatch.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", data, 16);
    check_open_fails("mismatch.safetensors", "tensor 'w': shape [2, 3] of F32 needs 24 bytes, data_offsets give 16");

    write_raw("malformed.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}", data, 16);
    check_open_fails("malformed.safetensors", "header is not valid JSON");
    write_raw("trailing_comma.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4,],\"data_offsets\":[0,16]}}", data,
              16);
    check_open_fails("trailing_comma.safetensors", "JSON byte");
    write_raw("array.safetensors", "[1, 2]", NULL, 0);
    check_open_fails("array.safetensors", "expected an object");
    write_raw("no_offsets.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4]}}", data, 16);
    check_open_fails("no_offsets.safetensors", "tensor 'w': \"data_offsets\" must be an array");
    write_raw("negative.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", data, 16);
    check_open_fails("negative.safetensors", "shape entry 0 is not a non-negative integer");
    write_raw("metadata.safetensors", "{\"__metadata__\":{\"epoch\":3}}", NULL, 0);
    check_open_fails("metadata.safetensors", "\"__metadata__\" entry \"epoch\" is a number");
    check_open_fails("does_not_exist.safetensors", "cannot open");

    /* Header padded with spaces (as writers align the data) and an empty
     * tensor are valid. */
    write_raw("padded.safetensors",
              "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
              "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[16,16]}}   ",
              data, 16);
    safetensors_file *ok = NULL;
    CHECK_OK(safetensors_open("padded.safetensors", &ok));
    if (ok != NULL) {
        float out[4];
        CHECK_OK(safetensors_read_f32(ok, "w", out, 4));
        CHECK(out[3] == 4.0f);
        CHECK_OK(safetensors_read_f32(ok, "e", out, 0));
        safetensors_close(ok);
    }
}

/* F16/BF16 tensors written by torch, against torch's float32 reading of
 * the same values (tests/safetensors/make_fixture.py). */
static void test_torch_fixture(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/safetensors/half_precision.safetensors", test_env("DMNSP_TEST_DATA", "."));
    safetensors_file *f = NULL;
    CHECK_OK(safetensors_open(path, &f));
    if (f == NULL)
        return;
    float converted[15], expected[15];
    CHECK_OK(safetensors_read_f32(f, "values_f16", converted, 15));
    CHECK_OK(safetensors_read_f32(f, "values_f16_as_f32", expected, 15));
    test_compare_floats("f16 vs torch", converted, expected, 15, 0.0, 0.0);
    CHECK_OK(safetensors_read_f32(f, "values_bf16", converted, 15));
    CHECK_OK(safetensors_read_f32(f, "values_bf16_as_f32", expected, 15));
    test_compare_floats("bf16 vs torch", converted, expected, 15, 0.0, 0.0);
    CHECK(expected[0] != 0.0f);

    int32_t ids[4] = {0};
    CHECK_OK(safetensors_read_i32(f, "ids", ids, 4));
    const int32_t expected_ids[4] = {49406, 320, 2368, 49407};
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(ids[i], expected_ids[i]);
    safetensors_close(f);
}

int main(void)
{
    test_torch_fixture();
    test_round_trip();
    test_half_conversion();
    test_bad_files();
    return test_finish("test_safetensors");
}
