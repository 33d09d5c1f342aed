"""PyTorch reference U-Net for the unet model file format (safetensors, format ``unet`` v1).

This module is the oracle that unet-core's forward pass, the trainer and the ONNX benchmark are
checked against. It is small on purpose: one ``nn.Module`` whose ``state_dict`` is exactly the
file's tensor set, a writer and a reader. Import it from tests with::

    sys.path.insert(0, "<repo>/tests/reference")
    from unet_ref import UNet, save_model, load_model

and run ``python3 tests/reference/unet_ref.py --selftest`` to round-trip a file.

Architecture (Ronneberger et al. 2015), levels ``L``, base channels ``B``, ``c_i = B * 2**i``:

- encoder level ``i`` in ``0..L``: ``enc.{i}.conv1`` (3x3, in -> c_i), ReLU, ``enc.{i}.conv2``
  (3x3, c_i -> c_i), ReLU; levels ``0..L-1`` are followed by a 2x2 max-pool (stride 2);
- a dropout slot at the end of the contracting path (after the bottom level; no parameters,
  identity in ``eval()`` mode and when ``dropout == 0``);
- decoder level ``i`` in ``L-2 .. 0``: ``up.{i}`` (2x2 stride-2 transposed conv, c_{i+1} -> c_i),
  concatenation ``[centre_crop(skip_i), up]`` along channels (cropped skip FIRST, then the
  up-sampled map), ``dec.{i}.conv1`` (3x3, 2c_i -> c_i), ReLU, ``dec.{i}.conv2`` (3x3), ReLU;
- ``head``: 1x1 conv c_0 -> num_classes, giving logits (no activation).

``padding="valid"`` uses unpadded 3x3 convolutions (the paper); ``padding="same"`` pads each 3x3
convolution with one pixel of zeros. Legal tile sizes are those of unet-core's ``geometry.rs``;
:func:`sizes` mirrors it and :class:`UNet.forward` refuses illegal sizes instead of silently
flooring an odd max-pool.

Tensor shapes follow PyTorch: conv weight ``[C_out, C_in, k, k]``, transposed-conv weight
``[C_in, C_out, 2, 2]``, bias ``[C_out]``. Names: ``enc.{i}.conv{1,2}.{weight,bias}``,
``up.{i}.{weight,bias}``, ``dec.{i}.conv{1,2}.{weight,bias}``, ``head.{weight,bias}``.

File ``__metadata__`` (all values are strings):

==================  ==========================================================================
``format``          ``unet``
``format_version``  ``1``
``in_channels``     decimal integer
``num_classes``     decimal integer
``base_channels``   decimal integer
``levels``          decimal integer, 1..8
``padding``         ``valid`` or ``same``
``normalization``   optional: ``none``, ``percentile:LO:HI``, ``mean_std:M:S``, ``min_max:A:B``
``class_names``     optional: comma-separated, one per class
anything else       free-form provenance (kept and ignored by readers)
==================  ==========================================================================

Every tensor of one file has the same dtype (F32, F16 or BF16). Files are written by
:func:`write_safetensors`, which is byte-deterministic (the safetensors library orders
``__metadata__`` by hash, so equal models would give different bytes) and places data so that
each tensor starts at a multiple of its element size relative to the start of the file: the
header is padded with spaces to a multiple of 8 and tensors are laid out widest dtype first,
then by name, exactly as the library does. :func:`save_model` checks the alignment and reads the
file back with the safetensors library.

Outputs: logits ``[num_classes, H_out, W_out]``; probabilities are the softmax over classes;
labels are the arg-max over classes with ties going to the lowest class index
(``torch.argmax`` returns the first maximum) — see :func:`outputs`.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

FORMAT_NAME = "unet"
FORMAT_VERSION = 1
MAX_LEVELS = 8
PADDINGS = ("valid", "same")
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
_ST_DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "U8": 1, "I64": 8, "I32": 4}
_RESERVED = (
    "format",
    "format_version",
    "in_channels",
    "num_classes",
    "base_channels",
    "levels",
    "padding",
    "normalization",
    "class_names",
)


# --------------------------------------------------------------------------------------------
# Geometry (mirror of unet-core/src/geometry.rs)
# --------------------------------------------------------------------------------------------


def sizes(n: int, levels: int, padding: str) -> Dict[str, object]:
    """Feature-map sizes along one dimension for input size ``n``.

    Returns a dict with ``enc_in``, ``enc_mid``, ``enc_out`` (lists over levels), ``up``,
    ``crop``, ``dec_mid``, ``dec_out`` (lists over decoder levels ``0..L-1``) and ``output``.
    Raises ``ValueError`` with the reason if ``n`` is not a legal size (same rules and messages
    as geometry.rs).
    """
    _check_levels_padding(levels, padding)
    loss = 2 if padding == "valid" else 0

    def conv(s: int) -> int:
        if s - loss < 1:
            raise ValueError("too small: a feature map would be empty")
        return s - loss

    if n < 1:
        raise ValueError("size must be at least 1")
    z: Dict[str, object] = {"input": n}
    enc_in, enc_mid, enc_out = [], [], []
    s = n
    for i in range(levels):
        enc_in.append(s)
        enc_mid.append(conv(s))
        enc_out.append(conv(enc_mid[-1]))
        s = enc_out[-1]
        if i + 1 < levels:
            if s % 2:
                raise ValueError("a 2x2 max-pool would see an odd size")
            s //= 2
    up = [0] * (levels - 1)
    crop = [0] * (levels - 1)
    dec_mid = [0] * (levels - 1)
    dec_out = [0] * (levels - 1)
    for i in reversed(range(levels - 1)):
        u = 2 * s
        skip = enc_out[i]
        if u > skip or (skip - u) % 2:
            raise ValueError("skip connection cannot be centre-cropped")
        up[i], crop[i] = u, (skip - u) // 2
        dec_mid[i] = conv(u)
        dec_out[i] = conv(dec_mid[i])
        s = dec_out[i]
    z.update(
        enc_in=enc_in,
        enc_mid=enc_mid,
        enc_out=enc_out,
        up=up,
        crop=crop,
        dec_mid=dec_mid,
        dec_out=dec_out,
        output=s,
    )
    return z


def is_legal(n: int, levels: int, padding: str) -> bool:
    """True if ``n`` is a legal input size along one dimension."""
    try:
        sizes(n, levels, padding)
        return True
    except ValueError:
        return False


def output_size(h: int, w: int, levels: int, padding: str) -> Tuple[int, int]:
    """Output ``(H_out, W_out)`` for an ``h x w`` input; ``ValueError`` if illegal."""
    return sizes(h, levels, padding)["output"], sizes(w, levels, padding)["output"]  # type: ignore


def halo(levels: int, padding: str) -> int:
    """Pixels lost on each side: ``3 * 2**L - 4`` for valid padding, 0 for same."""
    _check_levels_padding(levels, padding)
    return 3 * (1 << levels) - 4 if padding == "valid" else 0


def _check_levels_padding(levels: int, padding: str) -> None:
    if not isinstance(levels, int) or not 1 <= levels <= MAX_LEVELS:
        raise ValueError(f"levels must be an integer in 1..={MAX_LEVELS}, got {levels!r}")
    if padding not in PADDINGS:
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")


# --------------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------------


class DoubleConv(nn.Module):
    """Two 3x3 convolutions, each followed by ReLU (state-dict keys ``conv1.*``, ``conv2.*``)."""

    def __init__(self, cin: int, cout: int, padding: str):
        super().__init__()
        p = 0 if padding == "valid" else 1
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=p)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))))


class UNet(nn.Module):
    """U-Net whose ``state_dict`` is exactly the unet file format's tensor set.

    Input ``[N, in_channels, H, W]`` (a legal tile size, see :func:`sizes`), output logits
    ``[N, num_classes, H_out, W_out]``. ``dropout`` is the drop probability of the slot at the
    end of the contracting path (``nn.Dropout``, no parameters, inactive in ``eval()``).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        base_channels: int,
        levels: int,
        padding: str = "valid",
        dropout: float = 0.0,
    ):
        super().__init__()
        _check_levels_padding(levels, padding)
        for name, v in (
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("base_channels", base_channels),
        ):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.base_channels = base_channels
        self.levels = levels
        self.padding = padding
        c = [base_channels << i for i in range(levels)]
        self.enc = nn.ModuleList(
            DoubleConv(in_channels if i == 0 else c[i - 1], c[i], padding) for i in range(levels)
        )
        self.dropout = nn.Dropout(dropout)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(c[i + 1], c[i], 2, stride=2) for i in range(levels - 1)
        )
        self.dec = nn.ModuleList(DoubleConv(2 * c[i], c[i], padding) for i in range(levels - 1))
        self.head = nn.Conv2d(c[0], num_classes, 1)

    def config(self) -> Dict[str, object]:
        """The architecture hyper-parameters, as :func:`model_metadata` writes them."""
        return dict(
            in_channels=self.in_channels,
            num_classes=self.num_classes,
            base_channels=self.base_channels,
            levels=self.levels,
            padding=self.padding,
        )

    def output_size(self, h: int, w: int) -> Tuple[int, int]:
        """Output size for an ``h x w`` input; ``ValueError`` if the size is not legal."""
        return output_size(h, w, self.levels, self.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected [N, {self.in_channels}, H, W], got {list(x.shape)}")
        self.output_size(x.shape[2], x.shape[3])  # refuse illegal sizes
        skips: List[torch.Tensor] = []
        for i, block in enumerate(self.enc):
            x = block(x)
            if i + 1 < self.levels:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        x = self.dropout(x)
        for i in reversed(range(self.levels - 1)):
            x = self.up[i](x)
            x = torch.cat([centre_crop(skips[i], x.shape[2], x.shape[3]), x], dim=1)
            x = self.dec[i](x)
        return self.head(x)


def centre_crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The centre ``h x w`` window of ``x`` (``[N, C, H, W]``); the margins must be even."""
    dy, dx = x.shape[2] - h, x.shape[3] - w
    if dy < 0 or dx < 0 or dy % 2 or dx % 2:
        raise ValueError(f"cannot centre-crop {list(x.shape[2:])} to {[h, w]}")
    return x[:, :, dy // 2 : dy // 2 + h, dx // 2 : dx // 2 + w]


def outputs(logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(logits, probabilities, labels)`` from logits ``[K, H, W]``: softmax over ``K``; labels
    ``[H, W]`` int64, arg-max over classes with ties to the lowest index."""
    return logits, torch.softmax(logits, dim=0), torch.argmax(logits, dim=0)


# --------------------------------------------------------------------------------------------
# File format
# --------------------------------------------------------------------------------------------


def check_normalization(s: str) -> None:
    """Raises ``ValueError`` unless ``s`` is a spelling unet-core's ``normalize.rs`` accepts."""
    parts = s.split(":")
    kind, args = parts[0], parts[1:]
    want = {"none": 0, "percentile": 2, "mean_std": 2, "min_max": 2}
    if kind not in want or len(args) != want[kind]:
        raise ValueError(f"bad normalization {s!r}: expected none, percentile:LO:HI, mean_std:M:S or min_max:MIN:MAX")
    try:
        a = [float(v) for v in args]
    except ValueError:
        raise ValueError(f"bad normalization {s!r}: parameter is not a number") from None
    if not all(math.isfinite(v) for v in a):
        raise ValueError(f"bad normalization {s!r}: parameter is not finite")
    if kind == "percentile" and not (0 <= a[0] < a[1] <= 100):
        raise ValueError(f"bad normalization {s!r}: need 0 <= LO < HI <= 100")
    if kind == "mean_std" and a[1] == 0:
        raise ValueError(f"bad normalization {s!r}: std must be non-zero")
    if kind == "min_max" and a[0] == a[1]:
        raise ValueError(f"bad normalization {s!r}: min and max must differ")


def model_metadata(
    module: UNet,
    normalization: Optional[str] = None,
    class_names: Optional[Sequence[str]] = None,
    extra_metadata: Optional[Mapping[str, str]] = None,
) -> Dict[str, str]:
    """The ``__metadata__`` dict for ``module`` (see the module docs)."""
    meta = {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION)}
    meta.update({k: str(v) for k, v in module.config().items()})
    if normalization is not None:
        check_normalization(normalization)
        meta["normalization"] = normalization
    if class_names is not None:
        names = list(class_names)
        if len(names) != module.num_classes:
            raise ValueError(f"{len(names)} class names for {module.num_classes} classes")
        if any("," in n or not n for n in names):
            raise ValueError("class names must be non-empty and contain no comma")
        meta["class_names"] = ",".join(names)
    for k, v in (extra_metadata or {}).items():
        if k in _RESERVED:
            raise ValueError(f"extra metadata may not set the reserved key {k!r}")
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValueError("metadata keys and values must be strings")
        meta[k] = v
    return meta


def save_model(
    module: UNet,
    path: "str | os.PathLike[str]",
    dtype: "str | torch.dtype" = torch.float32,
    normalization: Optional[str] = None,
    class_names: Optional[Sequence[str]] = None,
    extra_metadata: Optional[Mapping[str, str]] = None,
) -> None:
    """Writes ``module``'s weights as a unet model file.

    ``dtype`` (``torch.float32/float16/bfloat16`` or ``"f32"/"f16"/"bf16"``) is the stored
    dtype; weights are rounded to it (round to nearest even, as ``Tensor.to``). After writing,
    the file's layout is checked: every tensor starts at a multiple of its element size relative
    to the file start.
    """
    if isinstance(dtype, str):
        dtype = DTYPES[dtype]
    if dtype not in DTYPES.values():
        raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype}")
    meta = model_metadata(module, normalization, class_names, extra_metadata)
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in module.state_dict().items()}
    write_safetensors(path, tensors, meta)


_TORCH_ST_DTYPE = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
}


def write_safetensors(
    path: "str | os.PathLike[str]",
    tensors: Mapping[str, torch.Tensor],
    metadata: Optional[Mapping[str, str]] = None,
) -> None:
    """Writes a safetensors file byte-deterministically: header JSON with ``__metadata__`` first
    (in the given key order), then tensors sorted by (element size descending, name), header
    padded with spaces to a multiple of 8, data contiguous without gaps. Every tensor therefore
    starts at a multiple of its element size relative to the file start. The file is then
    verified: alignment (:func:`check_alignment`) and a full read-back by the safetensors
    library, which must return the same tensors and metadata."""
    from safetensors.torch import load_file
    from safetensors import safe_open

    if sys.byteorder != "little":
        raise RuntimeError("write_safetensors writes native bytes and needs a little-endian host")
    items = []
    for name, t in tensors.items():
        if t.dtype not in _TORCH_ST_DTYPE:
            raise ValueError(f"tensor {name}: unsupported dtype {t.dtype}")
        items.append((name, t.detach().to("cpu").contiguous()))
    items.sort(key=lambda kv: (-kv[1].element_size(), kv[0]))
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name, t in items:
        b = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {
            "dtype": _TORCH_ST_DTYPE[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(b)],
        }
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = os.fspath(path) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
    check_alignment(path)
    back = load_file(os.fspath(path))
    if back.keys() != dict(items).keys() or any(not torch.equal(back[k], t) for k, t in items):
        raise AssertionError(f"{path}: safetensors read back different tensors")
    with safe_open(os.fspath(path), "pt") as f:
        if (f.metadata() or {}) != dict(header.get("__metadata__", {})):  # type: ignore[arg-type]
            raise AssertionError(f"{path}: safetensors read back different metadata")


def read_header(path: "str | os.PathLike[str]") -> Tuple[int, Dict[str, object]]:
    """``(header_len, header)`` of a safetensors file (the JSON after the 8-byte length)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return n, json.loads(f.read(n))


def read_metadata(path: "str | os.PathLike[str]") -> Dict[str, str]:
    """The ``__metadata__`` dict of a safetensors file (empty if absent)."""
    return dict(read_header(path)[1].get("__metadata__", {}))  # type: ignore[arg-type]


def check_alignment(path: "str | os.PathLike[str]") -> None:
    """Raises ``AssertionError`` unless every tensor's data starts at a multiple of its element
    size relative to the file start (so an f32 tensor is 4-byte aligned in an aligned buffer)."""
    n, header = read_header(path)
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin = 8 + n + info["data_offsets"][0]  # type: ignore[index]
        size = _ST_DTYPE_SIZE.get(info["dtype"], 1)  # type: ignore[index]
        if begin % size:
            raise AssertionError(f"{path}: tensor {name} ({info['dtype']}) starts at byte {begin}")


def load_model(path: "str | os.PathLike[str]", dtype: torch.dtype = torch.float32) -> UNet:
    """Rebuilds a :class:`UNet` from a unet model file's metadata and loads its weights with
    ``load_state_dict(strict=True)``. Weights are upcast (exactly) to ``dtype`` (default f32;
    use ``torch.float64`` for an oracle). The module is returned in ``eval()`` mode; the file's
    metadata is attached as ``module.metadata``. Raises ``ValueError`` on a bad format/version."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    if meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: metadata 'format' is {meta.get('format')!r}, expected 'unet'")
    version = meta.get("format_version")
    if version is None or not version.isdigit() or not 1 <= int(version) <= FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format_version {version!r}")
    try:
        module = UNet(
            int(meta["in_channels"]),
            int(meta["num_classes"]),
            int(meta["base_channels"]),
            int(meta["levels"]),
            meta["padding"],
        )
    except KeyError as e:
        raise ValueError(f"{path}: metadata lacks key {e.args[0]!r}") from None
    if "normalization" in meta:
        check_normalization(meta["normalization"])
    module.to(dtype)
    module.load_state_dict(load_file(os.fspath(path)), strict=True)
    module.eval()
    module.metadata = meta  # type: ignore[assignment]
    return module


def he_init_(module: UNet, generator: torch.Generator, bias_std: float = 0.1) -> UNet:
    """Deterministic He-normal weights (std ``sqrt(2 / fan_in)``, fan_in = C_in·k² for convs and
    C_in for the stride-2 transposed convs, whose output pixels each see one tap per input
    channel) and N(0, bias_std²) biases, drawn from ``generator`` in state-dict order."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64) * bias_std)
            else:
                fan_in = p.shape[0] if name.startswith("up.") else p.shape[1] * p.shape[2] * p.shape[3]
                std = math.sqrt(2.0 / fan_in)
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64) * std)
    return module


# --------------------------------------------------------------------------------------------
# Self-test
# --------------------------------------------------------------------------------------------


def _selftest() -> None:
    import tempfile

    # Geometry: the paper's tile and the rules of geometry.rs.
    assert output_size(572, 572, 5, "valid") == (388, 388)
    assert halo(5, "valid") == 92
    z = sizes(572, 5, "valid")
    assert z["enc_out"] == [568, 280, 136, 64, 28] and z["crop"] == [88, 40, 16, 4], z
    assert not is_legal(571, 5, "valid") and not is_legal(573, 5, "valid")
    assert output_size(64, 72, 4, "same") == (64, 72) and not is_legal(60, 4, "same")
    assert output_size(5, 9, 1, "valid") == (1, 5)

    # The state dict is exactly the file format's tensor set.
    m = UNet(2, 3, 4, 3, "valid")
    keys = list(m.state_dict())
    want = []
    for i in range(3):
        want += [f"enc.{i}.conv{c}.{t}" for c in (1, 2) for t in ("weight", "bias")]
    for i in range(2):
        want += [f"up.{i}.{t}" for t in ("weight", "bias")]
    for i in range(2):
        want += [f"dec.{i}.conv{c}.{t}" for c in (1, 2) for t in ("weight", "bias")]
    want += ["head.weight", "head.bias"]
    assert sorted(keys) == sorted(want), keys
    assert len(keys) == 10 * 3 - 4
    sd = m.state_dict()
    assert sd["up.1.weight"].shape == (16, 8, 2, 2) and sd["dec.0.conv1.weight"].shape == (4, 8, 3, 3)
    assert sd["enc.0.conv1.weight"].shape == (4, 2, 3, 3) and sd["head.weight"].shape == (3, 4, 1, 1)

    he_init_(m, torch.Generator().manual_seed(1))
    m.eval()
    x = torch.randn(1, 2, 60, 68, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = m(x)
    assert y.shape == (1, 3, 20, 28), y.shape
    try:
        m(torch.zeros(1, 2, 61, 68))
        raise AssertionError("an illegal size was accepted")
    except ValueError:
        pass

    with tempfile.TemporaryDirectory() as d:
        for name, dt in DTYPES.items():
            path = os.path.join(d, f"m.{name}.safetensors")
            save_model(
                m, path, dt, normalization="percentile:1:99.8", class_names=["bg", "cell", "edge"],
                extra_metadata={"epochs": "3"},
            )
            meta = read_metadata(path)
            assert meta["format"] == "unet" and meta["format_version"] == "1"
            assert meta["levels"] == "3" and meta["padding"] == "valid" and meta["epochs"] == "3"
            assert meta["class_names"] == "bg,cell,edge"
            _, header = read_header(path)
            assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {
                {"f32": "F32", "f16": "F16", "bf16": "BF16"}[name]
            }
            r = load_model(path)
            for k, v in m.state_dict().items():
                assert torch.equal(r.state_dict()[k], v.to(dt).float()), k
            with torch.no_grad():
                yr = r(x)
            if name == "f32":
                assert torch.equal(yr, y)
            else:
                assert (yr - y).abs().max() < 0.1 * y.abs().max()
        # Byte-deterministic: the same model and metadata give the same bytes.
        a, b = os.path.join(d, "a.safetensors"), os.path.join(d, "b.safetensors")
        for p in (a, b):
            save_model(m, p, "f16", class_names=["x", "y", "z"], extra_metadata={"k": "v", "j": "w"})
        with open(a, "rb") as fa, open(b, "rb") as fb:
            assert fa.read() == fb.read()
        try:
            save_model(m, os.path.join(d, "bad.safetensors"), extra_metadata={"levels": "9"})
            raise AssertionError("a reserved key was overridden")
        except ValueError:
            pass
    print("unet_ref selftest: ok")


if __name__ == "__main__":
    if sys.argv[1:] == ["--selftest"]:
        _selftest()
    else:
        print(__doc__)
        print("usage: unet_ref.py --selftest")
        sys.exit(2)
