"""Changes to the served catalogue: adding an item at run time, taking in new interactions, forgetting a user.

All run inside :meth:`ServingState.mutating` (exclusive across threads and worker processes) and end with
:meth:`ServingState.commit` (saved atomically, then served). How an added item is featurised and placed is
:mod:`fusionrec.new_items`, which the Python facade's ``Recommender.add_item`` shares.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from fusionrec import new_items
from fusionrec.artifacts import forget_user as forget_artifact_user
from fusionrec.errors import ConfigError, UnsupportedError
from fusionrec.interactions import apply_interactions
from fusionrec.recommend import user_index
from fusionrec.serving.state import ServingState

log = logging.getLogger("fusionrec")


def forget_user(state: ServingState, raw_user: str) -> dict[str, Any]:
    """Remove a user's id, interactions and vector from the served model and from the artifact on disk."""
    with state.mutating() as snap:
        user_index(snap.view, raw_user)
        try:
            new = forget_artifact_user(snap.art, raw_user)
        except ConfigError as e:
            raise UnsupportedError(str(e)) from None
        snap = state.commit(new, snap)
    log.info("forgot a user; %d users remain", snap.n_users)
    return {"user_id": raw_user, "forgotten": True, "users": snap.n_users, "revision": snap.revision}


def add_interactions(
    state: ServingState,
    users: Sequence[str],
    items: Sequence[str],
    times: Sequence[int | None],
) -> dict[str, Any]:
    """Apply a batch of (user, item, time) events to the served artifact (:mod:`fusionrec.interactions`)."""
    t0 = time.perf_counter()
    with state.mutating() as snap:
        applied = apply_interactions(snap.view, users, items, times)
        snap = state.commit(applied.artifact, snap)
    out = {**applied.summary(), "revision": snap.revision}
    log.info(
        "took in %d interaction(s): %d user(s) created, %d updated (%.3fs)",
        applied.events,
        applied.users_created,
        applied.users_updated,
        time.perf_counter() - t0,
    )
    return out


def add_item(
    state: ServingState,
    raw_id: str,
    *,
    title: str | None = None,
    text: str | None = None,
    image: bytes | None = None,
) -> dict[str, Any]:
    """Featurise a new item, place it (:func:`fusionrec.new_items.add_item`) and persist it with the artifact."""
    with state.mutating() as snap:
        added = new_items.add_item(
            snap.art,
            raw_id,
            title=title,
            text=text,
            image=image,
            mapper=snap.mapper,
            neighbour_expansion=snap.neighbour_expansion,
            unit_features=snap.unit_features,
        )
        snap = state.commit(added.artifact, snap)
        if added.mapper is not None:
            snap.mapper = added.mapper
    return {
        "item_id": added.item_id,
        "title": added.title,
        "modalities": added.modalities,
        "missing_modalities": sorted(set(snap.unit_features) - set(added.modalities)),
        "items": snap.n_items,
        "revision": snap.revision,
    }
