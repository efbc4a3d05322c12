"""Serving fixtures: small real artifacts (fitted once per session) and live servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serving_helpers import NEW_MOVIE, TEST_EXTRACTORS, LiveServer, serve

from fusionrec.artifacts import save_artifact
from fusionrec.data.dataset import Features
from fusionrec.data.loaders import LoadOptions, load_dataset, subset_interactions
from fusionrec.data.splits import split_dataset
from fusionrec.pipeline import build_model, fit_artifact


@pytest.fixture
def live():
    """``live(path, **create_app_kw)`` → a started LiveServer, stopped at teardown."""
    started: list[LiveServer] = []

    def start(path: Path, **kw) -> LiveServer:
        srv = serve(path, **kw).__enter__()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.__exit__(None, None, None)


@pytest.fixture
def client_for(live) -> Iterator:
    """``client_for(path, **kw)`` → an httpx client talking to a live server on ``path``."""
    clients: list[httpx.Client] = []

    def make(path: Path, **kw) -> httpx.Client:
        c = live(path, **kw).client()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def _fit(ds, model: str, params: dict, out: Path) -> Path:
    split = split_dataset(ds, "ratio", seed=7)
    art, _ = fit_artifact(ds, split, build_model(model, params, seed=7, show_progress=False))
    save_artifact(art, out)
    return out


@pytest.fixture(scope="session")
def demo_dataset():
    """The bundled demo data, 10-core, interactions only (its bundled features are left out on purpose)."""
    return load_dataset("demo", options=LoadOptions(kcore=10)).with_features(Features())


@pytest.fixture(scope="session")
def als_template(tmp_path_factory, demo_dataset) -> Path:
    """ALS on the bundled demo data (609 users × 2,269 items, 10-core), no item features. Do not modify."""
    return _fit(demo_dataset, "als", {"factors": 32, "epochs": 10}, tmp_path_factory.mktemp("t") / "als")


@pytest.fixture(scope="session")
def movies_dataset(shared_data):
    """MovieLens (40-core: 321 users × 533 items) with posters, without the new movie, plus real features."""
    from fusionrec.features import run_extraction

    ds = load_dataset(shared_data, options=LoadOptions(kcore=40))
    ds = subset_interactions(ds, ds.items != ds.item_ids.index(NEW_MOVIE))
    res = run_extraction(ds, cache=False, **TEST_EXTRACTORS)
    feats = res.features
    feats.extractors = dict(res.configs)
    feats.extractor_state = {f"{m}/{k}": v for m, st in res.states.items() for k, v in st.items()}
    return ds.with_features(feats)


@pytest.fixture(scope="session")
def movies_template(tmp_path_factory, movies_dataset) -> Path:
    """ALS with features (extractor configs + state recorded) on the 40-core movies. Do not modify."""
    # reg 0.01: the setting these serving tests were written against (ALS's default is 20 since the sparse-data fix)
    return _fit(
        movies_dataset,
        "als",
        {"factors": 32, "epochs": 10, "reg": 0.01},
        tmp_path_factory.mktemp("t") / "movies",
    )


@pytest.fixture(scope="session")
def movies_pop_template(tmp_path_factory, movies_dataset) -> Path:
    """Most-popular (not an inner-product model) on the same data. Do not modify."""
    return _fit(movies_dataset, "most-popular", {}, tmp_path_factory.mktemp("t") / "pop")


@pytest.fixture(scope="session")
def movies_vbpr_template(tmp_path_factory, movies_dataset) -> Path:
    """VBPR (places cold items itself, explains its scores) on the 40-core movies. Do not modify."""
    return _fit(
        movies_dataset,
        "vbpr",
        {"factors": 16, "epochs": 5, "pca_dim": 32},
        tmp_path_factory.mktemp("t") / "vbpr",
    )
