"""Artifacts: round trip, atomic writes, no pickle."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

from fusionrec.artifacts import Artifact, load_artifact, save_artifact
from fusionrec.data.dataset import Features, IdMap
from fusionrec.errors import DataError
from fusionrec.models.popularity import MostPopular


def _art():
    train = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0]], np.float32))
    feats = Features({"image": np.arange(6, dtype=np.float32).reshape(3, 2)})
    return Artifact(
        model=MostPopular().fit(train),
        user_ids=IdMap(["a", "b"]),
        item_ids=IdMap(["x", "y", "z"]),
        train=train,
        features=feats,
        info={"item_titles": ["X", "Y", "Z"], "data_fingerprint": "f"},
    )


def test_roundtrip(tmp_path):
    art = _art()
    save_artifact(art, tmp_path / "m")
    back = load_artifact(tmp_path / "m")
    assert np.array_equal(back.model.score(np.array([0, 1])), art.model.score(np.array([0, 1])))
    assert back.item_ids == art.item_ids and back.item_titles == ["X", "Y", "Z"]
    assert (back.train != art.train).nnz == 0
    assert np.array_equal(back.features["image"], art.features["image"])
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["model"] == "most-popular" and "package_version" in meta


def test_failed_write_leaves_old_artifact(tmp_path, monkeypatch):
    art = _art()
    save_artifact(art, tmp_path / "m")
    import fusionrec.artifacts as mod

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(mod, "save_file", boom)
    with pytest.raises(OSError):
        save_artifact(art, tmp_path / "m")
    assert load_artifact(tmp_path / "m").model.name == "most-popular"
    # no temp leftovers: only the name and the one version directory it points at
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.v000001", "m"]


def test_not_an_artifact(tmp_path):
    with pytest.raises(DataError, match="not an artifact"):
        load_artifact(tmp_path)


def test_pickled_arrays_are_refused(tmp_path):
    art = _art()
    save_artifact(art, tmp_path / "m")
    np.save(tmp_path / "m" / "train.npz", np.array([object()], dtype=object), allow_pickle=True)
    (tmp_path / "m" / "train.npz.npy").rename(tmp_path / "m" / "train.npz")
    with pytest.raises(ValueError):
        load_artifact(tmp_path / "m")


def test_rating_values_survive_the_round_trip(tmp_path):
    # the rating task's train matrix holds ratings; they used to come back as 1.0 from train.npz
    from fusionrec.models.biased_mf import BiasedMF

    train = sp.csr_matrix(np.array([[4.5, 0, 1.0], [0, 3.0, 2.0]], np.float32))
    model = BiasedMF(factors=2, epochs=3)
    model.show_progress = False
    art = Artifact(
        model=model.fit(train), user_ids=IdMap(["a", "b"]), item_ids=IdMap(["x", "y", "z"]), train=train
    )
    save_artifact(art, tmp_path / "m")
    back = load_artifact(tmp_path / "m")
    assert (back.train != train).nnz == 0 and back.train.data.tolist() == train.data.tolist()
    np.testing.assert_array_equal(back.model.predict([0, 1], [2, 0]), model.predict([0, 1], [2, 0]))


def test_artifact_without_train_values_loads_as_implicit(tmp_path):
    # artifacts written before train.npz carried values: every training cell reads as 1.0
    art = _art()
    save_artifact(art, tmp_path / "m")
    with np.load(tmp_path / "m" / "train.npz") as z:
        parts = {k: z[k] for k in z.files if k != "data"}
    np.savez(tmp_path / "m" / "train.npz", **parts)
    assert load_artifact(tmp_path / "m").train.data.tolist() == [1.0, 1.0, 1.0]
