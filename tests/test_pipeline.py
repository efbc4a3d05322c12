"""Fit → artifact: which task a model is fitted for, and ratings kept from split to saved artifact."""

import numpy as np
import pytest

from fusionrec.artifacts import load_artifact, save_artifact
from fusionrec.data.dataset import Dataset, Features, IdMap
from fusionrec.data.splits import split_dataset
from fusionrec.errors import ConfigError
from fusionrec.evaluation import evaluate_ratings
from fusionrec.pipeline import build_model, fit_artifact, resolve_task


def test_a_model_is_fitted_for_its_own_task():
    assert resolve_task(build_model("biased-mf")) == "rating"
    assert resolve_task(build_model("als")) == "ranking"
    assert resolve_task(build_model("neural", {"objective": "mse"})) == "rating"
    assert resolve_task(build_model("neural"), "ranking") == "ranking"
    with pytest.raises(ConfigError, match="objective=mse"):
        resolve_task(build_model("neural"), "rating")
    with pytest.raises(ConfigError, match="--task rating"):
        resolve_task(build_model("biased-mf"), "ranking")


def test_neural_mse_learns_ratings_through_split_fit_and_artifact(tmp_path):
    # the MSE head used to see 1.0 for every rating: the split binarised them
    rng = np.random.RandomState(0)
    n_users, n_items = 60, 40
    u, i = np.nonzero(rng.rand(n_users, n_items) < 0.5)
    taste = np.where(u % 2 == i % 2, 4.5, 1.5)
    ratings = np.clip(np.round(taste + rng.normal(0, 0.4, len(u))), 1, 5)
    group = (np.arange(n_items) % 2).astype(np.float32)
    feats = Features({"text": np.stack([group, 1 - group, rng.rand(n_items)], 1).astype(np.float32)})
    ds = Dataset(u, i, IdMap(range(n_users)), IdMap(range(n_items)), ratings=ratings, features=feats)
    split = split_dataset(ds, "ratio", seed=1, task="rating")
    model = build_model(
        "neural",
        {"objective": "mse", "factors": 8, "epochs": 25, "learning_rate": 0.03, "batch_size": 256},
        show_progress=False,
    )
    art, _ = fit_artifact(ds, split, model)
    assert art.info["task"] == "rating"
    res = evaluate_ratings(model, split.test, train=split.train)
    spread = float(np.std(split.test.data))
    assert res.metrics["rmse"] < 0.6 * spread, (res.metrics, spread)
    save_artifact(art, tmp_path / "nn")
    back = load_artifact(tmp_path / "nn")
    assert back.info["task"] == "rating" and (back.train != split.train).nnz == 0
    again = evaluate_ratings(back.model, split.test, train=back.train)
    assert again.metrics["rmse"] == pytest.approx(res.metrics["rmse"], rel=1e-5)
