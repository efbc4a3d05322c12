"""The Python facade: DataFrames in, raw ids out, in the spirit of scikit-learn and Cornac.

    import fusionrec
    rec = fusionrec.Recommender("als", factors=64).fit(df, user_col="user", item_col="item")
    rec.recommend(["u1", "u2"], k=10)          # DataFrame: user, rank, item, score
    rec.similar_items("i7"); rec.recommend_for_items(["i1", "i2"])
    rec.add_interactions(new_df, user_col="user", item_col="item")   # new users, refreshed lists
    rec.save("runs/rec"); fusionrec.Recommender.load("runs/rec")

Queries go through :mod:`fusionrec.recommend`, the one implementation the CLI and the server use too, so
the three give identical lists. Unknown ids raise ``UnknownUserError`` / ``UnknownItemError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fusionrec.artifacts import Artifact, load_artifact, save_artifact
from fusionrec.artifacts import forget_user as _forget_user
from fusionrec.data.dataset import Dataset, Features, Split
from fusionrec.errors import ConfigError, DataError, NotFittedError, UnknownUserError
from fusionrec.evaluation import DEFAULT_METRICS, evaluate_scores
from fusionrec.pipeline import build_model, fit_artifact


class Recommender:
    """A registered model (``fusionrec models`` lists them) fitted on DataFrames and queried by raw ids.

    Parameters
    ----------
    model : str
        Registered model name, e.g. "als", "ease", "lightgcn", "vbpr", "late-fusion".
    verbose : bool
        Progress bars and info logs while fitting (off by default in scripts and notebooks).
    random_state : int
        Seed of the validation hold-out and of the model.
    new_item_share : float
        Up to this share of every list (``floor(share * k)`` slots) goes to items added with
        :meth:`add_item` (exploration; 0, the default: they compete on their calibrated scores alone).
    **params
        The model's hyper-parameters (unknown ones are refused with the valid names).
    """

    def __init__(
        self,
        model: str = "als",
        *,
        verbose: bool = False,
        random_state: int = 0,
        new_item_share: float = 0.0,
        **params: Any,
    ):
        from fusionrec.ranking import reserved_slots

        reserved_slots(10, new_item_share)  # a share outside [0, 1] fails here
        self.model_name = model
        self.verbose = verbose
        self.random_state = random_state
        self.new_item_share = float(new_item_share)
        self.params = dict(params)
        build_model(model, self.params, seed=random_state, show_progress=False)  # fail early on a typo
        self.artifact_: Artifact | None = None
        self._view = None
        self._mapper = None  # the content map new items are placed with, once fitted

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        state = "fitted" if self.artifact_ is not None else "not fitted"
        return f"Recommender({self.model_name!r}{', ' + params if params else ''}) [{state}]"

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        interactions: pd.DataFrame,
        *,
        user_col: str = "user_id",
        item_col: str = "item_id",
        rating_col: str | None = None,
        time_col: str | None = None,
        items: pd.DataFrame | None = None,
        item_id_col: str = "item_id",
        text_cols: Sequence[str] = ("title", "text", "description"),
        image_col: str | None = "image",
        features: Mapping[str, np.ndarray] | None = None,
        validation: bool | None = None,
    ) -> Recommender:
        """Fit on every row of ``interactions`` (one positive per (user, item); the last of duplicates).

        ``items`` (optional) gives the catalogue order, item text and image paths; ``features`` maps a
        modality name to an ``(n_items, d)`` array aligned with the rows of ``items``. ``validation``: hold
        out a seeded tenth of each user's interactions for early stopping and fusion weights (default: only
        for models that use a validation split, i.e. torch-trained models and late fusion).
        """
        from fusionrec.data.loaders.base import LoadOptions
        from fusionrec.data.loaders.table import dataset_from_frames

        if not isinstance(interactions, pd.DataFrame):
            raise ConfigError("interactions must be a pandas DataFrame with one row per interaction")
        options = LoadOptions(
            user_col=user_col,
            item_col=item_col,
            rating_col=rating_col,
            time_col=time_col,
            item_id_col=item_id_col,
            text_cols=tuple(text_cols),
            image_col=image_col,
        )
        ds = dataset_from_frames(interactions, options, items=items, source="interactions", name="frame")
        if features:
            ds = ds.with_features(_aligned_features(features, items, item_id_col, ds))
        model = build_model(self.model_name, self.params, seed=self.random_state, show_progress=self.verbose)
        if validation is None:
            validation = bool(getattr(model, "is_torch", False)) or self.model_name == "late-fusion"
        split = _holdout(ds, self.random_state) if validation else _all_train(ds)
        with _logging(self.verbose):
            art, _ = fit_artifact(ds, split, model, seed=self.random_state)
        self._set(art)
        return self

    # ------------------------------------------------------------------ queries
    def recommend(
        self, users: Sequence[Any] | Any, k: int = 10, *, exclude_seen: bool = True
    ) -> pd.DataFrame:
        """Top ``k`` items per known user: a DataFrame with columns user, rank, item, score (raw ids)."""
        from fusionrec.recommend import recommend_for_user

        view = self._require()
        users = [users] if isinstance(users, str | int | np.integer) else list(users)
        frames = []
        for u in users:
            rows = recommend_for_user(view, str(u), k=k, exclude_seen=exclude_seen)
            frames.append(pd.DataFrame({"user": str(u), **_columns(rows)}))
        return pd.concat(frames, ignore_index=True) if frames else _empty(with_user=True)

    def recommend_for_items(self, items: Sequence[Any], k: int = 10) -> pd.DataFrame:
        """Top ``k`` items for a new user who interacted with ``items`` (repeats count once)."""
        from fusionrec.recommend import recommend_for_items

        return pd.DataFrame(_columns(recommend_for_items(self._require(), [str(i) for i in items], k=k)))

    def similar_items(self, item: Any, k: int = 10, *, modality: str = "all") -> pd.DataFrame:
        """Items most like ``item``: by the model's item vectors, or by one content modality."""
        from fusionrec.recommend import similar_items

        return pd.DataFrame(_columns(similar_items(self._require(), str(item), k=k, modality=modality)))

    # ------------------------------------------------------------------ live updates
    def add_interactions(
        self,
        interactions: pd.DataFrame,
        *,
        user_col: str = "user_id",
        item_col: str = "item_id",
        time_col: str | None = None,
    ) -> Recommender:
        """Take in interactions that happened after fitting, without refitting: users not seen before are
        created, every user in ``interactions`` gets its list from its whole history at once (the fold-in
        of :meth:`recommend_for_items`), and the new items leave its next lists. ``time_col`` (numbers or
        dates; default: now) dates the events where the model keeps interaction times (fitted with one).
        Items must be known (else ``UnknownItemError``, and nothing changes). Kept by :meth:`save`; what
        ``POST /interactions`` does on the server.
        """
        from fusionrec.data.loaders.common import parse_timestamps
        from fusionrec.interactions import apply_interactions

        view = self._require()
        if not isinstance(interactions, pd.DataFrame):
            raise ConfigError("interactions must be a pandas DataFrame with one row per interaction")
        for col in (user_col, item_col, *([time_col] if time_col else [])):
            if col not in interactions.columns:
                raise DataError(f"interactions: no column {col!r} (found {list(interactions.columns)})")
        for col in (user_col, item_col):
            empty = interactions[col].isna().to_numpy(bool)
            if empty.any():
                raise DataError(f"interactions: column {col!r} row {int(np.flatnonzero(empty)[0])} is empty")
        times = None
        if time_col:
            times = parse_timestamps(
                interactions[time_col].reset_index(drop=True), Path("interactions"), time_col
            )
        applied = apply_interactions(
            view,
            interactions[user_col].astype(str).tolist(),
            interactions[item_col].astype(str).tolist(),
            times,
        )
        self._set(applied.artifact)
        return self

    # ------------------------------------------------------------------ new items
    def add_item(
        self,
        item: Any,
        *,
        text: str | None = None,
        image: bytes | str | Path | None = None,
        features: Mapping[str, np.ndarray] | None = None,
        title: str | None = None,
    ) -> Recommender:
        """Add an item known only by its content; it is recommendable at once (as ``POST /items``).

        ``text``/``image`` (bytes or a path) are featurised with the extractors the model's features were
        made with (recorded when fitted on data from `fusionrec features`); ``features`` gives the rows
        (``{modality: (d,)}``) directly. Its scores are calibrated onto the warm items' scale.
        """
        from fusionrec.new_items import add_item

        view = self._require()
        if isinstance(image, Path):
            image = str(image)
        added = add_item(
            view.art,
            str(item),
            title=title,
            text=text,
            image=image,
            features=features,
            mapper=self._mapper,
            unit_features=view.unit_features,
        )
        self._set(added.artifact)
        self._mapper = added.mapper
        return self

    # ------------------------------------------------------------------ privacy and evaluation
    def forget_user(self, user: Any) -> Recommender:
        """Remove a user's interactions and learned rows; every other user's scores stay as they were."""
        art = self._require().art
        if str(user) not in art.user_ids:
            raise UnknownUserError(f"user {user!r} is not in the model (known users: {len(art.user_ids)})")
        self._set(_forget_user(art, str(user)))
        return self

    def evaluate(
        self,
        test: pd.DataFrame,
        *,
        user_col: str = "user_id",
        item_col: str = "item_id",
        metrics: Sequence[str] = DEFAULT_METRICS,
    ) -> dict[str, float]:
        """Full-ranking metrics on held-out ``test`` rows (training items masked); rows naming users or
        items the model does not know are left out (their count is returned as ``skipped``)."""
        from fusionrec.recommend import score_users

        art = self._require().art
        for col in (user_col, item_col):
            if col not in test.columns:
                raise DataError(f"test frame: no column {col!r} (found {list(test.columns)})")
        u = art.user_ids.indices(test[user_col].astype(str).tolist())
        i = art.item_ids.indices(test[item_col].astype(str).tolist())
        known = (u >= 0) & (i >= 0)
        if not known.any():
            raise DataError("no test row names a user and an item the model knows")
        target = sp.csr_matrix(
            (np.ones(int(known.sum()), np.float32), (u[known], i[known])),
            shape=(len(art.user_ids), len(art.item_ids)),
        )
        target.data[:] = 1.0  # duplicates count once
        view = self._require()
        res = evaluate_scores(
            lambda users: score_users(view, users), target, view.seen, metrics=tuple(metrics)
        )
        return {**res.metrics, "users": len(res.users), "skipped": int((~known).sum())}

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the fitted model as an artifact directory (plain data, atomic; what `fusionrec serve` runs)."""
        return save_artifact(self._require().art, path)

    @classmethod
    def load(cls, path: str | Path, *, verbose: bool = False, new_item_share: float = 0.0) -> Recommender:
        """A Recommender around an artifact written by :meth:`save` or `fusionrec fit`."""
        art = load_artifact(path)
        rec = cls.__new__(cls)
        rec.model_name = art.model.name
        rec.verbose = verbose
        rec.random_state = int(art.info.get("seed") or 0)
        rec.params = art.model.get_params()
        rec.new_item_share = float(new_item_share)
        rec.artifact_ = None
        rec._view = None
        rec._mapper = None
        rec._set(art)
        return rec

    @property
    def user_ids(self) -> list[str]:
        return self._require().art.user_ids.to_list()

    @property
    def item_ids(self) -> list[str]:
        return self._require().art.item_ids.to_list()

    # ------------------------------------------------------------------ internals
    def _set(self, art: Artifact) -> None:
        from fusionrec.recommend import ArtifactView

        if art is not self.artifact_ and self.artifact_ is not None and art.model is not self.artifact_.model:
            self._mapper = None  # another model: the content map fitted on the old one no longer holds
        self.artifact_ = art
        self._view = ArtifactView.build(art, new_item_share=self.new_item_share)

    def _require(self):
        if self._view is None:
            raise NotFittedError(
                "this Recommender is not fitted; call fit(df) or Recommender.load(dir) first"
            )
        return self._view


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {
        "rank": [r["rank"] for r in rows],
        "item": [r["item_id"] for r in rows],
        "score": [r["score"] for r in rows],
    }


def _empty(with_user: bool) -> pd.DataFrame:
    return pd.DataFrame(columns=(["user"] if with_user else []) + ["rank", "item", "score"])


def _aligned_features(
    features: Mapping[str, np.ndarray], items: pd.DataFrame | None, item_id_col: str, ds: Dataset
) -> Features:
    """Feature arrays (rows = rows of ``items``) in the data set's item order."""
    if items is None:
        raise ConfigError("features need an items frame whose rows they follow (items=...)")
    ids = items.drop_duplicates(item_id_col)[item_id_col].astype(str).tolist()
    out = Features()
    pos = ds.item_ids.indices(ids)
    first = ~items[item_id_col].astype(str).duplicated().to_numpy()  # the rows ``ids`` were taken from
    for name, values in features.items():
        values = np.asarray(values)
        if values.ndim != 2 or values.shape[0] != len(items):
            raise DataError(
                f"features[{name!r}] must have one row per row of items ({len(items)}); got {values.shape}"
            )
        rows = values[first]
        full = np.zeros((ds.n_items, rows.shape[1]), np.float32)
        present = np.zeros(ds.n_items, bool)
        ok = pos >= 0
        full[pos[ok]] = rows[ok]
        present[pos[ok]] = True
        out.add(name, full, present)
    return out


def _all_train(ds: Dataset) -> Split:
    train = ds.matrix()
    empty = sp.csr_matrix(train.shape, dtype=np.float32)
    return Split(train=train, valid=empty, test=empty.copy(), name="all")


def _holdout(ds: Dataset, seed: int) -> Split:
    """A tenth of each user's interactions for validation, the rest for training (the 8:1:1 split's valid
    part, with its test part given back to training)."""
    from fusionrec.data.splits import split_dataset

    s = split_dataset(ds, "ratio", seed=seed)
    return Split(
        train=(s.train + s.test).tocsr(), valid=s.valid, test=sp.csr_matrix(s.train.shape), name="holdout"
    )


class _logging:
    """Info logs while fitting only when verbose (the library logs through the "fusionrec" logger)."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose

    def __enter__(self) -> None:
        import logging

        self.logger = logging.getLogger("fusionrec")
        self.level = self.logger.level
        if not self.verbose:
            self.logger.setLevel(logging.WARNING)

    def __exit__(self, *exc: object) -> None:
        self.logger.setLevel(self.level)
