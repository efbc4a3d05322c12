"""One scale case in its own process (so its peak RSS is its own): prints one JSON line.

    python bench/_scale_worker.py MODEL USERS ITEMS INTERACTIONS [key=value ...]

MODEL is a registered model name, or ``evaluator`` (ranking a user sample over every item with random
64-d factors). Torch models run one epoch without validation and report seconds per epoch.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np
import scipy.sparse as sp


def main() -> None:
    name, n_users, n_items, n_inter = sys.argv[1], *map(int, sys.argv[2:5])
    params = {}
    for kv in sys.argv[5:]:
        k, _, v = kv.partition("=")
        params[k] = json.loads(v)
    from fusionrec.data.dataset import Features
    from fusionrec.data.synth import SynthSpec, generate

    t0 = time.perf_counter()
    users, items, feats, _ = generate(
        SynthSpec(
            n_users=n_users, n_items=n_items, n_interactions=n_inter, modalities={"image": 64, "text": 32}
        )
    )
    x = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_items))
    gen_s = time.perf_counter() - t0
    row: dict = {"model": name, "users": n_users, "items": n_items, "interactions": int(x.nnz)}
    if name == "evaluator":
        from fusionrec.evaluation.evaluator import evaluate_scores

        rng = np.random.default_rng(0)
        uf = rng.standard_normal((n_users, 64), dtype=np.float32)
        itf = rng.standard_normal((n_items, 64), dtype=np.float32)
        sample = sp.csr_matrix(x[: min(n_users, 10_000)])
        target = sp.vstack([sample, sp.csr_matrix((n_users - sample.shape[0], n_items), dtype=np.float32)])
        t0 = time.perf_counter()
        evaluate_scores(lambda u: uf[u] @ itf.T, sp.csr_matrix(target), None, metrics=("recall@20",))
        row["seconds"] = time.perf_counter() - t0
        row["users_per_s"] = sample.shape[0] / row["seconds"]
    else:
        from fusionrec.models.registry import create_model

        model = create_model(name, params)
        model.show_progress = False
        features = Features()
        for m, v in feats.items():
            features.add(m, v)
        t0 = time.perf_counter()
        model.fit(x, features if model.uses_features else None)
        row["seconds"] = time.perf_counter() - t0
        if getattr(model, "is_torch", False):
            row["s_per_epoch"] = float(model.epoch_seconds_)
    row["generate_s"] = gen_s
    row["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(row))


if __name__ == "__main__":
    main()
