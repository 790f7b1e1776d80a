/* clip_layout: the shapes of a CLIP model with adapters and where every
 * tensor lives in dmnsp's two parameter buffers.
 *
 * All frozen tensors share one contiguous float buffer and all adapter
 * tensors another (gradients and AdamW moments use the adapter layout, so
 * zeroing, all-reducing and checkpointing them is one call over one
 * buffer). Tensors keep PyTorch's shapes and row-major order under
 * OpenAI's state-dict names, e.g. "visual.transformer.resblocks.3.attn.in_proj_weight"
 * [3*width, width]; linear weights are [out, in].
 *
 * Adapter buffer order: visual blocks 0..L-1, then text blocks 0..L-1; per
 * block down_w [bottleneck, width], down_b [bottleneck], up_w [width,
 * bottleneck], up_b [width].
 */
#ifndef DMNSP_CLIP_LAYOUT_H
#define DMNSP_CLIP_LAYOUT_H

#include <stddef.h>

typedef struct {
    /* image encoder */
    int image_resolution; /* input side in pixels (224) */
    int patch_size;       /* 16 */
    int vision_width;     /* 768 */
    int vision_layers;    /* 12 */
    int vision_heads;     /* width / 64 */
    /* text encoder */
    int context_length; /* 77 */
    int vocab_size;     /* 49408 */
    int text_width;     /* 512 */
    int text_layers;    /* 12 */
    int text_heads;     /* width / 64 */
    /* joint embedding */
    int embed_dim; /* 512 */
    /* adapters in every block of both encoders */
    int adapter_bottleneck;  /* 64 */
    float adapter_scale;     /* 0.1 */
    float adapter_dropout;   /* 0.1, training only */
} clip_config;

typedef enum { CLIP_VISUAL = 0, CLIP_TEXT = 1 } clip_modality;

/* Fills CONFIG with a named preset: "ViT-B/16", "ViT-B/32", "ViT-L/14" or
 * "tiny" (32 px, patch 8, vision width 128, text width 64, 12 blocks each,
 * byte-level vocabulary of 514 tokens). Adapter fields get 64 / 0.1 / 0.1.
 * Returns 0, or -1 with a message listing the presets. */
int clip_preset(const char *name, clip_config *config);
/* Comma-separated preset names, for help and error messages. */
const char *clip_preset_names(void);

/* Checks that the shapes are consistent (positive, divisible, heads*64 ==
 * width); returns 0 or -1 with a message naming the field. */
int clip_config_validate(const clip_config *config);

int clip_grid_size(const clip_config *config);     /* resolution / patch */
int clip_vision_tokens(const clip_config *config); /* grid^2 + 1 */

/* One tensor of the model: OpenAI name, PyTorch shape, offset in floats
 * into the frozen or the adapter buffer. ndim 0 means a scalar. */
typedef struct {
    char name[96];
    int ndim;
    int shape[4];
    size_t offset;
    size_t count; /* product of shape (1 for a scalar) */
    int is_adapter;
} clip_tensor_info;

/* Builds the table of every tensor (frozen first, then adapters, in buffer
 * order). *TABLE is malloc'd; the caller frees it. Returns 0 or -1. */
int clip_tensor_table(const clip_config *config, clip_tensor_info **table, int *count);
/* Index of NAME in TABLE, or -1. */
int clip_tensor_find(const clip_tensor_info *table, int count, const char *name);

size_t clip_frozen_count(const clip_config *config);  /* floats */
size_t clip_adapter_count(const clip_config *config); /* floats */

/* Pointers to one block's adapter tensors inside a buffer that has the
 * adapter layout (parameters, gradients or moments alike). */
typedef struct {
    float *down_w; /* [bottleneck, width] */
    float *down_b; /* [bottleneck] */
    float *up_w;   /* [width, bottleneck] */
    float *up_b;   /* [width] */
    int width;
    int bottleneck;
} clip_adapter_view;

void clip_adapter_block(const clip_config *config, float *buffer, clip_modality modality, int block,
                        clip_adapter_view *view);
/* Offset in floats of a modality's first adapter tensor, and the number of
 * floats of that modality's adapters. */
size_t clip_adapter_modality_offset(const clip_config *config, clip_modality modality);
size_t clip_adapter_modality_count(const clip_config *config, clip_modality modality);

#endif
