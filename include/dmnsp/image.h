/* image: decoding, bicubic resizing and CLIP preprocessing of RGB images.
 *
 * Decoded images are 8-bit RGB, height × width × 3 (HWC, row-major). JPEG
 * goes through libjpeg(-turbo) and PNG through libpng. Grayscale is
 * replicated to three channels, palettes are expanded, alpha is dropped
 * without compositing and 16-bit samples keep their high byte. PIL's
 * convert("RGB") does the same for 8-bit images and 16-bit RGB images.
 * NOTE: PIL opens 16-bit grayscale PNGs as 32-bit integers and clips them
 * to 0..255 when converting to RGB; here they keep their high byte instead.
 *
 * image_resize_bicubic() equals PIL's Image.resize((w, h), Image.BICUBIC)
 * for 8-bit images (Pillow 9.4): a separable Keys cubic filter with
 * a = -0.5 whose support grows by the scale factor when shrinking,
 * coefficients normalised per output pixel and rounded to fixed point with
 * 22 fractional bits, a horizontal pass to a uint8 intermediate, then a
 * vertical pass, each rounded and clipped to 0..255.
 *
 * image_preprocess() is CLIP's test transform: resize the shorter side to
 * SIZE (the other side to int(SIZE * long / short)), centre crop SIZE × SIZE
 * (offset int(round((extent - SIZE) / 2)), with Python's round-half-even),
 * scale to [0, 1] and normalise per channel, written as float CHW.
 *
 * All functions are thread-safe. Errors follow dmnsp/error.h.
 */
#ifndef DMNSP_IMAGE_H
#define DMNSP_IMAGE_H

#include <stddef.h>

/* An RGB image that owns its pixels (height × width × 3 bytes, malloc'd). */
typedef struct {
    int width;
    int height;
    unsigned char *pixels;
} image_rgb;

/* CLIP's normalisation constants, per RGB channel. */
extern const float image_clip_mean[3];
extern const float image_clip_std[3];

/* Decodes the JPEG or PNG file PATH into OUT (OUT->pixels malloc'd, free
 * with image_free). Fails with a message naming PATH when the file is
 * missing, is neither JPEG nor PNG, is truncated or is corrupt. */
int image_decode_file(const char *path, image_rgb *out);

/* Decodes BYTES bytes of JPEG or PNG data; NAME is used in error messages. */
int image_decode_memory(const void *data, size_t bytes, const char *name, image_rgb *out);

/* Frees OUT->pixels and zeroes OUT; safe on a zeroed image. */
void image_free(image_rgb *image);

/* Resizes an 8-bit image of CHANNELS interleaved channels (1..4) from
 * in_width × in_height to out_width × out_height with PIL's BICUBIC filter.
 * IN and OUT are row-major HWC and must not overlap. Allocates a temporary
 * uint8 buffer of at most out_width × in_height × CHANNELS. */
int image_resize_bicubic(const unsigned char *in, int in_width, int in_height, int channels,
                         unsigned char *out, int out_width, int out_height);

/* Like image_resize_bicubic(), but writes only the window of the resized
 * image that starts at (window_x, window_y) and is window_width ×
 * window_height pixels (OUT contains exactly that window). The values equal the
 * same pixels of the full resize; only the input rows and output columns the
 * window needs are computed. */
int image_resize_bicubic_window(const unsigned char *in, int in_width, int in_height, int channels,
                                int out_width, int out_height, int window_x, int window_y,
                                int window_width, int window_height, unsigned char *out);

/* The size torchvision's Resize(SIZE) gives a width × height image: the
 * shorter side becomes SIZE and the longer int(SIZE * long / short). */
void image_resized_size(int width, int height, int size, int *out_width, int *out_height);

/* Offset of a centre crop of CROP pixels from EXTENT pixels, as torchvision's
 * CenterCrop computes it: int(round((extent - crop) / 2.0)), half to even. */
int image_center_crop_offset(int extent, int crop);

/* Resizes, centre crops and normalises an 8-bit image of CHANNELS channels
 * (1 = grayscale, replicated to RGB, or 3 = RGB; HWC) into OUT, a float
 * buffer of 3 × SIZE × SIZE (CHW). */
int image_preprocess(const unsigned char *pixels, int width, int height, int channels, int size,
                     float *out);

/* Writes PIXELS (height × width × CHANNELS, CHANNELS 1 or 3) as a PNG file. */
int image_write_png(const char *path, const unsigned char *pixels, int width, int height, int channels);

/* Writes PIXELS (height × width × CHANNELS, CHANNELS 1 or 3) as a baseline
 * JPEG file with the given QUALITY (1..100). */
int image_write_jpeg(const char *path, const unsigned char *pixels, int width, int height, int channels,
                     int quality);

#endif
