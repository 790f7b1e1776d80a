/* dmnsp preprocess: decode images and apply CLIP's test transform (resize
 * the shorter side, centre crop, normalise), writing the float32 tensor
 * other tools or parity checks can read. */
#include "commands.h"

#include "dmnsp/error.h"
#include "dmnsp/image.h"
#include "dmnsp/rundir.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char preprocess_usage[] =
    "usage: dmnsp preprocess --size N --out FILE IMAGE...\n"
    "\n"
    "Decodes each JPEG or PNG IMAGE, resizes its shorter side to N pixels with\n"
    "bicubic filtering, crops the centre N x N, scales to [0, 1] and normalises\n"
    "with CLIP's per-channel mean and standard deviation. FILE receives the\n"
    "images as raw little-endian float32 in the shape [images, 3, N, N]\n"
    "(channel order RGB), written atomically.\n"
    "\n"
    "  --size N    output side in pixels (224 for the released ViT models)\n"
    "  --out FILE  output file\n";

/* Parses a positive int option value; prints the problem and returns -1
 * when it is not one. */
static int parse_positive(const char *option, const char *text, int *value)
{
    char *end;
    errno = 0;
    long parsed = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || parsed <= 0 || parsed > 65536) {
        fprintf(stderr, "dmnsp preprocess: %s expects a positive integer of at most 65536, found '%s'\n\n%s",
                option, text, preprocess_usage);
        return -1;
    }
    *value = (int)parsed;
    return 0;
}

/* Decodes and transforms every image into one buffer, then writes it. */
static int run_preprocess(char **images, int count, int size, const char *out_path)
{
    size_t per_image = (size_t)3 * size * size;
    float *tensor = dmnsp_malloc((size_t)count * per_image * sizeof *tensor, "the preprocessed images");
    if (tensor == NULL)
        return -1;

    int status = 0;
    for (int i = 0; i < count && status == 0; i++) {
        image_rgb image = {0};
        status = image_decode_file(images[i], &image);
        if (status == 0)
            status = image_preprocess(image.pixels, image.width, image.height, 3, size, tensor + (size_t)i * per_image);
        if (status != 0)
            dmnsp_fail_prefix("image %d of %d", i + 1, count);
        image_free(&image);
    }
    if (status == 0)
        status = rundir_write_atomic(out_path, tensor, (size_t)count * per_image * sizeof *tensor);
    free(tensor);
    return status;
}

int cmd_preprocess(int argc, char **argv)
{
    int size = 0;
    const char *out_path = NULL;
    char **images = calloc((size_t)argc + 1, sizeof *images);
    int image_count = 0;
    if (images == NULL) {
        fprintf(stderr, "dmnsp preprocess: out of memory\n");
        return 1;
    }

    int options_done = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (options_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
            images[image_count++] = argv[i];
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = 1;
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(preprocess_usage, stdout);
            free(images);
            return 0;
        } else if (strcmp(arg, "--size") == 0 || strcmp(arg, "--out") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "dmnsp preprocess: %s needs a value\n\n%s", arg, preprocess_usage);
                free(images);
                return 2;
            }
            const char *value = argv[++i];
            if (strcmp(arg, "--out") == 0) {
                out_path = value;
            } else if (parse_positive("--size", value, &size) != 0) {
                free(images);
                return 2;
            }
        } else if (strncmp(arg, "--size=", 7) == 0) {
            if (parse_positive("--size", arg + 7, &size) != 0) {
                free(images);
                return 2;
            }
        } else if (strncmp(arg, "--out=", 6) == 0) {
            out_path = arg + 6;
        } else {
            fprintf(stderr, "dmnsp preprocess: unknown option '%s'\n\n%s", arg, preprocess_usage);
            free(images);
            return 2;
        }
    }

    const char *missing = NULL;
    if (size == 0)
        missing = "--size";
    else if (out_path == NULL || out_path[0] == '\0')
        missing = "--out";
    else if (image_count == 0)
        missing = "the IMAGE arguments";
    if (missing != NULL) {
        fprintf(stderr, "dmnsp preprocess: missing %s\n\n%s", missing, preprocess_usage);
        free(images);
        return 2;
    }

    int status = run_preprocess(images, image_count, size, out_path);
    free(images);
    if (status != 0) {
        fprintf(stderr, "dmnsp preprocess: %s\n", dmnsp_last_error());
        return 1;
    }
    printf("wrote %s: %d image%s as float32 [%d, 3, %d, %d]\n", out_path, image_count, image_count == 1 ? "" : "s",
           image_count, size, size);
    return 0;
}
