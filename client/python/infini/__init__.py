"""infini - Python client of the infinid daemon.

A thin layer over libinfini.so (the C client, through ctypes): the same
calls as client/include/infini.h, with Python types on top.  Errors raise
InfiniError carrying the INFINI_E* code and the daemon's message; outputs
(embeddings, logits) come back as numpy float32 arrays of shape
[rows, cols]; Client.generate is a generator that yields each token as the
daemon produces it.

    import infini
    with infini.Client() as c:              # $INFINI_SOCKET or the default
        c.open("notes", reuse=True)
        c.push_text("notes", "Some text to remember.\\n")
        for tok in c.generate("notes", "Q: what?\\nA:", max_tokens=32):
            print(tok.bytes.decode(errors="replace"), end="", flush=True)

The library is found through the library= argument, else $INFINI_LIBRARY,
else the system's search path (ctypes.util.find_library("infini")).
"""

import collections
import ctypes
import queue
import threading

import numpy as np

from . import _lib

__all__ = [
    "Client", "InfiniError", "Health", "Stats", "StreamInfo", "PushResult",
    "Token", "Finish", "ERRORS",
]
__version__ = "0.1.0"

# The INFINI_E* names in the order of infini_err.h's list: code k is
# ERRORS[k - 1].  Exported as module constants (infini.ENOENT == 3).
ERRORS = ("EINVAL", "ENOMEM", "ENOENT", "EEXIST", "EIO", "ECORRUPT",
          "EUNSUPPORTED", "ENODEV", "EDEVICE", "ERANGE", "EFULL", "EPROTO",
          "EPERM", "ECANCELED", "ETIMEDOUT", "ESTATE", "EUNAVAILABLE",
          "EINTERNAL", "EABORTED")
for _k, _name in enumerate(ERRORS, 1):
    globals()[_name] = _k
del _k, _name


class InfiniError(Exception):
    """A failed libinfini call.  code is the INFINI_E* number (compare with
    infini.ENOENT etc.), name its symbol ("INFINI_ENOENT"), message the
    daemon's or the library's text ("NOT_FOUND: no stream 'x'")."""

    def __init__(self, code, name, message):
        super().__init__("%s: %s" % (name, message))
        self.code = code
        self.name = name
        self.message = message


def _struct_tuple(name, cstruct):
    return collections.namedtuple(name, [f for f, _ in cstruct._fields_])


Health = _struct_tuple("Health", _lib.Health)
Stats = _struct_tuple("Stats", _lib.Stats)
StreamInfo = _struct_tuple("StreamInfo", _lib.StreamInfo)
SnapshotInfo = _struct_tuple("SnapshotInfo", _lib.SnapshotInfo)

# infini_set_text_flags: special-token strings in text are plain text.
TEXT_PLAIN_SPECIAL = 1
# infini_snapshot_ex: replace an existing snapshot of that name (yours).
_SNAP_OVERWRITE = 1

# position and segments of the stream after a push; data is the output
# asked for, a float32 array [rows, cols], or None.
PushResult = collections.namedtuple("PushResult",
                                    ["position", "segments", "data"])
# One generated token: its id and its bytes (b"" for a token without
# bytes, e.g. a special token or a model without a byte tokenizer).
Token = collections.namedtuple("Token", ["id", "bytes"])
# What a generation returns when it ends (the generator's return value):
# the finish reason ("length", "stop", "eos", "cancelled"), every token id,
# and the bytes of the whole answer.
Finish = collections.namedtuple("Finish", ["reason", "tokens", "bytes"])


def _from_struct(tuple_type, s):
    vals = []
    for f, _ in s._fields_:
        v = getattr(s, f)
        vals.append(v.decode("utf-8", "replace") if isinstance(v, bytes)
                    else v)
    return tuple_type(*vals)


def _enc(s, what):
    if s is None:
        return None
    if isinstance(s, bytes):
        return s
    if isinstance(s, str):
        return s.encode("utf-8")
    raise TypeError("%s must be str or bytes, not %s" %
                    (what, type(s).__name__))


_END = object()


class Client:
    """A connection to infinid.  url: ipc://PATH or tcp://HOST:PORT (None:
    $INFINI_SOCKET, else ipc:///run/infinid/infinid.sock); timeout_ms: the
    deadline for connecting and, unless set_timeout changes it, for each
    call; library: the libinfini.so to use.  One Client may be used from
    several threads at once.  Raises InfiniError (EUNAVAILABLE when no
    daemon answers, EPERM when the socket is not ours to open)."""

    def __init__(self, url=None, timeout_ms=10000, library=None):
        self._lib = _lib.load(library)
        self._c = None
        h = ctypes.c_void_p()
        self._check(self._lib.infini_connect(_enc(url, "url"), timeout_ms,
                                             ctypes.byref(h)))
        self._c = h
        self.set_timeout(timeout_ms)

    # ---- plumbing ------------------------------------------------------

    def _error(self, rc, msg=None):
        name = self._lib.infini_errname(rc).decode()
        if msg is None:
            msg = (self._lib.infini_errmsg() or b"").decode("utf-8",
                                                            "replace")
        if not msg:
            msg = self._lib.infini_strerror(rc).decode()
        return InfiniError(rc, name, msg)

    def _check(self, rc):
        if rc != 0:
            raise self._error(rc)

    def _h(self):
        if self._c is None:
            raise InfiniError(ESTATE, "INFINI_ESTATE",  # noqa: F821
                              "the client is closed")
        return self._c

    def close(self):
        """Close the connection (a second close does nothing)."""
        if self._c is not None:
            self._lib.infini_close(self._c)
            self._c = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def set_timeout(self, timeout_ms):
        """Per-call deadline in ms (<= 0: none)."""
        self._lib.infini_set_timeout(self._h(), int(timeout_ms))

    def set_text_flags(self, flags):
        """How the daemon tokenizes the text of this client's later pushes
        and prompts: 0 (the default) turns special-token strings such as
        "<|im_start|>" written in the text into their tokens, as Hugging
        Face tokenizers do; TEXT_PLAIN_SPECIAL keeps them plain text."""
        self._lib.infini_set_text_flags(self._h(), int(flags))

    # ---- daemon and streams -------------------------------------------

    def health(self):
        """The daemon's version, model, device and sizes, as Health."""
        h = _lib.Health()
        self._check(self._lib.infini_health(self._h(), ctypes.byref(h)))
        return _from_struct(Health, h)

    def stats(self):
        """The daemon's counters, as Stats."""
        s = _lib.Stats()
        self._check(self._lib.infini_stats(self._h(), ctypes.byref(s)))
        return _from_struct(Stats, s)

    def open(self, stream=None, reuse=False):
        """Open a stream (None: the daemon picks an id).  With reuse an
        existing stream is fine, else it raises EEXIST.  Returns
        (id, created)."""
        out = ctypes.create_string_buffer(_lib.ID_MAX + 1)
        created = ctypes.c_bool(False)
        self._check(self._lib.infini_open(self._h(), _enc(stream, "stream"),
                                          bool(reuse), out,
                                          ctypes.byref(created)))
        return out.value.decode(), created.value

    def close_stream(self, stream):
        """Close a stream and free its state on the daemon."""
        self._check(self._lib.infini_close_stream(self._h(),
                                                  _enc(stream, "stream")))

    def fork(self, stream, new_id=None):
        """Copy a stream into a new one; returns the new stream's id."""
        out = ctypes.create_string_buffer(_lib.ID_MAX + 1)
        self._check(self._lib.infini_fork(self._h(), _enc(stream, "stream"),
                                          _enc(new_id, "new_id"), out))
        return out.value.decode()

    def list(self):
        """The streams this caller may see, as a list of StreamInfo."""
        arr = ctypes.POINTER(_lib.StreamInfo)()
        n = ctypes.c_size_t(0)
        self._check(self._lib.infini_list(self._h(), ctypes.byref(arr),
                                          ctypes.byref(n)))
        try:
            return [_from_struct(StreamInfo, arr[i]) for i in range(n.value)]
        finally:
            self._lib.infini_list_free(arr)

    # ---- push ----------------------------------------------------------

    def _push(self, fn, stream, args, output):
        if output not in _lib.OUTPUTS:
            raise ValueError("output must be one of %s" %
                             sorted(k for k in _lib.OUTPUTS if k))
        res = _lib.Result()
        self._check(fn(self._h(), _enc(stream, "stream"), *args,
                       _lib.OUTPUTS[output], ctypes.byref(res)))
        try:
            data = None
            if res.data:
                n = res.rows * res.cols
                data = np.ctypeslib.as_array(res.data, shape=(n,)).copy()
                data = data.reshape(res.rows, res.cols)
            return PushResult(res.position, res.segments, data)
        finally:
            self._lib.infini_result_free(ctypes.byref(res))

    def push_tokens(self, stream, tokens, output=None):
        """Push token ids (any sequence of ints).  output: None, "embeddings"
        [n, hidden], "mean" / "last" [1, hidden], "logits" [n, vocab] or
        "last_logits" [1, vocab].  Returns PushResult."""
        a = np.ascontiguousarray(np.asarray(tokens, dtype=np.int64).ravel())
        if a.size and (a.min() < -2**31 or a.max() >= 2**31):
            raise ValueError("token ids must fit in int32")
        a = a.astype(np.int32)
        ptr = a.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
        return self._push(self._lib.infini_push_tokens, stream,
                          (ptr, a.size), output)

    def push_text(self, stream, text, output=None):
        """Push text (str, encoded as UTF-8, or bytes).  See push_tokens."""
        b = _enc(text, "text")
        return self._push(self._lib.infini_push_text, stream, (b, len(b)),
                          output)

    def push_vectors(self, stream, vectors, output=None):
        """Push input vectors: an array [n, dim] (a 1-D array is one
        vector), converted to float32.  See push_tokens."""
        a = np.asarray(vectors, dtype=np.float32)
        if a.ndim == 1:
            a = a.reshape(1, -1)
        if a.ndim != 2 or a.shape[1] == 0:
            raise ValueError("vectors must be [n, dim], got shape %s" %
                             (a.shape,))
        a = np.ascontiguousarray(a)
        ptr = a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        return self._push(self._lib.infini_push_vectors, stream,
                          (ptr, a.shape[0], a.shape[1]), output)

    def embed(self, stream, text, pool="mean"):
        """Push text and return the pooled hidden state ("mean" or "last")
        as a 1-D float32 array."""
        if pool not in ("mean", "last"):
            raise ValueError("pool is 'mean' or 'last'")
        return self.push_text(stream, text, output=pool).data[0]

    # ---- generation ----------------------------------------------------

    def generate(self, stream, prompt=None, max_tokens=128, temperature=0.0,
                 top_k=0, top_p=0.0, seed=0, stop=None):
        """Generate from a stream, yielding a Token as each one arrives.

        prompt: text (str or bytes) or a sequence of token ids, pushed
        first; None generates from the stream as it is.  temperature 0 is
        greedy.  stop: a list of strings that end the answer.  The
        generator's return value (StopIteration.value, or what
        "yield from" gives) is a Finish.  Closing the generator early
        (break, .close(), garbage collection) cancels the generation on
        the daemon.  Errors raise InfiniError from the iteration."""
        lib, h = self._lib, self._h()
        text = toks = None
        ntoks = 0
        if isinstance(prompt, (str, bytes)):
            text = _enc(prompt, "prompt")
        elif prompt is not None:
            arr = np.ascontiguousarray(np.asarray(prompt, dtype=np.int32)
                                       .ravel())
            toks = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
            ntoks = arr.size
        sp = _lib.Sampling(float(temperature), int(top_k), float(top_p),
                           int(seed))
        stops = None
        if stop:
            enc = [_enc(s, "stop") for s in stop]
            stops = (ctypes.c_char_p * (len(enc) + 1))(*enc, None)
        sid = _enc(stream, "stream")
        q = queue.Queue()
        cancel = threading.Event()
        finish = ctypes.create_string_buffer(16)
        box = {}

        def on_token(_arg, tok, b, n):
            # Runs on the worker thread; heartbeats (tok -1) are only a
            # chance to cancel.
            try:
                if cancel.is_set():
                    return 1
                if tok >= 0:
                    q.put(Token(tok, ctypes.string_at(b, n) if n else b""))
                return 0
            except BaseException:
                return 1

        cb = _lib.ON_TOKEN(on_token)

        opts = _lib.GenOpts(toks, ntoks, text, int(max_tokens),
                            ctypes.pointer(sp), stops, cb, None)

        def work():
            rc = lib.infini_generate(h, sid, ctypes.byref(opts), finish)
            box["rc"] = rc
            # infini_errmsg is per thread: read it on this one.
            if rc != 0:
                box["err"] = self._error(rc)
            q.put(_END)

        t = threading.Thread(target=work, name="infini-generate",
                             daemon=True)
        t.start()
        ids, out = [], []
        try:
            while True:
                item = q.get()
                if item is _END:
                    break
                ids.append(item.id)
                out.append(item.bytes)
                yield item
        finally:
            # On an early close this makes the next callback (a token or
            # the heartbeat within a second) cancel the generation.
            cancel.set()
            t.join()
        if box["rc"] != 0:
            raise box["err"]
        return Finish(finish.value.decode(), ids, b"".join(out))

    def complete(self, stream, prompt=None, **kw):
        """Run generate to the end and return its Finish."""
        gen = self.generate(stream, prompt, **kw)
        while True:
            try:
                next(gen)
            except StopIteration as e:
                return e.value

    # ---- snapshots -----------------------------------------------------

    def snapshot(self, stream, name, overwrite=False):
        """Save the stream's snapshot as name in the daemon's state
        directory; returns its size in bytes.  A name that exists raises
        InfiniError EEXIST unless overwrite (then yours is replaced; one of
        another user's is EPERM either way)."""
        n = ctypes.c_size_t(0)
        self._check(self._lib.infini_snapshot_ex(
            self._h(), _enc(stream, "stream"), _enc(name, "name"),
            _SNAP_OVERWRITE if overwrite else 0, None, ctypes.byref(n)))
        return n.value

    def export_snapshot(self, stream, name=None, overwrite=False):
        """Return the stream's snapshot bytes (and save it as name too when
        given, as snapshot() does)."""
        data = ctypes.POINTER(ctypes.c_uint8)()
        n = ctypes.c_size_t(0)
        self._check(self._lib.infini_snapshot_ex(
            self._h(), _enc(stream, "stream"), _enc(name, "name"),
            _SNAP_OVERWRITE if overwrite else 0, ctypes.byref(data),
            ctypes.byref(n)))
        try:
            return ctypes.string_at(data, n.value)
        finally:
            self._lib.infini_data_free(data)

    def list_snapshots(self):
        """The named snapshots this caller may use (all of them for root
        and admin_group), in name order, as a list of SnapshotInfo."""
        arr = ctypes.POINTER(_lib.SnapshotInfo)()
        n = ctypes.c_size_t(0)
        self._check(self._lib.infini_list_snapshots(self._h(),
                                                    ctypes.byref(arr),
                                                    ctypes.byref(n)))
        try:
            return [_from_struct(SnapshotInfo, arr[i])
                    for i in range(n.value)]
        finally:
            self._lib.infini_snapshot_list_free(arr)

    def delete_snapshot(self, name):
        """Delete a named snapshot of the caller's (ENOENT when there is
        none, EPERM when it is another user's)."""
        self._check(self._lib.infini_delete_snapshot(self._h(),
                                                     _enc(name, "name")))

    def restore(self, stream, name=None, data=None):
        """Create stream from a named snapshot or from exported bytes (give
        exactly one); returns the restored stream's position."""
        pos = ctypes.c_uint64(0)
        buf = None
        if data is not None:
            raw = bytes(data)
            buf = (ctypes.c_uint8 * max(len(raw), 1)).from_buffer_copy(
                raw or b"\0")
            n = len(raw)
        else:
            n = 0
        self._check(self._lib.infini_restore(self._h(),
                                             _enc(stream, "stream"),
                                             _enc(name, "name"), buf, n,
                                             ctypes.byref(pos)))
        return pos.value
