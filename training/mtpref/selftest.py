"""mtpref.selftest - quick self-check of the reference model (a few seconds on CPU).

Run:  .venv/bin/python training/mtpref/selftest.py
Checks: HF state_dict names, output shapes, forward+backward on a tiny random model for every routing
variant, causality of main and MTP outputs, float32 vs float64 agreement, the router against a plain
Python implementation of docs/model.md §5, interleaved RoPE vs the HF de-interleave + rotate_half form,
the MTP wiring against a hand-written recompute, and mtp_loss. Exits non-zero on the first failure.
"""
import math
import os
import random
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mtpref import DeepseekV3MTP, ModelConfig, mtp_loss  # noqa: E402
from mtpref.model import rope_interleaved  # noqa: E402


def tiny(**kw):
    base = dict(vocab_size=64, hidden_size=32, intermediate_size=48, moe_intermediate_size=16,
                num_hidden_layers=3, num_nextn_predict_layers=2, num_attention_heads=2,
                n_routed_experts=8, num_experts_per_tok=2, n_group=4, topk_group=2,
                kv_lora_rank=16, q_lora_rank=24, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8,
                rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16,
                              "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.707},
                max_position_embeddings=64, rope_theta=10.0)
    base.update(kw)
    return ModelConfig(**base)


VARIANTS = {
    "v3": tiny(),
    "v2-greedy": tiny(topk_method="greedy", scoring_func="softmax", n_group=1, topk_group=1,
                      q_lora_rank=None, norm_topk_prob=False, routed_scaling_factor=1.0,
                      rope_scaling=None, model_type="deepseek_v2", n_shared_experts=2),
    "v2-group": tiny(topk_method="group_limited_greedy", scoring_func="softmax", num_experts_per_tok=3,
                     norm_topk_prob=False, model_type="deepseek_v2"),
}


def expected_names(cfg, own):
    N, D = cfg.num_hidden_layers, cfg.num_nextn_predict_layers
    names = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    for L in range(N + D):
        p = f"model.layers.{L}."
        names |= {p + "input_layernorm.weight", p + "post_attention_layernorm.weight"}
        a = p + "self_attn."
        if cfg.q_lora_rank is None:
            names.add(a + "q_proj.weight")
        else:
            names |= {a + "q_a_proj.weight", a + "q_a_layernorm.weight", a + "q_b_proj.weight"}
        names |= {a + "kv_a_proj_with_mqa.weight", a + "kv_a_layernorm.weight", a + "kv_b_proj.weight",
                  a + "o_proj.weight"}
        mlps = []
        if cfg.layer_is_moe(L):
            names.add(p + "mlp.gate.weight")
            if cfg.topk_method == "noaux_tc":
                names.add(p + "mlp.gate.e_score_correction_bias")
            mlps = [p + f"mlp.experts.{e}." for e in range(cfg.n_routed_experts)]
            if cfg.n_shared_experts:
                mlps.append(p + "mlp.shared_experts.")
        else:
            mlps = [p + "mlp."]
        for m in mlps:
            names |= {m + "gate_proj.weight", m + "up_proj.weight", m + "down_proj.weight"}
        if L >= N:
            names |= {p + "enorm.weight", p + "hnorm.weight", p + "eh_proj.weight",
                      p + "shared_head.norm.weight"}
            if own:
                names |= {p + "embed_tokens.weight", p + "shared_head.head.weight"}
    return names


def ref_route(cfg, logits_row, bias):
    """Plain-Python docs/model.md §5 for one token: returns (idx list, weight list)."""
    E, G, K = cfg.n_routed_experts, cfg.n_group, cfg.num_experts_per_tok
    if cfg.scoring_func == "sigmoid":
        s = [1 / (1 + math.exp(-x)) for x in logits_row]
    else:
        m = max(logits_row)
        ex = [math.exp(x - m) for x in logits_row]
        s = [x / sum(ex) for x in ex]
    sel = [s[e] + (bias[e] if cfg.topk_method == "noaux_tc" else 0.0) for e in range(E)]
    allowed = set(range(E))
    if cfg.topk_method != "greedy" and G > 1:
        n = E // G
        gsc = []
        for g in range(G):
            grp = sorted(sel[g * n:(g + 1) * n], reverse=True)
            gsc.append(grp[0] + grp[1] if cfg.topk_method == "noaux_tc" else grp[0])
        keep = sorted(range(G), key=lambda g: (-gsc[g], g))[:cfg.topk_group]
        allowed = {e for e in range(E) if e // n in keep}
    idx = sorted(allowed, key=lambda e: (-sel[e], e))[:K]
    w = [s[e] for e in idx]
    if cfg.norm_topk_prob:
        t = sum(w)
        w = [x / t for x in w]
    return idx, [x * cfg.routed_scaling_factor for x in w]


def check(cond, msg):
    if not cond:
        print("FAIL:", msg)
        sys.exit(1)


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
            elif p.dim() == 2 and "embed" in name:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
            else:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) / math.sqrt(p.shape[1]))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))


def main():
    torch.manual_seed(0)
    random.seed(0)
    # RoPE: interleaved == HF de-interleave + rotate_half, up to the same permutation on q and k
    x, y = torch.randn(5, 8, dtype=torch.float64), torch.randn(5, 8, dtype=torch.float64)
    ang = torch.randn(5, 4, dtype=torch.float64)
    a = (rope_interleaved(x, ang.cos(), ang.sin()) * rope_interleaved(y, ang.cos(), ang.sin())).sum(-1)
    perm = torch.cat((torch.arange(0, 8, 2), torch.arange(1, 8, 2)))
    cc, ss = torch.cat((ang.cos(), ang.cos()), -1), torch.cat((ang.sin(), ang.sin()), -1)

    def rot_half(t):
        return torch.cat((-t[..., 4:], t[..., :4]), -1)

    xh, yh = x[:, perm], y[:, perm]
    b = ((xh * cc + rot_half(xh) * ss) * (yh * cc + rot_half(yh) * ss)).sum(-1)
    check(torch.allclose(a, b), "interleaved RoPE != HF rotate_half form")

    for vname, cfg in VARIANTS.items():
        for own in (False, True):
            model = DeepseekV3MTP(cfg, mtp_own_embed_head=own)
            sd = model.state_dict()
            check(set(sd) == expected_names(cfg, own),
                  f"{vname}: state_dict names differ: {set(sd) ^ expected_names(cfg, own)}")
            for k, v in sd.items():
                if k.endswith("e_score_correction_bias"):
                    check(v.dtype == torch.float32, "bias must be float32")
        model = DeepseekV3MTP(cfg).double()
        randomize(model, 1)
        B, T, V, d = 2, 10, cfg.vocab_size, cfg.hidden_size
        ids = torch.randint(0, V, (B, T))
        col = {}
        out = model(ids, collect=col)
        check(out["logits"].shape == (B, T, V) and out["hidden"].shape == (B, T, d), "main shapes")
        D = cfg.num_nextn_predict_layers
        check(len(out["mtp_logits"]) == D, "mtp count")
        for k in range(1, D + 1):
            check(out["mtp_logits"][k - 1].shape == (B, T - k, V), f"mtp {k} logits shape")
            check(out["mtp_hidden"][k - 1].shape == (B, T - k, d), f"mtp {k} hidden shape")
        for L, cnt in out["router_stats"].items():
            check(int(cnt.sum()) == B * (T if L < cfg.num_hidden_layers else T - (L - cfg.num_hidden_layers + 1))
                  * cfg.num_experts_per_tok, f"router_stats sum layer {L}")
        # router vs plain Python (every MoE layer, every token)
        for L in model.moe_layer_indices():
            layer = model.model.layers[L]
            xs = col[f"layers.{L}.ffn_norm"].reshape(-1, d)
            lg = (xs @ layer.mlp.gate.weight.T).tolist()
            bias = (layer.mlp.gate.e_score_correction_bias.tolist()
                    if layer.mlp.gate.e_score_correction_bias is not None else [0.0] * cfg.n_routed_experts)
            got_i = col[f"layers.{L}.router_idx"].reshape(len(lg), -1).tolist()
            got_w = col[f"layers.{L}.router_weights"].reshape(len(lg), -1).tolist()
            for n in range(len(lg)):
                ri, rw = ref_route(cfg, lg[n], bias)
                check(ri == got_i[n], f"{vname} L{L} tok{n}: idx {got_i[n]} != ref {ri}")
                check(all(abs(p - q) < 1e-12 for p, q in zip(rw, got_w[n])), f"{vname} L{L}: weights")
        # batched expert dispatch == one expert at a time (values and gradients)
        for L in model.moe_layer_indices():
            moe = model.model.layers[L].mlp
            xs = col[f"layers.{L}.ffn_norm"].reshape(-1, d).clone().requires_grad_(True)
            idx, w, _ = moe.gate(xs)
            counts = torch.bincount(idx.reshape(-1), minlength=cfg.n_routed_experts)
            yb = moe._routed(xs, idx, w, counts)
            gb = torch.autograd.grad(yb.square().sum(), xs, retain_graph=True)[0]
            yl = moe._routed_loop(xs, idx, w)
            gl = torch.autograd.grad(yl.square().sum(), xs)[0]
            check(torch.allclose(yb, yl, atol=1e-12) and torch.allclose(gb, gl, atol=1e-10),
                  f"{vname} L{L}: batched experts != loop ({(yb - yl).abs().max().item():.2e})")
        # MTP wiring recomputed by hand for module 1 and 2
        N = cfg.num_hidden_layers
        g = out["hidden"]
        emb = model.model.embed_tokens
        for k in (1, 2):
            lay = model.model.layers[N + k - 1]
            z = lay.eh_proj(torch.cat((lay.enorm(emb(ids[:, k:])), lay.hnorm(g[:, :T - k])), -1))
            check(torch.allclose(z, col[f"mtp.{k}.input"]), f"mtp {k} input wiring")
            g = out["mtp_hidden"][k - 1]
        # causality: change the last token
        ids2 = ids.clone()
        ids2[:, -1] = (ids2[:, -1] + 1) % V
        out2 = model(ids2)
        check(torch.allclose(out["logits"][:, :-1], out2["logits"][:, :-1]), "main causality")
        for k in range(1, D + 1):
            # module k at i sees t[..i+k]; the last token t[T-1] is first seen at i = T-1-k (its last slot)
            check(torch.allclose(out["mtp_logits"][k - 1][:, :-1], out2["mtp_logits"][k - 1][:, :-1]),
                  f"mtp {k} causality")
            check(not torch.allclose(out["mtp_logits"][k - 1][:, -1], out2["mtp_logits"][k - 1][:, -1]),
                  f"mtp {k} last slot must see the last token")
        # float32 vs float64
        m32 = DeepseekV3MTP(cfg)
        m32.load_state_dict({k: v.float() if v.is_floating_point() else v
                             for k, v in model.state_dict().items()})
        o32 = m32(ids)
        err = (o32["logits"].double() - out["logits"]).abs().max().item()
        check(err < 1e-3, f"{vname}: f32 vs f64 logits differ by {err}")
        if cfg.topk_method == "noaux_tc":
            check(m32.model.layers[N].mlp.gate.e_score_correction_bias.dtype == torch.float32, "bias dtype")
        # training step in float32
        m32.train()
        o = m32(ids)
        loss, parts = mtp_loss(o, ids, 0.3)
        check(torch.isfinite(loss).item() and len(parts["mtp"]) == D, "loss")
        loss.backward()
        gate_w = m32.model.layers[N].mlp.gate.weight
        check(gate_w.grad is not None and gate_w.grad.abs().sum() > 0, "router weight gets gradients")
        for n_, p in m32.named_parameters():
            check(p.grad is None or torch.isfinite(p.grad).all(), f"grad of {n_} not finite")
        # mtp_depth
        o1 = m32(ids, mtp_depth=1)
        check(len(o1["mtp_logits"]) == 1, "mtp_depth")
        print(f"ok {vname}: loss {loss.item():.4f} main {parts['main'].item():.4f} "
              f"f32/f64 {err:.2e}")
    # mtp_loss target alignment: a model output that puts all mass on the right token has ~0 loss
    T, V = 7, 11
    ids = torch.randint(0, V, (1, T))
    fake = {"logits": torch.full((1, T, V), -50.0), "mtp_logits": [torch.full((1, T - k, V), -50.0)
                                                                  for k in (1, 2)]}
    for i in range(T - 1):
        fake["logits"][0, i, ids[0, i + 1]] = 50.0
    for k in (1, 2):
        for i in range(T - 1 - k):
            fake["mtp_logits"][k - 1][0, i, ids[0, i + k + 1]] = 50.0
    loss, _ = mtp_loss(fake, ids, 1.0)
    check(loss.item() < 1e-6, "mtp_loss target alignment")
    print("selftest passed")


if __name__ == "__main__":
    main()
