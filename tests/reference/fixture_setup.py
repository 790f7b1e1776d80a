"""Set-up shared by the generators of the CLIP fixtures
(tests/model/gen_fixtures.py, tests/train/gen_*.py): inputs, adapter leaves,
the classification loss, and saving with the config as metadata.
"""
import os

import torch
import torch.nn.functional as F

import clip_reference as ref
from fixture_io import save_safetensors


def as_float32(t):
    """Round to float32 and back, so the stored values are the exact inputs."""
    return t.to(torch.float32).to(torch.float64)


def random_prompts(cfg, eot_positions, generator):
    """Draw token rows [len(eot_positions), context_length] of random ids.

    Row r starts with the start token (vocab_size - 2), has the end token
    (vocab_size - 1) at eot_positions[r], and is 0 after it.
    """
    sot, eot = cfg.vocab_size - 2, cfg.vocab_size - 1
    rows = torch.zeros(len(eot_positions), cfg.context_length, dtype=torch.int64)
    for r, end in enumerate(eot_positions):
        rows[r, 0] = sot
        rows[r, 1:end] = torch.randint(1, sot, (end - 1,), generator=generator)
        rows[r, end] = eot
    return rows


def adapter_leaves(params, cfg):
    """Return copies of the adapter tensors in PARAMS that record gradients,
    in ref.adapter_shapes order."""
    return {name: params[name].clone().requires_grad_(True) for name in ref.adapter_shapes(cfg)}


def classification_loss(params, cfg, images, tokens, labels, label_smoothing):
    """Compute the label-smoothed cross entropy of the eval-mode CLIP logits
    of IMAGES over the prompts TOKENS."""
    image_features, _ = ref.encode_images(params, cfg, images)
    text_features = ref.encode_texts(params, cfg, tokens)
    logits = ref.logits(image_features, text_features, params["logit_scale"])
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


def save_fixture(path, tensors, cfg, **metadata):
    """Write TENSORS to PATH with CFG and the keyword arguments as metadata."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_safetensors(path, tensors, {**ref.config_metadata(cfg), **metadata})
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")
