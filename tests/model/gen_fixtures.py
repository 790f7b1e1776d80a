#!/usr/bin/python3
"""Write tests/model/fixtures/clip_small.safetensors from the PyTorch reference.

The file contains a small random CLIP with non-zero adapters (every tensor under
its OpenAI name), inputs, eval-mode and training-mode features, logits,
visual adapter outputs, and the adapter gradients of the loss
sum(image_features * d_image) + sum(text_features * d_text).

Run from the repository root with Debian's python (it has torch):
    /usr/bin/python3 tests/model/gen_fixtures.py
"""

import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

import clip_reference as ref  # noqa: E402
from fixture_setup import adapter_leaves, as_float32, random_prompts, save_fixture  # noqa: E402

# Two heads per encoder, patch 4 on 16 px (17 tokens), context 16 with the
# batch's last end-of-text at position 11, so the C encoder's cut is tested.
CONFIG = ref.ClipConfig(
    image_resolution=16,
    patch_size=4,
    vision_width=24,
    vision_layers=2,
    vision_heads=2,
    context_length=16,
    vocab_size=64,
    text_width=24,
    text_layers=2,
    text_heads=2,
    embed_dim=16,
    adapter_bottleneck=8,
    adapter_scale=0.1,
    adapter_dropout=0.3,
)
DROPOUT_SEED, DROPOUT_STEP, IMAGE_SAMPLE_OFFSET = 1234, 7, 5
EOT_POSITIONS = [4, 11, 7]


def adapter_gradients(params, images, tokens, d_image, d_text, dropout):
    """Features and adapter gradients of the linear loss, in one mode."""
    leaves = adapter_leaves(params, CONFIG)
    p = {**params, **leaves}
    image_features, adapter_outputs = ref.encode_images(p, CONFIG, images, dropout, IMAGE_SAMPLE_OFFSET)
    text_features = ref.encode_texts(p, CONFIG, tokens, dropout)
    loss = (image_features * d_image).sum() + (text_features * d_text).sum()
    loss.backward()
    grads = {name: leaf.grad for name, leaf in leaves.items()}
    return image_features.detach(), text_features.detach(), adapter_outputs, grads


def check_attention_against_torch(generator):
    """The reference attention must equal torch's own multi-head attention."""
    width, heads, tokens = 24, 2, 7
    x = torch.randn(3, tokens, width, generator=generator, dtype=torch.float64)
    in_w = torch.randn(3 * width, width, generator=generator, dtype=torch.float64) / width**0.5
    in_b = torch.randn(3 * width, generator=generator, dtype=torch.float64)
    out_w = torch.randn(width, width, generator=generator, dtype=torch.float64) / width**0.5
    out_b = torch.randn(width, generator=generator, dtype=torch.float64)
    for causal in (False, True):
        mask = torch.ones(tokens, tokens, dtype=torch.bool).triu(1) if causal else None
        expected, _ = torch.nn.functional.multi_head_attention_forward(
            x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1), width, heads, in_w, in_b, None, None, False,
            0.0, out_w, out_b, need_weights=False, attn_mask=mask)
        got = ref.self_attention(x, in_w, in_b, out_w, out_b, heads, causal)
        assert torch.allclose(got, expected.transpose(0, 1), atol=1e-12), "reference attention differs from torch"


def main():
    check_attention_against_torch(torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(20251204)
    params = {k: as_float32(v) for k, v in ref.random_parameters(CONFIG, generator).items()}
    images = as_float32(torch.randn(4, 3, CONFIG.image_resolution, CONFIG.image_resolution, generator=generator))
    tokens = random_prompts(CONFIG, EOT_POSITIONS, generator)
    d_image = as_float32(torch.randn(4, CONFIG.embed_dim, generator=generator))
    d_text = as_float32(torch.randn(len(EOT_POSITIONS), CONFIG.embed_dim, generator=generator))

    out = dict(params)
    out["input.images"] = images
    out["input.tokens"] = tokens.to(torch.int32)
    out["input.d_image_features"] = d_image
    out["input.d_text_features"] = d_text

    img, txt, adapter_outputs, grads = adapter_gradients(params, images, tokens, d_image, d_text, None)
    out["eval.image_features"] = img
    out["eval.text_features"] = txt
    out["eval.logits"] = ref.logits(img, txt, params["logit_scale"])
    for i, a in enumerate(adapter_outputs):
        out[f"eval.visual_adapter_output.{i}"] = a.detach().reshape(-1, CONFIG.vision_width)
    for name, g in grads.items():
        out["eval.grad." + name] = g

    img, txt, _, grads = adapter_gradients(params, images, tokens, d_image, d_text, (DROPOUT_SEED, DROPOUT_STEP))
    out["train.image_features"] = img
    out["train.text_features"] = txt
    for name, g in grads.items():
        out["train.grad." + name] = g

    save_fixture(os.path.join(HERE, "fixtures", "clip_small.safetensors"), out, CONFIG, dropout_seed=DROPOUT_SEED,
                 dropout_step=DROPOUT_STEP, image_sample_offset=IMAGE_SAMPLE_OFFSET)


if __name__ == "__main__":
    main()
