"""Options and helpers shared by CLI commands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from fusionrec.errors import ConfigError


def add_output_args(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars or info logs")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print results as JSON on stdout")


def add_data_args(p: argparse.ArgumentParser, required: bool = True, format_flag: str = "--format") -> None:
    from fusionrec.data.methods import FORMATS

    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        required=required,
        help="data directory or file (" + ", ".join(n for n in FORMATS if n != "demo") + "), or 'demo'",
    )
    g.add_argument(
        format_flag,
        dest="data_format",
        choices=list(FORMATS),
        help="force a loader (default: detected from the path)",
    )
    g.add_argument(
        "--min-rating", type=float, help="implicit feedback: keep ratings >= this (default: every row)"
    )
    g.add_argument(
        "--kcore",
        type=int,
        help="iterative k-core filter on users and items (evaluate, refit: default the artifact's own)",
    )
    g.add_argument("--user-col", default="user_id", help="tables / RecBole: user id column")
    g.add_argument("--item-col", default="item_id", help="tables / RecBole: item id column")
    g.add_argument(
        "--rating-col", default="rating", help="tables / RecBole: rating column ('none': no ratings)"
    )
    g.add_argument("--time-col", default="timestamp", help="tables / RecBole: time column ('none': no times)")
    g.add_argument(
        "--sep",
        help="field separator of delimited files, e.g. ';' or '\\t' (default: sniffed from the first lines)",
    )
    g.add_argument(
        "--items", help="items table (item_id, title/text/description, image) or Amazon metadata file"
    )
    g.add_argument("--image-dir", help="folder of <item id>.jpg|png images (tables, RecBole, Amazon)")
    g.add_argument(
        "--features",
        action="append",
        default=[],
        help="a directory written by `fusionrec features` to attach (repeatable)",
    )


def _column(value: str | None) -> str | None:
    return None if value is None or value.strip().lower() in ("", "none") else value


def add_split_args(p: argparse.ArgumentParser) -> None:
    from fusionrec.data.methods import SPLITS

    p.add_argument(
        "--split", choices=SPLITS, help="split method (default: the data's own split, else ratio 8:1:1)"
    )
    p.add_argument("--seed", type=seed_value, default=2026, help="seed for the split and the model")
    p.add_argument(
        "--cold-fraction", type=float, default=0.2, help="cold-items split: fraction of items held out"
    )


def add_task_arg(p: argparse.ArgumentParser) -> None:
    from fusionrec.data.methods import TASKS

    p.add_argument(
        "--task",
        choices=TASKS,
        help="ranking (implicit feedback: 1.0 per interaction) or rating (keep rating values; RMSE/MAE); "
        "default: the model's own task",
    )


def add_param_arg(p: argparse.ArgumentParser, help: str = "hyperparameter (repeatable)") -> None:
    """``--param KEY=VALUE`` (repeatable), read with :func:`parse_params`."""
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help=help)


def add_masking_arg(p: argparse.ArgumentParser, ranking_for: str = "test") -> None:
    p.add_argument(
        "--masking",
        choices=["train+valid", "train"],
        default="train+valid",
        help=f"items hidden when ranking for {ranking_for} (train: MMRec's convention)",
    )


def add_eval_users_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--eval-users",
        type=int,
        metavar="N",
        help="evaluate a seeded random sample of N users (large data); default: every user",
    )


def comma_list(text: str) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]`` (an option's comma-separated values)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def load_data(args: argparse.Namespace):
    from pathlib import Path

    from fusionrec.data.loaders import LoadOptions, load_dataset, load_feature_dir

    opts = LoadOptions(
        rating_threshold=args.min_rating,
        kcore=args.kcore or 0,
        user_col=args.user_col,
        item_col=args.item_col,
        rating_col=_column(args.rating_col),
        time_col=_column(args.time_col),
        items_path=args.items,
        image_dir=args.image_dir,
        sep=args.sep,
    )
    ds = load_dataset(args.data, args.data_format, opts)
    for fdir in getattr(args, "features", []) or []:
        extra = load_feature_dir(Path(fdir), ds.item_ids)
        merged = ds.features
        for name in extra:
            merged.add(name, extra[name], extra.mask(name))
        merged.extractors.update(extra.extractors)
        merged.extractor_state.update(extra.extractor_state)
        ds = ds.with_features(merged)
    if ds.features.extractors:
        from fusionrec.features.base import validate_extractor_configs

        # a manifest is data: its extractor configs are checked against the registry, nothing it names is run
        validate_extractor_configs(ds.features.extractors, where=f"{args.data} / --features manifest.json")
    return ds


def make_split(ds, args: argparse.Namespace, task: str = "ranking"):
    from fusionrec.data.splits import split_dataset

    return split_dataset(ds, args.split, seed=args.seed, cold_fraction=args.cold_fraction, task=task)


def seed_value(text: str) -> int:
    """``--seed``: an integer in 0..2**32-1 (what numpy's and torch's generators accept)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an integer; give a seed in 0..4294967295"
        ) from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{value} is out of range; give a seed in 0..4294967295")
    return value


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["factors=64", "learning_rate=0.01", "modalities=image,text"]`` → ``{key: CliText}``.

    Each value stays text until the model or extractor that takes it converts it to its parameter's type
    (``factors=abc`` then fails with the expected type instead of reaching the model as a string).
    """
    from fusionrec.params import CliText

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad --param {item!r}; write key=value (e.g. --param factors=64)")
        out[key.strip().replace("-", "_")] = CliText(value.strip())
    return out


def load_record(args: argparse.Namespace) -> dict[str, Any]:
    """How this command loaded its data: stored in artifacts so later commands load it the same way."""
    return {
        "data": str(args.data),
        "format": args.data_format,
        "kcore": int(args.kcore or 0),
        "min_rating": args.min_rating,
    }


def apply_load_record(args: argparse.Namespace, recorded: dict[str, Any]) -> None:
    """Load options not given on this command line take the values the artifact was fitted with."""
    if args.kcore is None and recorded.get("kcore"):
        args.kcore = int(recorded["kcore"])
    if args.min_rating is None and recorded.get("min_rating") is not None:
        args.min_rating = float(recorded["min_rating"])


def parse_value(value: str) -> Any:
    """A command-line value as JSON-ish data (true/false/none, numbers, lists split on commas)."""
    from fusionrec.params import json_ish

    return json_ish(value)


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    """Print ``payload`` as JSON with --json, else ``text``."""
    if getattr(args, "json", False):
        json.dump(payload, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(text)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [
        max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)
    ]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([line, sep, *body])
