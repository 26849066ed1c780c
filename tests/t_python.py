"""t_python.py - the Python client (client/python) against a real infinid.

Run by t_python.t, which starts the daemon on a fixture model and sets
INFINI_SOCKET, INFINI_LIBRARY, INFINI_CLI (the C tool), INFINI_TEST_DIR and
INFINID_LOG.  Every value the package returns is checked against what the
infini tool (libinfini's C API, another decoder of the same replies) or
the daemon's documented behaviour says, on streams brought to the same
state; nothing is compared with numbers written down by hand.  Prints TAP.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np

import infini
from infini import _lib

URL = os.environ["INFINI_SOCKET"]
CLI = os.environ["INFINI_CLI"]
TMP = os.environ["INFINI_TEST_DIR"]
LOG = os.environ["INFINID_LOG"]

PLAN = 50
_n = 0
_failed = 0


def ok(cond, name, diag=None):
    global _n, _failed
    _n += 1
    print("%sok %d - %s" % ("" if cond else "not ", _n, name), flush=True)
    if not cond:
        _failed += 1
        if diag is not None:
            for line in str(diag).splitlines():
                print("#   " + line)
    return cond


def cli_env():
    """The environment for the infini tool: under sanitizers, the options
    t_python.t had before it turned leak checks off for python3."""
    env = dict(os.environ)
    if "INFINI_CHILD_ASAN_OPTIONS" in env:
        env["ASAN_OPTIONS"] = env["INFINI_CHILD_ASAN_OPTIONS"]
        env.pop("LD_PRELOAD", None)
    return env


def cli(*args):
    """Run the infini tool with --json; returns (rc, last JSON object)."""
    p = subprocess.run([CLI, "--socket", URL, "--json"] + list(args),
                       capture_output=True, timeout=60, env=cli_env())
    out = p.stdout.decode("utf-8", "replace")
    lines = [ln for ln in out.splitlines() if ln.strip()]
    return p.returncode, json.loads(lines[-1]) if lines else None


def same_text(raw, text):
    """The tool's JSON text for raw bytes: equal when they are UTF-8 (the
    tool replaces invalid sequences in its own way)."""
    try:
        return raw.decode("utf-8") == text
    except UnicodeDecodeError:
        return isinstance(text, str)


def raises(fn, code):
    try:
        fn()
    except infini.InfiniError as e:
        return e if e.code == code else None
    return None


def main():
    print("1..%d" % PLAN, flush=True)

    # ---- the package and the library --------------------------------
    lib = _lib.load()
    names = [lib.infini_errname(k).decode() for k in
             range(1, len(infini.ERRORS) + 2)]
    ok(names[:-1] == ["INFINI_" + n for n in infini.ERRORS] and
       names[-1] not in names[:-1],
       "error names match libinfini's infini_errname table", names)
    ok(infini.ENOENT == infini.ERRORS.index("ENOENT") + 1 and
       lib.infini_errname(infini.ENOENT) == b"INFINI_ENOENT",
       "module constants are the library's codes")
    try:
        _lib.load("/nonexistent/libinfini.so")
        ok(False, "a missing library path raises OSError")
    except OSError as e:
        ok("/nonexistent/libinfini.so" in str(e),
           "a missing library path raises OSError naming it", e)
    c2 = infini.Client(URL, library=os.environ["INFINI_LIBRARY"])
    ok(c2.health().hidden_size > 0, "library= names the .so explicitly")
    c2.close()
    c2.close()
    ok(raises(c2.health, infini.ESTATE) is not None,
       "a closed client raises ESTATE")

    e = raises(lambda: infini.Client("ipc://%s/none.sock" % TMP, 2000),
               infini.EUNAVAILABLE)
    ok(e is not None and "no daemon at" in e.message,
       "no daemon: InfiniError EUNAVAILABLE with libinfini's message",
       e)

    c = infini.Client()   # $INFINI_SOCKET
    h = c.health()
    rc, js = cli("status")
    ok(rc == 0 and h.model == js["model"] and h.version == js["version"] and
       h.hidden_size == js["hidden_size"] and
       h.vocab_size == js["vocab_size"] and
       h.segment_size == js["segment_size"] and
       "%016x" % h.model_fingerprint == js["model_fingerprint"],
       "health() matches 'infini status'", (h, js))
    hidden, vocab, seg = h.hidden_size, h.vocab_size, h.segment_size

    # ---- streams --------------------------------------------------------
    sid, created = c.open("py.a")
    ok(sid == "py.a" and created, "open creates the stream")
    e = raises(lambda: c.open("py.a"), infini.EEXIST)
    ok(e is not None and e.name == "INFINI_EEXIST" and
       "ALREADY_EXISTS" in e.message and "py.a" in str(e),
       "opening it again raises EEXIST with the daemon's message", e)
    ok(c.open("py.a", reuse=True) == ("py.a", False), "reuse opens it")
    auto, created = c.open()
    ok(created and len(auto) > 0, "open() lets the daemon pick an id")
    ok(raises(lambda: c.open("bad id!"), infini.EINVAL) is not None,
       "a bad id raises EINVAL")
    ok(raises(lambda: c.push_tokens("py.none", [1]), infini.ENOENT)
       is not None, "push to a missing stream raises ENOENT")

    # ---- push: outputs against the C client ---------------------------
    toks = [(7 * i + 3) % 250 for i in range(seg + 3)]
    r = c.push_tokens("py.a", toks, output="embeddings")
    c.open("py.b")
    rc, js = cli("push", "py.b", "--tokens", ",".join(map(str, toks)),
                 "--output", "embeddings")
    ref = np.asarray(js["data"], dtype=np.float32) if rc == 0 else None
    ok(isinstance(r.data, np.ndarray) and r.data.dtype == np.float32 and
       r.data.shape == (len(toks), hidden), "push_tokens embeddings: "
       "float32 array [n, hidden]", r.data.shape if r.data is not None
       else None)
    ok(ref is not None and ref.shape == r.data.shape and
       np.abs(ref - r.data).max() <= 1e-6 and
       r.position == js["position"] == len(toks) and
       r.segments == js["segments"] == len(toks) // seg,
       "  equal to 'infini push' on a twin stream", js)

    text = "Hello, infini! Ünïcödé."
    m = c.embed("py.a", text)
    rc, js = cli("embed", "py.b", "--text", text)
    ok(m.shape == (hidden,) and rc == 0 and
       np.abs(np.asarray(js["vector"], np.float32) - m).max() <= 1e-6,
       "embed (mean) equals 'infini embed'", js)
    ok(c.push_text("py.a", b"xyz").position ==
       len(toks) + len(text.encode()) + 3 and
       c.push_text("py.a", b"xyz").data is None,
       "push_text: bytes too, position counts UTF-8 bytes, no output "
       "by default")
    cli("push", "py.b", "--text", "xyzxyz")

    vec = np.random.default_rng(5).standard_normal((3, hidden))
    np.save(os.path.join(TMP, "v.npy"), vec.astype(np.float32))
    r = c.push_vectors("py.a", vec, output="logits")
    rc, js = cli("push", "py.b", "--vectors", os.path.join(TMP, "v.npy"),
                 "--output", "logits")
    ok(r.data.shape == (3, vocab) and rc == 0 and
       np.abs(np.asarray(js["data"], np.float32) - r.data).max() <= 1e-5,
       "push_vectors (float64 in) logits equal 'infini push --vectors'",
       js if rc else None)
    ok(raises(lambda: c.push_vectors("py.a", np.zeros((2, hidden + 1))),
              infini.EINVAL) is not None,
       "vectors of the wrong width raise EINVAL")

    # last_logits is the last row of logits (documented in infini.h).
    f = c.fork("py.a", "py.a2")
    full = c.push_tokens("py.a", [1, 2, 3], output="logits").data
    last = c.push_tokens(f, [1, 2, 3], output="last_logits").data
    ok(f == "py.a2" and last.shape == (1, vocab) and
       np.array_equal(last[0], full[-1]),
       "fork, then last_logits equals the last row of logits")
    cli("push", "py.b", "--tokens", "1,2,3")

    # ---- generation -----------------------------------------------------
    fin = c.complete("py.a", "Q: ", max_tokens=12)
    rc, js = cli("generate", "py.b", "--prompt", "Q: ", "-n", "12")
    ok(rc == 0 and fin.tokens == js["tokens"] and
       fin.reason == js["finish_reason"] and same_text(fin.bytes, js["text"]),
       "greedy generate equals 'infini generate' on the twin stream",
       (fin, js))
    ok(len(fin.tokens) == 12 and fin.reason == "length",
       "max_tokens ends it: finish 'length' after 12 tokens", fin)

    seen = []
    gen = c.generate("py.a", [65, 66], max_tokens=3, temperature=0.8,
                     top_k=20, seed=7)
    for t in gen:
        ok(isinstance(t, infini.Token), "generate yields Token(id, bytes)")
        seen.append(t)
        break
    seen += list(gen)
    # Tokens hand out whole UTF-8 characters: a byte that starts one is
    # held until it completes, and at the end what never completed is
    # U+FFFD, as Python's own decoder replaces it.
    raw = bytes(t.id for t in seen if t.id < 256)
    ok(len(seen) == 3 and all(0 <= t.id < vocab for t in seen) and
       b"".join(t.bytes for t in seen) ==
       raw.decode("utf-8", "replace").encode("utf-8"),
       "token prompt, sampled: 3 tokens, bytes are the byte-tokenizer's "
       "in whole characters",
       seen)
    c.fork("py.a", "py.s1")
    c.fork("py.a", "py.s2")
    s1 = c.complete("py.s1", None, max_tokens=6, temperature=0.9, seed=11)
    s2 = c.complete("py.s2", None, max_tokens=6, temperature=0.9, seed=11)
    ok(s1.tokens == s2.tokens, "same state and seed: same sample", (s1, s2))

    # Streaming: the first token arrives while the daemon is still
    # generating; closing the generator cancels it there.  On the daemon
    # whose model has no byte tokenizer no answer ends early at EOS, so
    # stopping short of max_tokens is the cancel's doing.
    n_long = 4000
    with infini.Client(os.environ["INFINI_SOCKET_NOTOK"]) as cn:
        cn.open("py.long")
        cn.push_tokens("py.long", [1, 2, 3])
        gen = cn.generate("py.long", [4], max_tokens=n_long)
        first = next(gen)
        busy = [s.generating for s in cn.list() if s.id == "py.long"][0]
        ok(first.id >= 0 and first.bytes == b"" and busy,
           "the first token is yielded while the stream is still "
           "generating (no byte tokenizer: no bytes)")
        t0 = time.monotonic()
        gen.close()
        closed = time.monotonic() - t0
        for _ in range(100):
            info = [s for s in cn.list() if s.id == "py.long"][0]
            if not info.generating:
                break
            time.sleep(0.05)
        ok(not info.generating and closed < 3.0 and
           info.position < 4 + n_long,
           "closing the generator cancels it on the daemon (%.3f s; "
           "position %d of %d)" % (closed, info.position, 4 + n_long))
        # Ctrl-C in the loop (KeyboardInterrupt) drops the generator,
        # which cancels the generation the same way.
        pos1 = [s.position for s in cn.list() if s.id == "py.long"][0]
        n = 0
        try:
            for _ in cn.generate("py.long", None, max_tokens=n_long):
                n += 1
                if n == 5:
                    os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass
        for _ in range(100):
            info = [s for s in cn.list() if s.id == "py.long"][0]
            if not info.generating:
                break
            time.sleep(0.05)
        ok(n >= 5 and not info.generating and
           info.position < pos1 + n_long,
           "Ctrl-C in the loop cancels it too (%d tokens seen, position "
           "%d -> %d)" % (n, pos1, info.position))
        full = cn.complete("py.long", None, max_tokens=50)
        ok(full.reason == "length" and len(full.tokens) == 50,
           "  (there, answers run to max_tokens: %s)" % full.reason)
    # infini run answers a line as generate would answer the line with its
    # newline: the tool's session against the package, on twin streams.
    c.fork("py.a", "py.run1")
    c.fork("py.a", "py.run2")
    p = subprocess.run([CLI, "--socket", URL, "--json", "run", "py.run1",
                        "-n", "6", "--no-history"], input=b"tell me\n",
                       capture_output=True, timeout=60, env=cli_env())
    last = p.stdout.decode("utf-8", "replace").splitlines()[-1:]
    js = json.loads(last[0]) if last else {}
    fin = c.complete("py.run2", "tell me\n", max_tokens=6)
    ok(p.returncode == 0 and js.get("tokens") == fin.tokens and
       js.get("done") is True, "'infini run' answers a line like "
       "generate(line + newline) on a twin stream", (js, fin))

    e = raises(lambda: list(c.generate("py.none", "x")), infini.ENOENT)
    ok(e is not None, "generate on a missing stream raises ENOENT "
       "from the iteration", e)
    e = raises(lambda: list(c.generate("py.a", "x", max_tokens=0)),
               infini.EINVAL)
    ok(e is not None, "max_tokens 0 raises EINVAL", e)

    # ---- snapshots ------------------------------------------------------
    pos = [s.position for s in c.list() if s.id == "py.a"][0]
    blob = c.export_snapshot("py.a")
    ok(isinstance(blob, bytes) and len(blob) > 0, "export_snapshot: %d "
       "bytes" % len(blob))
    ok(c.restore("py.r", data=blob) == pos, "restore from bytes: same "
       "position")
    n = c.snapshot("py.a", "pysnap")
    ok(n > 0 and c.restore("py.r2", name="pysnap") == pos,
       "snapshot by name (%d bytes) and restore by name" % n)
    a = c.push_tokens("py.a", [9, 8, 7], output="embeddings").data
    b = c.push_tokens("py.r", [9, 8, 7], output="embeddings").data
    b2 = c.push_tokens("py.r2", [9, 8, 7], output="embeddings").data
    ok(np.array_equal(a, b) and np.array_equal(a, b2),
       "restored streams continue exactly like the original")
    e = raises(lambda: c.snapshot("py.a", "pysnap"), infini.EEXIST)
    ok(e is not None, "snapshot to an existing name raises EEXIST", e)
    pos2 = [s.position for s in c.list() if s.id == "py.a"][0]
    n2 = c.snapshot("py.a", "pysnap", overwrite=True)
    ok(pos2 == pos + 3 and n2 > 0 and
       c.restore("py.r5", name="pysnap") == pos2,
       "overwrite=True replaces it: restore gives the later position %d" %
       pos2)
    rc, js = cli("snapshots")
    mine = {s.name: s for s in c.list_snapshots()}
    theirs = {s["name"]: s for s in js["snapshots"]} if rc == 0 else {}
    ok("pysnap" in mine and set(mine) == set(theirs) and
       all(mine[k].bytes == theirs[k]["bytes"] and
           mine[k].position == theirs[k]["position"] and
           mine[k].owner_uid == theirs[k]["owner_uid"] == os.getuid() and
           mine[k].stream_id == theirs[k]["stream_id"] and
           mine[k].created_ms == theirs[k]["created_ms"] for k in mine) and
       mine["pysnap"].bytes == n2 and mine["pysnap"].stream_id == "py.a",
       "list_snapshots() matches 'infini snapshots' (%d)" % len(mine),
       (mine, theirs))
    c.delete_snapshot("pysnap")
    rc, js = cli("snapshots")
    ok(rc == 0 and "pysnap" not in {s.name for s in c.list_snapshots()} and
       "pysnap" not in {s["name"] for s in js["snapshots"]},
       "delete_snapshot removes it for both")
    e = raises(lambda: c.delete_snapshot("pysnap"), infini.ENOENT)
    ok(e is not None, "deleting it again raises ENOENT", e)
    ok(raises(lambda: c.restore("py.r3", data=b"garbage"),
              infini.ECORRUPT) is not None or
       raises(lambda: c.restore("py.r4", data=b"garbage"),
              infini.EINVAL) is not None,
       "restoring garbage raises an InfiniError")

    # ---- text flags (the daemon with Llama-2's tokenizer.json) --------
    with infini.Client(os.environ["INFINI_SOCKET_HF"]) as ch:
        hf = os.environ["INFINI_SOCKET_HF"]
        for sid in ("py.sp1", "py.sp2", "py.sp3", "py.sp4"):
            ch.open(sid)
        special = ch.push_text("py.sp1", "<s>").position
        ch.set_text_flags(infini.TEXT_PLAIN_SPECIAL)
        plain = ch.push_text("py.sp2", "<s>").position
        ch.set_text_flags(0)
        again = ch.push_text("py.sp3", "<s>").position
        p = subprocess.run([CLI, "--socket", hf, "--json", "--plain-special",
                            "push", "py.sp4", "--text", "<s>"],
                           capture_output=True, timeout=60, env=cli_env())
        lines = [ln for ln in p.stdout.decode().splitlines() if ln.strip()]
        tool = json.loads(lines[-1])["position"] if lines else None
        ok(special == 1 and again == 1 and plain > 2 and plain == tool,
           "set_text_flags: '<s>' is one token by default (%d, %d), plain "
           "text with TEXT_PLAIN_SPECIAL (%d tokens, the tool's "
           "--plain-special: %s)" % (special, again, plain, tool))

    # ---- list, stats, close ------------------------------------------
    rc, js = cli("ls")
    mine = {s.id: s for s in c.list()}
    theirs = {s["stream_id"]: s for s in js["streams"]} if rc == 0 else {}
    ok(set(mine) == set(theirs) and
       all(mine[k].position == theirs[k]["position"] and
           mine[k].segments == theirs[k]["segments"] and
           mine[k].owner_uid == theirs[k]["owner_uid"] == os.getuid() and
           mine[k].resident == theirs[k]["resident"]
           for k in mine),
       "list() matches 'infini ls' (%d streams, owner uid %d)" %
       (len(mine), os.getuid()), (mine, theirs))
    st = c.stats()
    rc, js = cli("stats")
    ok(rc == 0 and st.max_streams == js["max_streams"] and
       st.state_bytes_per_stream == js["state_bytes_per_stream"] and
       st.streams == js["streams"] == len(mine) and
       st.resident_streams == js["resident_streams"] ==
       sum(m.resident for m in mine.values()) and
       st.tokens_in <= js["tokens_in"] and st.requests < js["requests"],
       "stats() matches 'infini stats'", (st, js))
    c.close_stream("py.r")
    ok(raises(lambda: c.push_tokens("py.r", [1]), infini.ENOENT)
       is not None and "py.r" not in {s.id for s in c.list()},
       "close_stream removes it")

    # ---- threads ------------------------------------------------------
    errs = []

    def worker(k):
        try:
            sid = "py.t%d" % k
            c.open(sid)
            for i in range(10):
                r = c.push_tokens(sid, [k, i])
                if r.position != 2 * (i + 1):
                    errs.append((k, i, r.position))
            list(c.generate(sid, None, max_tokens=2))
        except Exception as e:   # noqa: BLE001
            errs.append(e)

    th = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    ok(not errs, "4 threads share one client: pushes and generations",
       errs)

    with infini.Client(URL) as c3:
        ok(c3.health().model == h.model, "Client is a context manager")
    c.close()

    # ---- installing ---------------------------------------------------
    # The documented offline install (client/python/README.md), from a copy
    # so that the build leaves nothing in the source tree.
    src = os.path.join(TMP, "pysrc")
    venv = os.path.join(TMP, "venv")
    shutil.copytree(os.environ["PYTHONPATH"], src)
    env = dict(os.environ)
    env.pop("PYTHONPATH")
    steps = [[sys.executable, "-m", "venv", "--system-site-packages", venv],
             [os.path.join(venv, "bin", "pip"), "install", "--no-index",
              "--no-build-isolation", src],
             [os.path.join(venv, "bin", "python"), "-c",
              "import infini; print(infini.__file__); "
              "print(infini.Client().health().model)"]]
    out = ""
    for cmd in steps:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                           cwd=TMP, timeout=300)
        out = p.stdout + p.stderr
        if p.returncode != 0:
            break
    lines = out.split()
    ok(p.returncode == 0 and len(lines) >= 2 and
       lines[0].startswith(venv) and lines[1] == h.model,
       "pip install --no-build-isolation into a venv, offline; the "
       "installed package talks to the daemon", out)

    # ---- the daemon ------------------------------------------------------
    nval = 0
    for log in (LOG, os.environ["INFINID_LOG_NOTOK"],
                os.environ["INFINID_LOG_HF"]):
        with open(log) as fh:
            nval += sum("vulkan validation:" in ln for ln in fh)
    ok(nval == 0, "the validation layer reported nothing (%d)" % nval)

    if _n != PLAN:
        print("# planned %d tests, ran %d" % (PLAN, _n))
        return 1
    return 1 if _failed else 0


if __name__ == "__main__":
    sys.exit(main())
