"""The serving index at catalogue scale: HNSW build time, memory, query latency and recall@10 against exact.

Item vectors are clustered with varying norms (as factor-model item vectors are); queries are vectors of the
same kind. Each size runs in its own process so the index's memory is measured alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

SIZES_QUICK = [100_000]
SIZES_FULL = [100_000, 1_000_000]
DIM = 64
QUERIES = 300

_WORKER = r"""
import json, sys, time
import numpy as np
from fusionrec.serving.index import ExactIndex, build_index

n, d, nq = map(int, sys.argv[1:4])
rng = np.random.default_rng(0)
centres = rng.standard_normal((256, d)).astype(np.float32)
def draw(m):
    v = centres[rng.integers(0, 256, m)] + 0.7 * rng.standard_normal((m, d), dtype=np.float32)
    return v * rng.lognormal(0.0, 0.5, (m, 1)).astype(np.float32)
def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
items, queries = draw(n), draw(nq)
rss0 = rss_kib()
t0 = time.perf_counter()
index = build_index(items, "hnsw")
build = time.perf_counter() - t0
rss1 = rss_kib()
exact = ExactIndex(items)
lat, hits = [], 0
for q in queries:
    t = time.perf_counter()
    got, _ = index.search(q, 10)
    lat.append(time.perf_counter() - t)
    want, _ = exact.search(q, 10)
    hits += len(set(got.tolist()) & set(want.tolist()))
t = time.perf_counter()
for q in queries[:50]:
    exact.search(q, 10)
exact_ms = (time.perf_counter() - t) / 50 * 1e3
lat = np.array(lat) * 1e3
print(json.dumps({"build_s": build, "index_mib": (rss1 - rss0) / 1024, "p50_ms": float(np.percentile(lat, 50)),
                  "p99_ms": float(np.percentile(lat, 99)), "recall@10": hits / (10 * nq), "exact_ms": exact_ms}))
"""


def run(quick: bool = False) -> list[dict]:
    rows = []
    for n in SIZES_QUICK if quick else SIZES_FULL:
        proc = subprocess.run(
            [sys.executable, "-c", _WORKER, str(n), str(DIM), str(QUERIES)],
            capture_output=True,
            text=True,
            timeout=3600,
            check=True,
        )
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        case = f"hnsw {n:.0e} items x {DIM}d"
        note = f"load {os.getloadavg()[0]:.1f}"
        rows += [
            {"bench": "ann", "case": case, "value": r["build_s"], "unit": "s build", "note": note},
            {"bench": "ann", "case": case, "value": r["index_mib"], "unit": "MiB index (RSS growth)"},
            {"bench": "ann", "case": case, "value": r["p50_ms"], "unit": "ms p50 query"},
            {"bench": "ann", "case": case, "value": r["p99_ms"], "unit": "ms p99 query"},
            {"bench": "ann", "case": case, "value": r["exact_ms"], "unit": "ms exact query (numpy)"},
            {"bench": "ann", "case": case, "value": r["recall@10"], "unit": "recall@10 vs exact"},
        ]
    return rows
