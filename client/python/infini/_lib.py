"""Loading libinfini.so and declaring its C API (client/include/infini.h).

Every structure here mirrors one in infini.h field for field; ctypes lays
them out with the C compiler's rules, so the sizes match as long as the
field lists do.  Nothing in this module talks to a daemon.
"""

import ctypes
import ctypes.util
import os

ID_MAX = 128

# enum infini_output, by the names the Python API accepts.
OUTPUTS = {
    None: 0,
    "none": 0,
    "embeddings": 1,
    "mean": 2,
    "last": 3,
    "logits": 4,
    "last_logits": 5,
    "last-logits": 5,
}


class Health(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_char * 32),
        ("model", ctypes.c_char * 256),
        ("device", ctypes.c_char * 256),
        ("uptime_ms", ctypes.c_uint64),
        ("streams", ctypes.c_uint32),
        ("model_fingerprint", ctypes.c_uint64),
        ("hidden_size", ctypes.c_uint32),
        ("vocab_size", ctypes.c_uint32),
        ("segment_size", ctypes.c_uint32),
    ]


class Result(ctypes.Structure):
    _fields_ = [
        ("position", ctypes.c_uint64),
        ("segments", ctypes.c_uint64),
        ("rows", ctypes.c_uint32),
        ("cols", ctypes.c_uint32),
        ("data", ctypes.POINTER(ctypes.c_float)),
    ]


class Sampling(ctypes.Structure):
    _fields_ = [
        ("temperature", ctypes.c_float),
        ("top_k", ctypes.c_uint32),
        ("top_p", ctypes.c_float),
        ("seed", ctypes.c_uint64),
    ]


class StreamInfo(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_char * (ID_MAX + 1)),
        ("position", ctypes.c_uint64),
        ("segments", ctypes.c_uint64),
        ("idle_ms", ctypes.c_uint64),
        ("owner_uid", ctypes.c_uint32),
        ("generating", ctypes.c_bool),
        ("resident", ctypes.c_bool),
    ]


class Stats(ctypes.Structure):
    _fields_ = [
        ("requests", ctypes.c_uint64),
        ("errors", ctypes.c_uint64),
        ("tokens_in", ctypes.c_uint64),
        ("tokens_out", ctypes.c_uint64),
        ("submissions", ctypes.c_uint64),
        ("device_busy_us", ctypes.c_uint64),
        ("state_bytes_per_stream", ctypes.c_uint64),
        ("uptime_ms", ctypes.c_uint64),
        ("streams", ctypes.c_uint32),
        ("max_streams", ctypes.c_uint32),
        ("max_resident_streams", ctypes.c_uint32),
        ("resident_streams", ctypes.c_uint32),
        ("page_ins", ctypes.c_uint64),
        ("evictions", ctypes.c_uint64),
        ("autosnapshots", ctypes.c_uint64),
        ("spill_errors", ctypes.c_uint64),
    ]


class SnapshotInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char * (ID_MAX + 1)),
        ("stream_id", ctypes.c_char * (ID_MAX + 1)),
        ("owner_uid", ctypes.c_uint32),
        ("bytes", ctypes.c_uint64),
        ("position", ctypes.c_uint64),
        ("created_ms", ctypes.c_uint64),
    ]


# typedef int (*infini_on_token)(void *arg, int32_t token, const char *bytes,
#     size_t len);  bytes is not NUL-terminated, so it is a plain pointer.
ON_TOKEN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int32,
                            ctypes.POINTER(ctypes.c_char), ctypes.c_size_t)


class GenOpts(ctypes.Structure):
    _fields_ = [
        ("prompt", ctypes.POINTER(ctypes.c_int32)),
        ("nprompt", ctypes.c_size_t),
        ("text", ctypes.c_char_p),
        ("max_tokens", ctypes.c_uint32),
        ("sampling", ctypes.POINTER(Sampling)),
        ("stop", ctypes.POINTER(ctypes.c_char_p)),
        ("on_token", ON_TOKEN),
        ("arg", ctypes.c_void_p),
    ]

_c = ctypes.c_char_p
_p = ctypes.c_void_p
_i = ctypes.c_int
_sz = ctypes.c_size_t
_u32 = ctypes.c_uint32

# name: (argument types); every one returns int unless listed in _RESTYPE.
_SIGNATURES = {
    "infini_connect": [_c, _i, ctypes.POINTER(_p)],
    "infini_close": [_p],
    "infini_set_timeout": [_p, _i],
    "infini_set_text_flags": [_p, ctypes.c_uint],
    "infini_errmsg": [],
    "infini_health": [_p, ctypes.POINTER(Health)],
    "infini_open": [_p, _c, ctypes.c_bool, _c, ctypes.POINTER(ctypes.c_bool)],
    "infini_close_stream": [_p, _c],
    "infini_fork": [_p, _c, _c, _c],
    "infini_list": [_p, ctypes.POINTER(ctypes.POINTER(StreamInfo)),
                    ctypes.POINTER(_sz)],
    "infini_stats": [_p, ctypes.POINTER(Stats)],
    "infini_push_tokens": [_p, _c, ctypes.POINTER(ctypes.c_int32), _sz, _i,
                           ctypes.POINTER(Result)],
    "infini_push_text": [_p, _c, _c, _sz, _i, ctypes.POINTER(Result)],
    "infini_push_vectors": [_p, _c, ctypes.POINTER(ctypes.c_float), _sz, _u32,
                            _i, ctypes.POINTER(Result)],
    "infini_result_free": [ctypes.POINTER(Result)],
    "infini_list_free": [ctypes.POINTER(StreamInfo)],
    "infini_snapshot_list_free": [ctypes.POINTER(SnapshotInfo)],
    "infini_data_free": [ctypes.POINTER(ctypes.c_uint8)],
    "infini_generate": [_p, _c, ctypes.POINTER(GenOpts), _c],
    "infini_snapshot_ex": [_p, _c, _c, ctypes.c_uint, ctypes.POINTER(
        ctypes.POINTER(ctypes.c_uint8)), ctypes.POINTER(_sz)],
    "infini_list_snapshots": [_p, ctypes.POINTER(ctypes.POINTER(
        SnapshotInfo)), ctypes.POINTER(_sz)],
    "infini_delete_snapshot": [_p, _c],
    "infini_restore": [_p, _c, _c, ctypes.POINTER(ctypes.c_uint8), _sz,
                       ctypes.POINTER(ctypes.c_uint64)],
    "infini_strerror": [_i],
    "infini_errname": [_i],
    "infini_err_status": [_i],
    "infini_err_from_status": [_i],
}
_RESTYPE = {
    "infini_close": None,
    "infini_set_timeout": None,
    "infini_set_text_flags": None,
    "infini_result_free": None,
    "infini_list_free": None,
    "infini_snapshot_list_free": None,
    "infini_data_free": None,
    "infini_errmsg": _c,
    "infini_strerror": _c,
    "infini_errname": _c,
}


def _candidates(path):
    """The places to look for libinfini, in order: path, $INFINI_LIBRARY,
    the linker's search (ctypes.util.find_library), the soname."""
    if path:
        return [path]
    out = []
    env = os.environ.get("INFINI_LIBRARY")
    if env:
        return [env]
    found = ctypes.util.find_library("infini")
    if found:
        out.append(found)
    out.append("libinfini.so.0")
    return out


_loaded = {}


def load(path=None):
    """Return the libinfini CDLL with its functions declared.  path names
    the .so to use; without it $INFINI_LIBRARY, then the system's library
    search.  Raises OSError naming what was tried when none loads."""
    tried = []
    for cand in _candidates(path):
        if cand in _loaded:
            return _loaded[cand]
        try:
            lib = ctypes.CDLL(cand)
        except OSError as e:
            tried.append("%s (%s)" % (cand, e))
            continue
        for name, args in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes = args
            fn.restype = _RESTYPE.get(name, _i)
        _loaded[cand] = lib
        return lib
    raise OSError("cannot load libinfini: tried " + "; ".join(tried) +
                  " (pass library=PATH or set INFINI_LIBRARY)")
