"""MovieLens directories (ratings.csv, movies.csv, tags.csv, posters/) and the bundled demo data."""

from __future__ import annotations

from pathlib import Path

from fusionrec.data.dataset import Dataset, IdMap, ItemContent
from fusionrec.data.feature_dir import read_feature_dir
from fusionrec.data.loaders.base import Loader, LoadOptions
from fusionrec.data.loaders.common import images_by_id, interactions_from_frame, read_csv
from fusionrec.data.media import attach_media, media_from_dirs


def detect(path: Path) -> bool:
    return path.is_dir() and (path / "ratings.csv").exists() and (path / "movies.csv").exists()


def movielens_content(root: Path, item_ids: IdMap) -> ItemContent:
    """Item text "title. genres: g1, g2. tags: t1, t2" and ``posters/{movieId}.jpg`` per item."""
    movies = read_csv(root / "movies.csv", ["movieId", "title", "genres"], dtype=str, keep_default_na=False)
    movies = movies.drop_duplicates("movieId").set_index("movieId").reindex(item_ids.to_list())
    tags_by_item: dict[str, list[str]] = {}
    tags_path = root / "tags.csv"
    if tags_path.exists():
        tags = read_csv(tags_path, [], dtype={"movieId": str}, allow_empty=True)
        if {"movieId", "tag"} <= set(tags.columns):
            tags = tags.dropna(subset=["tag"])
            tags["tag"] = tags["tag"].astype(str).str.strip().str.lower()
            for mid, grp in tags.groupby("movieId", sort=False):
                tags_by_item[str(mid)] = list(dict.fromkeys(grp["tag"]))
    texts, titles, genres = [], [], []
    for raw, title, g in zip(item_ids, movies["title"].fillna(""), movies["genres"].fillna(""), strict=True):
        g_list = [x for x in str(g).split("|") if x and x != "(no genres listed)"]
        text = str(title)
        if g_list:
            text += ". genres: " + ", ".join(g_list)
        if tags_by_item.get(raw):
            text += ". tags: " + ", ".join(tags_by_item[raw])
        texts.append(text.strip())
        titles.append(str(title))
        genres.append("|".join(g_list))
    poster_dir = root / "posters"
    paths: list[str | None] = [None] * len(item_ids)
    if poster_dir.is_dir():
        paths = images_by_id(poster_dir, item_ids.to_list())
    return ItemContent(texts=texts, image_paths=paths, titles=titles, extra={"genres": genres})


def load_movielens(root: Path, options: LoadOptions | None = None) -> Dataset:
    """MovieLens directory: ratings.csv (+ movies.csv, tags.csv, posters/{movieId}.jpg) → Dataset.

    Item text is "title. genres: g1, g2. tags: t1, t2". Feature files beside the CSVs (``features/``) are
    loaded when present, aligned by movieId.
    """
    root = Path(root)
    path = root / "ratings.csv"
    df = read_csv(path, ["userId", "movieId"], dtype={"userId": str, "movieId": str})
    inter = interactions_from_frame(
        df,
        "userId",
        "movieId",
        path,
        rating_col="rating" if "rating" in df.columns else None,
        time_col="timestamp" if "timestamp" in df.columns else None,
    )
    iids = inter.item_ids
    content = movielens_content(root, iids)
    content = attach_media(content, media_from_dirs(root, iids)) or content  # audio/{id}.wav, videos/{id}.mp4
    features = read_feature_dir(root / "features", iids) if (root / "features").is_dir() else None
    return inter.dataset(root.name, content=content, features=features)


def demo_path() -> Path:
    """Directory of the bundled demo data (MovieLens ml-latest-small CSVs and precomputed features)."""
    return Path(__file__).resolve().parents[2] / "demo_data"


def detect_demo(path: Path) -> bool:
    return str(path) == "demo" and not path.exists()


def load_demo(path: Path, options: LoadOptions) -> Dataset:
    ds = load_movielens(demo_path())
    ds.name = "demo"
    return ds


DEMO = Loader(detect_demo, load_demo, "the bundled MovieLens demo data ('demo')")
LOADER = Loader(
    detect, load_movielens, "MovieLens directory: ratings.csv + movies.csv (+ tags.csv, posters/)"
)
