#!/usr/bin/python3
"""Write tests/train/nullspace_step_fixture.safetensors: one DMNSP-fixed
projected training step of a small random CLIP in PyTorch (float64), for
dmnsp's train_step with nullspace_project_buffer as its gradient hook.

The random adapters are used as the adapters after task 0. In eval mode the
basis images give each visual block's adapter outputs a; C_i = sum over
tokens of a a^T, u_i its top eigenvector (k = 1), P_i = I - u_i u_i^T.
The first step of task 1 then projects, for every visual block l, the
adapter weight gradients (biases are left alone, and so are the text
adapters):
    G_down <- G_down (s P_0)(s P_1)...(s P_{L-1})
    G_up   <- (s P_{L-1})...(s P_0) G_up
with s = LAMBDA_SCALE, and applies torch.optim.AdamW with the first
learning rate of the warm-up. Adapter dropout is 0.

The file contains the model, the inputs, u_i ("basis.top.<i>", its sign is
arbitrary), the projected gradients ("grad0.<name>") and the adapters
after the step ("final.<name>"). The script asserts that the top
eigenvalue is well separated, so u_i u_i^T is well conditioned, and that
no projected gradient is so small that float32 rounding could flip its
sign (the first AdamW step moves each value by about lr times the sign).

Run from the repository root with Debian's python (it has torch):
    /usr/bin/python3 tests/train/gen_nullspace_step_fixture.py
"""

import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

import clip_reference as ref  # noqa: E402
from fixture_setup import adapter_leaves, as_float32, classification_loss, random_prompts, save_fixture  # noqa: E402
from gen_train_fixtures import CONFIG, EOT_POSITIONS  # noqa: E402

BASIS_IMAGES, IMAGES = 6, 6
LABELS = [1, 3, 0, 2, 2, 0]
BASE_LR, WARMUP, TOTAL, WEIGHT_DECAY, LS = 1e-2, 2, 5, 0.01, 0.1
LAMBDA_SCALE = 2.0
MIN_GAP = 0.2  # smallest (e0 - e1) / e0 of a block's covariance eigenvalues
# Smallest non-zero |projected gradient| over the largest: float32
# gradients of this model are off by about 2.5e-7 of the largest (see
# tests/clip_fixture.c), far below this.
MIN_GRADIENT = 1e-5


def top_eigenvector(rows):
    covariance = rows.T @ rows
    values, vectors = torch.linalg.eigh(covariance)
    values, vectors = values.flip(0), vectors.flip(1)
    gap = (values[0] - values[1]) / values[0]
    assert gap > MIN_GAP, f"eigenvalue gap {gap:.3g} is too small"
    return vectors[:, 0], gap.item()


def main():
    generator = torch.Generator().manual_seed(5151)
    params = {k: as_float32(v) for k, v in ref.random_parameters(CONFIG, generator).items()}
    basis_images = as_float32(torch.randn(BASIS_IMAGES, 3, CONFIG.image_resolution, CONFIG.image_resolution,
                                          generator=generator))
    images = as_float32(torch.randn(IMAGES, 3, CONFIG.image_resolution, CONFIG.image_resolution,
                                    generator=generator))
    tokens = random_prompts(CONFIG, EOT_POSITIONS, generator)
    labels = torch.tensor(LABELS, dtype=torch.int64)

    out = dict(params)
    out["input.basis_images"] = basis_images
    out["input.images"] = images
    out["input.tokens"] = tokens.to(torch.int32)
    out["input.labels"] = labels.to(torch.int32)
    out["input.settings"] = torch.tensor([BASE_LR, WARMUP, TOTAL, WEIGHT_DECAY, LS, LAMBDA_SCALE],
                                         dtype=torch.float64)

    with torch.no_grad():
        _, outputs = ref.encode_images(params, CONFIG, basis_images)
    width = CONFIG.vision_width
    projectors = []
    for i, a in enumerate(outputs):
        u, gap = top_eigenvector(a.reshape(-1, width))
        print(f"block {i}: eigenvalue gap {gap:.3f}")
        out[f"basis.top.{i}"] = u
        projectors.append(LAMBDA_SCALE * (torch.eye(width, dtype=torch.float64) - torch.outer(u, u)))
    forward = projectors[0]
    for p in projectors[1:]:
        forward = forward @ p
    backward = projectors[-1]
    for p in reversed(projectors[:-1]):
        backward = backward @ p

    leaves = adapter_leaves(params, CONFIG)
    optimizer = torch.optim.AdamW(list(leaves.values()), lr=BASE_LR, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=WEIGHT_DECAY)
    loss = classification_loss({**params, **leaves}, CONFIG, images, tokens, labels, LS)
    loss.backward()
    with torch.no_grad():
        for l in range(CONFIG.vision_layers):
            prefix = f"visual.transformer.resblocks.{l}.adaptmlp."
            down = leaves[prefix + "down_proj.weight"].grad
            up = leaves[prefix + "up_proj.weight"].grad
            down.copy_(down @ forward)
            up.copy_(backward @ up)
    grads = torch.cat([leaf.grad.flatten() for leaf in leaves.values()]).abs()
    smallest = grads[grads > 0].min() / grads.max()
    print(f"loss {loss.item():.6f}, smallest non-zero |gradient| / largest {smallest:.3g}")
    assert smallest > MIN_GRADIENT, "a projected gradient is too close to 0"
    for name, leaf in leaves.items():
        out["grad0." + name] = leaf.grad.clone()
    for group in optimizer.param_groups:
        group["lr"] = BASE_LR / WARMUP
    optimizer.step()
    out["loss"] = torch.tensor([loss.item()], dtype=torch.float64)
    for name, leaf in leaves.items():
        out["final." + name] = leaf.detach()

    save_fixture(os.path.join(HERE, "nullspace_step_fixture.safetensors"), out, CONFIG)


if __name__ == "__main__":
    main()
