"""How far late fusion can go on a data set: weights fitted on valid (the honest row) against weights fitted on
test itself (a ceiling no honest protocol reaches), for collaborative-only and multimodal sets of scorers.

    python bench/fusion_ceiling.py runs/bench-mm --seeds 1,2,3 [--masking train]

The scorers are fitted once per seed on train (valid for early stopping): ALS and EASE at the README's benchmark
settings, BM25 item-kNN; VBPR at its defaults, content-als and content-ease at ALS's and EASE's settings, and one
content-kNN per modality of the data (so a modality can get its own weight). Each set's weights come from the
coordinate search late-fusion uses. The "fitted on test" column chooses them on the test items: it is a
diagnostic of what the scorers could give together, never a result.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

COLLABORATIVE = {
    "als": {"factors": 256, "reg": 20.0, "alpha": 2.0},
    "ease": {"reg": 100.0, "bias_reg": None},
    "itemknn": {"similarity": "bm25", "neighbors": 100, "popularity": 0.0},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", help="data directory with its split and feature files")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--masking", default="train", choices=["train", "train+valid"])
    args = p.parse_args()

    from fusionrec.data.loaders import load_dataset
    from fusionrec.data.splits import split_dataset
    from fusionrec.evaluation import VALIDATOR
    from fusionrec.models.fusion.scoring import zscore_rows
    from fusionrec.models.late_fusion import validation_weights
    from fusionrec.pipeline import build_model

    ds = load_dataset(args.data)
    split = split_dataset(ds)
    train, valid, test = split.train, split.valid, split.test
    modalities = list(ds.features) if ds.features is not None else []
    metrics = ["recall@20", "ndcg@20"]
    users = np.flatnonzero((np.diff(valid.indptr) > 0) | (np.diff(test.indptr) > 0))
    test_exclude = train if args.masking == "train" else (train + valid).tocsr()

    row = np.full(train.shape[0], -1, np.int64)  # user index -> row of the score blocks
    row[users] = np.arange(len(users))

    def test_metrics(fused: np.ndarray) -> tuple[float, float]:
        res = VALIDATOR(lambda u: fused[row[u]], test, test_exclude, metrics, batch_size=len(users))
        return res["recall@20"], res["ndcg@20"]

    scorers: dict[str, dict] = dict(COLLABORATIVE)
    scorers["vbpr"] = {}
    scorers["content-als"] = {**COLLABORATIVE["als"]}
    scorers["content-ease"] = {**COLLABORATIVE["ease"]}
    scorers.update({f"content-knn:{m}": {"modalities": [m]} for m in modalities})
    sets = {
        "collaborative (als, ease, itemknn)": list(COLLABORATIVE),
        "multimodal (+ vbpr, content-als, content-ease, content-knn per modality)": list(scorers),
    }
    rows: dict[str, list[tuple[float, ...]]] = {name: [] for name in sets}
    for seed in [int(s) for s in args.seeds.split(",")]:
        blocks = {}
        for label, params in scorers.items():
            t0 = time.perf_counter()
            model = build_model(label.split(":")[0], params, seed=seed, show_progress=False)
            model.fit(train, ds.features, valid=valid, validate=VALIDATOR)
            blocks[label] = zscore_rows(model.score(users))
            print(f"seed {seed}: {label} fitted in {time.perf_counter() - t0:.1f} s", flush=True)
        for name, members in sets.items():
            parts = [blocks[m] for m in members]
            result = []
            for target, exclude in ((valid, train), (test, test_exclude)):
                w, _ = validation_weights(VALIDATOR, parts, users, exclude, target, metrics)
                fused = sum(float(x) * b for x, b in zip(w, parts, strict=True))
                result.extend(test_metrics(np.asarray(fused, np.float32)))
            rows[name].append(tuple(result))
            print(
                f"seed {seed}: {name}: valid-fitted / test-fitted R@20, N@20 {np.round(result, 4)}",
                flush=True,
            )

    base = np.array(rows[next(iter(sets))]).mean(axis=0)
    print("\n| scorers | weights fitted on valid: R@20 / N@20 | fitted on test (ceiling): R@20 / N@20 |")
    print("|---|---|---|")
    for name, res in rows.items():
        a = np.array(res)
        mean, std = a.mean(axis=0), a.std(axis=0)
        cells = [
            f"{mean[i]:.4f} ± {std[i]:.4f} ({mean[i] / base[i]:.3f} ×) / "
            f"{mean[i + 1]:.4f} ± {std[i + 1]:.4f} ({mean[i + 1] / base[i + 1]:.3f} ×)"
            for i in (0, 2)
        ]
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    print("ratios: against the collaborative set in the same column")


if __name__ == "__main__":
    main()
