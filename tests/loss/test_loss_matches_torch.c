/* Loss parity with PyTorch: logits, loss and the gradients with respect to
 * both feature sets against loss_fixture.safetensors, written by
 * gen_loss_fixtures.py (float64 autograd through F.cross_entropy with
 * label_smoothing). */
#include "dmnsp/error.h"
#include "dmnsp/loss.h"
#include "dmnsp/safetensors.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Reads tensor "PREFIX.FIELD" of one case into a malloc'd array. */
static float *read_tensor(const safetensors_file *file, const char *prefix, const char *field, size_t *count)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", prefix, field);
    float *data = NULL;
    test_check_ok(safetensors_read_f32_alloc(file, name, &data, count), name, __FILE__, __LINE__);
    return data;
}

static void check_case(const safetensors_file *file, const char *prefix)
{
    char name[128];
    size_t image_count = 0, text_count = 0, logit_count = 0, one = 0;
    float *image = read_tensor(file, prefix, "image_features", &image_count);
    float *text = read_tensor(file, prefix, "text_features", &text_count);
    float *logits = read_tensor(file, prefix, "logits", &logit_count);
    float *d_image_expected = read_tensor(file, prefix, "d_image_features", &one);
    float *d_text_expected = read_tensor(file, prefix, "d_text_features", &one);
    float *loss = read_tensor(file, prefix, "loss", &one);
    float *logit_scale = read_tensor(file, prefix, "logit_scale", &one);
    float *smoothing = read_tensor(file, prefix, "label_smoothing", &one);
    if (!image || !text || !logits || !d_image_expected || !d_text_expected || !loss || !logit_scale || !smoothing)
        return;

    snprintf(name, sizeof name, "%s.labels", prefix);
    const safetensors_tensor *label_info = safetensors_find(file, name);
    CHECK(label_info != NULL);
    if (label_info == NULL)
        return;
    int n = (int)label_info->count;
    int classes = (int)(logit_count / (size_t)n);
    int dim = (int)(image_count / (size_t)n);
    CHECK_EQ_INT(text_count, (size_t)classes * dim);
    int32_t *labels32 = malloc((size_t)n * sizeof *labels32);
    int *labels = malloc((size_t)n * sizeof *labels);
    CHECK_OK(safetensors_read_i32(file, name, labels32, (size_t)n));
    for (int i = 0; i < n; i++)
        labels[i] = labels32[i];

    loss_workspace *ws = NULL;
    CHECK_OK(loss_workspace_create(n, classes, dim, &ws));
    loss_result result;
    CHECK_OK(loss_clip_forward(ws, image, n, text, classes, logit_scale[0], labels, smoothing[0], n, &result));
    float *d_image = malloc(image_count * sizeof *d_image);
    float *d_text = malloc(text_count * sizeof *d_text);
    CHECK_OK(loss_clip_backward(ws, d_image, d_text));

    printf("case %s: %d images, %d classes, %d features, label smoothing %g\n", prefix, n, classes, dim,
           (double)smoothing[0]);
    CHECK_NEAR(result.loss, loss[0], 1e-5 * fabs(loss[0]));
    test_compare_floats("logits", loss_workspace_logits(ws), logits, logit_count, 1e-4, 1.0);
    test_compare_floats("d_image_features", d_image, d_image_expected, image_count, 1e-4, 1e-3);
    test_compare_floats("d_text_features", d_text, d_text_expected, text_count, 1e-4, 1e-3);

    loss_workspace_free(ws);
    free(image);
    free(text);
    free(logits);
    free(d_image_expected);
    free(d_text_expected);
    free(loss);
    free(logit_scale);
    free(smoothing);
    free(labels32);
    free(labels);
    free(d_image);
    free(d_text);
}

int main(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/loss/loss_fixture.safetensors", test_env("DMNSP_SOURCE_DIR", "."));
    safetensors_file *file = NULL;
    CHECK_OK(safetensors_open(path, &file));
    if (file != NULL) {
        check_case(file, "ls0");
        check_case(file, "ls02");
        safetensors_close(file);
    }
    return test_finish("test_loss_matches_torch");
}
