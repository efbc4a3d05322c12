"""Default models against most-popular on dense and sparse data: R@20 / N@20 on test (mean ± std over seeds).

    python bench/sparse_defaults.py runs/sparse5 runs/bench-mm --models most-popular,als,ease,itemknn \
        --seeds 1,2,3 [--param als.reg=20] [--masking train]

Each directory is loaded as `fusionrec fit --data DIR` would (its own split, else ratio 8:1:1 with seed 2026,
feature files beside it); every model is fitted with its defaults (plus any ``--param MODEL.KEY=VALUE``) on
train with valid for early stopping, once per seed for models with a ``random_state``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", nargs="+", help="data directories")
    p.add_argument("--models", default="most-popular,itemknn,userknn,ease,als")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--param", action="append", default=[], help="MODEL.KEY=VALUE (JSON value or text)")
    p.add_argument("--masking", default="train")
    args = p.parse_args()

    from fusionrec.data.loaders import load_dataset
    from fusionrec.data.splits import split_dataset
    from fusionrec.evaluation import evaluate
    from fusionrec.pipeline import build_model, fit_artifact

    overrides: dict[str, dict] = {}
    for item in args.param:
        key, _, value = item.partition("=")
        model, _, name = key.partition(".")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        overrides.setdefault(model, {})[name] = parsed
    seeds = [int(s) for s in args.seeds.split(",")]
    for data in args.data:
        ds = load_dataset(data)
        split = split_dataset(ds)
        deg = np.diff(split.train.indptr)
        print(
            f"## {data}: {split.train.shape[0]} users, {split.train.shape[1]} items, {split.train.nnz} train"
        )
        print(
            f"   (per user: mean {deg.mean():.1f}; density {split.train.nnz / np.prod(split.train.shape):.2e})"
        )
        for name in args.models.split(","):
            params = overrides.get(name, {})
            stochastic = "random_state" in build_model(name, params).param_defaults()
            rows = []
            for seed in seeds if stochastic else seeds[:1]:
                model = build_model(name, params, seed=seed, show_progress=False)
                t0 = time.perf_counter()
                fit_artifact(ds, split, model, seed=seed)
                secs = time.perf_counter() - t0
                m = evaluate(model, split, masking=args.masking).metrics
                rows.append((m["recall@20"], m["ndcg@20"], secs))
            r, n, s = np.array(rows).T
            print(
                f"{name:14s} R@20 {r.mean():.4f} ± {r.std():.4f}  N@20 {n.mean():.4f} ± {n.std():.4f}  "
                f"fit {s.mean():.1f} s  ({len(rows)} seed{'s' * (len(rows) > 1)})",
                flush=True,
            )


if __name__ == "__main__":
    main()
