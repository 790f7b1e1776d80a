/* clip_internal: the model struct shared by clip.c (parameters) and
 * clip_encoder.c (forward and backward). Not a public header. */
#ifndef DMNSP_CLIP_INTERNAL_H
#define DMNSP_CLIP_INTERNAL_H

#include "dmnsp/clip.h"

/* Pointers into the frozen buffer for one residual block. */
typedef struct {
    const float *ln_1_w, *ln_1_b;
    const float *in_proj_w, *in_proj_b;   /* [3C, C], [3C] */
    const float *out_proj_w, *out_proj_b; /* [C, C], [C] */
    const float *ln_2_w, *ln_2_b;
    const float *c_fc_w, *c_fc_b;     /* [4C, C], [4C] */
    const float *c_proj_w, *c_proj_b; /* [C, 4C], [C] */
} clip_block_weights;

struct clip_model {
    clip_config config;
    float *frozen;
    float *adapters;

    /* image encoder */
    const float *conv1;           /* [C, 3, P, P] */
    const float *class_embedding; /* [C] */
    const float *visual_pos;      /* [tokens, C] */
    const float *ln_pre_w, *ln_pre_b;
    const float *ln_post_w, *ln_post_b;
    const float *visual_proj; /* [C, embed_dim] */
    clip_block_weights *visual_blocks;

    /* text encoder */
    const float *token_embedding; /* [vocab, C] */
    const float *text_pos;        /* [context_length, C] */
    const float *ln_final_w, *ln_final_b;
    const float *text_proj; /* [C, embed_dim] */
    clip_block_weights *text_blocks;

    const float *logit_scale;
};

#endif
