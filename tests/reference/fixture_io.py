"""Safetensors writer for the fixture generators under tests/.

The format: an 8-byte little-endian header length, a JSON header padded
with spaces to a multiple of 8 bytes, then the raw little-endian data.
Needs numpy only, so generators without torch can use it too.
"""
import json
import struct

import numpy as np

_DTYPES = {np.dtype("float32"): "F32", np.dtype("int32"): "I32", np.dtype("int64"): "I64", np.dtype("uint8"): "U8"}


def save_safetensors(path, tensors, metadata=None):
    """Write {name: numpy array or torch tensor} to PATH, in the dict's order.

    float64 values are stored as F32. METADATA, when given, becomes the
    header's "__metadata__", with every key and value as a string.
    """
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, value in tensors.items():
        if hasattr(value, "detach"):  # a torch tensor
            value = value.detach().cpu().numpy()
        array = np.array(value, order="C")  # keeps 0-d scalars 0-d
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        dtype = _DTYPES[array.dtype]
        blob = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
