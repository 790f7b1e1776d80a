/* model_flops: the nominal FLOP counts that the benchmarks divide by time.
 *
 * A multiply-add counts as 2 FLOPs. Only matrix products are counted; for
 * ViT-B/16 they are over 99% of the arithmetic. Per residual block on B
 * samples of T tokens (N = B·T rows, width C, adapter bottleneck K):
 *
 *   forward   2N·(3C² + C² + 8C²) + 2·2N·C·K + 2·2B·T²·C
 *             (in_proj, out_proj, c_fc + c_proj, adapter down + up,
 *              attention scores + weighted values)
 *   backward  the same products for the input gradients, 2·2N·C·K for the
 *             adapter weight gradients, and 4·2B·T²·C for attention
 *
 * Blocks 1..L-1 run the full backward. Block 0 runs only its adapter's
 * backward (weight gradients and the gradient of the adapter output),
 * because nothing before it trains; PyTorch's autograd skips the same work.
 * The image encoder adds the patch GEMM (forward only) and the output
 * projection. Text rows count at their length up to the end-of-text token,
 * not at the padded context length.
 *
 * These are the model's FLOPs, the same for dmnsp and PyTorch. dmnsp
 * executes fewer: its last block computes only the pooled rows apart from
 * keys and values, which for ViT-B/16 leaves out about 7% of this count.
 */
#ifndef DMNSP_BENCH_MODEL_FLOPS_H
#define DMNSP_BENCH_MODEL_FLOPS_H

#include "dmnsp/clip_layout.h"

static inline double block_forward_flops(double samples, double tokens, double width, double bottleneck)
{
    double rows = samples * tokens;
    return 2.0 * rows * 12.0 * width * width + 4.0 * rows * width * bottleneck +
           4.0 * samples * tokens * tokens * width;
}

static inline double block_backward_flops(double samples, double tokens, double width, double bottleneck)
{
    double rows = samples * tokens;
    return 2.0 * rows * 12.0 * width * width + 8.0 * rows * width * bottleneck +
           8.0 * samples * tokens * tokens * width;
}

/* Adapter-only backward of block 0: up (input and weight gradients), down
 * (weight gradient). */
static inline double first_block_backward_flops(double samples, double tokens, double width, double bottleneck)
{
    return 6.0 * samples * tokens * width * bottleneck;
}

static inline double image_forward_flops(const clip_config *c, int images)
{
    double grid = (double)(c->image_resolution / c->patch_size), tokens = grid * grid + 1;
    double patch = 3.0 * c->patch_size * c->patch_size;
    double flops = 2.0 * images * grid * grid * patch * c->vision_width;
    flops += c->vision_layers * block_forward_flops(images, tokens, c->vision_width, c->adapter_bottleneck);
    return flops + 2.0 * images * c->vision_width * c->embed_dim;
}

static inline double encoder_backward_flops(int layers, double samples, double tokens, double width, double bottleneck)
{
    return (layers - 1) * block_backward_flops(samples, tokens, width, bottleneck) +
           first_block_backward_flops(samples, tokens, width, bottleneck);
}

/* One training step: both encoders forward and backward, IMAGES images and
 * TEXTS prompt rows of TEXT_TOKENS tokens each. */
static inline double train_step_flops(const clip_config *c, int images, int texts, int text_tokens)
{
    double grid = (double)(c->image_resolution / c->patch_size), tokens = grid * grid + 1;
    double flops = image_forward_flops(c, images);
    flops += 2.0 * images * c->vision_width * c->embed_dim;
    flops += encoder_backward_flops(c->vision_layers, images, tokens, c->vision_width, c->adapter_bottleneck);
    flops += c->text_layers * block_forward_flops(texts, text_tokens, c->text_width, c->adapter_bottleneck);
    flops += encoder_backward_flops(c->text_layers, texts, text_tokens, c->text_width, c->adapter_bottleneck);
    return flops + 4.0 * texts * c->text_width * c->embed_dim;
}

#endif
