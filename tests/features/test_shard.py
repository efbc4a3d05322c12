"""Sharded feature extraction: parts fill the cache, a final run (or rank 0 under torchrun) writes the rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.cli import main
from fusionrec.features.extract import shard_of

from .conftest import textured


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    from PIL import Image

    root = tmp_path / "shop"
    (root / "img").mkdir(parents=True)
    ids = [f"p{i}" for i in range(24)]
    for i, raw in enumerate(ids):
        Image.fromarray(textured(i)).save(root / "img" / f"{raw}.png")
    rng = np.random.RandomState(1)
    rows = [(u, ids[j]) for u in range(10) for j in rng.choice(24, 6, replace=False)]
    pd.DataFrame(rows, columns=["user_id", "item_id"]).to_csv(root / "interactions.csv", index=False)
    pd.DataFrame(
        {
            "item_id": ids,
            "title": [f"thing {i}" for i in range(24)],
            "description": [f"a {['red', 'blue', 'green'][i % 3]} thing, kind {i % 5}" for i in range(24)],
            "image": [f"img/{i}.png" for i in ids],
        }
    ).to_csv(root / "items.csv", index=False)
    return root


def _features(root: Path, cache: Path, out: Path, *extra: str) -> list[str]:
    return ["features", "--data", str(root), "--image", "color", "--text", "tfidf", "--cache", str(cache),
            "--out", str(out), "--features-only", "--quiet", "--json", *extra]  # fmt: skip


def test_shard_parts_partition_by_content_hash():
    from fusionrec.features.store import text_key

    keys = [text_key(f"item {i}") for i in range(300)]
    parts = [shard_of(k, 3) for k in keys]
    assert all(60 < parts.count(p) < 140 for p in range(3))  # about a third each
    assert all(shard_of(k, 3) == p for k, p in zip(keys, parts, strict=True))


def test_parts_fill_the_cache_and_the_final_run_extracts_nothing(shop, tmp_path, capsys):
    cache, out = tmp_path / "cache", tmp_path / "out"
    done = []
    for part in ("0/2", "1/2"):
        assert main(_features(shop, cache, out, "--shard", part)) == 0
        done.append(json.loads(capsys.readouterr().out)["extracted"])
        assert not out.exists()  # a part only fills the cache
    assert done[0] > 0 and done[1] > 0 and sum(done) == 2 * 24  # every image and text once, split in two
    assert main(_features(shop, cache, out)) == 0
    reports = json.loads(capsys.readouterr().out)["reports"]
    assert all(r["extracted"] == 0 for r in reports.values())
    assert main(_features(shop, tmp_path / "fresh", tmp_path / "ref")) == 0
    for name in ("image", "text"):
        got, want = np.load(out / f"{name}_feat.npy"), np.load(tmp_path / "ref" / f"{name}_feat.npy")
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_bad_shard_is_refused(shop, tmp_path, capsys):
    assert main(_features(shop, tmp_path / "c", tmp_path / "o", "--shard", "2/2")) == 2
    assert "0 <= I < N" in capsys.readouterr().err


@pytest.mark.slow
def test_two_torchrun_ranks_extract_their_parts_and_rank0_writes(shop, tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "fusionrec",
    ]
    proc = subprocess.run([*cmd, *_features(shop, cache, out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["items"] == 24  # one summary: rank 0's
    assert np.load(out / "image_feat.npy").shape[0] == 24
    again = subprocess.run(
        [sys.executable, "-m", "fusionrec", *_features(shop, cache, tmp_path / "again")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert all(r["extracted"] == 0 for r in json.loads(again.stdout)["reports"].values())
