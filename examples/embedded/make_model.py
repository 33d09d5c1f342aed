#!/usr/bin/env python3
"""Makes the firmware's model and input tile (deterministic; re-run to regenerate).

The model is a FIXED-SEED (untrained) U-Net: 3 levels, base 4 channels, 'valid' padding,
1 input channel, 2 classes, He-initialised weights (std sqrt(2/fan_in)) with small random biases,
stored as F16 in the unet safetensors format (format=unet, format_version=1; tensor names and
shapes as PyTorch's state dict). The input is a synthetic 92x92 tile of bright elliptic blobs
on a noisy background, stored as raw little-endian f32.

Needs numpy and safetensors (pip). Output: model/tiny-f16.safetensors, model/input-92x92.f32.
"""
import os

import numpy as np
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
IN_CH, CLASSES, BASE, LEVELS = 1, 2, 4, 3
TILE = 92


def params(rng):
    """Yields (name, array) in file order: enc, then (up, dec) per level, then head."""
    c = [BASE << i for i in range(LEVELS)]
    out = {}

    def conv(name, cout, cin, k):
        out[name + ".weight"] = rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k))
        out[name + ".bias"] = rng.normal(0, 0.05, (cout,))

    for i in range(LEVELS):
        conv(f"enc.{i}.conv1", c[i], IN_CH if i == 0 else c[i - 1], 3)
        conv(f"enc.{i}.conv2", c[i], c[i], 3)
    for i in range(LEVELS - 1):
        # ConvTranspose2d weight layout: [C_in, C_out, 2, 2]; fan-in as PyTorch counts it.
        out[f"up.{i}.weight"] = rng.normal(0, np.sqrt(2.0 / (c[i] * 4)), (c[i + 1], c[i], 2, 2))
        out[f"up.{i}.bias"] = rng.normal(0, 0.05, (c[i],))
        conv(f"dec.{i}.conv1", c[i], 2 * c[i], 3)
        conv(f"dec.{i}.conv2", c[i], c[i], 3)
    conv("head", CLASSES, c[0], 1)
    return out


def main():
    rng = np.random.default_rng(20150518)
    tensors = {k: v.astype(np.float16) for k, v in params(rng).items()}
    meta = {
        "format": "unet", "format_version": "1", "in_channels": str(IN_CH),
        "num_classes": str(CLASSES), "base_channels": str(BASE), "levels": str(LEVELS),
        "padding": "valid", "normalization": "none", "class_names": "background,cell",
        "provenance": "fixed-seed untrained model made by examples/embedded/make_model.py (seed 20150518)",
    }
    os.makedirs(os.path.join(HERE, "model"), exist_ok=True)
    save_file(tensors, os.path.join(HERE, "model", "tiny-f16.safetensors"), metadata=meta)

    yy, xx = np.mgrid[0:TILE, 0:TILE].astype(np.float64)
    img = rng.normal(0.1, 0.05, (TILE, TILE))
    for _ in range(7):
        cy, cx = rng.uniform(8, TILE - 8, 2)
        ry, rx = rng.uniform(5, 12, 2)
        img += 0.8 * (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1.0)
    img.astype("<f4").tofile(os.path.join(HERE, "model", f"input-{TILE}x{TILE}.f32"))


if __name__ == "__main__":
    main()
