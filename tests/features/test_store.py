"""Feature cache: re-runs extract nothing, changed content is re-extracted, fitted state is reused."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from fusionrec.data.dataset import ItemContent
from fusionrec.errors import ConfigError
from fusionrec.features import FeatureStore, extract_features, extract_modality, get_extractor, run_extraction
from fusionrec.features.store import _MAX_SHARDS

from .conftest import write_images

TEXTS = [
    "Toy Story (1995). genres: Adventure, Animation, Children, Comedy, Fantasy. tags: pixar, fun",
    "Jumanji (1995). genres: Adventure, Children, Fantasy. tags: board game, magic",
    "Heat (1995). genres: Action, Crime, Thriller. tags: heist, los angeles",
    "Casino (1995). genres: Crime, Drama. tags: mafia, las vegas",
    "",
    "Toy Story (1995). genres: Adventure, Animation, Children, Comedy, Fantasy. tags: pixar, fun",
]  # the last text repeats the first


def test_second_run_extracts_nothing_and_changes_are_reextracted(tmp_path):
    store = FeatureStore(tmp_path / "store")
    paths = write_images(tmp_path / "imgs", 5)
    v1, p1, r1 = extract_modality(get_extractor("color"), paths, store=store)
    assert (r1.n_extracted, r1.n_cached) == (5, 0)
    v2, p2, r2 = extract_modality(get_extractor("color"), paths, store=store)
    assert (r2.n_extracted, r2.n_cached) == (0, 5)
    np.testing.assert_array_equal(v1, v2)
    # rewrite one image with other pixels: only that one is extracted again
    from PIL import Image

    from .conftest import textured

    Image.fromarray(textured(99)).save(paths[2], quality=90)
    v3, p3, r3 = extract_modality(get_extractor("color"), paths, store=store)
    assert (r3.n_extracted, r3.n_cached) == (1, 4)
    assert not np.allclose(v3[2], v1[2])
    np.testing.assert_array_equal(np.delete(v3, 2, 0), np.delete(v1, 2, 0))
    # the cached rows equal a fresh uncached extraction
    fresh, _ = get_extractor("color").transform(paths)
    np.testing.assert_allclose(v3, fresh, atol=1e-6)
    # moving files does not matter: the key is the content
    moved = tmp_path / "moved"
    moved.mkdir()
    new_paths = []
    for p in paths:
        q = moved / Path(p).name
        q.write_bytes(Path(p).read_bytes())
        new_paths.append(str(q))
    _, _, r4 = extract_modality(get_extractor("color"), new_paths, store=store)
    assert r4.n_extracted == 0


def test_other_config_is_another_cache_entry(tmp_path):
    store = FeatureStore(tmp_path / "store")
    paths = write_images(tmp_path / "imgs", 3)
    extract_modality(get_extractor("color"), paths, store=store)
    _, _, rep = extract_modality(get_extractor("color", h_bins=8), paths, store=store)
    assert rep.n_extracted == 3


def test_text_duplicates_and_empty_texts(tmp_path):
    store = FeatureStore(tmp_path / "store")
    ext = get_extractor("wordvec")
    values, present, report = extract_modality(ext, TEXTS, store=store)
    assert present.tolist() == [True, True, True, True, False, True]
    assert report.n_extracted == 4  # the duplicate is extracted once
    np.testing.assert_array_equal(values[0], values[5])
    assert report.n_no_content == 1 and report.n_failed == 0


def test_fitted_extractor_state_is_cached(tmp_path, caplog):
    store = FeatureStore(tmp_path / "store")
    items = ItemContent(texts=TEXTS, image_paths=[None] * len(TEXTS))
    res1 = run_extraction(items, image=None, text="tfidf", text_params={"min_df": 1}, cache=store)
    with caplog.at_level(logging.INFO, logger="fusionrec"):
        res2 = run_extraction(items, image=None, text="tfidf", text_params={"min_df": 1}, cache=store)
    assert any("reusing the state" in r.message for r in caplog.records)
    assert res2.reports["text"].n_extracted == 0
    np.testing.assert_array_equal(res1.features["text"], res2.features["text"])
    assert res1.configs["text"] == res2.configs["text"]
    # another corpus means another fit, hence another config and fresh rows
    items3 = ItemContent(
        texts=TEXTS[:3] + ["Fargo (1996). genres: Comedy, Crime. tags: snow"], image_paths=[None] * 4
    )
    res3 = run_extraction(items3, image=None, text="tfidf", text_params={"min_df": 1}, cache=store)
    assert res3.configs["text"]["state_sha256"] != res1.configs["text"]["state_sha256"]
    assert res3.reports["text"].n_extracted == 4


def test_shards_are_merged(tmp_path):
    store = FeatureStore(tmp_path / "store")
    cfg = {"name": "x", "dims": 2}
    for i in range(_MAX_SHARDS + 3):
        store.put(cfg, [f"{i:040d}"], np.full((1, 2), i, np.float32), np.ones(1, bool))
    folder = next(p for p in (tmp_path / "store").iterdir() if p.is_dir())
    assert len(list(folder.glob("shard-*.npz"))) <= _MAX_SHARDS
    keys = [f"{i:040d}" for i in range(_MAX_SHARDS + 3)]
    values, present, hit, _ = store.lookup(cfg, keys)
    assert hit.all() and present.all()
    np.testing.assert_array_equal(values[:, 0], np.arange(len(keys)))
    assert store.count(cfg) == len(keys)


def test_no_cache(tmp_path):
    paths = write_images(tmp_path / "imgs", 2)
    items = ItemContent(texts=["a film", "another film"], image_paths=paths)
    res = run_extraction(items, image="color", text=None, cache=False)
    assert res.reports["image"].n_extracted == 2 and res.reports["image"].n_cached == 0


def test_extract_features_is_the_features_of_run_extraction(tmp_path):
    items = ItemContent(texts=TEXTS, image_paths=[None] * len(TEXTS))
    options = {"image": None, "text": "tfidf", "text_params": {"min_df": 1}, "text_name": "words"}
    feats = extract_features(items, cache=tmp_path / "a", **options)
    expected = run_extraction(items, cache=tmp_path / "b", **options).features
    assert list(feats.dims) == ["words"]
    np.testing.assert_array_equal(feats["words"], expected["words"])
    with pytest.raises(ConfigError, match="run_extraction"):
        extract_features(items, shard=(0, 2), **options)
