"""Item 1: nothing named by an artifact or a feature directory is imported or called."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from attack_helpers import run_cli

from fusionrec.artifacts import load_artifact
from fusionrec.errors import ConfigError, DataError
from fusionrec.features.base import extractor_from_config, validate_extractor_config
from fusionrec.features.extract import extract_item_features
from fusionrec.features.image_cnn import allow_backbone

PROBE = "fusionrec_attack_probe"


@pytest.fixture
def probe_dir(tmp_path):
    """A module of the test's own that leaves a marker file when imported."""
    d = tmp_path / "probe"
    d.mkdir()
    marker = tmp_path / "IMPORTED"
    (d / f"{PROBE}.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n\ndef build():\n    import os\n    os.abort()\n"
    )
    return d, marker


def _name_backbone(artifact, arch: str) -> None:
    meta_file = artifact / "model.json"
    meta = json.loads(meta_file.read_text())
    meta["feature_extractors"]["image"] = {"name": "cnn", "kind": "image", "params": {"arch": arch}}
    meta_file.write_text(json.dumps(meta))


@pytest.mark.parametrize("arch", ["os:abort", f"{PROBE}:build"])
def test_artifact_naming_code_is_refused_by_serve_and_recommend(artifact, probe_dir, arch):
    # an artifact whose image extractor named os:abort used to kill the server on the first POST /items
    d, marker = probe_dir
    _name_backbone(artifact, arch)
    for cmd in (["serve", artifact, "--port", "1"], ["recommend", artifact, "--user", "u1"]):
        res = run_cli(*cmd, PYTHONPATH=str(d))
        assert res.returncode == 2, res.stderr
        last = res.stderr.strip().splitlines()[-1]
        assert "never imported from a file" in last and arch in last and "Traceback" not in res.stderr
    assert not marker.exists()  # the module was never imported


def test_artifact_naming_code_is_refused_in_process(artifact, probe_dir, monkeypatch):
    d, marker = probe_dir
    monkeypatch.syspath_prepend(str(d))
    _name_backbone(artifact, f"{PROBE}:build")
    with pytest.raises(DataError, match="never imported from a file"):
        load_artifact(artifact)
    assert PROBE not in sys.modules and not marker.exists()


def test_feature_directory_naming_code_is_refused_by_fit(dataset_dir, feature_dir, probe_dir, tmp_path):
    # a data set's manifest.json is copied into the artifact by fit: it is checked when it is read
    d, marker = probe_dir
    crafted = tmp_path / "features"
    shutil.copytree(feature_dir, crafted)
    manifest = json.loads((crafted / "manifest.json").read_text())
    manifest["extractors"]["image"] = {"name": "cnn", "kind": "image", "params": {"arch": f"{PROBE}:build"}}
    (crafted / "manifest.json").write_text(json.dumps(manifest))
    res = run_cli(
        "fit", "--data", dataset_dir, "--features", crafted, "--model", "most-popular",
        "--out", tmp_path / "m", PYTHONPATH=str(d),
    )  # fmt: skip
    assert res.returncode == 2 and "never imported from a file" in res.stderr, res.stderr
    assert not marker.exists() and not (tmp_path / "m").exists()


def test_extracting_one_item_from_a_crafted_config_imports_nothing(probe_dir, monkeypatch):
    d, marker = probe_dir
    monkeypatch.syspath_prepend(str(d))
    config = {"name": "cnn", "kind": "image", "params": {"arch": f"{PROBE}:build"}}
    with pytest.raises(ConfigError, match="never imported"):
        extract_item_features({"image": config}, image_bytes_or_path=b"\x89PNG")
    with pytest.raises(ConfigError, match="never imported"):
        extractor_from_config(config)
    assert PROBE not in sys.modules and not marker.exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"name": "pickle", "params": {}}, "unknown extractor"),
        ({"name": "cnn", "kind": "text", "params": {}}, "reads image content"),
        ({"name": "cnn", "params": {"image_size": "abc"}}, "image_size='abc'"),
        ({"name": "cnn", "params": {"image_size": True}}, "expected int"),
        ({"name": "tfidf", "params": {"__class__": 1}}, "no parameter"),
        ({"name": "color", "params": []}, "JSON object"),
        ("cnn", "JSON object"),
    ],
)
def test_extractor_configs_are_checked_against_the_registry(config, message):
    with pytest.raises(ConfigError, match=message):
        validate_extractor_config(config, where="model.json")


def test_a_backbone_the_operator_allows_passes(monkeypatch):
    import fusionrec.features.image_cnn as cnn

    monkeypatch.setattr(cnn, "_ALLOWED_BACKBONES", set())
    config = {"name": "cnn", "params": {"arch": "mypkg.nets:small"}}
    with pytest.raises(ConfigError):
        validate_extractor_config(config, where="x")
    allow_backbone("mypkg.nets:small")
    assert validate_extractor_config(config, where="x") is config
