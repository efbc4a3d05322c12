"""Data sets from elsewhere are untrusted input: a bad file is a one-line error naming the file, row or
option and what to do (CLI exit 2, no traceback), never a crash, a hang or a machine-sized allocation."""

import logging
import re
import resource
import subprocess
import sys
import time

import numpy as np
import pytest
from numpy.lib import format as npy_format

from fusionrec.data import LoadOptions, load_dataset
from fusionrec.data.dataset import Features
from fusionrec.data.feature_dir import read_feature_dir
from fusionrec.errors import DataError

ADDRESS_SPACE = 2 << 30  # 2 GiB


def run_cli(*args, limit_memory=False, timeout=60):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "fusionrec.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit if limit_memory else None,
    )
    return proc, time.perf_counter() - t0


def assert_clean_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for frag in fragments:
        assert frag in lines[0], lines[0]


def mmrec_dir(root, rows, header="userID\titemID\trating"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "x.inter").write_text(header + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return root


HUGE_ROWS = [(0, 0, 5), (0, 1, 4), (1, 1, 3), (1, 10**9, 5), (2, 0, 4), (2, 10**9, 1)]


def test_one_huge_item_id_is_remapped_in_bounded_memory(tmp_path):
    # an itemID of 10^9 used to size the id maps by max id + 1: `fit` grew to 23 GB and was OOM-killed
    data = mmrec_dir(tmp_path / "huge", HUGE_ROWS)
    proc, seconds = run_cli(
        "fit", "--data", data, "--model", "most-popular", "--out", tmp_path / "a", "--no-eval",
        limit_memory=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert seconds < 5
    assert "itemID runs up to 1000000000 but only 3 distinct ids appear; remapped" in proc.stderr
    ds = load_dataset(data)
    assert ds.n_items == 3 and ds.item_ids.to_list() == ["0", "1", "1000000000"]


def test_huge_item_id_beyond_the_feature_rows_is_refused_fast(tmp_path):
    data = mmrec_dir(tmp_path / "huge", HUGE_ROWS)
    np.save(data / "image_feat.npy", np.ones((3, 4), np.float32))
    proc, seconds = run_cli(
        "fit", "--data", data, "--model", "most-popular", "--out", tmp_path / "a", limit_memory=True
    )
    assert seconds < 5
    assert_clean_error(proc, "x.inter: row 5 has itemID 1000000000, but image_feat.npy has 3 rows")
    assert not (tmp_path / "a").exists()


def test_huge_user_id_is_remapped_too(tmp_path):
    ds = load_dataset(mmrec_dir(tmp_path / "u", [(0, 0, 1), (5 * 10**12, 1, 1), (1, 1, 2)]))
    assert ds.n_users == 3 and "5000000000000" in ds.user_ids


@pytest.mark.parametrize(
    "value, match",
    [
        ("99999999999999999999999", "holds '99999999999999999999999'; MMRec itemIDs are 0-based integer"),
        ("-3", "holds '-3'"),
        ("abc", "holds 'abc'"),
    ],
)
def test_mmrec_ids_beyond_int64_or_not_indices_name_the_row(tmp_path, value, match):
    # an id beyond int64 used to raise OverflowError
    data = mmrec_dir(tmp_path / "d", [(0, 0, 1), (1, value, 2)])
    with pytest.raises(DataError, match=rf"x.inter: column 'itemID' row 3 {match}"):
        load_dataset(data)


def test_table_ids_beyond_int64_are_just_ids(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("user_id,item_id\n1,99999999999999999999999\n1,3\n2,3\n")
    ds = load_dataset(path)
    assert ds.item_ids.to_list() == ["3", "99999999999999999999999"]


def test_iso_and_text_timestamps(tmp_path):
    # string timestamps used to crash under pandas 3 (np.issubdtype on a string dtype)
    path = tmp_path / "t.csv"
    path.write_text("user_id,item_id,timestamp\n1,a,2024-03-01T10:00:00Z\n1,b,2024-03-01 11:00:00+01:00\n")
    ds = load_dataset(path)
    assert ds.timestamps.tolist() == [1709287200, 1709287200]
    path.write_text("user_id,item_id,timestamp\n1,a,2024-03-01\n1,b,yesterday\n")
    with pytest.raises(
        DataError, match="column 'timestamp' row 3 holds 'yesterday', neither a number nor a date"
    ):
        load_dataset(path)
    proc, _ = run_cli("info", "--data", path)
    assert_clean_error(proc, "t.csv", "row 3", "--time-col none")
    assert load_dataset(path, options=LoadOptions(time_col=None)).timestamps is None
    mm = mmrec_dir(tmp_path / "m", [(0, 0, "2024-01-01"), (0, 1, "soon")], header="userID\titemID\ttimestamp")
    with pytest.raises(DataError, match="row 3 holds 'soon'"):
        load_dataset(mm)


def test_unknown_time_column_is_refused(tmp_path):
    # --time-col nope used to be ignored silently
    path = tmp_path / "t.csv"
    path.write_text("user_id,item_id,timestamp\n1,a,5\n")
    proc, _ = run_cli("info", "--data", path, "--time-col", "nope")
    assert_clean_error(proc, "--time-col 'nope' is not a column (found ['user_id', 'item_id', 'timestamp'])")
    proc, _ = run_cli("info", "--data", path, "--rating-col", "stars")
    assert_clean_error(proc, "--rating-col 'stars' is not a column")
    with pytest.raises(DataError, match="--time-col does not apply to the mmrec format"):
        load_dataset(mmrec_dir(tmp_path / "m", [(0, 0, 1)]), options=LoadOptions(time_col="when"))


@pytest.mark.parametrize("value", ["inf", "-inf", "nan?"])
def test_infinite_or_garbled_ratings_name_the_row(tmp_path, value):
    path = tmp_path / "t.csv"
    path.write_text(f"user_id,item_id,rating\n1,a,4\n1,b,{value}\n")
    with pytest.raises(
        DataError, match=re.escape(f"column 'rating' row 3 holds '{value}', not a finite number")
    ):
        load_dataset(path)
    mm = mmrec_dir(tmp_path / "m", [(0, 0, 4), (0, 1, value)])
    with pytest.raises(DataError, match="x.inter: column 'rating' row 3"):
        load_dataset(mm)


def test_x_label_error_names_row_and_value(tmp_path):
    data = mmrec_dir(tmp_path / "d", [(0, 0, 0), (0, 1, 0), (1, 1, 7)], header="userID\titemID\tx_label")
    with pytest.raises(DataError, match=r"x.inter: row 4 has x_label '7'; x_label must be 0 \(train\)"):
        load_dataset(data)


def _feature_dir(tmp_path):
    return mmrec_dir(tmp_path / "f", [(0, 0, 1), (0, 1, 1), (1, 2, 1)])


def test_object_and_garbage_npy_files_are_refused(tmp_path):
    data = _feature_dir(tmp_path)
    np.save(data / "image_feat.npy", np.array([{"a": 1}, None, "x"], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="image_feat.npy: holds Python objects"):
        load_dataset(data)
    (data / "image_feat.npy").write_bytes(b"\x93NUMPY garbage that is not an array header")
    proc, _ = run_cli("info", "--data", data)
    assert_clean_error(proc, "image_feat.npy: is not a readable .npy array")
    np.save(data / "image_feat.npy", np.array([["a", "b"]] * 3))
    with pytest.raises(DataError, match="image_feat.npy: dtype <U1 is not a real number type"):
        load_dataset(data)


def test_wrong_length_mask_names_the_file(tmp_path):
    data = _feature_dir(tmp_path)
    np.save(data / "image_feat.npy", np.ones((3, 4), np.float32))
    np.save(data / "image_mask.npy", np.ones(5, bool))
    proc, _ = run_cli("info", "--data", data)
    assert_clean_error(proc, "image_mask.npy: shape (5,), but its feature file has 3 rows")


def test_nan_and_inf_feature_rows_are_marked_absent(tmp_path, caplog):
    # NaN/inf values used to be zeroed and kept "present" when a mask said so
    data = _feature_dir(tmp_path)
    values = np.ones((3, 4), np.float32)
    values[1, 2], values[2, 0] = np.nan, np.inf
    np.save(data / "image_feat.npy", values)
    np.save(data / "image_mask.npy", np.ones(3, bool))
    with caplog.at_level(logging.WARNING, logger="fusionrec"):
        ds = load_dataset(data)
    assert ds.features.mask("image").tolist() == [True, False, False]
    assert np.isfinite(ds.features["image"]).all()
    assert "image_feat.npy: 2 row(s) hold NaN/inf values; marked absent" in caplog.text
    f = Features({"t": np.array([[1.0, np.nan], [1.0, 2.0]])}, {"t": np.array([True, True])})
    assert f.mask("t").tolist() == [False, True]


def test_non_utf8_item_map_names_the_file(tmp_path):
    data = mmrec_dir(tmp_path / "d", [(0, 0, 1), (0, 1, 1)])
    (data / "item_map.csv").write_bytes(b"itemID,movieId\n0,caf\xe9\n1,b\n")
    proc, _ = run_cli("info", "--data", data)
    assert_clean_error(proc, "item_map.csv: not UTF-8 text", "re-save it as UTF-8")


def test_npy_header_claiming_terabytes_is_refused_before_allocating(tmp_path):
    data = _feature_dir(tmp_path)
    with open(data / "image_feat.npy", "wb") as f:
        npy_format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (3, 10**11)})
        f.write(b"\0" * 64)
    np.save(data / "text_feat.npy", np.ones((3, 2), np.float32))
    (data / "items.csv").write_text("item_id\n0\n1\n2\n")
    proc, _ = run_cli("info", "--data", data, limit_memory=True)
    assert_clean_error(proc, "image_feat.npy: is not a readable .npy array (mmap length is greater than file")
    ds = load_dataset(mmrec_dir(tmp_path / "other", [(0, 0, 1), (1, 1, 1)]))
    with pytest.raises(DataError, match="image_feat.npy: is not a readable .npy array"):
        read_feature_dir(data, ds.item_ids)
