#!/usr/bin/python3
"""Write tests/train/train_fixture.safetensors: three training steps of a
small random CLIP's adapters in PyTorch (float64), for dmnsp's train_step.

Each step encodes the class prompts and the batch, takes
F.cross_entropy(logits, labels, label_smoothing=LS) over the batch, back-
propagates into every adapter tensor of both encoders, and applies
torch.optim.AdamW with the warm-up + cosine learning rate set before the
step. Adapter dropout is 0, so no masks are involved.

The file holds the model (OpenAI names), the inputs, the loss of every
step, the adapter gradients of the first step ("grad0.<name>") and the
adapters after the last step ("final.<name>").

Run from the repository root with Debian's python (it has torch):
    /usr/bin/python3 tests/train/gen_train_fixtures.py
"""

import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

import clip_reference as ref  # noqa: E402
from fixture_setup import adapter_leaves, as_float32, classification_loss, random_prompts, save_fixture  # noqa: E402

CONFIG = ref.ClipConfig(
    image_resolution=16,
    patch_size=8,
    vision_width=16,
    vision_layers=2,
    vision_heads=2,
    context_length=12,
    vocab_size=50,
    text_width=16,
    text_layers=2,
    text_heads=2,
    embed_dim=12,
    adapter_bottleneck=8,
    adapter_scale=0.1,
    adapter_dropout=0.0,
)
IMAGES, STEPS = 6, 3
LABELS = [2, 0, 3, 1, 1, 3]
EOT_POSITIONS = [3, 5, 4, 6]  # one prompt for each of the 4 classes
BASE_LR, WARMUP, TOTAL, WEIGHT_DECAY, LS = 1e-2, 2, 5, 0.01, 0.1


def schedule(step):
    """Learning rate of 0-based STEP: linear warm-up, then cosine to 0."""
    if step < WARMUP:
        return BASE_LR * (step + 1) / WARMUP
    return 0.5 * (1 + math.cos(math.pi * (step - WARMUP) / (TOTAL - WARMUP))) * BASE_LR


def main():
    generator = torch.Generator().manual_seed(4242)
    params = {k: as_float32(v) for k, v in ref.random_parameters(CONFIG, generator).items()}
    images = as_float32(torch.randn(IMAGES, 3, CONFIG.image_resolution, CONFIG.image_resolution,
                                    generator=generator))
    tokens = random_prompts(CONFIG, EOT_POSITIONS, generator)
    labels = torch.tensor(LABELS, dtype=torch.int64)

    out = dict(params)
    out["input.images"] = images
    out["input.tokens"] = tokens.to(torch.int32)
    out["input.labels"] = labels.to(torch.int32)
    out["input.settings"] = torch.tensor([BASE_LR, WARMUP, TOTAL, WEIGHT_DECAY, LS], dtype=torch.float64)

    leaves = adapter_leaves(params, CONFIG)
    optimizer = torch.optim.AdamW(list(leaves.values()), lr=BASE_LR, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=WEIGHT_DECAY)
    losses = []
    for step in range(STEPS):
        optimizer.zero_grad()
        loss = classification_loss({**params, **leaves}, CONFIG, images, tokens, labels, LS)
        loss.backward()
        losses.append(loss.item())
        if step == 0:
            for name, leaf in leaves.items():
                out["grad0." + name] = leaf.grad.clone()
        for group in optimizer.param_groups:
            group["lr"] = schedule(step)
        optimizer.step()

    out["losses"] = torch.tensor(losses, dtype=torch.float64)
    for name, leaf in leaves.items():
        out["final." + name] = leaf.detach()

    save_fixture(os.path.join(HERE, "train_fixture.safetensors"), out, CONFIG)


if __name__ == "__main__":
    main()
