#!/usr/bin/python3
"""export.py - write a training run's checkpoint as an engine model directory.

    export.py RUN_DIR OUT_DIR [--dtype F32|BF16] [--lineage CURVE_JSON]
              [--earlier RUN ...]

Writes OUT_DIR/config.json (the run's config) and OUT_DIR/model.safetensors
(checkpoint names are already the engine's: model.layers.{i}.self_attn.gate
and the Hugging Face Llama names), plus OUT_DIR/train_curve.json, the run's
logged curve and totals (MODEL_CARD.md quotes it).  A model trained in
stages, each run --init-from the one before, names the earlier runs with
--earlier (oldest first): their arguments, totals and curves go into
train_curve.json's "earlier" list, so the file holds the whole lineage.
When the earlier runs' directories are gone (they are git-ignored and stay
on the machine that trained them), --lineage names the train_curve.json of
the model this run started from: its earlier runs and its own record come
first in the list, then those of --earlier.  Checks that the exported
directory loads back through torch_infini.load_model with the same logits.
"""

import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
import torch_infini as ti  # noqa: E402


def run_args(run):
    """run_args returns the run's args.json (its command line), or None."""
    try:
        with open(os.path.join(run, "args.json")) as f:
            return json.load(f)
    except OSError:
        return None


def run_record(run, st):
    """run_record returns a run's name, arguments, totals and logged
    curve, given its checkpoint's state st."""
    return {"run": os.path.basename(os.path.normpath(run)),
            "args": run_args(run), "steps": st["step"],
            "tokens": st["tokens"],
            "wall_minutes": round(st["elapsed"] / 60, 2),
            "final_kmax": st["kmax"], "curve": st["curve"]}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("out")
    ap.add_argument("--dtype", default="F32", choices=["F32", "BF16"])
    ap.add_argument("--earlier", nargs="+", default=[], metavar="RUN",
                    help="the runs this one was initialised from, oldest "
                    "first")
    ap.add_argument("--lineage", metavar="CURVE_JSON",
                    help="an exported model's train_curve.json: its runs "
                    "come before those of --earlier")
    a = ap.parse_args(argv)
    earlier = []
    if a.lineage:
        # Read now: OUT_DIR may be the directory it lives in.
        with open(a.lineage) as f:
            prev = json.load(f)
        earlier = prev.pop("earlier", []) + [prev]
    earlier += [run_record(r, torch.load(os.path.join(r, "ckpt.pt"))["state"])
                for r in a.earlier]
    with open(os.path.join(a.run, "config.json")) as f:
        cfgd = json.load(f)
    ck = torch.load(os.path.join(a.run, "ckpt.pt"))
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfgd, f, indent=2)
        f.write("\n")
    ti.save_safetensors(os.path.join(a.out, "model.safetensors"),
                        ck["model"], a.dtype)
    st = ck["state"]
    rec = run_record(a.run, st)
    if earlier:
        rec["earlier"] = earlier
    with open(os.path.join(a.out, "train_curve.json"), "w") as f:
        json.dump(rec, f)
    # Round trip: the exported model gives the checkpoint's logits.
    m0 = ti.InfiniModel(ti.InfiniConfig(cfgd))
    m0.load_state_dict(ck["model"])
    m0.eval()
    m1 = ti.load_model(a.out)
    x = torch.arange(100) % 258
    with torch.inference_mode():
        d = (m0(x)[1] - m1(x)[1]).abs().max().item()
    print("exported %s: %d params, %d steps, %d tokens, %.1f min; "
          "round-trip max |dlogit| %.2g" %
          (a.out, ti.count_params(m1), st["step"], st["tokens"],
           st["elapsed"] / 60, d))
    if a.dtype == "F32" and d > 1e-5:
        raise SystemExit("export: round trip mismatch")


if __name__ == "__main__":
    main(sys.argv[1:])
