/* dmnsp infer and dmnsp preprocess as a user runs them. A random tiny
 * model with adapters is saved to safetensors next to a PNG and a JPEG.
 * The JSON output is checked for shape, softmax and logits against the
 * library's own encoders, followed by the exit codes of usage and runtime
 * errors. */
#include "dmnsp/clip.h"
#include "dmnsp/error.h"
#include "dmnsp/image.h"
#include "dmnsp/json_parse.h"
#include "dmnsp/tokenizer.h"
#include "dmnsp/weights.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *binary;

/* Runs "dmnsp ARGS", returning its exit status and the combined output. */
static int run_dmnsp(const char *args, char **output)
{
    char command[4096];
    snprintf(command, sizeof command, "'%s' %s", binary, args);
    return test_run_command(command, output);
}

static void write_images(void)
{
    enum { W = 40, H = 30 };
    unsigned char pixels[W * H * 3];
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            unsigned char *p = pixels + (y * W + x) * 3;
            p[0] = (unsigned char)(x * 6);
            p[1] = (unsigned char)(y * 8);
            p[2] = (unsigned char)((x * y) % 256);
        }
    }
    CHECK_OK(image_write_png("gradient.png", pixels, W, H, 3));
    CHECK_OK(image_write_jpeg("gradient.jpg", pixels, W, H, 3, 90));
}

/* A tiny model whose adapters are non-zero, so they change the output. */
static clip_model *write_model(const char *path)
{
    clip_config config;
    CHECK_OK(clip_preset("tiny", &config));
    clip_model *model = NULL;
    CHECK_OK(clip_model_create(&config, &model));
    if (model == NULL)
        return NULL;
    CHECK_OK(clip_model_init_random(model, 11));
    float *adapters = clip_model_adapters(model);
    uint32_t state = 12345;
    for (size_t i = 0; i < clip_adapter_count(&config); i++) {
        state = state * 1664525u + 1013904223u;
        adapters[i] = ((float)(state >> 9) / (float)(1u << 23) - 0.5f) * 0.2f;
    }
    CHECK_OK(weights_save(path, &config, clip_model_frozen(model), adapters));
    return model;
}

/* Logits computed in-process: exp(logit_scale) * cos(image, text). */
static void reference_logits(clip_model *model, const char *const *images, int image_count,
                             const char *const *prompts, int class_count, float *logits)
{
    const clip_config *config = clip_model_config(model);
    tokenizer *t = NULL;
    clip_workspace *ws = NULL;
    CHECK_OK(tokenizer_load(NULL, &t));
    CHECK_OK(clip_workspace_create(model, image_count, class_count, 0, 0, &ws));
    if (t == NULL || ws == NULL)
        return;
    int32_t *rows = malloc((size_t)class_count * config->context_length * sizeof *rows);
    float *text = malloc((size_t)class_count * config->embed_dim * sizeof *text);
    float *image = malloc((size_t)image_count * config->embed_dim * sizeof *image);
    size_t per_image = (size_t)3 * config->image_resolution * config->image_resolution;
    float *pixels = malloc((size_t)image_count * per_image * sizeof *pixels);
    CHECK_OK(tokenizer_encode_batch(t, prompts, class_count, config->context_length, 0, rows));
    clip_dropout_key key = {0, 0};
    CHECK_OK(clip_encode_texts(model, ws, rows, class_count, 0, key, text));
    for (int i = 0; i < image_count; i++) {
        image_rgb decoded = {0};
        CHECK_OK(image_decode_file(images[i], &decoded));
        CHECK_OK(image_preprocess(decoded.pixels, decoded.width, decoded.height, 3, config->image_resolution,
                                  pixels + i * per_image));
        image_free(&decoded);
    }
    CHECK_OK(clip_encode_images(model, ws, pixels, image_count, 0, 0, key, image));

    double scale = exp((double)clip_model_logit_scale(model));
    for (int i = 0; i < image_count; i++) {
        for (int c = 0; c < class_count; c++) {
            double dot = 0, image_norm = 0, text_norm = 0;
            for (int j = 0; j < config->embed_dim; j++) {
                double a = image[i * config->embed_dim + j], b = text[c * config->embed_dim + j];
                dot += a * b;
                image_norm += a * a;
                text_norm += b * b;
            }
            logits[i * class_count + c] = (float)(scale * dot / sqrt(image_norm * text_norm));
        }
    }
    free(rows);
    free(text);
    free(image);
    free(pixels);
    clip_workspace_free(ws);
    tokenizer_free(t);
}

static void test_infer_json(clip_model *model)
{
    char *output = NULL;
    int code = run_dmnsp("infer --weights tiny.safetensors --classes 'cat, dog,sea \"otter\"' --json gradient.png "
                         "gradient.jpg",
                         &output);
    CHECK_EQ_INT(code, 0);
    if (output == NULL)
        return;
    json_value *root = NULL;
    CHECK_OK(json_parse(output, strlen(output), &root));
    if (root == NULL) {
        printf("output:\n%s\n", output);
        free(output);
        return;
    }

    const char *expected_classes[3] = {"cat", "dog", "sea \"otter\""};
    const json_value *classes = json_object_get(root, "classes");
    CHECK(classes != NULL);
    if (classes != NULL) {
        CHECK_EQ_INT(classes->count, 3);
        for (size_t c = 0; c < classes->count && c < 3; c++)
            CHECK(strcmp(classes->items[c].string, expected_classes[c]) == 0);
    }

    const char *const images[2] = {"gradient.png", "gradient.jpg"};
    const char *const prompts[3] = {"a bad photo of a cat.", "a bad photo of a dog.", "a bad photo of a sea \"otter\"."};
    float reference[2 * 3];
    reference_logits(model, images, 2, prompts, 3, reference);

    const json_value *list = json_object_get(root, "images");
    CHECK(list != NULL);
    if (list != NULL)
        CHECK_EQ_INT(list->count, 2);
    for (size_t i = 0; list != NULL && i < list->count && i < 2; i++) {
        const json_value *entry = &list->items[i];
        const json_value *path = json_object_get(entry, "path");
        const json_value *logits = json_object_get(entry, "logits");
        const json_value *probs = json_object_get(entry, "probs");
        CHECK(path != NULL);
        CHECK(logits != NULL);
        CHECK(probs != NULL);
        if (path == NULL || logits == NULL || probs == NULL)
            continue;
        CHECK(strcmp(path->string, images[i]) == 0);
        CHECK_EQ_INT(logits->count, 3);
        CHECK_EQ_INT(probs->count, 3);
        if (logits->count != 3 || probs->count != 3)
            continue;

        float got[3];
        double sum = 0, largest = -INFINITY, normaliser = 0;
        for (int c = 0; c < 3; c++) {
            got[c] = (float)logits->items[c].number;
            sum += probs->items[c].number;
            largest = fmax(largest, got[c]);
        }
        CHECK_NEAR(sum, 1.0, 1e-6);
        for (int c = 0; c < 3; c++)
            normaliser += exp(got[c] - largest);
        for (int c = 0; c < 3; c++)
            CHECK_NEAR(probs->items[c].number, exp(got[c] - largest) / normaliser, 1e-6);
        test_compare_floats(images[i], got, reference + i * 3, 3, 1e-4, 1.0);
    }
    json_free(root);
    free(output);
}

/* More classes than one text pass encodes (64) and one image per pass:
 * every logit still matches the in-process reference. */
static void test_infer_batches(clip_model *model)
{
    enum { CLASSES = 70 };
    char names[CLASSES][16], list[CLASSES * 16] = "";
    char prompts_storage[CLASSES][48];
    const char *prompts[CLASSES];
    for (int c = 0; c < CLASSES; c++) {
        snprintf(names[c], sizeof names[c], "kind%d", c);
        snprintf(prompts_storage[c], sizeof prompts_storage[c], "a photo of kind%d", c);
        prompts[c] = prompts_storage[c];
        strcat(list, c ? "," : "");
        strcat(list, names[c]);
    }
    char args[2048];
    snprintf(args, sizeof args,
             "infer --weights tiny.safetensors --template 'a photo of {}' --batch 1 --classes %s --json gradient.jpg "
             "gradient.png",
             list);
    char *output = NULL;
    CHECK_EQ_INT(run_dmnsp(args, &output), 0);
    json_value *root = NULL;
    if (output != NULL)
        CHECK_OK(json_parse(output, strlen(output), &root));
    free(output);
    if (root == NULL)
        return;

    const char *const images[2] = {"gradient.jpg", "gradient.png"};
    static float reference[2 * CLASSES];
    reference_logits(model, images, 2, prompts, CLASSES, reference);
    const json_value *list_value = json_object_get(root, "images");
    CHECK(list_value != NULL);
    for (size_t i = 0; list_value != NULL && i < list_value->count && i < 2; i++) {
        const json_value *logits = json_object_get(&list_value->items[i], "logits");
        CHECK(logits != NULL);
        if (logits == NULL)
            continue;
        CHECK_EQ_INT(logits->count, CLASSES);
        if (logits->count != CLASSES)
            continue;
        float got[CLASSES];
        for (int c = 0; c < CLASSES; c++)
            got[c] = (float)logits->items[c].number;
        test_compare_floats(images[i], got, reference + i * CLASSES, CLASSES, 1e-4, 1.0);
    }
    json_free(root);
}

static void test_infer_table(void)
{
    char *output = NULL;
    int code = run_dmnsp("infer --weights=tiny.safetensors --classes cat,dog,bird --top 2 gradient.png", &output);
    CHECK_EQ_INT(code, 0);
    if (output == NULL)
        return;
    CHECK_STR_CONTAINS(output, "gradient.png\n");
    int lines = 0;
    for (const char *p = output; *p; p++)
        lines += *p == '%';
    CHECK_EQ_INT(lines, 2);
    free(output);
}

static void check_exit(const char *args, int expected_code, const char *needle)
{
    char *output = NULL;
    int code = run_dmnsp(args, &output);
    if (code != expected_code)
        test_report_failure(__FILE__, __LINE__, "dmnsp %s exited with %d, expected %d; output:\n%s", args, code,
                            expected_code, output ? output : "");
    if (output != NULL)
        CHECK_STR_CONTAINS(output, needle);
    free(output);
}

static void test_errors(void)
{
    check_exit("infer --help", 0, "--template T");
    check_exit("preprocess --help", 0, "--size N");
    check_exit("infer", 2, "missing --weights");
    check_exit("infer --weights tiny.safetensors gradient.png", 2, "missing --classes");
    check_exit("infer --weights tiny.safetensors --classes a,b", 2, "missing the IMAGE arguments");
    check_exit("infer --weights tiny.safetensors --classes a,b --template 'a photo' x.png", 2, "{} exactly once");
    check_exit("infer --weights tiny.safetensors --classes a,b --top 0 x.png", 2, "--top expects a positive integer");
    check_exit("infer --weights tiny.safetensors --classes a,b --colour red x.png", 2, "unknown option '--colour'");
    check_exit("infer --weights tiny.safetensors --classes 'a,,b' gradient.png", 1, "class 2 of 3 is empty");
    check_exit("infer --weights tiny.safetensors --classes a,b missing.png", 1, "missing.png");
    check_exit("infer --weights missing.safetensors --classes a,b gradient.png", 1, "missing.safetensors");
    check_exit("preprocess --out x.bin gradient.png", 2, "missing --size");
    check_exit("preprocess --size 0 --out x.bin gradient.png", 2, "--size expects a positive integer");
    check_exit("preprocess --size 8 gradient.png", 2, "missing --out");
    check_exit("preprocess --size 8 --out x.bin not_there.jpg", 1, "not_there.jpg");

    /* A vocabulary whose size differs from the token embedding's. */
    const char merges[] = "header\nc a\n";
    CHECK_OK(test_write_file("small_merges.txt", merges, strlen(merges)));
    check_exit("infer --weights tiny.safetensors --vocab small_merges.txt --classes a,b gradient.png", 1,
               "515 tokens) does not match the weights, whose token embedding has 514 rows");
}

static void test_preprocess(void)
{
    char *output = NULL;
    int code = run_dmnsp("preprocess --size 24 --out images.f32 gradient.png gradient.jpg", &output);
    CHECK_EQ_INT(code, 0);
    free(output);

    size_t per_image = 3 * 24 * 24;
    float expected[2 * 3 * 24 * 24];
    const char *images[2] = {"gradient.png", "gradient.jpg"};
    for (int i = 0; i < 2; i++) {
        image_rgb decoded = {0};
        CHECK_OK(image_decode_file(images[i], &decoded));
        CHECK_OK(image_preprocess(decoded.pixels, decoded.width, decoded.height, 3, 24, expected + i * per_image));
        image_free(&decoded);
    }
    float got[2 * 3 * 24 * 24];
    FILE *in = fopen("images.f32", "rb");
    CHECK(in != NULL);
    if (in == NULL)
        return;
    CHECK_EQ_INT(fread(got, sizeof(float), 2 * per_image, in), 2 * per_image);
    CHECK_EQ_INT(fgetc(in), EOF);
    fclose(in);
    test_compare_floats("preprocess output", got, expected, 2 * per_image, 0.0, 0.0);
}

int main(void)
{
    binary = test_env("DMNSP_BINARY", "dmnsp");
    write_images();
    clip_model *model = write_model("tiny.safetensors");
    if (model != NULL)
        test_infer_json(model);
    if (model != NULL)
        test_infer_batches(model);
    test_infer_table();
    test_errors();
    test_preprocess();
    clip_model_free(model);
    return test_finish("test_infer_cli");
}
