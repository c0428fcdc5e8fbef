"""mtpref.model - PyTorch reference of the DeepSeek-V2/V3 architecture with MTP modules.

Written from the equations of docs/model.md (§3 MLA, §4 YaRN, §5 MoE routing) and the MTP wiring of
docs/design.md §3. Used for two things:
  * golden tensors for the C engine (training/make_fixtures.py runs it in float64), and
  * training (training/train.py runs it in float32).
Compute dtype follows the parameters: `model.double()` computes in float64.

state_dict() keys are exactly the Hugging Face checkpoint names (docs/model.md §2), e.g.
  model.embed_tokens.weight, model.layers.{i}.self_attn.q_a_proj.weight, ...,
  model.layers.{i}.mlp.experts.{e}.gate_proj.weight, model.layers.{i}.mlp.gate.weight,
  model.layers.{i}.mlp.gate.e_score_correction_bias (persistent float32 buffer; noaux_tc only),
  model.layers.{N+k-1}.{enorm,hnorm,eh_proj,shared_head.norm}.weight (+ embed_tokens / shared_head.head
  when mtp_own_embed_head=True), model.norm.weight, lm_head.weight.

Semantics chosen where the sources disagree (docs/model.md §9); the C engine follows the same:
  * RMSNorm: y = w * (x * rsqrt(mean(x^2) + eps)), normalisation in >= float32.
  * eps: config.rms_norm_eps for every norm except q_a_layernorm and kv_a_layernorm, which use a fixed
    LATENT_NORM_EPS = 1e-6 as DeepSeek's inference/model.py and transformers do (vLLM uses rms_norm_eps;
    issue 11: with another rms_norm_eps the logits differ by up to 18). Same value for every shipped
    DeepSeek config and all our fixtures, so their goldens are unchanged.
  * RoPE: interleaved pairs (x[2i], x[2i+1]) rotated by angle p*theta'_i; cos and sin are multiplied by
    the YaRN magnitude factor get_mscale(s,mscale)/get_mscale(s,mscale_all_dim); YaRN always applied
    when rope_scaling is present; softmax scale = qk_head_dim^-1/2 * get_mscale(s, mscale_all_dim)^2.
  * Routing: noaux_tc = sigmoid scores, selection by score + e_score_correction_bias, group score = sum
    of the top-2 biased scores of each group (when n_group > 1), keep topk_group groups, others masked to
    -inf, top-k; weights = unbiased scores of the chosen experts, renormalised (no epsilon) iff
    norm_topk_prob, then * routed_scaling_factor. softmax: greedy = plain top-k; group_limited_greedy =
    group score is the max. routed_scaling_factor is applied in every case (also after renormalising).
    Every ordering (groups, experts) sorts by (-score, index): ties go to the lower index; the k slots
    are reported in descending selection score.
  * Shared experts are added unscaled. Attention softmax in >= float32. No position-0 zeroing in MTP
    (training); the engines' other MTP conventions are reproduced by mtpref/drafting.py.
  * MTP: module 1 at i: z = eh_proj([enorm(Emb(t[i+1])) ; hnorm(g_i)]), g = main hidden after model.norm;
    module k >= 2 at i: Emb(t[i+k]) and g = module k-1's hidden after its shared_head.norm. RoPE
    position i, causal attention over the module's own positions 0..T-1-k.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig

LATENT_NORM_EPS = 1e-6  # q_a_layernorm / kv_a_layernorm: fixed, whatever rms_norm_eps says


def _acc_dtype(dt: torch.dtype) -> torch.dtype:
    """Accumulation dtype for norms/softmax: at least float32."""
    return torch.float64 if dt == torch.float64 else torch.float32


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.to(_acc_dtype(x.dtype))
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight.to(y.dtype) * y).to(x.dtype)


def _linear(i: int, o: int) -> nn.Linear:
    return nn.Linear(i, o, bias=False)


def rope_interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs (x[2i], x[2i+1]) of the last dim. cos/sin broadcast to x[..., d/2]."""
    xp = x.unflatten(-1, (-1, 2))
    a, b = xp[..., 0], xp[..., 1]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)


class MLA(nn.Module):
    """Multi-head latent attention, naive (prefill) form, docs/model.md §3.2."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        H, d = cfg.num_attention_heads, cfg.hidden_size
        dq = cfg.qk_head_dim
        if cfg.q_lora_rank is None:
            self.q_proj = _linear(d, H * dq)
        else:
            self.q_a_proj = _linear(d, cfg.q_lora_rank)
            self.q_a_layernorm = RMSNorm(cfg.q_lora_rank, LATENT_NORM_EPS)
            self.q_b_proj = _linear(cfg.q_lora_rank, H * dq)
        self.kv_a_proj_with_mqa = _linear(d, cfg.kv_lora_rank + cfg.qk_rope_head_dim)
        self.kv_a_layernorm = RMSNorm(cfg.kv_lora_rank, LATENT_NORM_EPS)
        self.kv_b_proj = _linear(cfg.kv_lora_rank, H * (cfg.qk_nope_head_dim + cfg.v_head_dim))
        self.o_proj = _linear(H * cfg.v_head_dim, d)

    def forward(self, x, cos, sin, scale, collect=None, tag=""):
        cfg = self.cfg
        B, T, _ = x.shape
        H, dn, dr, dv, rkv = (cfg.num_attention_heads, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim,
                              cfg.v_head_dim, cfg.kv_lora_rank)
        if cfg.q_lora_rank is None:
            q = self.q_proj(x)
        else:
            q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))
        q = q.view(B, T, H, dn + dr)
        q_nope, q_pe = q[..., :dn], q[..., dn:]
        q_pe = rope_interleaved(q_pe, cos[None, :, None, :], sin[None, :, None, :])
        a = self.kv_a_proj_with_mqa(x)                         # [B,T,rkv+dr]
        c_hat = self.kv_a_layernorm(a[..., :rkv])              # [B,T,rkv]
        k_pe = rope_interleaved(a[..., rkv:], cos[None], sin[None])  # [B,T,dr]
        if collect is not None:
            collect[tag + "kv_cache"] = torch.cat((c_hat, k_pe), -1).detach()
        kv = self.kv_b_proj(c_hat).view(B, T, H, dn + dv)
        k_nope, v = kv[..., :dn], kv[..., dn:]
        if T > BLOCKED_ATTENTION_FROM:
            o = _attention_blocked(q_nope, q_pe, k_nope, k_pe, v, scale)
        else:
            o = _attention_core(q_nope, q_pe, k_nope, k_pe, v, scale)
        return self.o_proj(o.reshape(B, T, H * dv))


# Windows longer than this (context extension) attend in blocks of queries: a block's scores span
# only the keys up to its last query, so the causal half of the T x T scores is never formed, and
# what autograd keeps for the backward pass is about half of it (0.6 GB per layer at T = 4096
# unblocked). Shorter windows keep the one-shot path, so every golden tensor stays bitwise.
BLOCKED_ATTENTION_FROM = 1024
ATTENTION_BLOCK = 512


def _attention_blocked(q_nope, q_pe, k_nope, k_pe, v, scale):
    T = q_nope.shape[1]
    outs = []
    for s0 in range(0, T, ATTENTION_BLOCK):
        s1 = min(T, s0 + ATTENTION_BLOCK)
        outs.append(_attention_core(q_nope[:, s0:s1], q_pe[:, s0:s1], k_nope[:, :s1], k_pe[:, :s1],
                                    v[:, :s1], scale, first_query=s0))
    return torch.cat(outs, 1)


def _attention_core(q_nope, q_pe, k_nope, k_pe, v, scale, first_query=0):
    """Causal MLA attention: queries [B,Tq,H,*] at positions first_query.., keys [B,Tk,H,*] at
    0..Tk-1 -> [B,Tq,H,d_v]."""
    Tq, Tk = q_nope.shape[1], k_nope.shape[1]
    s = (torch.einsum("bthd,bshd->bhts", q_nope, k_nope)
         + torch.einsum("bthd,bsd->bhts", q_pe, k_pe)) * scale
    causal = torch.ones(Tq, Tk, dtype=torch.bool, device=q_nope.device).tril(first_query)
    s = s.to(_acc_dtype(s.dtype)).masked_fill(~causal, float("-inf"))
    p = torch.softmax(s, dim=-1).to(v.dtype)
    return torch.einsum("bhts,bshd->bthd", p, v)


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, d: int, inter: int):
        super().__init__()
        self.gate_proj = _linear(d, inter)
        self.up_proj = _linear(d, inter)
        self.down_proj = _linear(inter, d)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Gate(nn.Module):
    """Router. Holds `weight` [E,d] and, for noaux_tc, the buffer `e_score_correction_bias` [E] (float32)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        E = cfg.n_routed_experts
        self.weight = nn.Parameter(torch.empty(E, cfg.hidden_size))
        if cfg.topk_method == "noaux_tc":
            self.register_buffer("e_score_correction_bias", torch.zeros(E, dtype=torch.float32),
                                 persistent=True)
        else:
            self.e_score_correction_bias = None

    def forward(self, x):
        """x [N,d] -> (idx [N,k] long, weights [N,k], selection scores [N,E]).

        idx slots are in descending selection score (biased for noaux_tc), ties to the lower id."""
        cfg = self.cfg
        E, G, K = cfg.n_routed_experts, cfg.n_group, cfg.num_experts_per_tok
        adt = _acc_dtype(x.dtype)
        logits = F.linear(x.to(adt), self.weight.to(adt))
        if cfg.scoring_func == "sigmoid":
            scores = torch.sigmoid(logits)
        else:
            scores = torch.softmax(logits, dim=-1)
        sel = scores
        if cfg.topk_method == "noaux_tc":
            sel = scores + self.e_score_correction_bias.to(adt)
        sel = sel.detach()
        use_groups = (cfg.topk_method in ("noaux_tc", "group_limited_greedy")) and G > 1
        if use_groups:
            g = sel.view(-1, G, E // G)
            if cfg.topk_method == "noaux_tc":
                gs = torch.sort(g, dim=-1, descending=True, stable=True).values[..., :2].sum(-1)
            else:
                gs = g.max(dim=-1).values
            keep = torch.sort(gs, dim=-1, descending=True, stable=True).indices[:, :cfg.topk_group]
            gmask = torch.zeros_like(gs, dtype=torch.bool).scatter_(1, keep, True)
            emask = gmask.repeat_interleave(E // G, dim=1)
            masked = sel.masked_fill(~emask, float("-inf"))
        else:
            masked = sel
        idx = torch.sort(masked, dim=-1, descending=True, stable=True).indices[:, :K]
        w = scores.gather(1, idx)
        if cfg.norm_topk_prob:
            w = w / w.sum(-1, keepdim=True)
        w = w * cfg.routed_scaling_factor
        return idx, w.to(x.dtype), sel


class MoE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.gate = Gate(cfg)
        self.experts = nn.ModuleList(MLP(cfg.hidden_size, cfg.moe_intermediate_size)
                                     for _ in range(cfg.n_routed_experts))
        if cfg.n_shared_experts:
            self.shared_experts = MLP(cfg.hidden_size, cfg.moe_intermediate_size * cfg.n_shared_experts)
        else:
            self.shared_experts = None

    def _routed(self, xf, idx, w, counts):
        """sum_j w_j * expert_{idx_j}(x) for every row, in batched form, with no Python loop over the
        experts (at V3's 256 experts per layer such a loop dominates a CPU training step).

        The (token, slot) pairs are sorted by expert and cut into tiles of C rows; tile t of expert e
        holds its rows t*C .. t*C+C-1. All tiles run as three batched matmuls against their expert's
        weights, gathered per tile. Padding is at most one partial tile per expert (C = the mean
        load; smaller tiles make CPU bmm slower per row), whatever the imbalance: padding every expert to the busiest one's load costs 5-15x the
        FLOPs while the router bias is still balancing an untrained model."""
        N, K = idx.shape
        E, d = self.cfg.n_routed_experts, xf.shape[1]
        dev = xf.device
        C = max(4, -(-N * K // E))
        flat_idx = idx.reshape(-1)
        order = torch.argsort(flat_idx, stable=True)
        e_sorted = flat_idx[order]
        tok_sorted = torch.arange(N, device=dev).repeat_interleave(K)[order]
        w_sorted = w.reshape(-1)[order]
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(N * K, device=dev) - starts[e_sorted]
        tiles = (counts + C - 1) // C                                    # tiles per expert
        tile_start = torch.cumsum(tiles, 0) - tiles
        tile = tile_start[e_sorted] + torch.div(slot, C, rounding_mode="floor")
        row = slot % C
        tile_expert = torch.repeat_interleave(torch.arange(E, device=dev), tiles)
        xin = xf.new_zeros(tile_expert.numel(), C, d)
        xin[tile, row] = xf[tok_sorted]
        wg = torch.stack([ex.gate_proj.weight for ex in self.experts])[tile_expert]   # [tiles, m, d]
        wu = torch.stack([ex.up_proj.weight for ex in self.experts])[tile_expert]     # [tiles, m, d]
        wd = torch.stack([ex.down_proj.weight for ex in self.experts])[tile_expert]   # [tiles, d, m]
        h = F.silu(torch.bmm(xin, wg.transpose(1, 2))) * torch.bmm(xin, wu.transpose(1, 2))
        out = torch.bmm(h, wd.transpose(1, 2))                           # [tiles, C, d]
        y = torch.zeros_like(xf)
        return y.index_add_(0, tok_sorted, out[tile, row] * w_sorted[:, None])

    def _sequence_balance(self, xf, idx, B, T):
        """DeepSeek-V3's complementary sequence-wise balance loss (without its alpha): per sequence,
        sum_i f_i * P_i with f_i = E/(K*T) * (tokens routed to expert i) and P_i the mean over the
        sequence of expert i's sigmoid score normalised over all experts. 1.0 when balanced, up to E/K
        when every token picks the same experts. The trainer adds alpha times it to the loss (train.py
        --balance-alpha); the forward pass does not use it."""
        E, K = self.cfg.n_routed_experts, self.cfg.num_experts_per_tok
        logits = F.linear(xf.to(_acc_dtype(xf.dtype)), self.gate.weight.to(_acc_dtype(xf.dtype)))
        s = torch.sigmoid(logits) if self.cfg.scoring_func == "sigmoid" else torch.softmax(logits, -1)
        p = (s / s.sum(-1, keepdim=True)).view(B, T, E).mean(1)                  # [B, E]
        hits = torch.zeros(B, E, dtype=p.dtype, device=xf.device)
        hits.scatter_add_(1, idx.reshape(B, T * K), torch.ones(B, T * K, dtype=p.dtype, device=xf.device))
        f = hits * (E / (K * T))
        return (f * p).sum(-1).mean()

    def _routed_loop(self, xf, idx, w):
        """The same sum, one expert at a time: the oracle the batched form is tested against."""
        y = torch.zeros_like(xf)
        tok = torch.arange(xf.shape[0], device=xf.device).repeat_interleave(idx.shape[1])
        flat_idx, flat_w = idx.reshape(-1), w.reshape(-1)
        for e in torch.unique(flat_idx).tolist():
            sel = (flat_idx == e).nonzero().reshape(-1)
            t = tok[sel]
            y.index_add_(0, t, self.experts[e](xf[t]) * flat_w[sel, None])
        return y

    def forward(self, x, collect=None, tag=""):
        B, T, d = x.shape
        xf = x.reshape(-1, d)
        idx, w, _ = self.gate(xf)
        E = self.cfg.n_routed_experts
        counts = torch.bincount(idx.reshape(-1), minlength=E)
        if self.training:
            self.balance_loss = self._sequence_balance(xf, idx, B, T)
        y = self._routed(xf, idx, w, counts)
        if self.shared_experts is not None:
            y = y + self.shared_experts(xf)
        if collect is not None:
            collect[tag + "router_idx"] = idx.view(B, T, -1).to(torch.int32)
            collect[tag + "router_weights"] = w.view(B, T, -1).detach()
        return y.view(B, T, d), counts


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int, is_mtp: bool = False, own_embed_head: bool = False):
        super().__init__()
        self.layer_idx = layer_idx
        self.is_moe = cfg.layer_is_moe(layer_idx)
        eps = cfg.rms_norm_eps
        d = cfg.hidden_size
        self.input_layernorm = RMSNorm(d, eps)
        self.post_attention_layernorm = RMSNorm(d, eps)
        self.self_attn = MLA(cfg)
        self.mlp = MoE(cfg) if self.is_moe else MLP(d, cfg.intermediate_size)
        if is_mtp:
            self.enorm = RMSNorm(d, eps)
            self.hnorm = RMSNorm(d, eps)
            self.eh_proj = _linear(2 * d, d)
            self.shared_head = nn.Module()
            self.shared_head.norm = RMSNorm(d, eps)
            if own_embed_head:
                self.embed_tokens = nn.Embedding(cfg.vocab_size, d)
                self.shared_head.head = _linear(d, cfg.vocab_size)

    def forward(self, h, cos, sin, scale, collect=None):
        tag = f"layers.{self.layer_idx}."
        c = collect
        x = self.input_layernorm(h)
        a = self.self_attn(x, cos, sin, scale, c, tag)
        h = h + a
        x2 = self.post_attention_layernorm(h)
        counts = None
        if self.is_moe:
            f, counts = self.mlp(x2, c, tag)
        else:
            f = self.mlp(x2)
        out = h + f
        if c is not None:
            c[tag + "attn_norm"] = x.detach()
            c[tag + "attn_out"] = a.detach()
            c[tag + "ffn_norm"] = x2.detach()
            c[tag + "ffn_out"] = f.detach()
            c[tag + "residual"] = out.detach()
        return out, counts


class _Inner(nn.Module):
    """The `model.` prefix of the HF names."""

    def __init__(self, cfg: ModelConfig, own: bool):
        super().__init__()
        N, D = cfg.num_hidden_layers, cfg.num_nextn_predict_layers
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(
            [DecoderLayer(cfg, i) for i in range(N)]
            + [DecoderLayer(cfg, N + k, is_mtp=True, own_embed_head=own) for k in range(D)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class DeepseekV3MTP(nn.Module):
    def __init__(self, cfg: ModelConfig, mtp_own_embed_head: bool = False):
        super().__init__()
        cfg.validate()
        self.config = cfg
        self.mtp_own_embed_head = mtp_own_embed_head
        self.model = _Inner(cfg, mtp_own_embed_head)
        self.lm_head = _linear(cfg.hidden_size, cfg.vocab_size)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        inv = torch.tensor(cfg.rope_inv_freq(), dtype=torch.float64)
        self.register_buffer("rope_inv_freq", inv, persistent=False)
        self.reset_parameters()

    # ---- init --------------------------------------------------------------------------------
    @torch.no_grad()
    def reset_parameters(self, std: Optional[float] = None):
        """HF-style init: every Linear/Embedding ~ N(0, initializer_range), norms = 1, bias buffer = 0."""
        std = self.config.initializer_range if std is None else std
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                m.weight.normal_(0.0, std)
            elif isinstance(m, RMSNorm):
                m.weight.fill_(1.0)
            elif isinstance(m, Gate):
                m.weight.normal_(0.0, std)
                if m.e_score_correction_bias is not None:
                    m.e_score_correction_bias.zero_()

    def _apply(self, fn):
        # keep the router bias float32 whatever .to()/.double()/.half() does (it is a selection offset)
        super()._apply(fn)
        for m in self.modules():
            if isinstance(m, Gate) and m.e_score_correction_bias is not None:
                if m.e_score_correction_bias.dtype != torch.float32:
                    m.e_score_correction_bias = m.e_score_correction_bias.float()
        self.rope_inv_freq = self.rope_inv_freq.to(torch.float64)
        return self

    # ---- helpers -----------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    def mtp_layer(self, k: int) -> DecoderLayer:
        """MTP module k (1-based)."""
        return self.model.layers[self.config.num_hidden_layers + k - 1]

    def moe_layer_indices(self) -> List[int]:
        return [l.layer_idx for l in self.model.layers if l.is_moe]

    def _rope(self, T: int, device):
        pos = torch.arange(T, dtype=torch.float64, device=device)
        ang = pos[:, None] * self.rope_inv_freq.to(device)[None, :]
        f = self.config.rope_attention_factor()
        dt = self.dtype
        return (torch.cos(ang) * f).to(dt), (torch.sin(ang) * f).to(dt)

    # ---- forward -----------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, *, mtp_depth: Optional[int] = None,
                collect: Optional[Dict[str, torch.Tensor]] = None) -> Dict[str, object]:
        """input_ids [B,T] -> dict(logits [B,T,V], hidden [B,T,d], mtp_logits [D x [B,T-k,V]],
        mtp_hidden [D x [B,T-k,d]], router_stats {layer_idx: counts [E] long}).

        mtp_logits[k-1][:, i] predicts t[i+k+1]. `collect`, when a dict, receives the named
        intermediates of make_fixtures.py (with the batch dim)."""
        cfg = self.config
        N = cfg.num_hidden_layers
        D = cfg.num_nextn_predict_layers if mtp_depth is None else mtp_depth
        assert 0 <= D <= cfg.num_nextn_predict_layers
        B, T = input_ids.shape
        cos, sin = self._rope(T, input_ids.device)
        scale = cfg.softmax_scale()
        c = collect
        if c is not None:
            c["rope.inv_freq"] = self.rope_inv_freq.detach().clone()
            c["attn.softmax_scale"] = torch.tensor([scale], dtype=torch.float64)
            c["rope.attention_factor"] = torch.tensor([cfg.rope_attention_factor()], dtype=torch.float64)
        stats: Dict[int, torch.Tensor] = {}

        h = self.model.embed_tokens(input_ids)
        for L in range(N):
            h, cnt = self.model.layers[L](h, cos, sin, scale, c)
            if cnt is not None:
                stats[L] = cnt
        hidden = self.model.norm(h)
        logits = self.lm_head(hidden)
        if c is not None:
            c["hidden"] = hidden.detach()
            c["logits"] = logits.detach()

        mtp_logits: List[torch.Tensor] = []
        mtp_hidden: List[torch.Tensor] = []
        g = hidden
        for k in range(1, D + 1):
            layer = self.mtp_layer(k)
            Tk = T - k
            if Tk <= 0:
                break
            emb_mod = layer.embed_tokens if self.mtp_own_embed_head else self.model.embed_tokens
            head = layer.shared_head.head if self.mtp_own_embed_head else self.lm_head
            e = emb_mod(input_ids[:, k:])                      # t[i+k], i = 0..T-1-k
            z = layer.eh_proj(torch.cat((layer.enorm(e), layer.hnorm(g[:, :Tk])), dim=-1))
            out, cnt = layer(z, cos[:Tk], sin[:Tk], scale, c)
            if cnt is not None:
                stats[layer.layer_idx] = cnt
            hk = layer.shared_head.norm(out)
            lk = head(hk)
            if c is not None:
                c[f"mtp.{k}.input"] = z.detach()
                c[f"mtp.{k}.hidden"] = hk.detach()
                c[f"mtp.{k}.logits"] = lk.detach()
            mtp_logits.append(lk)
            mtp_hidden.append(hk)
            g = hk
        return {"logits": logits, "hidden": hidden, "mtp_logits": mtp_logits,
                "mtp_hidden": mtp_hidden, "router_stats": stats}


def mtp_loss(out: Dict[str, object], input_ids: torch.Tensor, lambda_mtp: float,
             ignore_index: int = -100):
    """DeepSeek-V3 MTP loss: CE_main + lambda/D * sum_k CE_k.

    CE_main: logits[:, i] vs t[i+1] (i = 0..T-2). CE_k: mtp_logits[k-1][:, i] vs t[i+k+1]
    (i = 0..T-2-k). Token ids equal to ignore_index in the targets are skipped.
    Returns (loss scalar tensor, {"main": float tensor, "mtp": [D tensors]}) ; D = len(out["mtp_logits"])."""
    logits = out["logits"]
    V = logits.shape[-1]
    main = F.cross_entropy(logits[:, :-1].reshape(-1, V).float(), input_ids[:, 1:].reshape(-1),
                           ignore_index=ignore_index)
    parts = []
    for k, lk in enumerate(out["mtp_logits"], start=1):
        n = input_ids.shape[1] - 1 - k
        if n <= 0:
            continue
        parts.append(F.cross_entropy(lk[:, :n].reshape(-1, V).float(),
                                     input_ids[:, k + 1:].reshape(-1), ignore_index=ignore_index))
    loss = main
    if parts:
        loss = main + lambda_mtp / len(out["mtp_logits"]) * torch.stack(parts).sum()
    return loss, {"main": main.detach(), "mtp": [p.detach() for p in parts]}
