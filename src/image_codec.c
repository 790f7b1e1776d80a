/* image: JPEG and PNG decoding to 8-bit RGB, and writing (see
 * include/dmnsp/image.h). libjpeg and libpng report fatal errors by calling
 * an error handler. Both handlers here record the message and longjmp back,
 * so a corrupt file becomes an error status instead of ending the process. */
#include "dmnsp/image.h"

#include "dmnsp/error.h"

#include <errno.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

/* Largest decoded image accepted, in pixels (about 16k × 16k). */
#define IMAGE_MAX_PIXELS (1L << 28)

void image_free(image_rgb *image)
{
    if (image == NULL)
        return;
    free(image->pixels);
    memset(image, 0, sizeof *image);
}

static int check_dimensions(const char *name, long width, long height)
{
    if (width <= 0 || height <= 0)
        return dmnsp_fail("%s: invalid image size %ldx%ld", name, width, height);
    if (width * height > IMAGE_MAX_PIXELS)
        return dmnsp_fail("%s: image size %ldx%ld exceeds the limit of %ld pixels", name, width, height,
                          (long)IMAGE_MAX_PIXELS);
    return 0;
}

/* ------------------------------------------------------------------------
 * JPEG
 * ------------------------------------------------------------------------ */

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    int truncated;
} jpeg_error_context;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_error_context *context = (jpeg_error_context *)cinfo->err;
    cinfo->err->format_message(cinfo, context->message);
    longjmp(context->jump, 1);
}

/* Warnings are silent, except running out of data: libjpeg would fill the
 * rest of the image with grey, and a truncated file must be an error. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        jpeg_error_context *context = (jpeg_error_context *)cinfo->err;
        context->truncated = 1;
        longjmp(context->jump, 1);
    }
    if (level < 0)
        cinfo->err->num_warnings++;
}

static void jpeg_silent_output(j_common_ptr cinfo)
{
    (void)cinfo;
}

/* Converts one row of CMYK samples to RGB as r = (255 - c)(255 - k) / 255.
 * Adobe files store the samples inverted. */
static void cmyk_row_to_rgb(const unsigned char *cmyk, unsigned char *rgb, int width, int inverted)
{
    for (int x = 0; x < width; x++) {
        int k = inverted ? cmyk[4 * x + 3] : 255 - cmyk[4 * x + 3];
        for (int c = 0; c < 3; c++) {
            int ink = inverted ? cmyk[4 * x + c] : 255 - cmyk[4 * x + c];
            rgb[3 * x + c] = (unsigned char)((ink * k + 127) / 255);
        }
    }
}

static int decode_jpeg(const unsigned char *data, size_t bytes, const char *name, image_rgb *out)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_error_context error;
    /* Written between setjmp and longjmp, so volatile. */
    unsigned char *volatile pixels = NULL;
    unsigned char *volatile cmyk_row = NULL;

    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&error.base);
    error.base.error_exit = jpeg_on_error;
    error.base.emit_message = jpeg_on_message;
    error.base.output_message = jpeg_silent_output;
    error.message[0] = '\0';
    error.truncated = 0;
    if (setjmp(error.jump) != 0) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(cmyk_row);
        if (error.truncated)
            return dmnsp_fail("%s: truncated JPEG file (%zu bytes end before the image is complete)", name, bytes);
        return dmnsp_fail("%s: corrupt JPEG file: %s", name, error.message);
    }

    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)bytes);
    jpeg_read_header(&cinfo, TRUE);

    int is_cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = is_cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);

    int width = (int)cinfo.output_width, height = (int)cinfo.output_height;
    if (check_dimensions(name, width, height) != 0) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    pixels = dmnsp_malloc((size_t)width * (size_t)height * 3, "decoded JPEG pixels");
    if (pixels == NULL) {
        jpeg_destroy_decompress(&cinfo);
        return dmnsp_fail_prefix("%s", name);
    }
    if (is_cmyk) {
        cmyk_row = dmnsp_malloc((size_t)width * 4, "JPEG CMYK row");
        if (cmyk_row == NULL) {
            jpeg_destroy_decompress(&cinfo);
            free(pixels);
            return dmnsp_fail_prefix("%s", name);
        }
    }

    while (cinfo.output_scanline < cinfo.output_height) {
        unsigned char *row = pixels + (size_t)cinfo.output_scanline * (size_t)width * 3;
        if (is_cmyk) {
            JSAMPROW target = cmyk_row;
            jpeg_read_scanlines(&cinfo, &target, 1);
            cmyk_row_to_rgb(cmyk_row, row, width, cinfo.saw_Adobe_marker);
        } else {
            JSAMPROW target = row;
            jpeg_read_scanlines(&cinfo, &target, 1);
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(cmyk_row);

    out->width = width;
    out->height = height;
    out->pixels = pixels;
    return 0;
}

/* ------------------------------------------------------------------------
 * PNG
 * ------------------------------------------------------------------------ */

typedef struct {
    const unsigned char *data;
    size_t bytes;
    size_t offset;
    int truncated;
    char message[256];
} png_memory_reader;

static void png_on_error(png_structp png, png_const_charp message)
{
    png_memory_reader *reader = png_get_error_ptr(png);
    snprintf(reader->message, sizeof reader->message, "%s", message);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp message)
{
    (void)png;
    (void)message;
}

static void png_read_memory(png_structp png, png_bytep target, png_size_t length)
{
    png_memory_reader *reader = png_get_io_ptr(png);
    if (length > reader->bytes - reader->offset) {
        reader->truncated = 1;
        png_error(png, "unexpected end of data");
    }
    memcpy(target, reader->data + reader->offset, length);
    reader->offset += length;
}

static int decode_png(const unsigned char *data, size_t bytes, const char *name, image_rgb *out)
{
    png_memory_reader reader = {data, bytes, 0, 0, ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, png_on_error, png_on_warning);
    if (png == NULL)
        return dmnsp_fail("%s: cannot create a PNG reader (out of memory)", name);
    png_infop info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        return dmnsp_fail("%s: cannot create a PNG reader (out of memory)", name);
    }
    /* Written between setjmp and longjmp, so volatile. */
    unsigned char *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;

    if (setjmp(png_jmpbuf(png)) != 0) {
        png_destroy_read_struct(&png, &info, NULL);
        free(pixels);
        free(rows);
        if (reader.truncated)
            return dmnsp_fail("%s: truncated PNG file (%zu bytes end before the image is complete)", name, bytes);
        return dmnsp_fail("%s: corrupt PNG file: %s", name, reader.message);
    }

    png_set_read_fn(png, &reader, png_read_memory);
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info);
    png_uint_32 height = png_get_image_height(png, info);
    int color_type = png_get_color_type(png, info);
    int bit_depth = png_get_bit_depth(png, info);

    /* Everything to 8-bit RGB: expand palettes and low bit depths, keep the
     * high byte of 16-bit samples, drop alpha, replicate grey. A tRNS chunk
     * is ignored, as PIL's convert("RGB") ignores it. */
    if (color_type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (bit_depth == 16)
        png_set_strip_16(png);
    if (color_type & PNG_COLOR_MASK_ALPHA)
        png_set_strip_alpha(png);
    if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    if (check_dimensions(name, (long)width, (long)height) != 0) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    size_t row_bytes = png_get_rowbytes(png, info);
    if (row_bytes != (size_t)width * 3) {
        png_destroy_read_struct(&png, &info, NULL);
        return dmnsp_fail("%s: PNG rows have %zu bytes after conversion (expected %zu for 8-bit RGB)", name,
                          row_bytes, (size_t)width * 3);
    }
    pixels = dmnsp_malloc(row_bytes * height, "decoded PNG pixels");
    rows = dmnsp_malloc(sizeof(png_bytep) * height, "PNG row pointers");
    if (pixels == NULL || rows == NULL) {
        png_destroy_read_struct(&png, &info, NULL);
        free(pixels);
        free(rows);
        return dmnsp_fail_prefix("%s", name);
    }
    for (png_uint_32 y = 0; y < height; y++)
        rows[y] = pixels + (size_t)y * row_bytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);

    out->width = (int)width;
    out->height = (int)height;
    out->pixels = pixels;
    return 0;
}

/* ------------------------------------------------------------------------
 * Format detection and file reading
 * ------------------------------------------------------------------------ */

int image_decode_memory(const void *data, size_t bytes, const char *name, image_rgb *out)
{
    static const unsigned char png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const unsigned char *p = data;
    memset(out, 0, sizeof *out);

    if (bytes >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return decode_jpeg(p, bytes, name, out);
    if (bytes >= 8 && memcmp(p, png_signature, 8) == 0)
        return decode_png(p, bytes, name, out);
    if (bytes == 0)
        return dmnsp_fail("%s: empty file (expected a JPEG or PNG image)", name);
    return dmnsp_fail("%s: not a JPEG or PNG file (first bytes %02x %02x %02x)", name, p[0],
                      bytes > 1 ? p[1] : 0, bytes > 2 ? p[2] : 0);
}

int image_decode_file(const char *path, image_rgb *out)
{
    memset(out, 0, sizeof *out);
    FILE *file = fopen(path, "rb");
    if (file == NULL)
        return dmnsp_fail("%s: cannot open image: %s", path, strerror(errno));

    unsigned char *data = NULL;
    size_t bytes = 0, capacity = 0;
    for (;;) {
        if (bytes == capacity) {
            size_t grown = capacity ? capacity * 2 : 64 * 1024;
            unsigned char *bigger = realloc(data, grown);
            if (bigger == NULL) {
                free(data);
                fclose(file);
                return dmnsp_fail("%s: out of memory reading %zu bytes", path, grown);
            }
            data = bigger;
            capacity = grown;
        }
        size_t got = fread(data + bytes, 1, capacity - bytes, file);
        bytes += got;
        if (got == 0)
            break;
    }
    if (ferror(file)) {
        int saved = errno;
        free(data);
        fclose(file);
        return dmnsp_fail("%s: read error: %s", path, strerror(saved));
    }
    fclose(file);

    int status = image_decode_memory(data, bytes, path, out);
    free(data);
    return status;
}

/* ------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */

int image_write_png(const char *path, const unsigned char *pixels, int width, int height, int channels)
{
    if (channels != 1 && channels != 3)
        return dmnsp_fail("%s: cannot write a PNG with %d channels (expected 1 or 3)", path, channels);
    FILE *file = fopen(path, "wb");
    if (file == NULL)
        return dmnsp_fail("%s: cannot create file: %s", path, strerror(errno));

    png_memory_reader error = {NULL, 0, 0, 0, ""};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &error, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (png == NULL || info == NULL) {
        png_destroy_write_struct(&png, NULL);
        fclose(file);
        return dmnsp_fail("%s: cannot create a PNG writer (out of memory)", path);
    }
    if (setjmp(png_jmpbuf(png)) != 0) {
        png_destroy_write_struct(&png, &info);
        fclose(file);
        return dmnsp_fail("%s: writing PNG failed: %s", path, error.message);
    }
    png_init_io(png, file);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++)
        png_write_row(png, pixels + (size_t)y * (size_t)width * (size_t)channels);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fclose(file) != 0)
        return dmnsp_fail("%s: closing file failed: %s", path, strerror(errno));
    return 0;
}

int image_write_jpeg(const char *path, const unsigned char *pixels, int width, int height, int channels,
                     int quality)
{
    if (channels != 1 && channels != 3)
        return dmnsp_fail("%s: cannot write a JPEG with %d channels (expected 1 or 3)", path, channels);
    FILE *volatile file = fopen(path, "wb");
    if (file == NULL)
        return dmnsp_fail("%s: cannot create file: %s", path, strerror(errno));

    struct jpeg_compress_struct cinfo;
    jpeg_error_context error;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&error.base);
    error.base.error_exit = jpeg_on_error;
    error.base.output_message = jpeg_silent_output;
    if (setjmp(error.jump) != 0) {
        jpeg_destroy_compress(&cinfo);
        fclose(file);
        return dmnsp_fail("%s: writing JPEG failed: %s", path, error.message);
    }
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, file);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * (size_t)width * (size_t)channels);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    if (fclose(file) != 0)
        return dmnsp_fail("%s: closing file failed: %s", path, strerror(errno));
    return 0;
}
