"""`fusionrec run`: every model × seed of an experiment file, one directory per run, then the report."""

from __future__ import annotations

import argparse

from fusionrec.commands._common import add_output_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an experiment file (data, split, seeds, models) and write its report")
    p.add_argument("experiment", help="experiment YAML file (see experiments/)")
    p.add_argument("--out", help="output directory (default runs/<experiment name>)")
    p.add_argument(
        "--mlflow",
        nargs="?",
        const="./mlruns",
        metavar="URI",
        help="also log every run to MLflow (default URI ./mlruns, a local file store)",
    )
    p.add_argument("--no-report", action="store_true", help="skip writing OUT/report.html")
    add_output_args(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fusionrec.commands._common import emit, table
    from fusionrec.experiment import load_experiment, run_experiment, summarise
    from fusionrec.report import write_report

    exp = load_experiment(args.experiment)
    out = Path(args.out or Path("runs") / exp.name)
    tracker = None
    if args.mlflow:
        from fusionrec.tracking import MlflowTracker

        tracker = MlflowTracker(args.mlflow, exp.name)
    records = run_experiment(
        exp, out, show_progress=not args.quiet, command=getattr(args, "command_line", None), tracker=tracker
    )
    report = None
    if not args.no_report:
        report = write_report(records, out / "report.html", title=f"fusionrec experiment {exp.name}")
    rows = summarise(records, exp.metrics)
    payload = {
        "out": str(out),
        "report": str(report) if report else None,
        "runs": len(records),
        "models": rows,
    }
    if tracker is not None:
        payload["mlflow"] = {
            "uri": tracker.uri,
            "experiment_id": tracker.experiment_id,
            "runs": tracker.run_ids,
        }
    text = table(rows, ["label", "seeds", *exp.metrics, "fit_s"])
    text += f"\n{len(records)} run(s) in {out}" + (f"; report {report}" if report else "")
    if tracker is not None:
        text += f"; MLflow {tracker.uri} (experiment {tracker.experiment_id})"
    emit(args, payload, text)
    return 0
