#!/usr/bin/env python3
"""eval_long.py - how a model reads long contexts: loss and MTP agreement against position, and a
retrieval check, on held-out whole documents (training/long_docs.py).

    .venv/bin/python training/eval_long.py MODEL_DIR [--seq 4096] [--windows 8] [--trials 8]
        [--as-config CONFIG_JSON] [--json OUT.json]

Loss and agreement: --windows windows of --seq tokens, each the start of a different held-out
document of at least --seq tokens; main-model CE, module-k CE and the share of positions where
module k's argmax equals the main model's (teacher-forced agreement, the quantity greedy
acceptance measures), binned by position (train.POSITION_BUCKETS).

Retrieval: a 24-token passage of held-out prose from elsewhere is placed after a short prefix, then
D tokens of held-out prose, then the passage again; the score is the teacher-forced top-1 accuracy
on the passage's last 16 tokens, against the same text without the early passage (the control:
what the model guesses from the local context alone). D runs over --distances. A random 6-digit
number was tried first: the 55M-parameter model copies none, at any distance.

--as-config evaluates MODEL_DIR's weights under another config.json (for example the shipped
short-context model with the extended model's YaRN config, to separate what the stretch learned
from what the rope change alone does).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from train import evaluate_by_position, load_long_docs, long_validation_windows  # noqa: E402
from evaluate import load_exported  # noqa: E402

def load_model(model_dir, as_config):
    from mtpref.config import ModelConfig
    from mtpref.model import DeepseekV3MTP
    cfg, model = load_exported(model_dir)
    if not as_config:
        return cfg, model
    cfg2 = ModelConfig.from_json(as_config)
    model2 = DeepseekV3MTP(cfg2)
    model2.load_state_dict(model.state_dict())
    model2.eval()
    return cfg2, model2


@torch.no_grad()
def retrieval(model, filler, distances, trials, seed):
    """{distance: {"with_fact": acc, "without_fact": acc, "answer_tokens": n}}: a passage of
    FACT_TOKENS tokens from elsewhere in the held-out text is placed early, DISTANCE tokens of text
    follow, then the passage's first QUERY_TOKENS tokens again; the score is the teacher-forced
    top-1 accuracy on the rest of the passage. Without the early passage the model can only
    guess from the query (the control)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    out = {}
    for dist in distances:
        hits = {True: 0, False: 0}
        n_tok = 0
        for _ in range(trials):
            start = int(rng.integers(0, len(filler) - dist - 64))
            far = int(rng.integers(0, len(filler) - FACT_TOKENS))
            while abs(far - start) < dist + 64 + FACT_TOKENS:
                far = int(rng.integers(0, len(filler) - FACT_TOKENS))
            fact = filler[far:far + FACT_TOKENS]
            prefix, body = filler[start:start + 32], filler[start + 32:start + 32 + dist]
            answer = fact[QUERY_TOKENS:]
            for with_fact in (True, False):
                ids = [0] + prefix + (fact if with_fact else []) + body + fact
                logits = model(torch.tensor(ids)[None], mtp_depth=0)["logits"][0]
                first = len(ids) - len(answer)
                pred = logits[first - 1:len(ids) - 1].argmax(-1).tolist()
                hits[with_fact] += sum(int(p == a) for p, a in zip(pred, answer))
            n_tok += len(answer)
        out[str(dist)] = dict(with_fact=round(hits[True] / n_tok, 3),
                              without_fact=round(hits[False] / n_tok, 3), answer_tokens=n_tok)
        print("retrieval at distance %d: %s" % (dist, out[str(dist)]), flush=True)
    return out


FACT_TOKENS, QUERY_TOKENS = 24, 8


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--data", default="data/tokens-long")
    ap.add_argument("--split", default="heldout")
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--distances", default="64,448,1024,2048,3840")
    ap.add_argument("--as-config", default="")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg, model = load_model(args.model_dir, args.as_config)
    tokens, index = load_long_docs(args.data, args.split)
    wins = long_validation_windows(tokens, index, args.seq, args.windows)
    if wins is None:
        raise SystemExit("eval_long: no %s document of %d tokens in %s" % (args.split, args.seq, args.data))
    res = dict(model=args.model_dir, config=args.as_config or os.path.join(args.model_dir, "config.json"),
               rope_scaling=cfg.rope_scaling, max_position_embeddings=cfg.max_position_embeddings,
               split=args.split, seq=args.seq)
    res["by_position"] = evaluate_by_position(model, wins)
    print(json.dumps(res["by_position"]), flush=True)
    prose = [d for d in index if d["category"] == "prose"] or index
    filler = torch.cat([tokens[d["start"] + 1:d["start"] + d["tokens"] - 1] for d in prose]).tolist()
    distances = [int(x) for x in args.distances.split(",") if int(x) + 64 < args.seq]
    res["retrieval"] = retrieval(model, filler, distances, args.trials, args.seed)
    print(json.dumps(res["retrieval"]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
