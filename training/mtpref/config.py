"""mtpref.config - ModelConfig: the Hugging Face config.json of a DeepSeek-V2/V3-family model.

Field names are exactly those of the HF config.json (docs/model.md §1), so
`ModelConfig.from_json("model/config.json")` and `cfg.save("out/config.json")` round-trip the
files the C engine reads. `to_hf_dict()` adds the bookkeeping keys transformers' DeepseekV3Config
(and DeepseekV2Config) accept: architectures, num_key_value_heads, hidden_act, attention_bias, ...

Usage:
    from mtpref.config import ModelConfig
    cfg = ModelConfig(vocab_size=256, hidden_size=64, ...)
    cfg.save("dir/config.json"); cfg2 = ModelConfig.from_json("dir/config.json")

Helpers that encode the math of docs/model.md §3.3/§4 (YaRN inverse frequencies, cos/sin magnitude
factor, softmax scale) live here too, because the fixture writer records them as golden values.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional


@dataclass
class ModelConfig:
    vocab_size: int = 256                 # rows of embed_tokens / lm_head
    hidden_size: int = 64                 # d
    intermediate_size: int = 96           # width of the dense-layer SwiGLU MLP
    moe_intermediate_size: int = 32       # width of one routed expert (and of one shared-expert unit)
    num_hidden_layers: int = 3            # main-model layers 0..N-1
    num_nextn_predict_layers: int = 2     # D: MTP modules, stored as layers N..N+D-1
    num_attention_heads: int = 4          # H (num_key_value_heads is written equal to it)
    n_shared_experts: Optional[int] = 1   # shared MLP width = n_shared_experts * moe_intermediate_size
    n_routed_experts: Optional[int] = 8   # E; None = no MoE layers at all
    num_experts_per_tok: int = 2          # top-k
    routed_scaling_factor: float = 2.5    # multiplies the routed weights after (optional) renormalisation
    topk_method: str = "noaux_tc"         # "noaux_tc" (V3) | "greedy" | "group_limited_greedy" (V2)
    n_group: int = 4                      # expert groups (contiguous blocks of E/n_group experts)
    topk_group: int = 2                   # groups kept by the group limit
    first_k_dense_replace: int = 1        # layers < this are dense
    moe_layer_freq: int = 1               # layer i >= first_k_dense_replace is MoE iff i % freq == 0
    norm_topk_prob: bool = True           # renormalise the k selected weights to sum 1
    scoring_func: str = "sigmoid"         # "sigmoid" (V3) | "softmax" (V2)
    kv_lora_rank: int = 32                # r_kv: latent width (cached, after kv_a_layernorm)
    q_lora_rank: Optional[int] = 48       # r_q; None = plain q_proj
    qk_nope_head_dim: int = 16            # d_n
    qk_rope_head_dim: int = 8             # d_r (rotated, interleaved pairs)
    v_head_dim: int = 16                  # d_v
    rms_norm_eps: float = 1e-6            # eps of every RMSNorm (see model.py: latent norms too)
    rope_theta: float = 10000.0           # RoPE base b
    rope_scaling: Optional[Dict[str, Any]] = None  # YaRN dict (type, factor, original_max_position_embeddings,
                                                   # beta_fast, beta_slow, mscale, mscale_all_dim) or None
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False     # lm_head shares embed_tokens
    bos_token_id: Optional[int] = 0
    eos_token_id: Optional[int] = 1
    model_type: str = "deepseek_v3"       # "deepseek_v3" | "deepseek_v2"
    quantization_config: Optional[Dict[str, Any]] = None  # {"quant_method":"fp8","fmt":"e4m3",...,"weight_block_size":[bm,bn]}
    torch_dtype: str = "float32"          # dtype of the non-quantised tensors in the checkpoint
    initializer_range: float = 0.02       # std of the default init (training only)

    # ---- derived -----------------------------------------------------------------------------
    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    def layer_is_moe(self, i: int) -> bool:
        """True if layer i (main or MTP, HF index) has a MoE FFN (HF rule, also applied to MTP layers)."""
        return (self.n_routed_experts is not None and i >= self.first_k_dense_replace
                and i % self.moe_layer_freq == 0)

    def validate(self) -> None:
        assert self.topk_method in ("noaux_tc", "greedy", "group_limited_greedy"), self.topk_method
        assert self.scoring_func in ("sigmoid", "softmax"), self.scoring_func
        assert self.qk_rope_head_dim % 2 == 0
        if self.n_routed_experts is not None:
            E, G = self.n_routed_experts, self.n_group
            assert E % G == 0, "n_routed_experts must be a multiple of n_group"
            assert 1 <= self.topk_group <= G
            assert self.num_experts_per_tok <= self.topk_group * (E // G), \
                "top-k larger than the experts left after the group limit"
            if self.topk_method == "noaux_tc" and G > 1:
                assert E // G >= 2, "noaux_tc group score is a top-2 sum: needs >= 2 experts per group"

    # ---- YaRN (docs/model.md §4) ------------------------------------------------------------------
    def yarn(self) -> Optional[Dict[str, Any]]:
        rs = self.rope_scaling
        if not rs:
            return None
        kind = rs.get("type", rs.get("rope_type"))
        if kind != "yarn":
            raise ValueError(f"rope_scaling type {kind!r} not supported (only yarn)")
        return rs

    def rope_inv_freq(self) -> List[float]:
        """theta'_i for i < d_r/2 in float64 (YaRN-blended when rope_scaling is yarn)."""
        D, b = self.qk_rope_head_dim, float(self.rope_theta)
        theta = [b ** (-(2.0 * i) / D) for i in range(D // 2)]
        rs = self.yarn()
        if rs is None:
            return theta
        s = float(rs["factor"])
        L0 = float(rs.get("original_max_position_embeddings", 4096))
        bf, bs = float(rs.get("beta_fast", 32)), float(rs.get("beta_slow", 1))

        def corr(n: float) -> float:
            return D * math.log(L0 / (2 * math.pi * n)) / (2 * math.log(b))

        low = max(math.floor(corr(bf)), 0)
        high = min(math.ceil(corr(bs)), D - 1)
        if low == high:
            high += 0.001
        out = []
        for i in range(D // 2):
            ramp = min(max((i - low) / (high - low), 0.0), 1.0)
            out.append(theta[i] / s * ramp + theta[i] * (1.0 - ramp))
        return out

    @staticmethod
    def _get_mscale(s: float, m: float) -> float:
        return 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0

    def rope_attention_factor(self) -> float:
        """Magnitude factor multiplying cos and sin: get_mscale(s,mscale)/get_mscale(s,mscale_all_dim)."""
        rs = self.yarn()
        if rs is None:
            return 1.0
        s = float(rs["factor"])
        return (self._get_mscale(s, float(rs.get("mscale", 1.0)))
                / self._get_mscale(s, float(rs.get("mscale_all_dim", 1.0))))

    def softmax_scale(self) -> float:
        """qk_head_dim^-1/2, times get_mscale(s, mscale_all_dim)^2 under YaRN when mscale_all_dim != 0."""
        scale = self.qk_head_dim ** -0.5
        rs = self.yarn()
        if rs is not None and rs.get("mscale_all_dim", 0):
            m = self._get_mscale(float(rs["factor"]), float(rs["mscale_all_dim"]))
            scale *= m * m
        return scale

    # ---- config.json -------------------------------------------------------------------------
    def to_hf_dict(self) -> Dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if d["quantization_config"] is None:
            del d["quantization_config"]
        if d["rope_scaling"] is not None:
            rs = dict(d["rope_scaling"])
            kind = rs.get("type", rs.get("rope_type", "yarn"))
            rs["type"] = kind            # the key DeepSeek's own configs use
            rs["rope_type"] = kind       # the key newer transformers uses
            d["rope_scaling"] = rs
        v2 = self.model_type == "deepseek_v2"
        d.update({
            "architectures": ["DeepseekV2ForCausalLM" if v2 else "DeepseekV3ForCausalLM"],
            "num_key_value_heads": self.num_attention_heads,
            "hidden_act": "silu",
            "attention_bias": False,
            "attention_dropout": 0.0,
            "use_cache": True,
            "pretraining_tp": 1,
            "ep_size": 1,
            "aux_loss_alpha": 0.001,
            "seq_aux": True,
            "rope_interleave": True,
            "transformers_version": "4.46.0",
        })
        return d

    @staticmethod
    def normalise_rope(d: Dict[str, Any]) -> Dict[str, Any]:
        """Read rope_scaling and transformers 5's rope_parameters alike: {rope_type, rope_theta, ...};
        rope_type "default" means no scaling; rope_theta may live only inside it (top level null)."""
        d = dict(d)
        params = d.get("rope_parameters") or {}
        if d.get("rope_theta") is None and "rope_theta" in params:
            d["rope_theta"] = params["rope_theta"]
        if d.get("rope_theta") is None:
            d.pop("rope_theta", None)
        if not d.get("rope_scaling") and params:
            rs = {k: v for k, v in params.items() if k != "rope_theta"}
            kind = rs.get("type", rs.get("rope_type"))
            d["rope_scaling"] = None if kind in (None, "default") else rs
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        d = cls.normalise_rope(d)
        kw = {k: v for k, v in d.items() if k in names}
        if kw.get("rope_scaling") is not None:
            kw["rope_scaling"] = dict(kw["rope_scaling"])
        cfg = cls(**kw)
        cfg.validate()
        return cfg

    @classmethod
    def from_json(cls, path: str) -> "ModelConfig":
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def save(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_hf_dict(), f, indent=2, sort_keys=True)
            f.write("\n")
