"""Automatic tuning: declared search spaces, Optuna studies that resume, `fit --model auto` within its budget."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from _support import checkerboard

from fusionrec.artifacts import load_artifact
from fusionrec.cli import main
from fusionrec.data.loaders import load_dataset
from fusionrec.data.splits import split_dataset
from fusionrec.errors import ConfigError
from fusionrec.evaluation import VALIDATOR, evaluate
from fusionrec.models.mf import ALS
from fusionrec.models.registry import get_model_class, model_names
from fusionrec.pipeline import build_model
from fusionrec.tuning import check_search_space, parse_budget, stop_before_overrunning, tune_model


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> str:
    m = checkerboard(80, 50, seed=4).tocoo()
    rng = np.random.RandomState(0)
    # a few random extra interactions, so that not every configuration is perfect on valid
    extra_u, extra_i = rng.randint(0, 80, 300), rng.randint(0, 50, 300)
    df = pd.DataFrame(
        {
            "user_id": np.concatenate([m.row, extra_u]) + 100,
            "item_id": np.concatenate([m.col, extra_i]) + 1000,
            "rating": 1.0,
            "timestamp": rng.randint(0, 10**6, m.nnz + 300),
        }
    ).drop_duplicates(["user_id", "item_id"])
    path = tmp_path_factory.mktemp("tuning") / "interactions.csv"
    df.to_csv(path, index=False)
    return str(path)


def cli_json(capsys, *args) -> dict:
    assert main([*map(str, args), "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", model_names())
def test_every_registered_model_declares_a_valid_search_space(name):
    cls = get_model_class(name)
    check_search_space(cls)
    if name not in ("most-popular", "random"):
        assert cls.search_space, f"{name} declares nothing to tune"


def test_a_search_space_naming_an_unknown_parameter_fails():
    class Typo(ALS):
        search_space = {"factor": ("int", 8, 64, "log")}

    with pytest.raises(ConfigError, match="no parameter 'factor'.*factors"):
        check_search_space(Typo)
    for bad in (
        {"factors": ("int", 64, 8)},  # low ≥ high
        {"factors": ("int", 8.5, 64)},  # an int range with float bounds
        {"reg": ("float", 0.0, 1.0, "log")},  # log needs low > 0
        {"reg": ("uniform", 0.0, 1.0)},  # unknown kind
        {"reg": ("categorical", [])},  # no choices
    ):

        class Bad(ALS):
            search_space = bad

        with pytest.raises(ConfigError):
            check_search_space(Bad)


def test_parse_budget():
    assert parse_budget("20m") == 1200 and parse_budget("90s") == 90 and parse_budget("1h30m") == 5400
    assert parse_budget("45") == 45 and parse_budget(None) is None
    for bad in ("soon", "", "0s", "-3m"):
        with pytest.raises(ConfigError):
            parse_budget(bad)


def test_tune_trials_writes_the_winner_and_a_study_that_resumes(small_csv, tmp_path, capsys):
    db, out = tmp_path / "tune.db", tmp_path / "best"
    args = ["tune", "--data", small_csv, "--model", "als", "--param", "epochs=3", "--trials", "3"]
    first = cli_json(capsys, *args, "--storage", db, "--out", out)
    assert first["new_trials"] == 3 and len(first["trials"]) == 3 and db.exists()
    # the defaults are the first trial; the chosen one is the valid-best of all trials
    assert first["trials"][0]["params"]["factors"] == ALS().factors
    values = [t["value"] for t in first["trials"] if t["state"] == "COMPLETE"]
    assert first["valid"] == pytest.approx(max(values))
    second = cli_json(capsys, *args, "--storage", db)
    assert second["new_trials"] == 3 and len(second["trials"]) == 6  # resumed: earlier trials kept
    assert second["valid"] >= first["valid"]
    # the artifact is the chosen configuration, fitted on train: a fresh fit scores identically
    art = load_artifact(out)
    chosen = first["chosen"]
    assert art.model.get_params()["factors"] == chosen["factors"] == art.info["tuning"]["chosen"]["factors"]
    split = split_dataset(load_dataset(small_csv), None, seed=2026)
    fresh = build_model("als", chosen, seed=2026, show_progress=False).fit(split.train)
    np.testing.assert_allclose(art.model.score(np.arange(6)), fresh.score(np.arange(6)), rtol=1e-5, atol=1e-6)
    got = evaluate(fresh, split, on="valid", metrics=["recall@20"]).metrics["recall@20"]
    assert got == pytest.approx(first["valid"])


def test_tune_defaults_to_a_search_and_keeps_grid_mode_exclusive(small_csv, capsys):
    code = main(["tune", "--data", small_csv, "--model", "als", "--grid", "factors=4,8", "--trials", "2"])
    assert code == 2 and "--grid" in capsys.readouterr().err


def test_the_trainer_hook_stops_a_torch_fit_and_keeps_its_best_epoch(small_csv):
    split = split_dataset(load_dataset(small_csv), None, seed=1)
    model = build_model("bpr-torch", {"factors": 8, "batch_size": 128, "epochs": 50}, show_progress=False)
    seen: list[int] = []
    model.on_valid = lambda epoch, value: seen.append(epoch) or epoch == 4
    model.fit(split.train, valid=split.valid, validate=VALIDATOR)
    assert seen == [1, 2, 3, 4] and model.epochs_run_ == 4 and model.best_epoch_ <= 4


def test_torch_trials_below_the_median_are_pruned_and_never_chosen(small_csv):
    split = split_dataset(load_dataset(small_csv), "ratio", seed=1)
    # LightGCN: bpr-torch's popularity-started item bias gives every slow trial the same valid score, and
    # equal trials are not below their median
    fixed = {"factors": 8, "batch_size": 128, "min_batches": 0, "epochs": 15, "patience": 0}
    res = tune_model("lightgcn", split, fixed=fixed, trials=10, seed=1)
    pruned = [t for t in res.trials if t["state"] == "PRUNED"]
    done = [t for t in res.trials if t["state"] == "COMPLETE"]
    assert pruned and all(t["value"] is None for t in pruned)
    assert res.value == max(t["value"] for t in done) and res.params["learning_rate"] in {
        t["params"]["learning_rate"] for t in done
    }


def test_a_torch_trial_past_the_budget_stops_at_once(small_csv):
    split = split_dataset(load_dataset(small_csv), None, seed=1)
    fixed = {"factors": 8, "batch_size": 16, "epochs": 100000, "patience": 0}  # would run for minutes
    t0 = time.monotonic()
    res = tune_model("bpr-torch", split, fixed=fixed, budget=3.0, seed=1)
    assert time.monotonic() - t0 < 20
    assert res.trials[0]["stopped_by_budget"] and res.model.epochs_run_ < 100000


def test_fit_auto_finishes_within_its_budget_and_writes_the_valid_best(small_csv, tmp_path, capsys):
    out = tmp_path / "auto"
    budget = 12
    t0 = time.monotonic()
    res = cli_json(
        capsys, "fit", "--data", small_csv, "--model", "auto", "--budget", f"{budget}s", "--out", out
    )
    elapsed = time.monotonic() - t0
    assert elapsed < budget + 15, elapsed
    fams = {r["family"]: r["valid recall@20"] for r in res["families"]}
    assert {"most-popular", "itemknn", "ease", "als"} <= set(fams)
    assert res["model"] == max(fams, key=fams.get) and res["valid"]["recall@20"] == max(fams.values())
    art = load_artifact(out)
    assert art.model.name == res["model"] and art.info["auto"]["families"] == res["families"]
    # the winner is never below the popularity floor on valid
    assert res["valid"]["recall@20"] >= fams["most-popular"]


def test_no_trial_starts_that_the_slowest_so_far_says_would_overrun():
    import optuna

    def slow(trial):
        trial.set_user_attr("seconds", 0.4)
        time.sleep(0.4)
        return 0.0

    deadline = time.monotonic() + 0.6
    study = optuna.create_study()
    # Optuna's own timeout would start a second trial at 0.4 s, finishing past the deadline
    study.optimize(slow, n_trials=5, timeout=0.6, callbacks=[stop_before_overrunning(deadline)])
    assert len(study.trials) == 1
    study = optuna.create_study()
    study.optimize(slow, n_trials=5, timeout=0.6)
    assert len(study.trials) == 2  # the premise
