"""common.py - data shared by tools/train/train.py and tools/eval/eval.py.

The byte tokenizer (ids 0-255 are bytes, 256 BOS, 257 EOS), the corpus
(the King James Bible from Debian's bible-kjv-text, verse references
stripped; the last HELDOUT_BYTES are held out for evaluation) and the
synthetic pass-key task.

The pass-key task (passkey_layout): "The pass key is KEY. " stated, k
segments compressed into memory, then "The pass key is " and the answer
"KEY." in the question's segment.  The local branch sees one segment, so
the key reaches the answer only through the compressive memory.
"""

import os
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
    repeated sentences, "text" a random slice of text (uint8 array),
    "random" random printable ASCII with an occasional newline."""
    if n <= 0:
        return []
    if kind == "random":
        return [10 if rng.random() < 0.02 else rng.randint(32, 126)
                for _ in range(n)]
    if kind == "repeat":
        s = REPEAT_FILLER.encode()
        o = rng.randrange(len(s))
        reps = (o + n) // len(s) + 2
        return list((s * reps)[o:o + n])
    o = rng.randrange(len(text) - n - 1)
    return text[o:o + n].tolist()


WORDS_FILE = "/usr/share/dict/american-english"
_words = None


def words():
    """words returns the key words: lower-case 4-9 letter words of
    Debian's wamerican list (apt-get install -y wamerican)."""
    global _words
    if _words is None:
        try:
            with open(WORDS_FILE) as f:
                ws = [w.strip() for w in f]
        except OSError as e:
            raise SystemExit("%s (apt-get install -y wamerican)" % e)
        _words = sorted(w for w in ws if 4 <= len(w) <= 9 and
                        w.isascii() and w.isalpha() and w.islower())
    return _words


# Key formats: "d3".."d8" (that many random digits) and "word".
KEY_FORMATS = ("d3", "d4", "d5", "d6", "d7", "d8", "word")


def make_key(rng, fmt):
    """make_key returns a random key of format fmt (KEY_FORMATS)."""
    if fmt == "word":
        return rng.choice(words())
    return "".join(rng.choice("0123456789") for _ in range(int(fmt[1:])))


# Labels of the training rows' statements ("The door code is 4821. "); the
# evaluation asks for the pass key only.
LABELS = ("pass key", "door code", "secret word", "magic number", "password")


def passkey_layout(rng, N, k, fill, key, place="start", label="pass key",
                   distractor=None):
    """passkey_layout returns (tokens, answer_pos): the statement of key,
    k compressions, then the question, whose answer (key + ".") starts at
    answer_pos.  fill(n) gives n filler ids.  place:
      "start"     the statement lies in segment 0 (after BOS and 0 or more
                  filler bytes) and the question in segment k;
      "middle"    k filler segments come first: the statement lies in
                  segment k, the question in segment 2k;
      "straddle"  the statement begins in segment 0 and ends in segment 1,
                  the question lies in segment k + 1.
    Every case compresses k segments between the segment that completes
    the statement and the question's segment.  label names what is stated
    and asked ("The <label> is ...").  distractor, a (label, key) pair of
    another label, is stated inside one of the filler segments between
    statement and question (when k > 1), so that the answer is the stated
    key of the label asked, not the latest key seen."""
    st = list(("The %s is %s. " % (label, key)).encode())
    q = list(("The %s is " % label).encode())
    ans = list((key + ".").encode())
    if place == "straddle":
        cut = rng.randint(1, len(st) - 1)
        head = N - 1 - cut
        assert head >= 0, "segment_size too small for the statement"
        rest = st[cut:]
        pre = [BOS] + fill(head) + st[:cut] + rest + fill(N - len(rest))
    elif place in ("start", "middle"):
        lead = [BOS] + fill(k * N - 1) if place == "middle" else [BOS]
        room = N - len(st) - (1 if place == "start" else 0)
        assert room >= 0, "segment_size too small for the statement"
        seg = fill(rng.randint(0, room)) + st
        seg = seg + fill(N - (1 if place == "start" else 0) - len(seg))
        pre = lead + seg
    else:
        raise ValueError("place: %r" % place)
    gap = k - 1
    mid = fill(gap * N)
    if distractor is not None and gap > 0:
        ds = list(("The %s is %s. " % distractor).encode())
        o = rng.randrange(gap) * N + rng.randint(0, N - len(ds))
        mid[o:o + len(ds)] = ds
    roomk = N - len(q) - len(ans)
    assert roomk >= 0, "segment_size too small for the question"
    segk = fill(rng.randint(0, roomk)) + q
    apos = len(pre) + len(mid) + len(segk)
    segk = segk + ans
    segk = segk + fill(N - len(segk))
    toks = pre + mid + segk
    assert len(toks) % N == 0, (len(toks), N)
    return toks, apos
