#!/usr/bin/env python3
"""Train the embedded default model (models/mtp-mini): a small DeepSeek-V3-style MoE with D = 3
sequential MTP modules (docs/design.md §3, §10), using the reference model in training/mtpref.

Loss: main next-token CE + lambda/D * sum_k CE_k (V3 paper's MTP loss). Auxiliary-loss-free load
balancing: after every optimizer step, for every MoE layer (main and MTP blocks),
bias_e += gamma * sign(mean_load - load_e). AdamW, linear warmup then cosine decay scheduled on the
elapsed fraction of the wall-time budget (so the run ends at lr_min exactly when the budget is used),
gradient clipping 1.0, fp32. Checkpoint every --ckpt-every-min minutes (atomic), --resume continues
model, optimizer, data RNG, torch RNG, step, tokens and elapsed time.

--mtp-distill (with --init-from a trained model): a later stretch that freezes the main model and
trains only the MTP modules on KL(main || module k) per depth (see distill_losses).

Example:
  .venv/bin/python training/train.py --out training/checkpoints/mtp-mini --time-budget-min 75
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
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

# --------------------------------------------------------------------------------------------
# Model configurations (Hugging Face field names). "mini" is the shipped default.
# --------------------------------------------------------------------------------------------
BASE = dict(
    vocab_size=4096,
    hidden_size=256,
    intermediate_size=768,
    moe_intermediate_size=256,
    num_hidden_layers=4,
    num_nextn_predict_layers=3,
    num_attention_heads=4,
    num_key_value_heads=4,
    n_shared_experts=1,
    n_routed_experts=8,
    num_experts_per_tok=2,
    routed_scaling_factor=1.0,
    topk_method="noaux_tc",
    n_group=4,
    topk_group=2,
    first_k_dense_replace=1,
    moe_layer_freq=1,
    norm_topk_prob=True,
    scoring_func="sigmoid",
    q_lora_rank=128,
    kv_lora_rank=64,
    qk_nope_head_dim=32,
    qk_rope_head_dim=16,
    v_head_dim=32,
    hidden_act="silu",
    attention_bias=False,
    rms_norm_eps=1e-6,
    rope_theta=10000.0,
    rope_scaling=None,
    max_position_embeddings=512,
    tie_word_embeddings=False,
    bos_token_id=0,
    eos_token_id=1,
)

CONFIGS = {
    # the shipped default (chosen from the candidates below by measured tokens/s, see the model card)
    "mini": dict(BASE, hidden_size=192, intermediate_size=576, moe_intermediate_size=192,
                 q_lora_rank=96, kv_lora_rank=48, num_attention_heads=3, num_key_value_heads=3),
    # candidates measured during the size search
    "mini-h256": dict(BASE),
    "mini-h192": dict(BASE, hidden_size=192, intermediate_size=576, moe_intermediate_size=192,
                      q_lora_rank=96, kv_lora_rank=48, num_attention_heads=3, num_key_value_heads=3),
    "mini-l6": dict(BASE, num_hidden_layers=6),
    "mini-h320": dict(BASE, hidden_size=320, intermediate_size=960, moe_intermediate_size=256,
                      num_hidden_layers=4, num_attention_heads=5, num_key_value_heads=5),
    # DeepSeek-V3's routing and proportions at laptop size (models/mtp-v3, issue 9): 256 fine-grained
    # routed experts, 8 active, 8 groups of which 4 are kept, 1 shared expert, scale 2.5; the dense
    # first layer is as wide as the 9 active experts together, as in V3 (18432 = 9 x 2048). 12 main
    # layers make one MTP module (one MoE layer + eh_proj) under 1/8 of the main model's weight bytes
    # per token even without counting the output head; 14 x 256 experts in FP8 fit the 64 MB budget.
    "v3": dict(BASE, hidden_size=192, intermediate_size=216, moe_intermediate_size=24,
               num_hidden_layers=12, num_attention_heads=3, num_key_value_heads=3,
               q_lora_rank=96, kv_lora_rank=48, n_routed_experts=256, num_experts_per_tok=8,
               n_group=8, topk_group=4, routed_scaling_factor=2.5),
    # models/mtp-v3 after its context-extension stretch (issue 27): YaRN as DeepSeek-V3 ships it
    # (factor 40 from 4K; mscale = mscale_all_dim = 1, so cos/sin keep their magnitude and the
    # softmax scale grows by (0.1 ln s + 1)^2), here factor 8 from the 512 positions the model was
    # trained at, to 4096.
    "v3-long": dict(BASE, hidden_size=192, intermediate_size=216, moe_intermediate_size=24,
                    num_hidden_layers=12, num_attention_heads=3, num_key_value_heads=3,
                    q_lora_rank=96, kv_lora_rank=48, n_routed_experts=256, num_experts_per_tok=8,
                    n_group=8, topk_group=4, routed_scaling_factor=2.5, max_position_embeddings=4096,
                    rope_scaling=dict(type="yarn", factor=8.0, original_max_position_embeddings=512,
                                      beta_fast=32, beta_slow=1, mscale=1.0, mscale_all_dim=1.0)),
    "tiny": dict(BASE, hidden_size=64, intermediate_size=128, moe_intermediate_size=64, q_lora_rank=32,
                 kv_lora_rank=32, num_attention_heads=2, num_key_value_heads=2, num_hidden_layers=2),
}


def load_mtpref():
    from mtpref.config import ModelConfig  # noqa: E402
    from mtpref.model import DeepseekV3MTP  # noqa: E402
    return ModelConfig, DeepseekV3MTP


def make_config(hf: dict):
    ModelConfig, _ = load_mtpref()
    return ModelConfig.from_dict(dict(hf))


def build_model(hf: dict):
    _, DeepseekV3MTP = load_mtpref()
    return DeepseekV3MTP(make_config(hf))


# --------------------------------------------------------------------------------------------
# Parameter accounting (from the state_dict names, so it matches what export writes)
# --------------------------------------------------------------------------------------------
def param_counts(model, hf):
    L = hf["num_hidden_layers"]
    k_act = hf["num_experts_per_tok"]
    total = main = mtp = 0
    routed_main = routed_mtp = 0
    one_expert = 0
    for name, p in model.named_parameters():
        n = p.numel()
        total += n
        is_mtp = False
        if name.startswith("model.layers."):
            li = int(name.split(".")[2])
            is_mtp = li >= L
        if is_mtp:
            mtp += n
        else:
            main += n
        if ".mlp.experts." in name:
            if is_mtp:
                routed_mtp += n
            else:
                routed_main += n
    E = hf["n_routed_experts"]
    n_moe_main = max(0, L - hf["first_k_dense_replace"])
    D = hf["num_nextn_predict_layers"]
    frac = (E - k_act) / E
    embed = hf["vocab_size"] * hf["hidden_size"]
    active_main = main - routed_main * frac - embed  # embedding lookup is not compute
    active_mtp_module = (mtp - routed_mtp * frac) / D if D else 0
    return dict(total=total, main=main, mtp=mtp, mtp_per_module=mtp // D if D else 0,
                routed_main=routed_main, routed_mtp=routed_mtp,
                active_main_matmul=int(active_main),
                active_mtp_module_matmul_excl_head=int(active_mtp_module),
                head=embed, n_moe_main=n_moe_main)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def load_tokens(path):
    """uint16 token file -> int64 torch tensor (no numpy<->torch interop: the venv's numpy may change)."""
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    return (torch.frombuffer(raw, dtype=torch.int16).to(torch.int64) & 0xFFFF)


class WindowSampler:
    """Random contiguous windows of length T from a token array; order from a seeded numpy RNG."""

    def __init__(self, tokens, T, B, seed):
        self.tokens = tokens
        self.T = T
        self.B = B
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.hi = len(tokens) - T
        assert self.hi > 0, "train.bin shorter than one window"

    def next(self):
        starts = [int(x) for x in self.rng.integers(0, self.hi, size=self.B)]
        return torch.stack([self.tokens[s:s + self.T] for s in starts])

    def state(self):
        return self.rng.bit_generator.state

    def set_state(self, st):
        self.rng.bit_generator.state = st


class LongWindowSampler:
    """Windows of length T that lie inside one whole document (training/long_docs.py). A category is
    drawn uniformly among those with a document of at least T tokens, then a window uniformly among
    that category's windows, so long code files do not crowd out the Bible books and fortune files."""

    def __init__(self, tokens, index, T, B, seed):
        self.tokens, self.T, self.B = tokens, T, B
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.by_cat = {}
        for d in index:
            if d["tokens"] >= T:
                self.by_cat.setdefault(d["category"], []).append(d)
        if not self.by_cat:
            raise SystemExit("long windows: no document of at least %d tokens" % T)
        self.cats = sorted(self.by_cat)
        self.weights = {c: np.array([d["tokens"] - T + 1 for d in ds], dtype=np.float64)
                        for c, ds in self.by_cat.items()}

    def next(self):
        rows = []
        for _ in range(self.B):
            cat = self.cats[int(self.rng.integers(0, len(self.cats)))]
            w = self.weights[cat]
            doc = self.by_cat[cat][int(self.rng.choice(len(w), p=w / w.sum()))]
            s = doc["start"] + int(self.rng.integers(0, doc["tokens"] - self.T + 1))
            rows.append(self.tokens[s:s + self.T])
        return torch.stack(rows)

    def state(self):
        return self.rng.bit_generator.state

    def set_state(self, st):
        self.rng.bit_generator.state = st


def load_long_docs(data_dir, split):
    with open(os.path.join(data_dir, split + ".index.json")) as f:
        index = json.load(f)
    return load_tokens(os.path.join(data_dir, split + ".bin")), index


def long_validation_windows(tokens, index, T, n):
    """Up to n fixed windows of T tokens, each the start of a different validation document of at
    least T tokens (the longest first), so position p of every window is p tokens into a text."""
    docs = sorted((d for d in index if d["tokens"] >= T), key=lambda d: -d["tokens"])[:n]
    if not docs:
        return None
    return torch.stack([tokens[d["start"]:d["start"] + T] for d in docs])


def fixed_windows(tokens, T, n, lo=0, hi=None):
    """n fixed, evenly spaced windows inside tokens[lo:hi] (deterministic evaluation set)."""
    hi = len(tokens) if hi is None else hi
    span = hi - lo - T
    if span < 0:
        return tokens[lo:hi][None]
    n = max(1, min(n, span // T + 1))
    starts = [lo + (span * j) // max(1, n - 1) for j in range(n)] if n > 1 else [lo]
    return torch.stack([tokens[s:s + T] for s in starts])


# --------------------------------------------------------------------------------------------
# Losses and metrics
# --------------------------------------------------------------------------------------------
def depth_losses(out, ids):
    """Returns main CE and the list of per-depth CE (module k at position i predicts t[i+k+1])."""
    logits = out["logits"]
    V = logits.shape[-1]
    main = F.cross_entropy(logits[:, :-1].reshape(-1, V).float(), ids[:, 1:].reshape(-1))
    per = []
    for k0, lg in enumerate(out["mtp_logits"]):
        k = k0 + 1
        n = ids.shape[1] - k - 1  # positions i = 0 .. T-k-2 have a target inside the window
        per.append(F.cross_entropy(lg[:, :n].reshape(-1, V).float(), ids[:, k + 1:].reshape(-1)))
    return main, per


def distill_losses(out):
    """Per depth: KL(p_main || q_k), the main model's next-token distribution at position i+k against
    module k's at i (both predict t[i+k+1]), averaged over positions. Its gradient reaches only what
    requires grad: with the main model frozen (--mtp-distill), the MTP modules. Minimising it is
    maximising what speculative decoding accepts: greedy acceptance is argmax agreement with the main
    model and lossless sampling accepts sum_x min(p, q) = 1 - TV(p, q) per draft."""
    main_log = F.log_softmax(out["logits"].float(), dim=-1)
    per = []
    for k0, lg in enumerate(out["mtp_logits"]):
        k = k0 + 1
        p_log = main_log[:, k:k + lg.shape[1]].detach()
        q_log = F.log_softmax(lg.float(), dim=-1)
        per.append(F.kl_div(q_log, p_log, log_target=True, reduction="none").sum(-1).mean())
    return per


def freeze_main_model(model, hf):
    """Trainable: only the MTP modules' own weights (eh_proj, enorm/hnorm, their decoder block and
    final norm). Frozen: the main layers, the embedding and the output head that the modules share,
    so the main model, and with it every baseline token, stays exactly the one exported before."""
    L = hf["num_hidden_layers"]
    for name, p in model.named_parameters():
        parts = name.split(".")
        is_mtp = name.startswith("model.layers.") and int(parts[2]) >= L
        p.requires_grad_(is_mtp)


def agreement_counts(out, ids):
    """Per depth: (#matches, #positions) of argmax mtp_k[i] == argmax main[i+k], and (#correct,#)
    top-1 accuracy of main and of each depth against the text."""
    main_arg = out["logits"].argmax(-1)  # [B,T], predicts t[i+1]
    T = ids.shape[1]
    agree, acc = [], []
    for k0, lg in enumerate(out["mtp_logits"]):
        k = k0 + 1
        a = lg.argmax(-1)  # [B,T-k]; position i predicts t[i+k+1]; main predicts it at i+k
        m = main_arg[:, k:k + a.shape[1]]
        agree.append(((a == m).sum().item(), a.numel()))
        n = T - k - 1
        acc.append(((a[:, :n] == ids[:, k + 1:]).sum().item(), a[:, :n].numel()))
    main_acc = ((main_arg[:, :-1] == ids[:, 1:]).sum().item(), main_arg[:, :-1].numel())
    return agree, acc, main_acc


@torch.no_grad()
def evaluate_windows(model, windows, bs=8):
    model.eval()
    tot_main = 0.0
    tot_per = None
    n_main = 0
    n_per = None
    agree = acc = None
    macc = [0, 0]
    for s in range(0, windows.shape[0], bs):
        ids = windows[s:s + bs]
        out = model(ids)
        m, per = depth_losses(out, ids)
        B, T = ids.shape
        tot_main += m.item() * B * (T - 1)
        n_main += B * (T - 1)
        if tot_per is None:
            tot_per = [0.0] * len(per)
            n_per = [0] * len(per)
            agree = [[0, 0] for _ in per]
            acc = [[0, 0] for _ in per]
        for k0, l in enumerate(per):
            cnt = B * (T - k0 - 2)
            tot_per[k0] += l.item() * cnt
            n_per[k0] += cnt
        ag, ac, ma = agreement_counts(out, ids)
        for k0 in range(len(per)):
            agree[k0][0] += ag[k0][0]
            agree[k0][1] += ag[k0][1]
            acc[k0][0] += ac[k0][0]
            acc[k0][1] += ac[k0][1]
        macc[0] += ma[0]
        macc[1] += ma[1]
    model.train()
    return dict(
        loss_main=tot_main / n_main,
        loss_mtp=[tot_per[i] / n_per[i] for i in range(len(tot_per))],
        agreement=[a / max(1, b) for a, b in agree],
        acc_main=macc[0] / max(1, macc[1]),
        acc_mtp=[a / max(1, b) for a, b in acc],
        val_tokens=n_main,
    )


POSITION_BUCKETS = (0, 64, 128, 256, 512, 1024, 2048, 3072, 4096, 8192, 16384)


@torch.no_grad()
def evaluate_by_position(model, windows):
    """Main and per-depth CE, and module-k agreement with the main model, averaged over the windows
    and binned by the position of the predicting token ([lo, hi) buckets of POSITION_BUCKETS)."""
    model.eval()
    T = windows.shape[1]
    edges = [b for b in POSITION_BUCKETS if b < T] + [T]
    main_sum = torch.zeros(T - 1, dtype=torch.float64)
    per_sum, agree_sum = None, None
    for w in windows:
        ids = w[None]
        out = model(ids)
        V = out["logits"].shape[-1]
        main_sum += F.cross_entropy(out["logits"][0, :-1].float(), ids[0, 1:], reduction="none").double()
        main_arg = out["logits"][0].argmax(-1)
        if per_sum is None:
            per_sum = [torch.zeros(T, dtype=torch.float64) for _ in out["mtp_logits"]]
            agree_sum = [torch.zeros(T, dtype=torch.float64) for _ in out["mtp_logits"]]
        for k0, lg in enumerate(out["mtp_logits"]):
            k = k0 + 1
            n = T - k - 1
            per_sum[k0][:n] += F.cross_entropy(lg[0, :n].reshape(-1, V).float(), ids[0, k + 1:],
                                               reduction="none").double()
            a = lg[0].argmax(-1)
            agree_sum[k0][:a.shape[0]] += (a == main_arg[k:k + a.shape[0]]).double()
    model.train()
    nw = windows.shape[0]

    def bucket(v, last):
        return [round(float(v[lo:min(hi, last)].mean()) / nw, 5) for lo, hi in zip(edges, edges[1:])
                if lo < last]
    return dict(windows=nw, bucket_edges=edges, loss_main_by_bucket=bucket(main_sum, T - 1),
                loss_mtp_by_bucket=[bucket(p, T - k0 - 2) for k0, p in enumerate(per_sum)],
                agreement_by_bucket=[bucket(a, T - k0 - 1) for k0, a in enumerate(agree_sum)])


# --------------------------------------------------------------------------------------------
# Auxiliary-loss-free balancing
# --------------------------------------------------------------------------------------------
def bias_buffers(model):
    """{layer_index: e_score_correction_bias buffer} for every MoE layer (main and MTP)."""
    out = {}
    for name, b in model.named_buffers():
        if name.endswith("e_score_correction_bias"):
            parts = name.split(".")
            li = int(parts[parts.index("layers") + 1])
            out[li] = b
    return out


def _counts_by_layer(stats, layers):
    if stats is None:
        return {}
    if isinstance(stats, dict):
        res = {}
        for key, v in stats.items():
            if isinstance(key, str):
                digits = [p for p in key.split(".") if p.isdigit()]
                li = int(digits[0]) if digits else int(key)
            else:
                li = int(key)
            res[li] = v
        return res
    stats = list(stats)
    assert len(stats) == len(layers), "router_stats length %d != MoE layers %d" % (len(stats), len(layers))
    return {li: s for li, s in zip(sorted(layers), stats)}


@torch.no_grad()
def update_bias(model, stats, gamma, buffers, rule="sign"):
    """rule "sign": bias_e += gamma * sign(mean - load_e) (DeepSeek-V3). "proportional": bias_e +=
    gamma * (mean - load_e) / mean, so an expert that takes every token (load 32x the mean at 256
    experts, top-8) is pushed down 31 gamma in one step. With 256 fine-grained experts the routing of
    an untrained model collapses onto one expert per layer within 5 steps, faster than a sign step of
    gamma per step can undo; with 8 experts (mtp-mini) the sign rule keeps up."""
    counts = _counts_by_layer(stats, buffers)
    imbalance = {}
    for li, c in counts.items():
        if isinstance(c, dict):
            c = c.get("counts", c.get("load"))
        c = torch.as_tensor(c, dtype=torch.float32).detach().reshape(-1)
        b = buffers.get(li)
        if b is None:  # a frozen layer's router (--mtp-distill)
            continue
        mean = c.mean()
        if rule == "proportional":
            b.add_((gamma * (mean - c) / mean.clamp_min(1e-9)).to(b.dtype))
        else:
            b.add_(gamma * torch.sign(mean - c).to(b.dtype))
        imbalance[li] = (c.max() / mean.clamp_min(1e-9)).item()  # max-load / mean-load
    return imbalance


def balance_loss(model):
    """Sum over MoE layers of the sequence-wise balance term each computed in its last forward."""
    terms = [m.balance_loss for m in model.modules() if getattr(m, "balance_loss", None) is not None]
    return torch.stack(terms).sum() if terms else torch.zeros(())


# --------------------------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------------------------
def lr_at(frac, step, args):
    """Warmup over the first args.warmup_frac of the budget (and at least warmup_steps steps),
    then cosine from lr to lr*min_ratio at frac = 1."""
    w = min(1.0, max(frac / args.warmup_frac, (step + 1) / max(1, args.warmup_steps)))
    if frac < args.warmup_frac:
        return args.lr * w
    p = min(1.0, (frac - args.warmup_frac) / max(1e-9, 1.0 - args.warmup_frac))
    lo = args.lr * args.min_lr_ratio
    return lo + 0.5 * (args.lr - lo) * (1.0 + math.cos(math.pi * p))


# --------------------------------------------------------------------------------------------
# Checkpointing
# --------------------------------------------------------------------------------------------
def save_ckpt(path, model, opt, sampler, state, hf, args, long_sampler=None):
    tmp = path + ".tmp"
    torch.save(dict(
        model=model.state_dict(),
        optimizer=opt.state_dict(),
        sampler=sampler.state(),
        long_sampler=long_sampler.state() if long_sampler else None,
        torch_rng=torch.get_rng_state(),
        py_rng=random.getstate(),
        state=state,
        hf_config=hf,
        args=vars(args),
    ), tmp)
    os.replace(tmp, path)


def log_jsonl(path, rec):
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")


CONTEXT_KEYS = ("rope_scaling", "max_position_embeddings")


def init_from_export(model, hf, model_dir):
    """Load an exported directory's stored weights (and router biases) into MODEL; its config must be
    the run's (the extra config.json keys an export adds are ignored)."""
    from evaluate import load_exported
    cfg, exported = load_exported(model_dir)
    for k, v in hf.items():
        if k in CONTEXT_KEYS and getattr(cfg, k, v) != v:
            # No weight depends on these: a context-extension stretch starts from the short model.
            print("--init-from %s: %s %r -> %r (context extension)" % (model_dir, k, getattr(cfg, k), v),
                  flush=True)
            continue
        if getattr(cfg, k, v) != v:
            raise SystemExit("--init-from %s: config field %s is %r, the run's config has %r"
                             % (model_dir, k, getattr(cfg, k), v))
    model.load_state_dict(exported.state_dict())
    print("initialised from %s" % model_dir, flush=True)


# --------------------------------------------------------------------------------------------
def bench(args):
    """Measure forward+backward tokens/s for candidate configs (used to choose the size)."""
    torch.manual_seed(0)
    res = {}
    for name in args.bench.split(","):
        hf = CONFIGS[name]
        model = build_model(hf)
        pc = param_counts(model, hf)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        ids = torch.randint(2, hf["vocab_size"], (args.batch, args.seq))
        times = []
        for it in range(args.bench_iters + 1):
            t0 = time.time()
            out = model(ids)
            m, per = depth_losses(out, ids)
            loss = m + args.mtp_lambda / len(per) * sum(per)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if it:
                times.append(time.time() - t0)
        tps = args.batch * args.seq / (sum(times) / len(times))
        res[name] = dict(tok_s=tps, params=pc["total"], bf16_mb=pc["total"] * 2 / 1e6, counts=pc)
        print(json.dumps(dict(config=name, B=args.batch, T=args.seq, tok_s=round(tps, 1),
                              params_total=pc["total"], bf16_MB=round(pc["total"] * 2 / 1e6, 2),
                              active_main=pc["active_main_matmul"],
                              active_mtp_module=pc["active_mtp_module_matmul_excl_head"],
                              head=pc["head"])), flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "training/checkpoints/mtp-mini"))
    ap.add_argument("--log", default=os.path.join(ROOT, "training/checkpoints/train_log.jsonl"))
    ap.add_argument("--data", default=os.path.join(ROOT, "data/tokens"))
    ap.add_argument("--config", default="mini", choices=sorted(CONFIGS))
    ap.add_argument("--time-budget-min", type=float, default=75.0)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: budget only)")
    ap.add_argument("--batch", type=int, default=6)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--warmup-frac", type=float, default=0.03)
    ap.add_argument("--warmup-steps", type=int, default=50)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--beta2", type=float, default=0.95)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--mtp-lambda", type=float, default=0.5)
    ap.add_argument("--mtp-distill", action="store_true",
                    help="freeze the main model (with embedding and head) and train only the MTP modules "
                         "on KL(main || module) at each depth (self-distillation, as EAGLE and Medusa-2 "
                         "train draft heads) instead of the joint next-token objective; needs --init-from")
    ap.add_argument("--bias-gamma", type=float, default=5e-3)
    ap.add_argument("--balance-alpha", type=float, default=0.0,
                    help="weight of V3's complementary sequence-wise balance loss (0: off, as mtp-mini)")
    ap.add_argument("--bias-rule", default="sign", choices=("sign", "proportional"),
                    help="aux-loss-free bias update (see update_bias)")
    ap.add_argument("--gate-lr-mult", type=float, default=0.1,
                    help="router weights learn at lr*mult so the bias update can keep the load balanced")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every-s", type=float, default=30.0)
    ap.add_argument("--val-every-min", type=float, default=10.0)
    ap.add_argument("--val-windows", type=int, default=48)
    ap.add_argument("--ckpt-every-min", type=float, default=5.0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init-from", default="",
                    help="start a new run from the weights of an exported model directory (BF16 or FP8, "
                         "dequantised) with a fresh optimizer: continues training across sessions whose "
                         "checkpoints did not survive, from the model that ships")
    ap.add_argument("--long-data", default=os.path.join(ROOT, "data/tokens-long"),
                    help="whole-document token files of training/long_docs.py (with --long-every)")
    ap.add_argument("--long-seq", type=int, default=4096)
    ap.add_argument("--long-batch", type=int, default=1)
    ap.add_argument("--long-every", type=int, default=0,
                    help="every N-th step trains on --long-batch windows of --long-seq tokens inside one "
                         "document instead of the short batch (context extension; 0: never)")
    ap.add_argument("--val-long-windows", type=int, default=6,
                    help="validation windows of --long-seq tokens (with --long-every): loss by position")
    ap.add_argument("--bench", default="", help="comma list of configs: measure tok/s and exit")
    ap.add_argument("--bench-iters", type=int, default=3)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    if args.bench:
        bench(args)
        return

    os.makedirs(args.out, exist_ok=True)
    os.makedirs(os.path.dirname(args.log), exist_ok=True)
    ckpt_path = os.path.join(args.out, "last.pt")

    hf = dict(CONFIGS[args.config])
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    model = build_model(hf)
    model.train()
    decay, no_decay, gate = [], [], []
    if args.mtp_distill:
        if not (args.init_from or args.resume):
            raise SystemExit("--mtp-distill trains the MTP modules of a trained model: give --init-from")
        freeze_main_model(model, hf)
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if n.endswith("mlp.gate.weight"):
            gate.append(p)
        else:
            (decay if p.dim() >= 2 and "embed_tokens" not in n else no_decay).append(p)
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=args.weight_decay, lr_mult=1.0),
                             dict(params=no_decay, weight_decay=0.0, lr_mult=1.0),
                             dict(params=gate, weight_decay=0.0, lr_mult=args.gate_lr_mult)],
                            lr=args.lr, betas=(0.9, args.beta2), eps=1e-8)

    train = load_tokens(os.path.join(args.data, "train.bin"))
    valid = load_tokens(os.path.join(args.data, "valid.bin"))
    sampler = WindowSampler(train, args.seq, args.batch, args.seed)
    vwin = fixed_windows(valid, args.seq, args.val_windows)
    long_sampler = vwin_long = None
    if args.long_every:
        if args.long_seq > hf["max_position_embeddings"]:
            raise SystemExit("--long-seq %d exceeds the config's max_position_embeddings %d"
                             % (args.long_seq, hf["max_position_embeddings"]))
        ltrain, lindex = load_long_docs(args.long_data, "train")
        long_sampler = LongWindowSampler(ltrain, lindex, args.long_seq, args.long_batch, args.seed + 1)
        vwin_long = long_validation_windows(*load_long_docs(args.long_data, "valid"), args.long_seq,
                                            args.val_long_windows)
    buffers = bias_buffers(model)
    if args.mtp_distill:  # the main routers' biases are part of the frozen main model
        buffers = {li: b for li, b in buffers.items() if li >= hf["num_hidden_layers"]}
    D = hf["num_nextn_predict_layers"]

    state = dict(step=0, tokens=0, elapsed=0.0, done=False, budget_s=args.time_budget_min * 60.0)
    if args.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location="cpu")
        if ck["hf_config"] != hf:
            raise SystemExit("resume: checkpoint config differs from --config %s" % args.config)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sampler.set_state(ck["sampler"])
        if long_sampler is not None and ck.get("long_sampler") is not None:
            long_sampler.set_state(ck["long_sampler"])
        torch.set_rng_state(ck["torch_rng"])
        random.setstate(ck["py_rng"])
        state = ck["state"]
        state["budget_s"] = args.time_budget_min * 60.0  # the budget may be changed on resume
        state["done"] = False
        print("resumed at step %d, %.1f min elapsed" % (state["step"], state["elapsed"] / 60), flush=True)
        log_jsonl(args.log, dict(event="resume", step=state["step"], elapsed_s=state["elapsed"], args=vars(args)))
    else:
        if args.init_from:
            init_from_export(model, hf, args.init_from)
        pc = param_counts(model, hf)
        print("config %s: %s" % (args.config, json.dumps(pc)), flush=True)
        log_jsonl(args.log, dict(event="start", config=args.config, hf_config=hf, args=vars(args),
                                 params=pc, n_train_tokens=int(len(train)), n_valid_tokens=int(len(valid))))

    budget = state["budget_s"]
    t_start = time.time() - state["elapsed"]
    last_log = last_ckpt = time.time()
    last_val = time.time()
    acc_main = 0.0
    acc_per = [0.0] * D
    acc_kl = [0.0] * D
    acc_n = 0
    tok_since = 0
    t_since = time.time()
    imb = {}

    def run_val(tag):
        t0 = time.time()
        r = evaluate_windows(model, vwin)
        rec = dict(event="val", tag=tag, step=state["step"], tokens=state["tokens"],
                   elapsed_s=round(time.time() - t_start, 1), val_s=round(time.time() - t0, 1), **r)
        print("VAL step %d: main %.4f | mtp %s | agree %s | acc main %.3f mtp %s (%.0fs)" % (
            state["step"], r["loss_main"], " ".join("%.4f" % x for x in r["loss_mtp"]),
            " ".join("%.3f" % x for x in r["agreement"]), r["acc_main"],
            " ".join("%.3f" % x for x in r["acc_mtp"]), time.time() - t0), flush=True)
        log_jsonl(args.log, rec)
        if vwin_long is not None:
            t0 = time.time()
            rl = evaluate_by_position(model, vwin_long)
            log_jsonl(args.log, dict(event="val_long", tag=tag, step=state["step"], tokens=state["tokens"],
                                     T=args.long_seq, val_s=round(time.time() - t0, 1), **rl))
            print("VAL long step %d: main by position %s (%.0fs)" % (
                state["step"], " ".join("%.3f" % x for x in rl["loss_main_by_bucket"]), time.time() - t0),
                flush=True)
        return r

    while True:
        elapsed = time.time() - t_start
        frac = elapsed / budget
        if frac >= 1.0 or (args.max_steps and state["step"] >= args.max_steps):
            break
        lr = lr_at(frac, state["step"], args)
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        long_step = args.long_every and state["step"] % args.long_every == args.long_every - 1
        ids = long_sampler.next() if long_step else sampler.next()
        out = model(ids)
        m, per = depth_losses(out, ids)
        if args.mtp_distill:
            kl = distill_losses(out)
            loss = sum(kl) / D
        else:
            kl = None
            loss = m + args.mtp_lambda / D * sum(per)
        if args.balance_alpha > 0:
            loss = loss + args.balance_alpha * balance_loss(model)
        if not torch.isfinite(loss):
            save_ckpt(os.path.join(args.out, "nonfinite.pt"), model, opt, sampler, state, hf, args,
                      long_sampler)
            raise SystemExit("non-finite loss at step %d" % state["step"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip).item()
        opt.step()
        imb = update_bias(model, out.get("router_stats"), args.bias_gamma, buffers, args.bias_rule)
        state["step"] += 1
        state["tokens"] += ids.numel()
        tok_since += ids.numel()
        acc_main += m.item()
        for k in range(D):
            acc_per[k] += per[k].item()
            if kl is not None:
                acc_kl[k] += kl[k].item()
        acc_n += 1

        now = time.time()
        state["elapsed"] = now - t_start
        if now - last_log >= args.log_every_s:
            tps = tok_since / (now - t_since)
            eta = max(0.0, budget - state["elapsed"])
            rec = dict(event="train", step=state["step"], tokens=state["tokens"], lr=lr,
                       loss_main=acc_main / acc_n, loss_mtp=[x / acc_n for x in acc_per],
                       grad_norm=gnorm, tok_s=round(tps, 1), elapsed_s=round(state["elapsed"], 1),
                       eta_s=round(eta, 1),
                       max_load_ratio=max(imb.values()) if imb else None,
                       load_ratio={str(k): round(v, 2) for k, v in imb.items()})
            if args.mtp_distill:
                rec["kl_mtp"] = [x / acc_n for x in acc_kl]
            print("step %d tok %d lr %.2e loss %.4f mtp %s gn %.2f | %.0f tok/s | %.1f min, ETA %.1f min"
                  " | maxload/mean %s" % (
                      state["step"], state["tokens"], lr, rec["loss_main"],
                      " ".join("%.3f" % x for x in rec["loss_mtp"]), gnorm, tps,
                      state["elapsed"] / 60, eta / 60, " ".join("%.2f" % v for v in imb.values())), flush=True)
            if args.mtp_distill:
                print("  KL(main || module) by depth %s" % " ".join("%.3f" % x for x in rec["kl_mtp"]), flush=True)
            log_jsonl(args.log, rec)
            acc_main = 0.0
            acc_per = [0.0] * D
            acc_kl = [0.0] * D
            acc_n = 0
            tok_since = 0
            t_since = now
            last_log = now
        if now - last_val >= args.val_every_min * 60:
            run_val("periodic")
            last_val = time.time()
        if time.time() - last_ckpt >= args.ckpt_every_min * 60:
            state["elapsed"] = time.time() - t_start
            save_ckpt(ckpt_path, model, opt, sampler, state, hf, args, long_sampler)
            last_ckpt = time.time()

    state["elapsed"] = time.time() - t_start
    r = run_val("final")
    state["done"] = True
    state["final_val"] = r
    save_ckpt(ckpt_path, model, opt, sampler, state, hf, args, long_sampler)
    torch.save(dict(model=model.state_dict(), hf_config=hf, state=state, args=vars(args)),
               os.path.join(args.out, "final.pt"))
    log_jsonl(args.log, dict(event="end", step=state["step"], tokens=state["tokens"],
                             elapsed_s=round(state["elapsed"], 1), final_val=r))
    print("done: %d steps, %d tokens, %.1f min" % (state["step"], state["tokens"], state["elapsed"] / 60),
          flush=True)


if __name__ == "__main__":
    main()
