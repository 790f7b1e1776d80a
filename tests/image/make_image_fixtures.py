#!/usr/bin/python3
"""Writes the image test fixtures: source images plus PIL's results.

Run with Debian's Python (Pillow 9.4, numpy) from this folder:
    /usr/bin/python3 make_image_fixtures.py
It writes source_*.png, source_photo.jpg, variant_*.png/jpg and
image_fixtures.safetensors here. For every source image the safetensors
file contains PIL's BICUBIC resize to several sizes (uint8 HWC) and the full
CLIP preprocessing computed with PIL's resize and numpy (float32 CHW). It
also contains PIL's RGB decode of the JPEG and of each colour-type variant.
test_image.c reads them and compares its own results.
"""
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from fixture_io import save_safetensors  # noqa: E402

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def make_sources(rng):
    """Small images with noise, sharp edges and smooth gradients."""
    sources = {}
    h, w = 23, 37
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([(x * 7) % 256, (y * 11) % 256, ((x + y) * 5) % 256], axis=-1)
    rgb = (rgb + rng.integers(0, 40, size=rgb.shape)) % 256
    sources["noise_rgb"] = Image.fromarray(rgb.astype(np.uint8), "RGB")

    h, w = 48, 64
    y, x = np.mgrid[0:h, 0:w]
    checker = (((x // 5) + (y // 7)) % 2) * 255
    rgb = np.stack([checker, 255 - checker, (x * 4) % 256], axis=-1)
    sources["checker_rgb"] = Image.fromarray(rgb.astype(np.uint8), "RGB")

    h, w = 29, 19
    gray = rng.integers(0, 256, size=(h, w))
    gray[:, 9] = 255
    gray[14, :] = 0
    sources["noise_gray"] = Image.fromarray(gray.astype(np.uint8), "L")
    return sources


def preprocess(image, size):
    """CLIP's transform without torchvision: Resize(size) with BICUBIC,
    CenterCrop(size), convert("RGB"), /255, normalise; float32 CHW."""
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    resized = image.resize((new_w, new_h), Image.BICUBIC)
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    cropped = resized.crop((left, top, left + size, top + size)).convert("RGB")
    pixels = np.asarray(cropped).astype(np.float32) / np.float32(255.0)
    pixels = (pixels - MEAN) / STD
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def main():
    rng = np.random.default_rng(20251204)
    tensors = {}
    sources = make_sources(rng)
    targets = [(53, 41), (13, 9), (50, 11), (8, 60), (3, 2)]
    for name, image in sources.items():
        image.save("source_%s.png" % name)
        tensors["%s/source" % name] = np.asarray(image)
        for tw, th in targets:
            tensors["%s/resize_%dx%d" % (name, tw, th)] = np.asarray(image.resize((tw, th), Image.BICUBIC))
        tensors["%s/preprocess_24" % name] = preprocess(image, 24)

    # A JPEG encoded by PIL, and PIL's decode of it.
    sources["checker_rgb"].save("source_photo.jpg", quality=85)
    with Image.open("source_photo.jpg") as jpeg:
        tensors["photo_jpeg/decoded"] = np.asarray(jpeg.convert("RGB"))

    # Other PNG and JPEG colour types, with PIL's convert("RGB") of each.
    variant_source = np.asarray(sources["noise_rgb"])[:13, :17]
    variant_image = Image.fromarray(np.ascontiguousarray(variant_source), "RGB")
    alpha = rng.integers(0, 256, size=variant_source.shape[:2], dtype=np.uint8)
    variants = {
        "palette.png": variant_image.convert("P", palette=Image.ADAPTIVE, colors=16),
        "gray_alpha.png": Image.fromarray(np.ascontiguousarray(variant_source[:, :, 0]), "L").convert("LA"),
        "rgba.png": Image.fromarray(np.dstack([variant_source, alpha]), "RGBA"),
        "bilevel.png": Image.fromarray(np.ascontiguousarray(variant_source[:, :, 1]), "L").convert("1"),
        "gray.jpg": Image.fromarray(np.ascontiguousarray(variant_source[:, :, 2]), "L"),
        "cmyk.jpg": variant_image.convert("CMYK"),
    }
    for name, image in variants.items():
        path = "variant_" + name
        if name.endswith(".jpg"):
            image.save(path, quality=90)
        else:
            image.save(path)
        with Image.open(path) as reopened:
            tensors["variant/" + name] = np.asarray(reopened.convert("RGB"))

    save_safetensors("image_fixtures.safetensors", dict(sorted(tensors.items())))


if __name__ == "__main__":
    main()
