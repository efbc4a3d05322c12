"""`fusionrec report`: one self-contained HTML file (tables and embedded plots) from experiment runs."""

from __future__ import annotations

import argparse

from fusionrec.commands._common import add_output_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write an HTML report (metrics, curves, plots) of experiment runs")
    p.add_argument(
        "runs", nargs="+", metavar="RUN", help="run directories (from `fusionrec run`) or artifacts (`fit`)"
    )
    p.add_argument("--out", default="report.html", help="HTML file to write (default report.html)")
    p.add_argument("--title", default="fusionrec report", help="report title")
    add_output_args(p, json_flag=False)


def run(args: argparse.Namespace) -> int:
    from fusionrec.experiment import load_results
    from fusionrec.report import write_report

    records = load_results(args.runs)
    out = write_report(records, args.out, title=args.title)
    if not args.quiet:
        print(f"report of {len(records)} run(s) → {out}")
    return 0
