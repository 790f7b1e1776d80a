/* Image tests: PNG and JPEG decoding, PIL-equal bicubic resizing and CLIP
 * preprocessing against fixtures written by make_image_fixtures.py with
 * Debian's PIL, plus errors for files that are not valid images. */
#include "dmnsp/error.h"
#include "dmnsp/image.h"
#include "fixture_file.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *source_names[] = {"noise_rgb", "checker_rgb", "noise_gray"};
static const int target_sizes[][2] = {{53, 41}, {13, 9}, {50, 11}, {8, 60}, {3, 2}};

/* Counts differing bytes; fails when more than 1% differ or any differs by
 * more than 1. */
static void check_uint8_close(const char *name, const unsigned char *got, const unsigned char *expected, size_t n)
{
    size_t differing = 0;
    int largest = 0;
    size_t largest_at = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)expected[i]);
        if (d != 0)
            differing++;
        if (d > largest) {
            largest = d;
            largest_at = i;
        }
    }
    if (differing > 0)
        printf("%s: %zu of %zu bytes differ, largest difference %d at %zu (got %d, expected %d)\n", name, differing,
               n, largest, largest_at, got[largest_at], expected[largest_at]);
    CHECK(differing * 100 <= n);
    CHECK(largest <= 1);
}

static void test_png_decode_matches_pil(const fixture_file *fixtures, const char *folder)
{
    for (int s = 0; s < 3; s++) {
        char path[2048], key[128];
        snprintf(path, sizeof path, "%s/source_%s.png", folder, source_names[s]);
        snprintf(key, sizeof key, "%s/source", source_names[s]);
        int rank = 0;
        long shape[4];
        const unsigned char *expected = fixture_tensor(fixtures, key, &rank, shape);
        CHECK(expected != NULL);
        if (expected == NULL)
            continue;
        int channels = rank == 3 ? (int)shape[2] : 1;

        image_rgb image;
        CHECK_OK(image_decode_file(path, &image));
        CHECK_EQ_INT(image.height, shape[0]);
        CHECK_EQ_INT(image.width, shape[1]);
        if (image.pixels == NULL || image.height != shape[0] || image.width != shape[1])
            continue;
        size_t pixels = (size_t)image.width * (size_t)image.height;
        size_t mismatches = 0;
        for (size_t i = 0; i < pixels; i++)
            for (int c = 0; c < 3; c++)
                mismatches += image.pixels[3 * i + c] != expected[i * channels + (channels == 1 ? 0 : c)];
        if (mismatches)
            printf("%s: %zu decoded bytes differ from PIL\n", path, mismatches);
        CHECK_EQ_INT(mismatches, 0);
        image_free(&image);
    }
}

static void test_resize_matches_pil(const fixture_file *fixtures)
{
    for (int s = 0; s < 3; s++) {
        char key[128];
        snprintf(key, sizeof key, "%s/source", source_names[s]);
        int rank = 0;
        long shape[4];
        const unsigned char *source = fixture_tensor(fixtures, key, &rank, shape);
        CHECK(source != NULL);
        if (source == NULL)
            continue;
        int height = (int)shape[0], width = (int)shape[1];
        int channels = rank == 3 ? (int)shape[2] : 1;

        for (size_t t = 0; t < sizeof target_sizes / sizeof target_sizes[0]; t++) {
            int out_width = target_sizes[t][0], out_height = target_sizes[t][1];
            snprintf(key, sizeof key, "%s/resize_%dx%d", source_names[s], out_width, out_height);
            const unsigned char *expected = fixture_tensor(fixtures, key, &rank, shape);
            CHECK(expected != NULL);
            if (expected == NULL)
                continue;
            CHECK_EQ_INT(shape[0], out_height);
            CHECK_EQ_INT(shape[1], out_width);
            size_t n = (size_t)out_width * (size_t)out_height * (size_t)channels;
            unsigned char *got = malloc(n);
            CHECK_OK(image_resize_bicubic(source, width, height, channels, got, out_width, out_height));
            check_uint8_close(key, got, expected, n);

            /* A window of the resize equals the same pixels of the full one. */
            if (out_width > 2 && out_height > 2) {
                int wx = 1, wy = 1, ww = out_width - 2, wh = out_height - 2;
                unsigned char *window = malloc((size_t)ww * (size_t)wh * (size_t)channels);
                CHECK_OK(image_resize_bicubic_window(source, width, height, channels, out_width, out_height, wx,
                                                     wy, ww, wh, window));
                size_t mismatches = 0;
                for (int y = 0; y < wh; y++)
                    for (int x = 0; x < ww * channels; x++)
                        mismatches += window[(size_t)y * ww * channels + x] !=
                                      got[(size_t)(y + wy) * out_width * channels + (size_t)wx * channels + x];
                CHECK_EQ_INT(mismatches, 0);
                free(window);
            }
            free(got);
        }
    }
}

static void test_preprocess_matches_numpy(const fixture_file *fixtures)
{
    for (int s = 0; s < 3; s++) {
        char key[128];
        snprintf(key, sizeof key, "%s/source", source_names[s]);
        int rank = 0;
        long shape[4];
        const unsigned char *source = fixture_tensor(fixtures, key, &rank, shape);
        snprintf(key, sizeof key, "%s/preprocess_24", source_names[s]);
        long expected_shape[4];
        int expected_rank = 0;
        /* Tensors follow each other unpadded, so float data may be unaligned. */
        const void *expected_bytes = fixture_tensor(fixtures, key, &expected_rank, expected_shape);
        CHECK(source != NULL);
        CHECK(expected_bytes != NULL);
        if (source == NULL || expected_bytes == NULL)
            continue;
        CHECK_EQ_INT(expected_shape[0], 3);
        CHECK_EQ_INT(expected_shape[1], 24);
        int channels = rank == 3 ? (int)shape[2] : 1;
        float expected[3 * 24 * 24], got[3 * 24 * 24];
        memcpy(expected, expected_bytes, sizeof expected);
        CHECK_OK(image_preprocess(source, (int)shape[1], (int)shape[0], channels, 24, got));
        test_compare_floats(key, got, expected, 3 * 24 * 24, 1e-6, 0);
    }
}

static void test_jpeg_decode_matches_pil(const fixture_file *fixtures, const char *folder)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/source_photo.jpg", folder);
    int rank = 0;
    long shape[4];
    const unsigned char *expected = fixture_tensor(fixtures, "photo_jpeg/decoded", &rank, shape);
    CHECK(expected != NULL);
    image_rgb image;
    CHECK_OK(image_decode_file(path, &image));
    if (expected == NULL || image.pixels == NULL)
        return;
    CHECK_EQ_INT(image.height, shape[0]);
    CHECK_EQ_INT(image.width, shape[1]);
    check_uint8_close("jpeg decode", image.pixels, expected, (size_t)shape[0] * shape[1] * 3);
    image_free(&image);
}

/* Palette, gray + alpha, RGBA, 1-bit, grayscale JPEG and Adobe CMYK JPEG
 * files decode to the RGB that PIL's convert("RGB") gives. */
static void test_color_types_match_pil(const fixture_file *fixtures, const char *folder)
{
    static const char *names[] = {"palette.png", "gray_alpha.png", "rgba.png", "bilevel.png", "gray.jpg", "cmyk.jpg"};
    for (size_t v = 0; v < sizeof names / sizeof names[0]; v++) {
        char path[2048], key[128];
        snprintf(path, sizeof path, "%s/variant_%s", folder, names[v]);
        snprintf(key, sizeof key, "variant/%s", names[v]);
        int rank = 0;
        long shape[4];
        const unsigned char *expected = fixture_tensor(fixtures, key, &rank, shape);
        CHECK(expected != NULL);
        image_rgb image;
        CHECK_OK(image_decode_file(path, &image));
        if (expected == NULL || image.pixels == NULL)
            continue;
        CHECK_EQ_INT(image.height, shape[0]);
        CHECK_EQ_INT(image.width, shape[1]);
        size_t n = (size_t)shape[0] * (size_t)shape[1] * 3;
        size_t mismatches = 0;
        for (size_t i = 0; i < n; i++)
            mismatches += image.pixels[i] != expected[i];
        if (mismatches)
            printf("%s: %zu of %zu bytes differ from PIL\n", path, mismatches, n);
        CHECK_EQ_INT(mismatches, 0);
        image_free(&image);
    }
}

static void test_crop_and_resize_sizes(void)
{
    /* Python: int(round(0.5)) = 0, round(1.5) = 2, round(2.5) = 2, round(3.5) = 4. */
    CHECK_EQ_INT(image_center_crop_offset(224, 224), 0);
    CHECK_EQ_INT(image_center_crop_offset(225, 224), 0);
    CHECK_EQ_INT(image_center_crop_offset(227, 224), 2);
    CHECK_EQ_INT(image_center_crop_offset(229, 224), 2);
    CHECK_EQ_INT(image_center_crop_offset(231, 224), 4);
    CHECK_EQ_INT(image_center_crop_offset(298, 224), 37);

    int w = 0, h = 0;
    image_resized_size(640, 480, 224, &w, &h);
    CHECK_EQ_INT(w, 298);
    CHECK_EQ_INT(h, 224);
    image_resized_size(333, 500, 224, &w, &h);
    CHECK_EQ_INT(w, 224);
    CHECK_EQ_INT(h, 336); /* int(224 * 500 / 333) = int(336.33) */
    image_resized_size(28, 28, 32, &w, &h);
    CHECK_EQ_INT(w, 32);
    CHECK_EQ_INT(h, 32);
}

static void test_bad_files_fail_with_name(const char *folder)
{
    image_rgb image;
    const char *text = "this is plain text, not an image\n";
    CHECK_OK(test_write_file("not_an_image.jpg", text, strlen(text)));
    CHECK_FAILS_WITH(image_decode_file("not_an_image.jpg", &image), "not_an_image.jpg: not a JPEG or PNG file");

    CHECK_OK(test_write_file("empty.png", "", 0));
    CHECK_FAILS_WITH(image_decode_file("empty.png", &image), "empty.png: empty file");

    CHECK_FAILS_WITH(image_decode_file("missing.png", &image), "missing.png: cannot open image");

    /* The first half of a valid JPEG and of a valid PNG. */
    const char *sources[] = {"source_photo.jpg", "source_noise_rgb.png"};
    const char *truncated[] = {"truncated.jpg", "truncated.png"};
    for (int i = 0; i < 2; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", folder, sources[i]);
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL);
        if (f == NULL)
            continue;
        unsigned char buffer[8192];
        size_t bytes = fread(buffer, 1, sizeof buffer, f);
        fclose(f);
        CHECK_OK(test_write_file(truncated[i], buffer, bytes / 2));
        CHECK_FAILS_WITH(image_decode_file(truncated[i], &image), truncated[i]);
        CHECK_STR_CONTAINS(dmnsp_last_error(), "truncated");
    }

    /* A JPEG start-of-image marker followed by a frame header that claims
     * zero components. */
    const unsigned char corrupt[] = {0xff, 0xd8, 0xff, 0xc0, 0x00, 0x08, 0x08, 0x00, 0x10, 0x00, 0x10, 0x00,
                                     0xff, 0xd9};
    CHECK_OK(test_write_file("corrupt.jpg", corrupt, sizeof corrupt));
    CHECK_FAILS_WITH(image_decode_file("corrupt.jpg", &image), "corrupt.jpg: corrupt JPEG file");

    /* A PNG signature followed by a header chunk with a wrong checksum. */
    const unsigned char bad_png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                                     0, 0, 0, 4, 0, 0, 0, 4, 8, 2, 0, 0, 0, 1, 2, 3, 4};
    CHECK_OK(test_write_file("bad_checksum.png", bad_png, sizeof bad_png));
    CHECK_FAILS_WITH(image_decode_file("bad_checksum.png", &image), "bad_checksum.png: corrupt PNG file");
}

static void test_write_read_round_trip(void)
{
    unsigned char pixels[5 * 7 * 3];
    for (int i = 0; i < 5 * 7 * 3; i++)
        pixels[i] = (unsigned char)(i * 13);
    CHECK_OK(image_write_png("round_trip.png", pixels, 7, 5, 3));
    image_rgb image;
    CHECK_OK(image_decode_file("round_trip.png", &image));
    CHECK_EQ_INT(image.width, 7);
    CHECK_EQ_INT(image.height, 5);
    if (image.pixels != NULL)
        CHECK(memcmp(image.pixels, pixels, sizeof pixels) == 0);
    image_free(&image);

    unsigned char flat[16 * 16];
    memset(flat, 90, sizeof flat);
    CHECK_OK(image_write_jpeg("round_trip.jpg", flat, 16, 16, 1, 95));
    CHECK_OK(image_decode_file("round_trip.jpg", &image));
    CHECK_EQ_INT(image.width, 16);
    if (image.pixels != NULL) {
        int largest = 0;
        for (int i = 0; i < 16 * 16 * 3; i++)
            largest = abs(image.pixels[i] - 90) > largest ? abs(image.pixels[i] - 90) : largest;
        CHECK(largest <= 1);
    }
    image_free(&image);
}

int main(void)
{
    char folder[1024], path[2048];
    snprintf(folder, sizeof folder, "%s/tests/image", test_env("DMNSP_SOURCE_DIR", "."));
    snprintf(path, sizeof path, "%s/image_fixtures.safetensors", folder);
    fixture_file fixtures;
    if (fixture_open(&fixtures, path) != 0)
        return 1;

    test_png_decode_matches_pil(&fixtures, folder);
    test_resize_matches_pil(&fixtures);
    test_preprocess_matches_numpy(&fixtures);
    test_jpeg_decode_matches_pil(&fixtures, folder);
    test_color_types_match_pil(&fixtures, folder);
    test_crop_and_resize_sizes();
    test_bad_files_fail_with_name(folder);
    test_write_read_round_trip();

    fixture_close(&fixtures);
    return test_finish("test_image");
}
