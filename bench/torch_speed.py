#!/usr/bin/python3
"""Times the PyTorch reference of the image encoder on the same shapes as
bench_clip, for a per-core comparison with dmnsp. Needs Debian's
python3-torch; not part of the test suite.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_speed.py [--batch 8] [--steps 2] [--threads 1]

Debian's torch calls the system BLAS, whose threads torch.set_num_threads
does not limit, so set OPENBLAS_NUM_THREADS to the thread count as well.

Prints seconds per batch of the eval forward (no gradients) and of the
forward plus backward into the adapters (frozen weights without
gradients), ViT-B/16 shapes, float32, random weights."""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import clip_reference as ref  # noqa: E402

VIT_B_16 = ref.ClipConfig(image_resolution=224, patch_size=16, vision_width=768, vision_layers=12, vision_heads=12,
                          context_length=77, vocab_size=49408, text_width=512, text_layers=12, text_heads=8,
                          embed_dim=512)


def visual_parameters(cfg, generator):
    """Float32 visual parameters; adapters require gradients."""
    params = {}
    for name, value in ref.random_parameters(cfg, generator).items():
        if not name.startswith("visual."):
            continue
        value = value.float()
        if "adaptmlp" in name:
            value.requires_grad_(True)
        params[name] = value
    return params


def timed(function, steps):
    function()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        function()
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = VIT_B_16
    params = visual_parameters(cfg, torch.Generator().manual_seed(7))
    images = torch.randn(args.batch, 3, cfg.image_resolution, cfg.image_resolution)

    def forward():
        with torch.no_grad():
            ref.encode_images(params, cfg, images)

    def train():
        features, _ = ref.encode_images(params, cfg, images)
        features.square().sum().backward()

    forward_s = timed(forward, args.steps)
    train_s = timed(train, args.steps)
    print(f"torch {torch.__version__}, {args.threads} thread(s), ViT-B/16 image encoder, batch {args.batch}")
    print(f"  eval forward:        {forward_s:.3f} s per batch, {args.batch / forward_s:.2f} images/s")
    print(f"  forward + backward:  {train_s:.3f} s per batch, {args.batch / train_s:.2f} images/s")


if __name__ == "__main__":
    main()
