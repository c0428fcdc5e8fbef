"""check_transformers_fixture.py - the PyTorch reference (training/mtpref) against the logits that
transformers wrote into tests/fixtures/hf-v3-logits.safetensors (make_transformers_fixture.py).

Reads the default-saved checkpoint (per-expert tensors, rope_parameters with rope_theta inside,
rms_norm_eps 0.05, MTP announced but absent) into mtpref in float64 and compares the main-model logits.
It checks mtpref's reading of rope_parameters and its fixed 1e-6 latent-norm eps. Needs only torch
(Debian's 1.13 in .venv is enough); exits 1 when the max abs difference exceeds --tol (measured: 8e-6).

    .venv/bin/python training/check_transformers_fixture.py
"""
import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from make_fixtures import read_safetensors_raw  # noqa: E402
from mtpref import DeepseekV3MTP, ModelConfig  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures", default=os.path.join(HERE, "..", "tests", "fixtures"))
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    d = os.path.join(a.fixtures, "hf-v3-default")
    cfg = ModelConfig.from_json(os.path.join(d, "config.json"))
    cfg.num_nextn_predict_layers = 0  # announced by the config, absent from the checkpoint
    model = DeepseekV3MTP(cfg).double()
    raw = read_safetensors_raw(os.path.join(d, "model.safetensors"))
    gold = read_safetensors_raw(os.path.join(a.fixtures, "hf-v3-logits.safetensors"))
    with torch.no_grad():
        for name, t in model.state_dict().items():
            dt, shape, b = raw[name]
            assert dt == "F32", name
            t.copy_(torch.from_numpy(np.frombuffer(b, "<f4").astype(np.float64).reshape(shape)))
        tokens = np.frombuffer(gold["tokens"][2], "<i4").astype(np.int64)
        want = np.frombuffer(gold["logits"][2], "<f4").reshape(gold["logits"][1])
        got = model(torch.from_numpy(tokens)[None], mtp_depth=0)["logits"][0].numpy()
    err = float(np.abs(got - want).max())
    print(f"mtpref (float64) vs transformers logits: max |diff| {err:.3g} (tol {a.tol:g})")
    return 0 if err <= a.tol else 1


if __name__ == "__main__":
    sys.exit(main())
