"""compare_transformers.py - check the mtpref reference against Hugging Face transformers (docs/design.md §11).

Loads tests/fixtures/v3-f32 (config.json as written, rope_interleave true) with transformers'
DeepseekV3ForCausalLM in float32 (eager attention), runs the fixture's tokens, and compares the main-model logits with
  (a) mtpref run in float64 on the same weights, and (b) golden.safetensors["logits"] (F32).
Prints the max abs differences; exits 1 if (a) exceeds --tol (default 1e-4: float32 through 3 layers on
O(1) logits is ~1e-6), 2 if transformers cannot be imported.

Run:
    <python with torch >= 2 and transformers >= 4.51> training/compare_transformers.py [--dir tests/fixtures/v3-f32]
The project's .venv has Debian's torch 1.13, which current transformers refuses, and current torch wheels
pull multi-GB CUDA dependencies; so this does not run in the default environment. Any environment with
torch >= 2 and transformers works: it needs numpy and torch only besides transformers (mtpref runs on it).

Only the main model is compared: transformers has no MTP modules (it ignores model.layers.{N..}.*; the
loader's warning about those unexpected keys is expected). The fixture is generated so that the known
router difference (transformers masks dropped groups with 0.0, mtpref with -inf; docs/model.md §9) cannot
change a choice: every k-th selected biased score is > 0 (make_fixtures.py, hf_safe).
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def fuse_experts_like(ref_sd, hf_sd):
    """Add fused expert tensors to mtpref's per-expert state dict where transformers (>= 5) stores
    experts fused: `mlp.experts.gate_up_proj` = per expert [gate; up] and `mlp.experts.down_proj`,
    stacked over experts. The layout (stacked [E, out, in] or transposed [E, in, out]) is taken from the
    shape transformers allocated, so both conventions work."""
    import torch
    out = dict(ref_sd)
    for key, target in hf_sd.items():
        if key in out or ".mlp.experts." not in key:
            continue
        prefix, kind = key.rsplit(".", 1)
        n_exp = target.shape[0]
        if kind == "gate_up_proj":
            per = [torch.cat([ref_sd[f"{prefix}.{e}.gate_proj.weight"],
                              ref_sd[f"{prefix}.{e}.up_proj.weight"]], 0) for e in range(n_exp)]
        elif kind == "down_proj":
            per = [ref_sd[f"{prefix}.{e}.down_proj.weight"] for e in range(n_exp)]
        else:
            continue
        fused = torch.stack(per)
        if fused.shape != target.shape:
            fused = fused.transpose(1, 2)
        if fused.shape != target.shape:
            raise SystemExit(f"cannot map {key}: transformers wants {tuple(target.shape)}")
        out[key] = fused.contiguous()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=os.path.join(HERE, "..", "tests", "fixtures", "v3-f32"))
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    try:
        import torch
        from transformers import DeepseekV3ForCausalLM
    except Exception as e:  # ImportError, or transformers refusing an old torch
        print(f"compare_transformers: cannot import transformers' DeepseekV3ForCausalLM ({e!r}).\n"
              "Needs torch >= 2 and transformers >= 4.51 (not the project's .venv with torch 1.13).",
              file=sys.stderr)
        return 2
    from make_fixtures import load_reference, read_safetensors_raw

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    cfg, ref = load_reference(args.dir)
    gold = read_safetensors_raw(os.path.join(args.dir, "golden.safetensors"))
    tokens = torch.from_numpy(np.frombuffer(gold["tokens"][2], "<i4").astype(np.int64))[None]
    g_logits = np.frombuffer(gold["logits"][2], "<f4").reshape(gold["logits"][1]).astype(np.float64)

    # float32: transformers' MoE accumulates in the router's float32 and cannot run in float64
    hf = DeepseekV3ForCausalLM.from_pretrained(args.dir, torch_dtype=torch.float32,
                                               attn_implementation="eager")
    hf.eval()
    # transformers may keep the router bias in another dtype; load every main-model tensor exactly as
    # mtpref holds it, so both sides compute from identical values
    ref_sd = fuse_experts_like(ref.state_dict(), hf.state_dict())
    hf_sd = hf.state_dict()
    missing = [k for k in hf_sd if k not in ref_sd]
    if missing:
        print("transformers expects tensors mtpref does not have:", missing[:10], file=sys.stderr)
        return 1
    loaded_diff = max(float((v.double() - ref_sd[k].double()).abs().max()) for k, v in hf_sd.items())
    print(f"weights as loaded by transformers vs mtpref: max |diff| = {loaded_diff:.3e}")
    with torch.no_grad():
        for k, v in hf_sd.items():
            v.copy_(ref_sd[k].to(v.dtype))
        out_hf = hf(input_ids=tokens).logits[0].double().numpy()
        out_ref = ref(tokens, mtp_depth=0)["logits"][0].double().numpy()
    d_ref = float(np.abs(out_hf - out_ref).max())
    d_gold = float(np.abs(out_hf - g_logits).max())
    print(f"{args.dir}: transformers vs mtpref(float64) logits max |diff| = {d_ref:.3e}; "
          f"vs golden.safetensors (F32) = {d_gold:.3e}; logits max |value| = {np.abs(out_ref).max():.3f}")
    print(f"argmax agree: {int((out_hf.argmax(-1) == out_ref.argmax(-1)).sum())}/{out_ref.shape[0]}")
    return 0 if d_ref <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
