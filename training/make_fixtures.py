"""make_fixtures.py - golden fixtures for the C engine's tests (docs/design.md §11 and §14.3).

Run (deterministic; rewrites tests/fixtures/<variant>/ for every variant, ~10 s):
    .venv/bin/python training/make_fixtures.py [--out tests/fixtures] [--only v3-f32,...]

Each variant directory is a Hugging Face model directory plus the expected tensors:
    config.json          the HF config (ModelConfig.to_hf_dict())
    model.safetensors    the weights as stored (F32, BF16, or BF16 + F8_E4M3 with F32 weight_scale_inv)
    golden.safetensors   expected tensors, computed in float64 by training/mtpref from the weights exactly
                         as stored (bf16 upcast; fp8 dequantised), written as F32 (router indices I32)

Variants (tiny dims; see VARIANTS below for every field):
    v3-f32        noaux_tc (sigmoid + bias, 4 groups keep 2), q LoRA, YaRN (factor 4, orig 16), F32, 2 MTP
    v3-bf16       same family, BF16, top-3, MTP modules with their own embed_tokens and shared_head.head
    v3-fp8        BF16 + F8_E4M3 projections with [32,32] blocks (q_a 48 rows and kv_a 40 rows are partial
                  blocks), vocab 320
    v2-f32        softmax greedy (n_group 1), plain q_proj, no YaRN, no renormalisation, scaling 1.0, no
                  bias, 2 shared experts
    v2-group-f32  softmax group_limited_greedy (4 groups keep 2, group score = max), YaRN with mscale 1.0
                  and mscale_all_dim 0.707 (so cos/sin carry a magnitude factor != 1), scaling 2.0
  The v2 variants use hidden 32 / moe_intermediate 16 / intermediate 64 to keep all fixtures < 5 MB.

golden.safetensors names (T tokens; T' = T for main layers, T-K for MTP module K = layer N+K-1):
    tokens I32 [T]; logits [T,V]; hidden [T,d] (after model.norm); rope.inv_freq [dr/2];
    rope.attention_factor [1] (the YaRN magnitude factor on cos and sin); attn.softmax_scale [1];
    layers.L.attn_norm / attn_out / ffn_norm / ffn_out / residual  [T',d]
    layers.L.kv_cache [T', rkv+dr]  (kv_a_layernorm output, then RoPE-rotated k_pe, interleaved pairs)
    layers.L.router_idx I32 [T',k], layers.L.router_weights [T',k]   (MoE layers; slots in descending
        selection score, ties to the lower id; weights include renormalisation and routed_scaling_factor)
    mtp.K.input [T-K,d] (eh_proj output), mtp.K.hidden [T-K,d] (after shared_head.norm), mtp.K.logits [T-K,V]
  Metadata (__metadata__, strings): variant, seed, routing_margin (the smallest gap between selection
  scores at any decision the router makes: group cut, top-k cut, and slot order; seeds are searched until
  it is >= MIN_MARGIN so a float32 engine cannot flip a choice), bias_changed (tokens whose selection
  differs from the unbiased one, noaux_tc only).

Random weights: embeddings N(0,1); linear weights N(0, 1/fan_in); norm weights 1 + 0.1 N(0,1); router
N(0, 1/d); e_score_correction_bias 0.15 N(0,1). Activations stay O(1).

FP8: per [bm,bn] block, scale = max|block| / 448 (rounded to float32; 1.0 for an all-zero block), q =
round-to-nearest-even of W/scale into float8_e4m3fn (encoder below, verified exhaustively against decoding
all 256 codes at every run), stored as weight_scale_inv = scale; dequantised W = decode(q) * scale.
No activation quantisation anywhere.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mtpref import DeepseekV3MTP, ModelConfig  # noqa: E402

T_TOKENS = 12
GLOBAL_NAMES = ("rope.inv_freq", "rope.attention_factor", "attn.softmax_scale")   # no batch dim
MIN_MARGIN = 2e-4


# ---------------------------------------------------------------------------------------------
# float8_e4m3fn
# ---------------------------------------------------------------------------------------------
def fp8_decode(codes: np.ndarray) -> np.ndarray:
    """uint8 codes -> float64 values (NaN for 0x7F/0xFF)."""
    c = codes.astype(np.int64)
    s = np.where(c & 0x80, -1.0, 1.0)
    e = (c >> 3) & 15
    m = c & 7
    v = np.where(e == 0, np.ldexp(m / 8.0, -6), np.ldexp(1.0 + m / 8.0, e - 7))
    v = np.where((c & 0x7F) == 0x7F, np.nan, v)
    return s * v


_POS_CODES = np.arange(0x7F, dtype=np.uint8)          # 0x00..0x7E: finite non-negative, ascending
_POS_VALS = fp8_decode(_POS_CODES)


def fp8_encode(x: np.ndarray) -> np.ndarray:
    """float64 -> e4m3fn codes, round to nearest, ties to even mantissa; |x| > 448 saturates to 448."""
    x = np.asarray(x, dtype=np.float64)
    assert not np.isnan(x).any()
    a = np.minimum(np.abs(x), 448.0)
    hi = np.clip(np.searchsorted(_POS_VALS, a, side="left"), 0, len(_POS_VALS) - 1)
    lo = np.maximum(hi - 1, 0)
    dlo, dhi = a - _POS_VALS[lo], _POS_VALS[hi] - a
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (_POS_CODES[hi] % 2 == 0))
    code = np.where(pick_hi, _POS_CODES[hi], _POS_CODES[lo]).astype(np.uint8)
    code = np.where(a == _POS_VALS[hi], _POS_CODES[hi], code).astype(np.uint8)
    return np.where(np.signbit(x) & (code != 0), code | 0x80, code).astype(np.uint8)


def fp8_selfcheck() -> None:
    """Exhaustive check of the encoder against decoding all 256 codes."""
    allc = np.arange(256, dtype=np.uint8)
    vals = fp8_decode(allc)
    assert np.isnan(vals[0x7F]) and np.isnan(vals[0xFF])
    assert vals[0x7E] == 448.0 and vals[0x01] == 2.0 ** -9 and vals[0x08] == 2.0 ** -6
    fin = ~np.isnan(vals)
    rt = fp8_encode(vals[fin])
    exp = allc[fin].copy()
    exp[exp == 0x80] = 0x00                                    # -0 encodes as +0
    assert (rt == exp).all(), "encode(decode(c)) != c"
    # every midpoint between neighbours ties to the even code; just off the midpoint goes to the nearer
    for sign in (1.0, -1.0):
        for i in range(len(_POS_VALS) - 1):
            a, b = _POS_VALS[i], _POS_VALS[i + 1]
            mid = (a + b) / 2
            even = i if i % 2 == 0 else i + 1
            got = fp8_encode(np.array([sign * mid]))[0] & 0x7F
            assert got == even, (i, got)
            eps = (b - a) * 1e-6
            assert fp8_encode(np.array([sign * (mid - eps)]))[0] & 0x7F == i
            assert fp8_encode(np.array([sign * (mid + eps)]))[0] & 0x7F == i + 1
    assert fp8_encode(np.array([1e6]))[0] == 0x7E and fp8_encode(np.array([-1e6]))[0] == 0xFE
    # brute force on random values: the chosen code is a nearest one
    r = np.random.default_rng(0).uniform(-460, 460, 20000) * np.random.default_rng(1).choice(
        [1, 1e-1, 1e-2, 1e-3], 20000)
    dq = fp8_decode(fp8_encode(r))
    best = np.abs(np.clip(r, -448, 448)[:, None] - vals[fin][None, :]).min(1)
    assert np.allclose(np.abs(np.clip(r, -448, 448) - dq), best, rtol=0, atol=0)


def fp8_quantize(w: np.ndarray, block):
    """w float64 [M,N] -> (codes uint8 [M,N], scale_inv float32 [ceil(M/bm), ceil(N/bn)], dequant f64)."""
    bm, bn = block
    M, N = w.shape
    sm, sn = -(-M // bm), -(-N // bn)
    scale = np.zeros((sm, sn), np.float32)
    codes = np.zeros((M, N), np.uint8)
    deq = np.zeros((M, N), np.float64)
    for i in range(sm):
        for j in range(sn):
            blk = w[i * bm:(i + 1) * bm, j * bn:(j + 1) * bn]
            amax = np.abs(blk).max()
            s = np.float32(amax / 448.0) if amax > 0 else np.float32(1.0)
            scale[i, j] = s
            q = fp8_encode(blk / np.float64(s))
            codes[i * bm:(i + 1) * bm, j * bn:(j + 1) * bn] = q
            deq[i * bm:(i + 1) * bm, j * bn:(j + 1) * bn] = fp8_decode(q) * np.float64(s)
    return codes, scale, deq


FP8_SUFFIXES = ("q_proj.weight", "q_a_proj.weight", "q_b_proj.weight", "kv_a_proj_with_mqa.weight",
                "kv_b_proj.weight", "o_proj.weight", "gate_proj.weight", "up_proj.weight",
                "down_proj.weight")


def is_fp8_tensor(name: str) -> bool:
    """Which tensors docs/model.md §2.5 quantises (eh_proj, shared_head, router, norms, embeddings are not)."""
    return name.endswith(FP8_SUFFIXES)


# ---------------------------------------------------------------------------------------------
# safetensors writer (own: torch 1.13 / numpy have no float8)
# ---------------------------------------------------------------------------------------------
_DT_SIZE = {"F32": 4, "I32": 4, "BF16": 2, "F8_E4M3": 1}


def write_safetensors(path: str, tensors: dict, metadata: dict | None = None) -> None:
    """tensors: name -> (dtype string, shape tuple, raw little-endian bytes).

    Order: element size descending, then name (like the reference writer), so every tensor is
    naturally aligned relative to the data buffer; header padded with spaces to a multiple of 8."""
    names = sorted(tensors, key=lambda n: (-_DT_SIZE[tensors[n][0]], n))
    header, off, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for n in names:
        dt, shape, raw = tensors[n]
        assert len(raw) == int(np.prod(shape, dtype=np.int64)) * _DT_SIZE[dt], n
        header[n] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def read_safetensors_raw(path: str) -> dict:
    """name -> (dtype, shape, bytes); used to check what was written."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = (v["dtype"], tuple(v["shape"]), data[b:e])
    return out


def f32_entry(a) -> tuple:
    a = np.ascontiguousarray(np.asarray(a, dtype="<f4"))
    return ("F32", a.shape, a.tobytes())


def i32_entry(a) -> tuple:
    a = np.ascontiguousarray(np.asarray(a, dtype="<i4"))
    return ("I32", a.shape, a.tobytes())


def bf16_round(t: torch.Tensor):
    """float64 tensor -> (bf16 bits as <u2 numpy, float64 values exactly representable in bf16)."""
    b = t.to(torch.bfloat16)
    bits = b.view(torch.int16).numpy().view("<u2").copy()
    return bits, b.to(torch.float64)


# ---------------------------------------------------------------------------------------------
# variants
# ---------------------------------------------------------------------------------------------
def _yarn(mscale, mscale_all_dim):
    return {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16, "beta_fast": 32,
            "beta_slow": 1, "mscale": mscale, "mscale_all_dim": mscale_all_dim}


V3_BASE = dict(vocab_size=256, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
               num_hidden_layers=3, num_nextn_predict_layers=2, num_attention_heads=4,
               n_shared_experts=1, n_routed_experts=8, num_experts_per_tok=2, routed_scaling_factor=2.5,
               topk_method="noaux_tc", n_group=4, topk_group=2, first_k_dense_replace=1, moe_layer_freq=1,
               norm_topk_prob=True, scoring_func="sigmoid", kv_lora_rank=32, q_lora_rank=48,
               qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, rms_norm_eps=1e-6,
               rope_theta=10.0, rope_scaling=_yarn(1.0, 1.0), max_position_embeddings=64,
               tie_word_embeddings=False, bos_token_id=0, eos_token_id=1, model_type="deepseek_v3")
# rope_theta 10 with d_r 8 and L0 16 puts the YaRN ramp at low 0, high 2: ramp(1) = 0.5 is a real blend.

V2_BASE = dict(V3_BASE, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
               model_type="deepseek_v2", scoring_func="softmax", norm_topk_prob=False)

VARIANTS = {
    "v3-f32": dict(cfg=dict(V3_BASE, torch_dtype="float32"), storage="f32", own=False, seed=1000, hf_safe=True),
    "v3-bf16": dict(cfg=dict(V3_BASE, torch_dtype="bfloat16", num_experts_per_tok=3,
                             rope_scaling=_yarn(0.707, 0.707)),
                    storage="bf16", own=True, seed=2000),
    "v3-fp8": dict(cfg=dict(V3_BASE, torch_dtype="bfloat16", vocab_size=320,
                            quantization_config={"quant_method": "fp8", "fmt": "e4m3",
                                                 "activation_scheme": "dynamic",
                                                 "weight_block_size": [32, 32]}),
                   storage="fp8", own=False, seed=3000),
    "v2-f32": dict(cfg=dict(V2_BASE, torch_dtype="float32", topk_method="greedy", n_group=1, topk_group=1,
                            q_lora_rank=None, rope_scaling=None, rope_theta=10000.0,
                            max_position_embeddings=2048, routed_scaling_factor=1.0, n_shared_experts=2),
                   storage="f32", own=False, seed=4000),
    "v2-group-f32": dict(cfg=dict(V2_BASE, torch_dtype="float32", topk_method="group_limited_greedy",
                                  n_group=4, topk_group=2, rope_scaling=_yarn(1.0, 0.707),
                                  routed_scaling_factor=2.0),
                         storage="f32", own=False, seed=5000),
}


def randomize(model: DeepseekV3MTP, gen: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:                                        # every RMSNorm weight
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
            else:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) / math.sqrt(p.shape[1]))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.15 * torch.randn(b.shape, generator=gen, dtype=torch.float64).float())


def store_weights(model: DeepseekV3MTP, storage: str, block):
    """Round the float64 weights to the storage format, load the stored values back into the model,
    and return the safetensors entries."""
    entries = {}
    sd = model.state_dict()
    new = {}
    for name, t in sd.items():
        t64 = t.detach().to(torch.float64)
        if name.endswith("e_score_correction_bias"):
            entries[name] = f32_entry(t.float().numpy())            # always F32
            continue
        if storage == "f32":
            a = t64.numpy().astype(np.float32)
            entries[name] = f32_entry(a)
            new[name] = torch.from_numpy(a.astype(np.float64))
        elif storage == "bf16" or (storage == "fp8" and not is_fp8_tensor(name)):
            bits, val = bf16_round(t64)
            entries[name] = ("BF16", tuple(t.shape), bits.tobytes())
            new[name] = val
        else:
            codes, scale, deq = fp8_quantize(t64.numpy(), block)
            entries[name] = ("F8_E4M3", tuple(t.shape), codes.tobytes())
            entries[name + "_scale_inv"] = f32_entry(scale)
            new[name] = torch.from_numpy(deq)
    with torch.no_grad():
        for name, v in new.items():
            sd[name].copy_(v)
    return entries


@torch.no_grad()
def routing_report(model: DeepseekV3MTP, col: dict):
    """(smallest decision margin over every MoE layer and token, tokens whose choice the bias changed,
    tokens whose k-th selected score is <= 0, where a 0.0 group mask (HF) would choose differently)."""
    cfg = model.config
    E, G, K = cfg.n_routed_experts, cfg.n_group, cfg.num_experts_per_tok
    margin, changed, nonpos = float("inf"), 0, 0
    for L in model.moe_layer_indices():
        gate = model.model.layers[L].mlp.gate
        x = col[f"layers.{L}.ffn_norm"][0]
        _, _, sel = gate(x)
        sel = sel.numpy()
        logits = (x @ gate.weight.T).numpy()
        for n in range(sel.shape[0]):
            s = sel[n]
            allowed = np.ones(E, bool)
            if cfg.topk_method != "greedy" and G > 1:
                g = s.reshape(G, -1)
                gs = (np.sort(g, 1)[:, ::-1][:, :2].sum(1) if cfg.topk_method == "noaux_tc" else g.max(1))
                o = np.sort(gs)[::-1]
                margin = min(margin, o[cfg.topk_group - 1] - o[cfg.topk_group])
                keep = np.argsort(-gs, kind="stable")[:cfg.topk_group]
                allowed = np.repeat(np.isin(np.arange(G), keep), E // G)
            cand = np.sort(s[allowed])[::-1]
            top = cand[:K + 1] if len(cand) > K else cand[:K]
            if cand[K - 1] <= 0 and cfg.topk_method != "greedy" and G > 1:
                nonpos += 1        # HF/transformers mask with 0.0, not -inf: their choice may differ here
            margin = min(margin, float(np.min(top[:-1] - top[1:])))
            if cfg.topk_method == "noaux_tc":
                # would the unbiased scores have picked a different set?
                u = 1 / (1 + np.exp(-logits[n]))
                if G > 1:
                    gu = u.reshape(G, -1)
                    gsu = np.sort(gu, 1)[:, ::-1][:, :2].sum(1)
                    keepu = np.argsort(-gsu, kind="stable")[:cfg.topk_group]
                    u = np.where(np.repeat(np.isin(np.arange(G), keepu), E // G), u, -np.inf)
                bi = set(col[f"layers.{L}.router_idx"][0, n].tolist())
                if set(np.argsort(-u, kind="stable")[:K].tolist()) != bi:
                    changed += 1
    return margin, changed, nonpos


def make_variant(name: str, spec: dict, outdir: str) -> dict:
    cfg = ModelConfig(**spec["cfg"])
    block = (cfg.quantization_config or {}).get("weight_block_size", [128, 128])
    for attempt in range(200):
        seed = spec["seed"] + attempt
        gen = torch.Generator().manual_seed(seed)
        model = DeepseekV3MTP(cfg, mtp_own_embed_head=spec["own"]).double()
        randomize(model, gen)
        entries = store_weights(model, spec["storage"], block)
        tokens = torch.randint(0, cfg.vocab_size, (1, T_TOKENS), generator=gen)
        tokens[0, 0] = cfg.bos_token_id
        col: dict = {}
        with torch.no_grad():
            model(tokens, collect=col)
        margin, changed, nonpos = routing_report(model, col)
        if (margin >= MIN_MARGIN and (cfg.topk_method != "noaux_tc" or changed > 0)
                and not (spec.get("hf_safe") and nonpos)):
            break
    else:
        raise RuntimeError(f"{name}: no seed with routing margin >= {MIN_MARGIN}")

    vdir = os.path.join(outdir, name)
    os.makedirs(vdir, exist_ok=True)
    cfg.save(os.path.join(vdir, "config.json"))
    write_safetensors(os.path.join(vdir, "model.safetensors"), entries, {"format": "pt"})

    golden = {"tokens": i32_entry(tokens[0].numpy())}
    for k, v in col.items():
        a = v.numpy()
        if k not in GLOBAL_NAMES:
            a = a[0]                                                 # drop the batch dim
        golden[k] = i32_entry(a) if k.endswith("router_idx") else f32_entry(a)
    meta = {"variant": name, "seed": seed, "routing_margin": f"{margin:.6g}", "bias_changed": changed,
            "nonpositive_kth_score": nonpos,
            "generator": "training/make_fixtures.py"}
    write_safetensors(os.path.join(vdir, "golden.safetensors"), golden, meta)
    verify_written(vdir, cfg, model, spec)
    return {"seed": seed, "margin": margin, "bias_changed": changed, "nonpos": nonpos,
            "n_golden": len(golden), "n_weights": len(entries)}


def load_reference(vdir: str):
    """A model directory written here -> (ModelConfig, float64 DeepseekV3MTP holding the stored weights
    exactly: bf16 upcast, fp8 dequantised with weight_scale_inv). Own MTP embed/head are detected."""
    cfg = ModelConfig.from_json(os.path.join(vdir, "config.json"))
    raw = read_safetensors_raw(os.path.join(vdir, "model.safetensors"))
    own = f"model.layers.{cfg.num_hidden_layers}.embed_tokens.weight" in raw
    model = DeepseekV3MTP(cfg, mtp_own_embed_head=own).double()
    sd = model.state_dict()
    fp8 = {n for n in sd if raw.get(n, ("",))[0] == "F8_E4M3"}
    expect = set(sd) | {n + "_scale_inv" for n in fp8}
    assert set(raw) == expect, set(raw) ^ expect
    bm, bn = (cfg.quantization_config or {}).get("weight_block_size", [128, 128])
    with torch.no_grad():
        for n, t in sd.items():
            dt, shape, b = raw[n]
            assert tuple(shape) == tuple(t.shape), n
            if dt == "F32":
                a = np.frombuffer(b, "<f4").astype(np.float64)
            elif dt == "BF16":
                a = (np.frombuffer(b, "<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
            elif dt == "F8_E4M3":
                q = fp8_decode(np.frombuffer(b, np.uint8)).reshape(shape)
                sdt, sshape, sb = raw[n + "_scale_inv"]
                assert sdt == "F32" and tuple(sshape) == (-(-shape[0] // bm), -(-shape[1] // bn)), n
                sc = np.frombuffer(sb, "<f4").reshape(sshape).astype(np.float64)
                a = q * np.repeat(np.repeat(sc, bm, 0), bn, 1)[:shape[0], :shape[1]]
            else:
                raise ValueError(f"{n}: dtype {dt}")
            t.copy_(torch.from_numpy(np.asarray(a).reshape(shape)))
    return cfg, model


def verify_written(vdir: str, cfg: ModelConfig, model: DeepseekV3MTP, spec: dict) -> None:
    """Reload config + weights from disk into a fresh float64 model; its outputs must equal golden."""
    cfg2, m2 = load_reference(vdir)
    assert cfg2.to_hf_dict() == cfg.to_hf_dict()
    assert m2.mtp_own_embed_head == spec["own"]
    gold = read_safetensors_raw(os.path.join(vdir, "golden.safetensors"))
    toks = torch.from_numpy(np.frombuffer(gold["tokens"][2], "<i4").astype(np.int64))[None]
    col: dict = {}
    with torch.no_grad():
        m2(toks, collect=col)
    for k, v in col.items():
        dt, shape, b = gold[k]
        g = np.frombuffer(b, "<i4" if dt == "I32" else "<f4").reshape(shape)
        a = v.numpy()
        if k not in GLOBAL_NAMES:
            a = a[0]
        assert a.shape == g.shape, k
        assert np.array_equal(a.astype(g.dtype), g), f"{vdir}: {k} differs after reload"
    # the stock safetensors reader accepts the files (F8 has no numpy/torch-1.13 dtype: header only)
    try:
        from safetensors import safe_open
        fw = "pt"
        with safe_open(os.path.join(vdir, "golden.safetensors"), framework=fw) as f:
            assert set(f.keys()) == set(gold)
        if spec["storage"] != "fp8":
            with safe_open(os.path.join(vdir, "model.safetensors"), framework=fw) as f:
                sd2 = m2.state_dict()
                for k in f.keys():
                    assert torch.equal(f.get_tensor(k).double(), sd2[k].double()), k
    except ImportError:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                  "tests", "fixtures"))
    ap.add_argument("--only", default="", help="comma-separated variant names")
    args = ap.parse_args()
    torch.set_num_threads(1)
    fp8_selfcheck()
    names = [n for n in VARIANTS if not args.only or n in args.only.split(",")]
    for n in names:
        r = make_variant(n, VARIANTS[n], args.out)
        print(f"{n}: seed {r['seed']} routing margin {r['margin']:.3g} bias-changed tokens "
              f"{r['bias_changed']} nonpositive-kth {r['nonpos']} weights {r['n_weights']} golden {r['n_golden']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
