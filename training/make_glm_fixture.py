"""make_glm_fixture.py - a glm4_moe_lite (GLM-4.7-Flash) fixture written by transformers itself (issue 24).

A tiny random Glm4MoeLiteForCausalLM is built from transformers' own Glm4MoeLiteConfig and saved with
save_pretrained; an MTP layer is then appended in the layout of the GLM-4.7-Flash release, and
transformers' logits and greedy tokens are stored. The C engine must load the directory as it is and
reproduce both (tests/test_glm_fixture.c). CI reads the committed files only; this script needs torch >= 2
and transformers >= 5.1 (training/setup_transformers_env.sh).

    .venv-hf/bin/python training/make_glm_fixture.py [--out tests/fixtures]

Written (about 0.3 MB in all):
    hf-glm-lite/     save_pretrained(dir) of the 3-layer model (model.safetensors: per-expert tensors, as the
                     release), then, as the release does, the MTP layer as model.layers.3.* in a second shard
                     mtp.safetensors, a model.safetensors.index.json naming the shard of every tensor, and
                     "num_nextn_predict_layers": 1 added to config.json (Glm4MoeLiteConfig has no such key;
                     the release's config.json has it). The release's MTP layer 47 holds a whole MoE decoder
                     layer plus enorm, hnorm, eh_proj [d, 2d], shared_head.norm, shared_head.head [V, d] and
                     embed_tokens [V, d]; here the decoder layer is layer 3 of a 4-layer model built from the
                     same config (transformers' own initialisation and names), the norms are 1 + 0.1 N(0,1),
                     eh_proj is N(0, 0.3^2) and embed_tokens / shared_head.head are copies of the main model's.
    hf-glm-logits.safetensors  tokens I32 [T], logits F32 [T, V] from transformers (float32, eager
                     attention); prompt I32 [P] and greedy I32 [G], transformers' generate(do_sample=False) of
                     G new tokens after the first P tokens; metadata: torch and transformers versions, seed

transformers has no MTP code for glm4_moe_lite (it skips model.layers.47.* on load), so drafts cannot be
compared with transformers; the C test checks instead that MTP decoding returns transformers' greedy tokens.

Choices that make the test sharp:
  * the GLM-4.7-Flash ratios: v_head_dim (16) differs from qk_nope_head_dim (12), as 256 vs 192 in the
    release; one routing group (n_group 1, topk_group 1), routed_scaling_factor 1.8, rope_theta not 10000;
  * rms_norm_eps = 0.05: q_a_layernorm and kv_a_layernorm use a fixed 1e-6 in transformers; using
    rms_norm_eps there misses the logits by far more than the tolerance;
  * mlp_layer_types is what transformers writes (["dense", "sparse", "sparse"]); there is no
    first_k_dense_replace in the saved config, so an engine that ignored mlp_layer_types would make layer 0
    MoE and fail to find its experts;
  * initializer_range 0.3 keeps activations O(1) so logits are not flat; norms are 1 + 0.1 N(0, 1);
  * e_score_correction_bias uniform in [0, 0.2) (nonzero).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import Glm4MoeLiteConfig, Glm4MoeLiteForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 24
T = 16          # tokens of the logits prompt
P, G = 6, 10    # greedy: prompt length, new tokens


def config(layers: int) -> Glm4MoeLiteConfig:
    return Glm4MoeLiteConfig(
        vocab_size=96, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
        num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
        n_shared_experts=1, n_routed_experts=8, num_experts_per_tok=2, n_group=1, topk_group=1,
        routed_scaling_factor=1.8, kv_lora_rank=16, q_lora_rank=24, qk_nope_head_dim=12,
        qk_rope_head_dim=4, v_head_dim=16, max_position_embeddings=64, rms_norm_eps=0.05,
        initializer_range=0.3, tie_word_embeddings=False, bos_token_id=0, eos_token_id=1,
        rope_parameters={"rope_type": "default", "rope_theta": 100.0})


def build(layers: int, seed: int) -> Glm4MoeLiteForCausalLM:
    torch.manual_seed(seed)
    model = Glm4MoeLiteForCausalLM(config(layers)).float().eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):      # norms away from 1 so a wrong weight shows
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.2 * torch.rand(b.shape, generator=gen))
    model.config._attn_implementation = "eager"
    return model


def mtp_layer(main: dict, n_layers: int) -> dict:
    """model.layers.<n_layers>.* in the release's layout (see the module docstring)."""
    donor = build(n_layers + 1, SEED + 7)
    with tempfile.TemporaryDirectory() as tmp:
        donor.save_pretrained(tmp)
        saved = load_file(os.path.join(tmp, "model.safetensors"))
    prefix = f"model.layers.{n_layers}."
    out = {k: v.contiguous() for k, v in saved.items() if k.startswith(prefix)}
    assert any(".mlp.experts.0.gate_proj" in k for k in out), "the MTP layer must be MoE"
    d = donor.config.hidden_size
    gen = torch.Generator().manual_seed(SEED + 8)
    for norm in ("enorm", "hnorm", "shared_head.norm"):
        out[prefix + norm + ".weight"] = 1.0 + 0.1 * torch.randn(d, generator=gen)
    out[prefix + "eh_proj.weight"] = 0.3 * torch.randn(d, 2 * d, generator=gen)
    out[prefix + "embed_tokens.weight"] = main["model.embed_tokens.weight"].clone()
    out[prefix + "shared_head.head.weight"] = main["lm_head.weight"].clone()
    return out


def append_mtp(d: str, n_layers: int) -> None:
    main = load_file(os.path.join(d, "model.safetensors"))
    mtp = mtp_layer(main, n_layers)
    save_file(mtp, os.path.join(d, "mtp.safetensors"), metadata={"format": "pt"})
    weight_map = {k: "model.safetensors" for k in main}
    weight_map.update({k: "mtp.safetensors" for k in mtp})
    size = sum(t.numel() * t.element_size() for t in list(main.values()) + list(mtp.values()))
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": size}, "weight_map": dict(sorted(weight_map.items()))},
                  f, indent=2)
    path = os.path.join(d, "config.json")
    cfg = json.load(open(path))
    cfg["num_nextn_predict_layers"] = 1
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "fixtures"))
    a = ap.parse_args()
    model = build(3, SEED)
    assert model.config.mlp_layer_types == ["dense", "sparse", "sparse"]
    gen = torch.Generator().manual_seed(SEED + 1)
    tokens = torch.randint(2, model.config.vocab_size, (1, T), generator=gen)
    with torch.no_grad():
        logits = model(tokens).logits[0].float().contiguous()
        out = model.generate(tokens[:, :P], max_new_tokens=G, min_new_tokens=G, do_sample=False,
                             pad_token_id=0)
    greedy = out[0, P:].to(torch.int32).contiguous()
    d = os.path.join(a.out, "hf-glm-lite")
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d)
    append_mtp(d, 3)
    # transformers must still load the directory (it skips the MTP layer) and give the same logits.
    again = Glm4MoeLiteForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
    again.config._attn_implementation = "eager"
    with torch.no_grad():
        assert torch.equal(again(tokens).logits[0], logits), "reloaded model disagrees"
    meta = {"torch": torch.__version__, "transformers": transformers.__version__, "seed": str(SEED),
            "source": "training/make_glm_fixture.py"}
    save_file({"tokens": tokens[0].to(torch.int32).contiguous(), "logits": logits,
               "prompt": tokens[0, :P].to(torch.int32).contiguous(), "greedy": greedy},
              os.path.join(a.out, "hf-glm-logits.safetensors"), metadata=meta)
    print("wrote", d, sorted(os.listdir(d)))
    print("torch", torch.__version__, "transformers", transformers.__version__,
          "logits max |x|", float(logits.abs().max()), "greedy", greedy.tolist())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
