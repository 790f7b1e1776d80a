#!/usr/bin/python3
"""Time CLIP with bottleneck adapters in PyTorch, for side-by-side tables with dmnsp.

    OPENBLAS_NUM_THREADS=N /usr/bin/python3 bench/torch_bench.py --preset ViT-B/16 \\
        --mode train --batch 32 --threads N [--steps S] [--warmup W] [--classes P] [--cut-text]
    /usr/bin/python3 bench/torch_bench.py --preset tiny --check

The model is OpenAI's CLIP with an adapter in every residual block of both
encoders, written with nn.Linear, nn.LayerNorm and nn.MultiheadAttention in
float32, with random weights. Only the adapters train.

--mode forward encodes a batch of random images in eval mode and takes the
logits against P class features that are computed before timing.
--mode train runs one training step: the image encoder with adapter dropout,
P prompt rows (9 tokens, zero-padded to the context length) through the
text encoder, cross entropy with label smoothing 0.1, backward and AdamW
over the adapters. --cut-text cuts the prompt rows after their last token
before the text encoder. That is exact under the causal mask.

The last output line contains the results as key=value fields separated by
spaces, starting with "result impl=torch".

--check compares the eval-mode image and text features of the tiny preset
with tests/reference/clip_reference.py (float64) and exits 1 on a mismatch.

Needs Debian's python3-torch (/usr/bin/python3). That torch calls the system
OpenBLAS, whose own threads torch.set_num_threads does not limit, so set
OPENBLAS_NUM_THREADS to --threads as well.
"""
import argparse
import math
import os
import resource
import sys
import time
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


# The shape record of the reference model that dmnsp's parity fixtures
# come from, so --check compares like with like.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import clip_reference  # noqa: E402
from clip_reference import ClipConfig as ClipShape  # noqa: E402


# The same shapes as dmnsp's presets in src/clip_layout.c.
PRESETS = {
    "ViT-B/16": ClipShape(224, 16, 768, 12, 12, 77, 49408, 512, 12, 8, 512),
    "ViT-B/32": ClipShape(224, 32, 768, 12, 12, 77, 49408, 512, 12, 8, 512),
    "ViT-L/14": ClipShape(224, 14, 1024, 24, 16, 77, 49408, 768, 12, 12, 768),
    "tiny": ClipShape(32, 8, 128, 12, 2, 77, 514, 64, 12, 1, 64),
}
PROMPT_TOKENS = 9  # start, 7 word tokens, end: the length of "a bad photo of a cat."
LABEL_SMOOTHING = 0.1


# ---- the model (module and parameter names follow OpenAI's state dict) --------


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Adapter(nn.Module):
    def __init__(self, width, shape):
        super().__init__()
        self.down_proj = nn.Linear(width, shape.adapter_bottleneck)
        self.dropout = nn.Dropout(shape.adapter_dropout)
        self.up_proj = nn.Linear(shape.adapter_bottleneck, width)
        self.scale = shape.adapter_scale

    def forward(self, x):
        return self.scale * self.up_proj(self.dropout(F.relu(self.down_proj(x))))


class ResidualBlock(nn.Module):
    def __init__(self, width, heads, shape):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict(
            c_fc=nn.Linear(width, 4 * width), gelu=QuickGELU(), c_proj=nn.Linear(4 * width, width)))
        self.adaptmlp = Adapter(width, shape)

    def forward(self, x, attn_mask=None):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=attn_mask)[0]
        # The adapter reads x after attention, without a layer norm.
        adapter_output = self.adaptmlp(x)
        return x + self.mlp(self.ln_2(x)) + adapter_output


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, shape):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualBlock(width, heads, shape) for _ in range(layers))

    def forward(self, x, attn_mask=None):
        for block in self.resblocks:
            x = block(x, attn_mask)
        return x


class ImageEncoder(nn.Module):
    def __init__(self, shape):
        super().__init__()
        width, patch = shape.vision_width, shape.patch_size
        tokens = (shape.image_resolution // patch) ** 2 + 1
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(width))
        self.positional_embedding = nn.Parameter(torch.empty(tokens, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, shape.vision_layers, shape.vision_heads, shape)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.empty(width, shape.embed_dim))

    def forward(self, images):
        x = self.conv1(images).flatten(2).transpose(1, 2)  # [B, grid*grid, width]
        class_token = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([class_token, x], dim=1) + self.positional_embedding
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj


class Clip(nn.Module):
    def __init__(self, shape):
        super().__init__()
        width, context = shape.text_width, shape.context_length
        self.visual = ImageEncoder(shape)
        self.token_embedding = nn.Embedding(shape.vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context, width))
        self.transformer = Transformer(width, shape.text_layers, shape.text_heads, shape)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, shape.embed_dim))
        self.logit_scale = nn.Parameter(torch.empty(()))
        causal_mask = torch.full((context, context), float("-inf")).triu(1)
        self.register_buffer("causal_mask", causal_mask, persistent=False)

    def encode_image(self, images):
        return self.visual(images)

    def encode_text(self, tokens):
        """Text features [rows, embed_dim] of token ids [rows, length <= context_length]."""
        length = tokens.shape[1]
        x = self.token_embedding(tokens) + self.positional_embedding[:length]
        x = self.ln_final(self.transformer(x, self.causal_mask[:length, :length]))
        # The end-of-text token has the largest id in its row.
        return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ self.text_projection

    def logits(self, image_features, text_features):
        image_features = F.normalize(image_features, dim=-1)
        text_features = F.normalize(text_features, dim=-1)
        return self.logit_scale.exp() * image_features @ text_features.T


def init_random(model, seed):
    """Fill every parameter with seeded random values and freeze all but the adapters.

    Layer norms and biases are random too (not 1 and 0), so --check exercises
    every term. Adapter up weights are non-zero, so gradients reach the down
    weights."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if name == "logit_scale":
                parameter.fill_(math.log(100.0))
            elif ".ln_" in name or name.startswith("ln_"):
                parameter.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * noise)
            elif name.endswith("bias") or "embedding" in name:
                parameter.copy_(0.02 * noise)
            else:
                # Linear and convolution weights are [out, in, ...], but proj and text_projection are [in, out].
                fan_in = parameter.shape[0] if name.endswith(("proj", "projection")) else parameter[0].numel()
                parameter.copy_(noise / math.sqrt(fan_in))
            parameter.requires_grad_("adaptmlp" in name)


def random_prompts(shape, rows, generator):
    """Token rows [rows, context_length]: start, 7 random ids, end, zero padding.

    The start and end ids are the vocabulary's last two ids, as in CLIP's
    released vocabulary (49406, 49407) and dmnsp's byte-level one (512, 513)."""
    start, end = shape.vocab_size - 2, shape.vocab_size - 1
    tokens = torch.zeros(rows, shape.context_length, dtype=torch.long)
    tokens[:, 0] = start
    tokens[:, 1:PROMPT_TOKENS - 1] = torch.randint(1, start, (rows, PROMPT_TOKENS - 2), generator=generator)
    tokens[:, PROMPT_TOKENS - 1] = end
    return tokens


def cut_after_last_end(tokens):
    """Drop the columns after the last end-of-text token of any row."""
    return tokens[:, :int(tokens.argmax(dim=-1).max()) + 1]


# ---- correctness check against the float64 reference --------------------------


def relative_difference(actual, expected):
    return float((actual.double() - expected).abs().max() / expected.abs().max())


def check_against_reference(shape, tolerance=1e-4):
    """Compare eval-mode features with clip_reference.py and return the mismatches as messages."""
    model = Clip(shape)
    init_random(model, seed=1)
    model.eval()
    params = {name: value.detach().double() for name, value in model.state_dict().items()}

    generator = torch.Generator().manual_seed(2)
    images = torch.randn(3, 3, shape.image_resolution, shape.image_resolution, generator=generator)
    tokens = random_prompts(shape, 4, generator)
    # Move the end token of the last row earlier, so rows pool different positions.
    tokens[3, 6:] = 0
    tokens[3, 5] = shape.vocab_size - 1

    with torch.no_grad():
        results = {
            "image features": (model.encode_image(images),
                               clip_reference.encode_images(params, shape, images.double())[0]),
            "text features": (model.encode_text(tokens), clip_reference.encode_texts(params, shape, tokens)),
        }
        full_text = results["text features"][0].double()
        results["text features, cut rows"] = (model.encode_text(cut_after_last_end(tokens)), full_text)

    failures = []
    for what, (actual, expected) in results.items():
        difference = relative_difference(actual, expected)
        print(f"{what}: largest difference {difference:.2e} of the largest reference value")
        if not difference <= tolerance:
            failures.append(f"{what} differ from the reference by {difference:.2e} (tolerance {tolerance:.0e})")
    return failures


# ---- timing -------------------------------------------------------------------


def build_step(model, shape, args):
    """Return a function that runs one timed step of args.mode."""
    generator = torch.Generator().manual_seed(3)
    resolution = shape.image_resolution
    images = torch.randn(args.batch, 3, resolution, resolution, generator=generator)
    tokens = random_prompts(shape, args.classes, generator)
    if args.cut_text:
        tokens = cut_after_last_end(tokens)

    if args.mode == "forward":
        model.eval()
        with torch.no_grad():
            text_features = model.encode_text(tokens)

        def forward_step():
            with torch.no_grad():
                return model.logits(model.encode_image(images), text_features)

        return forward_step

    model.train()
    labels = torch.randint(0, args.classes, (args.batch,), generator=generator)
    adapters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(adapters, lr=1e-3, weight_decay=0.0)

    def train_step():
        logits = model.logits(model.encode_image(images), model.encode_text(tokens))
        loss = F.cross_entropy(logits, labels, label_smoothing=LABEL_SMOOTHING)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return train_step


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="ViT-B/16",
                        help=f"model shapes: {', '.join(PRESETS)} (default ViT-B/16)")
    parser.add_argument("--mode", choices=("forward", "train"), default="train",
                        help="what one step runs: the eval forward or a training step (default train)")
    parser.add_argument("--batch", type=int, default=32, help="images per step (default 32)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads, set OPENBLAS_NUM_THREADS to the same value (default 1)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps (default 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before them (default 1)")
    parser.add_argument("--classes", type=int, default=10, help="classes, one prompt row each (default 10)")
    parser.add_argument("--cut-text", action="store_true",
                        help="cut the prompt rows after their last token "
                        "(in forward mode only the untimed text is cut)")
    parser.add_argument("--check", action="store_true",
                        help="compare the features with the float64 reference (tiny only)")
    args = parser.parse_args()

    if args.preset not in PRESETS:
        parser.error(f"unknown preset '{args.preset}' (known presets: {', '.join(PRESETS)})")
    for name in ("batch", "threads", "steps", "classes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be 0 or more, got {args.warmup}")
    if args.check and args.preset != "tiny":
        parser.error(f"--check runs the tiny preset only, got --preset {args.preset}")
    return args


def main():
    args = parse_arguments()
    openblas_threads = os.environ.get("OPENBLAS_NUM_THREADS")
    if openblas_threads != str(args.threads):
        found = "unset" if openblas_threads is None else f"{openblas_threads!r}"
        print(f"warning: OPENBLAS_NUM_THREADS is {found}, expected {args.threads} as --threads. This torch calls "
              "the system OpenBLAS, whose threads torch.set_num_threads does not limit, so set "
              f"OPENBLAS_NUM_THREADS={args.threads}.", file=sys.stderr)
    torch.set_num_threads(args.threads)
    shape = PRESETS[args.preset]

    if args.check:
        failures = check_against_reference(shape)
        for failure in failures:
            print(f"check failed: {failure}", file=sys.stderr)
        if failures:
            return 1
        print("check passed")
        return 0

    model = Clip(shape)
    init_random(model, seed=0)
    step = build_step(model, shape, args)
    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds_per_step = (time.perf_counter() - start) / args.steps
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # ru_maxrss is in KiB on Linux

    images_per_s = args.batch / seconds_per_step
    text = "prompt rows cut after the last token" if args.cut_text else f"{shape.context_length}-token prompt rows"
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.preset} {args.mode}, batch {args.batch}, "
          f"{args.classes} classes, {text}")
    print(f"{args.steps} timed steps after {args.warmup} warm-up: {seconds_per_step:.4f} s per step, "
          f"{images_per_s:.3f} images/s, peak RSS {peak_rss_mib:.1f} MiB")
    print(f"result impl=torch preset={args.preset} mode={args.mode} batch={args.batch} threads={args.threads} "
          f"classes={args.classes} cut_text={int(args.cut_text)} steps={args.steps} "
          f"seconds_per_step={seconds_per_step:.4f} images_per_s={images_per_s:.3f} peak_rss_mib={peak_rss_mib:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
