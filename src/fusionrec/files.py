"""Reading files that travelled: regular files only, bounded in size, links kept inside their own folder.

Data sets, feature directories and artifacts come from elsewhere. A name in them may be a symbolic link to
``/dev/zero`` (a read that never ends), a FIFO (an ``open`` that never returns) or a file outside the folder
it seems to be in. Every loader opens such files through :func:`check_regular` / :func:`read_bytes`, which
refuse, with a message naming the file, anything that is not a regular file of bounded size whose real
location is inside the folder that names it.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from fusionrec.errors import DataError

MB = 1 << 20
#: model.json, extra.json, manifests: metadata, never large
MAX_META_BYTES = 64 * MB
#: idmaps.json and other JSON that grows with the catalogue
MAX_JSON_BYTES = 2048 * MB


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def check_regular(
    path: str | os.PathLike, *, max_bytes: int | None = None, inside: str | os.PathLike | None = None
) -> os.stat_result:
    """``os.stat`` of ``path`` after checking it is a regular file, at most ``max_bytes``, inside a folder.

    A symbolic link is followed only when its target lies inside ``inside`` (default: the folder holding the
    link). Raises :class:`DataError` (``FileNotFoundError`` when nothing is there) naming the file.
    """
    p = Path(path)
    st = os.lstat(p)  # FileNotFoundError propagates: callers treat a missing file as absent content
    if stat.S_ISLNK(st.st_mode):
        target = os.path.realpath(p)
        st = os.stat(p)
        if not stat.S_ISREG(st.st_mode):
            raise DataError(
                f"{p}: links to {target}, {_kind(st.st_mode)}, not a regular file; replace it with a real file"
            )
        folder = os.path.realpath(inside if inside is not None else p.parent)
        if os.path.commonpath([folder, target]) != folder:
            raise DataError(
                f"{p}: is a symbolic link to {target}, outside {folder}; refusing to follow it "
                "(copy the file into the folder instead)"
            )
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{p}: is {_kind(st.st_mode)}, not a regular file; replace it with a real file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise DataError(
            f"{p}: {st.st_size / MB:.1f} MB is over the {max_bytes / MB:g} MB limit for this kind of file"
        )
    return st


def read_bytes(path: str | os.PathLike, *, max_bytes: int, inside: str | os.PathLike | None = None) -> bytes:
    """The bytes of a regular file (see :func:`check_regular`), never more than ``max_bytes``."""
    check_regular(path, max_bytes=max_bytes, inside=inside)
    # O_NONBLOCK: should the name have been swapped for a FIFO since the check, open must not wait for a writer
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DataError(f"{path}: changed into a special file while being opened; refusing to read it")
        chunks, total = [], 0
        while True:
            block = os.read(fd, min(MB, max_bytes + 1 - total))
            if not block:
                break
            chunks.append(block)
            total += len(block)
            if total > max_bytes:
                raise DataError(f"{path}: grew past the {max_bytes / MB:g} MB limit while being read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_json(
    path: str | os.PathLike, *, max_bytes: int = MAX_META_BYTES, inside: str | os.PathLike | None = None
) -> Any:
    """Parsed JSON of a regular file; invalid UTF-8 or JSON raise :class:`DataError` naming the file."""
    data = read_bytes(path, max_bytes=max_bytes, inside=inside)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); re-save it as UTF-8"
        ) from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` for what results and artifacts hold: numpy scalars and arrays, tuples,
    sets and paths; anything else is refused (it would not read back as data)."""
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple | set):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot write {type(o).__name__} as JSON")
