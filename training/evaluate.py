#!/usr/bin/env python3
"""Evaluate an exported model directory (config.json + model.safetensors, BF16 weights run in fp32 by
the reference model training/mtpref) on the held-out split, per category and overall:

  * loss_main, loss_mtp[k]: cross-entropy (nats/token) of the main model (predicting t[i+1]) and of MTP
    module k (position i predicts t[i+k+1]), teacher-forced on held-out text;
  * acc_main, acc_mtp[k]: top-1 accuracy against the text;
  * agreement[k] (teacher-forced): P[argmax mtp_k at i == argmax main at i+k], the greedy acceptance it
    predicts for depth k when the drafts before it were the text's tokens;
  * self-generated acceptance: held-out prompts are continued greedily by the main model; on those
    continuations, module k's inputs are exactly the tokens a greedy speculative decoder would have
    accepted, so agreement there is the greedy per-depth acceptance, and the prefix products give the
    expected number of accepted draft tokens per verification step (chain of D drafts).

Writes <out>.json and <out>.md (a markdown table); `--card` also (re)writes the model card README.md
from that JSON, training/checkpoints/train_log.jsonl and data/tokens/meta.json.

Usage:
  .venv/bin/python training/evaluate.py models/mtp-mini --out training/checkpoints/eval_mtp-mini --card
"""
import argparse
import json
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from train import depth_losses, fixed_windows, load_tokens  # noqa: E402


def read_weights(path, block=None):
    """model.safetensors -> {name: float32 tensor of the values as stored}: BF16 and F32 as they are,
    F8_E4M3 dequantised with its `_scale_inv` blocks of BLOCK = [rows, cols] (the config's
    quantization_config.weight_block_size; torch 1.13 has no float8 dtype, so the raw bytes are decoded
    here; the scale tensors themselves are consumed, not returned)."""
    import numpy as np
    from make_fixtures import fp8_decode, read_safetensors_raw
    raw = read_safetensors_raw(path)
    out = {}
    for name, (dt, shape, b) in raw.items():
        if name.endswith("_scale_inv"):
            continue
        if dt == "F32":
            a = np.frombuffer(b, "<f4").reshape(shape).astype(np.float32)
        elif dt == "BF16":
            a = (np.frombuffer(b, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
        elif dt == "F8_E4M3":
            sdt, sshape, sb = raw[name + "_scale_inv"]
            scale = np.frombuffer(sb, "<f4").reshape(sshape)
            if block is None:
                raise SystemExit("%s: %s is F8_E4M3 but config.json has no weight_block_size" % (path, name))
            bm, bn = block
            full = np.repeat(np.repeat(scale, bm, 0), bn, 1)[:shape[0], :shape[1]]
            a = (fp8_decode(np.frombuffer(b, np.uint8).reshape(shape)) * full).astype(np.float32)
        else:
            raise SystemExit("%s: tensor %s has dtype %s (expected F32, BF16 or F8_E4M3)" % (path, name, dt))
        out[name] = torch.from_numpy(np.ascontiguousarray(a))
    return out


def load_exported(model_dir, dtype=torch.float32):
    """Build the reference model from an exported directory; weights as stored (BF16, F32, or F8_E4M3
    dequantised with its block scales) cast to dtype."""
    from mtpref.config import ModelConfig
    from mtpref.model import DeepseekV3MTP
    cfg = ModelConfig.from_json(os.path.join(model_dir, "config.json"))
    model = DeepseekV3MTP(cfg)  # MTP modules share embed_tokens / lm_head
    qc = cfg.quantization_config or {}
    sd = read_weights(os.path.join(model_dir, "model.safetensors"), qc.get("weight_block_size"))
    model = model.to(dtype)
    sd = {k: (v.to(torch.float32) if k.endswith("e_score_correction_bias") else v.to(dtype))
          for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise SystemExit("model.safetensors does not match the config: missing %s unexpected %s"
                         % (missing[:10], unexpected[:10]))
    model.eval()
    return cfg, model


class Acc:
    def __init__(self, D):
        self.D = D
        self.sum_main = 0.0
        self.n_main = 0
        self.sum_mtp = [0.0] * D
        self.n_mtp = [0] * D
        self.agree = [[0, 0] for _ in range(D)]
        self.acc = [[0, 0] for _ in range(D)]
        self.macc = [0, 0]

    def add(self, out, ids):
        B, T = ids.shape
        m, per = depth_losses(out, ids)
        self.sum_main += m.item() * B * (T - 1)
        self.n_main += B * (T - 1)
        main_arg = out["logits"].argmax(-1)
        self.macc[0] += (main_arg[:, :-1] == ids[:, 1:]).sum().item()
        self.macc[1] += B * (T - 1)
        for k0 in range(self.D):
            k = k0 + 1
            n = T - k - 1
            self.sum_mtp[k0] += per[k0].item() * B * n
            self.n_mtp[k0] += B * n
            a = out["mtp_logits"][k0].argmax(-1)
            self.agree[k0][0] += (a == main_arg[:, k:k + a.shape[1]]).sum().item()
            self.agree[k0][1] += a.numel()
            self.acc[k0][0] += (a[:, :n] == ids[:, k + 1:]).sum().item()
            self.acc[k0][1] += B * n

    def merge(self, o):
        self.sum_main += o.sum_main
        self.n_main += o.n_main
        for k in range(self.D):
            self.sum_mtp[k] += o.sum_mtp[k]
            self.n_mtp[k] += o.n_mtp[k]
            for j in range(2):
                self.agree[k][j] += o.agree[k][j]
                self.acc[k][j] += o.acc[k][j]
        for j in range(2):
            self.macc[j] += o.macc[j]

    def result(self):
        return dict(tokens=self.n_main,
                    loss_main=self.sum_main / self.n_main,
                    loss_mtp=[self.sum_mtp[k] / self.n_mtp[k] for k in range(self.D)],
                    acc_main=self.macc[0] / self.macc[1],
                    acc_mtp=[a / b for a, b in self.acc],
                    agreement=[a / b for a, b in self.agree])


@torch.no_grad()
def greedy_continue(model, prompts, n_new):
    """Greedy continuation by the main model alone (full recompute each step; small model)."""
    ids = prompts.clone()
    for _ in range(n_new):
        out = model(ids, mtp_depth=0)
        ids = torch.cat([ids, out["logits"][:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


@torch.no_grad()
def self_acceptance(model, D, seqs, p_len):
    """On main-model greedy text: per-depth agreement and the chain acceptance (prefix products)."""
    out = model(seqs)
    main_arg = out["logits"].argmax(-1)  # position j predicts t[j+1] (== t[j+1] for j >= p_len-1)
    B, T = seqs.shape
    # draft step at main position i (i >= p_len-1): module k at position i+?:
    # the speculative decoder at main position j (after emitting t[j+1]) runs module 1 at position j
    # (input t[j+1]) -> draft of t[j+2]; module k at position j -> draft of t[j+k+1].
    # Positions j such that t[j+k+1] exists and is main-generated: p_len-1 <= j <= T-k-2.
    per = []
    jmax = T - D - 2
    js = list(range(p_len - 1, jmax + 1))
    ok = torch.ones(B, len(js), dtype=torch.bool)
    chain = []
    for k0 in range(D):
        k = k0 + 1
        a = out["mtp_logits"][k0].argmax(-1)  # [B, T-k], position j predicts t[j+k+1]
        jj = torch.tensor(js)
        match = a[:, jj] == seqs[:, jj + k + 1]
        per.append(match.float().mean().item())
        ok = ok & match
        chain.append(ok.float().mean().item())
    return dict(agreement=per, all_first_k=chain, expected_accepted=sum(chain),
                positions=B * len(js), main_top1_check=(main_arg[:, p_len - 1:-1] == seqs[:, p_len:]).float().mean().item())


def category_ranges(meta, split):
    cats = meta["splits"][split]["categories"]
    return {c: (v["start"], v["end"]) for c, v in sorted(cats.items())}


def evaluate(model_dir, data_dir, split="heldout", T=512, windows=16, bs=4, gen_prompts=4, p_len=32,
             n_new=48, threads=2):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg, model = load_exported(model_dir)
    D = cfg.num_nextn_predict_layers
    meta = json.load(open(os.path.join(data_dir, "meta.json")))
    toks = load_tokens(os.path.join(data_dir, meta["splits"][split]["file"]))
    res = dict(model_dir=model_dir, split=split, T=T, windows_per_category=windows, categories={})
    overall = Acc(D)
    t0 = time.time()
    gen_all = []
    for cat, (lo, hi) in category_ranges(meta, split).items():
        acc = Acc(D)
        w = fixed_windows(toks, T, windows, lo, hi)
        with torch.no_grad():
            for s in range(0, w.shape[0], bs):
                ids = w[s:s + bs]
                acc.add(model(ids), ids)
        r = acc.result()
        overall.merge(acc)
        # self-generated acceptance: prompts = the first p_len tokens of evenly spaced windows
        pw = fixed_windows(toks, p_len, gen_prompts, lo, hi)
        seqs = greedy_continue(model, pw, n_new)
        gen_all.append(seqs)
        r["self_generated"] = self_acceptance(model, D, seqs, p_len)
        res["categories"][cat] = r
        print("%-10s %s" % (cat, json.dumps({k: v for k, v in r.items()})), flush=True)
    res["overall"] = overall.result()
    res["overall"]["self_generated"] = self_acceptance(model, D, torch.cat(gen_all), p_len)
    res["eval_seconds"] = round(time.time() - t0, 1)
    res["sample_greedy_continuations"] = [s.tolist() for s in torch.cat(gen_all)[::gen_prompts]]
    return cfg, res


def fmt_table(res, D):
    hdr = ["category", "tokens", "loss main"] + ["loss d%d" % k for k in range(1, D + 1)] + \
          ["acc main"] + ["agree d%d (text)" % k for k in range(1, D + 1)] + \
          ["accept d%d (self)" % k for k in range(1, D + 1)] + ["E[accepted]/step (self)"]
    lines = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]

    def row(name, r):
        sg = r["self_generated"]
        cells = [name, str(r["tokens"]), "%.3f" % r["loss_main"]] + ["%.3f" % x for x in r["loss_mtp"]] + \
                ["%.3f" % r["acc_main"]] + ["%.3f" % x for x in r["agreement"]] + \
                ["%.3f" % x for x in sg["agreement"]] + ["%.2f" % sg["expected_accepted"]]
        return "| " + " | ".join(cells) + " |"
    for cat, r in res["categories"].items():
        lines.append(row(cat, r))
    lines.append(row("**overall**", res["overall"]))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------------
def read_log(path):
    recs = []
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line:
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    pass
    return recs


def param_table(model_dir, cfg):
    from safetensors import safe_open
    N, D = cfg.num_hidden_layers, cfg.num_nextn_predict_layers
    E, k = cfg.n_routed_experts, cfg.num_experts_per_tok
    tot = main = mtp = routed_main = routed_mtp = 0
    with safe_open(os.path.join(model_dir, "model.safetensors"), "pt") as f:
        for name in f.keys():
            n = 1
            for s in f.get_slice(name).get_shape():
                n *= s
            tot += n
            li = int(name.split(".")[2]) if name.startswith("model.layers.") else -1
            is_mtp = li >= N
            if is_mtp:
                mtp += n
            else:
                main += n
            if ".mlp.experts." in name:
                if is_mtp:
                    routed_mtp += n
                else:
                    routed_main += n
    V, d = cfg.vocab_size, cfg.hidden_size
    frac_idle = (E - k) / E
    active_main = main - routed_main * frac_idle
    active_mtp_module = (mtp - routed_mtp * frac_idle) / D + V * d  # + the shared head it runs
    return dict(total=tot, main=main, mtp=mtp, mtp_per_module=mtp // D,
                active_main=int(active_main), active_main_matmul=int(active_main - V * d),
                active_mtp_module_incl_head=int(active_mtp_module),
                draft_cost_ratio=(active_mtp_module) / (active_main - V * d))


def architecture_lines(cfg, mtp_layout):
    """The card's architecture table (markdown lines)."""
    D = cfg.num_nextn_predict_layers
    L = []
    A = L.append
    A("## Architecture\n")
    A("| field | value |\n|---|---|")
    rows = [("vocab_size", cfg.vocab_size), ("hidden_size", cfg.hidden_size),
            ("num_hidden_layers (main)", cfg.num_hidden_layers),
            ("first_k_dense_replace", cfg.first_k_dense_replace), ("intermediate_size (dense)", cfg.intermediate_size),
            ("num_nextn_predict_layers (MTP modules)", D),
            ("num_attention_heads", cfg.num_attention_heads), ("q_lora_rank", cfg.q_lora_rank),
            ("kv_lora_rank", cfg.kv_lora_rank), ("qk_nope / qk_rope / v head dim",
                                                  "%d / %d / %d" % (cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim)),
            ("n_routed_experts / num_experts_per_tok", "%d / %d" % (cfg.n_routed_experts, cfg.num_experts_per_tok)),
            ("n_shared_experts", cfg.n_shared_experts), ("moe_intermediate_size", cfg.moe_intermediate_size),
            ("n_group / topk_group", "%d / %d" % (cfg.n_group, cfg.topk_group)),
            ("topk_method / scoring_func", "%s / %s" % (cfg.topk_method, cfg.scoring_func)),
            ("norm_topk_prob / routed_scaling_factor", "%s / %s" % (cfg.norm_topk_prob, cfg.routed_scaling_factor)),
            ("rope_theta / rope_scaling", "%g / %s" % (cfg.rope_theta, cfg.rope_scaling)),
            ("max_position_embeddings (= training window)", cfg.max_position_embeddings),
            ("rms_norm_eps", cfg.rms_norm_eps), ("tie_word_embeddings", cfg.tie_word_embeddings),
            ("MTP embed / head", mtp_layout),
            ("bos / eos", "%s / %s" % (cfg.bos_token_id, cfg.eos_token_id))]
    for k, v in rows:
        A("| %s | %s |" % (k, v))
    A("")
    return L


def corpus_lines(meta, cfg):
    """The card's corpus section (markdown lines)."""
    L = []
    A = L.append
    A("## Corpus\n")
    A("Text from Debian packages (see `data/` and the data engineer's notes), byte-level BPE tokenizer "
      "(`tokenizer.json`, vocab %d, BOS 0, EOS 1, PAD 2) trained with Hugging Face `tokenizers`. "
      "Documents are stored as BOS ... EOS; training samples random contiguous windows, which may span "
      "document boundaries.\n" % meta.get("vocab_size", cfg.vocab_size))
    A("| category | train tokens | train docs | valid tokens | held-out tokens |\n|---|---|---|---|---|")
    sp = meta["splits"]
    for cat in sorted(sp["train"]["categories"]):
        A("| %s | %s | %d | %s | %s |" % (cat, format(sp["train"]["categories"][cat]["tokens"], ","),
                                         sp["train"]["categories"][cat]["docs"],
                                         format(sp["valid"]["categories"][cat]["tokens"], ","),
                                         format(sp["heldout"]["categories"][cat]["tokens"], ",")))
    A("| **total** | %s | %d | %s | %s |\n" % (format(sp["train"]["tokens"], ","), sp["train"]["docs"],
                                                format(sp["valid"]["tokens"], ","), format(sp["heldout"]["tokens"], ",")))
    return L


def write_card(model_dir, res, log_path, meta_path, md_table, ckpt_path=None):
    from mtpref.config import ModelConfig
    cfg = ModelConfig.from_json(os.path.join(model_dir, "config.json"))
    D = cfg.num_nextn_predict_layers
    meta = json.load(open(meta_path))
    log = read_log(log_path)
    start = [r for r in log if r.get("event") == "start"]
    end = [r for r in log if r.get("event") == "end"]
    vals = [r for r in log if r.get("event") == "val"]
    trains = [r for r in log if r.get("event") == "train"]
    args = start[-1]["args"] if start else {}
    pc = param_table(model_dir, cfg)
    size = os.path.getsize(os.path.join(model_dir, "model.safetensors"))
    o = res["overall"]
    sg = o["self_generated"]
    tok_s = [r["tok_s"] for r in trains]

    L = []
    A = L.append
    A("# mtp-mini: the embedded default model of mtpbench\n")
    A("A small DeepSeek-V3-architecture model (MLA with q LoRA, a dense first layer then MoE layers with one "
      "shared and %d routed experts, sigmoid scores with bias-corrected group-limited top-%d routing "
      "(`noaux_tc`)) with **%d sequential MTP modules** wired as docs/design.md §3 (module k at position i "
      "reads Emb(t[i+k]) and the previous module's hidden after its `shared_head.norm`, module 1 the main "
      "hidden after `model.norm`). Trained from scratch on CPU in PyTorch (`training/train.py`, reference "
      "model `training/mtpref`). Weights: BF16 safetensors (`e_score_correction_bias` F32), %.1f MB. "
      "It exists to exercise and benchmark speculative decoding, not to be a good language model.\n"
      % (cfg.n_routed_experts, cfg.num_experts_per_tok, D, size / 1e6))
    L += architecture_lines(cfg, "shared with the main model (no `embed_tokens` / `shared_head.head` in the MTP layers)")
    A("## Parameters\n")
    A("| | parameters |\n|---|---|")
    A("| total (stored) | %s |" % format(pc["total"], ","))
    A("| main model (embedding, %d layers, norm, lm_head) | %s |" % (cfg.num_hidden_layers, format(pc["main"], ",")))
    A("| MTP modules (all %d; eh_proj, norms, one MoE block each) | %s (%s each) |"
      % (D, format(pc["mtp"], ","), format(pc["mtp_per_module"], ",")))
    A("| active per token, main model (incl. embedding row and lm_head) | %s |" % format(pc["active_main"], ","))
    A("| active per token, main model matmul weights (excl. embedding) | %s |" % format(pc["active_main_matmul"], ","))
    A("| active per draft token, one MTP module incl. the shared head | %s |" % format(pc["active_mtp_module_incl_head"], ","))
    A("| draft cost / main cost (weight MACs per token) | %.2f |" % pc["draft_cost_ratio"])
    A("")
    A("The vocabulary is small (4096), yet the shared lm_head (%s weights) is a large share of every draft "
      "step: a draft costs about %.0f%% of a main-model token in weight MACs. Speedup ratios on this model "
      "are therefore lower than for DeepSeek-V3, where one MTP block is ~1/61 of the model.\n"
      % (format(cfg.vocab_size * cfg.hidden_size, ","), 100 * pc["draft_cost_ratio"]))
    L += corpus_lines(meta, cfg)
    sp = meta["splits"]
    A("## Training\n")
    resumes = [r for r in log if r.get("event") == "resume"]
    final_args = None
    if ckpt_path and os.path.exists(ckpt_path):
        final_args = torch.load(ckpt_path, map_location="cpu").get("args")

    def cmd(a, resume=False):
        out = os.path.relpath(a["out"], ROOT) if os.path.isabs(a["out"]) else a["out"]
        c = ".venv/bin/python training/train.py --out %s --time-budget-min %g --val-windows %d --log-every-s %g" % (
            out, a["time_budget_min"], a["val_windows"], a["log_every_s"])
        if a.get("threads", 2) != 2:
            c += " --threads %d" % a["threads"]
        return c + (" --resume" if resume else "")
    if args:
        legs = [cmd(args)]
        if resumes:
            legs.append("# stopped after the checkpoint at step %s and resumed with (elapsed time, data position, "
                        "RNG and optimizer carry over):" % ", ".join(str(x) for x in sorted({r["step"] for r in resumes})))
            legs.append(cmd(final_args or resumes[-1].get("args") or args, resume=True))
        A("```\ncd /work/main   # repository root\n%s\n"
          ".venv/bin/python training/export.py training/checkpoints/mtp-mini/final.pt models/mtp-mini\n"
          ".venv/bin/python training/evaluate.py models/mtp-mini --card\n"
          ".venv/bin/python training/golden_default.py\n```\n" % "\n".join(legs))
        A("Settings (train.py defaults): window T = %d, batch %d windows (%d tokens/step), AdamW (beta2 %.2f, "
          "weight decay %.2f on matrices), peak lr %.1e, warmup %.0f%% of the budget (at least %d steps) then "
          "cosine to %.1e scheduled on elapsed wall time, router weights at %.1fx lr, gradient clip %.1f, fp32, "
          "seed %d. Loss = CE_main + lambda/D * sum_k CE_k with lambda = %.2f (D = %d). Auxiliary-loss-free "
          "balancing: after every step bias_e += %.0e * sign(mean_load - load_e) per MoE layer (main and MTP), "
          "no auxiliary loss.\n"
          % (args["seq"], args["batch"], args["seq"] * args["batch"], args["beta2"], args["weight_decay"],
             args["lr"], 100 * args["warmup_frac"], args["warmup_steps"], args["lr"] * args["min_lr_ratio"],
             args["gate_lr_mult"], args["clip"], args["seed"], args["mtp_lambda"], D, args["bias_gamma"]))
    if end:
        e = end[-1]
        t0 = args.get("threads", 2)
        t1 = (final_args or {}).get("threads", t0)
        thr = "%d" % t0 if t0 == t1 else "%d then (after the resume) %d" % (t0, t1)
        A("Measured: %d optimizer steps, %s training tokens (%.2f epochs of train.bin), %.1f min wall time "
          "on %s CPU thread(s) of a 2-core machine shared with other jobs (throughput %s tok/s, median %.0f)."
          "\n" % (e["step"], format(e["tokens"], ","), e["tokens"] / sp["train"]["tokens"], e["elapsed_s"] / 60, thr,
                  ("%.0f-%.0f" % (min(tok_s), max(tok_s))) if tok_s else "?",
                  sorted(tok_s)[len(tok_s) // 2] if tok_s else 0))
    byst = {}
    for v in vals:  # a step logged twice (two processes after a resume): keep the last record
        byst[v["step"]] = v
    vals = [byst[k] for k in sorted(byst)]
    if vals:
        A("Validation during training (valid.bin, %d fixed windows of %d tokens):\n"
          % (args.get("val_windows", 0), args.get("seq", 0)))
        A("| step | tokens | elapsed min | loss main | " + " | ".join("loss d%d" % k for k in range(1, D + 1))
          + " | " + " | ".join("agree d%d" % k for k in range(1, D + 1)) + " |")
        A("|" + "---|" * (4 + 2 * D))
        for v in vals:
            A("| %d | %s | %.1f | %.3f | %s | %s |" % (v["step"], format(v["tokens"], ","), v["elapsed_s"] / 60,
                                                    v["loss_main"], " | ".join("%.3f" % x for x in v["loss_mtp"]),
                                                    " | ".join("%.3f" % x for x in v["agreement"])))
        A("")
    A("## Held-out evaluation (`training/evaluate.py`)\n")
    A("BF16 weights run in fp32 by the reference model; %d windows of %d tokens per category of "
      "heldout.bin. Losses are nats/token. *agree dk (text)*: P[argmax of MTP module k at i == main model's "
      "argmax at i+k], teacher-forced on the held-out text. *accept dk (self)*: the same on text the main "
      "model generated greedily from %d held-out prompts per category (%d prompt + %d new tokens); there "
      "the module inputs are exactly what a greedy speculative decoder feeds after accepting the earlier "
      "drafts, so it is the greedy acceptance rate of depth k. *E[accepted]/step*: the expected number of "
      "accepted draft tokens per verification with a chain of %d drafts (sum over k of P[drafts 1..k all "
      "accepted]); tokens per main-model forward = 1 + that.\n"
      % (res["windows_per_category"], res["T"], res["gen_prompts"], res["p_len"], res["n_new"], D))
    A(md_table)
    A("Overall: main loss %.3f; MTP loss by depth %s; teacher-forced agreement by depth %s; "
      "self-generated greedy acceptance by depth %s, P[first k accepted] %s, "
      "expected accepted drafts per step %.2f (%.2f tokens per main forward).\n"
      % (o["loss_main"], ", ".join("%.3f" % x for x in o["loss_mtp"]),
         ", ".join("%.3f" % x for x in o["agreement"]), ", ".join("%.3f" % x for x in sg["agreement"]),
         ", ".join("%.3f" % x for x in sg["all_first_k"]), sg["expected_accepted"], 1 + sg["expected_accepted"]))
    A("## Comments\n")
    cats = res["categories"]
    by_self = sorted(cats, key=lambda c: cats[c]["self_generated"]["expected_accepted"])
    by_text = sorted(cats, key=lambda c: cats[c]["agreement"][0])
    A(COMMENTS.strip())
    A("- MTP loss does not grow with depth here (main %.3f, depths %s): with the sequential wiring, module k "
      "at position i is fed Emb(t[i+k]), so it sees the same tokens as the main model at position i+k and "
      "only the hidden state it starts from is older; each module adds one block on top. What limits "
      "acceptance is how well that block reproduces the main model's choice, not missing information."
      % (o["loss_main"], ", ".join("%.3f" % x for x in o["loss_mtp"])))
    A("- By category: teacher-forced depth-1 agreement is highest on %s (%.3f) and lowest on %s (%.3f); "
      "self-generated expected accepted drafts per step is highest on %s (%.2f) and lowest on %s (%.2f)."
      % (by_text[-1], cats[by_text[-1]]["agreement"][0], by_text[0], cats[by_text[0]]["agreement"][0],
         by_self[-1], cats[by_self[-1]]["self_generated"]["expected_accepted"],
         by_self[0], cats[by_self[0]]["self_generated"]["expected_accepted"]))
    A("")
    with open(os.path.join(model_dir, "README.md"), "w") as f:
        f.write("\n".join(L))


COMMENTS = """
- This is a tiny model trained for about an hour and a half on shared CPU cores, on well under one epoch
  of a 7.6M-token corpus, far from converged; its text is poor and its greedy continuations repeat.
  What matters for mtpbench is that it has the full V3 structure (MLA with q LoRA, dense + MoE layers,
  noaux_tc routing with a trained correction bias, three sequential MTP modules) and that its MTP
  modules agree with the main model often enough to make speculative decoding measurable at depths 1-3.
- Agreement partly reflects both models predicting the same frequent tokens (whitespace, punctuation,
  common subwords): top-1 accuracy against the text is far lower than agreement with the main model.
- The self-generated acceptance is measured on the main model's own greedy text, which for a small model
  is repetitive and therefore easy to predict; it overstates what varied prompts with sampling would
  give. The teacher-forced agreement on held-out text is the conservative figure.
- The shared lm_head (4096 x hidden) dominates a draft step's cost at this size (see Parameters), so
  speedups measured on this model understate what the same acceptance gives on a large model.
- MTP loss weight lambda = 0.5 (the paper uses 0.3 early, 0.1 later): AdamW normalises each parameter's
  step, so the MTP modules' own weights learn at the same speed whatever lambda is; lambda only sets how
  strongly the shared trunk, embedding and lm_head are pulled toward serving the drafts. Acceptance is
  what this model is for, so it is weighted above the paper's value, while the three MTP terms together
  (0.5) stay below the main loss (1.0) that the verifier's quality depends on.
- Size: three candidates were timed (forward+backward, B=8, T=512, 2 threads): hidden 256 / 4 layers
  (14.6M parameters) 543 tok/s, hidden 256 / 6 layers (18.4M) 407 tok/s, hidden 192 / 4 layers (8.6M)
  731 tok/s. With only a few million tokens in the budget the run is far below compute-optimal for any
  of them, so the cheapest (hidden 192) was chosen: ~35% more tokens for the same wall time.
- Positions beyond max_position_embeddings (512, the training window) were never trained (RoPE, no
  YaRN); keep prompt + generation within 512 tokens.
- Routing: 8 routed experts, top-2 with norm_topk_prob and routed_scaling_factor 1.0 (the normalised pair
  of weights sums to 1, the same scale as the always-on shared expert; V3's 2.5 compensates for 8 small
  experts out of 256 and has no counterpart here). Load balance came only from the bias update
  (gamma 5e-3, larger than V3's 1e-3 because this run has ~1500 steps, not ~500k).
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--data", default=os.path.join(ROOT, "data/tokens"))
    ap.add_argument("--split", default="heldout")
    ap.add_argument("--out", default=None, help="output prefix (default: training/checkpoints/eval_<name>)")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--windows", type=int, default=32, help="windows per category")
    ap.add_argument("--gen-prompts", type=int, default=8, help="greedy prompts per category")
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--card", action="store_true", help="write <model_dir>/README.md")
    ap.add_argument("--log", default=os.path.join(ROOT, "training/checkpoints/train_log.jsonl"))
    ap.add_argument("--checkpoint", default=os.path.join(ROOT, "training/checkpoints/mtp-mini/final.pt"),
                    help="the final checkpoint (its args give the last training command for the card)")
    args = ap.parse_args()
    out = args.out or os.path.join(ROOT, "training/checkpoints/eval_" + os.path.basename(os.path.normpath(args.model_dir)))
    cfg, res = evaluate(args.model_dir, args.data, args.split, args.seq, args.windows, 4, args.gen_prompts,
                        args.prompt_len, args.new_tokens, args.threads)
    res.update(gen_prompts=args.gen_prompts, p_len=args.prompt_len, n_new=args.new_tokens)
    D = cfg.num_nextn_predict_layers
    table = fmt_table(res, D)
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".json", "w") as f:
        json.dump(res, f, indent=1)
    with open(out + ".md", "w") as f:
        f.write(table)
    print(table)
    if args.card:
        write_card(args.model_dir, res, args.log, os.path.join(args.data, "meta.json"), table, args.checkpoint)
        print("wrote", os.path.join(args.model_dir, "README.md"))


if __name__ == "__main__":
    main()
