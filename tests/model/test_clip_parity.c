/* Compares the C encoders with the PyTorch reference on a small random
 * CLIP (tests/model/fixtures/clip_small.safetensors, written by
 * gen_fixtures.py): features, logits, visual adapter outputs and adapter
 * gradients, in eval mode and in training mode with dropout. Also checks
 * that activation recomputation and splitting a batch leave every result
 * unchanged. */
#include "dmnsp/clip.h"
#include "dmnsp/error.h"
#include "dmnsp/safetensors.h"
#include "clip_fixture.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FEATURE_TOL 1e-4
#define GRAD_TOL 1e-4
#define GRAD_FLOOR 1e-2

/* The expected gradients in adapter layout, from "<prefix><name>". */
static float *expected_gradients(const safetensors_file *f, const clip_model *m, const char *prefix)
{
    const clip_config *c = clip_model_config(m);
    float *grads = calloc(clip_adapter_count(c), sizeof(float));
    CHECK_OK(clip_fixture_read_tensors(f, c, prefix, NULL, grads));
    return grads;
}

static float *read_tensor(const safetensors_file *f, const char *name, size_t *count)
{
    float *data = NULL;
    CHECK_OK(safetensors_read_f32_alloc(f, name, &data, count));
    return data;
}

/* exp(logit_scale) · cosine similarities [n_images, n_texts]. */
static void compute_logits(const float *img, int n_img, const float *txt, int n_txt, int dim, float logit_scale,
                           float *out)
{
    for (int i = 0; i < n_img; i++)
        for (int j = 0; j < n_txt; j++) {
            double dot = 0, ni = 0, nt = 0;
            for (int k = 0; k < dim; k++) {
                dot += (double)img[i * dim + k] * txt[j * dim + k];
                ni += (double)img[i * dim + k] * img[i * dim + k];
                nt += (double)txt[j * dim + k] * txt[j * dim + k];
            }
            out[i * n_txt + j] = (float)(exp(logit_scale) * dot / sqrt(ni * nt));
        }
}

typedef struct {
    safetensors_file *file;
    clip_model *model;
    const clip_config *config;
    float *images, *d_image, *d_text;
    int32_t *tokens;
    int n_images, n_texts;
    clip_dropout_key key;
    long image_offset;
} fixture;

/* Runs both encoders and both backwards with encode FLAGS; features and
 * gradients are malloc'd for the caller. */
static void run_model(fixture *fx, clip_workspace *ws, int flags, float **img, float **txt, float **grads)
{
    int E = fx->config->embed_dim;
    *img = calloc((size_t)fx->n_images * E, sizeof(float));
    *txt = calloc((size_t)fx->n_texts * E, sizeof(float));
    *grads = calloc(clip_adapter_count(fx->config), sizeof(float));
    long offset = (flags & CLIP_ENCODE_TRAIN) ? fx->image_offset : 0;
    CHECK_OK(clip_encode_images(fx->model, ws, fx->images, fx->n_images, offset, flags, fx->key, *img));
    CHECK_OK(clip_encode_texts(fx->model, ws, fx->tokens, fx->n_texts, flags, fx->key, *txt));
    CHECK_OK(clip_backward_images(fx->model, ws, fx->d_image, *grads));
    CHECK_OK(clip_backward_texts(fx->model, ws, fx->d_text, *grads));
}

/* The kept adapter hidden activations z give back the adapter output of
 * every block of both encoders: a = scale · (z up_wᵀ + up_b). After a
 * pooled forward (FLAGS without CLIP_ENCODE_ALL_TOKENS), the last block
 * has neither. */
static void check_adapter_hidden(fixture *fx, clip_workspace *ws, int flags, const char *label)
{
    const clip_config *c = fx->config;
    int all_tokens = (flags & CLIP_ENCODE_ALL_TOKENS) != 0;
    for (int modality = CLIP_VISUAL; modality <= CLIP_TEXT; modality++) {
        int blocks = modality == CLIP_VISUAL ? c->vision_layers : c->text_layers;
        for (int block = 0; block < blocks; block++) {
            int rows = 0, hidden_rows = 0;
            const float *a = clip_workspace_adapter_output(fx->model, ws, modality, block, &rows);
            const float *z = clip_workspace_adapter_hidden(ws, modality, block, &hidden_rows);
            if (!all_tokens && block == blocks - 1) {
                CHECK(a == NULL);
                CHECK(z == NULL);
                CHECK_EQ_INT(rows, 0);
                CHECK_EQ_INT(hidden_rows, 0);
                continue;
            }
            CHECK(a != NULL);
            CHECK(z != NULL);
            CHECK_EQ_INT(hidden_rows, rows);
            if (a == NULL || z == NULL || hidden_rows != rows)
                continue;
            clip_adapter_view view;
            clip_adapter_block(c, clip_model_adapters(fx->model), modality, block, &view);
            int d = view.width, k = c->adapter_bottleneck;
            float *rebuilt = malloc(sizeof(float) * (size_t)rows * d);
            for (int r = 0; r < rows; r++)
                for (int i = 0; i < d; i++) {
                    double sum = view.up_b[i];
                    for (int j = 0; j < k; j++)
                        sum += (double)view.up_w[(size_t)i * k + j] * z[(size_t)r * k + j];
                    rebuilt[(size_t)r * d + i] = (float)(c->adapter_scale * sum);
                }
            /* errors relative to the block's largest output: the float
             * GEMM of the forward rounds small sums near cancellation */
            double largest = 0;
            for (size_t i = 0; i < (size_t)rows * d; i++)
                largest = fmax(largest, fabs(a[i]));
            char name[128];
            snprintf(name, sizeof name, "%s: %s block %d output from its hidden activations", label,
                     modality == CLIP_VISUAL ? "visual" : "text", block);
            test_compare_floats(name, rebuilt, a, (size_t)rows * d, 1e-5, largest);
            free(rebuilt);
        }
    }
}

/* FLAGS: 0 or CLIP_ENCODE_ALL_TOKENS; the features and gradients are the
 * same either way. */
static void test_eval_parity(fixture *fx, clip_workspace *ws, int flags, const char *label)
{
    int E = fx->config->embed_dim;
    float *img, *txt, *grads;
    run_model(fx, ws, flags, &img, &txt, &grads);
    char name[128];

    float *expected = read_tensor(fx->file, "eval.image_features", NULL);
    snprintf(name, sizeof name, "%s: eval image features", label);
    test_compare_floats(name, img, expected, (size_t)fx->n_images * E, FEATURE_TOL, 0);
    free(expected);

    expected = read_tensor(fx->file, "eval.text_features", NULL);
    snprintf(name, sizeof name, "%s: eval text features", label);
    test_compare_floats(name, txt, expected, (size_t)fx->n_texts * E, FEATURE_TOL, 0);
    free(expected);

    float *logits = malloc(sizeof(float) * fx->n_images * fx->n_texts);
    compute_logits(img, fx->n_images, txt, fx->n_texts, E, clip_model_logit_scale(fx->model), logits);
    expected = read_tensor(fx->file, "eval.logits", NULL);
    snprintf(name, sizeof name, "%s: eval logits", label);
    test_compare_floats(name, logits, expected, (size_t)fx->n_images * fx->n_texts, 1e-3, 0);
    free(expected);
    free(logits);

    check_adapter_hidden(fx, ws, flags, label);

    /* the adapter outputs stay readable after the backward */
    int readable_blocks = fx->config->vision_layers - ((flags & CLIP_ENCODE_ALL_TOKENS) ? 0 : 1);
    for (int block = 0; block < readable_blocks; block++) {
        int rows = 0;
        const float *a = clip_workspace_visual_adapter_output(fx->model, ws, block, &rows);
        CHECK_EQ_INT(rows, fx->n_images * clip_vision_tokens(fx->config));
        char tensor[64];
        snprintf(tensor, sizeof tensor, "eval.visual_adapter_output.%d", block);
        size_t count = 0;
        expected = read_tensor(fx->file, tensor, &count);
        CHECK_EQ_INT(count, (size_t)rows * fx->config->vision_width);
        snprintf(name, sizeof name, "%s: visual adapter output of block %d", label, block);
        if (a != NULL && count == (size_t)rows * fx->config->vision_width)
            test_compare_floats(name, a, expected, count, FEATURE_TOL, 0);
        free(expected);
    }

    expected = expected_gradients(fx->file, fx->model, "eval.grad.");
    snprintf(name, sizeof name, "%s: eval adapter gradients", label);
    test_compare_floats(name, grads, expected, clip_adapter_count(fx->config), GRAD_TOL, GRAD_FLOOR);
    free(expected);
    free(img), free(txt), free(grads);
}

static void test_train_parity(fixture *fx, clip_workspace *ws, int flags, const char *label)
{
    int E = fx->config->embed_dim;
    float *img, *txt, *grads;
    run_model(fx, ws, CLIP_ENCODE_TRAIN | flags, &img, &txt, &grads);
    char name[128];

    float *expected = read_tensor(fx->file, "train.image_features", NULL);
    snprintf(name, sizeof name, "%s: train image features", label);
    test_compare_floats(name, img, expected, (size_t)fx->n_images * E, FEATURE_TOL, 0);
    free(expected);

    expected = read_tensor(fx->file, "train.text_features", NULL);
    snprintf(name, sizeof name, "%s: train text features", label);
    test_compare_floats(name, txt, expected, (size_t)fx->n_texts * E, FEATURE_TOL, 0);
    free(expected);

    expected = expected_gradients(fx->file, fx->model, "train.grad.");
    snprintf(name, sizeof name, "%s: train adapter gradients", label);
    test_compare_floats(name, grads, expected, clip_adapter_count(fx->config), GRAD_TOL, GRAD_FLOOR);
    free(expected);

    check_adapter_hidden(fx, ws, flags, label);

    /* dropout changes the result, so the mask is really applied */
    float *eval_img = read_tensor(fx->file, "eval.image_features", NULL);
    double change = 0;
    for (int i = 0; i < fx->n_images * E; i++)
        change = fmax(change, fabs(eval_img[i] - img[i]));
    CHECK(change > 1e-3);
    free(eval_img);
    free(img), free(txt), free(grads);
}

/* Encoding the images in two shards with their global offsets gives the
 * same training-mode features and summed gradients as one batch. */
static void test_batch_split(fixture *fx)
{
    int E = fx->config->embed_dim, half = fx->n_images / 2;
    size_t image_floats = 3 * (size_t)fx->config->image_resolution * fx->config->image_resolution;
    clip_workspace *ws = NULL;
    CHECK_OK(clip_workspace_create(fx->model, half + 1, 1, 1, 0, &ws));
    if (ws == NULL)
        return;
    float *img = calloc((size_t)fx->n_images * E, sizeof(float));
    float *grads = calloc(clip_adapter_count(fx->config), sizeof(float));
    int begin[2] = {0, half}, count[2] = {half, fx->n_images - half};
    for (int shard = 0; shard < 2; shard++) {
        CHECK_OK(clip_encode_images(fx->model, ws, fx->images + begin[shard] * image_floats, count[shard],
                                    fx->image_offset + begin[shard], 1, fx->key, img + (size_t)begin[shard] * E));
        CHECK_OK(clip_backward_images(fx->model, ws, fx->d_image + (size_t)begin[shard] * E, grads));
    }
    float *expected = read_tensor(fx->file, "train.image_features", NULL);
    test_compare_floats("image shards: train features", img, expected, (size_t)fx->n_images * E, FEATURE_TOL, 0);
    free(expected);

    expected = expected_gradients(fx->file, fx->model, "train.grad.");
    size_t visual = clip_adapter_modality_count(fx->config, CLIP_VISUAL);
    test_compare_floats("image shards: visual adapter gradients", grads, expected, visual, GRAD_TOL, GRAD_FLOOR);
    free(expected);

    /* too large a batch is rejected with the limit in the message */
    CHECK_FAILS_WITH(clip_encode_images(fx->model, ws, fx->images, half + 2, 0, 0, fx->key, img), "expected 1..3");
    free(img), free(grads);
    clip_workspace_free(ws);
}

static void test_bad_calls(fixture *fx)
{
    clip_workspace *eval_only = NULL;
    CHECK_OK(clip_workspace_create(fx->model, fx->n_images, fx->n_texts, 0, 0, &eval_only));
    float *img = calloc((size_t)fx->n_images * fx->config->embed_dim, sizeof(float));
    float *grads = calloc(clip_adapter_count(fx->config), sizeof(float));
    CHECK_FAILS_WITH(clip_backward_images(fx->model, eval_only, fx->d_image, grads), "keep_for_backward");

    int rows = -1;
    CHECK(clip_workspace_visual_adapter_output(fx->model, eval_only, 0, &rows) == NULL);
    CHECK_EQ_INT(rows, 0);

    /* eval-only workspaces still give the same features */
    CHECK_OK(clip_encode_images(fx->model, eval_only, fx->images, fx->n_images, 0, 0, fx->key, img));
    float *expected = read_tensor(fx->file, "eval.image_features", NULL);
    test_compare_floats("eval-only workspace: image features", img, expected,
                        (size_t)fx->n_images * fx->config->embed_dim, FEATURE_TOL, 0);
    free(expected);

    int32_t bad[16] = {0};
    bad[3] = fx->config->vocab_size;
    CHECK_FAILS_WITH(clip_encode_texts(fx->model, eval_only, bad, 1, 0, fx->key, img), "out of range");

    clip_workspace *no_images = NULL;
    CHECK_OK(clip_workspace_create(fx->model, 0, 2, 1, 0, &no_images));
    CHECK_FAILS_WITH(clip_encode_images(fx->model, no_images, fx->images, 1, 0, 0, fx->key, img), "without room");
    CHECK_FAILS_WITH(clip_backward_texts(fx->model, no_images, fx->d_text, grads), "no forward");
    clip_workspace *none = NULL;
    CHECK_FAILS_WITH(clip_workspace_create(fx->model, 0, 0, 1, 0, &none), "not both 0");

    free(img), free(grads);
    clip_workspace_free(eval_only);
    clip_workspace_free(no_images);
}

int main(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/model/fixtures/clip_small.safetensors",
             test_env("DMNSP_SOURCE_DIR", DMNSP_SOURCE_DIR));
    fixture fx = {0};
    if (safetensors_open(path, &fx.file) != 0) {
        fprintf(stderr, "%s\n", dmnsp_last_error());
        return 1;
    }
    clip_config config = clip_fixture_config(fx.file);
    CHECK_OK(clip_fixture_create_model(fx.file, &config, &fx.model));
    if (fx.model == NULL)
        return test_finish("test_clip_parity");
    fx.config = clip_model_config(fx.model);

    size_t count = 0;
    fx.images = read_tensor(fx.file, "input.images", &count);
    fx.n_images = (int)(count / (3 * (size_t)config.image_resolution * config.image_resolution));
    fx.d_image = read_tensor(fx.file, "input.d_image_features", NULL);
    fx.d_text = read_tensor(fx.file, "input.d_text_features", &count);
    fx.n_texts = (int)(count / (size_t)config.embed_dim);
    fx.tokens = malloc(sizeof(int32_t) * fx.n_texts * config.context_length);
    CHECK_OK(safetensors_read_i32(fx.file, "input.tokens", fx.tokens, (size_t)fx.n_texts * config.context_length));
    fx.key.seed = (uint64_t)clip_fixture_metadata_int(fx.file, "dropout_seed");
    fx.key.step = (uint64_t)clip_fixture_metadata_int(fx.file, "dropout_step");
    fx.image_offset = clip_fixture_metadata_int(fx.file, "image_sample_offset");

    const char *labels[2][2] = {{"kept activations, pooled last block", "kept activations, all tokens"},
                                {"recomputed blocks, pooled last block", "recomputed blocks, all tokens"}};
    for (int recompute = 0; recompute < 2; recompute++) {
        clip_workspace *ws = NULL;
        CHECK_OK(clip_workspace_create(fx.model, fx.n_images, fx.n_texts, 1, recompute, &ws));
        if (ws == NULL)
            continue;
        for (int all_tokens = 0; all_tokens < 2; all_tokens++) {
            int flags = all_tokens ? CLIP_ENCODE_ALL_TOKENS : 0;
            test_eval_parity(&fx, ws, flags, labels[recompute][all_tokens]);
            test_train_parity(&fx, ws, flags, labels[recompute][all_tokens]);
        }
        clip_workspace_free(ws);
    }
    test_batch_split(&fx);
    test_bad_calls(&fx);

    free(fx.images), free(fx.d_image), free(fx.d_text), free(fx.tokens);
    clip_model_free(fx.model);
    safetensors_close(fx.file);
    return test_finish("test_clip_parity");
}
