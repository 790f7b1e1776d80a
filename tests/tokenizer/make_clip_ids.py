#!/usr/bin/python3
"""Writes tests/data/tokenizer/clip_ids.json: token ids of prompts under
CLIP's released vocabulary, from an independent Python implementation of
CLIP's tokenizer rules that uses the full Unicode database (unicodedata)
for letters, numbers, spaces and lower case.

Cleaning follows CLIP: ftfy's repairs (only curly quotes, fullwidth ASCII
and Latin ligatures are reproduced here, which covers these prompts), HTML
unescape twice, whitespace collapsed and stripped, lower case.

Usage: /usr/bin/python3 make_clip_ids.py PATH/bpe_simple_vocab_16e6.txt.gz
"""
import gzip
import html
import json
import os
import re
import sys
import unicodedata

CIFAR100 = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

EXTRA = [
    "it's", "don't", "We'll", "I'M HERE", "rock'n'roll", "they've'd", "3.14159", "1,000,000", "e-mail", "C++",
    "foo@bar.com", "http://x.y/z?q=1&r=2", "&amp;amp;", "Tom &amp; Jerry", "&lt;b&gt;bold&lt;/b&gt;", "&#39;x&#39;",
    "  spaced \t\n  out  ", "\u00dcn\u00efc\u00f6d\u00e9 na\u00efve caf\u00e9", "Stra\u00dfe", "\u0391\u0392\u0393 "
    "\u03b4\u03ad\u03bb\u03c4\u03b1", "\u041c\u043e\u0441\u043a\u0432\u0430", "\u65e5\u672c\u8a9e\u306e\u30c6"
    "\u30ad\u30b9\u30c8", "\ud55c\uad6d\uc5b4", "emoji \U0001f600 \U0001f431 cat", "\u201cquoted\u201d "
    "\u2018single\u2019", "\ufb01sh \ufb02ower", "\uff26\uff35\uff2c\uff2c width", "<|startoftext|>x<|endoftext|>",
    "multiple!!! question???", "a_b_c", "x\u00b2 + y\u00b2", "\u00bd cup", "no\u00a0break", "100% sure.",
    "co-operate", "naïve", "A" * 3 + "rgh", "antidisestablishmentarianism", "",
]


def bytes_to_unicode():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    code_points = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            code_points.append(256 + extra)
            extra += 1
    return dict(zip(printable, [chr(c) for c in code_points]))


def load_vocab(path):
    lines = gzip.open(path).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(vocab)}, {m: i for i, m in enumerate(merges)}


def repair(text):
    out = []
    for c in text:
        cp = ord(c)
        if cp == 0x2BC or 0x2018 <= cp <= 0x201B:
            out.append("'")
        elif 0x201C <= cp <= 0x201F:
            out.append('"')
        elif 0xFF01 <= cp <= 0xFF5E:
            out.append(chr(cp - 0xFEE0))
        elif 0xFB00 <= cp <= 0xFB06:
            out.append(["ff", "fi", "fl", "ffi", "ffl", "st", "st"][cp - 0xFB00])
        else:
            out.append(c)
    return "".join(out)


def clean(text):
    text = html.unescape(html.unescape(repair(text))).strip()
    return re.sub(r"\s+", " ", text).strip().lower()


def category(c):
    return unicodedata.category(c)[0]


def pieces(text):
    """CLIP's pattern, alternatives tried in order at each position."""
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        for special in ("<|startoftext|>", "<|endoftext|>"):
            if text.startswith(special, i):
                yield special
                i += len(special)
                break
        else:
            for contraction in ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d"):
                if text.startswith(contraction, i):
                    yield contraction
                    i += len(contraction)
                    break
            else:
                start = i
                if category(text[i]) == "L":
                    while i < len(text) and category(text[i]) == "L":
                        i += 1
                elif category(text[i]) == "N":
                    i += 1
                else:
                    while i < len(text) and not text[i].isspace() and category(text[i]) not in "LN":
                        i += 1
                yield text[start:i]


def bpe(word, ranks):
    symbols = list(word[:-1]) + [word[-1] + "</w>"]
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b), 1 << 30), k) for k, (a, b) in enumerate(zip(symbols, symbols[1:]))]
        rank, _ = min(pairs)
        if rank == 1 << 30:
            break
        first, second = next((symbols[k], symbols[k + 1]) for r, k in pairs if r == rank)
        merged, k = [], 0
        while k < len(symbols):
            if k + 1 < len(symbols) and symbols[k] == first and symbols[k + 1] == second:
                merged.append(first + second)
                k += 2
            else:
                merged.append(symbols[k])
                k += 1
        symbols = merged
    return symbols


def encode(text, vocab, ranks, byte_map):
    ids = [vocab["<|startoftext|>"]]
    for piece in pieces(clean(text)):
        if piece in ("<|startoftext|>", "<|endoftext|>"):
            ids.append(vocab[piece])
            continue
        word = "".join(byte_map[b] for b in piece.encode("utf-8"))
        ids.extend(vocab[s] for s in bpe(word, ranks))
    return ids + [vocab["<|endoftext|>"]]


def main():
    vocab, ranks = load_vocab(sys.argv[1])
    byte_map = bytes_to_unicode()
    texts = ["a bad photo of a %s." % name for name in CIFAR100 + FASHION] + FASHION + EXTRA
    rows = [encode(t, vocab, ranks, byte_map) for t in texts]
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "tokenizer")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "clip_ids.json"), "w", encoding="utf-8") as f:
        json.dump({"texts": texts, "ids": rows}, f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
