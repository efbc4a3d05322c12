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
    "refit",
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


class _AroundBars(logging.Handler):
    """Log lines written between progress-bar redraws (tqdm.write), never glued into a bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # a log line must never take the command down
            self.handleError(record)


def _setup_logging(*, quiet: bool) -> None:
    """The one ``fusionrec`` logger (the root logger is left to the application), plus quiet neighbours."""
    logger = logging.getLogger("fusionrec")
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    handler = _AroundBars()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.handlers = [h for h in logger.handlers if not isinstance(h, _AroundBars)] + [handler]
    for noisy in ("faiss", "faiss.loader", "numexpr", "optuna", "mlflow", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = ["fusionrec", *(sys.argv[1:] if argv is None else argv)]  # recorded in artifacts
    if not args.command:
        parser.print_help()
        return 2
    _setup_logging(quiet=getattr(args, "quiet", False))
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
