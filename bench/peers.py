#!/usr/bin/env python3
"""unet-core against other CPU runtimes, on the same weights and the same input.

One run of this script, for each preset (``paper``: levels 5, base 64; ``base16``: levels 5,
base 16; both 1 input channel, 2 classes, 'valid' padding, a 572x572 tile -> 388x388):

1. writes a model file with deterministic He-normal weights (``tests/reference/unet_ref.py``:
   ``he_init_`` + ``save_model``), or takes the one given with ``--model``, and a fixed random
   input tile (raw f32);
2. runs unet-core's ``bench_tile`` example on that file and input (``MODEL=``, ``INPUT=``,
   ``LOGITS=``, ``THREADS=``; built with ``--features rayon``, so 2 threads use
   ``RayonExecutor``);
3. exports the same module to ONNX (``torch.onnx.export``) and runs ONNX Runtime, OpenVINO and
   PyTorch eager (``torch.inference_mode``) with the same thread counts, each runtime in its own
   process: one warm-up run, then ``--runs`` timed runs, median reported; ``--rounds`` repeats
   that over all runtimes (each round starting with another), every 1-thread process on the
   same CPU (``--pin``, default 0);
4. prints one table: median ms, GFLOP/s (FLOPs of the plan, as ``bench_tile`` prints them:
   300.9 GFLOP for the paper tile), time relative to the fastest peer at the same thread count,
   and memory: unet-core's exact scratch bytes, and for every runtime the growth of its peak
   resident set (``ru_maxrss``) over the timed part of its process (after the model and input
   were loaded, so the growth is what running a tile needs: activations, workspaces, output);
5. checks that everybody computed the same model: max |logit difference| of unet-core (1 and
   2 threads), PyTorch and OpenVINO against ONNX Runtime (1 thread), failing above ``--tol``.

Not part of CI (minutes of CPU and ~3 GB of Python packages). Packages, as measured::

    pip install torch==2.15.0 onnx==1.23.2 onnxscript==0.7.2 onnxruntime==1.32.0 \\
        openvino==2026.4.1 safetensors==0.8.0 numpy==2.4.6

(any torch build works: only its CPU path is used; a CPU-only wheel is much smaller.) Run from
the repository root::

    python3 bench/peers.py                      # both presets, 1 and 2 threads, 3 runs
    python3 bench/peers.py --preset base16 --runs 5 --threads 1,2,4
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRESETS = {"paper": (5, 64), "base16": (5, 16)}
TILE = 572
CLASSES = 2


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# Worker processes: one runtime, one thread count. Prints one JSON line.
# ------------------------------------------------------------------------------------------


def proc_status_bytes(key: str) -> int:
    """`VmRSS` / `VmHWM` of this process from /proc/self/status (Linux), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise SystemExit(f"no {key} in /proc/self/status")


def reset_peak_rss() -> None:
    """Resets the peak RSS (`VmHWM`) to the current RSS (Linux ≥ 4.0: clear_refs `5`)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def worker(args: argparse.Namespace) -> None:
    import numpy as np

    threads = args.threads_one
    if args.worker != "export":
        x = np.fromfile(args.input, dtype="<f4").reshape(1, 1, TILE, TILE)
    if args.worker == "torch":
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        sys.path.insert(0, str(ROOT / "tests" / "reference"))
        from unet_ref import load_model

        model = load_model(args.model)
        xt = torch.from_numpy(x)

        def run():
            with torch.inference_mode():
                return model(xt).numpy()

    elif args.worker == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name

        def run():
            return sess.run(None, {name: x})[0]

    elif args.worker == "openvino":
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(
            args.onnx,
            "CPU",
            {
                "INFERENCE_NUM_THREADS": threads,
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": "f32",
            },
        )
        req = compiled.create_infer_request()

        def run():
            return req.infer([x])[compiled.output(0)].copy()

    elif args.worker == "export":
        if args.write:
            make_model(Path(args.model), *PRESETS[args.preset], args.seed)
        export_onnx(Path(args.model), Path(args.onnx))
        return

    else:
        raise SystemExit(f"unknown worker {args.worker}")

    # Peak RSS from here on (warm-up included) minus the RSS now: what running a tile needs.
    reset_peak_rss()
    base = proc_status_bytes("VmRSS")
    out = run()  # warm-up
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t)
    peak = proc_status_bytes("VmHWM")
    np.asarray(out, dtype="<f4").reshape(-1).tofile(args.out)
    print(
        json.dumps(
            {
                "median_ms": statistics.median(times) * 1e3,
                "times_ms": [t * 1e3 for t in times],
                "rss_growth": peak - base,
            }
        ),
        flush=True,
    )


def run_child(cmd: list[str], env: dict | None = None,
              cpus: set[int] | None = None) -> tuple[str, int]:
    """Runs `cmd` (on the CPUs `cpus`, if given), returns (stdout, the child's own peak RSS in
    bytes); raises on failure."""
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True, preexec_fn=pin)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with {p.returncode}")
    return out, usage.ru_maxrss * 1024


# ------------------------------------------------------------------------------------------
# The driver.
# ------------------------------------------------------------------------------------------


def make_model(path: Path, levels: int, base: int, seed: int) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    from unet_ref import UNet, he_init_, save_model

    m = UNet(1, CLASSES, base, levels, "valid")
    he_init_(m, torch.Generator().manual_seed(seed))
    save_model(m, path, torch.float32, normalization="none")


def export_onnx(model_path: Path, onnx_path: Path) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    from unet_ref import load_model

    m = load_model(model_path)
    x = torch.zeros(1, 1, TILE, TILE)
    # The dynamo exporter (torch.export): the TorchScript tracer turns the centre crop's sizes
    # into tensors, which unet_ref's size checks refuse. One self-contained file.
    torch.onnx.export(m, (x,), str(onnx_path), input_names=["x"], output_names=["logits"],
                      dynamo=True, external_data=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="both", choices=["paper", "base16", "both"])
    ap.add_argument("--runs", type=int, default=3, help="timed runs per round (after a warm-up)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="rounds over all runtimes; the table gives the median of their medians")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--model", help="take this model file instead of writing one (one preset)")
    ap.add_argument("--workdir", help="where files go (default: a temporary directory)")
    ap.add_argument("--seed", type=int, default=2015)
    ap.add_argument("--tol", type=float, default=1e-3, help="max |logit diff| allowed vs ORT")
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--pin", type=int, default=0, metavar="CPU",
                    help="run every 1-thread process on this CPU (-1: wherever the OS puts it); "
                         "the CPUs of a shared machine can differ in speed for minutes, and a "
                         "1-thread process is as fast as the one it lands on")
    # Internal: run one runtime in this process.
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--threads-one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--onnx", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--write", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.runs < 1 or args.rounds < 1:
        raise SystemExit("--runs and --rounds must be at least 1")
    if args.worker:
        if args.preset == "both":
            args.preset = "paper"
        worker(args)
        return

    threads = [int(t) for t in args.threads.split(",")]
    presets = ["paper", "base16"] if args.preset == "both" else [args.preset]
    if args.model and len(presets) != 1:
        raise SystemExit("--model needs one --preset (its tile size is taken from the preset)")
    # Without --workdir the files (~300 MB for the paper tile) go to a temporary directory that
    # is removed at the end, whether the comparison passed, failed or was interrupted.
    work = Path(args.workdir or tempfile.mkdtemp(prefix="unet-peers-"))
    work.mkdir(parents=True, exist_ok=True)
    log(f"files in {work}" + ("" if args.workdir else " (removed at the end)"))
    try:
        compare(args, work, threads, presets)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def compare(args, work, threads, presets):
    """Runs every runtime on every preset and thread count; prints the table."""
    import numpy as np

    if not args.skip_build:
        log("building bench_tile (release, rayon)")
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "unet-core", "--features",
                        "rayon", "--example", "bench_tile"], cwd=ROOT, check=True)
    log(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    bench = target / "release" / "examples" / "bench_tile"

    if args.pin >= 0 and args.pin not in os.sched_getaffinity(0):
        raise SystemExit(f"--pin {args.pin}: not a CPU this process may use")
    log("1-thread runs " + (f"pinned to CPU {args.pin}" if args.pin >= 0 else "not pinned"))
    rows = []
    detail = []  # each runtime's round medians
    failed = False
    for preset in presets:
        model = Path(args.model) if args.model else work / f"{preset}.safetensors"
        inp = work / f"{preset}.input.f32"
        rng = np.random.default_rng(args.seed)
        rng.standard_normal((1, TILE, TILE), dtype=np.float32).astype("<f4").tofile(inp)
        onnx = work / f"{preset}.onnx"
        # In a child process, so that this one stays small: a child's peak RSS starts at its
        # parent's RSS when it is forked.
        log(f"[{preset}] {'' if args.model else f'writing {model}, '}exporting {onnx}")
        run_child([sys.executable, __file__, "--worker", "export", "--preset", preset,
                   "--model", str(model), "--onnx", str(onnx), "--seed", str(args.seed)]
                  + ([] if args.model else ["--write"]))

        results = {}
        rounds = {}  # (runtime, threads) -> the median of each round
        runtimes = ["unet-core", "onnxruntime", "openvino", "pytorch"]
        for rnd in range(args.rounds):
            for t in threads:
                # Each round starts with another runtime, so that none always runs first (the
                # machine's speed drifts over minutes).
                cpus = {args.pin} if t == 1 and args.pin >= 0 else None
                for rt in runtimes[rnd % 4:] + runtimes[:rnd % 4]:
                    log(f"[{preset}] round {rnd + 1}/{args.rounds}: {rt}, {t} thread(s)")
                    if rt == "unet-core":
                        env = dict(os.environ, MODEL=str(model), INPUT=str(inp),
                                   THREADS=str(t), LOGITS=str(work / f"{preset}.unet.{t}.f32"),
                                   TILE=str(TILE))
                        out, rss = run_child([str(bench), preset, str(args.runs)], env, cpus)
                        m = re.search(r"RESULT median_ms=(\S+) gflop=(\S+) scratch_bytes=(\d+)",
                                      out)
                        if not m:
                            raise SystemExit(f"bench_tile printed no RESULT line:\n{out}")
                        gflop = float(m.group(2))
                        r = {"median_ms": float(m.group(1)), "scratch": int(m.group(3)),
                             "maxrss": rss}
                    else:
                        short = {"onnxruntime": "ort", "openvino": "openvino",
                                 "pytorch": "torch"}[rt]
                        cmd = [sys.executable, __file__, "--worker", short, "--threads-one",
                               str(t), "--model", str(model), "--onnx", str(onnx), "--input",
                               str(inp), "--runs", str(args.runs), "--out",
                               str(work / f"{preset}.{short}.{t}.f32")]
                        out, rss = run_child(cmd, cpus=cpus)
                        r = json.loads(out.strip().splitlines()[-1])
                        r["maxrss"] = rss
                    rounds.setdefault((rt, t), []).append(r["median_ms"])
                    prev = results.get((rt, t))
                    if prev is not None:
                        r["maxrss"] = max(r["maxrss"], prev["maxrss"])
                    results[(rt, t)] = r
        for key, ms in rounds.items():
            results[key]["median_ms"] = statistics.median(ms)
            results[key]["rounds"] = ms

        # Same model? Everything against ONNX Runtime on 1 thread (or the first count).
        ref = np.fromfile(work / f"{preset}.ort.{threads[0]}.f32", dtype="<f4")
        diffs = {}
        for (rt, t) in results:
            short = {"unet-core": "unet", "onnxruntime": "ort", "openvino": "openvino",
                     "pytorch": "torch"}[rt]
            got = np.fromfile(work / f"{preset}.{short}.{t}.f32", dtype="<f4")
            d = float(np.max(np.abs(got.astype(np.float64) - ref))) if got.shape == ref.shape \
                else float("inf")
            diffs[(rt, t)] = d
            if d > args.tol:
                failed = True
        for t in threads:
            peers = [results[(rt, t)]["median_ms"] for rt in ("onnxruntime", "openvino",
                                                                 "pytorch")]
            best = min(peers)
            for rt in ("unet-core", "onnxruntime", "openvino", "pytorch"):
                r = results[(rt, t)]
                mem = (f"scratch {r['scratch'] / 2**20:.1f} MiB"
                       if rt == "unet-core" else f"+{r['rss_growth'] / 2**20:.1f} MiB")
                rows.append((preset, rt, t, r["median_ms"], gflop * 1e3 / r["median_ms"],
                             r["median_ms"] / best, mem, r["maxrss"] / 2**20, diffs[(rt, t)]))
                detail.append(f"{preset} {rt} {t} thr: "
                              + " / ".join(f"{x:.0f}" for x in r["rounds"]))

    head = ("preset", "runtime", "thr", "median ms", "GFLOP/s", "vs best peer",
            "tile memory", "peak RSS MiB", "max|d| vs ORT")
    fmt = "| {} | {} | {} | {:.0f} | {:.1f} | {:.2f}x | {} | {:.0f} | {:.2e} |"
    pinned = f"1-thread runs on CPU {args.pin}; " if args.pin >= 0 else ""
    print(f"\n{args.rounds} round(s) over all runtimes, each {args.runs} timed runs after 1 "
          f"warm-up (median of the rounds' medians), {TILE}x{TILE} tile, 2 classes, 'valid'; "
          f"{pinned}"
          "time relative to the fastest peer at the same thread count (>1 = slower).")
    print("tile memory: unet-core's exact scratch; peers: growth of peak RSS while running.\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print(fmt.format(*r))
    if args.rounds > 1:
        print("\nround medians, ms (in the order run):")
        for d in detail:
            print("  " + d)
    if failed:
        raise SystemExit(f"logits disagree with ONNX Runtime by more than {args.tol}")


if __name__ == "__main__":
    main()
