"""mtpref - PyTorch reference of the DeepSeek-V2/V3 architecture with MTP modules (docs/model.md).

    from mtpref import ModelConfig, DeepseekV3MTP, mtp_loss
    model = DeepseekV3MTP(cfg, mtp_own_embed_head=False)
    out = model(input_ids)                      # dict: logits, hidden, mtp_logits, mtp_hidden, router_stats
    loss, parts = mtp_loss(out, input_ids, lambda_mtp=0.3)

See model.py for the exact semantics (eps, RoPE layout, routing, tie-breaking, MTP wiring).
Self-check: .venv/bin/python training/mtpref/selftest.py
"""
from .config import ModelConfig
from .model import DeepseekV3MTP, mtp_loss, RMSNorm, Gate, MoE, MLA, MLP, DecoderLayer

__all__ = ["ModelConfig", "DeepseekV3MTP", "mtp_loss", "RMSNorm", "Gate", "MoE", "MLA", "MLP",
           "DecoderLayer"]
