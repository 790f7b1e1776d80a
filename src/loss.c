/* loss: CLIP logits and label-smoothed cross entropy (see
 * include/dmnsp/loss.h). Softmax and the loss accumulate in double; the
 * three GEMMs run in float through CBLAS. */
#include "dmnsp/loss.h"

#include "dmnsp/error.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct loss_workspace {
    int max_images;
    int max_classes;
    int dim;

    /* the last forward's shapes and inputs */
    int n;
    int classes;
    float scale; /* exp(logit_scale) */
    float label_smoothing;
    long n_global;
    const int *labels;

    float *image_normalized;  /* [max_images, D] */
    float *image_inv_norm;    /* [max_images] */
    float *text_normalized;   /* [max_classes, D] */
    float *text_inv_norm;     /* [max_classes] */
    float *logits;            /* [max_images, max_classes] */
    double *probabilities;    /* [max_images, max_classes] */
    float *d_logits;          /* [max_images, max_classes] */
    float *d_image_normalized; /* [max_images, D] */
    float *d_text_normalized;  /* [max_classes, D] */
};

int loss_workspace_create(int max_images, int max_classes, int embed_dim, loss_workspace **out)
{
    *out = NULL;
    if (max_images < 1 || max_classes < 1 || embed_dim < 1)
        return dmnsp_fail("loss: invalid workspace size (images %d, classes %d, embed_dim %d; expected all >= 1)",
                          max_images, max_classes, embed_dim);

    loss_workspace *ws = dmnsp_calloc(1, sizeof *ws, "loss workspace");
    if (ws == NULL)
        return -1;
    ws->max_images = max_images;
    ws->max_classes = max_classes;
    ws->dim = embed_dim;

    size_t ni = (size_t)max_images, nc = (size_t)max_classes, d = (size_t)embed_dim;
    ws->image_normalized = dmnsp_malloc(ni * d * sizeof(float), "loss normalised image features");
    ws->image_inv_norm = dmnsp_malloc(ni * sizeof(float), "loss image norms");
    ws->text_normalized = dmnsp_malloc(nc * d * sizeof(float), "loss normalised text features");
    ws->text_inv_norm = dmnsp_malloc(nc * sizeof(float), "loss text norms");
    ws->logits = dmnsp_malloc(ni * nc * sizeof(float), "loss logits");
    ws->probabilities = dmnsp_malloc(ni * nc * sizeof(double), "loss probabilities");
    ws->d_logits = dmnsp_malloc(ni * nc * sizeof(float), "loss logit gradients");
    ws->d_image_normalized = dmnsp_malloc(ni * d * sizeof(float), "loss image gradients");
    ws->d_text_normalized = dmnsp_malloc(nc * d * sizeof(float), "loss text gradients");
    if (!ws->image_normalized || !ws->image_inv_norm || !ws->text_normalized || !ws->text_inv_norm ||
        !ws->logits || !ws->probabilities || !ws->d_logits || !ws->d_image_normalized ||
        !ws->d_text_normalized) {
        loss_workspace_free(ws);
        return -1;
    }
    *out = ws;
    return 0;
}

void loss_workspace_free(loss_workspace *ws)
{
    if (ws == NULL)
        return;
    free(ws->image_normalized);
    free(ws->image_inv_norm);
    free(ws->text_normalized);
    free(ws->text_inv_norm);
    free(ws->logits);
    free(ws->probabilities);
    free(ws->d_logits);
    free(ws->d_image_normalized);
    free(ws->d_text_normalized);
    free(ws);
}

const float *loss_workspace_logits(const loss_workspace *ws)
{
    return ws->logits;
}

/* out [N, D] = x / |x| row-wise, inv_norm [N] = 1 / |x|. Returns the index
 * of the first row with zero or non-finite norm, or -1 when all are fine. */
static int normalize_forward(float *out, float *inv_norm, const float *x, int n, int dim)
{
    int bad_row = -1;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *row = x + (size_t)i * dim;
        double sum = 0;
        for (int k = 0; k < dim; k++)
            sum += (double)row[k] * row[k];
        double norm = sqrt(sum);
        if (!(norm > 0) || !isfinite(norm)) {
#pragma omp critical(loss_bad_row)
            if (bad_row < 0 || i < bad_row)
                bad_row = i;
            continue;
        }
        float inv = (float)(1.0 / norm);
        inv_norm[i] = inv;
        float *dst = out + (size_t)i * dim;
        for (int k = 0; k < dim; k++)
            dst[k] = row[k] * inv;
    }
    return bad_row;
}

/* dx [N, D] = (du - u <u, du>) / |x| for u = x / |x|: the backward of the
 * row normalisation. */
static void normalize_backward(float *dx, const float *du, const float *u, const float *inv_norm, int n, int dim)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *du_row = du + (size_t)i * dim;
        const float *u_row = u + (size_t)i * dim;
        double dot = 0;
        for (int k = 0; k < dim; k++)
            dot += (double)u_row[k] * du_row[k];
        float projection = (float)dot;
        float *dx_row = dx + (size_t)i * dim;
        for (int k = 0; k < dim; k++)
            dx_row[k] = (du_row[k] - u_row[k] * projection) * inv_norm[i];
    }
}

int loss_normalize_rows(float *x, int n, int dim)
{
    for (int i = 0; i < n; i++) {
        float *row = x + (size_t)i * dim;
        double sum = 0;
        for (int k = 0; k < dim; k++)
            sum += (double)row[k] * row[k];
        double norm = sqrt(sum);
        if (!(norm > 0) || !isfinite(norm))
            return dmnsp_fail("loss: feature row %d has norm %g (expected a finite, non-zero norm)", i, norm);
        float inv = (float)(1.0 / norm);
        for (int k = 0; k < dim; k++)
            row[k] *= inv;
    }
    return 0;
}

int loss_clip_forward(loss_workspace *ws, const float *image_features, int n, const float *text_features,
                      int classes, float logit_scale, const int *labels, float label_smoothing, long n_global,
                      loss_result *out)
{
    out->loss = 0;
    out->correct = 0;
    if (n < 0 || n > ws->max_images)
        return dmnsp_fail("loss: %d images in the batch (expected 0..%d, the workspace size)", n, ws->max_images);
    if (classes < 1 || classes > ws->max_classes)
        return dmnsp_fail("loss: %d classes (expected 1..%d, the workspace size)", classes, ws->max_classes);
    if (n_global < n || n_global < 1)
        return dmnsp_fail("loss: global batch size %ld is smaller than the local batch %d or below 1", n_global, n);
    if (!(label_smoothing >= 0 && label_smoothing <= 1))
        return dmnsp_fail("loss: label smoothing %g outside [0, 1]", (double)label_smoothing);
    for (int i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= classes)
            return dmnsp_fail("loss: label %d of image %d is outside 0..%d", labels[i], i, classes - 1);
    }

    int d = ws->dim;
    ws->n = n;
    ws->classes = classes;
    ws->scale = expf(logit_scale);
    ws->label_smoothing = label_smoothing;
    ws->n_global = n_global;
    ws->labels = labels;

    int bad = normalize_forward(ws->text_normalized, ws->text_inv_norm, text_features, classes, d);
    if (bad >= 0)
        return dmnsp_fail("loss: text feature of class %d has zero or non-finite norm", bad);
    if (n == 0)
        return 0;
    bad = normalize_forward(ws->image_normalized, ws->image_inv_norm, image_features, n, d);
    if (bad >= 0)
        return dmnsp_fail("loss: image feature %d has zero or non-finite norm", bad);

    /* logits [N, C] = scale * image_normalized [N, D] . text_normalizedᵀ [D, C] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, classes, d, ws->scale, ws->image_normalized, d,
                ws->text_normalized, d, 0.0f, ws->logits, classes);

    /* Row-wise softmax and loss in double; d_logits is kept for backward:
     * d loss_i / d logit_c = p_c - (1 - ls) [c == y] - ls / C, over n_global. */
    double loss_sum = 0;
    long correct = 0;
    double smooth = label_smoothing, inv_global = 1.0 / (double)n_global;
#pragma omp parallel for schedule(static) reduction(+ : loss_sum, correct)
    for (int i = 0; i < n; i++) {
        const float *z = ws->logits + (size_t)i * classes;
        double *p = ws->probabilities + (size_t)i * classes;
        float *dz = ws->d_logits + (size_t)i * classes;

        int argmax = 0;
        for (int c = 1; c < classes; c++) {
            if (z[c] > z[argmax])
                argmax = c;
        }
        double max = z[argmax], sum = 0;
        for (int c = 0; c < classes; c++) {
            p[c] = exp((double)z[c] - max);
            sum += p[c];
        }
        double log_sum = log(sum), mean_neg_log = 0;
        for (int c = 0; c < classes; c++) {
            p[c] /= sum;
            mean_neg_log += log_sum - ((double)z[c] - max);
        }
        mean_neg_log /= classes;
        double neg_log_label = log_sum - ((double)z[labels[i]] - max);
        loss_sum += (1 - smooth) * neg_log_label + smooth * mean_neg_log;
        correct += (argmax == labels[i]);

        for (int c = 0; c < classes; c++) {
            double target = smooth / classes + (c == labels[i] ? 1 - smooth : 0);
            dz[c] = (float)((p[c] - target) * inv_global);
        }
    }
    out->loss = loss_sum * inv_global;
    out->correct = correct;
    return 0;
}

int loss_clip_backward(loss_workspace *ws, float *d_image_features, float *d_text_features)
{
    int n = ws->n, classes = ws->classes, d = ws->dim;
    if (n == 0) {
        memset(d_text_features, 0, (size_t)classes * d * sizeof(float));
        return 0;
    }

    /* d_image_normalized [N, D] = scale * d_logits [N, C] . text_normalized [C, D] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d, classes, ws->scale, ws->d_logits, classes,
                ws->text_normalized, d, 0.0f, ws->d_image_normalized, d);
    /* d_text_normalized [C, D] = scale * d_logitsᵀ [C, N] . image_normalized [N, D] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, classes, d, n, ws->scale, ws->d_logits, classes,
                ws->image_normalized, d, 0.0f, ws->d_text_normalized, d);

    normalize_backward(d_image_features, ws->d_image_normalized, ws->image_normalized, ws->image_inv_norm, n, d);
    normalize_backward(d_text_features, ws->d_text_normalized, ws->text_normalized, ws->text_inv_norm, classes, d);
    return 0;
}

void loss_predict(const float *image_features, int n, const float *text_features_normalized, int classes,
                  int dim, int *predictions)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *x = image_features + (size_t)i * dim;
        int best = 0;
        double best_score = -INFINITY;
        for (int c = 0; c < classes; c++) {
            const float *t = text_features_normalized + (size_t)c * dim;
            double score = 0;
            for (int k = 0; k < dim; k++)
                score += (double)x[k] * t[k];
            if (score > best_score) {
                best_score = score;
                best = c;
            }
        }
        predictions[i] = best;
    }
}

long loss_count_correct(const int *predictions, const int *labels, int n)
{
    long correct = 0;
    for (int i = 0; i < n; i++)
        correct += (predictions[i] == labels[i]);
    return correct;
}
