#!/usr/bin/env python3
"""gen_text.py - writes the tokenizer test corpus: a JSON array of documents
(about SIZE bytes in all) of varied text built on this machine, with no
network: several scripts drawn from Unicode blocks, code from /usr/include,
prose from /usr/share/doc, whitespace runs, \\r\\n, long digit runs, emoji
with skin-tone modifiers, ZWJ sequences and flags, combining marks (composed
and decomposed), full-width forms and special-token strings.

Only characters assigned in Python's Unicode database are used, so the
regex engine and normalizer agree on their properties.

    gen_text.py OUT.json [SIZE_BYTES] [SEED]
"""
import fnmatch
import json
import os
import random
import sys
import unicodedata

OUT = sys.argv[1]
SIZE = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 20
rnd = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 14)

def assigned(lo, hi):
    return [chr(c) for c in range(lo, hi + 1)
            if unicodedata.category(chr(c)) not in ("Cn", "Cs", "Co")]

SCRIPTS = {
    "latin": assigned(0x41, 0x5A) + assigned(0x61, 0x7A) + assigned(0xC0, 0x24F),
    "greek": assigned(0x370, 0x3FF),
    "cyrillic": assigned(0x400, 0x4FF),
    "hebrew": assigned(0x5D0, 0x5EA),
    "arabic": assigned(0x620, 0x64A) + assigned(0x660, 0x669),
    "devanagari": assigned(0x900, 0x97F),
    "thai": assigned(0xE01, 0xE5B),
    "hangul": assigned(0xAC00, 0xD7A3),
    "kana": assigned(0x3041, 0x30FF),
    "cjk": assigned(0x4E00, 0x9FFF),
    "fullwidth": assigned(0xFF01, 0xFF5E) + assigned(0xFF61, 0xFF9F),
    "symbols": assigned(0x2000, 0x206F) + assigned(0x2100, 0x22FF) +
               assigned(0x2500, 0x257F),
    "misc": assigned(0xA0, 0xFF) + assigned(0x1E00, 0x1EFF),
}
COMBINING = assigned(0x300, 0x36F)
EMOJI = assigned(0x1F300, 0x1F5FF) + assigned(0x1F600, 0x1F64F) + \
    assigned(0x1F680, 0x1F6FF) + assigned(0x1F900, 0x1F9FF)
SKIN = [chr(c) for c in range(0x1F3FB, 0x1F400)]
PEOPLE = [chr(c) for c in (0x1F44D, 0x1F44B, 0x1F469, 0x1F468, 0x1F466,
                           0x1F467, 0x1F9D1, 0x270C, 0x1F64F)]
REGIONAL = [chr(c) for c in range(0x1F1E6, 0x1F200)]
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
            "<|start_header_id|>", "<|end_header_id|>", "<|im_start|>",
            "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>", "<bos>",
            "<eos>", "<pad>", "<start_of_turn>", "<end_of_turn>",
            "<unused17>", "<mask>", "[multimodal]", "<think>", "</think>",
            "<|reserved_special_token_3|>", "<|im_sta", "<s", "<bos", "<|"]
WS = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r\n\r\n", " \n",
      "\t\t", "    ", "\u00a0", "\u3000", "\u2009", " \t \n", "\r", "\x0b",
      "\x0c", "\u0085", "\u2028"]

def word(script):
    chars = SCRIPTS[script]
    n = rnd.randint(1, 9)
    return "".join(rnd.choice(chars) for _ in range(n))

def emoji():
    k = rnd.random()
    if k < 0.3:
        return rnd.choice(PEOPLE) + rnd.choice(SKIN)
    if k < 0.5:
        return rnd.choice(REGIONAL) + rnd.choice(REGIONAL)
    if k < 0.65:   # a ZWJ family
        return "\u200d".join(rnd.choice(PEOPLE) for _ in range(rnd.randint(2, 4)))
    if k < 0.75:
        return rnd.choice(EMOJI) + "\ufe0f"
    return rnd.choice(EMOJI)

def combining():
    base = rnd.choice("aeiouncAEIOUNCsz")
    s = base + "".join(rnd.choice(COMBINING) for _ in range(rnd.randint(1, 3)))
    return unicodedata.normalize(rnd.choice(["NFC", "NFD"]), s) \
        if rnd.random() < 0.5 else s

def digits():
    return "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 40)))

def mixed_doc(target):
    out = []
    n = 0
    while n < target:
        k = rnd.random()
        if k < 0.45:
            piece = word(rnd.choice(list(SCRIPTS)))
        elif k < 0.55:
            piece = emoji()
        elif k < 0.62:
            piece = combining()
        elif k < 0.70:
            piece = digits()
        elif k < 0.75:
            piece = rnd.choice(SPECIALS)
        elif k < 0.80:
            piece = rnd.choice(["'s", "'T", "'re", "'LL", "'d", "'ve", "'M",
                                "n't", "'x"])
        else:
            piece = rnd.choice(WS)
        out.append(piece)
        if rnd.random() < 0.6:
            out.append(" ")
        n += len(piece.encode())
    return "".join(out)

def tree_files(top, pattern):
    """The files below top whose names match pattern.  Symbolic links to
    directories are not followed: Debian's node-* packages link their doc
    directories to each other in cycles, which a recursive glob walks for
    ever."""
    found = []
    for d, _, names in os.walk(top):
        found += [os.path.join(d, n) for n in names
                  if fnmatch.fnmatchcase(n, pattern)]
    return found

def file_docs(top, pattern, limit):
    docs = []
    files = sorted(tree_files(top, pattern))
    rnd.shuffle(files)
    total = 0
    for f in files:
        try:
            with open(f, "rb") as fh:
                b = fh.read(6000)
            s = b.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if not s.strip():
            continue
        if rnd.random() < 0.3:
            s = s.replace("\n", "\r\n")
        docs.append(s)
        total += len(s.encode())
        if total >= limit:
            break
    return docs

docs = []
docs += file_docs("/usr/include", "*.h", SIZE // 4)
docs += file_docs("/usr/share/doc", "copyright", SIZE // 8)
docs += file_docs("/usr/share/common-licenses", "*", SIZE // 16)
size = sum(len(d.encode()) for d in docs)
while size < SIZE:
    d = mixed_doc(rnd.randint(200, 4000))
    docs.append(d)
    size += len(d.encode())
# A few long runs: one piece of many symbols.
docs += [" " * 5000, "\n" * 3000, "9" * 10000, "\r\n" * 1000,
         "ab" * 3000, "\U0001F44D\U0001F3FD" * 500, "", " ", "\u2581x \u2581"]
rnd.shuffle(docs)
with open(OUT, "w", encoding="utf-8") as f:
    json.dump(docs, f, ensure_ascii=False)
print("gen_text: %d documents, %d bytes" % (len(docs),
      sum(len(d.encode()) for d in docs)), file=sys.stderr)
