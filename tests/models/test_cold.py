"""Cold items: the ridge content → vector map, and the cold-item protocol on data where content matters."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fusionrec.data.dataset import Dataset, Features, IdMap
from fusionrec.data.splits import split_dataset
from fusionrec.errors import ConfigError, DataError
from fusionrec.evaluation.cold_start import (
    CALIBRATION_GAMMAS,
    evaluate_cold_items,
    evaluate_full_catalogue,
    full_catalogue_split,
)
from fusionrec.models.base import FactorModel
from fusionrec.models.cold import (
    ContentMapper,
    calibrate_cold_scores,
    cold_item_vectors,
    fit_content_mapper,
)
from fusionrec.models.mf import ALS
from fusionrec.models.popularity import MostPopular


def _linear(n: int, dims: dict[str, int], k: int = 5, noise: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    feats = {m: rng.normal(size=(n, d)).astype(np.float32) for m, d in dims.items()}
    A = {m: rng.normal(size=(d, k)) for m, d in dims.items()}
    Y = sum(feats[m] @ A[m] for m in dims) + 3.0 + noise * rng.normal(size=(n, k))
    return feats, Y.astype(np.float32)


def _ridge_reference(feats: dict[str, np.ndarray], Y: np.ndarray, rows: np.ndarray, lam: float) -> np.ndarray:
    """Textbook ridge on the mapper's standardisation, solved directly (the mapper uses an eigenbasis)."""
    blocks = []
    for x in feats.values():
        x = x[rows].astype(np.float64)
        sd = x.std(axis=0)
        blocks.append((x - x.mean(axis=0)) / (np.where(sd > 1e-8, sd, 1.0) * np.sqrt(x.shape[1])))
    X = np.hstack(blocks)
    Yc = Y[rows] - Y[rows].mean(axis=0)
    return np.linalg.solve(X.T @ X + lam * np.eye(X.shape[1]), X.T @ Yc)


def test_recovers_a_linear_map_on_unseen_items():
    feats, Y = _linear(600, {"image": 12, "text": 7}, noise=0.01)
    train, new = np.arange(500), np.arange(500, 600)
    mapper = ContentMapper().fit(feats, Y, train)
    pred = mapper.transform({m: v[new] for m, v in feats.items()})
    resid = ((pred - Y[new]) ** 2).sum() / ((Y[new] - Y[new].mean(axis=0)) ** 2).sum()
    assert resid < 0.01
    assert mapper.reg_ <= 0.01  # almost no noise: GCV keeps the penalty small


def test_gcv_penalises_more_when_targets_are_noisy():
    feats, clean = _linear(300, {"text": 40}, noise=0.0, seed=1)
    rng = np.random.default_rng(2)
    noisy = clean + 30.0 * rng.normal(size=clean.shape).astype(np.float32)
    assert ContentMapper().fit(feats, noisy).reg_ > ContentMapper().fit(feats, clean).reg_


@pytest.mark.parametrize("n", [200, 30])  # d <= n (feature Gram) and d > n (item Gram) give one solution
def test_matches_textbook_ridge(n):
    feats, Y = _linear(n, {"a": 20, "b": 25}, noise=0.5, seed=3)
    rows = np.arange(n)
    mapper = ContentMapper(reg=0.3).fit(feats, Y, rows)
    total = sum(
        np.var(((v - v.mean(0)) / (v.std(0) * np.sqrt(v.shape[1]))), axis=0).sum() * n for v in feats.values()
    )
    rank = min(n, 45)
    W = _ridge_reference(feats, Y, rows, 0.3 * total / rank)
    np.testing.assert_allclose(mapper.weights_, W, rtol=2e-3, atol=2e-4)


def test_missing_modality_contributes_its_mean_and_bad_dims_raise():
    feats, Y = _linear(100, {"image": 6, "text": 4}, seed=4)
    mapper = ContentMapper().fit(feats, Y)
    text_only = mapper.transform({"text": feats["text"][:3]})
    both_mean_image = mapper.transform(
        {"text": feats["text"][:3], "image": np.tile(feats["image"].mean(0), (3, 1))}
    )
    np.testing.assert_allclose(text_only, both_mean_image, atol=1e-4)
    with pytest.raises(DataError, match="dims"):
        mapper.transform({"text": np.zeros((1, 5), np.float32)})
    with pytest.raises(DataError, match="no usable content"):
        mapper.transform({"audio": np.zeros((1, 5), np.float32)})


def test_arrays_round_trip():
    feats, Y = _linear(80, {"text": 9}, seed=5)
    mapper = ContentMapper().fit(feats, Y)
    arrays, meta = mapper.to_arrays("cold/")
    back = ContentMapper.from_arrays(arrays, meta, prefix="cold/")
    x = {"text": feats["text"][:4]}
    np.testing.assert_array_equal(back.transform(x), mapper.transform(x))


def _grouped(n_users: int = 120, n_items: int = 90, n_groups: int = 3, seed: int = 0):
    """Users and items in groups; users interact with items of their own group; content = noisy group code."""
    rng = np.random.default_rng(seed)
    ug = np.arange(n_users) % n_groups
    ig = np.arange(n_items) % n_groups
    rows, cols = [], []
    for u in range(n_users):
        items = np.flatnonzero(ig == ug[u])
        pick = rng.choice(items, size=int(0.5 * len(items)), replace=False)
        rows += [u] * len(pick)
        cols += list(pick)
    X = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    content = (np.eye(n_groups)[ig] + 0.3 * rng.normal(size=(n_items, n_groups))).astype(np.float32)
    noise = rng.normal(size=(n_items, 8)).astype(np.float32)  # an uninformative second modality
    return X, ug, ig, Features({"text": content, "image": noise})


def _als() -> ALS:
    m = ALS(factors=8, reg=0.1, epochs=10, random_state=0)
    m.show_progress = False
    return m


def test_cold_vectors_rank_new_items_for_the_right_users():
    X, ug, ig, feats = _grouped()
    cold = np.arange(0, 90, 10)  # cold items of every group: drop their interactions
    train = X.tolil()
    train[:, cold] = 0
    train = sp.csr_matrix(train)
    train.eliminate_zeros()
    model = _als().fit(train)
    mapper = fit_content_mapper(model, feats, train)
    assert mapper.n_fit_ == 90 - len(cold)  # items without interactions are not fitting targets
    V = cold_item_vectors(model, {m: feats[m][cold] for m in feats}, mapper)
    scores = model.user_factors_ @ V.T  # users × cold items
    best = cold[scores.argmax(axis=1)]
    assert (ig[best] == ug).mean() > 0.9


def test_models_that_place_cold_items_themselves_are_asked_first():
    class Placing(FactorModel):
        name = "placing"
        supports_cold_items = True

        def item_vectors_from_features(self, rows):
            return np.full((len(rows["text"]), 2), 7.0, np.float32)

    out = cold_item_vectors(Placing(), {"text": np.zeros((3, 4), np.float32)})
    assert out.shape == (3, 2) and (out == 7).all()


def test_needs_item_vectors_or_a_mapper():
    X, _, _, feats = _grouped()
    pop = MostPopular().fit(X)
    with pytest.raises(ConfigError, match="inner products"):
        fit_content_mapper(pop, feats, X)
    with pytest.raises(ConfigError, match="ContentMapper"):
        cold_item_vectors(_als().fit(X), {"text": feats["text"][:1]})


def test_cold_protocol_beats_random_when_content_is_informative():
    X, _, _, feats = _grouped(n_users=150, n_items=120, seed=1)
    coo = X.tocoo()
    ds = Dataset(
        coo.row, coo.col, IdMap(range(X.shape[0])), IdMap(range(X.shape[1])), features=feats, name="groups"
    )
    # 18 cold test items, so K=5 (at K=20 every list holds every candidate)
    res = evaluate_cold_items(ds, _als(), seed=3, cold_fraction=0.3, metrics=["recall@5", "ndcg@5"])
    rows = {r["method"]: r for r in res.rows}
    assert res.info["candidates"] == 18
    # a user's group holds 6 of the 18; items within a group are alike, so ~5/6 is the ceiling, 5/18 random
    assert rows["als + content"]["recall@5"] > 0.65 > 0.4 > rows["random"]["recall@5"]
    assert rows["content-knn"]["recall@5"] > 0.65
    # train popularity of every cold item is 0: that baseline is random tie-breaking, reported as such
    tie = "popularity (train; all cold items tie)"
    assert rows[tie] == {**rows["random"], "method": tie}
    assert res.info["cold_items"] == 36 and res.info["mapping"]["items"] == 120 - 36


def test_cold_protocol_requires_features():
    X, _, _, _ = _grouped()
    coo = X.tocoo()
    ds = Dataset(coo.row, coo.col, IdMap(range(X.shape[0])), IdMap(range(X.shape[1])))
    with pytest.raises(DataError, match="features"):
        evaluate_cold_items(ds, _als())


# ---------------------------------------------------------------------------------------------- full catalogue


def test_calibration_places_cold_scores_on_each_users_warm_quantiles():
    rng = np.random.default_rng(0)
    warm = np.vstack([np.arange(100.0), 1000 + 10 * np.arange(100.0)]).astype(np.float32)
    warm[0, 90:] = -np.inf  # masked (seen) items do not count
    cold = rng.normal(size=(2, 5)).astype(np.float32) * 1e-3  # a scale nothing like the warm one
    out = calibrate_cold_scores(cold, warm, gamma=1.0)
    # per-user order kept, values inside each user's finite warm range
    np.testing.assert_array_equal(np.argsort(out, axis=1), np.argsort(cold, axis=1))
    assert out[0].max() <= 89 and out[0].min() >= 0 and out[1].min() >= 1000
    # the best cold item sits at the 90% quantile of 5 (q = 0.9), not above every warm item
    assert out[0].max() == pytest.approx(0.9 * 89, abs=1e-4) and out[1].max() == pytest.approx(
        1000 + 0.9 * 990
    )
    held_back = calibrate_cold_scores(cold, warm, gamma=4.0)
    assert (held_back <= out + 1e-6).all() and (held_back < out).any()
    none_left = calibrate_cold_scores(cold, np.full((2, 3), -np.inf, np.float32))
    np.testing.assert_array_equal(none_left, cold)  # nothing to compete with: scores kept
    with pytest.raises(ConfigError):
        calibrate_cold_scores(cold, warm, gamma=0)


def _grouped_dataset(seed: int = 1) -> Dataset:
    X, _, _, feats = _grouped(n_users=150, n_items=120, seed=seed)
    coo = X.tocoo()
    return Dataset(
        coo.row, coo.col, IdMap(range(X.shape[0])), IdMap(range(X.shape[1])), features=feats, name="groups"
    )


def test_full_catalogue_split_withholds_whole_items():
    ds = _grouped_dataset()
    every = ds.matrix(np.arange(ds.n_interactions))
    base = split_dataset(ds, None, seed=3)
    for targets in ("held-out", "all"):
        fc = full_catalogue_split(ds, seed=3, cold_fraction=0.2, targets=targets)
        assert len(fc.cold) == 24 and len(np.intersect1d(fc.valid_cold, fc.test_cold)) == 0
        assert fc.train[:, fc.cold].nnz == 0 and fc.warm_valid()[:, fc.cold].nnz == 0
        assert fc.test[:, fc.valid_cold].nnz == 0 and fc.valid[:, fc.test_cold].nnz == 0
        warm = np.setdiff1d(np.arange(ds.n_items), fc.cold)
        assert (fc.test[:, warm] != base.test[:, warm]).nnz == 0  # warm items: the split's own test part
    # held-out: a new item's targets are the ones the split holds out anyway
    fc = full_catalogue_split(ds, seed=3, cold_fraction=0.2)
    assert (fc.test[:, fc.test_cold] != base.test[:, fc.test_cold]).nnz == 0
    # all: every interaction of a cold item is a target in its half; nothing is lost or duplicated
    fc = full_catalogue_split(ds, seed=3, cold_fraction=0.2, targets="all")
    assert fc.valid[:, fc.valid_cold].nnz == every[:, fc.valid_cold].nnz
    assert fc.test[:, fc.test_cold].nnz == every[:, fc.test_cold].nnz
    assert fc.train.nnz + fc.valid.nnz + fc.test.nnz == every.nnz
    with pytest.raises(ConfigError):
        full_catalogue_split(ds, targets="some")


def test_full_catalogue_protocol_makes_new_items_reach_their_users():
    ds = _grouped_dataset()

    def rows(targets: str) -> dict[str, dict]:
        res = evaluate_full_catalogue(ds, _als(), seed=3, cold_fraction=0.2, targets=targets)
        assert res.info["new_items_ranked"] == 12 and res.info["warm_items"] == 96
        assert res.info["gamma"]["model calibrated"] in CALIBRATION_GAMMAS
        return {r["method"]: r for r in res.rows}

    never, calibrated = "als (new items never recommended)", "als + content vectors (calibrated)"
    held = rows("held-out")
    assert held[never]["new recall@20"] == 0 and held[never]["share@20"] == 0  # alone, it never shows them
    assert held[calibrated]["new recall@20"] > 0.15 and held[calibrated]["reach@20"] >= 0.5
    # new items hold part of the lists, not all of them, and the lists as a whole get better
    assert 0 < held[calibrated]["share@20"] < 0.5
    assert held[calibrated]["all recall@20"] > held[never]["all recall@20"]
    assert {"content-knn (every item)", "popularity (new items: predicted from content)"} <= set(held)
    # every interaction of a new item a target: the calibrated fusion finds nearly all of them
    every = rows("all")
    assert every[calibrated]["new recall@20"] > 0.9
    assert every[calibrated]["all recall@20"] > every[never]["all recall@20"] + 0.3


def test_cold_command_runs_the_full_catalogue_protocol_by_default(tmp_path, capsys):
    import json

    import pandas as pd

    from fusionrec.cli import main

    X, _, _, feats = _grouped(n_users=150, n_items=120, seed=1)
    coo = X.tocoo()
    pd.DataFrame({"userID": coo.row, "itemID": coo.col}).to_csv(tmp_path / "g.inter", sep="\t", index=False)
    np.save(tmp_path / "text_feat.npy", feats["text"])
    args = ["cold", "--data", tmp_path, "--param", "factors=8", "--param", "epochs=10", "--seed", "3"]
    assert main([*map(str, args), "--json", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["protocol"] == "full-catalogue" and res["targets"] == "held-out" and len(res["rows"]) == 7
    assert main([*map(str, args), "--protocol", "among-cold", "--json", "--quiet"]) == 0
    assert "protocol" not in json.loads(capsys.readouterr().out)
    clone = ["--protocol", "clone", "--clones", "5", "--min-fans", "5", "--json", "--quiet"]
    assert main([*map(str, args), *clone]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["protocol"] == "clone" and res["clones"] == 5 and res["reserved_slots"] == 2
    assert [r["method"].split(" ")[0] for r in res["rows"]] == ["original", "clone,", "clone,"]


# ---------------------------------------------------------------------------------------------- calibration


def test_expansion_is_the_spread_of_targets_over_leave_one_out_predictions():
    # brute force: refit the ridge without each item (same standardisation and penalty) and predict it
    feats, Y = _linear(80, {"image": 6, "text": 4}, noise=2.0, seed=3)
    rows = np.arange(80)
    mapper = ContentMapper(reg=0.3).fit(feats, Y, rows)
    blocks = []
    for x in feats.values():
        x = x.astype(np.float64)
        sd = x.std(axis=0)
        blocks.append((x - x.mean(axis=0)) / (np.where(sd > 1e-8, sd, 1.0) * np.sqrt(x.shape[1])))
    X = np.hstack(blocks)
    Yc = Y - Y.mean(axis=0)
    lam = 0.3 * np.trace(X.T @ X) / min(X.shape)
    loo = np.empty_like(Yc)
    for i in rows:
        keep = rows != i
        W = np.linalg.solve(X[keep].T @ X[keep] + lam * np.eye(X.shape[1]), X[keep].T @ Yc[keep])
        loo[i] = X[i] @ W
    want = np.sqrt((Yc**2).sum() / (loo**2).sum())
    assert 1.2 < want < 10  # noisy targets: the map shrinks new items, by this much
    assert mapper.expansion_ == pytest.approx(want, rel=1e-6)
    # calibrated vectors keep the mean item and stretch the deviation from it by that factor
    raw = mapper.transform({m: v[:5] for m, v in feats.items()})
    np.testing.assert_allclose(
        mapper.calibrated(raw) - mapper.bias_, want * (raw - mapper.bias_), rtol=1e-4, atol=1e-5
    )
    # stored and restored with the map; a map stored before the calibration existed stays uncalibrated
    arrays, meta = mapper.to_arrays()
    assert ContentMapper.from_arrays(arrays, meta).expansion_ == mapper.expansion_
    meta.pop("expansion")
    assert ContentMapper.from_arrays(arrays, meta).expansion_ == 1.0


def test_a_map_that_predicts_nothing_is_not_blown_up():
    rng = np.random.default_rng(0)
    feats = {"noise": rng.normal(size=(300, 20)).astype(np.float32)}
    mapper = ContentMapper().fit(feats, rng.normal(size=(300, 4)).astype(np.float32))
    assert mapper.expansion_ == 10.0  # the cap: pure-noise content is not stretched without bound


@pytest.fixture(scope="module")
def demo5():
    from fusionrec.data.loaders import LoadOptions, load_dataset

    return load_dataset("demo", options=LoadOptions(kcore=5))


def test_clone_protocol_calibration_lifts_copies_into_their_fans_lists(demo5):
    # a copy of a known movie (same poster, same text) added by content used to sit in the hundreds for
    # the original's fans (median 440 of 3,650 here when written, 170 calibrated); calibrated it must reach them
    from fusionrec.evaluation.cold_start import evaluate_clones, format_clones

    res = evaluate_clones(demo5, ALS(factors=32, random_state=0), seed=4, n_clones=20, new_item_share=0.1)
    original, raw, cal = res.rows
    assert (
        original["method"].startswith("original") and "raw" in raw["method"] and "calibrated" in cal["method"]
    )
    assert res.info["clones"] == 20 and res.info["pairs"] > 20 * 20 and res.info["items"] == 3650
    assert (
        res.info["calibration"]["placement"] == "content map" and res.info["calibration"]["expansion"] > 1.5
    )
    assert original["top-20 share"] > 0.2  # 0.30 when written (raw clone: 0.001, calibrated: 0.12)
    # after calibration: several times the raw placement's reach, and the median rank at least halved
    assert cal["top-20 share"] >= 0.08 and cal["top-20 share"] >= 3 * raw["top-20 share"]
    assert cal["median rank"] * 2 <= raw["median rank"]
    assert cal["median rank (original present)"] * 2 <= raw["median rank (original present)"]
    # two of each top-20 reserved for new items: more fans see the clone, raw or calibrated
    assert cal["top-20 share (new-item share 0.1)"] >= cal["top-20 share"]
    assert raw["top-20 share (new-item share 0.1)"] > raw["top-20 share"]
    assert "clones of items with >= 20 train users" in format_clones(res)


def test_clone_protocol_calibrates_borrowed_scores_of_models_without_item_vectors(demo5):
    from fusionrec.evaluation.cold_start import evaluate_clones
    from fusionrec.models.knn import ItemKNN

    res = evaluate_clones(demo5, ItemKNN(), seed=4, n_clones=20, new_item_share=0.0)
    original, raw, cal = res.rows
    assert res.info["calibration"]["placement"] == "content neighbours"
    assert res.info["calibration"]["expansion"] > 1.0
    assert cal["median rank"] < raw["median rank"] and cal["top-20 share"] > raw["top-20 share"]
    assert "top-20 share (new-item share 0.1)" not in cal  # no slots reserved, none reported
