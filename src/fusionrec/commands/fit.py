"""`fusionrec fit`: train a model on a split and write an artifact."""

from __future__ import annotations

import argparse
import shlex

from fusionrec.commands._common import (
    add_data_args,
    add_eval_users_arg,
    add_masking_arg,
    add_output_args,
    add_param_arg,
    add_split_args,
    add_task_arg,
    comma_list,
    emit,
    parse_params,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="train a model and write an artifact directory")
    add_data_args(p)
    add_split_args(p)
    add_task_arg(p)
    p.add_argument(
        "--model",
        required=True,
        help="model name (see `fusionrec models`), or 'auto': tune several families within --budget and "
        "keep the one best on the validation split",
    )
    p.add_argument(
        "--budget", default="10m", help="--model auto: total search time (e.g. 20m, 90s; default 10m)"
    )
    p.add_argument(
        "--families", help="--model auto: comma-separated families to try (default: chosen from the data)"
    )
    p.add_argument("--metric", default="recall@20", help="--model auto: validation metric to maximise")
    p.add_argument("--storage", help="--model auto: SQLite file for the studies (resumable)")
    add_param_arg(p)
    p.add_argument("--out", required=True, help="artifact directory to write")
    p.add_argument("--no-eval", action="store_true", help="skip the test evaluation after fitting")
    add_eval_users_arg(p)
    add_masking_arg(p)
    add_output_args(p)


def run(args: argparse.Namespace) -> int:
    if args.model == "auto":
        return run_auto(args)
    from fusionrec.artifacts import save_artifact
    from fusionrec.commands._common import load_data, load_record, make_split
    from fusionrec.data.splits import split_summary
    from fusionrec.distributed import is_main_process
    from fusionrec.evaluation import evaluate, evaluate_ratings
    from fusionrec.pipeline import build_model, fit_artifact, resolve_task

    model = build_model(args.model, parse_params(args.param), seed=args.seed, show_progress=not args.quiet)
    task = resolve_task(model, args.task)
    ds = load_data(args)
    split = make_split(ds, args, task)
    art, seconds = fit_artifact(ds, split, model, seed=args.seed)
    if not is_main_process():
        return 0  # under torchrun every rank trains; rank 0 evaluates and writes the artifact
    if getattr(args, "command_line", None):
        art.info["command"] = shlex.join(args.command_line)
    art.info["load"] = load_record(args)
    result = {
        "model": args.model,
        "params": model.get_params(),
        "fit_seconds": round(seconds, 3),
        "task": task,
        "split": split_summary(split),
        "out": str(args.out),
    }
    if not args.no_eval:
        res = evaluate(model, split, masking=args.masking, sample_users=args.eval_users, seed=args.seed)
        art.info["test_metrics"] = dict(res.metrics)
        result["test"] = res.to_dict()
        if task == "rating":
            rated = evaluate_ratings(model, split.test, train=split.train)
            art.info["test_metrics"] = {**rated.metrics, **art.info["test_metrics"]}
            result["test"] = {
                **{k: v for k, v in rated.to_dict().items() if k != "rating_by_activity"},
                **result["test"],
            }
    save_artifact(art, args.out)
    lines = [f"fitted {args.model} in {seconds:.2f}s → {args.out}"]
    if "test" in result:
        lines.append(
            "test: " + "  ".join(f"{k}={v:.4f}" for k, v in result["test"].items() if isinstance(v, float))
        )
    emit(args, result, "\n".join(lines))
    return 0


def run_auto(args: argparse.Namespace) -> int:
    from fusionrec.artifacts import save_artifact
    from fusionrec.commands._common import load_data, load_record, make_split, table
    from fusionrec.data.splits import split_summary
    from fusionrec.errors import ConfigError, DataError
    from fusionrec.evaluation import evaluate
    from fusionrec.evaluation.metrics import parse_metric
    from fusionrec.pipeline import make_artifact
    from fusionrec.tuning import auto_select, parse_budget

    if args.param:
        raise ConfigError("--model auto chooses every hyperparameter; drop --param (or name a model)")
    try:
        name, k = parse_metric(args.metric)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    metric = f"{name}@{k}"
    budget = parse_budget(args.budget)
    families = comma_list(args.families) if args.families else None
    ds = load_data(args)
    split = make_split(ds, args)
    if split.valid.nnz == 0:
        raise DataError("--model auto selects on the validation split, and it is empty; use --split ratio")
    features = ds.features if len(ds.features) else None
    res = auto_select(
        split,
        features,
        budget=budget,
        metric=metric,
        families=families,
        storage=args.storage,
        data_key=f"{ds.fingerprint()}-{split.name}",
        seed=args.seed,
        show_progress=False,
    )
    best = res.winner
    art = make_artifact(ds, split, best.model, seconds=best.seconds, seed=args.seed)
    rows = res.rows()
    art.info["auto"] = {"metric": metric, "budget_s": budget, "families": rows, "skipped": res.skipped}
    art.info["load"] = load_record(args)
    result = {
        "model": best.model_name,
        "params": best.model.get_params(),
        "valid": {metric: best.value},
        "budget_s": budget,
        "seconds": round(res.seconds, 2),
        "families": rows,
        "skipped": res.skipped,
        "split": split_summary(split),
        "out": str(args.out),
    }
    if not args.no_eval:
        test = evaluate(best.model, split, masking=args.masking)
        art.info["test_metrics"] = test.metrics
        result["test"] = test.to_dict()
    save_artifact(art, args.out)
    marked = [{"": "*" if r["family"] == best.model_name else "", **r} for r in rows]
    lines = [
        f"auto: {len(rows)} famil{'y' if len(rows) == 1 else 'ies'} in {res.seconds:.0f}s "
        f"(budget {budget:.0f}s), selected on valid {metric}",
        table(marked, ["", "family", f"valid {metric}", "trials", "seconds", "params"]),
    ]
    lines += [f"skipped {s['family']}: {s['why']}" for s in res.skipped]
    lines.append(f"chosen: {best.model_name} → {args.out}")
    if "test" in result:
        lines.append(
            "test: " + "  ".join(f"{k}={v:.4f}" for k, v in result["test"].items() if isinstance(v, float))
        )
    emit(args, result, "\n".join(lines))
    return 0
