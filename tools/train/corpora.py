"""corpora.py - the text sources of training and evaluation.

Each source is read from a Debian package's files, normalised (tabs to
spaces, runs of spaces and of blank lines collapsed, trailing spaces cut)
and cached under ~/.cache/infinid/corpora/NAME.txt.

Training sources (several styles, so that what the memory learns to keep
is not tied to one kind of text):
    kjv       the King James Bible (bible-kjv-text), all but its last
              200,000 bytes (common.load_corpus; the rest is held out)
    fortunes  fortune cookies: quotations, verse, jokes (fortunes, fortunes-min)
    vimdoc    Vim's reference manual (vim-runtime): technical English
    foldoc    the Free On-line Dictionary of Computing (dict-foldoc)
    python    Python's standard library sources (python3.11): code
Random printable bytes are made on the fly by common.filler (kind
"random"); they are not a source here.

Held-out sources, never trained on (tools/eval's "unseen" fillers):
    devil     Ambrose Bierce's The Devil's Dictionary, 1911 (dict-devil)
    jargon    the Jargon File 4.4 (jargon-text)
    licenses  the licence texts in /usr/share/common-licenses (base-files)
    kjv-held  the last 200,000 bytes of the Bible (Colossians 3:20 on)

Setup: apt-get install -y bible-kjv fortunes fortunes-min vim-runtime
dict-foldoc dict-devil jargon-text
"""

import glob
import gzip
import os
import re

import numpy as np

import common

CACHE = os.path.expanduser("~/.cache/infinid/corpora")
PACKAGES = ("bible-kjv fortunes fortunes-min vim-runtime dict-foldoc "
            "dict-devil jargon-text")

TRAIN = ("kjv", "fortunes", "vimdoc", "foldoc", "python")
HELDOUT = ("devil", "jargon", "licenses")
# Sampling weights of the training sources in text streams and filler.
WEIGHTS = {"kjv": 0.3, "fortunes": 0.2, "vimdoc": 0.2, "foldoc": 0.15,
           "python": 0.15}
MAX_BYTES = 6_000_000


def _read(path):
    opener = gzip.open if path.endswith((".gz", ".dz")) else open
    with opener(path, "rb") as f:
        return f.read()


def _files(name):
    if name == "fortunes":
        fs = [f for f in glob.glob("/usr/share/games/fortunes/*")
              if os.path.isfile(f) and "." not in os.path.basename(f)]
    elif name == "vimdoc":
        fs = glob.glob("/usr/share/vim/vim*/doc/*.txt") + \
            glob.glob("/usr/share/vim/vim*/doc/*.txt.gz")
    elif name == "foldoc":
        fs = ["/usr/share/dictd/foldoc.dict.dz"]
    elif name == "python":
        fs = glob.glob("/usr/lib/python3.11/*.py") + \
            glob.glob("/usr/lib/python3.11/*/*.py")
    elif name == "devil":
        fs = ["/usr/share/dictd/devil.dict.dz"]
    elif name == "jargon":
        fs = ["/usr/share/doc/jargon-text/jargon.txt.gz"]
    elif name == "licenses":
        fs = [f for f in glob.glob("/usr/share/common-licenses/*")
              if os.path.isfile(f) and not os.path.islink(f)]
    else:
        raise KeyError(name)
    fs = sorted(f for f in fs if os.path.exists(f))
    if not fs:
        raise SystemExit("corpus %s: no files (apt-get install -y %s)" %
                         (name, PACKAGES))
    return fs


def _prose(line):
    """_prose: an empty line, or one whose bytes are mostly letters and
    spaces."""
    if not line.strip():
        return True
    good = sum(c.isalpha() or c == " " for c in line)
    return good >= 0.75 * len(line)


def _normalise(b, code):
    s = b.decode("utf-8", "replace").replace("\r", "").replace("\t", "    ")
    if not code:
        s = s.replace("%\n", "\n")              # fortune separators
        s = re.sub(r" {3,}", "  ", s)           # indentation, centring
        # Drop the lines that are not prose: tables, box drawing, rules.
        s = "\n".join(ln for ln in s.split("\n") if _prose(ln))
    s = re.sub(r"[ ]+\n", "\n", s)
    s = re.sub(r"\n{3,}", "\n\n", s)
    return s.encode("utf-8")


def load(name):
    """load returns source name's normalised text as a uint8 array."""
    if name in ("kjv", "kjv-held"):
        tr, held = common.split_corpus(common.load_corpus())
        return tr if name == "kjv" else held
    path = os.path.join(CACHE, name + ".txt")
    if not os.path.exists(path):
        parts = []
        for f in _files(name):
            parts.append(_normalise(_read(f), name == "python"))
        data = b"\n".join(parts)[:MAX_BYTES]
        os.makedirs(CACHE, exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
    with open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8)


class Mixture:
    """Mixture draws slices from several sources with given weights."""

    def __init__(self, names, weights=None):
        self.names = list(names)
        self.data = {n: load(n) for n in self.names}
        self.weights = [(weights or {}).get(n, 1.0) for n in self.names]

    def pick(self, rng):
        """pick returns (name, text) of a source drawn by weight."""
        n = rng.choices(self.names, self.weights)[0]
        return n, self.data[n]

    def sizes(self):
        return {n: len(t) for n, t in self.data.items()}
