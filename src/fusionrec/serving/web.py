"""The browser page at ``/`` and the few JSON endpoints it needs beyond the API proper.

- ``GET /``: the page (``serving/web/index.html``, its script and style under ``/web/static/``, all served
  from the package: no CDN, no build step);
- ``GET /web/users?q=&limit=``: users whose raw id contains ``q``, with their number of training interactions;
- ``GET /web/users/{user_id}/history?limit=``: the user's training items, most recent first;
- ``GET /web/items?ids=a&ids=b``: title, image URL (or none) and origin of each listed item;
- ``GET /web/items/{item_id}/image``: the item's image file, read from the folder recorded at fit time —
  only a regular file inside that folder, of a known image type and bounded size, is ever sent;
- ``GET /web/items/{item_id}/audience?k=&limit=``: the users whose top-k the item now enters.
"""

from __future__ import annotations

import os
import stat
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from fusionrec.artifacts import TRAIN_TIMES
from fusionrec.errors import UnknownItemError
from fusionrec.recommend import item_index, item_indices, score_users, user_index
from fusionrec.serving import schemas
from fusionrec.serving.state import ServingState, Snapshot

MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_LIST = 500
IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
}
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}
# users scored per block when looking for an item's audience (block × items float32 at a time)
AUDIENCE_BLOCK = 1024


def web_router(state: ServingState) -> APIRouter:
    """Routes of the page and its helper endpoints, answering from ``state``."""
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def page() -> Response:
        return Response(_asset("index.html"), media_type="text/html; charset=utf-8")

    @router.get("/web/static/{asset}", include_in_schema=False)
    async def asset(asset: str) -> Response:
        if asset not in ASSETS:
            return JSONResponse({"detail": f"no page asset {asset!r}"}, status_code=404)
        return Response(_asset(asset), media_type=ASSETS[asset], headers={"Cache-Control": "no-cache"})

    @router.get("/web/users", tags=["web"])
    async def users(
        q: Annotated[str, Query(max_length=200, description="part of a raw user id")] = "",
        limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 50,
    ) -> JSONResponse:
        snap = state.current()
        raw = snap.art.user_ids.to_list()
        needle = q.strip().lower()
        picked = [u for u, r in enumerate(raw) if needle in r.lower()] if needle else range(len(raw))
        counts = np.diff(snap.seen.indptr)
        total = len(picked)
        rows = [{"user_id": raw[u], "interactions": int(counts[u])} for u in list(picked)[:limit]]
        return JSONResponse({"total": total, "users": rows})

    @router.get("/web/users/{user_id}/history", tags=["web"])
    async def history(user_id: str, limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 50) -> JSONResponse:
        snap = state.current()
        u = user_index(snap.view, user_id)
        train = snap.art.train
        lo, hi = int(train.indptr[u]), int(train.indptr[u + 1])
        items = train.indices[lo:hi].astype(np.int64)
        times = snap.art.extra_arrays.get(TRAIN_TIMES)
        if times is not None and len(times) == train.nnz:
            row_times = times[lo:hi]
            order = np.lexsort((items, -row_times))  # most recent first, ties by index
        else:  # no timestamps in the data: catalogue order
            row_times, order = None, np.arange(len(items))
        cards = []
        for j in order[:limit].tolist():
            card = _card(snap, int(items[j]))
            if row_times is not None:
                card["time"] = int(row_times[j])
            cards.append(card)
        return JSONResponse(
            {
                "user_id": user_id,
                "total": len(items),
                "ordered_by_time": row_times is not None,
                "items": cards,
            }
        )

    @router.get("/web/items", tags=["web"])
    async def items(ids: Annotated[list[str], Query(max_length=MAX_LIST)]) -> JSONResponse:
        snap = state.current()
        idx = item_indices(snap.view, ids)
        return JSONResponse({"items": [_card(snap, int(i)) for i in idx.tolist()]})

    @router.get(
        "/web/items/{item_id}/image",
        tags=["web"],
        responses={404: {"model": schemas.ErrorBody}},
        response_class=Response,
    )
    def image(item_id: str) -> Response:
        snap = state.current()
        i = item_index(snap.view, item_id)
        found = _image_file(snap, i)
        if found is None:
            raise UnknownItemError(f"item {item_id!r} has no image; show its title instead")
        path, media_type = found
        with open(path, "rb") as fh:
            data = fh.read(MAX_IMAGE_BYTES + 1)
        if len(data) > MAX_IMAGE_BYTES:
            raise UnknownItemError(f"the image of item {item_id!r} is too large to serve")
        return Response(data, media_type=media_type, headers={"Cache-Control": "max-age=3600"})

    @router.get("/web/items/{item_id}/audience", tags=["web"])
    def audience(
        item_id: str,
        k: Annotated[int, Query(ge=1, le=schemas.MAX_K)] = 10,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 20,
    ) -> JSONResponse:
        snap = state.current()
        i = item_index(snap.view, item_id)
        return JSONResponse(_audience(snap, i, k, limit))

    return router


def _asset(name: str) -> bytes:
    return resources.files("fusionrec.serving").joinpath("web", name).read_bytes()


def _card(snap: Snapshot, i: int) -> dict[str, Any]:
    raw = str(snap.art.item_ids.raw(i))
    return {
        "item_id": raw,
        "title": snap.titles[i] if snap.titles is not None else None,
        "image": f"/web/items/{quote(raw, safe='')}/image" if _image_file(snap, i) is not None else None,
        "added": bool(i >= snap.n_model),
    }


def _image_file(snap: Snapshot, i: int) -> tuple[Path, str] | None:
    """The item's image as (path, media type) when it is a regular image file inside the image folder."""
    info = snap.art.info
    root, names = info.get("image_root"), info.get("item_images")
    if not root or not names or i >= len(names) or not names[i]:
        return None
    media_type = IMAGE_TYPES.get(Path(names[i]).suffix.lower())
    if media_type is None:
        return None
    try:
        base = Path(root).resolve(strict=True)
        path = (base / names[i]).resolve(strict=True)
        st = os.stat(path)
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(base) or not stat.S_ISREG(st.st_mode) or st.st_size > MAX_IMAGE_BYTES:
        return None
    return path, media_type


def _audience(snap: Snapshot, i: int, k: int, limit: int) -> dict[str, Any]:
    """Users whose top-``k`` (seen items excluded) item ``i`` would enter, best-placed first."""
    n_users, n_items = snap.n_users, snap.n_items
    kk = min(k, n_items)
    ranks = np.full(n_users, np.iinfo(np.int64).max, np.int64)
    scores = np.full(n_users, -np.inf, np.float32)
    for lo in range(0, n_users, AUDIENCE_BLOCK):
        users = np.arange(lo, min(lo + AUDIENCE_BLOCK, n_users))
        block = score_users(snap.view, users)
        seen = snap.seen[users]
        block[np.repeat(np.arange(len(users)), np.diff(seen.indptr)), seen.indices] = -np.inf
        own = block[:, i].copy()
        ok = np.isfinite(own)
        rank = (block > own[:, None]).sum(axis=1) + 1
        ranks[users] = np.where(ok, rank, ranks[users])
        scores[users] = own
    reached = np.flatnonzero(ranks <= kk)
    order = reached[np.lexsort((reached, -scores[reached], ranks[reached]))][:limit]
    raw = snap.art.user_ids.raw_ids
    return {
        "item_id": str(snap.art.item_ids.raw(i)),
        "k": k,
        "reached": int(len(reached)),
        "users": [
            {"user_id": str(raw[u]), "rank": int(ranks[u]), "score": round(float(scores[u]), 6)}
            for u in order.tolist()
        ],
    }
