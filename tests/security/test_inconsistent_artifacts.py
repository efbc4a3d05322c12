"""Item 7 (inconsistent artifact files are a clear error naming the file, never a 500) and item 10 (unknown
ids raise UnknownUserError / UnknownItemError in the public API, never a silent -1)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _support import checkerboard
from attack_helpers import run_cli
from safetensors.numpy import load_file, save_file

from fusionrec.artifacts import Artifact, forget_user, load_artifact, save_artifact
from fusionrec.data.dataset import IdMap
from fusionrec.errors import DataError, UnknownItemError, UnknownUserError
from fusionrec.models.registry import create_model
from fusionrec.recommend import recommend_for_items, recommend_for_user


@pytest.fixture(scope="module")
def als_art() -> Artifact:
    X = checkerboard(20, 16)
    model = create_model("als", {"factors": 4, "epochs": 2})
    model.show_progress = False
    model.fit(X)
    users = IdMap([f"u{i}" for i in range(X.shape[0])])
    items = IdMap([f"i{i}" for i in range(X.shape[1])])
    return Artifact(model=model, user_ids=users, item_ids=items, train=X)


@pytest.fixture
def als_dir(als_art, tmp_path):
    return save_artifact(als_art, tmp_path / "als")


def _edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _cut_user_factors(d):
    arrays = load_file(str(d / "arrays.safetensors"))
    arrays["user_factors_"] = arrays["user_factors_"][:-3].copy()
    save_file(arrays, str(d / "arrays.safetensors"))


def _train_index_out_of_range(d):
    with np.load(d / "train.npz") as z:
        parts = dict(z)
    parts["indices"] = parts["indices"] + 1000
    np.savez(d / "train.npz", **parts)


def _train_bad_indptr(d):
    with np.load(d / "train.npz") as z:
        parts = dict(z)
    parts["indptr"] = parts["indptr"][::-1].copy()
    np.savez(d / "train.npz", **parts)


CASES = {
    "user factors shorter than the id map": (
        _cut_user_factors,
        "arrays.safetensors.*user_factors_ has 17 rows",
    ),
    "train index out of range": (_train_index_out_of_range, "train.npz: an item index is out of range"),
    "train indptr not monotone": (_train_bad_indptr, "train.npz: indptr is not a valid row index"),
    "string where factors is an int": (
        lambda d: _edit_json(d / "model.json", lambda m: m["params"].update(factors="abc")),
        "model.json.*factors='abc'.*expected int",
    ),
    "bool where factors is an int": (
        lambda d: _edit_json(d / "model.json", lambda m: m["params"].update(factors=True)),
        "model.json.*factors=True",
    ),
    "revision not an integer": (
        lambda d: _edit_json(d / "model.json", lambda m: m.update(revision="7")),
        "model.json: 'revision' must be a non-negative integer",
    ),
    "state sets a method": (
        lambda d: _edit_json(d / "model.json", lambda m: m["state"].update(score=1)),
        "'score' is not a learned-state name",
    ),
    "n_users_ not a count": (
        lambda d: _edit_json(d / "model.json", lambda m: m["state"].update(n_users_="20")),
        "n_users_ is '20'",
    ),
    "fewer ids than users": (
        lambda d: _edit_json(d / "idmaps.json", lambda m: m.update(users=m["users"][:-1])),
        "the model has 20 users .* lists 19 users",
    ),
    "ids of the wrong type": (
        lambda d: _edit_json(d / "idmaps.json", lambda m: m["items"].__setitem__(0, {"a": 1})),
        "idmaps.json: must hold",
    ),
    "model.json not JSON": (lambda d: (d / "model.json").write_text("{"), "model.json: not valid JSON"),
    "model.json not UTF-8": (lambda d: (d / "model.json").write_bytes(b'{"a": "\xff"}'), "not UTF-8"),
    "model.json an array": (lambda d: (d / "model.json").write_text("[]"), "JSON object"),
    "unknown model": (
        lambda d: _edit_json(d / "model.json", lambda m: m.update(model="os.system")),
        "unknown model 'os.system'",
    ),
    "arrays not safetensors": (
        lambda d: (d / "arrays.safetensors").write_bytes(b"\x00" * 64),
        "arrays.safetensors: not a readable safetensors file",
    ),
    "train.npz missing": (lambda d: (d / "train.npz").unlink(), "train.npz: missing"),
    "train.npz with a pickled array": (
        lambda d: np.savez(d / "train.npz", indptr=np.array([object()]), indices=[0], shape=[1, 1]),
        "train.npz: not a readable training matrix",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_inconsistent_artifact_is_a_clear_error_naming_the_file(als_dir, case):
    damage, message = CASES[case]
    damage(als_dir)
    with pytest.raises(DataError, match=message):
        load_artifact(als_dir)


@pytest.mark.slow
def test_damaged_artifact_fails_serve_and_recommend_with_exit_2(als_dir):
    _cut_user_factors(als_dir)
    for cmd in (["serve", als_dir, "--port", "1"], ["recommend", als_dir, "--user", "u19"]):
        res = run_cli(*cmd)
        assert res.returncode == 2 and "user_factors_ has 17 rows" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr


def test_features_with_a_wrong_length_mask_are_refused(artifact):
    arrays = load_file(str(artifact / "features.safetensors"))
    arrays["image__mask"] = arrays["image__mask"][:-1].copy()
    save_file(arrays, str(artifact / "features.safetensors"))
    with pytest.raises(DataError, match="features.safetensors: modality 'image'"):
        load_artifact(artifact)


# ------------------------------------------------------------------------------------------------ item 10


def test_recommend_rejects_negative_and_out_of_range_user_indices(als_art):
    # IdMap.indices() gives -1 for an unknown id; numpy used to read it as the last user and answer for them
    model = als_art.model
    for bad in ([-1], [20], [0, -1]):
        with pytest.raises(UnknownUserError, match="not in the model"):
            model.recommend(np.array(bad), 5)
    idx, _ = model.recommend(np.array([0, 19]), 5)
    assert idx.shape == (2, 5)


def test_unknown_raw_ids_raise_typed_errors_everywhere(als_art):
    with pytest.raises(UnknownUserError, match="'nobody'"):
        als_art.user_ids.require(["u1", "nobody"], kind="user")
    with pytest.raises(UnknownItemError, match="'nothing'"):
        als_art.item_ids.require(["nothing"])
    assert als_art.item_ids.require(["i3", "i0"]).tolist() == [3, 0]
    with pytest.raises(UnknownUserError):
        recommend_for_user(als_art, "nobody")
    with pytest.raises(UnknownItemError):
        recommend_for_items(als_art, ["i1", "nothing"])
    with pytest.raises(UnknownUserError, match="nothing to forget"):
        forget_user(als_art, "nobody")
