"""make_transformers_fixture.py - a golden fixture written by Hugging Face transformers itself (issue 11).

A tiny random DeepseekV3ForCausalLM is built from transformers' own DeepseekV3Config and saved with
save_pretrained, then transformers' logits for a fixed prompt are stored. The C engine must load both
checkpoints as they are and reproduce the logits (tests/test_transformers_fixture.c). CI reads the
committed files only; this script needs torch >= 2 and transformers >= 5 (training/setup_transformers_env.sh).

    .venv-hf/bin/python training/make_transformers_fixture.py [--out tests/fixtures]

Written (about 0.5 MB in all):
    hf-v3-default/   save_pretrained(dir) in the default format: per-expert tensors, config.json with
                     rope_parameters (YaRN) and rope_theta null, num_nextn_predict_layers 1 (transformers'
                     default) but no MTP tensors at all (transformers never saves them)
    hf-v3-fused/     the same weights with save_pretrained(dir, save_original_format=False): transformers 5's
                     fused experts (mlp.experts.gate_up_proj [E, 2I, d], mlp.experts.down_proj [E, d, I])
    hf-v3-logits.safetensors  tokens I32 [T], logits F32 [T, V] from transformers (float32, eager
                     attention); metadata: torch and transformers versions, seed
Generated with torch 2.15.0+cu132 and transformers 5.24.0 (the versions are also in the metadata).

Choices that make the test sharp:
  * rms_norm_eps = 0.05: transformers (like DeepSeek's reference) builds q_a_layernorm and kv_a_layernorm
    with a fixed eps 1e-6, every other norm with rms_norm_eps; an engine that used rms_norm_eps for the
    latent norms misses the logits by far more than the tolerance.
  * initializer_range 0.3 keeps activations O(1) so logits are not flat.
  * e_score_correction_bias uniform in [0, 0.2): nonzero, and every biased sigmoid score stays > 0, so the
    known difference in masking dropped groups (transformers 0.0, the engine -inf; docs/model.md §9) cannot
    change a choice.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil

import torch
import transformers
from safetensors.torch import save_file
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 11
T = 16


def build() -> DeepseekV3ForCausalLM:
    cfg = DeepseekV3Config(
        vocab_size=96, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
        num_hidden_layers=3, first_k_dense_replace=1, num_attention_heads=2, num_key_value_heads=2,
        n_shared_experts=1, n_routed_experts=8, num_experts_per_tok=2, n_group=4, topk_group=2,
        routed_scaling_factor=2.5, kv_lora_rank=16, q_lora_rank=24, qk_nope_head_dim=8,
        qk_rope_head_dim=4, v_head_dim=8, max_position_embeddings=64, rms_norm_eps=0.05,
        initializer_range=0.3, tie_word_embeddings=False, bos_token_id=0, eos_token_id=1,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10.0, "factor": 4.0,
                         "original_max_position_embeddings": 16, "beta_fast": 32.0,
                         "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0})
    assert cfg.num_nextn_predict_layers == 1  # transformers' default: announced, never saved
    torch.manual_seed(SEED)
    model = DeepseekV3ForCausalLM(cfg).float().eval()
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):      # norms away from 1 so a wrong weight shows
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.2 * torch.rand(b.shape, generator=gen))
    model.config._attn_implementation = "eager"
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "fixtures"))
    a = ap.parse_args()
    model = build()
    gen = torch.Generator().manual_seed(SEED + 1)
    tokens = torch.randint(2, model.config.vocab_size, (1, T), generator=gen)
    with torch.no_grad():
        logits = model(tokens).logits[0].float().contiguous()
    for sub, kw in (("hf-v3-default", {}), ("hf-v3-fused", {"save_original_format": False})):
        d = os.path.join(a.out, sub)
        shutil.rmtree(d, ignore_errors=True)
        model.save_pretrained(d, **kw)
        names = json.load(open(os.path.join(d, "config.json")))
        print(sub, sorted(os.listdir(d)), "rope_parameters", names.get("rope_parameters"))
    meta = {"torch": torch.__version__, "transformers": transformers.__version__, "seed": str(SEED),
            "source": "training/make_transformers_fixture.py"}
    save_file({"tokens": tokens[0].to(torch.int32).contiguous(), "logits": logits},
              os.path.join(a.out, "hf-v3-logits.safetensors"), metadata=meta)
    print("torch", torch.__version__, "transformers", transformers.__version__,
          "logits max |x|", float(logits.abs().max()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
