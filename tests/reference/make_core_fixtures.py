"""Generates tests/fixtures/core/: PyTorch oracle fixtures for unet-core's forward pass.

For every case below it writes

- ``case_X.f32.safetensors``, ``case_X.f16.safetensors``, ``case_X.bf16.safetensors``: the same
  He-initialised model (non-zero biases, so ReLUs are mixed) stored in three dtypes; the f16 and
  bf16 files hold the weights rounded to nearest even;
- ``case_X.io.safetensors``: ``input`` (F32 ``[C, H, W]``) and, for each model dtype ``D`` in
  ``f32, f16, bf16``, ``logits_D`` (F64 ``[K, H_out, W_out]``), ``probs_D`` (F64, softmax over
  classes) and ``labels_D`` (U8 ``[H_out, W_out]``, arg-max, ties to the lowest class), computed
  by PyTorch in float64 from the exactly upcast weights of that file (``load_model(..., float64)``).

Everything is deterministic (one fixed seed per case). Run from anywhere::

    python3 tests/reference/make_core_fixtures.py            # (re)write the fixtures
    python3 tests/reference/make_core_fixtures.py --check    # regenerate in a temp dir, compare

``--check`` requires model files and inputs to be byte-identical and expected outputs to agree to
1e-12 (float64 convolutions may sum in a different order on another CPU/BLAS, so the io files
are compared by value, not by bytes).
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet_ref import (  # noqa: E402
    DTYPES, UNet, he_init_, load_model, outputs, output_size, save_model, write_safetensors,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(REPO, "tests", "fixtures", "core")
MAX_FILE = 200_000
MAX_TOTAL = 1_000_000


@dataclass
class Case:
    name: str
    seed: int
    in_channels: int
    num_classes: int
    base_channels: int
    levels: int
    padding: str
    h: int
    w: int
    normalization: Optional[str] = None
    class_names: Optional[List[str]] = None
    extra: Dict[str, str] = field(default_factory=dict)


CASES = [
    # The paper's wiring at 3 levels, one gray channel, foreground/background; non-square tile.
    Case("case_a", 1001, 1, 2, 4, 3, "valid", 60, 76,
         extra={"source": "tests/reference/make_core_fixtures.py", "epochs": "0"}),
    # Same padding, RGB-like input, 3 classes, normalisation and class names in the metadata.
    Case("case_b", 1002, 3, 3, 4, 3, "same", 24, 40, normalization="percentile:1:99.8",
         class_names=["background", "cell", "border"]),
    # One level: no pooling, no decoder; head straight on the first double conv.
    Case("case_c", 1003, 2, 4, 4, 1, "valid", 13, 17, normalization="mean_std:0.5:0.25"),
    # Four levels, deepest crops; narrow base so the file stays small.
    Case("case_d", 1004, 1, 2, 2, 4, "valid", 100, 108),
    # Two levels, same padding, five classes, odd multiple-of-2 sizes.
    Case("case_e", 1005, 1, 5, 3, 2, "same", 18, 26, normalization="min_max:0:65535"),
]


def make_input(case: Case, g: torch.Generator) -> torch.Tensor:
    """A microscopy-like f32 frame ``[C, H, W]``: a few Gaussian blobs on a dim background plus
    noise, values roughly in [0, 1]."""
    yy, xx = torch.meshgrid(
        torch.arange(case.h, dtype=torch.float64), torch.arange(case.w, dtype=torch.float64),
        indexing="ij",
    )
    x = torch.zeros(case.in_channels, case.h, case.w, dtype=torch.float64)
    for c in range(case.in_channels):
        x[c] += 0.1
        for _ in range(6):
            cy, cx = torch.rand(2, generator=g, dtype=torch.float64) * torch.tensor([case.h, case.w])
            r = 2.0 + 6.0 * torch.rand(1, generator=g, dtype=torch.float64)
            a = 0.4 + 0.6 * torch.rand(1, generator=g, dtype=torch.float64)
            x[c] += a * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
        x[c] += 0.05 * torch.randn(case.h, case.w, generator=g, dtype=torch.float64)
    return x.to(torch.float32)


def relu_activity(model: UNet, x: torch.Tensor) -> Dict[str, float]:
    """Fraction of positive pre-activations of every 3x3 / up conv (the ReLU inputs)."""
    stats: Dict[str, float] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and name != "head":
            hooks.append(mod.register_forward_hook(
                lambda m, i, o, name=name: stats.__setitem__(name, (o > 0).double().mean().item())))
    with torch.no_grad():
        model(x[None])
    for h in hooks:
        h.remove()
    return stats


def build_model(case: Case, x: torch.Tensor) -> UNet:
    g = torch.Generator().manual_seed(case.seed)
    m = UNet(case.in_channels, case.num_classes, case.base_channels, case.levels, case.padding)
    he_init_(m, g)
    m = m.double().eval()
    # Centre the head so every class wins somewhere: bias_k -= mean logit_k, plus a little noise.
    with torch.no_grad():
        logits = m(x.double()[None])[0]
        m.head.bias -= logits.mean(dim=(1, 2))
        m.head.bias += 0.05 * torch.randn(case.num_classes, generator=g, dtype=torch.float64)
    return m.float()


def generate(out_dir: str, verbose: bool = True) -> List[str]:
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for case in CASES:
        g = torch.Generator().manual_seed(case.seed + 7919)
        x = make_input(case, g)
        model = build_model(case, x)
        act = relu_activity(model.double(), x.double())
        model = model.float()
        bad = {k: v for k, v in act.items() if not 0.05 <= v <= 0.95}
        assert not bad, f"{case.name}: ReLUs nearly all on/off: {bad}"
        oh, ow = output_size(case.h, case.w, case.levels, case.padding)
        io: Dict[str, torch.Tensor] = {"input": x.contiguous()}
        for dname, dt in DTYPES.items():
            path = os.path.join(out_dir, f"{case.name}.{dname}.safetensors")
            save_model(model, path, dt, case.normalization, case.class_names, case.extra)
            written.append(path)
            # Oracle: float64 forward from the file's weights, upcast exactly.
            ref = load_model(path, torch.float64)  # strict=True inside
            with torch.no_grad():
                logits = ref(x.double()[None])[0]
            logits, probs, labels = outputs(logits)
            assert logits.shape == (case.num_classes, oh, ow)
            io[f"logits_{dname}"] = logits.contiguous()
            io[f"probs_{dname}"] = probs.contiguous()
            io[f"labels_{dname}"] = labels.to(torch.uint8).contiguous()
            # The f32 module reloaded from the file agrees with the float64 oracle.
            ref32 = load_model(path)
            with torch.no_grad():
                l32 = ref32(x[None])[0].double()
            err = ((l32 - logits).abs().max() / max(1.0, logits.abs().max().item())).item()
            assert err < 1e-5, f"{path}: PyTorch f32 vs f64 rel err {err}"
            if verbose:
                top2 = torch.topk(logits, min(2, case.num_classes), dim=0).values
                gap = (top2[0] - top2[-1]).min().item() if case.num_classes > 1 else float("inf")
                hist = torch.bincount(labels.flatten(), minlength=case.num_classes).tolist()
                print(f"{case.name}.{dname}: {case.in_channels}x{case.h}x{case.w} -> "
                      f"{case.num_classes}x{oh}x{ow}, |logits|max {logits.abs().max():.3f}, "
                      f"torch f32 rel err {err:.2e}, min top-2 gap {gap:.2e}, labels {hist}")
        hist = torch.bincount(io["labels_f32"].long().flatten(), minlength=case.num_classes)
        assert (hist > 0).sum() >= 2, f"{case.name}: labels are all one class"
        if verbose:
            print(f"{case.name}: ReLU activity " + " ".join(f"{k}={v:.2f}" for k, v in act.items()))
        path = os.path.join(out_dir, f"{case.name}.io.safetensors")
        write_safetensors(path, io, {
            "case": case.name, "seed": str(case.seed),
            "source": "tests/reference/make_core_fixtures.py",
            "models": ",".join(f"{case.name}.{d}.safetensors" for d in DTYPES),
        })
        written.append(path)
    sizes = {p: os.path.getsize(p) for p in written}
    big = {p: s for p, s in sizes.items() if s > MAX_FILE}
    assert not big, f"fixture files over {MAX_FILE} bytes: {big}"
    assert sum(sizes.values()) <= MAX_TOTAL, f"fixtures total {sum(sizes.values())} bytes"
    if verbose:
        print(f"{len(written)} files, {sum(sizes.values())} bytes, largest {max(sizes.values())}")
    return written


def check() -> None:
    from safetensors.torch import load_file

    with tempfile.TemporaryDirectory() as d:
        fresh = generate(d, verbose=False)
        for p in fresh:
            name = os.path.basename(p)
            committed = os.path.join(OUT_DIR, name)
            if not name.endswith(".io.safetensors"):
                with open(p, "rb") as a, open(committed, "rb") as b:
                    assert a.read() == b.read(), f"{name} differs from a fresh generation"
                continue
            a, b = load_file(p), load_file(committed)
            assert a.keys() == b.keys(), name
            for k in a:
                if k == "input" or k.startswith("labels"):
                    assert torch.equal(a[k], b[k]), f"{name}:{k}"
                else:
                    assert (a[k] - b[k]).abs().max() <= 1e-12, f"{name}:{k}"
    print(f"{len(fresh)} fixture files match a fresh generation")


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        check()
    elif sys.argv[1:]:
        print(__doc__)
        sys.exit(2)
    else:
        generate(OUT_DIR)
