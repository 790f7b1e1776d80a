/* image: PIL-equal bicubic resize and CLIP preprocessing (see
 * include/dmnsp/image.h). Decoding and encoding live in image_codec.c. */
#include "dmnsp/image.h"

#include "dmnsp/error.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const float image_clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float image_clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

/* Fixed-point fraction bits of the 8-bit path: 32 bits minus 8 for the
 * sample minus 2 for the sign and the filter's overshoot. */
#define RESIZE_PRECISION_BITS 22

/* Keys cubic convolution kernel with a = -0.5, support 2. */
static double bicubic_kernel(double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0)
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

/* Fixed-point filter taps for a run of output positions along one axis.
 * Output position o reads inputs first[o] .. first[o] + taps[o] - 1 with
 * weights[o * max_taps + k]. */
typedef struct {
    int count;
    int max_taps;
    int *first;
    int *taps;
    int32_t *weights;
} resize_filter;

static void resize_filter_free(resize_filter *filter)
{
    free(filter->first);
    free(filter->taps);
    free(filter->weights);
    memset(filter, 0, sizeof *filter);
}

/* Computes the taps of output positions BEGIN .. BEGIN + COUNT - 1 when
 * IN_SIZE samples become OUT_SIZE samples. */
static int resize_filter_init(resize_filter *filter, int in_size, int out_size, int begin, int count)
{
    memset(filter, 0, sizeof *filter);
    double scale = (double)in_size / (double)out_size;
    double filter_scale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filter_scale;
    double inverse_filter_scale = 1.0 / filter_scale;
    int max_taps = (int)ceil(support) * 2 + 1;

    filter->count = count;
    filter->max_taps = max_taps;
    filter->first = dmnsp_malloc(sizeof(int) * (size_t)count, "resize filter offsets");
    filter->taps = dmnsp_malloc(sizeof(int) * (size_t)count, "resize filter tap counts");
    filter->weights = dmnsp_calloc((size_t)count * (size_t)max_taps, sizeof(int32_t), "resize filter weights");
    double *real_weights = dmnsp_malloc(sizeof(double) * (size_t)max_taps, "resize filter weights");
    if (filter->first == NULL || filter->taps == NULL || filter->weights == NULL || real_weights == NULL) {
        free(real_weights);
        resize_filter_free(filter);
        return -1;
    }

    for (int o = 0; o < count; o++) {
        double center = ((double)(begin + o) + 0.5) * scale;
        /* Truncation toward zero, then clamping, picks the input window. */
        int lo = (int)(center - support + 0.5);
        if (lo < 0)
            lo = 0;
        int hi = (int)(center + support + 0.5);
        if (hi > in_size)
            hi = in_size;
        int taps = hi - lo;
        if (taps > max_taps)
            taps = max_taps;

        double total = 0.0;
        for (int k = 0; k < taps; k++) {
            real_weights[k] = bicubic_kernel(((double)(k + lo) - center + 0.5) * inverse_filter_scale);
            total += real_weights[k];
        }
        int32_t *fixed = filter->weights + (size_t)o * (size_t)max_taps;
        for (int k = 0; k < taps; k++) {
            double w = total != 0.0 ? real_weights[k] / total : real_weights[k];
            double scaled = w * (double)(1 << RESIZE_PRECISION_BITS);
            /* Round half away from zero. */
            fixed[k] = (int32_t)(scaled < 0.0 ? scaled - 0.5 : scaled + 0.5);
        }
        filter->first[o] = lo;
        filter->taps[o] = taps;
    }
    free(real_weights);
    return 0;
}

/* Rounds a fixed-point sum to an 8-bit sample, clipping to 0..255. */
static inline unsigned char fixed_to_uint8(int64_t sum)
{
    int64_t value = (sum + (1 << (RESIZE_PRECISION_BITS - 1))) >> RESIZE_PRECISION_BITS;
    if (value < 0)
        return 0;
    if (value > 255)
        return 255;
    return (unsigned char)value;
}

int image_resize_bicubic_window(const unsigned char *in, int in_width, int in_height, int channels,
                                int out_width, int out_height, int window_x, int window_y,
                                int window_width, int window_height, unsigned char *out)
{
    if (in_width <= 0 || in_height <= 0 || out_width <= 0 || out_height <= 0)
        return dmnsp_fail("image resize: invalid size %dx%d -> %dx%d (expected positive sizes)", in_width,
                          in_height, out_width, out_height);
    if (channels < 1 || channels > 4)
        return dmnsp_fail("image resize: invalid channel count %d (expected 1 to 4)", channels);
    if (window_x < 0 || window_y < 0 || window_width <= 0 || window_height <= 0 ||
        window_x + window_width > out_width || window_y + window_height > out_height)
        return dmnsp_fail("image resize: window %dx%d at (%d, %d) is outside the %dx%d output", window_width,
                          window_height, window_x, window_y, out_width, out_height);

    resize_filter horizontal, vertical;
    if (resize_filter_init(&horizontal, in_width, out_width, window_x, window_width) != 0)
        return -1;
    if (resize_filter_init(&vertical, in_height, out_height, window_y, window_height) != 0) {
        resize_filter_free(&horizontal);
        return -1;
    }

    /* Input rows the vertical pass reads for this window. */
    int row_begin = vertical.first[0];
    int row_end = vertical.first[0] + vertical.taps[0];
    for (int o = 1; o < window_height; o++) {
        if (vertical.first[o] < row_begin)
            row_begin = vertical.first[o];
        if (vertical.first[o] + vertical.taps[o] > row_end)
            row_end = vertical.first[o] + vertical.taps[o];
    }
    int rows = row_end - row_begin;
    size_t row_bytes = (size_t)window_width * (size_t)channels;
    unsigned char *intermediate = dmnsp_malloc(row_bytes * (size_t)rows, "resize intermediate image");
    if (intermediate == NULL) {
        resize_filter_free(&horizontal);
        resize_filter_free(&vertical);
        return -1;
    }

    /* Horizontal pass: rows row_begin .. row_end - 1, window columns only,
     * rounded to uint8 as the 8-bit path of PIL does between passes. */
    for (int y = 0; y < rows; y++) {
        const unsigned char *source = in + (size_t)(row_begin + y) * (size_t)in_width * (size_t)channels;
        unsigned char *target = intermediate + (size_t)y * row_bytes;
        for (int o = 0; o < window_width; o++) {
            const int32_t *w = horizontal.weights + (size_t)o * (size_t)horizontal.max_taps;
            const unsigned char *p = source + (size_t)horizontal.first[o] * (size_t)channels;
            for (int c = 0; c < channels; c++) {
                int64_t sum = 0;
                for (int k = 0; k < horizontal.taps[o]; k++)
                    sum += (int64_t)p[(size_t)k * (size_t)channels + (size_t)c] * w[k];
                target[(size_t)o * (size_t)channels + (size_t)c] = fixed_to_uint8(sum);
            }
        }
    }

    /* Vertical pass over the intermediate rows. */
    for (int o = 0; o < window_height; o++) {
        const int32_t *w = vertical.weights + (size_t)o * (size_t)vertical.max_taps;
        const unsigned char *source = intermediate + (size_t)(vertical.first[o] - row_begin) * row_bytes;
        unsigned char *target = out + (size_t)o * row_bytes;
        for (size_t i = 0; i < row_bytes; i++) {
            int64_t sum = 0;
            for (int k = 0; k < vertical.taps[o]; k++)
                sum += (int64_t)source[(size_t)k * row_bytes + i] * w[k];
            target[i] = fixed_to_uint8(sum);
        }
    }

    free(intermediate);
    resize_filter_free(&horizontal);
    resize_filter_free(&vertical);
    return 0;
}

int image_resize_bicubic(const unsigned char *in, int in_width, int in_height, int channels,
                         unsigned char *out, int out_width, int out_height)
{
    return image_resize_bicubic_window(in, in_width, in_height, channels, out_width, out_height, 0, 0,
                                       out_width, out_height, out);
}

void image_resized_size(int width, int height, int size, int *out_width, int *out_height)
{
    /* The product is formed in integers and divided in double, as Python's
     * int(size * long / short) does. */
    if (width <= height) {
        *out_width = size;
        *out_height = (int)((double)((long long)size * height) / (double)width);
    } else {
        *out_height = size;
        *out_width = (int)((double)((long long)size * width) / (double)height);
    }
}

int image_center_crop_offset(int extent, int crop)
{
    /* (extent - crop) / 2 rounded half to even: an odd difference 2m+1
     * gives m when m is even and m + 1 when m is odd. */
    int difference = extent - crop;
    if (difference >= 0) {
        int half = difference / 2;
        if (difference % 2 != 0 && half % 2 != 0)
            half += 1;
        return half;
    }
    /* Negative differences: Python's round(-m - 0.5) is also half to even. */
    double value = (double)difference / 2.0;
    return (int)nearbyint(value);
}

int image_preprocess(const unsigned char *pixels, int width, int height, int channels, int size, float *out)
{
    if (channels != 1 && channels != 3)
        return dmnsp_fail("image preprocess: invalid channel count %d (expected 1 or 3)", channels);
    if (size <= 0)
        return dmnsp_fail("image preprocess: invalid size %d (expected a positive size)", size);
    if (width <= 0 || height <= 0)
        return dmnsp_fail("image preprocess: invalid image size %dx%d", width, height);

    int resized_width, resized_height;
    image_resized_size(width, height, size, &resized_width, &resized_height);
    int crop_x = image_center_crop_offset(resized_width, size);
    int crop_y = image_center_crop_offset(resized_height, size);
    if (crop_x < 0 || crop_y < 0 || crop_x + size > resized_width || crop_y + size > resized_height)
        return dmnsp_fail("image preprocess: a %dx%d image resizes to %dx%d, too small for a %d-pixel crop",
                          width, height, resized_width, resized_height, size);

    size_t plane = (size_t)size * (size_t)size;
    unsigned char *cropped = dmnsp_malloc(plane * (size_t)channels, "preprocessed image");
    if (cropped == NULL)
        return -1;
    if (image_resize_bicubic_window(pixels, width, height, channels, resized_width, resized_height, crop_x, crop_y,
                                    size, size, cropped) != 0) {
        free(cropped);
        return -1;
    }

    /* ToTensor then Normalize, both in float32 as torchvision computes them. */
    for (int c = 0; c < 3; c++) {
        int source_channel = channels == 1 ? 0 : c;
        float mean = image_clip_mean[c];
        float std = image_clip_std[c];
        float *target = out + (size_t)c * plane;
        for (size_t i = 0; i < plane; i++) {
            float value = (float)cropped[i * (size_t)channels + (size_t)source_channel] / 255.0f;
            target[i] = (value - mean) / std;
        }
    }
    free(cropped);
    return 0;
}
