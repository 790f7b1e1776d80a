/* Test helper: checks a file written by `dmnsp export` against what it
 * should contain: the frozen weights CONFIG builds, the adapters the
 * checkpoint stored after TASK, and the config's adapter scale.
 *   check_export CONFIG.yaml CHECKPOINT.h5 TASK EXPORTED.safetensors
 * Exit status 0 when everything matches bit for bit, 1 otherwise. */
#include "dmnsp/checkpoint.h"
#include "dmnsp/clip.h"
#include "dmnsp/config.h"
#include "dmnsp/error.h"
#include "dmnsp/experiment.h"
#include "dmnsp/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int same_floats(const char *name, const float *a, const float *b, size_t count)
{
    if (memcmp(a, b, count * sizeof *a) == 0)
        return 0;
    size_t i = 0;
    while (i < count && memcmp(&a[i], &b[i], sizeof *a) == 0)
        i++;
    return dmnsp_fail("%s differ at %zu: %.9g vs %.9g", name, i, (double)a[i], (double)b[i]);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: check_export CONFIG.yaml CHECKPOINT.h5 TASK EXPORTED.safetensors\n");
        return 2;
    }
    config *cfg = NULL;
    clip_config expected_config, file_config;
    clip_model *expected = NULL, *exported = NULL;
    checkpoint_reader *reader = NULL;
    weights_file *file = NULL;
    float scale = 0;

    int status = config_load(argv[1], 0, NULL, &cfg);
    if (status == 0)
        status = experiment_load_model(cfg, &expected_config, &expected);
    if (status == 0)
        status = checkpoint_open(argv[2], &reader);
    if (status == 0)
        status = checkpoint_read_task_adapters(reader, &expected_config, atoi(argv[3]), clip_model_adapters(expected));
    if (status == 0)
        status = weights_open(argv[4], &file);
    if (status == 0) {
        file_config = expected_config;
        status = weights_infer_config(file, &file_config);
    }
    if (status == 0)
        status = clip_model_create(&file_config, &exported);
    if (status == 0)
        status = weights_read(file, &file_config, clip_model_frozen(exported), clip_model_adapters(exported));
    if (status == 0 && weights_adapter_scale(file, &scale) != 1)
        status = dmnsp_fail("%s has no adapter scale in its metadata", argv[4]);
    if (status == 0 && scale != expected_config.adapter_scale)
        status = dmnsp_fail("adapter scale %g, expected %g", (double)scale, (double)expected_config.adapter_scale);
    if (status == 0 && clip_frozen_count(&file_config) != clip_frozen_count(&expected_config))
        status = dmnsp_fail("the exported model has another architecture");
    if (status == 0)
        status = same_floats("frozen weights", clip_model_frozen(exported), clip_model_frozen(expected),
                             clip_frozen_count(&expected_config));
    if (status == 0)
        status = same_floats("adapters", clip_model_adapters(exported), clip_model_adapters(expected),
                             clip_adapter_count(&expected_config));

    if (status != 0)
        fprintf(stderr, "check_export: %s\n", dmnsp_last_error());
    weights_close(file);
    checkpoint_close(reader);
    clip_model_free(exported);
    clip_model_free(expected);
    config_free(cfg);
    return status == 0 ? 0 : 1;
}
