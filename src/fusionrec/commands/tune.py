"""`fusionrec tune`: search a model's declared space (or a given grid) on the validation split; test once."""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from fusionrec.commands._common import (
    add_data_args,
    add_masking_arg,
    add_output_args,
    add_param_arg,
    add_split_args,
    emit,
    parse_params,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="tune hyperparameters on the validation split (automatic search or a grid)",
        description="Search the model's declared hyperparameter space (Optuna TPE, pruning of torch trials "
        "on their per-epoch validation metric) within --budget or --trials, or fit every point of a --grid; "
        "select on the validation split only, then evaluate the chosen model on test once. Examples: "
        "fusionrec tune --data DIR --model als --budget 5m --storage runs/tune.db; "
        "fusionrec tune --data DIR --model als --grid factors=32,64 --grid reg=0.01,0.1",
    )
    add_data_args(p)
    add_split_args(p)
    p.add_argument("--model", required=True, help="model name (see `fusionrec models`)")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="values to try for one hyperparameter (repeatable; the grid is their product). "
        "Separate values with ';' instead of ',' when a value itself holds commas",
    )
    add_param_arg(p, help="fixed hyperparameter (repeatable)")
    p.add_argument("--budget", help="search for this long (e.g. 20m, 90s, 1h); default 10m without --trials")
    p.add_argument(
        "--trials", type=int, help="search this many new trials (with --budget: whichever ends first)"
    )
    p.add_argument(
        "--storage", help="SQLite file holding the study; a later run with the same settings resumes it"
    )
    p.add_argument(
        "--study", help="study name in --storage (default: from model, data, metric, seed, params)"
    )
    p.add_argument(
        "--metric",
        help="validation metric: NAME@K to maximise (default recall@20), or rmse / mae to minimise "
        "(the default for rating models such as biased-mf)",
    )
    add_masking_arg(p, ranking_for="the final test")
    p.add_argument("--out", help="write the chosen model's artifact here")
    add_output_args(p)


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["factors=32,64", "reg=0.01;0.1"]`` → ``{"factors": [32, 64], "reg": [0.01, 0.1]}``, values typed."""
    from fusionrec.commands._common import parse_value
    from fusionrec.errors import ConfigError

    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not values.strip():
            raise ConfigError(f"bad --grid {item!r}; write key=v1,v2,... (e.g. --grid factors=32,64)")
        if key in grid:
            raise ConfigError(f"--grid {key} given twice; list all its values in one --grid")
        sep_char = ";" if ";" in values else ","
        grid[key] = [parse_value(v.strip()) for v in values.split(sep_char) if v.strip()]
    return grid


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def run(args: argparse.Namespace) -> int:
    from fusionrec.errors import ConfigError

    if args.grid:
        if args.trials is not None or args.budget or args.storage or args.study:
            raise ConfigError(
                "--grid fits every grid point; drop --trials/--budget/--storage/--study with it"
            )
        return run_grid(args)
    return run_search(args)


def _metric_names(args: argparse.Namespace) -> tuple[str, list[str]]:
    from fusionrec.errors import ConfigError
    from fusionrec.evaluation import DEFAULT_METRICS
    from fusionrec.evaluation.metrics import parse_metric

    if args.metric in ("rmse", "mae"):
        raise ConfigError("the search selects on ranking metrics; tune rating models with --grid")
    try:
        name, k = parse_metric(args.metric or "recall@20")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    metric = f"{name}@{k}"
    return metric, list(dict.fromkeys([*DEFAULT_METRICS, metric]))


def _load_tuning_split(args: argparse.Namespace, task: str = "ranking"):
    from fusionrec.commands._common import load_data, make_split
    from fusionrec.errors import DataError

    ds = load_data(args)
    split = make_split(ds, args, task)
    if split.valid.nnz == 0:
        raise DataError(
            "tuning needs a validation split, and this split's valid part is empty; "
            "use --split ratio (8:1:1) or data that carries a valid part"
        )
    if split.cold_items is not None:
        raise DataError("tune selects on a warm validation split; --split cold-items is not supported here")
    return ds, split


def run_search(args: argparse.Namespace) -> int:
    from fusionrec.artifacts import save_artifact
    from fusionrec.commands._common import table
    from fusionrec.data.splits import split_summary
    from fusionrec.errors import ConfigError
    from fusionrec.evaluation import evaluate
    from fusionrec.pipeline import build_model, make_artifact
    from fusionrec.tuning import parse_budget, space_for, tune_model

    metric, metrics = _metric_names(args)
    fixed = _typed_params(args.model, parse_params(args.param))
    budget = parse_budget(args.budget) if args.budget else (None if args.trials else 600.0)
    space_for(args.model, fixed)  # a bad declaration or unknown model fails before any data is loaded
    if build_model(args.model, fixed, seed=args.seed, show_progress=False).task == "rating":
        raise ConfigError(
            f"{args.model} predicts ratings and the search selects on ranking metrics; "
            "tune it with --grid (selected on valid RMSE)"
        )
    ds, split = _load_tuning_split(args)
    features = ds.features if len(ds.features) else None
    res = tune_model(
        args.model,
        split,
        features,
        metric=metric,
        fixed=fixed,
        trials=args.trials,
        budget=budget,
        storage=args.storage,
        study_name=args.study,
        data_key=f"{ds.fingerprint()}-{split.name}",
        seed=args.seed,
        show_progress=False,
    )
    test = evaluate(res.model, split, on="test", metrics=metrics, masking=args.masking)
    art = make_artifact(ds, split, res.model, seconds=res.seconds, seed=args.seed)
    art.info["test_metrics"] = test.metrics
    art.info["tuning"] = {**res.summary(), "chosen": res.params}
    if args.out:
        save_artifact(art, args.out)
    payload = {
        **res.summary(),
        "masking": args.masking,
        "split": split_summary(split),
        "chosen": res.params,
        "chosen_params": res.model.get_params(),
        "trials": res.trials,
        "test": test.to_dict(),
        "out": args.out,
    }
    done = sorted((t for t in res.trials if t["value"] is not None), key=lambda t: -t["value"])
    rows = [
        {"trial": t["number"], f"valid {metric}": t["value"], "fit s": t.get("seconds", ""), **t["params"]}
        for t in done[:10]
    ]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    s = res.summary()
    lines = [
        f"{args.model}: {s['trials']} trial(s) ({s['new_trials']} new, {s['pruned']} pruned, "
        f"{s['failed']} failed) in {res.seconds:.0f}s, selected on valid {metric}; best 10:",
        table(rows, keys),
        f"chosen: {res.params or '(defaults)'}  valid {metric}={res.value:.4f}"
        + ("  (refitted from an earlier run)" if res.refit else ""),
        f"test (masking {args.masking}, evaluated once): "
        + "  ".join(f"{m}={v:.4f}" for m, v in test.metrics.items()),
    ]
    if args.storage:
        lines.append(f"study {res.study_name!r} in {args.storage} (run again to add trials)")
    if args.out:
        lines.append(f"artifact → {args.out}")
    emit(args, payload, "\n".join(lines))
    return 0


def run_grid(args: argparse.Namespace) -> int:
    import logging

    from fusionrec.artifacts import save_artifact
    from fusionrec.commands._common import table
    from fusionrec.data.splits import split_summary
    from fusionrec.errors import ConfigError
    from fusionrec.evaluation import DEFAULT_METRICS, evaluate, evaluate_ratings
    from fusionrec.evaluation.metrics import RATING_METRICS, parse_metric
    from fusionrec.pipeline import build_model, fit_artifact, resolve_task

    log = logging.getLogger("fusionrec")
    requested = (args.metric or "").strip().lower()
    if requested in RATING_METRICS:
        metric, metrics = requested, list(RATING_METRICS)
    else:
        try:
            name, k = parse_metric(args.metric or "recall@20")
        except ValueError as e:
            raise ConfigError(f"{e}, or rmse / mae for rating models") from None
        metric = f"{name}@{k}"
        metrics = list(dict.fromkeys([*DEFAULT_METRICS, metric]))
    fixed = parse_params(args.param)
    grid = parse_grid(args.grid)
    both = sorted(set(grid) & set(fixed))
    if both:
        raise ConfigError(f"{both} given both as --param and --grid; keep one")
    points = grid_points(grid)
    # Build every model first: a typo'd key or bad value fails before any data is loaded.
    models = [build_model(args.model, {**fixed, **pt}, seed=args.seed, show_progress=False) for pt in points]
    task = resolve_task(models[0], "rating" if metric in RATING_METRICS else None)
    if task == "rating" and metric not in RATING_METRICS:
        if args.metric:
            raise ConfigError(f"{args.model} predicts ratings; select it with --metric rmse or --metric mae")
        metric, metrics = "rmse", list(RATING_METRICS)

    ds, split = _load_tuning_split(args, task)

    rows: list[dict[str, Any]] = []
    best = None  # (value, index, artifact)
    for i, (pt, model) in enumerate(zip(points, models, strict=True)):
        art, seconds = fit_artifact(ds, split, model, seed=args.seed)
        if task == "rating":
            found = evaluate_ratings(model, split.valid, train=split.train).metrics
            value = -found[metric]  # lower error is better; selection maximises
        else:
            found = evaluate(model, split, on="valid", metrics=metrics).metrics
            value = found[metric]
        rows.append({**pt, **{f"valid {m}": found[m] for m in metrics}, "fit s": round(seconds, 2)})
        log.info(
            "grid point %d/%d %s: valid %s=%.4f (%.1fs)",
            i + 1,
            len(points),
            pt,
            metric,
            found[metric],
            seconds,
        )
        if best is None or value > best[0]:
            best = (value, i, art)
        else:
            del art
    assert best is not None
    value, best_i, art = best
    if task == "rating":
        test = evaluate_ratings(art.model, split.test, train=split.train)
        test.by_activity = {}
        value = -value
    else:
        test = evaluate(art.model, split, on="test", metrics=metrics, masking=args.masking)  # type: ignore[assignment]
    chosen = {**fixed, **points[best_i]}
    art.info["test_metrics"] = test.metrics
    art.info["tuning"] = {"metric": metric, "grid": grid, "valid": rows, "chosen": chosen}
    if args.out:
        save_artifact(art, args.out)

    payload = {
        "model": args.model,
        "metric": metric,
        "masking": args.masking,
        "split": split_summary(split),
        "grid": rows,
        "chosen": chosen,
        "chosen_params": art.model.get_params(),
        "chosen_index": best_i,
        "valid": {metric: value},
        "test": test.to_dict(),
        "out": args.out,
    }
    columns = [*grid, f"valid {metric}", *[f"valid {m}" for m in metrics if m != metric], "fit s"]
    marked = [{**r, "": "*" if j == best_i else ""} for j, r in enumerate(rows)]
    lines = [
        f"{args.model}: {len(points)} grid point(s), selected on valid {metric}",
        table(marked, ["", *columns]),
        f"chosen: {chosen or '(defaults)'}  valid {metric}={value:.4f}",
        f"test (masking {args.masking}, evaluated once): "
        + "  ".join(f"{m}={v:.4f}" for m, v in test.metrics.items()),
    ]
    if args.out:
        lines.append(f"artifact → {args.out}")
    emit(args, payload, "\n".join(lines))
    return 0


def _typed_params(model: str, params: dict) -> dict:
    """``--param`` text converted to the model's parameter types now: the search stores fixed values in its
    study and hands them to every trial, where text would no longer be recognised as typed by hand."""
    import inspect

    from fusionrec.errors import ConfigError
    from fusionrec.models.registry import get_model_class
    from fusionrec.params import convert_cli

    try:
        return convert_cli(params, inspect.signature(get_model_class(model).__init__), f"model {model!r}")
    except ValueError as e:
        raise ConfigError(f"{e} (--param KEY=VALUE)") from None
