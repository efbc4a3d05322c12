"""Time and memory against data size on synthetic power-law data (``fusionrec.data.synth``).

Each case runs in its own process (``_scale_worker.py``) so the peak RSS reported is that model's. The
slope is d log(seconds) / d log(interactions) between the two largest sizes a model ran at: 1 is linear.
Torch models run one epoch (their batch grows with the data so an epoch is a few dozen steps). The last rows
compare one process with two gloo ranks (torchrun) on the same data: on a 2-core machine little gain is
expected; the point is that it runs, and scales with machines.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (users, items, interactions)
SIZES_QUICK = [(10_000, 2_000, 100_000), (100_000, 10_000, 1_000_000)]
SIZES_FULL = [*SIZES_QUICK, (1_000_000, 100_000, 10_000_000)]

# model -> (params, largest interactions it is run at)
CASES = {
    "als": ({"factors": 64, "epochs": 10}, 10_000_000),
    "itemknn": ({}, 1_000_000),
    "lightgcn": ({"factors": 64, "epochs": 1, "batch_size": 262_144}, 10_000_000),
    "freedom": ({"factors": 64, "epochs": 1, "batch_size": 262_144}, 1_000_000),
    "evaluator": ({}, 10_000_000),
}


def _worker(model: str, size: tuple[int, int, int], params: dict) -> dict:
    cmd = [sys.executable, str(HERE / "_scale_worker.py"), model, *map(str, size)]
    cmd += [f"{k}={json.dumps(v)}" for k, v in params.items()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{model} at {size}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ranks(size: tuple[int, int, int], ranks: int, workdir: Path) -> float:
    """Seconds per epoch of lightgcn fitted through the CLI with ``ranks`` processes."""
    data = workdir / "data"
    if not data.exists():
        subprocess.run(
            [sys.executable, "-m", "fusionrec", "synth", "--users", str(size[0]), "--items", str(size[1])]
            + ["--interactions", str(size[2]), "--modalities", "", str(data), "--quiet"],
            check=True,
        )
    out = workdir / f"art-{ranks}"
    fit = ["fit", "--data", str(data), "--model", "lightgcn", "--no-eval", "--quiet", "--out", str(out)]
    fit += ["--param", "epochs=2", "--param", "factors=64", "--param", "batch_size=65536"]
    if ranks > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
        cmd += ["-m", "fusionrec", *fit]
    else:
        cmd = [sys.executable, "-m", "fusionrec", *fit]
    subprocess.run(cmd, check=True, capture_output=True, timeout=3600)
    info = json.loads((out / "model.json").read_text())
    return float(info["state"]["epoch_seconds_"]) if "state" in info else float("nan")


def run(quick: bool = False) -> list[dict]:
    sizes = SIZES_QUICK if quick else SIZES_FULL
    rows: list[dict] = []
    load = os.getloadavg()[0]
    for model, (params, cap) in CASES.items():
        points = []
        for size in sizes:
            if size[2] > cap:
                continue
            t0 = time.perf_counter()
            r = _worker(model, size, params)
            key = "s_per_epoch" if "s_per_epoch" in r else "seconds"
            label = f"{model} {size[0]:.0e} users x {size[1]:.0e} items x {r['interactions']:.1e}"
            rows.append(
                {
                    "bench": "scale",
                    "case": label,
                    "value": r[key],
                    "unit": {"s_per_epoch": "s/epoch", "seconds": "s"}[key],
                }
            )
            rows.append({"bench": "scale", "case": label, "value": r["peak_rss_mib"], "unit": "MiB peak RSS"})
            points.append((r["interactions"], r[key]))
            print(f"# scale {label}: {r} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
        if len(points) >= 2:
            (n0, t0_), (n1, t1) = points[-2], points[-1]
            slope = math.log(t1 / t0_) / math.log(n1 / n0)
            rows.append({"bench": "scale", "case": f"{model} time slope", "value": slope, "unit": "log-log"})
    size = sizes[1]
    with tempfile.TemporaryDirectory() as tmp:
        one = _ranks(size, 1, Path(tmp))
        two = _ranks(size, 2, Path(tmp))
    note = f"{size[0]:.0e} users, load {load:.1f}"
    rows.append({"bench": "scale", "case": "lightgcn 1 rank", "value": one, "unit": "s/epoch", "note": note})
    rows.append(
        {"bench": "scale", "case": "lightgcn 2 gloo ranks", "value": two, "unit": "s/epoch", "note": note}
    )
    return rows
