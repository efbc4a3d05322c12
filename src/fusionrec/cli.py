"""The `fusionrec` console script: one sub-command per module in ``fusionrec.commands``.

Each command module defines ``add_parser(subparsers)`` and ``run(args) -> int``; modules are imported when
the parser is built, and they import heavy libraries only inside ``run``: building the parser imports no
numpy, pandas or torch (tests/test_cli_startup.py), so ``--help`` answers in a fraction of a second.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from fusionrec.errors import FusionrecError

# Order is the order shown in --help.
COMMANDS = [
    "demo",
    "fit",
    "evaluate",
    "tune",
    "run",
    "report",
    "features",
    "recommend",
    "models",
    "info",
    "export",
    "serve",
    "cold",
    "synth",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fusionrec",
        description="Multimodal recommendation: fit, evaluate and serve models that fuse interactions with "
        "image and text features.",
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"fusionrec.commands.{name}").add_parser(sub)
    return parser


class _Version(argparse.Action):
    """``--version``, with the package metadata read only when asked for."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        import fusionrec

        sys.stdout.write(f"fusionrec {fusionrec.__version__}\n")
        parser.exit()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = ["fusionrec", *(sys.argv[1:] if argv is None else argv)]  # recorded in artifacts
    if not args.command:
        parser.print_help()
        return 2
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(levelname)s %(message)s",
        stream=sys.stderr,
    )
    module = importlib.import_module(f"fusionrec.commands.{args.command.replace('-', '_')}")
    try:
        return int(module.run(args) or 0)
    except FusionrecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
