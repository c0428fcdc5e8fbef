"""make_wiring_golden.py - reference drafts of one speculative step under every MTP wiring convention
(training/mtpref/drafting.py), for tests/test_wiring.c.

Run (deterministic, a few seconds, Debian's torch in .venv is enough):
    .venv/bin/python training/make_wiring_golden.py [--dir tests/fixtures/v3-f32]

Writes DIR/wiring_golden.safetensors (F32 logits, I32 tokens), computed in float64 from the weights
exactly as stored:
    prompt I32 [n]; first I32 [1] (argmax of the main logits at n-1: the pending token seq[m], m = n)
    chain.<draft_hidden>.<position0_embedding>        F32 [3, V]  drafts 1..3 of module 1 reused
    exact.<draft_hidden>.<position0_embedding>.<module_hidden>  F32 [D, V]  module k drafts token k
and the same names + ".drafts" (I32 [K], greedy). draft_hidden in {after_shared_head_norm,
before_shared_head_norm}, position0_embedding in {kept, zeroed}, module_hidden in {previous_module,
main_model}.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from make_fixtures import f32_entry, i32_entry, load_reference, write_safetensors  # noqa: E402
from mtpref.drafting import chain_drafts, exact_drafts  # noqa: E402

PROMPT = [11, 12, 13, 200, 201, 14, 15, 16, 60, 61, 62, 63, 9]   # as tests/test_decode.c prompt_c
HIDDEN = ("after_shared_head_norm", "before_shared_head_norm")
POS0 = ("kept", "zeroed")
MODULE = ("previous_module", "main_model")
CHAIN_K = 3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=os.path.join(HERE, "..", "tests", "fixtures", "v3-f32"))
    a = ap.parse_args()
    cfg, model = load_reference(a.dir)
    D = cfg.num_nextn_predict_layers
    out = {"prompt": i32_entry(PROMPT)}
    with torch.no_grad():
        ref = model(torch.tensor([PROMPT]), mtp_depth=0)
        first = int(torch.argmax(ref["logits"][0, -1]))
        seq, h = PROMPT + [first], ref["hidden"][0]
        out["first"] = i32_entry([first])
        for dh in HIDDEN:
            for p0 in POS0:
                rows, drafts = chain_drafts(model, seq, h, CHAIN_K, dh, p0)
                out[f"chain.{dh}.{p0}"] = f32_entry(rows.numpy())
                out[f"chain.{dh}.{p0}.drafts"] = i32_entry(drafts)
                drafts_chain = drafts
                for mh in MODULE:
                    rows, drafts = exact_drafts(model, seq, h, D, dh, p0, mh)
                    out[f"exact.{dh}.{p0}.{mh}"] = f32_entry(rows.numpy())
                    out[f"exact.{dh}.{p0}.{mh}.drafts"] = i32_entry(drafts)
                    print(f"exact {dh} {p0} {mh}: drafts {drafts}")
                print(f"chain {dh} {p0}: drafts {drafts_chain}")
    path = os.path.join(a.dir, "wiring_golden.safetensors")
    write_safetensors(path, out, {"source": "training/make_wiring_golden.py", "chain_k": CHAIN_K})
    print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
