#!/usr/bin/python3
"""Writes loss_fixture.safetensors: CLIP logits + label-smoothed cross entropy
computed by PyTorch (float64), with the gradients of the loss with respect to
the unnormalised image and text features.

Run with Debian's python3 (it has torch):  /usr/bin/python3 gen_loss_fixtures.py
Cases: "ls0" (no smoothing, logit scale ln 100) and "ls02" (smoothing 0.2,
logit scale ln 10). Inputs are stored as float32 and used exactly as stored.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from fixture_io import save_safetensors  # noqa: E402


def loss_case(generator, n, classes, dim, logit_scale, smoothing):
    image = torch.randn(n, dim, generator=generator, dtype=torch.float32)
    text = torch.randn(classes, dim, generator=generator, dtype=torch.float32)
    labels = torch.randint(0, classes, (n,), generator=generator, dtype=torch.int64)

    image64 = image.double().requires_grad_(True)
    text64 = text.double().requires_grad_(True)
    image_n = image64 / image64.norm(dim=1, keepdim=True)
    text_n = text64 / text64.norm(dim=1, keepdim=True)
    logits = math.exp(logit_scale) * image_n @ text_n.t()
    loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
    loss.backward()
    return {
        "image_features": image.numpy(),
        "text_features": text.numpy(),
        "labels": labels.int().numpy(),
        "logit_scale": np.array([logit_scale], dtype=np.float32),
        "label_smoothing": np.array([smoothing], dtype=np.float32),
        "logits": logits.detach().float().numpy(),
        "loss": np.array([loss.item()], dtype=np.float32),
        "d_image_features": image64.grad.float().numpy(),
        "d_text_features": text64.grad.float().numpy(),
    }


def main():
    generator = torch.Generator().manual_seed(1234)
    tensors = {}
    cases = [("ls0", 9, 5, 24, math.log(100.0), 0.0), ("ls02", 7, 6, 16, math.log(10.0), 0.2)]
    for name, n, classes, dim, logit_scale, smoothing in cases:
        # logit_scale is stored as float32; use exactly that value.
        logit_scale = float(np.float32(logit_scale))
        for key, value in loss_case(generator, n, classes, dim, logit_scale, smoothing).items():
            tensors[f"{name}.{key}"] = value
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loss_fixture.safetensors")
    save_safetensors(path, tensors)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
