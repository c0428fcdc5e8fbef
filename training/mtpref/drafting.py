"""mtpref.drafting - the drafts of one speculative step under each MTP wiring convention, computed
from scratch (every module over its whole sequence, causal, no caches), as the reference for the C
engine's incremental drafting (engine/decode_draft.c, engine/wiring.h; spec/decoding.md "MTP wiring").

Conventions (names as in specs and logs):
  draft_hidden        "after_shared_head_norm" (SGLang deepseek_nextn.py) or "before_shared_head_norm"
                      (vLLM deepseek_mtp.py: the layer returns the block output, compute_logits norms it):
                      the hidden a module passes to the next draft step;
  position0_embedding "kept" (SGLang) or "zeroed" (vLLM: inputs_embeds zeroed where position == 0);
  module_hidden       "previous_module" (DeepSeek-V3 paper §2.2) or "main_model" (MiMo NEXTN): the hidden
                      module k >= 2 reads in exact drafting.

Step at pending index m (seq[0..m], the main model has run seq[0..m-1], h = its post-norm hidden):
  chain, module M: rows j = 0..m-1 read (Emb(seq[j+1]), h[j]); draft 1 from row m-1; draft i >= 2 appends
    row m+i-2 reading (Emb(d_{i-1}), g[m+i-3]), g = M's output hidden in the chosen convention.
  exact: module k rows j = 0..m-1 read (Emb(t[j+k]), g_{k-1}[j] or h[j]), t = seq extended by the drafts;
    draft k from row m-1.
Drafts are greedy (argmax, ties to the lower id). Returns the draft logits [K, V] and the drafts.
"""
from __future__ import annotations

from typing import List, Tuple

import torch


def module_forward(model, k: int, tokens: List[int], hidden: torch.Tensor, zero_pos0: bool):
    """Module k over positions 0..T-1 with Emb(tokens[j]) and hidden[j] ([T, d]).
    Returns (logits [T,V], block output [T,d], after shared_head.norm [T,d])."""
    layer = model.mtp_layer(k)
    ids = torch.tensor([tokens], dtype=torch.long)
    emb_mod = layer.embed_tokens if model.mtp_own_embed_head else model.model.embed_tokens
    head = layer.shared_head.head if model.mtp_own_embed_head else model.lm_head
    e = emb_mod(ids)
    if zero_pos0:
        e = e.clone()
        e[:, 0] = 0.0          # vLLM zeroes the embedding before enorm; RMSNorm keeps 0 at 0
    z = layer.eh_proj(torch.cat((layer.enorm(e), layer.hnorm(hidden[None])), dim=-1))
    cos, sin = model._rope(len(tokens), ids.device)
    out, _ = layer(z, cos, sin, model.config.softmax_scale())
    normed = layer.shared_head.norm(out)
    return head(normed)[0], out[0], normed[0]


def _pick(out, normed, draft_hidden: str):
    return normed if draft_hidden == "after_shared_head_norm" else out


def chain_drafts(model, seq: List[int], h: torch.Tensor, K: int, draft_hidden: str,
                 position0: str, module: int = 1) -> Tuple[torch.Tensor, List[int]]:
    m = len(seq) - 1
    tokens, hid = list(seq[1:m + 1]), h[:m]
    rows, drafts = [], []
    for i in range(1, K + 1):
        logits, out, normed = module_forward(model, module, tokens, hid, position0 == "zeroed")
        row = logits[-1]
        d = int(torch.argmax(row))
        rows.append(row)
        drafts.append(d)
        g = _pick(out, normed, draft_hidden)
        tokens = tokens + [d]
        hid = torch.cat((hid, g[-1:]), 0)
    return torch.stack(rows), drafts


def exact_drafts(model, seq: List[int], h: torch.Tensor, K: int, draft_hidden: str,
                 position0: str, module_hidden: str) -> Tuple[torch.Tensor, List[int]]:
    m = len(seq) - 1
    t = list(seq)
    rows, drafts = [], []
    g_prev = h[:m]
    for k in range(1, K + 1):
        tokens = [t[j + k] for j in range(m)]
        hid = h[:m] if module_hidden == "main_model" else g_prev
        logits, out, normed = module_forward(model, k, tokens, hid, position0 == "zeroed")
        row = logits[m - 1]
        d = int(torch.argmax(row))
        rows.append(row)
        drafts.append(d)
        t.append(d)
        g_prev = _pick(out, normed, draft_hidden)
    return torch.stack(rows), drafts
