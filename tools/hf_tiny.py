#!/usr/bin/python3
"""hf_tiny.py - tiny random Hugging Face checkpoints, for testing infini-convert.

Writes a model directory in the exact naming, shapes and config.json keys of
a published family, with random weights (numpy, seeded), so the converter can
be checked on every layout it claims without downloading anything:

  llama          Llama-2 style: MHA, untied lm_head, f32, rotary inv_freq
                 buffers stored (old checkpoints have them)
  llama3         Llama-3.2 style: GQA 4:1 (8 heads, 2 kv), head_dim key,
                 rope_theta 500000, tied embeddings, bf16, two shards + index
  mistral        Mistral style: model_type mistral, GQA, sliding_window
  gemma          Gemma-1 style: head_dim != hidden / heads, one kv head,
                 hidden_act "gelu" with no hidden_activation, no lm_head
  infini-llama   an Infini source with Beomi/InfiniTransformer's Llama-3
                 naming: self_attn.gate of shape (1, H, 1, 1), segment_size
  gemma-2b-10m   mustafaaljadery/gemma-2B-10M's layout: Gemma with
                 self_attn.gate (1, H, 1, 1), segment_size (its attention
                 has no RoPE: convert with --layout gemma-2b-10m)
  qwen2          Qwen2 style, with q/k/v biases (the converter refuses it)
  qwen3          Qwen3 style, with q_norm/k_norm (the converter refuses it)

Usage: hf_tiny.py LAYOUT OUT_DIR [--seed S]
"""

import argparse
import json
import os
import struct
import sys

import numpy as np


def bf16_bytes(a):
    u = a.astype("<f4").view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype("<u2").tobytes()


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors:
        raw = a.astype("<f4").tobytes() if dtype == "F32" else bf16_bytes(a)
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


BASE = {
    "vocab_size": 160, "hidden_size": 64, "intermediate_size": 96,
    "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 4, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
    "max_position_embeddings": 2048, "initializer_range": 0.02,
    "bos_token_id": 1, "eos_token_id": 2, "use_cache": True,
    "transformers_version": "4.40.0",
}


def config_for(layout):
    c = dict(BASE)
    if layout in ("llama", "llama3", "infini-llama"):
        c.update(architectures=["LlamaForCausalLM"], model_type="llama",
                 hidden_act="silu", tie_word_embeddings=False,
                 attention_bias=False, attention_dropout=0.0,
                 mlp_bias=False, pretraining_tp=1, rope_scaling=None,
                 torch_dtype="float32")
    if layout == "llama3":
        c.update(num_attention_heads=8, num_key_value_heads=2, head_dim=8,
                 rope_theta=500000.0, tie_word_embeddings=True,
                 torch_dtype="bfloat16", bos_token_id=128000)
        c["vocab_size"] = 192
    if layout == "infini-llama":
        c.update(num_key_value_heads=2, segment_size=8)
    if layout == "mistral":
        c.update(architectures=["MistralForCausalLM"], model_type="mistral",
                 hidden_act="silu", num_key_value_heads=2,
                 sliding_window=4096, tie_word_embeddings=False,
                 attention_dropout=0.0, torch_dtype="float32")
    if layout in ("gemma", "gemma-2b-10m"):
        c.update(architectures=["GemmaForCausalLM"], model_type="gemma",
                 hidden_act="gelu", num_key_value_heads=1, head_dim=32,
                 attention_bias=False, attention_dropout=0.0,
                 pad_token_id=0, torch_dtype="float32")
    if layout == "gemma-2b-10m":
        # Its attention views heads back to hidden_size: heads * head_dim
        # must equal hidden_size.
        c.update(head_dim=16, segment_size=8)
    if layout == "qwen2":
        c.update(architectures=["Qwen2ForCausalLM"], model_type="qwen2",
                 hidden_act="silu", num_key_value_heads=2,
                 tie_word_embeddings=False, use_sliding_window=False)
    if layout == "qwen3":
        c.update(architectures=["Qwen3ForCausalLM"], model_type="qwen3",
                 hidden_act="silu", num_key_value_heads=2, head_dim=16,
                 tie_word_embeddings=False, attention_bias=False)
    return c


def tensors_for(layout, c, rng):
    H, I, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    hd = c.get("head_dim", H // nh)
    gemma = c["model_type"] == "gemma"

    def proj(o, i):
        return rng.standard_normal((o, i)).astype(np.float32) / np.sqrt(i)

    def norm():
        return ((0.0 if gemma else 1.0) +
                0.1 * rng.standard_normal(H)).astype(np.float32)

    t = [("model.embed_tokens.weight",
          rng.standard_normal((V, H)).astype(np.float32) *
          (1.0 / np.sqrt(H) if gemma else 1.0))]
    for l in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % l
        t.append((p + "input_layernorm.weight", norm()))
        t.append((p + "self_attn.q_proj.weight", proj(nh * hd, H)))
        t.append((p + "self_attn.k_proj.weight", proj(nkv * hd, H)))
        t.append((p + "self_attn.v_proj.weight", proj(nkv * hd, H)))
        t.append((p + "self_attn.o_proj.weight", proj(H, nh * hd)))
        if layout == "qwen2":
            for n, d in (("q", nh * hd), ("k", nkv * hd), ("v", nkv * hd)):
                t.append((p + "self_attn.%s_proj.bias" % n,
                          0.1 * rng.standard_normal(d).astype(np.float32)))
        if layout == "qwen3":
            t.append((p + "self_attn.q_norm.weight", np.ones(hd, np.float32)))
            t.append((p + "self_attn.k_norm.weight", np.ones(hd, np.float32)))
        if layout in ("infini-llama", "gemma-2b-10m"):
            t.append((p + "self_attn.gate", rng.uniform(-2, 2, (1, nh, 1, 1))
                      .astype(np.float32)))
        if layout == "llama":
            inv = 1.0 / (c["rope_theta"] ** (np.arange(0, hd, 2) / hd))
            t.append((p + "self_attn.rotary_emb.inv_freq",
                      inv.astype(np.float32)))
        t.append((p + "post_attention_layernorm.weight", norm()))
        t.append((p + "mlp.gate_proj.weight", proj(I, H)))
        t.append((p + "mlp.up_proj.weight", proj(I, H)))
        t.append((p + "mlp.down_proj.weight", proj(H, I)))
    t.append(("model.norm.weight", norm()))
    if not c.get("tie_word_embeddings", gemma):
        t.append(("lm_head.weight", proj(V, H)))
    return t


LAYOUTS = ("llama", "llama3", "mistral", "gemma", "infini-llama",
           "gemma-2b-10m", "qwen2", "qwen3")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("layout", choices=LAYOUTS)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    c = config_for(a.layout)
    t = tensors_for(a.layout, c, rng)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
        json.dump({"model_max_length": 2048, "tokenizer_class":
                   "PreTrainedTokenizerFast"}, f)
    dtype = "BF16" if c.get("torch_dtype") == "bfloat16" else "F32"
    if a.layout == "llama3":
        half = len(t) // 2
        shards = [t[:half], t[half:]]
        wm, total = {}, 0
        for i, part in enumerate(shards):
            name = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
            write_safetensors(os.path.join(a.out, name), part, dtype)
            for n, arr in part:
                wm[n] = name
                total += arr.size * 2
        with open(os.path.join(a.out, "model.safetensors.index.json"),
                  "w") as f:
            json.dump({"metadata": {"total_size": total},
                       "weight_map": wm}, f, indent=2)
    else:
        write_safetensors(os.path.join(a.out, "model.safetensors"), t, dtype)
    return 0


if __name__ == "__main__":
    sys.exit(main())
