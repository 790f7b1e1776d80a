"""A small, independent PyTorch CLIP with bottleneck adapters.

This module is the reference that dmnsp's C encoders are tested against.
It computes in float64 from a flat dict of tensors that uses OpenAI's
state-dict names, and reproduces dmnsp's counter-based dropout masks so
training-mode passes can be compared too.

Residual block (both encoders), x of shape (batch, tokens, width):

    x = x + attn(ln_1(x))
    a = scale * up(dropout(relu(down(x))))
    x = x + mlp(ln_2(x)) + a

Run with Debian's /usr/bin/python3 (it has torch and numpy).
"""

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

LAYERNORM_EPS = 1e-5
VISUAL, TEXT = 0, 1


@dataclass
class ClipConfig:
    image_resolution: int
    patch_size: int
    vision_width: int
    vision_layers: int
    vision_heads: int
    context_length: int
    vocab_size: int
    text_width: int
    text_layers: int
    text_heads: int
    embed_dim: int
    adapter_bottleneck: int = 64
    adapter_scale: float = 0.1
    adapter_dropout: float = 0.1

    @property
    def grid(self):
        return self.image_resolution // self.patch_size

    @property
    def vision_tokens(self):
        return self.grid * self.grid + 1


# ---- parameter names and shapes ----------------------------------------------


def _block_shapes(prefix, layers, width):
    shapes = {}
    for i in range(layers):
        p = f"{prefix}resblocks.{i}."
        shapes[p + "ln_1.weight"] = (width,)
        shapes[p + "ln_1.bias"] = (width,)
        shapes[p + "attn.in_proj_weight"] = (3 * width, width)
        shapes[p + "attn.in_proj_bias"] = (3 * width,)
        shapes[p + "attn.out_proj.weight"] = (width, width)
        shapes[p + "attn.out_proj.bias"] = (width,)
        shapes[p + "ln_2.weight"] = (width,)
        shapes[p + "ln_2.bias"] = (width,)
        shapes[p + "mlp.c_fc.weight"] = (4 * width, width)
        shapes[p + "mlp.c_fc.bias"] = (4 * width,)
        shapes[p + "mlp.c_proj.weight"] = (width, 4 * width)
        shapes[p + "mlp.c_proj.bias"] = (width,)
    return shapes


def _adapter_shapes(prefix, layers, width, bottleneck):
    shapes = {}
    for i in range(layers):
        p = f"{prefix}resblocks.{i}.adaptmlp."
        shapes[p + "down_proj.weight"] = (bottleneck, width)
        shapes[p + "down_proj.bias"] = (bottleneck,)
        shapes[p + "up_proj.weight"] = (width, bottleneck)
        shapes[p + "up_proj.bias"] = (width,)
    return shapes


def frozen_shapes(cfg):
    """Frozen tensor names and shapes, in OpenAI's state-dict naming."""
    vw, tw, p = cfg.vision_width, cfg.text_width, cfg.patch_size
    shapes = {
        "visual.conv1.weight": (vw, 3, p, p),
        "visual.class_embedding": (vw,),
        "visual.positional_embedding": (cfg.vision_tokens, vw),
        "visual.ln_pre.weight": (vw,),
        "visual.ln_pre.bias": (vw,),
    }
    shapes.update(_block_shapes("visual.transformer.", cfg.vision_layers, vw))
    shapes["visual.ln_post.weight"] = (vw,)
    shapes["visual.ln_post.bias"] = (vw,)
    shapes["visual.proj"] = (vw, cfg.embed_dim)
    shapes["token_embedding.weight"] = (cfg.vocab_size, tw)
    shapes["positional_embedding"] = (cfg.context_length, tw)
    shapes.update(_block_shapes("transformer.", cfg.text_layers, tw))
    shapes["ln_final.weight"] = (tw,)
    shapes["ln_final.bias"] = (tw,)
    shapes["text_projection"] = (tw, cfg.embed_dim)
    shapes["logit_scale"] = ()
    return shapes


def adapter_shapes(cfg):
    """Adapter tensor names and shapes: visual blocks, then text blocks."""
    shapes = _adapter_shapes("visual.transformer.", cfg.vision_layers, cfg.vision_width, cfg.adapter_bottleneck)
    shapes.update(_adapter_shapes("transformer.", cfg.text_layers, cfg.text_width, cfg.adapter_bottleneck))
    return shapes


def random_parameters(cfg, generator, adapter_std=0.3):
    """Random float64 parameters with every tensor non-trivial.

    Layernorm weights and biases, attention and MLP biases and the adapters
    are all random (not 1 / 0), so a parity test exercises every term.
    """
    params = {}
    for name, shape in {**frozen_shapes(cfg), **adapter_shapes(cfg)}.items():
        visual = name.startswith("visual.")
        width = cfg.vision_width if visual else cfg.text_width
        if name == "logit_scale":
            value = torch.tensor(math.log(100.0), dtype=torch.float64)
        elif ".ln_" in name or name.startswith(("ln_", "visual.ln_")):
            centre = 1.0 if name.endswith("weight") else 0.0
            value = centre + 0.1 * torch.randn(shape, generator=generator, dtype=torch.float64)
        elif "adaptmlp" in name:
            value = adapter_std * torch.randn(shape, generator=generator, dtype=torch.float64)
        elif name.endswith("bias"):
            value = 0.05 * torch.randn(shape, generator=generator, dtype=torch.float64)
        elif name == "token_embedding.weight":
            value = 0.5 * torch.randn(shape, generator=generator, dtype=torch.float64)
        elif name.endswith("positional_embedding"):
            value = 0.2 * torch.randn(shape, generator=generator, dtype=torch.float64)
        elif name == "visual.conv1.weight":
            value = torch.randn(shape, generator=generator, dtype=torch.float64) / math.sqrt(3 * cfg.patch_size**2)
        else:
            fan_in = shape[-1] if len(shape) == 2 and not name.endswith(("proj", "projection")) else shape[0]
            value = torch.randn(shape, generator=generator, dtype=torch.float64) / math.sqrt(fan_in)
        params[name] = value
    return params


# ---- dropout masks (the same hash as dmnsp's ops_hash3) ----------------------

_MASK64 = (1 << 64) - 1
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15


def _mix64(z):
    """splitmix64's finaliser on a numpy uint64 array (wrapping arithmetic)."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hash3(seed, stream, index):
    """Counter-based hash of (seed, stream, index); index may be an array."""
    with np.errstate(over="ignore"):
        golden = np.uint64(_GOLDEN_GAMMA)
        h = _mix64(np.uint64(seed & _MASK64) + golden)
        h = _mix64(h ^ (np.uint64(stream & _MASK64) + golden))
        return _mix64(h ^ (np.asarray(index, dtype=np.uint64) + golden))


def dropout_stream(seed_step, modality, block):
    """Stream id of one adapter's dropout: hash3(step, modality, block)."""
    return int(hash3(seed_step, modality, block))


def dropout_keep_mask(seed, step, modality, block, sample_offset, batch, tokens, key_tokens, features, p):
    """Boolean keep mask [batch, tokens, features] for one adapter.

    Element (b, t, f) is kept when the top 24 bits of
    hash3(seed, stream, ((sample_offset + b) * key_tokens + t) * features + f),
    read as a fraction in [0, 1), are >= p (compared in float32).
    """
    stream = dropout_stream(step, modality, block)
    b = np.arange(batch, dtype=np.uint64)[:, None, None] + np.uint64(sample_offset)
    t = np.arange(tokens, dtype=np.uint64)[None, :, None]
    f = np.arange(features, dtype=np.uint64)[None, None, :]
    with np.errstate(over="ignore"):
        index = (b * np.uint64(key_tokens) + t) * np.uint64(features) + f
    u = (hash3(seed, stream, index) >> np.uint64(40)).astype(np.float64) * 2.0**-24
    return torch.from_numpy(u >= np.float64(np.float32(p)))


# ---- layers ------------------------------------------------------------------


def layer_norm(x, weight, bias):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + LAYERNORM_EPS) * weight + bias


def linear(x, weight, bias=None):
    y = x @ weight.T
    return y if bias is None else y + bias


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def self_attention(x, in_w, in_b, out_w, out_b, heads, causal):
    """Multi-head self-attention on x [B, T, C] with stacked q, k, v weights."""
    batch, tokens, width = x.shape
    head_dim = width // heads
    q, k, v = linear(x, in_w, in_b).split(width, dim=-1)

    def split_heads(t):
        return t.reshape(batch, tokens, heads, head_dim).transpose(1, 2)

    q, k, v = split_heads(q), split_heads(k), split_heads(v)
    scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
    if causal:
        future = torch.ones(tokens, tokens, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    y = torch.softmax(scores, dim=-1) @ v
    y = y.transpose(1, 2).reshape(batch, tokens, width)
    return linear(y, out_w, out_b)


def residual_block(params, prefix, x, cfg, heads, causal, keep_mask):
    """One block; keep_mask [B, T, bottleneck] (bool) or None in eval mode.

    Returns the block output and the adapter output a."""
    p = lambda name: params[prefix + name]  # noqa: E731
    x = x + self_attention(
        layer_norm(x, p("ln_1.weight"), p("ln_1.bias")),
        p("attn.in_proj_weight"),
        p("attn.in_proj_bias"),
        p("attn.out_proj.weight"),
        p("attn.out_proj.bias"),
        heads,
        causal,
    )
    hidden = torch.relu(linear(x, p("adaptmlp.down_proj.weight"), p("adaptmlp.down_proj.bias")))
    if keep_mask is not None:
        hidden = hidden * keep_mask.to(hidden.dtype) / (1.0 - cfg.adapter_dropout)
    a = cfg.adapter_scale * linear(hidden, p("adaptmlp.up_proj.weight"), p("adaptmlp.up_proj.bias"))
    h = linear(layer_norm(x, p("ln_2.weight"), p("ln_2.bias")), p("mlp.c_fc.weight"), p("mlp.c_fc.bias"))
    m = linear(quick_gelu(h), p("mlp.c_proj.weight"), p("mlp.c_proj.bias"))
    return x + m + a, a


# ---- encoders ----------------------------------------------------------------


def encode_images(params, cfg, images, dropout=None, sample_offset=0):
    """Image features [B, embed_dim] from images [B, 3, R, R].

    dropout: None (eval mode) or a (seed, step) pair. Returns (features,
    list of per-block adapter outputs [B, T, width])."""
    weight = params["visual.conv1.weight"]
    x = torch.nn.functional.conv2d(images, weight, stride=cfg.patch_size)  # [B, C, G, G]
    batch = x.shape[0]
    x = x.flatten(2).transpose(1, 2)  # [B, G*G, C]
    cls = params["visual.class_embedding"].expand(batch, 1, -1)
    x = torch.cat([cls, x], dim=1) + params["visual.positional_embedding"]
    x = layer_norm(x, params["visual.ln_pre.weight"], params["visual.ln_pre.bias"])
    adapter_outputs = []
    for i in range(cfg.vision_layers):
        mask = None
        if dropout is not None:
            mask = dropout_keep_mask(dropout[0], dropout[1], VISUAL, i, sample_offset, batch, x.shape[1],
                                     cfg.vision_tokens, cfg.adapter_bottleneck, cfg.adapter_dropout)
        x, a = residual_block(params, f"visual.transformer.resblocks.{i}.", x, cfg, cfg.vision_heads, False, mask)
        adapter_outputs.append(a)
    pooled = layer_norm(x[:, 0, :], params["visual.ln_post.weight"], params["visual.ln_post.bias"])
    return pooled @ params["visual.proj"], adapter_outputs


def encode_texts(params, cfg, tokens, dropout=None, sample_offset=0):
    """Text features [B, embed_dim] from token ids [B, context_length].

    Runs the full context with a causal mask (no cut) and pools the
    end-of-text position (the row's largest id). Dropout keys row 0 as
    sample sample_offset."""
    batch, length = tokens.shape
    x = params["token_embedding.weight"][tokens] + params["positional_embedding"][:length]
    for i in range(cfg.text_layers):
        mask = None
        if dropout is not None:
            mask = dropout_keep_mask(dropout[0], dropout[1], TEXT, i, sample_offset, batch, length, cfg.context_length,
                                     cfg.adapter_bottleneck, cfg.adapter_dropout)
        x, _ = residual_block(params, f"transformer.resblocks.{i}.", x, cfg, cfg.text_heads, True, mask)
    x = layer_norm(x, params["ln_final.weight"], params["ln_final.bias"])
    eot = tokens.argmax(dim=-1)
    return x[torch.arange(batch), eot] @ params["text_projection"]


def logits(image_features, text_features, logit_scale):
    """exp(logit_scale) * cosine similarities [images, texts]."""
    img = image_features / image_features.norm(dim=-1, keepdim=True)
    txt = text_features / text_features.norm(dim=-1, keepdim=True)
    return logit_scale.exp() * img @ txt.T


# ---- fixture metadata -------------------------------------------------------


def config_metadata(cfg):
    """The config as safetensors metadata strings."""
    return {k: str(v) for k, v in asdict(cfg).items()}
