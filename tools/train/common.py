"""common.py - data shared by tools/train/train.py and tools/eval/eval.py.

The byte tokenizer (ids 0-255 are bytes, 256 BOS, 257 EOS), the corpus
(the King James Bible from Debian's bible-kjv-text, verse references
stripped; the last HELDOUT_BYTES are held out for evaluation) and the
synthetic pass-key task.

Pass-key layout, segment size N, k compressions (k >= 1):
    segment 0     BOS, filler, "The pass key is 73921. "      (all in seg 0)
    segments 1..k-1   filler
    segment k     filler, "The pass key is " then the answer "73921."
The statement's segment and k-1 filler segments are compressed into memory
before the answer is read, so the digits reach the answer only through
the compressive memory (the local branch sees segment k only).
"""

import os
import random
import subprocess

import numpy as np

BOS, EOS, VOCAB = 256, 257, 258
HELDOUT_BYTES = 200_000
CORPUS_CACHE = os.path.expanduser("~/.cache/infinid/kjv.txt")

# The filler of the classic pass-key test (Mohtashami & Jaggi 2023, used
# by the Infini-attention paper).
REPEAT_FILLER = ("The grass is green. The sky is blue. The sun is yellow. "
                 "Here we go. There and back again. ")
STATEMENT = "The pass key is %s. "
QUESTION = "The pass key is "
N_DIGITS = 5


def load_corpus():
    """load_corpus returns the KJV text as bytes (one verse per line,
    references stripped).  Needs `apt-get install bible-kjv` (which pulls
    bible-kjv-text); the text is cached under ~/.cache/infinid."""
    if os.path.exists(CORPUS_CACHE):
        with open(CORPUS_CACHE, "rb") as f:
            return f.read()
    try:
        out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True,
                             capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit("cannot run `bible` (%s): apt-get install -y "
                         "bible-kjv" % e)
    lines = []
    for ln in out.decode("utf-8", "replace").splitlines():
        ref, _, verse = ln.partition(" ")
        if verse:
            lines.append(verse.strip())
    data = ("\n".join(lines) + "\n").encode()
    os.makedirs(os.path.dirname(CORPUS_CACHE), exist_ok=True)
    with open(CORPUS_CACHE, "wb") as f:
        f.write(data)
    return data


def split_corpus(data):
    """split_corpus returns (train, heldout) as uint8 numpy arrays."""
    a = np.frombuffer(data, dtype=np.uint8)
    return a[:-HELDOUT_BYTES], a[-HELDOUT_BYTES:]


def filler(rng, n, text, kind):
    """filler returns n byte ids of filler: kind "repeat" is the classic
    repeated sentences, "text" a random slice of text (uint8 array)."""
    if n <= 0:
        return []
    if kind == "repeat":
        s = REPEAT_FILLER.encode()
        o = rng.randrange(len(s))
        reps = (o + n) // len(s) + 2
        return list((s * reps)[o:o + n])
    o = rng.randrange(len(text) - n - 1)
    return text[o:o + n].tolist()


def passkey_example(rng, N, k, text, kind, key=None):
    """passkey_example returns (tokens, answer_pos, key): tokens is
    (k+1)*N ids (the last segment ends after the answer with filler),
    answer_pos the index of the first answer digit; the answer is the
    N_DIGITS digits at answer_pos.. (then "." ).  The statement lies in
    segment 0, the answer in segment k."""
    if key is None:
        key = "".join(rng.choice("0123456789") for _ in range(N_DIGITS))
    st = list((STATEMENT % key).encode())
    q = list(QUESTION.encode())
    ans = list((key + ".").encode())
    # segment 0: BOS + pre-filler + statement, rest filler
    room0 = N - 1 - len(st)
    assert room0 >= 0, "segment_size too small for the statement"
    pre = rng.randint(0, room0)
    seg0 = [BOS] + filler(rng, pre, text, kind) + st
    mid = filler(rng, N - len(seg0) + (k - 1) * N, text, kind)
    roomk = N - len(q) - len(ans)
    assert roomk >= 0, "segment_size too small for the question"
    r = rng.randint(0, roomk)
    segk = filler(rng, r, text, kind) + q
    apos = k * N + len(segk)
    segk = segk + ans
    segk = segk + filler(rng, N - len(segk), text, kind)
    toks = seg0 + mid + segk
    assert len(toks) == (k + 1) * N
    return toks, apos, key
