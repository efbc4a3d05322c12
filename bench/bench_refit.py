"""Warm refit against a cold fit (`fusionrec refit`), on the bundled demo ratings, 5-core.

Two cases per model: ``same data`` refits the artifact on the data it was fitted on; ``new data`` fits on
an older part of the data (users in the first 90 % of ids, without every 40th movie) and refits on all of
it, against a cold fit on all of it. Both fits see the same split and seed (with every pair the older fit
trained on kept in train, as `fusionrec refit` splits); each model is fitted once before
the timings so that no row pays a process's first-use costs. Rows are means ± std over the seeds.

    python bench/run.py refit            # seeds 1-3
    python bench/run.py refit --quick    # seed 1, smaller torch patience
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RATINGS = REPO / "src" / "fusionrec" / "demo_data" / "ratings.csv"

# the demo's ALS; the torch models with their own defaults (lightgcn with a shorter patience: 20 epochs
# of patience at ~2 s an epoch on this machine made one cold fit take minutes)
MODELS = {
    "als": {"factors": 128, "reg": 20.0, "alpha": 2.0},
    "bpr-torch": {},
    "lightgcn": {"patience": 5},
}


def _tables(root: Path) -> dict[str, Path]:
    import pandas as pd

    df = pd.read_csv(RATINGS).rename(columns={"userId": "user_id", "movieId": "item_id"})
    users = np.sort(df["user_id"].unique())
    movies = np.sort(df["item_id"].unique())
    old = df[(df["user_id"] <= users[int(len(users) * 0.9)]) & ~df["item_id"].isin(movies[::40])]
    paths = {"full": root / "full.csv", "old": root / "old.csv"}
    df.to_csv(paths["full"], index=False)
    old.to_csv(paths["old"], index=False)
    return paths


def _fit(ds, name: str, params: dict, seed: int, warm_from=None, split_like=None):
    """A fit; ``split_like``: an artifact whose training pairs stay in train (as `fusionrec refit` splits)."""
    from fusionrec.data.splits import split_dataset
    from fusionrec.evaluation import evaluate
    from fusionrec.pipeline import build_model, fit_artifact, keep_trained_in_train, warm_start_from

    split = split_dataset(ds, "ratio", seed=seed)
    if split_like is not None:
        split, _ = keep_trained_in_train(split, split_like, ds)
    model = build_model(name, params, seed=seed, show_progress=False)
    warm = warm_start_from(warm_from, ds) if warm_from is not None else None
    art, seconds = fit_artifact(ds, split, model, seed=seed, warm_start=warm)
    epochs = getattr(model, "epochs_run_", None) or model.get_params().get("epochs")
    valid = evaluate(model, split, on="valid", metrics=["recall@20"]).metrics["recall@20"]
    return art, {"seconds": seconds, "epochs": float(epochs), "valid": valid}


def _stat(values: list[float], digits: int) -> str:
    a = np.asarray(values, dtype=np.float64)
    return f"{a.mean():.{digits}f} ± {a.std():.{digits}f}"


def run(quick: bool = False) -> list[dict]:
    import logging
    import os

    from fusionrec.data.loaders import LoadOptions, load_dataset

    logging.getLogger("fusionrec").setLevel(logging.WARNING)
    seeds = [1] if quick else [1, 2, 3]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = _tables(Path(tmp))
        data = {k: load_dataset(p, None, LoadOptions(kcore=5)) for k, p in paths.items()}
        for name, params in MODELS.items():
            params = {**params, **({"patience": 3} if quick and name != "als" else {})}
            _fit(data["old"], name, params, seed=0)  # first-use costs (thread pools, lazy imports) land here
            got: dict[str, dict[str, list[float]]] = {}
            for seed in seeds:
                old_art, cold_old = _fit(data["old"], name, params, seed)
                _, warm_same = _fit(data["old"], name, params, seed, warm_from=old_art)
                _, cold_full = _fit(data["full"], name, params, seed, split_like=old_art)
                _, warm_full = _fit(data["full"], name, params, seed, warm_from=old_art, split_like=old_art)
                for case, cold, warm in (
                    ("same data", cold_old, warm_same),
                    ("new data", cold_full, warm_full),
                ):
                    for side, r in (("cold", cold), ("warm", warm)):
                        for k, v in r.items():
                            got.setdefault(case, {}).setdefault(f"{side} {k}", []).append(v)
            for case, g in got.items():
                ratio = np.asarray(g["warm seconds"]) / np.asarray(g["cold seconds"])
                rows.append(
                    {
                        "bench": "refit",
                        "case": f"{name} {case}: warm / cold seconds",
                        "value": float(ratio.mean()),
                        "unit": "x",
                        "note": f"warm {_stat(g['warm seconds'], 2)} s ({_stat(g['warm epochs'], 1)} ep), "
                        f"cold {_stat(g['cold seconds'], 2)} s ({_stat(g['cold epochs'], 1)} ep); valid R@20 "
                        f"warm {_stat(g['warm valid'], 4)}, cold {_stat(g['cold valid'], 4)}; "
                        f"seeds {seeds}, load {os.getloadavg()[0]:.1f}",
                    }
                )
    return rows
