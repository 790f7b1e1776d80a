/* dmnsp infer: zero-shot classification of images with a CLIP model (and
 * its adapters, when the weights file has them) against a list of class
 * names turned into prompts. */
#include "commands.h"

#include "dmnsp/clip.h"
#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/image.h"
#include "dmnsp/tokenizer.h"
#include "dmnsp/weights.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char infer_usage[] =
    "usage: dmnsp infer --weights W.safetensors --classes \"a,b,c\" [--vocab V]\n"
    "                   [--template T] [--top K] [--batch N] [--adapter-scale S]\n"
    "                   [--json] IMAGE...\n"
    "\n"
    "Classifies each JPEG or PNG IMAGE by the cosine similarity of its CLIP\n"
    "image embedding to the text embedding of one prompt per class, and\n"
    "prints the most probable classes. Adapters stored in the weights file\n"
    "are used; without them the model is plain CLIP. `dmnsp export RUN_DIR`\n"
    "writes a trained run as such a file.\n"
    "\n"
    "  --weights W   safetensors file with OpenAI/open_clip or Hugging Face names;\n"
    "                the architecture is inferred from its tensor shapes\n"
    "  --classes L   comma-separated class names (spaces around names are dropped)\n"
    "  --vocab V     bpe_simple_vocab_16e6.txt.gz, a Hugging Face tokenizer folder\n"
    "                or its vocab.json (default: the 514-token byte-level\n"
    "                vocabulary of randomly initialised models)\n"
    "  --template T  prompt with {} where the class name goes\n"
    "                (default: \"a bad photo of a {}.\")\n"
    "  --top K       classes printed per image (default 5; all with --json)\n"
    "  --batch N     images encoded per forward pass (default 16)\n"
    "  --adapter-scale S  factor on the adapter output, as in training (default:\n"
    "                the value dmnsp export stored in the file, else 0.1)\n"
    "  --json        print {\"classes\": [...], \"images\": [{\"path\", \"logits\",\n"
    "                \"probs\"}]} where logits = exp(logit_scale) * cos(image, text)\n"
    "                and probs = softmax(logits)\n";

typedef struct {
    const char *weights;
    const char *vocab;
    const char *classes;
    const char *template_text;
    float adapter_scale;
    int top;
    int batch;
    int json;
    char **images;
    int image_count;
} infer_options;

/* Rows of text encoded per forward pass, bounding the workspace for long
 * class lists. */
enum { TEXT_CHUNK = 64 };

/* ---- command line ----------------------------------------------------------- */

static int usage_error(const char *fmt, const char *value)
{
    fprintf(stderr, "dmnsp infer: ");
    fprintf(stderr, fmt, value);
    fprintf(stderr, "\n\n%s", infer_usage);
    return 2;
}

static int parse_count(const char *option, const char *text, int *value)
{
    char *end;
    errno = 0;
    long parsed = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || parsed <= 0 || parsed > 1000000) {
        fprintf(stderr, "dmnsp infer: %s expects a positive integer, found '%s'\n\n%s", option, text, infer_usage);
        return 2;
    }
    *value = (int)parsed;
    return 0;
}

/* Returns 0 to run, 1 after printing help, 2 after a usage error. */
static int parse_options(int argc, char **argv, infer_options *o)
{
    memset(o, 0, sizeof *o);
    o->template_text = "a bad photo of a {}.";
    o->top = 5;
    o->batch = 16;
    o->adapter_scale = NAN; /* from the file, else 0.1 */
    o->images = calloc((size_t)argc + 1, sizeof *o->images);
    if (o->images == NULL) {
        fprintf(stderr, "dmnsp infer: out of memory\n");
        return 2;
    }

    static const char *const valued[] = {"--weights", "--vocab",  "--classes",      "--template",
                                         "--top",     "--batch", "--adapter-scale"};
    int options_done = 0;
    for (int i = 0; i < argc; i++) {
        char *arg = argv[i];
        if (options_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
            o->images[o->image_count++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = 1;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(infer_usage, stdout);
            return 1;
        }
        if (strcmp(arg, "--json") == 0) {
            o->json = 1;
            continue;
        }

        /* --name VALUE or --name=VALUE */
        const char *name = NULL, *value = NULL;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0] && name == NULL; k++) {
            size_t n = strlen(valued[k]);
            if (strncmp(arg, valued[k], n) == 0 && arg[n] == '=') {
                name = valued[k];
                value = arg + n + 1;
            } else if (strcmp(arg, valued[k]) == 0) {
                name = valued[k];
                if (i + 1 >= argc)
                    return usage_error("%s needs a value", arg);
                value = argv[++i];
            }
        }
        if (name == NULL)
            return usage_error("unknown option '%s'", arg);

        if (strcmp(name, "--weights") == 0)
            o->weights = value;
        else if (strcmp(name, "--vocab") == 0)
            o->vocab = value;
        else if (strcmp(name, "--classes") == 0)
            o->classes = value;
        else if (strcmp(name, "--template") == 0)
            o->template_text = value;
        else if (strcmp(name, "--top") == 0 && parse_count("--top", value, &o->top) != 0)
            return 2;
        else if (strcmp(name, "--batch") == 0 && parse_count("--batch", value, &o->batch) != 0)
            return 2;
        else if (strcmp(name, "--adapter-scale") == 0) {
            char *end;
            o->adapter_scale = strtof(value, &end);
            if (end == value || *end != '\0' || !isfinite(o->adapter_scale))
                return usage_error("--adapter-scale expects a number, found '%s'", value);
        }
    }

    if (o->weights == NULL || o->weights[0] == '\0')
        return usage_error("missing %s", "--weights");
    if (o->classes == NULL)
        return usage_error("missing %s", "--classes");
    if (o->image_count == 0)
        return usage_error("missing %s", "the IMAGE arguments");
    const char *slot = strstr(o->template_text, "{}");
    if (slot == NULL || strstr(slot + 2, "{}") != NULL)
        return usage_error("--template '%s' must contain {} exactly once", o->template_text);
    return 0;
}

/* Splits LIST at commas into trimmed, non-empty names. The names point
 * into *STORAGE, a copy of LIST; the caller frees *NAMES and *STORAGE. */
static int split_classes(const char *list, char ***names, int *count, char **storage)
{
    *names = NULL;
    *count = 0;
    *storage = strdup(list);
    int capacity = 1;
    for (const char *p = list; *p; p++)
        capacity += *p == ',';
    char **out = calloc((size_t)capacity, sizeof *out);
    if (*storage == NULL || out == NULL) {
        free(out);
        return dmnsp_fail("out of memory splitting the class list");
    }
    char *cursor = *storage;
    for (int i = 0; i < capacity; i++) {
        char *comma = strchr(cursor, ',');
        if (comma != NULL)
            *comma = '\0';
        while (*cursor == ' ' || *cursor == '\t')
            cursor++;
        char *end = cursor + strlen(cursor);
        while (end > cursor && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (*cursor == '\0') {
            free(out);
            return dmnsp_fail("--classes: class %d of %d is empty (expected comma-separated names, e.g. \"cat,dog\")",
                              i + 1, capacity);
        }
        out[i] = cursor;
        if (comma != NULL)
            cursor = comma + 1;
    }
    *names = out;
    *count = capacity;
    return 0;
}

/* ---- inference -------------------------------------------------------------- */

/* Scales each of the N rows of WIDTH floats to unit length. */
static void normalize_rows(float *rows, int n, int width)
{
    for (int i = 0; i < n; i++) {
        float *row = rows + (size_t)i * width;
        double sum = 0;
        for (int j = 0; j < width; j++)
            sum += (double)row[j] * row[j];
        float inverse = sum > 0 ? (float)(1.0 / sqrt(sum)) : 0.0f;
        for (int j = 0; j < width; j++)
            row[j] *= inverse;
    }
}

typedef struct {
    infer_options options;
    char **class_names;
    int class_count;
    char *class_storage;
    clip_model *model;
    clip_workspace *workspace;
    tokenizer *tokens;
    float *text_features;  /* [classes, embed_dim], unit rows */
    float *logits;         /* [images, classes] */
} infer_state;

static void infer_state_free(infer_state *s)
{
    free(s->class_names);
    free(s->class_storage);
    clip_workspace_free(s->workspace);
    clip_model_free(s->model);
    tokenizer_free(s->tokens);
    free(s->text_features);
    free(s->logits);
}

/* Reads the weights straight into the model's buffers. */
static int load_model(infer_state *s)
{
    weights_file *w;
    DMNSP_TRY(weights_open(s->options.weights, &w));
    /* Adapter settings a weights file does not store. The bottleneck is
     * replaced by the file's when it has adapters. */
    clip_config config;
    memset(&config, 0, sizeof config);
    config.adapter_bottleneck = 64;
    config.adapter_scale = 0.1f;
    config.adapter_dropout = 0.1f;
    int status = 0;
    if (!isnan(s->options.adapter_scale))
        config.adapter_scale = s->options.adapter_scale;
    else
        status = weights_adapter_scale(w, &config.adapter_scale) < 0 ? -1 : 0;
    if (status == 0)
        status = weights_infer_config(w, &config);
    if (status == 0)
        status = clip_model_create(&config, &s->model);
    if (status == 0)
        status = weights_read(w, &config, clip_model_frozen(s->model), clip_model_adapters(s->model));
    weights_close(w);
    return status;
}

static int encode_classes(infer_state *s)
{
    const clip_config *config = clip_model_config(s->model);
    DMNSP_TRY(tokenizer_load(s->options.vocab, &s->tokens));
    if (tokenizer_vocab_size(s->tokens) != config->vocab_size)
        return dmnsp_fail("vocabulary %s does not match the weights, whose token embedding has %d rows (pass the "
                          "vocabulary these weights were trained with to --vocab)",
                          tokenizer_description(s->tokens), config->vocab_size);

    /* One prompt per class: the template with {} replaced by the name. */
    const char *slot = strstr(s->options.template_text, "{}");
    size_t before = (size_t)(slot - s->options.template_text);
    int n = s->class_count;
    char **prompts = calloc((size_t)n, sizeof *prompts);
    int32_t *rows = malloc((size_t)n * config->context_length * sizeof *rows);
    s->text_features = malloc((size_t)n * config->embed_dim * sizeof *s->text_features);
    int status = (prompts && rows && s->text_features) ? 0 : dmnsp_fail("out of memory for %d prompts", n);
    for (int i = 0; i < n && status == 0; i++) {
        size_t length = strlen(s->options.template_text) - 2 + strlen(s->class_names[i]);
        prompts[i] = malloc(length + 1);
        if (prompts[i] == NULL) {
            status = dmnsp_fail("out of memory for the prompts");
            break;
        }
        snprintf(prompts[i], length + 1, "%.*s%s%s", (int)before, s->options.template_text, s->class_names[i],
                 slot + 2);
    }
    if (status == 0)
        status = tokenizer_encode_batch(s->tokens, (const char *const *)prompts, n, config->context_length, 0, rows);

    clip_dropout_key key = {0, 0};
    for (int first = 0; first < n && status == 0; first += TEXT_CHUNK) {
        int chunk = n - first < TEXT_CHUNK ? n - first : TEXT_CHUNK;
        status = clip_encode_texts(s->model, s->workspace, rows + (size_t)first * config->context_length, chunk, 0,
                                   key, s->text_features + (size_t)first * config->embed_dim);
    }
    if (status == 0)
        normalize_rows(s->text_features, n, config->embed_dim);

    for (int i = 0; prompts != NULL && i < n; i++)
        free(prompts[i]);
    free(prompts);
    free(rows);
    return status;
}

/* Encodes the images in batches and fills s->logits. */
static int classify_images(infer_state *s)
{
    const clip_config *config = clip_model_config(s->model);
    int n = s->options.image_count, batch = s->options.batch < n ? s->options.batch : n;
    int resolution = config->image_resolution, embed = config->embed_dim, classes = s->class_count;
    size_t per_image = (size_t)3 * resolution * resolution;
    float *pixels = dmnsp_malloc((size_t)batch * per_image * sizeof *pixels, "a batch of images");
    float *features = dmnsp_malloc((size_t)batch * embed * sizeof *features, "image features");
    s->logits = dmnsp_malloc((size_t)n * classes * sizeof *s->logits, "the logits");
    int status = (pixels && features && s->logits) ? 0 : -1;

    float scale = expf(clip_model_logit_scale(s->model));
    clip_dropout_key key = {0, 0};
    for (int first = 0; first < n && status == 0; first += batch) {
        int count = n - first < batch ? n - first : batch;
        for (int i = 0; i < count && status == 0; i++) {
            image_rgb image = {0};
            status = image_decode_file(s->options.images[first + i], &image);
            if (status == 0)
                status = image_preprocess(image.pixels, image.width, image.height, 3, resolution,
                                          pixels + (size_t)i * per_image);
            image_free(&image);
        }
        if (status == 0)
            status = clip_encode_images(s->model, s->workspace, pixels, count, first, 0, key, features);
        if (status != 0)
            break;
        normalize_rows(features, count, embed);
        for (int i = 0; i < count; i++) {
            for (int c = 0; c < classes; c++) {
                double dot = 0;
                for (int j = 0; j < embed; j++)
                    dot += (double)features[(size_t)i * embed + j] * s->text_features[(size_t)c * embed + j];
                s->logits[(size_t)(first + i) * classes + c] = scale * (float)dot;
            }
        }
    }
    free(pixels);
    free(features);
    return status;
}

/* ---- output ------------------------------------------------------------------ */

/* Softmax of N logits into PROBS, in double for the sum. */
static void softmax(const float *logits, int n, double *probs)
{
    double largest = logits[0];
    for (int i = 1; i < n; i++)
        largest = logits[i] > largest ? logits[i] : largest;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        probs[i] = exp((double)logits[i] - largest);
        sum += probs[i];
    }
    for (int i = 0; i < n; i++)
        probs[i] /= sum;
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            printf("\\%c", *c);
        else if (*c < 0x20)
            printf("\\u%04x", *c);
        else
            putchar(*c);
    }
    putchar('"');
}

static void print_json(const infer_state *s, double *probs)
{
    int classes = s->class_count;
    printf("{\"classes\": [");
    for (int c = 0; c < classes; c++) {
        if (c)
            printf(", ");
        print_json_string(s->class_names[c]);
    }
    printf("],\n \"images\": [");
    for (int i = 0; i < s->options.image_count; i++) {
        const float *logits = s->logits + (size_t)i * classes;
        softmax(logits, classes, probs);
        printf("%s\n  {\"path\": ", i ? "," : "");
        print_json_string(s->options.images[i]);
        printf(", \"logits\": [");
        for (int c = 0; c < classes; c++)
            printf("%s%.9g", c ? ", " : "", (double)logits[c]);
        printf("], \"probs\": [");
        for (int c = 0; c < classes; c++)
            printf("%s%.9g", c ? ", " : "", probs[c]);
        printf("]}");
    }
    printf("\n ]}\n");
}

static void print_table(const infer_state *s, double *probs)
{
    int classes = s->class_count, top = s->options.top < classes ? s->options.top : classes;
    for (int i = 0; i < s->options.image_count; i++) {
        softmax(s->logits + (size_t)i * classes, classes, probs);
        printf("%s\n", s->options.images[i]);
        /* Selection of the TOP largest: classes are few, so O(top * classes). */
        for (int rank = 0; rank < top; rank++) {
            int best = -1;
            for (int c = 0; c < classes; c++) {
                if (probs[c] >= 0 && (best < 0 || probs[c] > probs[best]))
                    best = c;
            }
            printf("  %7.3f%%  %s\n", 100.0 * probs[best], s->class_names[best]);
            probs[best] = -1; /* taken */
        }
    }
}

static int run_infer(infer_state *s)
{
    DMNSP_TRY(split_classes(s->options.classes, &s->class_names, &s->class_count, &s->class_storage));
    DMNSP_TRY(load_model(s));
    int texts = s->class_count < TEXT_CHUNK ? s->class_count : TEXT_CHUNK;
    int images = s->options.batch < s->options.image_count ? s->options.batch : s->options.image_count;
    DMNSP_TRY(clip_workspace_create(s->model, images, texts, 0, 0, &s->workspace));
    DMNSP_TRY(encode_classes(s));
    DMNSP_TRY(classify_images(s));

    double *probs = dmnsp_malloc((size_t)s->class_count * sizeof *probs, "the probabilities");
    if (probs == NULL)
        return -1;
    if (s->options.json)
        print_json(s, probs);
    else
        print_table(s, probs);
    free(probs);
    return 0;
}

int cmd_infer(int argc, char **argv)
{
    infer_state state;
    memset(&state, 0, sizeof state);
    int parsed = parse_options(argc, argv, &state.options);
    if (parsed != 0) {
        free(state.options.images);
        return parsed == 1 ? 0 : 2;
    }

    char threads[160];
    dist_default_threads(1, threads, sizeof threads);
    int status = run_infer(&state);
    if (status != 0)
        fprintf(stderr, "dmnsp infer: %s\n", dmnsp_last_error());
    if (fflush(stdout) != 0 && status == 0) {
        fprintf(stderr, "dmnsp infer: writing the results failed: %s\n", strerror(errno));
        status = -1;
    }
    infer_state_free(&state);
    free(state.options.images);
    return status != 0 ? 1 : 0;
}
