"""The attack suite's fixtures: a small data set with posters, real artifacts made by the real CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from attack_helpers import READ_KEY, WRITE_KEY, run_cli, write_dataset


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("sec") / "data")


@pytest.fixture(scope="session")
def feature_dir(dataset_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("feat") / "features"
    res = run_cli(
        "features", "--data", dataset_dir, "--image", "color", "--text", "tfidf",
        "--features-only", "--no-cache", "--out", out, "--quiet",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="session")
def artifact_template(dataset_dir, feature_dir, tmp_path_factory) -> Path:
    """most-popular on the small data with color + tfidf features (so POST /items works). Do not modify."""
    out = tmp_path_factory.mktemp("art") / "model"
    res = run_cli(
        "fit",
        "--data",
        dataset_dir,
        "--features",
        feature_dir,
        "--model",
        "most-popular",
        "--out",
        out,
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture
def artifact(artifact_template, tmp_path) -> Path:
    """A private copy of the template artifact (a plain directory, as `cp -r` of a deployment makes)."""
    dst = tmp_path / "model"
    shutil.copytree(artifact_template, dst, symlinks=False)
    return dst


@pytest.fixture
def key_file(tmp_path) -> Path:
    p = tmp_path / "keys.txt"
    p.write_text(f"# fusionrec keys\nwrite:{WRITE_KEY}\nread:{READ_KEY}\n")
    return p
