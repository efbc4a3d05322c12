"""Loaders on real and small generated data, bad input included."""

import numpy as np
import pytest

from fusionrec.data import LoadOptions, load_dataset, split_dataset
from fusionrec.data.export import export_mmrec
from fusionrec.data.loaders import modality_name
from fusionrec.errors import DataError


def test_benchmark_mmrec(benchmark_dir):
    ds = load_dataset(benchmark_dir)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (610, 3650, 90274)
    split = split_dataset(ds)
    assert (split.train.nnz, split.valid.nnz, split.test.nnz) == (72434, 8773, 9067)
    # raw ids come from item_map.csv; text from ../movies.csv
    assert ds.item_ids.raw(0) == "1"
    assert ds.content is not None and ds.content.texts[0].startswith("Toy Story (1995). genres: Adventure")


def test_movielens_ratio_split_reproduces_benchmark(shared_data, benchmark_dir):
    # the per-user 8:1:1 rule (MMRec's) on the 5-core raw data gives the shipped split exactly
    raw = load_dataset(shared_data, options=LoadOptions(kcore=5))
    bench = load_dataset(benchmark_dir)
    assert raw.item_ids == bench.item_ids and raw.user_ids == bench.user_ids
    a, b = split_dataset(raw, "ratio", seed=2026), split_dataset(bench)
    assert (a.test != b.test).nnz == 0 and (a.valid != b.valid).nnz == 0


def test_movielens_content_and_posters(shared_data):
    ds = load_dataset(shared_data)
    assert ds.n_items == 9724
    assert sum(p is not None for p in ds.content.image_paths) > 6000
    assert "genres:" in ds.content.texts[0]


def test_modality_names():
    assert modality_name("image_feat.npy") == "image"
    assert modality_name("vggish.npy") == "vggish"
    assert modality_name("image_mask.npy") is None


def _write_csv(path, text):
    path.write_text(text)
    return path


def test_generic_csv_with_items_and_threshold(tmp_path):
    _write_csv(
        tmp_path / "interactions.csv",
        "user_id,item_id,rating\nu1,a,5\nu1,b,2\nu2,a,4\nu2,c,5\nu3,b,5\nu3,c,1\n",
    )
    _write_csv(tmp_path / "items.csv", "item_id,title,image\na,Alpha,a.png\nb,Beta,\nc,Gamma,\n")
    ds = load_dataset(tmp_path, options=LoadOptions(rating_threshold=4))
    assert ds.n_interactions == 4
    assert ds.content.titles[ds.item_ids.index("a")] == "Alpha"
    assert ds.content.image_paths[ds.item_ids.index("a")].endswith("a.png")


def test_duplicates_and_kcore(tmp_path):
    rows = ["user_id,item_id"] + [f"u{u},i{i}" for u in range(6) for i in range(5)] + ["u0,i0", "u9,i9"]
    _write_csv(tmp_path / "interactions.csv", "\n".join(rows) + "\n")
    ds = load_dataset(tmp_path, options=LoadOptions(kcore=3))
    assert "u9" not in ds.user_ids and ds.n_interactions == 30


@pytest.mark.parametrize(
    "content, match",
    [
        ("", "empty"),
        ("user_id,item_id\n", "no rows"),
        ("user,item\n1,2\n", "missing column"),
    ],
)
def test_bad_tables_say_what_is_wrong(tmp_path, content, match):
    path = _write_csv(tmp_path / "interactions.csv", content)
    with pytest.raises(DataError, match=match):
        load_dataset(path)


def test_garbled_rating_names_row(tmp_path):
    path = _write_csv(tmp_path / "interactions.csv", "user_id,item_id,rating\n1,2,4\n1,3,abc\n")
    with pytest.raises(DataError, match="row 3"):
        load_dataset(path)


def test_export_roundtrip_with_other_modality_names(tmp_path, benchmark_dir):
    ds = load_dataset(benchmark_dir)
    rng = np.random.RandomState(0)
    feats = ds.features
    feats.add("audio", rng.rand(ds.n_items, 8))
    ds = ds.with_features(feats)
    split = split_dataset(ds)
    out = export_mmrec(ds, split, tmp_path / "exp", name="x")
    back = load_dataset(out)
    assert list(back.features) == ["audio"]
    assert np.allclose(back.features["audio"], ds.features["audio"])
    s2 = split_dataset(back)
    assert (s2.test != split.test).nnz == 0


def test_mmrec_bad_label(tmp_path):
    (tmp_path / "x.inter").write_text("userID\titemID\tx_label\n0\t0\t0\n0\t1\t7\n")
    with pytest.raises(DataError, match="x_label"):
        load_dataset(tmp_path)


def test_feature_rows_must_match(tmp_path):
    (tmp_path / "x.inter").write_text("userID\titemID\n0\t0\n0\t1\n1\t2\n")
    np.save(tmp_path / "image_feat.npy", np.ones((2, 4), np.float32))
    with pytest.raises(DataError, match="rows"):
        load_dataset(tmp_path)
