"""`fusionrec export`: write the data set and its split in another tool's format (MMRec, RecBole)."""

from __future__ import annotations

import argparse

from fusionrec.commands._common import add_data_args, add_output_args, add_split_args, emit


class _Renamed(argparse.Action):
    """A flag of an earlier version: refused with the name that replaced it."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        parser.error(
            f"{option_string} is now --format (the input format, as in every command); "
            "name the output format with --to mmrec|recbole"
        )


def add_parser(sub: argparse._SubParsersAction) -> None:
    from fusionrec.data.methods import EXPORT_FORMATS

    p = sub.add_parser("export", help="write data + split (+ features) as MMRec or RecBole atomic files")
    add_data_args(p)  # --format: the input format, as in every other command
    add_split_args(p)
    p.add_argument(
        "--to",
        dest="out_format",
        choices=list(EXPORT_FORMATS),
        help="output format (required): mmrec (NAME.inter with x_label, maps, features) or recbole "
        "(NAME.train/valid/test.inter, NAME.item with item text, NAME.user)",
    )
    p.add_argument("--input-format", action=_Renamed, help=argparse.SUPPRESS)
    p.add_argument("--name", help="base name of the .inter/.item files (default: the data set's name)")
    p.add_argument("out", help="output directory")
    add_output_args(p)


def run(args: argparse.Namespace) -> int:
    from fusionrec.commands._common import load_data, make_split
    from fusionrec.data.export import EXPORTERS
    from fusionrec.data.methods import EXPORT_FORMATS
    from fusionrec.errors import ConfigError

    if args.out_format is None:
        # before this flag existed --format named the output format: say so instead of reading the data as it
        raise ConfigError(
            f"export: name the output format with --to {'|'.join(EXPORT_FORMATS)} "
            "(--format names the input format, as in every command)"
        )
    from fusionrec.data.splits import split_summary

    ds = load_data(args)
    split = make_split(ds, args)
    out = EXPORTERS[args.out_format](ds, split, args.out, name=args.name)
    summary = {
        "out": str(out),
        "format": args.out_format,
        **split_summary(split),
        "users": ds.n_users,
        "items": ds.n_items,
        "modalities": ds.features.dims,
    }
    emit(args, summary, f"wrote {out} ({ds.n_users} users, {ds.n_items} items, split {split_summary(split)})")
    return 0
