#!/usr/bin/env python3
"""Fixtures for unet-core's frame tests (tests/fixtures/frame/), made with numpy.

- mirror.safetensors: np.pad(np.arange(n), p, mode="symmetric") for several n and pad widths p
  (including p > n, i.e. repeated mirroring), tensors "n{n}_p{p}" (I64), and one 2-D case
  "grid" = np.pad(arange(15).reshape(3, 5), ((7, 4), (2, 9)), mode="symmetric").
- percentile.safetensors: three channels of random samples (u8, u16 and the f32 values of a
  float frame) and, for each pair (LOW, HIGH) in PAIRS, numpy's default percentiles computed on
  the samples converted to float64: np.percentile(x.astype(np.float64), [LOW, HIGH]) (method
  "linear"), tensors "{kind}_pct" (F64, [len(PAIRS), 2]); the normalised values
  ((x - lo) / (hi - lo)).astype(np.float32) for the first pair, "{kind}_norm" (F32).

Run from the repository root: python3 tests/reference/make_frame_fixtures.py
"""
import os

import numpy as np
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "frame")
PAIRS = [(1.0, 99.8), (0.0, 100.0), (2.5, 97.5), (33.3, 66.7), (50.0, 50.5), (0.1, 99.9)]


def mirror():
    t = {}
    for n in [1, 2, 3, 5, 8]:
        for p in sorted({0, 1, n, 2 * n + 1, 3 * n + 2, 17}):
            t[f"n{n}_p{p}"] = np.pad(np.arange(n, dtype=np.int64), p, mode="symmetric")
    t["grid"] = np.pad(np.arange(15, dtype=np.int64).reshape(3, 5), ((7, 4), (2, 9)), mode="symmetric")
    save_file(t, os.path.join(OUT, "mirror.safetensors"), metadata={"np_pad_mode": "symmetric"})


def percentile():
    rng = np.random.default_rng(20150518)
    h, w = 37, 53
    frames = {
        # skewed, many ties (u8) / wide range (u16) / floats incl. negatives and ties
        "u8": rng.binomial(255, 0.2, size=(h, w)).astype(np.uint8),
        "u16": (rng.gamma(2.0, 3000.0, size=(h, w)).clip(0, 65535)).astype(np.uint16),
        "f32": np.round(rng.normal(3.0, 40.0, size=(h, w)), 1).astype(np.float32),
    }
    t = {}
    for kind, x in frames.items():
        x64 = x.astype(np.float64)
        t[kind] = x
        t[f"{kind}_pct"] = np.array([np.percentile(x64, [lo, hi]) for lo, hi in PAIRS], dtype=np.float64)
        lo, hi = np.percentile(x64, PAIRS[0])
        t[f"{kind}_norm"] = ((x64 - lo) / (hi - lo)).astype(np.float32)
    t["pairs"] = np.array(PAIRS, dtype=np.float64)
    save_file(t, os.path.join(OUT, "percentile.safetensors"), metadata={"numpy": np.__version__})


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    mirror()
    percentile()
