#!/usr/bin/python3
"""Writes tests/data/safetensors/half_precision.safetensors: random values stored as F16 and BF16
(rounded by torch), next to torch's own float32 reading of those values, so
the C reader's conversion is checked against an independent implementation.

Run with Debian's python3 (it has torch): /usr/bin/python3 make_fixture.py
"""
import json
import os
import struct

import torch


def write_safetensors(path, tensors):
    header = {}
    data = b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(data)


def raw_bytes(tensor):
    # Reinterpret as int16/int32/int64 so the bytes are exact for every dtype.
    view = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32,
            torch.int64: torch.int64}[tensor.dtype]
    return tensor.contiguous().view(view).numpy().tobytes()


torch.manual_seed(7)
values = torch.randn(3, 5) * torch.tensor([1e-6, 1e-2, 1.0, 100.0, 1e4])
values[0, 0] = 3e-8  # F16 subnormal
half = values.to(torch.float16)
brain = values.to(torch.bfloat16)
ids = torch.tensor([49406, 320, 2368, 49407], dtype=torch.int64)

out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "safetensors")
os.makedirs(out_dir, exist_ok=True)
write_safetensors(os.path.join(out_dir, "half_precision.safetensors"), {
    "values_f16": ("F16", [3, 5], raw_bytes(half)),
    "values_f16_as_f32": ("F32", [3, 5], raw_bytes(half.float())),
    "values_bf16": ("BF16", [3, 5], raw_bytes(brain)),
    "values_bf16_as_f32": ("F32", [3, 5], raw_bytes(brain.float())),
    "ids": ("I64", [4], raw_bytes(ids)),
})
