"""The console script end to end, in a subprocess, as a user runs it."""

import json
import subprocess
import sys

import pytest
from _support import planted_ratings_csv


def fusionrec(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "fusionrec.cli", *map(str, args)], capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def test_help_lists_commands():
    out = fusionrec("--help").stdout
    for cmd in ("demo", "fit", "evaluate", "recommend", "models", "export"):
        assert cmd in out


def test_fit_evaluate_recommend_roundtrip(tmp_path, benchmark_dir):
    art = tmp_path / "mp"
    fit = json.loads(
        fusionrec(
            "fit",
            "--data",
            benchmark_dir,
            "--model",
            "most-popular",
            "--out",
            art,
            "--masking",
            "train",
            "--json",
            "--quiet",
        ).stdout
    )
    assert fit["split"]["test"] == 9067
    ev = json.loads(
        fusionrec(
            "evaluate",
            art,
            "--data",
            benchmark_dir,
            "--masking",
            "train",
            "--json",
            "--metrics",
            "recall@20,ndcg@20,precision@10,map@10,mrr@10,hit@10,f1@10",
        ).stdout
    )
    assert ev["recall@20"] == pytest.approx(fit["test"]["recall@20"])
    assert 0.10 < ev["recall@20"] < 0.13  # MostPopular on this split (field: 0.1131)
    rec = json.loads(fusionrec("recommend", art, "--user", "1", "-k", "3", "--json").stdout)
    assert len(rec["recommendations"]) == 3 and rec["recommendations"][0]["title"]
    cold = json.loads(fusionrec("recommend", art, "--items", "1,2", "-k", "2", "--json").stdout)
    assert [r["item_id"] for r in cold["recommendations"]] and "1" not in [
        r["item_id"] for r in cold["recommendations"]
    ]


def test_models_lists_params():
    info = json.loads(fusionrec("models", "--json").stdout)
    names = {m["name"] for m in info}
    assert "most-popular" in names
    assert all("params" in m and "requires_features" in m for m in info)


def test_export_then_fit_on_export(tmp_path, shared_data):
    out = tmp_path / "exp"
    fusionrec("export", "--data", shared_data, "--kcore", "5", "--to", "mmrec", out, "--quiet")
    assert list(out.glob("*.inter"))
    fit = json.loads(
        fusionrec(
            "fit", "--data", out, "--model", "most-popular", "--out", tmp_path / "a", "--json", "--quiet"
        ).stdout
    )
    assert fit["split"]["test"] == 9067


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "--data", "{bench}", "--model", "nope", "--out", "{tmp}/x"], "unknown model"),
        (
            ["fit", "--data", "{bench}", "--model", "random", "--param", "speed=3", "--out", "{tmp}/x"],
            "no parameter",
        ),
        (["fit", "--data", "{tmp}/missing", "--model", "random", "--out", "{tmp}/x"], "no such file"),
        (["evaluate", "{tmp}", "--data", "{bench}"], "not an artifact"),
    ],
)
def test_bad_input_exits_nonzero_with_message(tmp_path, benchmark_dir, args, message):
    args = [a.format(bench=benchmark_dir, tmp=tmp_path) for a in args]
    proc = fusionrec(*args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()  # nothing half-written


def test_unknown_user_says_what_to_do(tmp_path, benchmark_dir):
    art = tmp_path / "mp"
    fusionrec("fit", "--data", benchmark_dir, "--model", "most-popular", "--out", art, "--quiet", "--no-eval")
    proc = fusionrec("recommend", art, "--user", "nobody", check=False)
    assert proc.returncode == 2 and "--items" in proc.stderr


def test_rating_task_fit_evaluate_recommend(tmp_path):
    data = planted_ratings_csv(tmp_path / "ratings.csv")
    art = tmp_path / "mf"
    common = ["--data", data, "--seed", "3"]
    fit = json.loads(
        fusionrec(
            "fit",
            *common,
            "--model",
            "biased-mf",
            "--param",
            "factors=4",
            "--param",
            "learning_rate=0.02",
            "--param",
            "batch_size=32",
            "--param",
            "epochs=100",
            "--out",
            art,
            "--json",
            "--quiet",
        ).stdout
    )
    assert fit["task"] == "rating"  # the model's own task, without --task
    # the two taste groups are learnable: well below the spread of the ratings (about 1.5)
    assert 0 < fit["test"]["mae"] <= fit["test"]["rmse"] < 1.0 and "recall@20" in fit["test"]
    ev = json.loads(
        fusionrec("evaluate", art, *common, "--task", "rating", "--by-activity", "--json", "--quiet").stdout
    )
    assert ev["rmse"] == pytest.approx(fit["test"]["rmse"]) and ev["ratings"] == fit["split"]["test"]
    assert set(ev["rating_by_activity"]) == {"users", "items"}
    text = fusionrec("evaluate", art, *common, "--by-activity", "--quiet").stdout
    assert "rmse" in text and "by item activity" in text
    rec = json.loads(fusionrec("recommend", art, "--user", "u0", "-k", "3", "--explain", "--json").stdout)
    first = rec["recommendations"][0]
    assert 1.0 <= first["predicted_rating"] <= 5.0
    assert set(first["explanation"]["parts"]) >= {"user_bias", "item_bias"}
    assert "predicted rating" in fusionrec("recommend", art, "--user", "u0", "-k", "2", "--explain").stdout
    bad = fusionrec(
        "fit", *common, "--model", "most-popular", "--task", "rating", "--out", tmp_path / "x", check=False
    )
    assert bad.returncode == 2 and "does not predict ratings" in bad.stderr


def test_evaluate_loads_the_data_as_the_artifact_was_fitted(tmp_path):
    # regression: an artifact fitted with --kcore 5 failed to evaluate without it, with a fingerprint error
    # that did not say which filter was missing
    art = tmp_path / "pop"
    fit = json.loads(fusionrec("fit", "--data", "demo", "--kcore", "5", "--model", "most-popular", "--out", art,
                               "--json", "--quiet").stdout)  # fmt: skip
    ev = json.loads(fusionrec("evaluate", art, "--data", "demo", "--json", "--quiet").stdout)
    assert ev["recall@20"] == pytest.approx(fit["test"]["recall@20"])
    bad = fusionrec("evaluate", art, "--data", "demo", "--kcore", "10", "--quiet", check=False)
    assert bad.returncode == 2 and "kcore 5" in bad.stderr and "kcore 10" in bad.stderr
