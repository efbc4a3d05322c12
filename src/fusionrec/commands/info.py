"""`fusionrec info`: what a loader makes of a data path (format, users, items, modalities, content)."""

from __future__ import annotations

import argparse

from fusionrec.commands._common import add_data_args, add_output_args, emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="load a data set and print its summary (detected format, sizes, content)")
    add_data_args(p)
    add_output_args(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fusionrec.commands._common import load_data
    from fusionrec.data.loaders import detect_format

    fmt = args.data_format or detect_format(Path(args.data))
    ds = load_data(args)
    summary = {"format": fmt, **ds.summary()}
    if ds.content is not None:
        summary["items_with_text"] = sum(bool(t) for t in ds.content.texts)
        summary["items_with_image"] = sum(p is not None for p in ds.content.image_paths)
    emit(args, summary, "\n".join(f"{k:<17} {v}" for k, v in summary.items()))
    return 0
