"""Run every benchmark module in bench/ and print one table.

Each ``bench/bench_*.py`` defines ``run(quick: bool) -> list[dict]``; a row has ``bench``, ``case``, ``value``,
``unit`` and optionally ``note``. Timings are ratios against a baseline measured in the same process where
that makes sense, since these machines are small and noisy.

    python bench/run.py            # everything
    python bench/run.py --quick    # smaller sizes
    python bench/run.py models     # only bench_models.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("only", nargs="*", help="names of bench modules to run (without bench_ prefix)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args()
    rows, failed = [], 0
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if args.only and name not in args.only:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        t0 = time.perf_counter()
        print(f"# running {name} ...", file=sys.stderr, flush=True)
        try:
            got = module.run(quick=args.quick)
        except Exception:
            traceback.print_exc()
            failed += 1
            got = [{"bench": name, "case": "FAILED", "value": float("nan"), "unit": ""}]
        print(f"# {name} took {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
        rows += got
    cols = ["bench", "case", "value", "unit", "note"]
    cells = [[_fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(x[i]) for x in cells]) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for x in cells:
        print("  ".join(v.ljust(w) for v, w in zip(x, widths, strict=True)))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
    return 1 if failed else 0


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.0f}"
    return str(v)


if __name__ == "__main__":
    sys.exit(main())
