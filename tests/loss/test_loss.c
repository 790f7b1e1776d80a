/* Loss tests without fixtures: the forward against a double-precision
 * re-implementation, the backward against its central finite differences,
 * shards of a global batch summing to the whole-batch result, an empty
 * shard, input errors, and argmax prediction. */
#include "dmnsp/error.h"
#include "dmnsp/loss.h"
#include "test_util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Deterministic values in [-1, 1). */
static double uniform(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*state >> 11) / (double)(1ULL << 53) * 2.0 - 1.0;
}

static void fill_random(float *x, size_t n, uint64_t seed)
{
    uint64_t state = seed;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)uniform(&state);
}

/* The loss in double, written directly from its definition. */
static double reference_loss(const double *image, int n, const double *text, int classes, int dim, double scale,
                             const int *labels, double smoothing, long n_global)
{
    double total = 0;
    double *logits = malloc((size_t)classes * sizeof *logits);
    for (int i = 0; i < n; i++) {
        const double *x = image + (size_t)i * dim;
        double x_norm = 0;
        for (int k = 0; k < dim; k++)
            x_norm += x[k] * x[k];
        x_norm = sqrt(x_norm);
        for (int c = 0; c < classes; c++) {
            const double *t = text + (size_t)c * dim;
            double t_norm = 0, dot = 0;
            for (int k = 0; k < dim; k++) {
                t_norm += t[k] * t[k];
                dot += x[k] * t[k];
            }
            logits[c] = scale * dot / (x_norm * sqrt(t_norm));
        }
        double sum = 0;
        for (int c = 0; c < classes; c++)
            sum += exp(logits[c]);
        double log_sum = log(sum), mean_neg_log = 0;
        for (int c = 0; c < classes; c++)
            mean_neg_log += (log_sum - logits[c]) / classes;
        total += (1 - smoothing) * (log_sum - logits[labels[i]]) + smoothing * mean_neg_log;
    }
    free(logits);
    return total / (double)n_global;
}

static void to_double(double *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = in[i];
}

/* Forward value and backward of loss_clip_* against the double reference
 * and its central differences, for one shape and setting. */
static void check_gradients(int n, int classes, int dim, float logit_scale, float smoothing, uint64_t seed)
{
    size_t image_count = (size_t)n * dim, text_count = (size_t)classes * dim;
    float *image = malloc(image_count * sizeof *image);
    float *text = malloc(text_count * sizeof *text);
    float *d_image = malloc(image_count * sizeof *d_image);
    float *d_text = malloc(text_count * sizeof *d_text);
    float *fd_image = malloc(image_count * sizeof *fd_image);
    float *fd_text = malloc(text_count * sizeof *fd_text);
    double *image64 = malloc(image_count * sizeof *image64);
    double *text64 = malloc(text_count * sizeof *text64);
    int *labels = malloc((size_t)n * sizeof *labels);
    fill_random(image, image_count, seed);
    fill_random(text, text_count, seed + 1);
    for (int i = 0; i < n; i++)
        labels[i] = (i * 7 + 3) % classes;
    to_double(image64, image, image_count);
    to_double(text64, text, text_count);

    loss_workspace *ws = NULL;
    CHECK_OK(loss_workspace_create(n, classes, dim, &ws));
    loss_result result;
    CHECK_OK(loss_clip_forward(ws, image, n, text, classes, logit_scale, labels, smoothing, n, &result));
    CHECK_OK(loss_clip_backward(ws, d_image, d_text));

    double scale = exp((double)logit_scale);
    double expected = reference_loss(image64, n, text64, classes, dim, scale, labels, smoothing, n);
    CHECK_NEAR(result.loss, expected, 1e-5 * fabs(expected) + 1e-6);

    const double h = 1e-6;
    for (size_t j = 0; j < image_count; j++) {
        double saved = image64[j];
        image64[j] = saved + h;
        double plus = reference_loss(image64, n, text64, classes, dim, scale, labels, smoothing, n);
        image64[j] = saved - h;
        double minus = reference_loss(image64, n, text64, classes, dim, scale, labels, smoothing, n);
        image64[j] = saved;
        fd_image[j] = (float)((plus - minus) / (2 * h));
    }
    for (size_t j = 0; j < text_count; j++) {
        double saved = text64[j];
        text64[j] = saved + h;
        double plus = reference_loss(image64, n, text64, classes, dim, scale, labels, smoothing, n);
        text64[j] = saved - h;
        double minus = reference_loss(image64, n, text64, classes, dim, scale, labels, smoothing, n);
        text64[j] = saved;
        fd_text[j] = (float)((plus - minus) / (2 * h));
    }
    test_compare_floats("d_image_features vs finite differences", d_image, fd_image, image_count, 1e-4, 1e-2);
    test_compare_floats("d_text_features vs finite differences", d_text, fd_text, text_count, 1e-4, 1e-2);

    loss_workspace_free(ws);
    free(image);
    free(text);
    free(d_image);
    free(d_text);
    free(fd_image);
    free(fd_text);
    free(image64);
    free(text64);
    free(labels);
}

/* Splitting a batch of N into shards of sizes 3, 0 and N-3 with the global
 * size passed to each gives losses and gradients that sum to the one-shard
 * result; the empty shard contributes zeros. */
static void check_shards_sum_to_whole_batch(void)
{
    const int n = 8, classes = 5, dim = 12;
    const float logit_scale = 4.6052f, smoothing = 0.1f;
    float image[8 * 12], text[5 * 12];
    int labels[8] = {0, 4, 2, 2, 1, 3, 0, 4};
    fill_random(image, sizeof image / sizeof image[0], 77);
    fill_random(text, sizeof text / sizeof text[0], 78);

    loss_workspace *ws = NULL;
    CHECK_OK(loss_workspace_create(n, classes, dim, &ws));
    float d_image_whole[8 * 12], d_text_whole[5 * 12];
    loss_result whole;
    CHECK_OK(loss_clip_forward(ws, image, n, text, classes, logit_scale, labels, smoothing, n, &whole));
    CHECK_OK(loss_clip_backward(ws, d_image_whole, d_text_whole));

    const int shard_sizes[3] = {3, 0, 5};
    float d_image_sum[8 * 12], d_text_sum[5 * 12] = {0}, d_text_shard[5 * 12];
    double loss_sum = 0;
    long correct_sum = 0;
    int begin = 0;
    for (int s = 0; s < 3; s++) {
        loss_result part;
        int count = shard_sizes[s];
        memset(d_text_shard, 0x7f, sizeof d_text_shard);
        CHECK_OK(loss_clip_forward(ws, image + (size_t)begin * dim, count, text, classes, logit_scale,
                                   labels + begin, smoothing, n, &part));
        CHECK_OK(loss_clip_backward(ws, d_image_sum + (size_t)begin * dim, d_text_shard));
        if (count == 0) {
            CHECK(part.loss == 0);
            CHECK(part.correct == 0);
        }
        for (int j = 0; j < classes * dim; j++)
            d_text_sum[j] += d_text_shard[j];
        loss_sum += part.loss;
        correct_sum += part.correct;
        begin += count;
    }
    CHECK_NEAR(loss_sum, whole.loss, 1e-6 * fabs(whole.loss));
    CHECK_EQ_INT(correct_sum, whole.correct);
    test_compare_floats("sharded d_image_features", d_image_sum, d_image_whole, (size_t)n * dim, 1e-6, 1e-3);
    test_compare_floats("sharded d_text_features", d_text_sum, d_text_whole, (size_t)classes * dim, 1e-5, 1e-3);
    loss_workspace_free(ws);
}

static void check_invalid_inputs(void)
{
    loss_workspace *ws = NULL;
    float image[2 * 4] = {1, 0, 0, 0, 0, 1, 0, 0};
    float text[3 * 4] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
    int labels[2] = {0, 3};
    loss_result result;

    CHECK_FAILS_WITH(loss_workspace_create(0, 3, 4, &ws), "invalid workspace size");
    CHECK(ws == NULL);
    CHECK_OK(loss_workspace_create(2, 3, 4, &ws));
    CHECK_FAILS_WITH(loss_clip_forward(ws, image, 2, text, 3, 0.0f, labels, 0.0f, 2, &result),
                     "label 3 of image 1 is outside 0..2");
    labels[1] = 1;
    CHECK_FAILS_WITH(loss_clip_forward(ws, image, 3, text, 3, 0.0f, labels, 0.0f, 3, &result),
                     "3 images in the batch (expected 0..2");
    CHECK_FAILS_WITH(loss_clip_forward(ws, image, 2, text, 4, 0.0f, labels, 0.0f, 2, &result), "4 classes");
    CHECK_FAILS_WITH(loss_clip_forward(ws, image, 2, text, 3, 0.0f, labels, 0.0f, 1, &result),
                     "global batch size 1 is smaller than the local batch 2");
    CHECK_FAILS_WITH(loss_clip_forward(ws, image, 2, text, 3, 0.0f, labels, 1.5f, 2, &result),
                     "label smoothing 1.5");
    text[4 * 2 + 2] = 0;
    CHECK_FAILS_WITH(loss_clip_forward(ws, image, 2, text, 3, 0.0f, labels, 0.0f, 2, &result),
                     "text feature of class 2 has zero or non-finite norm");
    text[4 * 2 + 2] = 1;
    image[4] = NAN;
    CHECK_FAILS_WITH(loss_clip_forward(ws, image, 2, text, 3, 0.0f, labels, 0.0f, 2, &result),
                     "image feature 1 has zero or non-finite norm");
    image[4] = 0;
    CHECK_OK(loss_clip_forward(ws, image, 2, text, 3, 0.0f, labels, 0.0f, 2, &result));
    CHECK_EQ_INT(result.correct, 2);
    loss_workspace_free(ws);
}

static void check_predict(void)
{
    /* Text rows normalised; image 0 is closest to class 2, image 1 ties
     * between classes 0 and 1 (lowest index wins), image 2 scaled by 100
     * still picks class 1. */
    float text[3 * 2] = {3, 0, 0, 4, -1, -1};
    CHECK_OK(loss_normalize_rows(text, 3, 2));
    CHECK_NEAR(text[0], 1.0, 1e-7);
    CHECK_NEAR(text[3], 1.0, 1e-7);
    CHECK_NEAR(text[4], -sqrt(0.5), 1e-7);
    float image[3 * 2] = {-0.5f, -0.2f, 1, 1, 0, 100};
    int predictions[3] = {-1, -1, -1};
    loss_predict(image, 3, text, 3, 2, predictions);
    CHECK_EQ_INT(predictions[0], 2);
    CHECK_EQ_INT(predictions[1], 0);
    CHECK_EQ_INT(predictions[2], 1);
    int labels[3] = {2, 1, 1};
    CHECK_EQ_INT(loss_count_correct(predictions, labels, 3), 2);

    float zero_row[2 * 2] = {1, 1, 0, 0};
    CHECK_FAILS_WITH(loss_normalize_rows(zero_row, 2, 2), "feature row 1 has norm 0");
}

int main(void)
{
    check_gradients(5, 4, 6, logf(10.0f), 0.0f, 11);
    check_gradients(6, 7, 5, logf(100.0f), 0.2f, 12);
    check_gradients(1, 3, 8, 1.5f, 1.0f, 13);
    check_shards_sum_to_whole_batch();
    check_invalid_inputs();
    check_predict();
    return test_finish("test_loss");
}
