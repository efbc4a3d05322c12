"""`fusionrec features` end to end on small generated data, read back by the loaders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.cli import main
from fusionrec.data.loaders import load_dataset

from .conftest import textured

GENRES = ["Comedy", "Drama", "Horror", "Action"]


def _make_items(root: Path, n_items: int) -> list[str]:
    from PIL import Image

    (root / "posters").mkdir(parents=True)
    ids = [str(10 + i) for i in range(n_items)]
    for i, raw in enumerate(ids):
        if i % 5 == 4:  # every fifth item has no poster
            continue
        Image.fromarray(textured(i)).save(root / "posters" / f"{raw}.jpg", quality=90)
    (root / "posters" / f"{ids[3]}.jpg").write_text("corrupt")  # one broken file
    return ids


def _ratings(ids: list[str], n_users: int = 12) -> pd.DataFrame:
    rng = np.random.RandomState(0)
    rows = [
        (u, ids[j], float(rng.randint(1, 6)), 1000 + u * 100 + j)
        for u in range(n_users)
        for j in rng.choice(len(ids), 8, replace=False)
    ]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


@pytest.fixture
def generic_dir(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    ids = _make_items(root, 15)
    _ratings(ids).to_csv(root / "interactions.csv", index=False)
    pd.DataFrame(
        {
            "item_id": ids,
            "title": [f"Item {i}" for i in ids],
            "description": [
                f"a {GENRES[k % 4].lower()} story number {k}" if k != 7 else "" for k in range(len(ids))
            ],
            "image": [f"posters/{i}.jpg" if k % 5 != 4 else None for k, i in enumerate(ids)],
        }
    ).to_csv(root / "items.csv", index=False)
    return root


def test_features_cli_writes_mmrec_dir(generic_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "features",
            "--data",
            str(generic_dir),
            "--image",
            "color",
            "--text",
            "tfidf",
            "--param",
            "text.min_df=1",
            "--param",
            "svd_dims=4",
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
            "--quiet",
            "--json",
        ]
    )
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["modalities"] == {"image": 256, "text": 4}
    img = payload["reports"]["image"]
    assert img["failed"] == 1 and img["failures"][0]["source"].endswith("13.jpg")
    assert img["no_content"] == 3
    assert len(list(out.glob("*.inter"))) == 1
    for f in (
        "item_map.csv",
        "user_map.csv",
        "image_feat.npy",
        "image_mask.npy",
        "text_feat.npy",
        "text_mask.npy",
        "items.csv",
        "manifest.json",
        "extractors.safetensors",
    ):
        assert (out / f).exists(), f
    ds = load_dataset(out)
    src = load_dataset(generic_dir)
    assert ds.features.dims == {"image": 256, "text": 4}
    assert ds.item_ids == src.item_ids and ds.n_interactions == src.n_interactions
    mask = ds.features.mask("image")
    expected = np.array([k % 5 != 4 and k != 3 for k in range(15)])
    np.testing.assert_array_equal(mask, expected[src.item_ids.indices([str(10 + k) for k in range(15)])])
    assert ds.features.mask("text").sum() == 15  # the title alone is text enough
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["extractors"]["text"]["name"] == "tfidf"
    assert manifest["extractors"]["image"]["model"] == "hsv-16x4x4"
    assert manifest["extraction"]["image"]["failed"] == 1
    assert ds.features.extractors["text"]["state"] == "extractors.safetensors"
    assert ds.labels is not None  # the split is written with the interactions


def test_features_cli_cnn_sentence_and_rerun(generic_dir, tmp_path, capsys):
    out = tmp_path / "out"
    args = [
        "features",
        "--data",
        str(generic_dir),
        "--out",
        str(out),
        "--cache",
        str(tmp_path / "cache"),
        "--image-name",
        "poster",
        "--text-name",
        "blurb",
        "--quiet",
        "--json",
    ]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["modalities"] == {"poster": 1280, "blurb": 384}
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["reports"]["poster"]["extracted"] == 0 and second["reports"]["blurb"]["extracted"] == 0
    ds = load_dataset(out)
    assert set(ds.features) == {"poster", "blurb"}


def test_features_only_dir_is_attached_to_movielens(tmp_path, capsys):
    root = tmp_path / "ml"
    ids = _make_items(root, 10)
    r = _ratings(ids, 6).rename(columns={"user_id": "userId", "item_id": "movieId"})
    r.to_csv(root / "ratings.csv", index=False)
    pd.DataFrame(
        {
            "movieId": ids,
            "title": [f"Film {i} (2000)" for i in ids],
            "genres": [GENRES[k % 4] for k in range(10)],
        }
    ).to_csv(root / "movies.csv", index=False)
    assert (
        main(
            [
                "features",
                "--data",
                str(root),
                "--image",
                "color",
                "--text",
                "wordvec",
                "--features-only",
                "--out",
                str(root / "features"),
                "--no-cache",
                "--quiet",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert sorted(p.name for p in (root / "features").iterdir()) == [
        "image_feat.npy",
        "image_mask.npy",
        "items.csv",
        "manifest.json",
        "text_feat.npy",
        "text_mask.npy",
    ]
    ds = load_dataset(root)  # the MovieLens loader attaches <root>/features/ by itself
    assert ds.features.dims == {"image": 256, "text": 384}
    assert ds.features.mask("image").sum() == sum(1 for k in range(10) if k % 5 != 4 and k != 3)


def test_features_cli_errors(generic_dir, tmp_path, capsys):
    assert (
        main(
            [
                "features",
                "--data",
                str(generic_dir),
                "--image",
                "none",
                "--text",
                "none",
                "--out",
                str(tmp_path / "o"),
                "--quiet",
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "features",
                "--data",
                str(generic_dir),
                "--param",
                "nonsense=1",
                "--out",
                str(tmp_path / "o"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "no chosen extractor accepts it" in capsys.readouterr().err
