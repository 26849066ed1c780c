#!/usr/bin/python3
"""train.py - train a small byte-level Infini-attention model on CPU.

Trains bench/torch_infini.py's InfiniModel (exactly the engine's semantics)
segment by segment: each sequence is fed one segment at a time with the
compressive memory carried across segments, and the loss backpropagates
through all the segments of the sequence (truncated BPTT: sequences are
k+1 segments, the state starts fresh for each one).

Data, every step (tools/train/README.md has the table): text streams from
a mixture of training sources (tools/train/corpora.py: the Bible, fortune
cookies, Vim's manual, FOLDOC, Python sources) for language modelling, and
rows of the synthetic pass-key task (common.passkey_layout) with varied key
formats (3-8 digits, words), placements (segment 0, mid-stream, straddling
a boundary) and fillers (training text, the repeated sentences, random
bytes), whose answer lies k segments after the statement; k follows a
curriculum that raises the maximum distance when the running pass-key
accuracy at the current maximum passes --promote.  Held-out sources are
never drawn from.  The gate beta gets its own learning rate
(--beta-lr-mult times the base) and no weight decay (NOTES.md section 1).

Setup (Debian 12):
    apt-get install -y python3-torch python3-numpy libopenblas0-pthread \
        bible-kjv fortunes fortunes-min vim-runtime dict-foldoc dict-devil \
        jargon-text wamerican
Run (checkpoints every --ckpt-every seconds; --resume goes on):
    nohup /usr/bin/python3 tools/train/train.py --out runs/r2 \
        --init-from models/default --minutes 240 > runs/r2.log 2>&1 &
    /usr/bin/python3 tools/train/train.py --out runs/r2 --resume
    /usr/bin/python3 tools/train/export.py runs/r2 models/default
"""

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
sys.path.insert(0, HERE)
import torch_infini as ti  # noqa: E402
import common  # noqa: E402
import corpora  # noqa: E402


def model_config(a):
    """model_config returns the config.json dict of the model trained."""
    return {
        "architectures": ["InfiniLlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": common.VOCAB,
        "hidden_size": a.hidden,
        "intermediate_size": a.ffn,
        "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads,
        "num_key_value_heads": a.heads,
        "head_dim": a.hidden // a.heads,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "segment_size": a.segment,
        "memory_update": "delta",
        "memory_eps": 1e-6,
        "gate_on": "memory",
        "position_embedding": "rope",
        "memory_rope": False,
        "tokenizer": "bytes",
        "bos_token_id": common.BOS,
        "eos_token_id": common.EOS,
    }


def init_weights(model, n_layers):
    """GPT-2 style init: N(0, 0.02), residual outputs scaled by
    1/sqrt(2 * layers), norms 1, beta 0 (sigmoid 0.5)."""
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            torch.nn.init.ones_(p)
        elif name.endswith("self_attn.gate"):
            torch.nn.init.zeros_(p)
        else:
            std = 0.02
            if name.endswith("o_proj.weight") or \
                    name.endswith("down_proj.weight"):
                std /= math.sqrt(2 * n_layers)
            torch.nn.init.normal_(p, 0.0, std)


def load_grown(model, src):
    """load_grown copies the state dict src into model.  A tensor of the
    model's MLP that is larger than src's (--ffn above the source model's
    intermediate_size) takes src's values in its leading block and keeps
    its fresh init elsewhere, but for down_proj's new columns, which are
    zero: the new units start with no effect, so the grown model computes
    what src did, and training brings them in."""
    sd = model.state_dict()
    for name, t in sd.items():
        s = src[name]
        if s.shape == t.shape:
            t.copy_(s)
            continue
        if ".mlp." not in name or s.dim() != t.dim() or \
                any(x > y for x, y in zip(s.shape, t.shape)):
            raise SystemExit("--init-from: %s is %s there, %s here (only "
                             "the MLP may grow)" % (name, tuple(s.shape),
                                                    tuple(t.shape)))
        if name.endswith("down_proj.weight"):
            t[:, s.shape[1]:] = 0.0
        t[tuple(slice(0, n) for n in s.shape)] = s
    model.load_state_dict(sd)


def make_optimizer(model, a):
    """AdamW with three groups: matrices (weight decay), norms and
    embeddings (none), and beta (no decay, its own learning rate)."""
    dec, nodec, beta = [], [], []
    for name, p in model.named_parameters():
        if name.endswith("self_attn.gate"):
            beta.append(p)
        elif p.dim() < 2 or "embed_tokens" in name:
            nodec.append(p)
        else:
            dec.append(p)
    groups = [
        {"params": dec, "weight_decay": a.wd, "lr_mult": 1.0},
        {"params": nodec, "weight_decay": 0.0, "lr_mult": 1.0},
        {"params": beta, "weight_decay": 0.0, "lr_mult": a.beta_lr_mult},
    ]
    return torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95))


def lr_at(a, frac, step):
    """Linear warm-up over --warmup steps, then cosine to 10% by the end
    of the time budget (frac = elapsed / budget)."""
    w = min(1.0, (step + 1) / a.warmup)
    f = min(1.0, frac)
    return a.lr * w * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * f)))


def pick(rng, spec):
    """pick draws a name from spec, a list of (name, weight)."""
    return rng.choices([n for n, _ in spec], [w for _, w in spec])[0]


def parse_spec(text):
    """parse_spec reads "a:0.5,b:0.25,c" (weight 1 when left out)."""
    out = []
    for item in text.split(","):
        name, _, w = item.partition(":")
        out.append((name, float(w) if w else 1.0))
    return out


def make_batch(rng, a, mix, k):
    """make_batch returns (tokens [B, T], answers): pass-key rows at
    distance k, all with one placement (so they have one length), each
    with its own key format and filler (a training source, the repeated
    sentences or random printable bytes).  answers holds (pos, length,
    format) of each row's answer, the key and its full stop."""
    N = a.segment
    place = pick(rng, a.places)
    T = {"start": k + 1, "middle": 2 * k + 1, "straddle": k + 2}[place] * N
    B = max(a.min_rows, a.batch_tokens // T)
    rows, ans = [], []
    for i in range(B):
        u = rng.random()
        if u < a.repeat_frac:
            kind, text = "repeat", None
        elif u < a.repeat_frac + a.random_frac:
            kind, text = "random", None
        else:
            kind, text = "text", mix.pick(rng)[1]
        fmt = pick(rng, a.key_formats)
        key = common.make_key(rng, fmt)
        label, dis = "pass key", None
        if rng.random() < a.label_frac:
            label = rng.choice(common.LABELS)
        if rng.random() < a.distractor_frac:
            dl = rng.choice([x for x in common.LABELS if x != label])
            dis = (dl, common.make_key(rng, pick(rng, a.key_formats)))
        toks, apos = common.passkey_layout(
            rng, N, k, lambda n: common.filler(rng, n, text, kind), key,
            place, label, dis)
        rows.append(toks)
        ans.append((apos, len(key) + 1, fmt))
    return torch.tensor(rows, dtype=torch.long), ans


class TextStreams:
    """TextStreams: a batch of long text streams whose state is carried
    across steps (truncated BPTT over --lm-segs segments); each stream
    starts with BOS at a random line of a source drawn from the mixture
    and lives 16..--lm-life segments before it is reset."""

    def __init__(self, rng, a, mix, model):
        self.rng, self.a, self.mix = rng, a, mix
        self.src = [None] * a.lm_rows
        self.B = a.lm_rows
        self.st = model.new_state(self.B)
        self.off = [0] * self.B
        self.left = [0] * self.B
        for r in range(self.B):
            self._reset(r)

    def _reset(self, r):
        a = self.a
        _, t = self.mix.pick(self.rng)
        self.src[r] = t
        o = self.rng.randrange(len(t) - a.lm_life * a.segment - 2)
        while o > 0 and t[o - 1] != 10:
            o -= 1
        self.off[r] = o
        self.left[r] = self.rng.randint(16, a.lm_life)
        self.first = getattr(self, "first", set())
        self.first.add(r)
        for l in range(len(self.st.M)):
            self.st.M[l][r] = 0.0
            self.st.z[l][r] = 0.0

    def batch(self):
        """batch returns tokens [B, lm_segs*N + 1] (one byte of overlap
        for the targets) and the state to run them from."""
        a = self.a
        n = a.lm_segs * a.segment
        rows = []
        for r in range(self.B):
            o = self.off[r]
            seq = self.src[r][o:o + n + 1].tolist()
            if r in self.first:
                seq = [common.BOS] + seq[:n]
            rows.append(seq)
        self.first = set()
        return torch.tensor(rows, dtype=torch.long)

    def advance(self, st):
        """advance keeps the state st (detached) and moves every stream on,
        resetting the ones whose life is over."""
        self.st = st.detach()
        n = self.a.lm_segs * self.a.segment
        for r in range(self.B):
            self.off[r] += n
            self.left[r] -= self.a.lm_segs
            if self.left[r] <= 0:
                self._reset(r)


def lm_loss(model, a, streams):
    """lm_loss runs the text streams lm_segs segments on and returns the
    mean next-byte cross-entropy (nats)."""
    toks = streams.batch()
    st = streams.st
    x, y = toks[:, :-1], toks[:, 1:]
    N = a.segment
    lgs = []
    for s in range(0, x.shape[1], N):
        _, lg, st = model(x[:, s:s + N], st, logits="all")
        lgs.append(lg)
    lg = torch.cat(lgs, 1)
    ce = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), y.reshape(-1))
    streams.advance(st)
    return ce, toks.numel()


def forward_loss(model, a, toks, ans):
    """forward_loss runs toks segment by segment from a fresh state and
    returns (filler_loss, answer_loss, digit_acc, exact_acc, row_ok):
    row_ok[r] is 1 where row r's whole answer was the argmax."""
    B, T = toks.shape
    N = a.segment
    st = model.new_state(B)
    logits = []
    for s in range(0, T, N):
        _, lg, st = model(toks[:, s:s + N], st, logits="all")
        logits.append(lg)
    lg = torch.cat(logits, 1)[:, :-1]                  # predicts toks[:, 1:]
    tgt = toks[:, 1:]
    ce = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tgt.reshape(-1),
                         reduction="none").view(B, T - 1)
    # language modelling: every next-byte prediction except those of
    # the pass-key rows' answer digits (scored separately).
    mask = torch.ones_like(ce)
    idx_r, idx_c = [], []
    for r, (p, n, _) in enumerate(ans):
        for j in range(n):
            idx_r.append(r)
            idx_c.append(p + j - 1)
    idx_r = torch.tensor(idx_r)
    idx_c = torch.tensor(idx_c)
    mask[idx_r, idx_c] = 0.0
    lm = (ce * mask).sum() / mask.sum()
    pk = ce[idx_r, idx_c].mean()
    with torch.no_grad():
        ok = (lg[idx_r, idx_c].argmax(-1) == tgt[idx_r, idx_c]).float()
        dacc = ok.mean().item()
        row_ok = torch.ones(len(ans))
        row_ok.index_reduce_(0, idx_r, ok, "prod")
        eacc = row_ok.mean().item()
    return lm, pk, dacc, eacc, row_ok


@torch.no_grad()
def eval_heldout(model, a, held, n_seq=4, n_seg=64):
    """Bits per byte on n_seq streams of n_seg segments of held-out text."""
    model.eval()
    N = a.segment
    T = n_seg * N
    rows = [held[i * T:(i + 1) * T].tolist() for i in range(n_seq)]
    toks = torch.tensor(rows, dtype=torch.long)
    _, lg, _ = model(toks, None, logits="all")
    ce = F.cross_entropy(lg[:, :-1].reshape(-1, lg.shape[-1]),
                         toks[:, 1:].reshape(-1))
    model.train()
    return ce.item() / math.log(2)


@torch.no_grad()
def eval_passkey(model, a, texts, k, fmt="d5", n=8, seed=12345):
    """Exact-key rate of n pass-key rows (keys of format fmt, one of
    common.KEY_FORMATS) at distance k with filler from the held-out
    English sources (never trained on).  Teacher-forced argmax at every
    answer byte equals greedy decoding's exact match."""
    model.eval()
    rng = random.Random(seed + k)
    rows, ans = [], []
    for i in range(n):
        text = texts[i % len(texts)]
        key = common.make_key(rng, fmt)
        toks, apos = common.passkey_layout(
            rng, a.segment, k,
            lambda m: common.filler(rng, m, text, "text"), key, "start")
        rows.append(toks)
        ans.append((apos, len(key) + 1, fmt))
    _, _, _, eacc, _ = forward_loss(model, a, torch.tensor(rows), ans)
    model.train()
    return eacc


def save_ckpt(path, model, opt, state):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                "state": state}, tmp)
    os.replace(tmp, path)


def main(argv):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Setup: apt-get install -y python3-torch python3-numpy "
        "libopenblas0-pthread " + corpora.PACKAGES + " wamerican",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="run directory")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init-from", metavar="MODEL_DIR",
                    help="start from this model's weights (same shape, "
                    "or a wider MLP: --ffn above its intermediate_size)")
    ap.add_argument("--minutes", type=float, default=48.0,
                    help="wall-time budget (the LR schedule spans it)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=384)
    ap.add_argument("--segment", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--beta-lr-mult", type=float, default=10.0)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--min-rows", type=int, default=2)
    ap.add_argument("--lm-rows", type=int, default=16,
                    help="text streams carried across steps")
    ap.add_argument("--sources", default=",".join(
        "%s:%g" % (n, corpora.WEIGHTS[n]) for n in corpora.TRAIN),
        help="training sources and weights (tools/train/corpora.py)")
    ap.add_argument("--lm-segs", type=int, default=4,
                    help="segments per step of each text stream (BPTT)")
    ap.add_argument("--lm-life", type=int, default=128,
                    help="most segments a text stream lives")
    ap.add_argument("--pk-lm-weight", type=float, default=0.5,
                    help="weight of the pass-key rows' filler bytes")
    ap.add_argument("--repeat-frac", type=float, default=0.1,
                    help="pass-key rows with the repeated filler")
    ap.add_argument("--random-frac", type=float, default=0.1,
                    help="pass-key rows with random printable filler "
                    "(the rest: text from the sources)")
    ap.add_argument("--key-formats", default="d3,d4,d5:2,d6,d7,d8,word:2",
                    help="key formats and weights (common.KEY_FORMATS)")
    ap.add_argument("--places", default="start:3,middle,straddle",
                    help="statement placements and weights")
    ap.add_argument("--label-frac", type=float, default=0.5,
                    help="rows whose label is drawn from common.LABELS "
                    "(the rest: \"pass key\")")
    ap.add_argument("--distractor-frac", type=float, default=0.3,
                    help="rows with another label's statement among "
                    "the filler")
    ap.add_argument("--pk-weight", type=float, default=1.0)
    ap.add_argument("--kmax-start", type=int, default=1)
    ap.add_argument("--kmax-limit", type=int, default=256)
    ap.add_argument("--promote", type=float, default=0.8,
                    help="exact-answer accuracy at kmax that raises kmax")
    ap.add_argument("--klong-frac", type=float, default=0.0,
                    help="steps at --kmax-limit whatever kmax is")
    ap.add_argument("--kmax-set", type=int, metavar="K",
                    help="set the curriculum's kmax to K now (also on "
                    "--resume), whatever the running accuracy")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ckpt-every", type=float, default=180.0, help="seconds")
    ap.add_argument("--log-every", type=int, default=10)
    a = ap.parse_args(argv)
    a.key_formats = parse_spec(a.key_formats)
    a.places = parse_spec(a.places)
    sources = parse_spec(a.sources)

    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    ckpt = os.path.join(a.out, "ckpt.pt")
    mix = corpora.Mixture([n for n, _ in sources], dict(sources))
    held = {"kjv": corpora.load("kjv-held"), "devil": corpora.load("devil")}
    unseen = [corpora.load(n) for n in corpora.HELDOUT]
    print("sources %s" % mix.sizes(), flush=True)

    cfgd = model_config(a)
    state = {"step": 0, "elapsed": 0.0, "tokens": 0, "kmax": a.kmax_start,
             "acc_at_kmax": 0.0, "seed": a.seed, "curve": []}
    if a.resume:
        with open(os.path.join(a.out, "config.json")) as f:
            cfgd = json.load(f)
    model = ti.InfiniModel(ti.InfiniConfig(cfgd))
    init_weights(model, cfgd["num_hidden_layers"])
    if a.init_from and not a.resume:
        load_grown(model, ti.load_model(a.init_from).state_dict())
    opt = make_optimizer(model, a)
    if a.resume:
        ck = torch.load(ckpt)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        state = ck["state"]
    if a.kmax_set:
        state["kmax"] = min(a.kmax_set, a.kmax_limit)
        state["acc_at_kmax"] = 0.0
    else:
        with open(os.path.join(a.out, "config.json"), "w") as f:
            json.dump(cfgd, f, indent=2)
        with open(os.path.join(a.out, "args.json"), "w") as f:
            json.dump(vars(a), f, indent=2)
    model.train()
    print("params %d, config %s" % (ti.count_params(model), cfgd), flush=True)

    rng = random.Random(a.seed * 1000003 + state["step"])
    budget = a.minutes * 60.0
    t_start = time.time() - state["elapsed"]
    t_ckpt = time.time()
    acc_ema = state["acc_at_kmax"]
    streams = TextStreams(rng, a, mix, model)
    agg = []
    fmt_ok = {}
    while True:
        el = time.time() - t_start
        if el >= budget:
            break
        kmax = state["kmax"]
        # --klong-frac of the steps at --kmax-limit (the distance the
        # curriculum heads for, so that the formats it has mastered keep
        # it while the hard ones hold kmax back); of the rest, half at
        # kmax and half uniform in 1..kmax
        u = rng.random()
        if u < a.klong_frac:
            k = a.kmax_limit
        elif u < a.klong_frac + (1 - a.klong_frac) / 2:
            k = kmax
        else:
            k = rng.randint(1, kmax)
        toks, ans = make_batch(rng, a, mix, k)
        lr = lr_at(a, el / budget, state["step"])
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_mult"]
        plm, pk, dacc, eacc, row_ok = forward_loss(model, a, toks, ans)
        for (_, _, fmt), ok in zip(ans, row_ok.tolist()):
            fmt_ok.setdefault(fmt, []).append(ok)
        lm, nlm = lm_loss(model, a, streams)
        loss = lm + a.pk_lm_weight * plm + a.pk_weight * pk
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state["step"] += 1
        state["tokens"] += toks.numel() + nlm
        if k == kmax:
            acc_ema = 0.8 * acc_ema + 0.2 * eacc
            if acc_ema >= a.promote and kmax < a.kmax_limit:
                state["kmax"] = min(a.kmax_limit, kmax * 2)
                acc_ema = 0.0
                print("curriculum: kmax %d -> %d at step %d" %
                      (kmax, state["kmax"], state["step"]), flush=True)
        state["acc_at_kmax"] = acc_ema
        agg.append((lm.item(), pk.item(), dacc, eacc))
        if state["step"] % a.log_every == 0:
            m = np.mean(agg, 0)
            agg = []
            betas = torch.cat([ly.self_attn.gate.detach()
                               for ly in model.model.layers])
            rec = {"step": state["step"], "min": round(el / 60, 2),
                   "tokens": state["tokens"], "kmax": state["kmax"],
                   "lm_bpb": round(m[0] / math.log(2), 4),
                   "pk_loss": round(m[1], 4), "pk_digit": round(m[2], 3),
                   "pk_exact": round(m[3], 3), "acc_ema": round(acc_ema, 3),
                   "lr": round(lr, 6),
                   "exact_by_format": {f: round(float(np.mean(v)), 3)
                                       for f, v in sorted(fmt_ok.items())},
                   "sig_beta_mean": round(torch.sigmoid(betas).mean()
                                          .item(), 3)}
            if state["step"] % (a.log_every * 10) == 0:
                for name, text in held.items():
                    rec["heldout_bpb_" + name] = round(
                        eval_heldout(model, a, text), 4)
                for kk in (16, 64, 256):
                    rec["unseen_pk%d" % kk] = round(
                        eval_passkey(model, a, unseen, kk), 3)
                for kk in (1, 64):
                    rec["unseen_word%d" % kk] = round(
                        eval_passkey(model, a, unseen, kk, "word", 16), 3)
            fmt_ok = {}
            state["curve"].append(rec)
            print(json.dumps(rec), flush=True)
        if time.time() - t_ckpt >= a.ckpt_every:
            state["elapsed"] = time.time() - t_start
            save_ckpt(ckpt, model, opt, state)
            t_ckpt = time.time()
    state["elapsed"] = time.time() - t_start
    save_ckpt(ckpt, model, opt, state)
    print("done: %d steps, %d tokens, %.1f min" %
          (state["step"], state["tokens"], state["elapsed"] / 60), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
