"""Write a sparse copy of an MMRec data set: at most N training interactions per user, valid/test unchanged.

    python bench/sparse_subsample.py ../shared/data/movielens-small-mm/benchmark runs/sparse5 --per-user 5 \
        [--features runs/bench-mm]

Feature files (``*.npy``) of ``--features`` (or of the source directory) are copied beside the new ``.inter``
so that `fusionrec fit --data OUT` trains on them.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="MMRec directory with one *.inter file carrying x_label")
    p.add_argument("out", help="directory to write")
    p.add_argument("--per-user", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--features", help="directory whose *.npy feature files to copy (default: source)")
    args = p.parse_args()

    from fusionrec.data.loaders import load_dataset
    from fusionrec.data.splits import split_dataset, thin_train

    src = Path(args.source)
    (inter,) = sorted(src.glob("*.inter"))
    ds = load_dataset(src, "mmrec")
    split = thin_train(split_dataset(ds, "given"), args.per_user, seed=args.seed)
    df = pd.read_csv(inter, sep="\t")
    train = split.train.tocoo()
    n_items = split.train.shape[1]
    kept = train.row.astype(np.int64) * n_items + train.col
    keys = df["userID"].to_numpy(np.int64) * n_items + df["itemID"].to_numpy(np.int64)
    is_train = df["x_label"].to_numpy() == 0
    keep = ~is_train | np.isin(keys, kept)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df[keep].to_csv(out / inter.name, sep="\t", index=False)
    for name in ("item_map.csv", "user_map.csv"):
        if (src / name).exists():
            shutil.copyfile(src / name, out / name)
    for f in sorted(Path(args.features or src).glob("*.npy")):
        shutil.copyfile(f, out / f.name)
    print(f"{out}: {int(keep.sum())} rows ({int((keep & is_train).sum())} train) of {len(df)}")


if __name__ == "__main__":
    main()
