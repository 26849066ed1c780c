#!/usr/bin/python3
"""torch_infini.py - the infinid model in PyTorch, for benchmarks and training.

A plain PyTorch implementation of exactly the semantics the engine serves
(written out at the top of tests/ref.c): Llama/Gemma blocks whose attention is
Infini-attention over fixed segments of segment_size tokens.  Per layer and kv
head the stream carries a compressive memory M [hd, hd] and z [hd] in fp32;
the unfinished segment's roped K, raw K and V are kept as a cache, and a
segment is compressed into M, z exactly once, when it fills.  RoPE goes on the
local branch only, at positions that restart at 0 every segment
(memory_rope: the memory branch uses the roped Q/K too).

Weights load from a model directory (config.json + model.safetensors, or
shards listed by model.safetensors.index.json); the safetensors header is
parsed here with json + numpy (F32, F16, BF16; Q8_0 and Q4_0 blocks are
dequantized to float32), so nothing beyond torch and
numpy is needed.  Parameter names match the checkpoint names, so
model.state_dict() round-trips through save_safetensors().

Library use (tools/train reuses this):
    model = load_model(dir)                      # InfiniModel, fp32, eval()
    hidden, logits, state = model(tokens, state) # tokens [T] or [B, T]
    state.detach()                               # truncated BPTT
forward() accepts any number of tokens at any position: it splits them at
segment boundaries itself.  Everything is differentiable (no in-place updates
of tensors autograd needs).

Command line:
    torch_infini.py check MODEL_DIR TOKENS_FILE OUT.npy [--chunk N]
        logits [n, V] float32, for comparison with
        infini-run --model DIR --tokens FILE --output logits --out X.npy
    torch_infini.py bench MODEL_DIR --prefill P --decode D --reps R
        prefill and decode tokens/s, the same protocol as bench-model.
"""

import argparse
import json
import math
import os
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ------------------------------------------------------------ safetensors

_ST_DTYPES = {"F32": (np.float32, 4), "F16": (np.float16, 2),
              "BF16": (np.uint16, 2)}


def _dequant_blocks(path, name, dt, info, buf, base):
    """_dequant_blocks decodes a Q8_0 / Q4_0 tensor (docs/quant.md: GGUF's
    blocks of 32 values along a row, f16 scale first) to float32."""
    shape = [int(s) for s in info["shape"]]
    a, b = (int(x) for x in info["data_offsets"])
    bb = 34 if dt == "Q8_0" else 18
    if len(shape) != 2 or shape[1] % 32:
        raise ValueError("%s: %s: %s needs [rows, 32k]" % (path, name, dt))
    nb = shape[0] * shape[1] // 32
    if b - a != nb * bb or base + b > len(buf):
        raise ValueError("%s: %s: bad data_offsets" % (path, name))
    blk = np.frombuffer(buf, dtype=np.uint8, count=nb * bb,
                        offset=base + a).reshape(nb, bb)
    d = blk[:, :2].copy().view("<f2").astype(np.float32)
    if dt == "Q8_0":
        q = blk[:, 2:].view(np.int8).astype(np.float32)
    else:
        qs = blk[:, 2:]
        q = np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.float32) - 8
    return torch.from_numpy((d * q).reshape(shape))


def read_safetensors(path):
    """read_safetensors returns {name: float32 torch.Tensor} for one file."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError("%s: shorter than the header length" % path)
    (hlen,) = struct.unpack("<Q", buf[:8])
    if 8 + hlen > len(buf):
        raise ValueError("%s: header runs past the end" % path)
    header = json.loads(buf[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        if dt in ("Q8_0", "Q4_0"):
            out[name] = _dequant_blocks(path, name, dt, info, buf, base)
            continue
        if dt not in _ST_DTYPES:
            raise ValueError("%s: %s: unsupported dtype %s" % (path, name, dt))
        npdt, esz = _ST_DTYPES[dt]
        shape = [int(s) for s in info["shape"]]
        a, b = (int(x) for x in info["data_offsets"])
        n = int(np.prod(shape)) if shape else 1
        if b - a != n * esz or base + b > len(buf):
            raise ValueError("%s: %s: bad data_offsets" % (path, name))
        arr = np.frombuffer(buf, dtype=npdt, count=n, offset=base + a)
        if dt == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        else:
            arr = arr.astype(np.float32)
        out[name] = torch.from_numpy(arr.reshape(shape).copy())
    return out


def read_model_tensors(model_dir):
    """read_model_tensors reads model.safetensors or all its shards."""
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        return read_safetensors(single)
    with open(os.path.join(model_dir, "model.safetensors.index.json")) as f:
        index = json.load(f)
    out = {}
    for shard in sorted(set(index["weight_map"].values())):
        out.update(read_safetensors(os.path.join(model_dir, shard)))
    return out


def save_safetensors(path, tensors, dtype="F32"):
    """save_safetensors writes {name: tensor} as one safetensors file
    (dtype F32, F16 or BF16; BF16 rounds to nearest even)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name].detach().to(torch.float32).cpu().contiguous().numpy()
        if dtype == "F32":
            raw = a.astype("<f4").tobytes()
        elif dtype == "F16":
            raw = a.astype("<f2").tobytes()
        elif dtype == "BF16":
            u = a.view(np.uint32).astype(np.uint64)
            u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
            raw = u.astype("<u2").tobytes()
        else:
            raise ValueError("dtype %s" % dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)


# ----------------------------------------------------------------- config

class InfiniConfig:
    """The config.json keys the engine reads, with the engine's defaults
    (daemon/engine/model.c eng_config_parse)."""

    def __init__(self, d):
        self.arch = d.get("model_type", "llama")
        if self.arch not in ("llama", "gemma"):
            raise ValueError("model_type %r" % self.arch)
        self.vocab_size = int(d["vocab_size"])
        self.hidden_size = int(d["hidden_size"])
        self.intermediate_size = int(d["intermediate_size"])
        self.n_layers = int(d["num_hidden_layers"])
        self.n_heads = int(d["num_attention_heads"])
        self.n_kv_heads = int(d.get("num_key_value_heads", self.n_heads))
        if self.n_heads % self.n_kv_heads:
            raise ValueError("num_attention_heads not divisible by "
                             "num_key_value_heads")
        self.head_dim = int(d.get("head_dim",
                                  self.hidden_size // self.n_heads))
        self.rms_norm_eps = float(d.get("rms_norm_eps", 1e-6))
        self.rope_theta = float(d.get("rope_theta", 10000.0))
        self.memory_eps = float(d.get("memory_eps", 1e-6))
        act = d.get("hidden_activation", d.get("hidden_act", "silu"))
        acts = {"silu": "silu", "gelu": "gelu", "gelu_pytorch_tanh":
                "gelu_tanh", "gelu_new": "gelu_tanh"}
        if act not in acts:
            raise ValueError("hidden_act %r" % act)
        self.act = acts[act]
        self.tie_word_embeddings = bool(d.get("tie_word_embeddings",
                                              self.arch == "gemma"))
        self.segment_size = int(d["segment_size"])
        self.memory_update = d.get("memory_update", "linear")
        if self.memory_update not in ("linear", "delta"):
            raise ValueError("memory_update %r" % self.memory_update)
        self.gate_on = d.get("gate_on", "memory")
        if self.gate_on not in ("memory", "local"):
            raise ValueError("gate_on %r" % self.gate_on)
        pe = d.get("position_embedding", "rope")
        if pe not in ("rope", "none"):
            raise ValueError("position_embedding %r" % pe)
        self.rope = pe == "rope"
        self.memory_rope = bool(d.get("memory_rope", False))
        if self.memory_rope and not self.rope:
            raise ValueError("memory_rope needs position_embedding rope")
        self.raw = dict(d)

    @classmethod
    def load(cls, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            return cls(json.load(f))


# ------------------------------------------------------------------ state

class InfiniState:
    """One batch of streams' state: position pos (shared by the batch) and
    per layer: M [B, nkv, hd, hd], z [B, nkv, hd] (fp32), and the unfinished
    segment's cache kro / kraw / v [B, j, nkv, hd], j = pos % segment_size."""

    def __init__(self, cfg, batch, device=None, dtype=torch.float32):
        L, g, hd = cfg.n_layers, cfg.n_kv_heads, cfg.head_dim
        self.pos = 0
        self.M = [torch.zeros(batch, g, hd, hd, device=device,
                              dtype=torch.float32) for _ in range(L)]
        self.z = [torch.zeros(batch, g, hd, device=device,
                              dtype=torch.float32) for _ in range(L)]
        empty = lambda: torch.zeros(batch, 0, g, hd, device=device,
                                    dtype=dtype)
        self.kro = [empty() for _ in range(L)]
        self.kraw = [empty() for _ in range(L)]
        self.v = [empty() for _ in range(L)]

    def _map(self, fn):
        for name in ("M", "z", "kro", "kraw", "v"):
            setattr(self, name, [fn(t) for t in getattr(self, name)])
        return self

    def detach(self):
        """detach cuts the autograd history (truncated BPTT); in place."""
        return self._map(lambda t: t.detach())

    def clone(self):
        c = InfiniState.__new__(InfiniState)
        c.pos = self.pos
        for name in ("M", "z", "kro", "kraw", "v"):
            setattr(c, name, [t.clone() for t in getattr(self, name)])
        return c


# ------------------------------------------------------------------ model

def sigma(x):
    """sigma(x) = ELU(x) + 1."""
    return F.elu(x) + 1.0


class RMSNorm(nn.Module):
    def __init__(self, n, eps, gemma):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps, self.gemma = eps, gemma

    def forward(self, x):
        r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        w = 1.0 + self.weight if self.gemma else self.weight
        return x * r * w


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        H, nh, nkv, hd = (cfg.hidden_size, cfg.n_heads, cfg.n_kv_heads,
                          cfg.head_dim)
        self.cfg = cfg
        self.q_proj = nn.Linear(H, nh * hd, bias=False)
        self.k_proj = nn.Linear(H, nkv * hd, bias=False)
        self.v_proj = nn.Linear(H, nkv * hd, bias=False)
        self.o_proj = nn.Linear(nh * hd, H, bias=False)
        # beta, one per head; the checkpoint's shape is kept (any shape).
        self.gate = nn.Parameter(torch.zeros(nh))

    def forward(self, x, l, st, j0, cos, sin):
        """x [B, n, H] at segment positions j0..j0+n-1 (within one segment);
        reads and extends layer l's cache in st, compresses the segment into
        st.M/z[l] when it fills.  Returns [B, n, H]."""
        c = self.cfg
        B, n, _ = x.shape
        nh, nkv, hd, N = c.n_heads, c.n_kv_heads, c.head_dim, c.segment_size
        grp = nh // nkv
        q = self.q_proj(x).view(B, n, nh, hd)
        k = self.k_proj(x).view(B, n, nkv, hd)
        v = self.v_proj(x).view(B, n, nkv, hd)
        if c.rope:
            qr, kr = rope(q, cos, sin), rope(k, cos, sin)
        else:
            qr, kr = q, k
        kro = torch.cat([st.kro[l], kr], 1)      # [B, j0+n, nkv, hd]
        kraw = torch.cat([st.kraw[l], k], 1)
        vall = torch.cat([st.v[l], v], 1)
        T = j0 + n

        # Local branch: causal softmax attention within the segment.
        qh = qr.transpose(1, 2)                               # [B, nh, n, hd]
        kh = rep_heads(kro.transpose(1, 2), grp)              # [B, nh, T, hd]
        vh = rep_heads(vall.transpose(1, 2), grp)
        s = torch.matmul(qh, kh.transpose(-1, -2)) / math.sqrt(hd)
        if n > 1:
            qpos = torch.arange(j0, T, device=x.device).unsqueeze(1)
            kpos = torch.arange(T, device=x.device).unsqueeze(0)
            s = s.masked_fill(kpos > qpos, float("-inf"))
        adot = torch.matmul(torch.softmax(s, -1), vh)         # [B, nh, n, hd]

        # Memory branch, the state from before this segment (fp32).
        qm = (qr if c.memory_rope else q).transpose(1, 2).float()
        sq = sigma(qm)                                        # [B, nh, n, hd]
        Mh = rep_heads(st.M[l], grp)                          # [B, nh, hd, hd]
        zh = rep_heads(st.z[l], grp)                          # [B, nh, hd]
        num = torch.matmul(sq, Mh)
        den = torch.matmul(sq, zh.unsqueeze(-1)) + c.memory_eps
        amem = (num / den).to(adot.dtype)

        gs = torch.sigmoid(self.gate.reshape(-1)).view(1, nh, 1, 1)
        if c.gate_on == "memory":
            a = gs * amem + (1.0 - gs) * adot
        else:
            a = gs * adot + (1.0 - gs) * amem
        out = self.o_proj(a.transpose(1, 2).reshape(B, n, nh * hd))

        if T == N:
            km = (kro if c.memory_rope else kraw).transpose(1, 2).float()
            sk = sigma(km)                                    # [B, nkv, N, hd]
            vv = vall.transpose(1, 2).float()
            M, z = st.M[l], st.z[l]
            if c.memory_update == "delta":
                vhat = torch.matmul(sk, M) / (
                    torch.matmul(sk, z.unsqueeze(-1)) + c.memory_eps)
                vv = vv - vhat
            st.M[l] = M + torch.matmul(sk.transpose(-1, -2), vv)
            st.z[l] = z + sk.sum(2)
            e = kro[:, :0]
            st.kro[l], st.kraw[l], st.v[l] = e, e, e
        else:
            st.kro[l], st.kraw[l], st.v[l] = kro, kraw, vall
        return out


def rep_heads(x, grp):
    """rep_heads maps kv heads to query heads along dim 1: query head h
    reads kv head h // grp (repeat_interleave, never tile)."""
    return x if grp == 1 else x.repeat_interleave(grp, 1)


def rope(x, cos, sin):
    """HF rotate_half RoPE; x [B, n, heads, hd], cos/sin [n, hd/2]."""
    half = x.shape[-1] // 2
    x0, x1 = x[..., :half], x[..., half:]
    c, s = cos.unsqueeze(1), sin.unsqueeze(1)
    return torch.cat([x0 * c - x1 * s, x1 * c + x0 * s], -1)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        H, I = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = nn.Linear(H, I, bias=False)
        self.up_proj = nn.Linear(H, I, bias=False)
        self.down_proj = nn.Linear(I, H, bias=False)
        self.act = cfg.act

    def forward(self, x):
        g = self.gate_proj(x)
        if self.act == "silu":
            g = F.silu(g)
        elif self.act == "gelu":
            g = F.gelu(g)
        else:
            g = F.gelu(g, approximate="tanh")
        return self.down_proj(g * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        gemma = cfg.arch == "gemma"
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps,
                                       gemma)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size,
                                                cfg.rms_norm_eps, gemma)
        self.mlp = MLP(cfg)


class Backbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps,
                            cfg.arch == "gemma")


class InfiniModel(nn.Module):
    """InfiniModel: parameters named as in the checkpoint
    (model.layers.{i}.self_attn.q_proj.weight, ..., lm_head.weight)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = Backbone(cfg)
        self.lm_head = (None if cfg.tie_word_embeddings else
                        nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False))
        hd = cfg.head_dim
        if cfg.rope:
            # Angles in double like the oracle, used in fp32.
            f = cfg.rope_theta ** (-2.0 * torch.arange(hd // 2,
                                   dtype=torch.float64) / hd)
            a = torch.arange(cfg.segment_size, dtype=torch.float64)[:, None] * f
            self.register_buffer("rope_cos", torch.cos(a).float(),
                                 persistent=False)
            self.register_buffer("rope_sin", torch.sin(a).float(),
                                 persistent=False)

    def new_state(self, batch=1):
        p = self.model.embed_tokens.weight
        return InfiniState(self.cfg, batch, p.device, p.dtype)

    def lm_weight(self):
        return (self.model.embed_tokens.weight if self.lm_head is None
                else self.lm_head.weight)

    def forward(self, tokens, state=None, logits="all"):
        """forward runs tokens [T] or [B, T] (int64) after state (None: a
        fresh stream).  logits: "all" [.., T, V], "last" [.., 1, V] or
        "none" (None).  Returns (hidden [.., T, H] after the final norm,
        logits, state); state is updated in place and returned."""
        c = self.cfg
        squeeze = tokens.dim() == 1
        if squeeze:
            tokens = tokens.unsqueeze(0)
        B, T = tokens.shape
        st = state if state is not None else self.new_state(B)
        N = c.segment_size
        hs = []
        at = 0
        while at < T:
            j0 = st.pos % N
            n = min(T - at, N - j0)
            x = self.model.embed_tokens(tokens[:, at:at + n])
            if c.arch == "gemma":
                x = x * math.sqrt(c.hidden_size)
            cos = sin = None
            if c.rope:
                cos, sin = self.rope_cos[j0:j0 + n], self.rope_sin[j0:j0 + n]
            for l, ly in enumerate(self.model.layers):
                x = x + ly.self_attn(ly.input_layernorm(x), l, st, j0,
                                     cos, sin)
                x = x + ly.mlp(ly.post_attention_layernorm(x))
            st.pos += n
            at += n
            hs.append(x)
        h = self.model.norm(torch.cat(hs, 1) if len(hs) > 1 else hs[0])
        lg = None
        if logits == "all":
            lg = F.linear(h, self.lm_weight())
        elif logits == "last":
            lg = F.linear(h[:, -1:], self.lm_weight())
        if squeeze:
            h = h.squeeze(0)
            lg = lg.squeeze(0) if lg is not None else None
        return h, lg, st


def load_model(model_dir, device=None):
    """load_model reads config.json and the weights into an fp32
    InfiniModel in eval mode.  Raises on a missing or misshapen tensor."""
    cfg = InfiniConfig.load(model_dir)
    tensors = read_model_tensors(model_dir)
    model = InfiniModel(cfg)
    want = model.state_dict()
    sd = {}
    for name, t in want.items():
        if name not in tensors:
            raise KeyError("%s: missing tensor %s" % (model_dir, name))
        src = tensors[name]
        if name.endswith("self_attn.gate"):
            if src.numel() != cfg.n_heads:
                raise ValueError("%s: %d values, want %d" %
                                 (name, src.numel(), cfg.n_heads))
            src = src.reshape(-1)
        elif tuple(src.shape) != tuple(t.shape):
            raise ValueError("%s: shape %s, want %s" %
                             (name, tuple(src.shape), tuple(t.shape)))
        sd[name] = src
    model.load_state_dict(sd)
    model.eval()
    if device is not None:
        model.to(device)
    return model


def count_params(model):
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------ command line

def read_tokens(path):
    with open(path) as f:
        text = f.read().replace(",", " ")
    return [int(t) for t in text.split()]


def bench_tokens(n, vocab, seed):
    """The same deterministic pseudo-random ids as bench-model (an LCG)."""
    out, s = [], seed & 0xFFFFFFFFFFFFFFFF
    for _ in range(n):
        s = (s * 6364136223846793005 + 1442695040888963407) & \
            0xFFFFFFFFFFFFFFFF
        out.append((s >> 33) % vocab)
    return out


def cmd_check(a):
    torch.set_num_threads(a.threads)
    model = load_model(a.model)
    toks = torch.tensor(read_tokens(a.tokens), dtype=torch.long)
    step = a.chunk if a.chunk > 0 else len(toks)
    outs, st = [], None
    with torch.inference_mode():
        for i in range(0, len(toks), step):
            _, lg, st = model(toks[i:i + step], st, logits="all")
            outs.append(lg)
    out = torch.cat(outs, 0).float().numpy()
    np.save(a.out, out)
    print("torch_infini: %d tokens -> %s %s" % (len(toks), a.out, out.shape),
          file=sys.stderr)


def cmd_bench(a):
    """Prefill and decode tok/s; with --streams S, S streams run batched in
    one tensor [S, T] (stream s's tokens from seeds 1 + 1000 s and
    2 + 1000 s, as bench-model --streams), figures are aggregates."""
    torch.set_num_threads(a.threads)
    model = load_model(a.model, a.device)
    if a.dtype == "bf16":
        model.to(torch.bfloat16)
    cfg = model.cfg
    P, D, R, S = a.prefill, a.decode, a.reps, a.streams
    prompt = torch.tensor([bench_tokens(P, cfg.vocab_size, 1 + 1000 * s)
                           for s in range(S)], dtype=torch.long,
                          device=a.device)
    dec = torch.tensor([bench_tokens(D, cfg.vocab_size, 2 + 1000 * s)
                        for s in range(S)], dtype=torch.long, device=a.device)
    # CUDA runs asynchronously: each timer reading waits for the device.
    sync = (torch.cuda.synchronize if a.device.startswith("cuda")
            else (lambda: None))
    pre_t, dec_t = [], []
    with torch.inference_mode():
        for r in range(R + 1):
            # Rep 0 warms up, untimed, on one segment's worth of prompt.
            st = model.new_state(S)
            pr = prompt if r else prompt[:, :min(P, cfg.segment_size)]
            sync()
            t0 = time.perf_counter()
            h, _, st = model(pr, st, logits="none")
            sync()
            t1 = time.perf_counter()
            steps = []
            for i in range(D if r else min(D, 4)):
                u0 = time.perf_counter()
                _, lg, st = model(dec[:, i:i + 1], st, logits="last")
                sync()
                u1 = time.perf_counter()
                steps.append(u1 - u0)
            if r:
                pre_t.append(t1 - t0)
                dec_t.extend(steps)
    pm = statistics.median(pre_t)
    dm = statistics.median(dec_t) if dec_t else float("nan")
    print("| backend | params | prefill P | prefill ms (median) | prefill tok/s"
          " | decode D | decode ms/token (median) | decode tok/s |")
    print("|---|---|---|---|---|---|---|---|")
    print("| torch %s (%s %s, %d threads) | %d | %d | %.1f | %.1f | %d | %.2f"
          " | %.1f |"
          % (torch.__version__, a.device, a.dtype, torch.get_num_threads(),
             count_params(model),
             P, pm * 1e3, S * P / pm, D, dm * 1e3, S / dm))
    print("RESULT backend=torch params=%d prefill=%d decode=%d reps=%d "
          "streams=%d prefill_tok_s=%.3f decode_tok_s=%.3f prefill_ms=%.3f "
          "decode_ms=%.4f" % (count_params(model), P, D, R, S, S * P / pm,
                              S / dm, pm * 1e3, dm * 1e3))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="write logits [n, V] float32 .npy")
    c.add_argument("model")
    c.add_argument("tokens")
    c.add_argument("out")
    c.add_argument("--chunk", type=int, default=0,
                   help="feed N tokens per forward call (default: all)")
    c.add_argument("--threads", type=int, default=2)
    b = sub.add_parser("bench", help="prefill and decode tokens/s")
    b.add_argument("model")
    b.add_argument("--prefill", type=int, default=512)
    b.add_argument("--decode", type=int, default=32)
    b.add_argument("--reps", type=int, default=3)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--streams", type=int, default=1,
                   help="streams decoding together, batched (default 1)")
    b.add_argument("--device", default="cpu", help="torch device (cpu)")
    b.add_argument("--dtype", default="f32", choices=("f32", "bf16"),
                   help="weights and activations (f32); the memory M, z "
                   "stays f32")
    a = ap.parse_args(argv)
    if a.cmd == "check":
        cmd_check(a)
    else:
        if a.prefill < 1 or a.decode < 1 or a.reps < 1 or a.streams < 1:
            ap.error("--prefill, --decode, --reps and --streams must be >= 1")
        cmd_bench(a)


if __name__ == "__main__":
    main(sys.argv[1:])
