"""`fusionrec tune`: selection on the validation split, one test evaluation, the chosen artifact."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _support import checkerboard

from fusionrec.artifacts import load_artifact
from fusionrec.cli import COMMANDS, main
from fusionrec.commands.tune import grid_points, parse_grid
from fusionrec.data.loaders import load_dataset
from fusionrec.data.splits import split_dataset
from fusionrec.errors import ConfigError
from fusionrec.evaluation import evaluate
from fusionrec.pipeline import build_model


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> str:
    m = checkerboard(80, 50, seed=4).tocoo()
    rng = np.random.RandomState(0)
    df = pd.DataFrame(
        {
            "user_id": m.row + 100,
            "item_id": m.col + 1000,
            "rating": 1.0,
            "timestamp": rng.randint(0, 10**6, m.nnz),
        }
    )
    path = tmp_path_factory.mktemp("tune") / "interactions.csv"
    df.to_csv(path, index=False)
    return str(path)


def tune_json(capsys, *args) -> dict:
    assert main(["tune", *map(str, args), "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


def test_tune_is_a_command():
    assert "tune" in COMMANDS


def test_grid_parsing_types_values_and_takes_the_product():
    grid = parse_grid(["factors=8,16", "reg=0.1;1", "similarity=cosine,bm25"])
    assert grid == {"factors": [8, 16], "reg": [0.1, 1], "similarity": ["cosine", "bm25"]}
    points = grid_points(grid)
    assert len(points) == 8 and {"factors": 16, "reg": 1, "similarity": "bm25"} in points
    assert grid_points({}) == [{}]
    for bad in (["factors"], ["=1,2"], ["factors="], ["k=1", "k=2"]):
        with pytest.raises(ConfigError):
            parse_grid(bad)


def test_tune_selects_on_valid_and_reports_test_once(small_csv, tmp_path, capsys):
    out = tmp_path / "best"
    res = tune_json(
        capsys,
        "--data",
        small_csv,
        "--split",
        "ratio",
        "--seed",
        "3",
        "--model",
        "itemknn",
        "--grid",
        "neighbors=1,3,20",
        "--grid",
        "shrink=0,5",
        "--param",
        "similarity=bm25",
        "--metric",
        "ndcg@10",
        "--masking",
        "train",
        "--out",
        out,
    )
    assert res["metric"] == "ndcg@10" and len(res["grid"]) == 6
    # Every reported valid number is what an independent fit gives on the valid split.
    ds = load_dataset(small_csv)
    split = split_dataset(ds, "ratio", seed=3)
    values = []
    for row in res["grid"]:
        params = {"neighbors": row["neighbors"], "shrink": row["shrink"], "similarity": "bm25"}
        model = build_model("itemknn", params, show_progress=False).fit(split.train)
        got = evaluate(model, split, on="valid", metrics=["ndcg@10"]).metrics["ndcg@10"]
        assert row["valid ndcg@10"] == pytest.approx(got)
        values.append(got)
    best = int(np.argmax(values))
    assert res["chosen_index"] == best
    assert res["chosen"] == {
        "similarity": "bm25",
        "neighbors": res["grid"][best]["neighbors"],
        "shrink": res["grid"][best]["shrink"],
    }
    # The test numbers are the chosen model's, under the requested masking.
    chosen = build_model("itemknn", res["chosen"], show_progress=False).fit(split.train)
    test = evaluate(chosen, split, on="test", metrics=["recall@20", "ndcg@10"], masking="train").metrics
    assert res["test"]["ndcg@10"] == pytest.approx(test["ndcg@10"], abs=1e-6)
    assert res["test"]["recall@20"] == pytest.approx(test["recall@20"], abs=1e-6)
    art = load_artifact(out)
    assert art.model.get_params()["neighbors"] == res["chosen"]["neighbors"]
    assert art.info["tuning"]["chosen"] == res["chosen"]
    np.testing.assert_array_equal(art.model.score(np.arange(5)), chosen.score(np.arange(5)))


def test_tune_prints_a_table_with_every_grid_point(small_csv, capsys):
    args = ["tune", "--data", small_csv, "--model", "als", "--grid", "factors=4,8", "--param", "epochs=3"]
    assert main([*args, "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "2 grid point(s)" in lines[0] and lines[1].split()[:2] == ["factors", "valid"]
    rows = [line.lstrip("* ").split() for line in lines[3:5]]
    assert [r[0] for r in rows] == ["4", "8"] and all(0.0 <= float(r[1]) <= 1.0 for r in rows)
    assert sum(line.startswith("*") for line in lines[3:5]) == 1  # the chosen row is marked
    assert lines[5].startswith("chosen: {") and "'factors': " in lines[5]
    assert lines[6].startswith("test (masking train+valid")


def test_tune_rejects_unknown_keys_before_loading_data(capsys):
    code = main(["tune", "--data", "/no/such/dir", "--model", "itemknn", "--grid", "neigbors=5,10"])
    err = capsys.readouterr().err
    assert code == 2 and "neigbors" in err and "neighbors" in err  # lists the valid names


def test_tune_rejects_a_key_given_twice(small_csv, capsys):
    code = main(
        [
            "tune",
            "--data",
            small_csv,
            "--model",
            "itemknn",
            "--grid",
            "neighbors=5,10",
            "--param",
            "neighbors=3",
        ]
    )
    assert code == 2 and "keep one" in capsys.readouterr().err


def test_tune_selects_a_rating_model_on_valid_rmse(tmp_path, capsys):
    from _support import planted_ratings_csv

    from fusionrec.evaluation import evaluate_ratings

    data = planted_ratings_csv(tmp_path / "ratings.csv")
    fixed = ["--param", "factors=4", "--param", "batch_size=32", "--param", "learning_rate=0.02"]
    res = tune_json(
        capsys,
        "--data",
        data,
        "--seed",
        "3",
        "--model",
        "biased-mf",
        *fixed,
        "--grid",
        "epochs=1,60",
        "--out",
        tmp_path / "best",
    )
    assert res["metric"] == "rmse"  # a rating model's default
    valid = [row["valid rmse"] for row in res["grid"]]
    assert res["chosen"]["epochs"] == 60 and valid[1] < valid[0] and res["valid"]["rmse"] == min(valid)
    # tested once, on test: the stored artifact reproduces it
    art = load_artifact(tmp_path / "best")
    ds = load_dataset(data)
    split = split_dataset(ds, seed=3, task="rating")
    again = evaluate_ratings(art.model, split.test, train=split.train).metrics["rmse"]
    assert res["test"]["rmse"] == pytest.approx(again, rel=1e-5)
    assert main(["tune", "--data", str(data), "--model", "biased-mf", "--metric", "ndcg@10", "--quiet"]) == 2
    assert "predicts ratings" in capsys.readouterr().err
