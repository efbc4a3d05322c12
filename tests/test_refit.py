"""`fusionrec refit` and warm starts: retraining an artifact's model from its own state on (new) data."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
from _support import checkerboard

from fusionrec.cli import main
from fusionrec.errors import ConfigError

TORCH = [
    "--param",
    "factors=32",
    "--param",
    "epochs=80",
    "--param",
    "patience=3",
    "--param",
    "batch_size=1024",
]


@pytest.fixture(scope="module")
def tables(shared_data, tmp_path_factory):
    """Real MovieLens rows of users 1-200 (``full``), and the part an earlier fit saw (``old``): users 1-180
    without every 40th of their movies."""
    rows = list(csv.reader(open(shared_data / "ratings.csv")))[1:]
    full = [r for r in rows if int(r[0]) <= 200]
    movies = sorted({r[1] for r in full}, key=int)
    dropped = set(movies[::40])
    old = [r for r in full if int(r[0]) <= 180 and r[1] not in dropped]
    root = tmp_path_factory.mktemp("tables")
    paths = {}
    for name, part in (("full", full), ("old", old)):
        paths[name] = root / f"{name}.csv"
        with open(paths[name], "w") as f:
            f.write("user_id,item_id,rating,timestamp\n" + "".join(",".join(r) + "\n" for r in part))
    return paths


def run_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main([*map(str, argv), "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


def fit(capsys, data, model, out, *params) -> dict:
    return run_json(capsys, "fit", "--data", data, "--kcore", "5", "--model", model, *params, "--out", out)


def test_torch_refit_on_the_same_data_is_as_good_in_fewer_epochs(tables, tmp_path, capsys):
    from fusionrec.artifacts import load_artifact

    fit(capsys, tables["old"], "bpr-torch", tmp_path / "a", *TORCH)
    original = load_artifact(tmp_path / "a").model
    got = run_json(capsys, "refit", tmp_path / "a", "--data", tables["old"], "--out", tmp_path / "b",
                   "--compare-cold")  # fmt: skip
    refit = got["refit"]
    assert refit["warm"] and refit["users"] == {"known": 180, "new": 0, "dropped": 0}
    # the same split (the artifact's load options, split and seed): the cold fit retraces the original
    assert refit["cold"]["epochs"] == original.epochs_run_
    assert refit["cold"]["valid"]["recall@20"] == pytest.approx(original.best_valid_, abs=1e-6)
    assert refit["valid"]["recall@20"] >= original.best_valid_ - 0.002
    assert refit["epochs"] < original.epochs_run_
    back = load_artifact(tmp_path / "b")
    assert back.info["refit"]["warm"] and back.info["load"]["kcore"] == 5
    assert back.model.best_valid_ == pytest.approx(refit["valid"]["recall@20"], abs=1e-6)


def test_als_refit_on_the_same_data_keeps_its_quality_in_fewer_iterations(tables, tmp_path, capsys):
    from fusionrec.artifacts import load_artifact
    from fusionrec.data.loaders import LoadOptions, load_dataset
    from fusionrec.data.splits import split_dataset
    from fusionrec.evaluation import evaluate

    fitted = fit(capsys, tables["old"], "als", tmp_path / "a")
    got = run_json(capsys, "refit", tmp_path / "a", "--data", tables["old"], "--out", tmp_path / "b")
    refit = got["refit"]
    assert refit["warm"] and refit["epochs"] < 15
    assert refit["cold"] == {"seconds": fitted["fit_seconds"], "epochs": 15, "measured": False}
    split = split_dataset(load_dataset(tables["old"], None, LoadOptions(kcore=5)), "ratio", seed=2026)
    before = evaluate(load_artifact(tmp_path / "a").model, split, on="valid").metrics["recall@20"]
    assert refit["valid"]["recall@20"] >= before - 0.002


@pytest.mark.parametrize("model, params", [("bpr-torch", TORCH), ("als", [])])
def test_refit_on_data_with_new_users_and_items(model, params, tables, tmp_path, capsys):
    from fusionrec.artifacts import load_artifact
    from fusionrec.recommend import recommend_for_user

    fit(capsys, tables["old"], model, tmp_path / "a", *params)
    old = load_artifact(tmp_path / "a")
    got = run_json(capsys, "refit", tmp_path / "a", "--data", tables["full"], "--out", tmp_path / "b")
    new = load_artifact(tmp_path / "b")
    refit = got["refit"]
    assert refit["warm"] and refit["users"]["new"] == 20 and refit["items"]["new"] > 0
    assert refit["users"]["known"] == len(old.user_ids) and refit["items"]["known"] == len(old.item_ids)
    # the id maps are extended: every old id is still there, next to the new ones
    assert set(old.user_ids) < set(new.user_ids) and set(old.item_ids) < set(new.item_ids)
    assert new.model.n_users_ == len(new.user_ids) and new.model.n_items_ == len(new.item_ids)
    # every pair the earlier fit trained on stays in train: none is in valid or test, where the warm start
    # would be rewarded for having seen it
    assert refit["moved_to_train"]["valid"] > 0 and refit["moved_to_train"]["test"] > 0
    assert _pairs(old) <= _pairs(new)
    recs = recommend_for_user(new, "195", k=10)  # a user the earlier fit never saw
    assert len(recs) == 10 and all(np.isfinite(r["score"]) for r in recs)
    assert got["test"]["recall@20"] > 0.1


def _pairs(art) -> set[tuple[str, str]]:
    coo = art.train.tocoo()
    return set(zip(art.user_ids.raw_ids[coo.row], art.item_ids.raw_ids[coo.col], strict=True))


def test_warm_start_maps_rows_by_id_and_new_rows_start_fresh():
    from fusionrec.models.base import WarmStart
    from fusionrec.models.bpr_torch import BPRTorch

    train = checkerboard(40, 30)
    first = BPRTorch(factors=8, epochs=5, batch_size=64, random_state=0).fit(train)
    # the new matrix: users reversed plus two new ones at the front, items as they were plus one new
    user_rows = np.r_[-1, -1, np.arange(39, -1, -1)]
    item_rows = np.r_[np.arange(30), -1]
    bigger = checkerboard(42, 31, seed=1)
    # a learning rate too small to move anything: the kept epoch is the starting point
    again = BPRTorch(factors=8, epochs=1, batch_size=64, learning_rate=1e-12, random_state=0)
    again.fit(bigger, warm_start=WarmStart.from_model(first, user_rows, item_rows))
    np.testing.assert_allclose(again.user_factors_[2:], first.user_factors_[::-1], atol=1e-6)
    np.testing.assert_allclose(again.item_factors_[:30], first.item_factors_, atol=1e-6)
    fresh = BPRTorch(factors=8, epochs=1, batch_size=64, learning_rate=1e-12, random_state=0).fit(bigger)
    np.testing.assert_allclose(again.user_factors_[:2], fresh.user_factors_[:2], atol=1e-6)
    np.testing.assert_allclose(again.item_factors_[30], fresh.item_factors_[30], atol=1e-6)


def test_forgetting_a_user_removes_its_row_from_the_kept_training_parameters():
    # privacy: the parameters kept for a refit hold a row per user too
    from fusionrec.artifacts import Artifact, forget_user
    from fusionrec.data.dataset import IdMap
    from fusionrec.models.vbpr import VBPR

    train = checkerboard(40, 30)
    from fusionrec.data.dataset import Features

    feats = Features({"image": np.random.RandomState(0).rand(30, 6).astype(np.float32)})
    model = VBPR(factors=4, epochs=2, batch_size=64).fit(train, feats)
    user_params = [n for n, kind in model.warm_params_ if kind == "user"]
    assert {"user.weight", "theta.weight"} <= set(user_params)
    art = Artifact(model=model, user_ids=IdMap(range(40)), item_ids=IdMap(range(30)), train=train)
    after = forget_user(art, 5).model
    for name in user_params:
        attr = "warm_" + name.replace(".", "__") + "_"
        np.testing.assert_array_equal(getattr(after, attr), np.delete(getattr(model, attr), 5, axis=0))


def test_models_without_a_warm_start_say_so_once_and_fit_cold(tables, tmp_path, capsys, caplog):
    fit(capsys, tables["old"], "ease", tmp_path / "a")
    with caplog.at_level(logging.WARNING, logger="fusionrec"):
        got = run_json(capsys, "refit", tmp_path / "a", "--data", tables["full"], "--out", tmp_path / "b")
    said = [r.getMessage() for r in caplog.records if "refit" in r.getMessage()]
    assert said == ["refit: ease cannot start from an earlier fit; fitting cold"]
    assert got["refit"]["warm"] is False and got["test"]["recall@20"] > 0.1
    with pytest.raises(ConfigError, match="cannot start from an earlier fit"):
        from fusionrec.models.base import WarmStart
        from fusionrec.models.knn import EASE

        m = EASE().fit(checkerboard())
        EASE().fit(checkerboard(), warm_start=WarmStart.from_model(m, np.arange(40), np.arange(30)))
