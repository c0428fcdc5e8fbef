#!/usr/bin/env python3
"""Export a training checkpoint to a Hugging Face model directory the C engine loads (docs/design.md §3):
config.json (ModelConfig.to_hf_dict(), torch_dtype bfloat16) and model.safetensors in BF16, with
every `mlp.gate.e_score_correction_bias` kept in F32 (as in DeepSeek-V3's checkpoints).

With --fp8, the projection matrices are stored as DeepSeek-V3 ships them: F8_E4M3 with F32
`weight_scale_inv` per 128x128 block (scale = block amax / 448, round to nearest even, as
training/make_fixtures.py) and a `quantization_config` in config.json; embeddings, lm_head, eh_proj,
the router, norms and biases stay BF16/F32 (docs/model.md §2.5).

The MTP modules share the main embedding and lm_head, so `model.layers.N+k.embed_tokens` and
`model.layers.N+k.shared_head.head` are not written (docs/design.md §3: when absent the engine uses the main
model's tensors).

Refuses, with a clear error, anything it cannot export faithfully: a config field value the C engine
does not support, a tensor missing from / unexpected in the checkpoint (checked against a name list
derived independently from the config, docs/model.md §2), a wrong shape, or a non-finite value (before or
after rounding to BF16).

Usage:
  .venv/bin/python training/export.py training/checkpoints/mtp-mini/final.pt models/mtp-mini
  .venv/bin/python training/export.py --fp8 training/checkpoints/mtp-v3/final.pt models/mtp-v3
"""
import argparse
import json
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


class ExportError(Exception):
    pass


def check_config(cfg):
    """Field values the C engine supports (docs/design.md §3 / docs/model.md §1); anything else is refused."""
    errs = []
    if cfg.model_type not in ("deepseek_v3", "deepseek_v2"):
        errs.append("model_type %r" % cfg.model_type)
    if cfg.topk_method not in ("noaux_tc", "greedy", "group_limited_greedy"):
        errs.append("topk_method %r" % cfg.topk_method)
    if cfg.scoring_func not in ("sigmoid", "softmax"):
        errs.append("scoring_func %r" % cfg.scoring_func)
    if cfg.topk_method == "noaux_tc" and cfg.scoring_func != "sigmoid":
        errs.append("noaux_tc requires sigmoid scoring")
    if cfg.rope_scaling is not None:
        kind = cfg.rope_scaling.get("type", cfg.rope_scaling.get("rope_type"))
        if kind != "yarn":
            errs.append("rope_scaling type %r (only yarn or null)" % kind)
    if cfg.tie_word_embeddings:
        errs.append("tie_word_embeddings true (the V3 layout stores lm_head separately)")
    qc = cfg.quantization_config
    if qc is not None and (qc.get("quant_method") != "fp8" or qc.get("fmt") != "e4m3"
                           or len(qc.get("weight_block_size") or []) != 2
                           or min(qc["weight_block_size"]) <= 0):
        errs.append("quantization_config %r (only fp8/e4m3 with a positive 2-d weight_block_size)" % qc)
    if cfg.qk_rope_head_dim % 2:
        errs.append("odd qk_rope_head_dim")
    if cfg.num_nextn_predict_layers < 0:
        errs.append("num_nextn_predict_layers < 0")
    if cfg.n_routed_experts is not None and cfg.n_routed_experts % cfg.n_group:
        errs.append("n_routed_experts not a multiple of n_group")
    for f in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "kv_lora_rank",
              "qk_nope_head_dim", "v_head_dim"):
        if getattr(cfg, f) <= 0:
            errs.append("%s <= 0" % f)
    if errs:
        raise ExportError("config not exportable: " + "; ".join(errs))


def expected_tensors(cfg):
    """{name: shape} of every tensor the exported model must hold (docs/model.md §2, shared MTP embed/head)."""
    d, V, H = cfg.hidden_size, cfg.vocab_size, cfg.num_attention_heads
    qk = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim
    exp = {"model.embed_tokens.weight": [V, d], "model.norm.weight": [d], "lm_head.weight": [V, d]}

    def block(p, i):
        exp[p + "input_layernorm.weight"] = [d]
        exp[p + "post_attention_layernorm.weight"] = [d]
        if cfg.q_lora_rank:
            exp[p + "self_attn.q_a_proj.weight"] = [cfg.q_lora_rank, d]
            exp[p + "self_attn.q_a_layernorm.weight"] = [cfg.q_lora_rank]
            exp[p + "self_attn.q_b_proj.weight"] = [H * qk, cfg.q_lora_rank]
        else:
            exp[p + "self_attn.q_proj.weight"] = [H * qk, d]
        exp[p + "self_attn.kv_a_proj_with_mqa.weight"] = [cfg.kv_lora_rank + cfg.qk_rope_head_dim, d]
        exp[p + "self_attn.kv_a_layernorm.weight"] = [cfg.kv_lora_rank]
        exp[p + "self_attn.kv_b_proj.weight"] = [H * (cfg.qk_nope_head_dim + cfg.v_head_dim), cfg.kv_lora_rank]
        exp[p + "self_attn.o_proj.weight"] = [d, H * cfg.v_head_dim]
        if cfg.layer_is_moe(i):
            E, m = cfg.n_routed_experts, cfg.moe_intermediate_size
            exp[p + "mlp.gate.weight"] = [E, d]
            if cfg.topk_method == "noaux_tc":
                exp[p + "mlp.gate.e_score_correction_bias"] = [E]
            if cfg.n_shared_experts:
                s = cfg.n_shared_experts * m
                exp[p + "mlp.shared_experts.gate_proj.weight"] = [s, d]
                exp[p + "mlp.shared_experts.up_proj.weight"] = [s, d]
                exp[p + "mlp.shared_experts.down_proj.weight"] = [d, s]
            for e in range(E):
                exp[p + "mlp.experts.%d.gate_proj.weight" % e] = [m, d]
                exp[p + "mlp.experts.%d.up_proj.weight" % e] = [m, d]
                exp[p + "mlp.experts.%d.down_proj.weight" % e] = [d, m]
        else:
            f = cfg.intermediate_size
            exp[p + "mlp.gate_proj.weight"] = [f, d]
            exp[p + "mlp.up_proj.weight"] = [f, d]
            exp[p + "mlp.down_proj.weight"] = [d, f]

    N = cfg.num_hidden_layers
    for i in range(N):
        block("model.layers.%d." % i, i)
    for k in range(cfg.num_nextn_predict_layers):
        i = N + k
        p = "model.layers.%d." % i
        exp[p + "enorm.weight"] = [d]
        exp[p + "hnorm.weight"] = [d]
        exp[p + "eh_proj.weight"] = [d, 2 * d]
        exp[p + "shared_head.norm.weight"] = [d]
        block(p, i)
    return exp


SHARED_COPIES = ("embed_tokens.weight", "shared_head.head.weight")


# keys of a training config that ModelConfig does not hold: accepted only with the values it implies
IMPLIED = {"hidden_act": "silu", "attention_bias": False}


FP8_CONFIG = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
              "weight_block_size": [128, 128]}


def stored_entries(tensors, block):
    """name -> (dtype, shape, bytes) for the safetensors writer, and name -> float32 tensor of the
    values as stored (dequantised), which verify() compares against. block None: BF16 only."""
    import numpy as np
    from make_fixtures import bf16_round, f32_entry, fp8_quantize, is_fp8_tensor
    entries, stored = {}, {}
    for name, t in tensors.items():
        if name.endswith("e_score_correction_bias"):
            entries[name] = f32_entry(t.float().numpy())
            stored[name] = t.float()
        elif block is not None and is_fp8_tensor(name):
            codes, scale, deq = fp8_quantize(t.to(torch.float64).numpy(), block)
            entries[name] = ("F8_E4M3", tuple(t.shape), codes.tobytes())
            entries[name + "_scale_inv"] = f32_entry(scale)
            stored[name] = torch.from_numpy(deq).float()
        else:
            bits, val = bf16_round(t.to(torch.float64))
            entries[name] = ("BF16", tuple(t.shape), np.ascontiguousarray(bits).tobytes())
            stored[name] = val.float()
    return entries, stored


def export(sd, hf_config, out_dir, verbose=True, fp8=False):
    import dataclasses
    from mtpref.config import ModelConfig
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    for k, v in hf_config.items():
        if k in known:
            continue
        if k == "num_key_value_heads":
            if v != hf_config.get("num_attention_heads"):
                raise ExportError("num_key_value_heads %r != num_attention_heads (MLA)" % v)
        elif k in IMPLIED:
            if v != IMPLIED[k]:
                raise ExportError("config field %s = %r not supported (only %r)" % (k, v, IMPLIED[k]))
        else:
            raise ExportError("config field %r is unknown to ModelConfig: cannot be exported faithfully" % k)
    cfg = ModelConfig.from_dict(dict(hf_config))
    cfg.torch_dtype = "bfloat16"
    if fp8:
        cfg.quantization_config = dict(FP8_CONFIG)
    cfg.bos_token_id, cfg.eos_token_id = 0, 1
    check_config(cfg)
    exp = expected_tensors(cfg)
    N = cfg.num_hidden_layers

    out = {}
    unexpected = []
    for name, t in sd.items():
        if name in exp:
            out[name] = t
            continue
        if name.startswith("model.layers.") and name.endswith(SHARED_COPIES):
            li = int(name.split(".")[2])
            if li >= N:
                ref = sd["model.embed_tokens.weight"] if name.endswith("embed_tokens.weight") else sd["lm_head.weight"]
                if t.data_ptr() != ref.data_ptr() and not torch.equal(t, ref):
                    raise ExportError("%s is not the main model's tensor: the shared-head layout cannot "
                                      "represent it" % name)
                continue  # shared with the main model: not stored
        unexpected.append(name)
    missing = sorted(set(exp) - set(out))
    if missing or unexpected:
        raise ExportError("tensor set mismatch: missing %s; unexpected %s" % (missing[:20], unexpected[:20]))

    tensors = {}
    for name in sorted(out):
        t = out[name].detach().to("cpu")
        if list(t.shape) != exp[name]:
            raise ExportError("%s: shape %s, expected %s" % (name, list(t.shape), exp[name]))
        if not torch.isfinite(t.float()).all():
            raise ExportError("%s has non-finite values" % name)
        if name.endswith("e_score_correction_bias"):
            t = t.to(torch.float32).contiguous()
        else:
            t = t.to(torch.bfloat16).contiguous()
            if not torch.isfinite(t.float()).all():
                raise ExportError("%s overflows BF16" % name)
        tensors[name] = t

    from make_fixtures import write_safetensors
    block = tuple(cfg.quantization_config["weight_block_size"]) if fp8 else None
    entries, stored = stored_entries(tensors, block)
    for name, v in stored.items():
        if not torch.isfinite(v).all():
            raise ExportError("%s is not finite once stored" % name)
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, "model.safetensors.tmp")
    write_safetensors(tmp, entries, metadata={"format": "pt"})
    os.chmod(tmp, 0o644)
    os.replace(tmp, os.path.join(out_dir, "model.safetensors"))
    cfg.save(os.path.join(out_dir, "config.json"))
    n = sum(t.numel() for t in tensors.values())
    size = os.path.getsize(os.path.join(out_dir, "model.safetensors"))
    if verbose:
        n8 = sum(1 for e in entries.values() if e[0] == "F8_E4M3")
        print("exported %d tensors (%d F8_E4M3 with block scales), %d parameters, %.2f MB -> %s"
              % (len(entries), n8, n, size / 1e6, out_dir))
    return dict(tensors=len(entries), params=n, bytes=size, stored=stored)


def verify(sd, hf, out_dir, T=32, stored=None):
    """Round trip: the exported directory, loaded back, must give exactly the logits of the checkpoint
    with its weights rounded to BF16 (or, for FP8, dequantised from the codes the exporter computed:
    `stored`) (same code path, fp32 compute; 1e-4 allows for BLAS summation order)."""
    from evaluate import load_exported
    from mtpref.model import DeepseekV3MTP
    from mtpref.config import ModelConfig
    _, m_exp = load_exported(out_dir)
    ref = DeepseekV3MTP(ModelConfig.from_dict(dict(hf)))
    rsd = {k: (v.float() if k.endswith("e_score_correction_bias") else v.to(torch.bfloat16).float())
           for k, v in sd.items()}
    if stored is not None:
        rsd.update(stored)
    ref.load_state_dict(rsd, strict=False)
    ref.eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, hf["vocab_size"], (1, T), generator=g)
    with torch.no_grad():
        a, b = m_exp(ids), ref(ids)
    diffs = [(a["logits"] - b["logits"]).abs().max().item()]
    diffs += [(x - y).abs().max().item() for x, y in zip(a["mtp_logits"], b["mtp_logits"])]
    if max(diffs) > 1e-4:  # same weights and code; only BLAS summation order may differ
        raise SystemExit("export verification failed: max |logit diff| per output %s" % diffs)
    print("verified: exported model reproduces the BF16-rounded checkpoint (max |logit diff| %.1e, main + %d "
          "MTP depths)" % (max(diffs), len(diffs) - 1))


def load_checkpoint(path):
    ck = torch.load(path, map_location="cpu")
    return ck["model"], ck["hf_config"], ck


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out_dir")
    ap.add_argument("--fp8", action="store_true",
                    help="F8_E4M3 projections with 128x128 block scales, as DeepSeek-V3 ships them")
    args = ap.parse_args()
    sd, hf, _ = load_checkpoint(args.checkpoint)
    try:
        res = export(sd, hf, args.out_dir, fp8=args.fp8)
    except ExportError as e:
        raise SystemExit("export refused: %s" % e)
    verify(sd, hf, args.out_dir, stored=res["stored"] if args.fp8 else None)
    tok = os.path.join(args.out_dir, "tokenizer.json")
    if not os.path.exists(tok):
        print("warning: %s missing (the data engineer writes it)" % tok)


if __name__ == "__main__":
    main()
