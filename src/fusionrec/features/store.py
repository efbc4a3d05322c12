"""On-disk feature cache keyed by item content and extractor config.

Layout under the root (default ``~/.cache/fusionrec/features``, or ``$FUSIONREC_CACHE/features``)::

    <config-hash>/config.json          the extractor config the rows belong to
    <config-hash>/shard-*.npz          keys (content hashes), values (n, d) float32, present, reason
    fitted/<fit-hash>.npz              learned state of fitted extractors (codebooks, vocabularies, topics)

A content hash is the BLAKE2b digest of the text (UTF-8) or of the image / audio / video file's bytes, so
renaming or moving a file costs nothing and editing it re-extracts exactly that item. Unreadable files are
cached too (with their reason) so a re-run reports them again without re-decoding. Shards are written
atomically and merged when they pile up; two runs writing the same rows at once only produce duplicates, which
are harmless.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.features.base import config_key, has_content
from fusionrec.features.media import MediaDecodeError, open_regular

log = logging.getLogger("fusionrec")

_MAX_SHARDS = 8


def default_store_dir() -> Path:
    from fusionrec.features.image_cnn import cache_root

    return cache_root() / "features"


def text_key(text: str) -> str:
    return hashlib.blake2b(b"text\0" + text.encode("utf-8"), digest_size=20).hexdigest()


def bytes_key(data: bytes) -> str:
    return hashlib.blake2b(b"file\0" + bytes(data), digest_size=20).hexdigest()


def file_key(path: str | os.PathLike, max_bytes: int | None = None) -> str:
    """Hash of a regular file's bytes; raises ``MediaDecodeError`` for anything else (FIFOs, devices,
    directories, files above ``max_bytes``) so hashing can neither block nor read without end."""
    from fusionrec.errors import DataError
    from fusionrec.files import check_regular

    try:  # a link out of its folder is not followed (hashing it would read any file the link names)
        check_regular(path)
    except DataError as e:
        raise MediaDecodeError(str(e)) from None
    h = hashlib.blake2b(b"file\0", digest_size=20)
    with open_regular(path, max_bytes if max_bytes is not None else sys.maxsize, allow_empty=True) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_keys(
    sources: Sequence[Any], kind: str, max_bytes: int | None = None
) -> tuple[list[str | None], dict[int, str]]:
    """Per-item content hash (None = no content) and ``{index: reason}`` for unreadable file paths."""
    keys: list[str | None] = []
    unreadable: dict[int, str] = {}
    for i, s in enumerate(sources):
        if not has_content(s):
            keys.append(None)
        elif kind == "text":
            keys.append(text_key(str(s)))
        elif isinstance(s, bytes | bytearray):
            keys.append(bytes_key(s))
        else:
            try:
                keys.append(file_key(s, max_bytes))
            except MediaDecodeError as e:
                keys.append(None)
                unreadable[i] = str(e)
            except OSError as e:
                keys.append(None)
                unreadable[i] = f"cannot read file ({e.strerror or e})"
    return keys, unreadable


class FeatureStore:
    """Cache of extracted rows: ``lookup`` what is known, ``put`` what was extracted.

    Parameters
    ----------
    root
        Cache directory (created on first write).
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_store_dir()

    # ------------------------------------------------------------------------------------------ rows

    def _dir(self, config: dict[str, Any]) -> Path:
        return self.root / config_key(config)

    def lookup(
        self, config: dict[str, Any], keys: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """``(values, present, hit, reasons)`` for ``keys``; rows with ``hit`` False were never stored."""
        n, d = len(keys), int(config["dims"])
        values = np.zeros((n, d), np.float32)
        present = np.zeros(n, bool)
        hit = np.zeros(n, bool)
        reasons = [""] * n
        folder = self._dir(config)
        shards = sorted(folder.glob("shard-*.npz")) if folder.is_dir() else []
        if not shards or not n:
            return values, present, hit, reasons
        want: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            want.setdefault(k, []).append(i)
        for shard in shards:  # later shards win (sorted by time)
            try:
                with np.load(shard, allow_pickle=False) as z:
                    skeys = z["keys"].astype(str)
                    rows = [(j, want[k]) for j, k in enumerate(skeys) if k in want]
                    if not rows:
                        continue
                    src = np.fromiter((j for j, _ in rows), np.int64, count=len(rows))
                    sv, sp, sr = z["values"][src], z["present"][src], z["reason"][src]
            except (OSError, ValueError, KeyError) as e:
                log.warning("feature cache: ignoring unreadable shard %s (%s)", shard, e)
                continue
            if sv.shape[1] != d:
                continue
            for r, (_, dst) in enumerate(rows):
                values[dst] = sv[r]
                present[dst] = sp[r]
                hit[dst] = True
                for t in dst:
                    reasons[t] = str(sr[r])
        return values, present, hit, reasons

    def put(
        self,
        config: dict[str, Any],
        keys: Sequence[str],
        values: np.ndarray,
        present: np.ndarray,
        reasons: Sequence[str] | None = None,
    ) -> None:
        """Store rows (one per unique key); merges shards when there are many."""
        if not len(keys):
            return
        folder = self._dir(config)
        folder.mkdir(parents=True, exist_ok=True)
        cfg_file = folder / "config.json"
        if not cfg_file.exists():
            _atomic_write_bytes(cfg_file, json.dumps(config, indent=2, sort_keys=True, default=str).encode())
        reasons = list(reasons) if reasons is not None else [""] * len(keys)
        self._write_shard(
            folder,
            np.asarray(keys, dtype="S40"),
            np.asarray(values, np.float32),
            np.asarray(present, bool),
            np.asarray(reasons, dtype=str),
        )
        shards = sorted(folder.glob("shard-*.npz"))
        if len(shards) > _MAX_SHARDS:
            self._compact(folder, shards)

    def _write_shard(
        self, folder: Path, keys: np.ndarray, values: np.ndarray, present: np.ndarray, reason: np.ndarray
    ) -> Path:
        name = f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
        os.close(fd)
        try:
            np.savez(tmp, keys=keys, values=values, present=present, reason=reason)
            os.replace(tmp, folder / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return folder / name

    def _compact(self, folder: Path, shards: list[Path]) -> None:
        merged: dict[bytes, tuple[np.ndarray, bool, str]] = {}
        for shard in shards:
            try:
                with np.load(shard, allow_pickle=False) as z:
                    for k, v, p, r in zip(z["keys"], z["values"], z["present"], z["reason"], strict=True):
                        merged[bytes(k)] = (v, bool(p), str(r))
            except (OSError, ValueError, KeyError):
                continue
        if not merged:
            return
        keys = np.asarray(list(merged), dtype="S40")
        vals = np.stack([m[0] for m in merged.values()]).astype(np.float32)
        pres = np.asarray([m[1] for m in merged.values()], bool)
        reas = np.asarray([m[2] for m in merged.values()], dtype=str)
        self._write_shard(folder, keys, vals, pres, reas)
        for shard in shards:
            try:
                shard.unlink()
            except FileNotFoundError:
                pass

    def count(self, config: dict[str, Any]) -> int:
        """Number of distinct content hashes stored for ``config``."""
        folder = self._dir(config)
        keys: set[bytes] = set()
        for shard in sorted(folder.glob("shard-*.npz")) if folder.is_dir() else []:
            with np.load(shard, allow_pickle=False) as z:
                keys.update(bytes(k) for k in z["keys"])
        return len(keys)

    # ------------------------------------------------------------------------------------------ fitted state

    def get_state(self, key: str) -> dict[str, np.ndarray] | None:
        path = self.root / "fitted" / f"{key}.npz"
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            log.warning("feature cache: ignoring unreadable fitted state %s (%s)", path, e)
            return None

    def put_state(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        folder = self.root / "fitted"
        folder.mkdir(parents=True, exist_ok=True)
        save_state(folder / f"{key}.npz", arrays)


def save_state(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write learned extractor arrays as an ``.npz`` (no pickled objects), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_state(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
