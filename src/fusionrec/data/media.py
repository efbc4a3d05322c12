"""Audio and video paths of items: ``audio/{id}.wav``, ``videos/{id}.mp4`` folders or ``audio``/``video`` columns.

Both loaders (MovieLens-style directories and generic tables with an items file) call :func:`attach_media`,
which fills ``ItemContent.audio_paths`` / ``video_paths``. Paths are only found here; the feature extractors
check and decode them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from fusionrec.data.dataset import ItemContent

log = logging.getLogger("fusionrec")

AUDIO_EXTS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac")
VIDEO_EXTS = (".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi")
#: folder names (beside ratings.csv) searched per kind, in order
MEDIA_DIRS = {"audio": ("audio",), "video": ("videos", "video")}
_EXTS = {"audio": AUDIO_EXTS, "video": VIDEO_EXTS}


def media_from_dirs(root: Path, item_ids: Iterable[str]) -> dict[str, list[str | None]]:
    """``{kind: per-item path}`` from ``root/audio/{id}.<ext>`` and ``root/videos/{id}.<ext>``.

    One directory listing per folder (not one ``stat`` per item and extension); kinds without a folder are
    left out.
    """
    ids = [str(i) for i in item_ids]
    out: dict[str, list[str | None]] = {}
    for kind, names in MEDIA_DIRS.items():
        by_stem: dict[str, str] = {}
        for name in names:
            folder = root / name
            if not folder.is_dir():
                continue
            for f in sorted(folder.iterdir()):
                if f.suffix.lower() in _EXTS[kind] and f.stem not in by_stem:
                    by_stem[f.stem] = str(f)
        if by_stem:
            out[kind] = [by_stem.get(i) for i in ids]
            log.info(
                "%s: %d of %d items have a file under %s", kind, len(set(by_stem) & set(ids)), len(ids), root
            )
    return out


def media_from_columns(
    items: pd.DataFrame, item_ids: Iterable[str], base: Path
) -> dict[str, list[str | None]]:
    """``{kind: per-item path}`` from the ``audio`` / ``video`` columns of an items table indexed by item id.

    Relative paths are resolved against ``base`` (the items file's folder); empty cells mean no file.
    """
    out: dict[str, list[str | None]] = {}
    for kind in ("audio", "video"):
        if kind not in items.columns:
            continue
        col = items[kind]
        paths: list[str | None] = []
        for raw in item_ids:
            value = col.get(str(raw))
            if value is None or pd.isna(value) or not str(value).strip():
                paths.append(None)
                continue
            p = Path(str(value).strip())
            paths.append(str(p if p.is_absolute() else base / p))
        out[kind] = paths
    return out


def attach_media(content: ItemContent | None, media: dict[str, list[str | None]]) -> ItemContent | None:
    """``content`` with ``audio_paths`` / ``video_paths`` set from ``media`` (unchanged when it is empty)."""
    if content is None or not media:
        return content
    return dataclasses.replace(
        content,
        audio_paths=media.get("audio", content.audio_paths),
        video_paths=media.get("video", content.video_paths),
    )
