/* Test helper: writes a seeded random model of a preset to safetensors
 * (OpenAI names, fresh adapters), for tests that need a weights file.
 *   write_random_weights PRESET SEED OUT.safetensors */
#include "dmnsp/clip.h"
#include "dmnsp/error.h"
#include "dmnsp/weights.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: write_random_weights PRESET SEED OUT.safetensors\n");
        return 2;
    }
    clip_config config;
    clip_model *model = NULL;
    int status = clip_preset(argv[1], &config);
    if (status == 0)
        status = clip_model_create(&config, &model);
    if (status == 0)
        status = clip_model_init_random(model, strtoull(argv[2], NULL, 10));
    if (status == 0)
        status = clip_model_init_adapters(model, strtoull(argv[2], NULL, 10));
    if (status == 0)
        status = weights_save(argv[3], &config, clip_model_frozen(model), clip_model_adapters(model));
    clip_model_free(model);
    if (status != 0) {
        fprintf(stderr, "write_random_weights: %s\n", dmnsp_last_error());
        return 1;
    }
    return 0;
}
