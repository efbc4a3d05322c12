"""Training seconds per epoch of the torch models on the shared benchmark, against MMRec's numbers.

Each model trains a few epochs on the benchmark's train split (validation off, so only training is timed)
with its default hyperparameters; the row is the trainer's own ``epoch_seconds_`` (mean training seconds
per epoch: sampling, batches and optimiser steps; graph building before the first epoch is not counted, as
in MMRec's per-epoch figure). Multimodal models use the benchmark's
features when a directory with ``*_feat.npy`` is given (``FUSIONREC_BENCH_MM``, default ``runs/bench-mm``),
otherwise random features of the same shapes (1280-d image, 384-d text): the cost is the same.

    python bench/run.py torch            # 5 epochs per model
    python bench/run.py torch --quick    # 2 epochs per model
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCHMARK = REPO / ".." / "shared" / "data" / "movielens-small-mm" / "benchmark"
MM_DIR = Path(os.environ.get("FUSIONREC_BENCH_MM", REPO / "runs" / "bench-mm"))

# MMRec's training seconds per epoch on this benchmark (shared/docs/targets.md).
MMREC_EPOCH_SECONDS = {"bpr-torch": 0.39, "lightgcn": 1.61, "freedom": 3.14, "bm3": 3.70}


def _data():
    from fusionrec.data.dataset import Features
    from fusionrec.data.loaders import load_dataset
    from fusionrec.data.splits import split_dataset

    if (MM_DIR / "image_feat.npy").exists():
        ds = load_dataset(MM_DIR)
        note = f"features from {MM_DIR.name}"
    else:
        ds = load_dataset(BENCHMARK.resolve())
        rng = np.random.RandomState(0)
        feats = Features(
            {
                "image": rng.rand(ds.n_items, 1280).astype(np.float32),
                "text": rng.normal(size=(ds.n_items, 384)).astype(np.float32),
            }
        )
        ds = ds.with_features(feats)
        note = "random features (1280-d + 384-d)"
    split = split_dataset(ds, None, seed=2026)
    return ds, split, note


def run(quick: bool = False) -> list[dict]:
    from fusionrec.models.registry import create_model

    ds, split, feat_note = _data()
    epochs = 2 if quick else 5
    rows = []
    for name, ref in MMREC_EPOCH_SECONDS.items():
        model = create_model(name, {"epochs": epochs})
        model.show_progress = False
        feats = ds.features if model.uses_features else None
        t0 = time.perf_counter()
        model.fit(split.train, feats)
        total = time.perf_counter() - t0
        per_epoch = model.epoch_seconds_
        note = f"MMRec {ref:.2f} s → {ref / per_epoch:.1f}× faster; fit {total:.1f}s for {epochs} epochs"
        if model.uses_features:
            note += f"; {feat_note}"
        rows.append(
            {"bench": "torch", "case": f"{name} s/epoch", "value": per_epoch, "unit": "s", "note": note}
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows.append(
        {
            "bench": "torch",
            "case": "load average (1 min)",
            "value": load,
            "unit": "",
            "note": f"{os.cpu_count()} cores; others' jobs inflate every timing above",
        }
    )
    return rows
