#!/usr/bin/python3
"""convert_ref.py - PyTorch logits of a Hugging Face source checkpoint,
read directly from the source (not from infini-convert's output), for
t_convert to compare infini-run on the converted directory against.

The source's tensors go into bench/torch_infini.py's InfiniModel under
their own names; the Infini semantics come from the source config plus the
same choices infini-convert is given on its command line, each spelled out
here from the documented mapping (docs/convert.md):
  - model_type mistral runs as llama; gemma without hidden_activation runs
    the tanh GELU (as Hugging Face's GemmaMLP does);
  - segment_size / memory_update from the options, else the source config;
  - a source with self_attn.gate keeps it (any shape holding one beta per
    head); a plain source gets every beta = --gate-init;
  - layout gemma-2b-10m: no RoPE (position_embedding none);
  - rotary_emb.inv_freq buffers are derived data and dropped.

Usage: convert_ref.py SRC TOKENS_FILE OUT.npy [--segment-size N]
           [--gate-init B] [--memory-update linear|delta] [--layout L]
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "bench"))
import torch_infini as ti  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("tokens")
    ap.add_argument("out")
    ap.add_argument("--segment-size", type=int, default=0)
    ap.add_argument("--gate-init", type=float, default=-100.0)
    ap.add_argument("--memory-update", default=None)
    ap.add_argument("--layout", default="hf")
    ap.add_argument("--chunk", type=int, default=0)
    a = ap.parse_args()

    with open(os.path.join(a.src, "config.json")) as f:
        d = json.load(f)
    if d["model_type"] == "mistral":
        d["model_type"] = "llama"
    if d["model_type"] == "gemma" and d.get("hidden_activation") is None:
        d["hidden_activation"] = "gelu_pytorch_tanh"
    if a.segment_size:
        d["segment_size"] = a.segment_size
    if a.memory_update:
        d["memory_update"] = a.memory_update
    if a.layout == "gemma-2b-10m":
        d["position_embedding"] = "none"
    cfg = ti.InfiniConfig(d)

    tensors = ti.read_model_tensors(a.src)
    tensors = {k: v for k, v in tensors.items()
               if not k.endswith("rotary_emb.inv_freq")}
    model = ti.InfiniModel(cfg)
    sd = {}
    for name, t in model.state_dict().items():
        if name.endswith("self_attn.gate"):
            src = tensors.get(name)
            sd[name] = (torch.full((cfg.n_heads,), a.gate_init)
                        if src is None else src.reshape(-1))
        else:
            src = tensors[name]
            if tuple(src.shape) != tuple(t.shape):
                raise ValueError("%s: shape %s, want %s" %
                                 (name, tuple(src.shape), tuple(t.shape)))
            sd[name] = src
    model.load_state_dict(sd)
    model.eval()

    toks = torch.tensor(ti.read_tokens(a.tokens), dtype=torch.long)
    step = a.chunk if a.chunk > 0 else len(toks)
    outs, st = [], None
    torch.set_num_threads(1)
    with torch.inference_mode():
        for i in range(0, len(toks), step):
            _, lg, st = model(toks[i:i + step], st, logits="all")
            outs.append(lg)
    np.save(a.out, torch.cat(outs, 0).float().numpy())
    return 0


if __name__ == "__main__":
    sys.exit(main())
