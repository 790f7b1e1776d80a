#!/usr/bin/python3
"""Writes optim_fixture.safetensors: torch.optim.AdamW (float32) over a
40-element parameter vector for 3 steps on a fixed gradient sequence, with
the warm-up + cosine learning-rate schedule set before each step.

Run with Debian's python3 (it has torch):  /usr/bin/python3 gen_optim_fixtures.py
Elements 24..39 sit in a second parameter group whose learning rate is
FACTOR times the schedule's, which is what a per-range update factor means.
Gradients of step 2 include large values (1e3) and tiny ones (1e-6) so the
eps and bias-correction terms matter.
"""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from fixture_io import save_safetensors  # noqa: E402

COUNT = 40
SPLIT = 24
FACTOR = 0.5
BASE_LR = 1e-2
WARMUP = 2
TOTAL = 5
STEPS = 3
WEIGHT_DECAY = 0.1


def schedule(step):
    """Learning rate of 0-based STEP: linear warm-up, then cosine to 0."""
    if step < WARMUP:
        return BASE_LR * (step + 1) / WARMUP
    return 0.5 * (1 + math.cos(math.pi * (step - WARMUP) / (TOTAL - WARMUP))) * BASE_LR


def main():
    generator = torch.Generator().manual_seed(99)
    initial = torch.randn(COUNT, generator=generator, dtype=torch.float32)
    gradients = torch.randn(STEPS, COUNT, generator=generator, dtype=torch.float32)
    gradients[2, :5] *= 1e3
    gradients[2, 5:10] *= 1e-6

    first = initial[:SPLIT].clone().requires_grad_(True)
    second = initial[SPLIT:].clone().requires_grad_(True)
    optimizer = torch.optim.AdamW(
        [{"params": [first]}, {"params": [second]}],
        lr=BASE_LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=WEIGHT_DECAY, amsgrad=False)

    tensors = {"initial": initial.numpy().copy(), "gradients": gradients.numpy().copy()}
    learning_rates = []
    for step in range(STEPS):
        lr = schedule(step)
        learning_rates.append(lr)
        optimizer.param_groups[0]["lr"] = lr
        optimizer.param_groups[1]["lr"] = lr * FACTOR
        first.grad = gradients[step, :SPLIT].clone()
        second.grad = gradients[step, SPLIT:].clone()
        optimizer.step()
        tensors[f"params_after_step{step}"] = torch.cat([first.detach(), second.detach()]).numpy().copy()

    state_first = optimizer.state[first]
    state_second = optimizer.state[second]
    tensors["exp_avg"] = torch.cat([state_first["exp_avg"], state_second["exp_avg"]]).numpy().copy()
    tensors["exp_avg_sq"] = torch.cat([state_first["exp_avg_sq"], state_second["exp_avg_sq"]]).numpy().copy()
    tensors["learning_rates"] = np.array(learning_rates, dtype=np.float32)
    tensors["settings"] = np.array([BASE_LR, WARMUP, TOTAL, WEIGHT_DECAY, SPLIT, FACTOR], dtype=np.float32)

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim_fixture.safetensors")
    save_safetensors(path, tensors)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
