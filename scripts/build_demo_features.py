"""Build the bundled demo features (src/fusionrec/demo_data/features/) from the MovieLens posters and texts.

    python scripts/build_demo_features.py [--data ../shared/data/movielens-small-mm] [--min-ratings 5]

Poster features: EfficientNet-Lite0 ImageNet, 1280-d pooled (stored as float16); text features:
all-MiniLM-L6-v2, 384-d normalised (float16), of "title. genres: .... tags: ...". Only movies with at least
``--min-ratings`` ratings get a row (the rest are absent, so the folder stays small); the posters themselves
are never copied. The manifest records the extractor configs so the server can featurise new items alike.
Re-running is cheap: extraction goes through the feature cache.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "movielens-small-mm"
OUT = REPO / "src" / "fusionrec" / "demo_data" / "features"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MovieLens directory with posters/")
    ap.add_argument("--min-ratings", type=int, default=5, help="movies with fewer ratings get no row")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--cache", help="feature cache directory (default: ~/.cache/fusionrec/features)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s"
    )

    from fusionrec.data.loaders import load_movielens
    from fusionrec.features import run_extraction

    root = args.data.resolve()
    if not (root / "posters").is_dir():
        print(
            f"error: {root}/posters not found; pass --data DIR (a MovieLens directory with posters/)",
            file=sys.stderr,
        )
        return 2
    t0 = time.perf_counter()
    ds = load_movielens(root)
    counts = np.bincount(ds.items, minlength=ds.n_items)
    keep = np.flatnonzero(counts >= args.min_ratings)
    assert ds.content is not None
    content = ds.content.subset(keep)
    res = run_extraction(
        content, image="cnn", text="sentence", cache=args.cache, show_progress=not args.quiet
    )
    raw_ids = [str(r) for r in ds.item_ids.raw_ids[keep]]

    # written beside the destination and renamed into place, so a failed run leaves the old folder intact
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".features-", dir=args.out.parent))
    try:
        for name in res.features:
            # float16 halves the package size; cosine neighbourhoods are unchanged at this precision
            np.save(tmp / f"{name}_feat.npy", res.features[name].astype(np.float16))
            np.save(tmp / f"{name}_mask.npy", res.features.mask(name))
        pd.DataFrame({"item_id": raw_ids}).to_csv(tmp / "items.csv", index=False)
        manifest = {
            "modalities": res.features.dims,
            "items": len(raw_ids),
            "dtype": "float16",
            "extractors": res.features.extractors,
            "source": f"MovieLens posters and texts, movies with >= {args.min_ratings} ratings",
            "present": {n: int(res.features.mask(n).sum()) for n in res.features},
            "built_with": "scripts/build_demo_features.py",
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if args.out.exists():
            shutil.rmtree(args.out)
        tmp.rename(args.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in args.out.iterdir())
    for r in res.reports.values():
        print(r.summary())
    print(f"wrote {args.out} ({len(raw_ids)} items, {size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
