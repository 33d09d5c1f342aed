#!/usr/bin/env python3
"""Fixtures for unet-train's gradient and optimiser tests (tests/fixtures/train_grad/).

For each case a small U-Net (``unet_ref.UNet``, He-initialised by ``unet_ref.he_init_`` with
non-zero biases) is run in float64 on a random batch with random targets and a NON-uniform weight
map (zeros = ignored pixels included), and the weighted soft-max cross-entropy

    E = -sum_x w(x) * log softmax(a(x))[l(x)],   loss = E / D

is differentiated by autograd. ``D`` is the number of output pixels in the batch ("pixels") or
the sum of weights ("weight_sum"), as unet-train's ``loss.rs``. Stored (safetensors, f32 unless
noted): ``param.NAME`` (the weights), ``input`` [B,C,H,W], ``target`` [B,Ho,Wo] U8, ``weight``
[B,Ho,Wo], ``logits`` [B,K,Ho,Wo], ``loss`` [1] F64, ``grad.NAME`` (d loss / d param).

The ``valid`` case also stores three steps of ``torch.optim.SGD`` (lr 0.1, momentum 0.99,
weight decay 1e-3) and ``torch.optim.Adam`` (lr 0.01, weight decay 1e-3) run in float32 from
``param.*`` with the same gradient ``grad.*`` each step: ``sgd.NAME``, ``adam.NAME``.

Metadata: the config (``in_channels``, ``num_classes``, ``base_channels``, ``levels``,
``padding``) and ``norm``. Run from the repository root:

    python3 tests/reference/make_train_fixtures.py
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet_ref import UNet, he_init_, output_size  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "train_grad")

CASES = [
    # name, in_channels, num_classes, base, levels, padding, batch, size, norm, optim
    ("valid", 1, 3, 4, 3, "valid", 2, 60, "pixels", True),
    ("same", 2, 2, 2, 2, "same", 2, 16, "weight_sum", False),
]


def weighted_ce(logits, target, weight, norm):
    logp = torch.log_softmax(logits, dim=1)
    nll = -logp.gather(1, target.long().unsqueeze(1)).squeeze(1)
    e = (weight * nll).sum()
    d = float(weight.numel()) if norm == "pixels" else weight.sum()
    return e / d


def make(name, cin, k, base, levels, padding, batch, size, norm, optim):
    g = torch.Generator().manual_seed(20151505)
    m = UNet(cin, k, base, levels, padding)
    he_init_(m, g)
    m = m.double().train()
    ho, wo = output_size(size, size, levels, padding)
    x = torch.rand(batch, cin, size, size, generator=g, dtype=torch.float64)
    target = torch.randint(0, k, (batch, ho, wo), generator=g, dtype=torch.uint8)
    weight = torch.rand(batch, ho, wo, generator=g, dtype=torch.float64) * 9.0 + 1.0
    weight[torch.rand(batch, ho, wo, generator=g) < 0.2] = 0.0  # ignored pixels
    # Round inputs and weights to f32 first, so the Rust side sees exactly the same values.
    x = x.float().double()
    weight = weight.float().double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.float().double())
    logits = m(x)
    loss = weighted_ce(logits, target, weight, norm)
    m.zero_grad()
    loss.backward()
    t = {f"param.{n}": p.detach().float().contiguous() for n, p in m.named_parameters()}
    t.update({f"grad.{n}": p.grad.float().contiguous() for n, p in m.named_parameters()})
    t["input"] = x.float().contiguous()
    t["target"] = target.contiguous()
    t["weight"] = weight.float().contiguous()
    t["logits"] = logits.detach().float().contiguous()
    t["loss"] = loss.detach().reshape(1)
    if optim:
        for oname, make_opt in (
            ("sgd", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.99, weight_decay=1e-3)),
            ("adam", lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=1e-3)),
        ):
            names = [n for n, _ in m.named_parameters()]
            ps = [t[f"param.{n}"].clone().requires_grad_(True) for n in names]
            opt = make_opt(ps)
            for _ in range(3):
                for p, n in zip(ps, names):
                    p.grad = t[f"grad.{n}"].clone()
                opt.step()
            t.update({f"{oname}.{n}": p.detach().contiguous() for n, p in zip(names, ps)})
    meta = dict(
        in_channels=str(cin), num_classes=str(k), base_channels=str(base), levels=str(levels),
        padding=padding, norm=norm,
    )
    path = os.path.join(OUT, f"{name}.safetensors")
    save_file(t, path, metadata=meta)
    print(f"{path}: {os.path.getsize(path)} bytes, loss {loss.item():.6f}")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    for case in CASES:
        make(*case)
