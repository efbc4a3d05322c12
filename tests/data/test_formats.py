"""Other tools' formats as they are published: RecBole atomic files, delimited files of any name and
separator, Amazon review + metadata JSON lines. Each is written small here and loaded through the CLI and
the Python API, which must agree; exports round-trip."""

import gzip
import json

import numpy as np
import pytest

from fusionrec.cli import main
from fusionrec.data import LoadOptions, load_dataset, split_dataset
from fusionrec.data.export import export_mmrec, export_recbole
from fusionrec.data.loaders import LOADERS, detect_format
from fusionrec.errors import DataError

# (user, item, rating, unix time): 4 users x 5 items, every user and item with >= 2 interactions
ROWS = [
    (u, i, float(1 + (u + i) % 5), 1_600_000_000 + 3600 * (5 * u + i))
    for u in range(1, 5)
    for i in range(1, 6)
    if (u + i) % 4 != 0
]
TITLES = {1: "Alpha One", 2: "Beta Two", 3: "Gamma Three", 4: "Delta Four", 5: "Eps Five"}
GENRES = {1: "Action", 2: "Comedy Drama", 3: "Drama", 4: "Action Comedy", 5: "Horror"}


def cli_summary(capsys, *args):
    capsys.readouterr()
    assert main(["info", *map(str, args), "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    out.pop("items_with_text", None), out.pop("items_with_image", None)
    return out


def assert_same_summary(capsys, path, cli_args, options, fmt):
    ds = load_dataset(path, options=options)
    assert detect_format(path) == fmt
    assert cli_summary(capsys, "--data", path, *cli_args) == {"format": fmt, **ds.summary()}
    return ds


def write_recbole(root, name="shop"):
    root.mkdir(parents=True, exist_ok=True)
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    inter += [f"u{u}\tit{i}\t{r}\t{t}" for u, i, r, t in ROWS]
    (root / f"{name}.inter").write_text("\n".join(inter) + "\n")
    item = ["item_id:token\tmovie_title:token_seq\tyear:token\tclass:token_seq"]
    item += [f"it{i}\t{TITLES[i]}\t{1990 + i}\t{GENRES[i]}" for i in TITLES]
    (root / f"{name}.item").write_text("\n".join(item) + "\n")
    (root / f"{name}.user").write_text(
        "user_id:token\tage:float\n" + "".join(f"u{u}\t3{u}\n" for u in range(1, 5))
    )
    return root


def test_recbole_directory_with_item_text(tmp_path, capsys):
    root = write_recbole(tmp_path / "shop")
    ds = assert_same_summary(capsys, root, [], LoadOptions(), "recbole")
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (4, 5, len(ROWS))
    k = ds.item_ids.index("it2")
    # item text from the .item file's token / token_seq fields
    assert ds.content.titles[k] == "Beta Two"
    assert ds.content.texts[k] == "Beta Two. year: 1992. class: Comedy Drama"
    assert ds.user_ids.to_list() == ["u1", "u2", "u3", "u4"]  # the .user file's order
    r = ds.ratings[(ds.users == ds.user_ids.index("u1")) & (ds.items == ds.item_ids.index("it1"))]
    assert r.tolist() == [3.0]
    assert ds.timestamps.min() == 1_600_000_000 + 3600 * 6


def test_recbole_is_not_taken_for_mmrec(tmp_path, benchmark_dir):
    # an .inter with typed headers used to go to the MMRec loader: "missing column(s) ['userID', 'itemID']"
    assert detect_format(write_recbole(tmp_path / "a")) == "recbole"
    assert detect_format(tmp_path / "a" / "shop.inter") == "recbole"
    assert detect_format(benchmark_dir) == "mmrec"


def test_recbole_bad_files_say_what_to_do(tmp_path):
    root = write_recbole(tmp_path / "shop")
    (root / "shop.inter").write_text("user_id:token\titem_id:int\nu1\tit1\n")
    with pytest.raises(DataError, match=r"field 'item_id' has type 'int'.*token, token_seq"):
        load_dataset(root)
    (root / "shop.inter").write_text("uid:token\titem_id:token\nu1\tit1\n")
    (root / "shop.user").unlink()
    with pytest.raises(DataError, match="no field 'user_id'.*--user-col"):
        load_dataset(root)
    assert load_dataset(root, options=LoadOptions(user_col="uid")).n_interactions == 1
    (root / "shop.train.inter").write_text("uid:token\titem_id:token\nu1\tit1\n")
    with pytest.raises(DataError, match="a fixed split needs all of"):
        load_dataset(root)


@pytest.mark.parametrize("name", ["ratings.txt", "export.dat", "data.csv"])
def test_semicolon_file_of_any_name_is_sniffed(tmp_path, capsys, name):
    # the separator used to be a tab only for .tsv files and a comma otherwise, with no option to set it
    path = tmp_path / name
    lines = ["user;item;stars;when"] + [
        f"{u};{i};{r};{np.datetime64(t, 's').astype(str)}" for u, i, r, t in ROWS
    ]
    path.write_text("\n".join(lines) + "\n")
    args = ["--user-col", "user", "--item-col", "item", "--rating-col", "stars", "--time-col", "when"]
    opts = LoadOptions(user_col="user", item_col="item", rating_col="stars", time_col="when")
    ds = assert_same_summary(capsys, path, args, opts, "csv")
    assert ds.n_interactions == len(ROWS) and sorted(ds.timestamps) == sorted(t for *_, t in ROWS)
    assert load_dataset(path, options=LoadOptions(**{**opts.__dict__, "sep": ";"})).summary() == ds.summary()
    with pytest.raises(DataError, match=r"with separator '\|' the header gives columns"):
        load_dataset(path, options=LoadOptions(**{**opts.__dict__, "sep": "|"}))


def test_sep_option_and_errors_name_the_separator(tmp_path, capsys):
    path = tmp_path / "log.txt"
    path.write_text("user_id\titem_id\n" + "".join(f"{u}\t{i}\n" for u, i, *_ in ROWS))
    ds = assert_same_summary(capsys, path, ["--sep", "\\t"], LoadOptions(sep="\t"), "csv")
    assert ds.n_interactions == len(ROWS)
    bad = tmp_path / "bad.txt"
    bad.write_text("user:item\n1:2\n")
    with pytest.raises(DataError, match=r"missing column\(s\).*separator .*sniffed; also tried.*--sep"):
        load_dataset(bad)


def write_amazon(root, *, layout="2018", gz=True):
    """Review + metadata JSON lines in the layout of the public Amazon dumps."""
    root.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if gz else open
    sfx = ".json.gz" if gz else ".json"
    with opener(root / f"reviews_Toys_5{sfx}", "wt") as f:
        for u, i, r, t in ROWS:
            if layout == "2023":
                rec = {"user_id": f"A{u}", "parent_asin": f"B{i:03d}", "asin": f"V{i}", "rating": r}
                rec["timestamp"] = t * 1000  # milliseconds
            else:
                rec = {"reviewerID": f"A{u}", "asin": f"B{i:03d}", "overall": r, "unixReviewTime": t}
            f.write(json.dumps({**rec, "reviewText": "fine", "summary": "ok"}) + "\n")
    with opener(root / f"meta_Toys{sfx}", "wt") as f:
        for i in list(TITLES) + [99]:  # item 99 has no review: it is skipped
            rec = {"title": TITLES.get(i, "unreviewed"), "description": [f"desc {i}"]}
            if layout == "2014":
                rec.update(
                    asin=f"B{i:03d}", categories=[["Toys", GENRES.get(i, "x")]], imUrl="http://x/1.jpg"
                )
                f.write(repr(rec) + "\n")  # python-literal records, single quotes
                continue
            key = "parent_asin" if layout == "2023" else "asin"
            rec.update({key: f"B{i:03d}", "category": ["Toys", GENRES.get(i, "x")]})
            if i == 1:
                rec["image"] = "pics/one.png"
            f.write(json.dumps(rec) + "\n")
    return root


@pytest.mark.parametrize("layout", ["2014", "2018", "2023"])
def test_amazon_reviews_and_metadata(tmp_path, capsys, layout):
    root = write_amazon(tmp_path / "toys", layout=layout)
    ds = assert_same_summary(capsys, root, [], LoadOptions(), "amazon")
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (4, 5, len(ROWS))
    k = ds.item_ids.index("B002")
    assert ds.content.titles[k] == "Beta Two"
    assert ds.content.texts[k] == "Beta Two. desc 2. categories: Toys, Comedy Drama"
    assert sorted(ds.timestamps) == sorted(t for *_, t in ROWS)  # 2023 milliseconds become seconds
    assert sorted(ds.ratings) == sorted(r for _, _, r, _ in ROWS)
    if layout != "2014":
        assert ds.content.image_paths[ds.item_ids.index("B001")] == str(root / "pics" / "one.png")
    # the review file alone (metadata found beside it) gives the same data set
    review_file = next(root.glob("reviews_*"))
    assert load_dataset(review_file).summary() == {**ds.summary(), "name": ds.name}


def test_amazon_images_from_a_folder_keyed_by_item_id(tmp_path, capsys):
    from PIL import Image

    root = write_amazon(tmp_path / "toys", gz=False)
    (root / "images").mkdir()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "images" / "B003.png")
    ds = load_dataset(root)
    assert ds.content.image_paths[ds.item_ids.index("B003")] == str(root / "images" / "B003.png")
    elsewhere = tmp_path / "pics"
    elsewhere.mkdir()
    Image.new("RGB", (8, 8)).save(elsewhere / "B004.jpg")
    ds = load_dataset(root, options=LoadOptions(image_dir=str(elsewhere)))
    assert ds.content.image_paths[ds.item_ids.index("B004")] == str(elsewhere / "B004.jpg")
    info = cli_summary(capsys, "--data", root, "--image-dir", elsewhere)
    assert info == {"format": "amazon", **ds.summary()}


def test_amazon_python_literal_lines_never_run_code(tmp_path):
    # the 2014 metadata is python-literal text; it is parsed with ast.literal_eval, never eval
    root = write_amazon(tmp_path / "toys", layout="2014")
    marker = tmp_path / "pwned"
    with gzip.open(root / "meta_Toys.json.gz", "at") as f:
        f.write(f"{{'asin': 'B001', 'title': __import__('os').system('touch {marker}')}}\n")
    with pytest.raises(DataError, match=r"meta_Toys.json.gz: line 7 is neither JSON .* nor a Python literal"):
        load_dataset(root)
    assert not marker.exists()
    with gzip.open(root / "meta_Toys.json.gz", "wt") as f:
        f.write("{'asin': 'B001', 'title': '" + "x" * (2 << 20) + "'}\n")
    with pytest.raises(DataError, match="line 1 is not strict JSON and longer than"):
        load_dataset(root)


def test_amazon_bad_records_name_the_line(tmp_path):
    root = write_amazon(tmp_path / "toys", gz=False)
    with open(root / "reviews_Toys_5.json", "a") as f:
        f.write(json.dumps({"reviewerID": "A1", "asin": "B005", "overall": "great"}) + "\n")
    with pytest.raises(
        DataError, match=rf"line {len(ROWS) + 1} has overall/rating 'great', not a finite number"
    ):
        load_dataset(root)
    (root / "reviews_Toys_5.json").write_text('{"title": "a metadata record"}\n')
    with pytest.raises(DataError, match="carry no reviewerID/user_id"):
        load_dataset(root)
    (root / "reviews_Toys_5.json").write_bytes(b'{"reviewerID": "A1", "asin": "\xff"}\n')
    with pytest.raises(DataError, match="line 1 is not UTF-8"):
        load_dataset(root)


def _same_data(a, b, split_a=None):
    assert a.user_ids == b.user_ids and a.item_ids == b.item_ids
    order_a, order_b = np.lexsort((a.items, a.users)), np.lexsort((b.items, b.users))
    for col in ("users", "items", "ratings", "timestamps"):
        va, vb = getattr(a, col), getattr(b, col)
        assert (va is None and vb is None) or np.array_equal(va[order_a], vb[order_b]), col
    sa, sb = split_a or split_dataset(a), split_dataset(b)
    for part in ("train", "valid", "test"):
        assert (getattr(sa, part) != getattr(sb, part)).nnz == 0, part
    assert list(a.features) == list(b.features)
    for name in a.features:
        assert np.array_equal(a.features[name], b.features[name])
        assert np.array_equal(a.features.mask(name), b.features.mask(name))


@pytest.mark.parametrize("fmt", ["mmrec", "recbole"])
def test_export_then_load_is_identical(tmp_path, fmt):
    ds = load_dataset(write_recbole(tmp_path / "src"))
    rng = np.random.RandomState(0)
    feats = ds.features
    feats.add("image", rng.rand(ds.n_items, 3), np.array([True, True, False, True, True]))
    ds = ds.with_features(feats)
    split = split_dataset(ds, "ratio", seed=1)
    exporter = {"mmrec": export_mmrec, "recbole": export_recbole}[fmt]
    back = load_dataset(exporter(ds, split, tmp_path / "out", name="shop"))
    assert detect_format(tmp_path / "out") == fmt
    assert back.labels is not None  # the split travels with the data
    _same_data(ds, back, split)
    summary = {**ds.summary(), "has_split": True, "has_content": back.content is not None}
    assert back.summary() == {**summary, "name": back.name}
    if fmt == "recbole":
        assert back.content.texts == ds.content.texts and back.content.titles == ds.content.titles
    # and a second trip changes nothing
    again = load_dataset(exporter(back, split_dataset(back), tmp_path / "again", name="shop"))
    _same_data(back, again)


def test_export_recbole_cli_round_trip_on_real_split(tmp_path, capsys, benchmark_dir):
    out = tmp_path / "rb"
    assert main(["export", "--data", str(benchmark_dir), "--to", "recbole", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*.inter")) == [
        "benchmark.test.inter",
        "benchmark.train.inter",
        "benchmark.valid.inter",
    ]
    bench, back = load_dataset(benchmark_dir), load_dataset(out)
    _same_data(bench, back)
    assert back.content.texts == bench.content.texts
    assert cli_summary(capsys, "--data", out) == {"format": "recbole", **back.summary()}


def test_every_registered_format_is_a_cli_choice(capsys):
    with pytest.raises(SystemExit):
        main(["info", "--help"])
    help_text = capsys.readouterr().out
    assert "{" + ",".join(LOADERS) + "}" in help_text


def test_amazon_dump_goes_straight_to_features_and_fit(tmp_path, capsys):
    from PIL import Image

    root = write_amazon(tmp_path / "toys")
    (root / "images").mkdir()
    for i in (2, 3):
        Image.new("RGB", (16, 16), (80 * i, 10, 10)).save(root / "images" / f"B00{i}.png")
    out = tmp_path / "feat"
    assert main(["features", "--data", str(root), "--image", "color", "--text", "none", "--out", str(out),
                 "--no-cache", "--quiet"]) == 0  # fmt: skip
    ds = load_dataset(out)
    assert ds.features.mask("image").tolist() == [False, True, True, False, False]  # B001's path is missing
    assert (
        main(["fit", "--data", str(out), "--model", "itemknn", "--out", str(tmp_path / "a"), "--quiet"]) == 0
    )


@pytest.mark.parametrize("fmt", ["mmrec", "recbole"])
def test_round_trip_without_ratings_times_or_content(tmp_path, fmt):
    # a split part may be empty (no valid rows here); an item file with ids only is no item content
    path = tmp_path / "t.csv"
    path.write_text("user_id,item_id\nz,b\nz,a\ny,b\n")
    ds = load_dataset(path)
    exporter = {"mmrec": export_mmrec, "recbole": export_recbole}[fmt]
    split = split_dataset(ds)
    back = load_dataset(exporter(ds, split, tmp_path / "out", name="t"))
    assert back.summary() == {**ds.summary(), "has_split": True, "name": back.name}
    assert back.ratings is None and back.timestamps is None and sorted(back.labels.tolist()) == [0, 0, 2]
    _same_data(ds, back, split)
    assert back.user_ids.to_list() == ["y", "z"] and back.item_ids.to_list() == ["a", "b"]


def test_parquet_and_mmrec_summaries_agree_between_cli_and_api(tmp_path, capsys, benchmark_dir):
    import pandas as pd

    path = tmp_path / "log.parquet"
    pd.DataFrame(ROWS, columns=["user_id", "item_id", "rating", "timestamp"]).to_parquet(path)
    assert assert_same_summary(capsys, path, [], LoadOptions(), "parquet").n_interactions == len(ROWS)
    assert_same_summary(capsys, benchmark_dir, [], LoadOptions(), "mmrec")
