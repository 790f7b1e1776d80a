/* clip_layout: presets, the tensor table against the closed-form counts,
 * and adapter views against the table's offsets. */
#include "dmnsp/clip_layout.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>

static void check_preset_layout(const char *name)
{
    clip_config c;
    CHECK_OK(clip_preset(name, &c));
    clip_tensor_info *table = NULL;
    int count = 0;
    CHECK_OK(clip_tensor_table(&c, &table, &count));

    size_t frozen = 0, adapters = 0;
    for (int i = 0; i < count; i++) {
        size_t *total = table[i].is_adapter ? &adapters : &frozen;
        CHECK_EQ_INT(table[i].offset, *total);
        *total += table[i].count;
    }
    CHECK_EQ_INT(frozen, clip_frozen_count(&c));
    CHECK_EQ_INT(adapters, clip_adapter_count(&c));

    /* Every adapter view points where the table says. */
    float *buffer = calloc(clip_adapter_count(&c), sizeof *buffer);
    const char *prefixes[2] = {"visual.transformer.", "transformer."};
    int layers[2] = {c.vision_layers, c.text_layers};
    for (int m = 0; m < 2; m++) {
        for (int block = 0; block < layers[m]; block++) {
            clip_adapter_view view;
            clip_adapter_block(&c, buffer, (clip_modality)m, block, &view);
            char tensor_name[128];
            snprintf(tensor_name, sizeof tensor_name, "%sresblocks.%d.adaptmlp.up_proj.weight", prefixes[m], block);
            int index = clip_tensor_find(table, count, tensor_name);
            CHECK(index >= 0);
            if (index >= 0)
                CHECK_EQ_INT((size_t)(view.up_w - buffer), table[index].offset);
        }
    }
    free(table);
    free(buffer);
}

int main(void)
{
    check_preset_layout("ViT-B/16");
    check_preset_layout("ViT-L/14");
    check_preset_layout("tiny");

    clip_config c;
    CHECK_FAILS_WITH(clip_preset("ViT-H/14", &c), "ViT-H/14");
    CHECK_OK(clip_preset("ViT-B/16", &c));
    CHECK_EQ_INT(clip_vision_tokens(&c), 197);
    c.vision_heads = 7;
    CHECK_FAILS_WITH(clip_config_validate(&c), "vision_heads");
    return test_finish("test_clip_layout");
}
