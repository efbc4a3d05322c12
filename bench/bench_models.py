"""Collaborative-filtering baselines on the shared benchmark, and the evaluator's full-ranking throughput.

Rows:

- ``fit <model>``: seconds to fit on the benchmark's train part (best of ``repeats``), with test R@20 / N@20
  (MMRec masking) in the note so a speed-up that breaks a model shows;
- ``peak MiB <model>``: peak traced allocation during one fit (numpy and Python heaps via tracemalloc;
  native buffers of ``implicit`` are not traced);
- ``evaluator``: users/s of ``evaluate_scores`` ranking 10,000 items for 5,000 users with 64-d factors, and
  its time relative to the bare matrix product of the same shape in the same batches (goal: ≤ 3×), both in
  wall time and in CPU time with one BLAS thread (steadier on a loaded machine).
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
import scipy.sparse as sp

BENCHMARK = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "movielens-small-mm" / "benchmark"
)

# Settings chosen on the validation split with `fusionrec tune ... --masking train` (see the report).
MODELS = {
    "most-popular": {},
    "itemknn": {"similarity": "bm25", "neighbors": 100},
    "userknn": {"similarity": "cosine", "neighbors": 50},
    "ease": {"reg": 200.0},
    "als": {"factors": 256, "reg": 20.0, "alpha": 2.0},
}


def _best_of(fn, repeats: int, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


def bench_fits(quick: bool) -> list[dict]:
    from fusionrec.data.loaders import load_dataset
    from fusionrec.data.splits import split_dataset
    from fusionrec.evaluation import evaluate
    from fusionrec.pipeline import build_model

    split = split_dataset(load_dataset(BENCHMARK.resolve()))
    rows = []
    for name, params in MODELS.items():
        model = build_model(name, params, seed=2026, show_progress=False)
        seconds = _best_of(lambda m=model: m.fit(split.train), 1 if quick else 3)
        res = evaluate(model, split, masking="train").metrics
        note = f"R@20 {res['recall@20']:.4f} N@20 {res['ndcg@20']:.4f}"
        rows.append({"bench": "models", "case": f"fit {name}", "value": seconds, "unit": "s", "note": note})
        tracemalloc.start()
        build_model(name, params, seed=2026, show_progress=False).fit(split.train)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append(
            {
                "bench": "models",
                "case": f"peak MiB {name}",
                "value": peak / 2**20,
                "unit": "MiB",
                "note": "tracemalloc peak during fit",
            }
        )
    return rows


def bench_evaluator(quick: bool) -> list[dict]:
    from fusionrec.evaluation import evaluate_scores

    rng = np.random.default_rng(0)
    n_users, n_items, dim, batch = (2000 if quick else 5000), 10_000, 64, 1024
    user_f = rng.standard_normal((n_users, dim), dtype=np.float32)
    item_f = rng.standard_normal((n_items, dim), dtype=np.float32)

    def interactions(per_user: int) -> sp.csr_matrix:
        rows = np.repeat(np.arange(n_users), per_user)
        m = sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, rng.integers(0, n_items, len(rows)))),
            shape=(n_users, n_items),
        )
        m.data[:] = 1.0
        return m

    train, target = interactions(50), interactions(10)

    def score(users: np.ndarray) -> np.ndarray:
        return user_f[users] @ item_f.T

    def bare() -> None:
        for start in range(0, n_users, batch):
            score(np.arange(start, min(start + batch, n_users)))

    repeats = 3 if quick else 5
    evaluate_scores(score, target, train, batch_size=batch)  # warm-up
    t_eval = _best_of(lambda: evaluate_scores(score, target, train, batch_size=batch), repeats)
    t_bare = _best_of(bare, repeats)
    # Wall time swings with other load on a small shared machine; CPU time with one BLAS thread on both sides
    # measures the evaluator's own overhead steadily.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        c_eval = _best_of(
            lambda: evaluate_scores(score, target, train, batch_size=batch), repeats, time.process_time
        )
        c_bare = _best_of(bare, repeats, time.process_time)
    shape = f"{n_users} users × {n_items} items, {dim}-d, batches of {batch}"
    return [
        {
            "bench": "models",
            "case": "evaluator users/s",
            "value": n_users / t_eval,
            "unit": "users/s",
            "note": f"full ranking, R/N@10/20, {shape}",
        },
        {
            "bench": "models",
            "case": "evaluator / bare matmul (wall)",
            "value": t_eval / t_bare,
            "unit": "x",
            "note": f"bare {t_bare:.3f}s vs evaluate {t_eval:.3f}s; goal ≤ 3",
        },
        {
            "bench": "models",
            "case": "evaluator / bare matmul (CPU, 1 BLAS thread)",
            "value": c_eval / c_bare,
            "unit": "x",
            "note": f"bare {c_bare:.3f}s vs evaluate {c_eval:.3f}s CPU; goal ≤ 3",
        },
    ]


def run(quick: bool = False) -> list[dict]:
    return bench_fits(quick) + bench_evaluator(quick)


if __name__ == "__main__":
    for row in run(quick=False):
        print(row)
