#!/usr/bin/env python3
"""Model card of models/mtp-v3 (the V3-shaped model: 256 routed experts, 8 active, FP8 weights).

Evaluates the shipped FP8 directory AND a BF16 export of the same checkpoint (the master, kept out of the
repository), side by side, and writes <model_dir>/README.md with: architecture, parameters and weight bytes
per token (FP8 as stored), corpus, training curve (table + training_curve.png), expert load balance per
layer on held-out text, held-out loss / MTP agreement for FP8 and BF16, and their logit differences.

With --extension (three training/eval_long.py outputs) and --before (the weights before the context
extension), the card also gets the extension's section (training/card_extension.py): loss and agreement
at 512 tokens before and after, loss and agreement against position up to 4096, retrieval.

Usage (after training/train.py and training/export.py --fp8):
  .venv/bin/python training/export.py training/checkpoints/mtp-v3/final.pt training/checkpoints/mtp-v3-bf16
  .venv/bin/python training/card_v3.py models/mtp-v3 --bf16 training/checkpoints/mtp-v3-bf16 \\
      --log training/logs/mtp-v3/stretch-{1,2,3,4,5-context,7-long-distill,8-long-distill}.jsonl \\
      --before /tmp/before/models/mtp-v3 --extension training/logs/mtp-v3/eval-long/{before-plain,before-under-yarn,extended}.json
A stretch is numbered by its log's file name (stretch-N...); stretch 6 was a side branch, not shipped.
"""
import argparse
import json
import os
import re
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import evaluate as ev  # noqa: E402
from card_extension import extension_section  # noqa: E402
from train import fixed_windows, load_tokens  # noqa: E402

DT_BYTES = {"F32": 4, "BF16": 2, "F16": 2, "F8_E4M3": 1, "I32": 4}


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return h


def bytes_per_token(model_dir, cfg):
    """Weight bytes one token reads, as stored: main model (embedding row excluded, lm_head included,
    routed experts counted k/E) and one MTP module (shared head excluded)."""
    N, E, k = cfg.num_hidden_layers, cfg.n_routed_experts, cfg.num_experts_per_tok
    main = module = 0.0
    stored = {"stored_main": 0, "stored_mtp": 0}
    for name, t in header(os.path.join(model_dir, "model.safetensors")).items():
        n = 1
        for s in t["shape"]:
            n *= s
        b = n * DT_BYTES[t["dtype"]]
        li = int(name.split(".")[2]) if name.startswith("model.layers.") else -1
        share = k / E if ".mlp.experts." in name else 1.0
        if name == "model.embed_tokens.weight":
            share = 1.0 / cfg.vocab_size
        if li >= N:
            stored["stored_mtp"] += b
            if li == N:
                module += b * share
        else:
            stored["stored_main"] += b
            main += b * share
    head = cfg.vocab_size * cfg.hidden_size * 2  # lm_head is BF16
    return dict(main=main, main_excl_head=main - head, module=module, head=head, **stored)


@torch.no_grad()
def load_balance(model, windows, bs=4):
    """Per MoE layer: routed-token counts per expert over the windows -> max/mean, min/mean."""
    tot = {}
    for s in range(0, windows.shape[0], bs):
        out = model(windows[s:s + bs])
        for li, c in out["router_stats"].items():
            tot[li] = tot.get(li, 0) + c.double()
    res = {}
    for li, c in sorted(tot.items()):
        m = c.mean().item()
        res[li] = dict(max_over_mean=c.max().item() / m, min_over_mean=c.min().item() / m,
                       unused=int((c == 0).sum().item()))
    return res


@torch.no_grad()
def fp8_vs_bf16(m8, m16, windows, bs=4):
    """Max |logit diff| and argmax agreement, main model and every MTP depth."""
    D = len(m8(windows[:1])["mtp_logits"])
    diff = [0.0] * (D + 1)
    same = [[0, 0] for _ in range(D + 1)]
    for s in range(0, windows.shape[0], bs):
        ids = windows[s:s + bs]
        a, b = m8(ids), m16(ids)
        la = [a["logits"]] + a["mtp_logits"]
        lb = [b["logits"]] + b["mtp_logits"]
        for j, (x, y) in enumerate(zip(la, lb)):
            diff[j] = max(diff[j], (x - y).abs().max().item())
            same[j][0] += (x.argmax(-1) == y.argmax(-1)).sum().item()
            same[j][1] += x.shape[0] * x.shape[1]
    return dict(max_abs_logit_diff=diff, argmax_agreement=[a / b for a, b in same])


def stretch_totals(recs):
    """Steps, tokens, wall time and tok/s of one stretch: from its last train record, or from the
    summary record of a stretch whose per-step records were lost (stretch 1)."""
    start = [r for r in recs if r.get("event") == "start"]
    trains = [r for r in recs if r.get("event") == "train"]
    summ = [r for r in recs if r.get("event") == "summary"]
    args = start[-1].get("args", {}) if start else {}
    if trains:
        t = trains[-1]
        tok_s = sorted(r["tok_s"] for r in trains)
        return dict(steps=t["step"], tokens=t["tokens"], elapsed_s=t["elapsed_s"], args=args,
                    tok_s=(tok_s[len(tok_s) // 2], tok_s[0], tok_s[-1]))
    if summ:
        u = summ[-1]
        return dict(steps=u["steps"], tokens=u["tokens"], elapsed_s=u["elapsed_s"], args=args,
                    tok_s=(u["tok_s_median"], u["tok_s_min"], u["tok_s_max"]))
    return dict(steps=0, tokens=0, elapsed_s=0.0, args=args, tok_s=(0, 0, 0))


def stretch_number(path, i):
    """A stretch's number from its log's name (stretch-5-context.jsonl is 5), else its place in the list."""
    m = re.match(r"stretch-(\d+)", os.path.basename(path))
    return int(m.group(1)) if m else i + 1


def join_stretches(stretches, numbers):
    """One log with cumulative steps and tokens (each record gains "stretch"), and per-stretch totals."""
    out, totals = [], []
    step0 = tok0 = 0
    for n, recs in zip(numbers, stretches):
        tot = stretch_totals(recs)
        for r in recs:
            r = dict(r, stretch=n)
            if "step" in r:
                r["step"] += step0
            if "tokens" in r:
                r["tokens"] += tok0
            out.append(r)
        tot.update(stretch=n, step0=step0, tok0=tok0)
        totals.append(tot)
        step0 += tot["steps"]
        tok0 += tot["tokens"]
    return out, totals


def curve_png(log, out_png):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    tr = [r for r in log if r.get("event") == "train"]
    va = [r for r in log if r.get("event") == "val"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["tokens"] / 1e6 for r in tr], [r["loss_main"] for r in tr], lw=1, label="train, main")
    ax.plot([r["tokens"] / 1e6 for r in tr], [r["loss_mtp"][0] for r in tr], lw=1, label="train, MTP depth 1")
    if va:
        ax.plot([r["tokens"] / 1e6 for r in va], [r["loss_main"] for r in va], "o-", label="valid, main")
    ax.set_xlabel("training tokens (M)")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("mtp-v3 training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--bf16", required=True, help="BF16 export of the same checkpoint (not shipped)")
    ap.add_argument("--log", required=True, nargs="+",
                    help="training logs of the stretches, oldest first (training/logs/mtp-v3/stretch-N.jsonl): "
                         "each stretch continues the previous one's weights, so steps and tokens add up")
    ap.add_argument("--status", default="",
                    help="a paragraph on the model's state (e.g. the study's alpha_1), printed after the intro")
    ap.add_argument("--data", default=os.path.join(ROOT, "data/tokens"))
    ap.add_argument("--windows", type=int, default=8, help="held-out windows per category")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(ROOT, "training/checkpoints/eval_mtp-v3"))
    ap.add_argument("--extension", nargs=3, metavar=("BEFORE_PLAIN", "BEFORE_YARN", "EXTENDED"),
                    help="training/eval_long.py outputs: the weights before the context extension under their "
                         "own config and under the extended one, and the extended model (this one)")
    ap.add_argument("--before", help="the model directory before the context extension (with --extension)")
    args = ap.parse_args()
    if bool(args.extension) != bool(args.before):
        ap.error("--extension and --before go together")

    res = {}
    for tag, d in (("fp8", args.model_dir), ("bf16", args.bf16)):
        cfg, r = ev.evaluate(d, args.data, T=args.seq, windows=args.windows, gen_prompts=4, p_len=32,
                             n_new=48, threads=args.threads)
        r.update(gen_prompts=4, p_len=32, n_new=48)
        res[tag] = r
    meta = json.load(open(os.path.join(args.data, "meta.json")))
    toks = load_tokens(os.path.join(args.data, meta["splits"]["heldout"]["file"]))
    win = torch.cat([fixed_windows(toks, args.seq, 4, lo, hi)
                     for lo, hi in ev.category_ranges(meta, "heldout").values()])
    _, m8 = ev.load_exported(args.model_dir)
    _, m16 = ev.load_exported(args.bf16)
    res["balance"] = load_balance(m8, win)
    res["diff"] = fp8_vs_bf16(m8, m16, win)
    res["bytes"] = bytes_per_token(args.model_dir, cfg)
    with open(args.out + ".json", "w") as f:
        json.dump(res, f, indent=1, default=str)
    stretches = [ev.read_log(p) for p in args.log]
    log, totals = join_stretches(stretches, [stretch_number(p, i) for i, p in enumerate(args.log)])
    png = curve_png(log, os.path.join(args.model_dir, "training_curve.png"))
    ext = None
    if args.extension:
        ext, rise = extension_section(args.model_dir, args.before, args.extension, args.data)
        print("context extension: validation loss at 512 %+.2f%%" % rise)
    write(args.model_dir, cfg, res, log, totals, meta, png, args.status, ext)
    print("wrote", os.path.join(args.model_dir, "README.md"))


def write(model_dir, cfg, res, log, totals, meta, png, status="", extension=None):
    D = cfg.num_nextn_predict_layers
    by = res["bytes"]
    size = os.path.getsize(os.path.join(model_dir, "model.safetensors"))
    L = []
    A = L.append
    A("# mtp-v3: a DeepSeek-V3-shaped model for mtpbench\n")
    A("DeepSeek-V3's routing and proportions at laptop size: %d main layers (the first dense, the rest "
      "MoE), MLA with q LoRA, **%d routed experts of which %d are active per token, in %d groups of which "
      "%d are kept**, 1 shared expert, sigmoid scores with `e_score_correction_bias` (`noaux_tc`), "
      "normalised top-k weights scaled by %.1f, and **%d sequential MTP modules**. Weights are stored as "
      "DeepSeek-V3 ships them: F8_E4M3 projection matrices with F32 `weight_scale_inv` per 128x128 block "
      "and a `quantization_config` in config.json; embeddings, lm_head, eh_proj, the router, norms and "
      "biases in BF16/F32. %.1f MB. Trained from scratch on 2 shared CPU cores by `training/train.py "
      "--config v3`; the BF16 master stays out of the repository.%s\n"
      % (cfg.num_hidden_layers, cfg.n_routed_experts, cfg.num_experts_per_tok, cfg.n_group, cfg.topk_group,
         cfg.routed_scaling_factor, D, size / 1e6,
         " Trained at 512 positions, then extended to %d with YaRN (section \"Context extension\")."
         % cfg.max_position_embeddings if cfg.rope_scaling else ""))
    if status:
        A(status + "\n")
    L.extend(ev.architecture_lines(cfg, "shared with the main model (no `embed_tokens` / "
                                        "`shared_head.head` in the MTP layers)"))
    A("## Weight bytes per token (as stored)\n")
    A("| | bytes |\n|---|---|")
    A("| stored: main model | %s |" % format(by["stored_main"], ",.0f"))
    A("| stored: MTP modules (all %d) | %s |" % (D, format(by["stored_mtp"], ",.0f")))
    A("| read per token: main model (routed experts x %d/%d, lm_head BF16 included) | %s |"
      % (cfg.num_experts_per_tok, cfg.n_routed_experts, format(by["main"], ",.0f")))
    A("| read per token: main model without lm_head | %s |" % format(by["main_excl_head"], ",.0f"))
    A("| read per draft token: one MTP module without the shared head | %s |" % format(by["module"], ",.0f"))
    A("| one module / main model | %.3f (1/%.1f); without the main lm_head %.3f (1/%.1f) |\n"
      % (by["module"] / by["main"], by["main"] / by["module"], by["module"] / by["main_excl_head"],
         by["main_excl_head"] / by["module"]))
    L.extend(ev.corpus_lines(meta, cfg))
    training_section(L, log, totals, meta, png)
    if extension:
        L.extend(extension)
    A("## Expert load balance on held-out text\n")
    A("Routed-token counts per expert over 16 held-out windows of 512 tokens (4 per category), final model "
      "(FP8). A perfectly balanced layer has max/mean = min/mean = 1.\n")
    A("| layer | max/mean | min/mean | unused experts |\n|---|---|---|---|")
    for li, b in res["balance"].items():
        name = "%d%s" % (int(li), " (MTP %d)" % (int(li) - cfg.num_hidden_layers + 1)
                         if int(li) >= cfg.num_hidden_layers else "")
        A("| %s | %.2f | %.2f | %d |" % (name, b["max_over_mean"], b["min_over_mean"], b["unused"]))
    A("")
    A("## Held-out evaluation: FP8 (shipped) and BF16 (master)\n")
    A("As for mtp-mini (`training/evaluate.py`): losses in nats/token; *agree dk (text)* teacher-forced "
      "agreement of module k with the main model's next-k argmax; *accept dk (self)* the same on the main "
      "model's own greedy continuations (the greedy acceptance rate of depth k).\n")
    A("**FP8 as shipped**\n")
    A(ev.fmt_table(res["fp8"], D))
    A("**BF16 master**\n")
    A(ev.fmt_table(res["bf16"], D))
    d = res["diff"]
    A("FP8 against BF16 on the same 16 windows: max |logit difference| main %.3f, MTP depths %s; argmax "
      "agreement main %.4f, MTP depths %s.\n"
      % (d["max_abs_logit_diff"][0], ", ".join("%.3f" % x for x in d["max_abs_logit_diff"][1:]),
         d["argmax_agreement"][0], ", ".join("%.4f" % x for x in d["argmax_agreement"][1:])))
    with open(os.path.join(model_dir, "README.md"), "w") as f:
        f.write("\n".join(L))


def stretch_objective(args):
    """What a stretch optimised, from its logged arguments."""
    context = (", context: a %s-token window every %s steps" % (args.get("long_seq"), args.get("long_every"))
               if args.get("long_every") else "")
    if args.get("mtp_distill"):
        return "MTP distillation (main frozen), lr %s%s" % (args.get("lr"), context)
    return "joint, MTP lambda %s, lr %s%s" % (args.get("mtp_lambda"), args.get("lr"), context)


def training_section(L, log, totals, meta, png):
    A = L.append
    joint = [t["args"] for t in totals
             if t["args"] and not t["args"].get("mtp_distill") and not t["args"].get("long_every")]
    distill = [t for t in totals if t["args"].get("mtp_distill")]
    args = joint[-1] if joint else totals[-1]["args"]
    vals = [r for r in log if r.get("event") == "val"]
    A("## Training\n")
    A("`training/train.py --config v3 --threads %s --bias-rule %s --bias-gamma %s --balance-alpha %s "
      "--gate-lr-mult %s --time-budget-min %s` (batch %s x %s tokens, AdamW lr %s, cosine to 10%% over each "
      "stretch, MTP lambda %s). Experts run in batched form (tiles of the mean load per expert, three batched "
      "matmuls per MoE layer, no loop over experts). Balancing: the aux-loss-free bias update of V3, in its "
      "proportional form (an untrained 256-expert router collapses onto one expert per layer within 5 "
      "steps, faster than V3's sign step can undo; see `update_bias`), plus V3's complementary "
      "sequence-wise balance loss with a small weight.\n"
      % (args.get("threads"), args.get("bias_rule"), args.get("bias_gamma"), args.get("balance_alpha"),
         args.get("gate_lr_mult"), args.get("time_budget_min"), args.get("batch"), args.get("seq"),
         args.get("lr"), args.get("mtp_lambda")))
    A("Training runs in stretches on a 2-core machine shared with other jobs; each stretch after the first "
      "starts from the weights the stretch before it exported (`--init-from DIR`, fresh optimizer and "
      "schedule). Logs: `training/logs/mtp-v3/` (stretch 6 was a side branch that was not kept).\n")
    if distill:
        A("Stretch%s %s trained only the MTP modules (`--mtp-distill`): the main model, its embedding and the "
          "shared output head are frozen, so every baseline token is the one of the joint model, and each "
          "module k minimises KL(main || module k) against the main model's distribution at position i+k "
          "instead of the cross-entropy to the text. That is the quantity speculative decoding accepts "
          "(greedy: argmax agreement; lossless sampling: sum min(p, q)); EAGLE and Medusa-2 train their "
          "draft heads this way. DeepSeek-V3 trains its MTP module only jointly; the joint stretches are "
          "that recipe.\n"
          % ("es" if len(distill) > 1 else "", ", ".join(str(t["stretch"]) for t in distill)))
    A("| stretch | objective | steps | tokens | wall (min) | tok/s median (min-max) |\n|---|---|---|---|---|---|")
    for t in totals:
        A("| %d | %s | %d | %s | %.1f | %.0f (%.0f-%.0f) |"
          % ((t["stretch"], stretch_objective(t["args"]), t["steps"], format(t["tokens"], ","),
              t["elapsed_s"] / 60) + tuple(t["tok_s"])))
    n_tok = sum(t["tokens"] for t in totals)
    A("| **all** | | %d | %s (%.2f epochs) | %.1f | |\n"
      % (sum(t["steps"] for t in totals), format(n_tok, ","), n_tok / meta["splits"]["train"]["tokens"],
         sum(t["elapsed_s"] for t in totals) / 60))
    if png:
        A("![training curve](training_curve.png)\n")
    if vals:
        A("| stretch | step | tokens | loss main (valid) | MTP losses | agreement by depth |\n"
          "|---|---|---|---|---|---|")
        for v in vals:
            A("| %d | %d | %s | %.3f | %s | %s |" % (v["stretch"], v["step"], format(v["tokens"], ","),
                                                      v["loss_main"],
                                                      " / ".join("%.3f" % x for x in v["loss_mtp"]),
                                                      " / ".join("%.3f" % x for x in v["agreement"])))
        A("")


if __name__ == "__main__":
    main()
