"""Interactions that arrive after fitting: the one implementation behind ``Recommender.add_interactions`` and
``POST /interactions``.

:func:`apply_interactions` takes an artifact revision (as an :class:`~fusionrec.recommend.ArtifactView`) and a
batch of (user, item, time) events and returns the next revision; the model itself is not refitted. Users the
artifact does not know are created (the user id map and the training matrix grow by a row); every user in the
batch becomes *live*: its list is answered from its whole history, old and new, by the same fold-in as a query
for an unknown user (:func:`fusionrec.recommend.rank_fold_in`). For inner-product models that is one ridge
solve per user (:func:`fusionrec.ranking.ridge_fold_in`), done here and stored beside the model in
``extra_arrays`` (``live/users``, ``live/user_vectors``); other models fold the history in at query time. The
new events join the training matrix, so they are hidden from the user's next lists, and their times join the
artifact's interaction times where it keeps them. Items must exist already (unknown ones raise
``UnknownItemError`` and nothing changes): new items are added with ``POST /items`` first.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.artifacts import LIVE_USER_VECTORS, LIVE_USERS, TRAIN_TIMES, Artifact
from fusionrec.data.dataset import IdMap
from fusionrec.errors import ConfigError, DataError
from fusionrec.ranking import ridge_fold_in
from fusionrec.recommend import ArtifactView, item_indices

# a user id is also a URL path segment (GET /users/{user_id}/recommendations): no "/", no control characters
USER_ID_PATTERN = r"^[^\x00-\x1f\x7f/]*[^\x00-\x1f\x7f/\s][^\x00-\x1f\x7f/]*$"
MAX_USER_ID_LENGTH = 200
_USER_ID_RE = re.compile(USER_ID_PATTERN)
# seconds since the epoch, as the data loaders parse them
MAX_ABS_TIME = 2**62


@dataclass
class Applied:
    """The artifact after a batch, and what the batch did."""

    artifact: Artifact
    events: int  # rows given
    new_interactions: int  # (user, item) pairs the training matrix did not hold yet
    users_created: int
    users_updated: int  # users known before the batch whose lists were refreshed

    def summary(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "new_interactions": self.new_interactions,
            "users_created": self.users_created,
            "users_updated": self.users_updated,
            "users": len(self.artifact.user_ids),
        }


def apply_interactions(
    view: ArtifactView,
    users: Sequence[Any],
    items: Sequence[Any],
    times: Sequence[int | None] | np.ndarray | None = None,
) -> Applied:
    """The artifact of ``view`` with the events ``users[n]`` × ``items[n]`` (at ``times[n]``, seconds since
    the epoch; None or a missing time: now) applied; ``view``'s artifact is left as it was.

    A (user, item) pair already in the training matrix stays one interaction (its time becomes the later
    of the two); on a rating model a new pair counts as the top rating of the training scale, as the
    model's fold-in for unknown users assumes.
    """
    raw_users = [str(u) for u in users]
    raw_items = [str(i) for i in items]
    if len(raw_users) != len(raw_items):
        raise ConfigError(
            f"got {len(raw_users)} users for {len(raw_items)} items; give one of each per event"
        )
    if not raw_users:
        raise DataError("no interactions given; send at least one (user, item) event")
    _check_user_ids(raw_users)
    when = _times(times, len(raw_users))
    art = view.art
    model = art.model
    item_idx = item_indices(view, raw_items)  # unknown items raise before anything changes

    new_ids = [u for u in dict.fromkeys(raw_users) if u not in art.user_ids]
    user_ids = IdMap([*art.user_ids, *new_ids]) if new_ids else art.user_ids
    user_idx = user_ids.indices(raw_users)
    n_users, n_items = len(user_ids), view.n_items
    old = sp.csr_matrix(art.train, dtype=np.float32, copy=True)
    old.sum_duplicates()  # canonical: sorted indices, one entry per pair (interaction times follow it)
    old.resize((n_users, n_items))  # new users' rows (and columns of items added before a resize)

    # one event per (user, item): the latest time
    keys = user_idx * np.int64(n_items) + item_idx
    order = np.lexsort((when, keys))
    last = np.r_[keys[order][1:] != keys[order][:-1], True]
    keys, when = keys[order][last], when[order][last]
    old_keys = _entry_keys(old, n_items)
    fresh = ~np.isin(keys, old_keys, assume_unique=True)
    value = float(old.data.max()) if model.task == "rating" and old.nnz else 1.0
    rows, cols = np.divmod(keys[fresh], n_items)
    added = sp.csr_matrix((np.full(len(rows), value, np.float32), (rows, cols)), shape=(n_users, n_items))
    train = (old + added).tocsr()
    train.sum_duplicates()

    extra = dict(art.extra_arrays)
    old_times = extra.get(TRAIN_TIMES)
    if old_times is not None and len(old_times) == art.train.nnz:
        extra[TRAIN_TIMES] = _merged_times(train, n_items, old_keys, old_times, keys, when, fresh)
    touched = np.unique(user_idx)
    _refresh_live(view, extra, train, touched)
    info = dict(art.info)
    info["live_interactions"] = int(info.get("live_interactions", 0)) + int(fresh.sum())
    new = Artifact(
        model=model,
        user_ids=user_ids,
        item_ids=art.item_ids,
        train=train,
        features=art.features,
        info=info,
        extra_arrays=extra,
    )
    return Applied(
        artifact=new,
        events=len(raw_users),
        new_interactions=int(fresh.sum()),
        users_created=len(new_ids),
        users_updated=int(np.count_nonzero(touched < len(art.user_ids))),
    )


def _refresh_live(
    view: ArtifactView, extra: dict[str, np.ndarray], train: sp.csr_matrix, touched: np.ndarray
) -> None:
    """Mark ``touched`` users live; for inner-product models, fold each one's whole history in again."""
    before = np.asarray(extra.get(LIVE_USERS, np.zeros(0, np.int64)), np.int64)
    live = np.union1d(before, touched).astype(np.int64)
    extra[LIVE_USERS] = live
    if not view.inner_product:
        return  # answered by a fold-in of the history at query time
    item_vecs = view.item_vecs
    assert item_vecs is not None
    vecs = np.zeros((len(live), item_vecs.shape[1]), np.float32)
    if len(before):
        vecs[np.searchsorted(live, before)] = extra[LIVE_USER_VECTORS]
    reg = getattr(view.model, "reg", None)
    for u, row in zip(touched.tolist(), np.searchsorted(live, touched).tolist(), strict=True):
        history = train.indices[train.indptr[u] : train.indptr[u + 1]]
        vecs[row] = ridge_fold_in(item_vecs, history, reg)  # what POST /recommendations does with it
    extra[LIVE_USER_VECTORS] = vecs


def _entry_keys(m: sp.csr_matrix, n_items: int) -> np.ndarray:
    """``row * n_items + column`` of each stored entry (ascending for a canonical matrix)."""
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    return rows * np.int64(n_items) + m.indices.astype(np.int64)


def _merged_times(
    train: sp.csr_matrix,
    n_items: int,
    old_keys: np.ndarray,
    old_times: np.ndarray,
    keys: np.ndarray,
    when: np.ndarray,
    fresh: np.ndarray,
) -> np.ndarray:
    """Interaction times aligned with ``train``'s entries: the old ones, new pairs' times, the later of
    the two for pairs seen again."""
    new_keys = _entry_keys(train, n_items)
    out = np.zeros(train.nnz, np.int64)
    out[np.searchsorted(new_keys, old_keys)] = old_times
    pos = np.searchsorted(new_keys, keys)
    out[pos[fresh]] = when[fresh]
    again = pos[~fresh]
    out[again] = np.maximum(out[again], when[~fresh])
    return out


def _check_user_ids(raw_users: list[str]) -> None:
    bad = [u for u in set(raw_users) if len(u) > MAX_USER_ID_LENGTH or not _USER_ID_RE.fullmatch(u)]
    if bad:
        shown = ", ".join(repr(u[:50]) for u in sorted(bad)[:5])
        raise DataError(
            f"{len(bad)} user id(s) cannot be used: {shown}; a user id has 1–{MAX_USER_ID_LENGTH} "
            "characters, not all spaces, without '/' or control characters"
        )


def _times(times: Sequence[int | None] | np.ndarray | None, n: int) -> np.ndarray:
    now = int(time.time())
    if times is None:
        return np.full(n, now, np.int64)
    if isinstance(times, np.ndarray) and times.dtype.kind in "iu":
        out = times.astype(np.int64)
    else:
        try:
            out = np.array([now if t is None else int(t) for t in times], np.int64)
        except (TypeError, ValueError, OverflowError):
            raise DataError(
                "interaction times must be whole seconds since the epoch (or None for now)"
            ) from None
    if out.shape != (n,):
        raise ConfigError(f"got {len(out)} times for {n} events; give one per event (None: now)")
    if len(out) and np.abs(out).max() >= MAX_ABS_TIME:
        raise DataError("an interaction time is out of range; give seconds since the epoch")
    return out
