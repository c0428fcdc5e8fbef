#!/usr/bin/env python3
"""Self-check of train.py's MTP distillation (--mtp-distill), on a tiny random model (seconds on CPU).

Run:  .venv/bin/python training/selftest_distill.py
Checks: distill_losses is KL(main[i+k] || module k[i]) computed by hand, zero when a module's logits are
the main model's shifted by k; after freeze_main_model, an optimizer step on the distillation loss
changes only MTP-module parameters (the embedding and the shared head stay too); update_bias leaves
routers without a buffer (the frozen main layers) alone. Exits non-zero on the first failure.
"""
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "mtpref"))

from train import CONFIGS, build_model, bias_buffers, distill_losses, freeze_main_model, update_bias  # noqa: E402


def check(cond, msg):
    if not cond:
        print("FAIL:", msg)
        sys.exit(1)


def kl_by_hand(main_logits, module_logits, k):
    p = F.softmax(main_logits[:, k:k + module_logits.shape[1]].double(), -1)
    q = F.softmax(module_logits.double(), -1)
    return (p * (p.log() - q.log())).sum(-1).mean().item()


def check_losses():
    g = torch.Generator().manual_seed(1)
    main = torch.randn(2, 7, 11, generator=g)
    mods = [torch.randn(2, 7 - k, 11, generator=g) for k in (1, 2)]
    got = distill_losses(dict(logits=main, mtp_logits=mods))
    for k0, (lg, kl) in enumerate(zip(mods, got)):
        want = kl_by_hand(main, lg, k0 + 1)
        check(abs(kl.item() - want) < 1e-5, "depth %d KL %.6f, by hand %.6f" % (k0 + 1, kl.item(), want))
        check(kl.item() > 0.01, "depth %d: random logits give KL %.6f" % (k0 + 1, kl.item()))
    same = [main[:, k:].clone() for k in (1, 2)]
    for k0, kl in enumerate(distill_losses(dict(logits=main, mtp_logits=same))):
        check(abs(kl.item()) < 1e-6, "depth %d: identical distributions give KL %.2e" % (k0 + 1, kl.item()))


def check_frozen_step():
    torch.manual_seed(0)
    hf = dict(CONFIGS["tiny"], num_nextn_predict_layers=2)
    model = build_model(hf)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    freeze_main_model(model, hf)
    trainable = [p for p in model.parameters() if p.requires_grad]
    check(0 < len(trainable) < len(before), "freeze left %d of %d tensors trainable" % (len(trainable), len(before)))
    opt = torch.optim.SGD(trainable, lr=0.5)
    ids = torch.randint(2, hf["vocab_size"], (2, 16))
    out = model(ids)
    loss = sum(distill_losses(out))
    loss.backward()
    opt.step()
    L = hf["num_hidden_layers"]
    moved = 0
    for n, p in model.named_parameters():
        is_mtp = n.startswith("model.layers.") and int(n.split(".")[2]) >= L
        changed = not torch.equal(p.detach(), before[n])
        check(is_mtp or not changed, "frozen tensor %s changed" % n)
        moved += changed
    check(moved > 0, "no MTP tensor changed after a step")

    buffers = bias_buffers(model)
    mtp_only = {li: b for li, b in buffers.items() if li >= L}
    kept = {li: b.clone() for li, b in buffers.items()}
    update_bias(model, out["router_stats"], 0.1, mtp_only, "proportional")
    for li, b in buffers.items():
        check((li >= L) or torch.equal(b, kept[li]), "frozen router bias of layer %d changed" % li)


def main():
    torch.set_num_threads(1)
    check_losses()
    check_frozen_step()
    print("selftest_distill passed")


if __name__ == "__main__":
    main()
