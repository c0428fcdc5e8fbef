#!/usr/bin/env python3
"""Golden test of the shipped default model: tests/fixtures/mtp-mini-golden.safetensors.

Runs the reference model (training/mtpref) in float64 on the exported BF16 weights of models/mtp-mini
(each BF16 value converted exactly to float64; e_score_correction_bias F32 as stored) over T tokens taken
from the held-out split (the start of the first prose document, BOS included), and stores:

  tokens                      I32 [T]
  logits                      F32 [T, V]     main model, position i predicts t[i+1]
  hidden                      F32 [T, d]     main hidden after model.norm
  mtp.{k}.logits              F32 [T-k, V]   MTP module k (k = 1..D), position i predicts t[i+k+1]
  mtp.{k}.hidden              F32 [T-k, d]   module k's hidden after its shared_head.norm
  layers.{L}.router_idx       I32 [T', K]    chosen experts of every MoE layer (main and MTP; slots in
                                             descending biased score), T' = T for main layers, T-k for
                                             MTP module k

Metadata: the decoded text, the source offset, the model's config.json and the sha256 of the
model.safetensors it was computed from. T is the largest value <= --tokens that keeps the file under
--max-bytes (1.5 MB).

Usage: .venv/bin/python training/golden_default.py [--model models/mtp-mini] [--tokens 24]
"""
import argparse
import hashlib
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from evaluate import load_exported  # noqa: E402
from train import load_tokens  # noqa: E402


def build(model, cfg, toks):
    ids = toks[None].to(torch.int64)
    collect = {}
    with torch.no_grad():
        out = model(ids, collect=collect)
    t = {"tokens": toks.to(torch.int32).contiguous(),
         "logits": out["logits"][0].to(torch.float32).contiguous(),
         "hidden": out["hidden"][0].to(torch.float32).contiguous()}
    for k, (lg, hd) in enumerate(zip(out["mtp_logits"], out["mtp_hidden"]), start=1):
        t["mtp.%d.logits" % k] = lg[0].to(torch.float32).contiguous()
        t["mtp.%d.hidden" % k] = hd[0].to(torch.float32).contiguous()
    for name, v in collect.items():
        if name.endswith("router_idx"):
            t[name] = v[0].to(torch.int32).contiguous()
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "models/mtp-mini"))
    ap.add_argument("--data", default=os.path.join(ROOT, "data/tokens"))
    ap.add_argument("--category", default="prose")
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--max-bytes", type=int, default=1_500_000)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/mtp-mini-golden.safetensors"))
    args = ap.parse_args()
    torch.set_num_threads(2)

    from safetensors.torch import save_file
    cfg, model = load_exported(args.model, dtype=torch.float64)
    meta = json.load(open(os.path.join(args.data, "meta.json")))
    start = meta["splits"]["heldout"]["categories"][args.category]["start"]
    allt = load_tokens(os.path.join(args.data, meta["splits"]["heldout"]["file"]))
    text = None
    try:
        from tokenizers import Tokenizer
        tk = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    except Exception:  # the fixture does not depend on it
        tk = None
    wpath = os.path.join(args.model, "model.safetensors")
    sha = hashlib.sha256(open(wpath, "rb").read()).hexdigest()
    cfgjson = open(os.path.join(args.model, "config.json")).read()

    T = args.tokens
    while T >= 8:
        toks = allt[start:start + T].clone()
        tensors = build(model, cfg, toks)
        if tk is not None:
            text = tk.decode([int(x) for x in toks], skip_special_tokens=False)
        md = {"description": "mtp-mini golden: float64 reference forward on the exported BF16 weights",
              "source": "data/tokens/heldout.bin [%d:%d] (%s)" % (start, start + T, args.category),
              "text": text or "", "model_safetensors_sha256": sha, "config_json": cfgjson,
              "T": str(T), "mtp_depths": str(cfg.num_nextn_predict_layers),
              "compute_dtype": "float64", "stored_dtype": "float32"}
        tmp = args.out + ".tmp"
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        save_file(tensors, tmp, metadata=md)
        size = os.path.getsize(tmp)
        if size <= args.max_bytes:
            os.chmod(tmp, 0o644)
            os.replace(tmp, args.out)
            print("wrote %s: T=%d, %d tensors, %d bytes" % (args.out, T, len(tensors), size))
            print("text: %r" % text)
            print("argmax main:", tensors["logits"].argmax(-1).tolist())
            for k in range(1, cfg.num_nextn_predict_layers + 1):
                print("argmax mtp.%d:" % k, tensors["mtp.%d.logits" % k].argmax(-1).tolist())
            return
        os.remove(tmp)
        T -= 1
    raise SystemExit("cannot fit the golden file under %d bytes" % args.max_bytes)


if __name__ == "__main__":
    main()
