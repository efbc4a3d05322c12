"""`fusionrec fit`: train a model on a split and write an artifact."""

from __future__ import annotations

import argparse
import shlex

from fusionrec.commands._common import add_data_args, add_output_args, add_split_args, emit, parse_params


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="train a model and write an artifact directory")
    add_data_args(p)
    add_split_args(p)
    p.add_argument("--model", required=True, help="model name (see `fusionrec models`)")
    p.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="hyperparameter (repeatable)"
    )
    p.add_argument("--out", required=True, help="artifact directory to write")
    p.add_argument("--no-eval", action="store_true", help="skip the test evaluation after fitting")
    p.add_argument(
        "--eval-users",
        type=int,
        metavar="N",
        help="evaluate a seeded random sample of N users (large data); default: every user",
    )
    p.add_argument(
        "--masking",
        choices=["train+valid", "train"],
        default="train+valid",
        help="items hidden when ranking for test (train: MMRec's convention)",
    )
    add_output_args(p)


def run(args: argparse.Namespace) -> int:
    from fusionrec.artifacts import save_artifact
    from fusionrec.commands._common import load_data, make_split
    from fusionrec.data.splits import split_summary
    from fusionrec.distributed import is_main_process
    from fusionrec.evaluation import evaluate
    from fusionrec.pipeline import build_model, fit_artifact

    model = build_model(args.model, parse_params(args.param), seed=args.seed, show_progress=not args.quiet)
    ds = load_data(args)
    split = make_split(ds, args)
    art, seconds = fit_artifact(ds, split, model, seed=args.seed)
    if not is_main_process():
        return 0  # under torchrun every rank trains; rank 0 evaluates and writes the artifact
    if getattr(args, "command_line", None):
        art.info["command"] = shlex.join(args.command_line)
    result = {
        "model": args.model,
        "params": model.get_params(),
        "fit_seconds": round(seconds, 3),
        "split": split_summary(split),
        "out": str(args.out),
    }
    if not args.no_eval:
        res = evaluate(model, split, masking=args.masking, sample_users=args.eval_users, seed=args.seed)
        art.info["test_metrics"] = res.metrics
        result["test"] = res.to_dict()
    save_artifact(art, args.out)
    lines = [f"fitted {args.model} in {seconds:.2f}s → {args.out}"]
    if "test" in result:
        lines.append(
            "test: " + "  ".join(f"{k}={v:.4f}" for k, v in result["test"].items() if isinstance(v, float))
        )
    emit(args, result, "\n".join(lines))
    return 0
