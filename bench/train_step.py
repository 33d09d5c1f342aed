#!/usr/bin/env python3
"""One training step of unet-train's CPU backend against PyTorch, in the same run.

A step = forward in training mode, the paper's weighted soft-max cross-entropy (a random
non-uniform weight map), backward, one optimiser update. For each preset and thread count:

- unet-train: ``unet-train --threads T bench --levels L --base B --tile 572 --batch N --steps R``
  (one warm-up step, median of R timed steps; SGD with momentum 0.99 as the paper);
- PyTorch eager (``tests/reference/unet_ref.py``'s ``UNet``, float32, ``torch.set_num_threads(T)``,
  ``torch.optim.SGD(momentum=0.99)``), each thread count in its own process: one warm-up step,
  median of R timed steps.

Presets (1 input channel, 2 classes, 'valid' padding, 572x572 tiles -> 388x388, batch 1):
``paper`` = levels 5, base 64 (the paper's network); ``base16`` = levels 5, base 16.
Prints seconds per step, GFLOP/s (3 x the forward FLOPs that unet-train's bench reports) and
the ratio PyTorch time / unet-train time (> 1: unet-train is faster).

Not part of CI (minutes of CPU; PyTorch is a large install). Run from the repository root::

    pip install torch==2.15.0 numpy
    python3 bench/train_step.py                  # both presets, 1 and 2 threads, 3 steps
    python3 bench/train_step.py --preset base16 --runs 5
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRESETS = {"paper": (5, 64), "base16": (5, 16)}
TILE = 572


def torch_worker(levels: int, base: int, threads: int, runs: int, batch: int) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    from unet_ref import UNet, output_size

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = UNet(1, 2, base, levels, "valid")
    opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.99)
    oh, ow = output_size(TILE, TILE, levels, "valid")
    x = torch.randn(batch, 1, TILE, TILE)
    target = torch.randint(0, 2, (batch, oh, ow))
    weight = 1.0 + 9.0 * torch.rand(batch, oh, ow)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        logits = net(x)
        loss = (torch.nn.functional.cross_entropy(logits, target, reduction="none") * weight).mean()
        loss.backward()
        opt.step()

    step()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    print(json.dumps({"median": statistics.median(times), "times": times}))


def ours(binary: Path, levels: int, base: int, threads: int, runs: int, batch: int):
    out = subprocess.run(
        [str(binary), "--threads", str(threads), "bench", "--levels", str(levels), "--base",
         str(base), "--tile", str(TILE), "--batch", str(batch), "--steps", str(runs)],
        check=True, capture_output=True, text=True,
    ).stdout
    m = re.search(r"median ([0-9.]+) s/step, ~([0-9.]+) GFLOP/s", out)
    if not m:
        raise SystemExit(f"cannot parse unet-train bench output: {out!r}")
    return float(m.group(1)), float(m.group(2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="both", choices=["paper", "base16", "both"])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--worker", nargs=4, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        levels, base, threads, runs = a.worker
        torch_worker(levels, base, threads, runs, a.batch)
        return
    if not a.skip_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "unet-train"], check=True,
                       cwd=ROOT)
    binary = ROOT / "target" / "release" / "unet-train"
    presets = ["paper", "base16"] if a.preset == "both" else [a.preset]
    rows = []
    for name in presets:
        levels, base = PRESETS[name]
        for t in [int(v) for v in a.threads.split(",")]:
            print(f"{name}, {t} thread(s): unet-train ...", file=sys.stderr, flush=True)
            s_ours, gflops = ours(binary, levels, base, t, a.runs, a.batch)
            print(f"{name}, {t} thread(s): PyTorch ...", file=sys.stderr, flush=True)
            out = subprocess.run(
                [sys.executable, __file__, "--batch", str(a.batch), "--worker", str(levels),
                 str(base), str(t), str(a.runs)],
                check=True, capture_output=True, text=True,
            ).stdout
            s_torch = json.loads(out.strip().splitlines()[-1])["median"]
            flops = gflops * s_ours
            rows.append((name, t, s_ours, gflops, s_torch, flops / s_torch))
    print(f"\ntraining step, {TILE}² tile, batch {a.batch}, median of {a.runs} steps")
    print("| preset | threads | unet-train s/step | GFLOP/s | PyTorch s/step | GFLOP/s | PyTorch / unet-train |")
    print("|---|---|---|---|---|---|---|")
    for name, t, so, go, st, gt in rows:
        print(f"| {name} | {t} | {so:.2f} | {go:.1f} | {st:.2f} | {gt:.1f} | {st / so:.2f}x |")


if __name__ == "__main__":
    main()
