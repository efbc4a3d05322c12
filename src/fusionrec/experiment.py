"""Experiment files: data, split, seeds, models and metrics in one YAML file; every (model, seed) one run.

A file looks like::

    name: demo
    data: {path: demo, kcore: 10}          # path relative to this file (or 'demo'); any load option
    split: {method: ratio}                 # ratio, temporal, loo, ... (default: the data's own, else ratio)
    seeds: [1, 2, 3]
    metrics: [recall@10, recall@20, ndcg@10, ndcg@20]
    curve_ks: [5, 10, 20, 50]              # recall / NDCG against K in the report
    masking: train+valid
    select: recall@20                      # valid metric that picks a point of a model's grid
    models:
      - {name: als, params: {factors: 64}, grid: {reg: [0.01, 0.1]}}
      - {name: late-fusion, label: "late-fusion(als, ease)", params: {models: als,ease}}
    cold: {models: [als]}                  # optional: the cold-item protocol for these models

``run_experiment`` writes ``OUT/runs/<label>/seed-<seed>/`` with ``artifact/`` and ``result.json`` (what the
report reads), and returns the results. Files are read with ``yaml.safe_load``: data, never code.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from fusionrec.errors import ConfigError, DataError
from fusionrec.files import json_default

log = logging.getLogger("fusionrec")

RESULT_FILE = "result.json"
TOP_KEYS = {
    "name",
    "data",
    "split",
    "seeds",
    "metrics",
    "curve_ks",
    "masking",
    "models",
    "cold",
    "explain",
    "select",
}
DATA_KEYS = {
    "path",
    "format",
    "min_rating",
    "kcore",
    "user_col",
    "item_col",
    "rating_col",
    "time_col",
    "items",
    "image_dir",
    "sep",
    "features",
}
SPLIT_KEYS = {"method", "cold_fraction"}
MODEL_KEYS = {"name", "label", "params", "grid"}
COLD_KEYS = {"models", "fraction", "metrics"}
# users and items per user sampled for the modality-weight distribution
EXPLAIN_USERS, EXPLAIN_K = 300, 20


@dataclass
class ModelSpec:
    name: str
    label: str
    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)  # a search space, chosen on the valid split


@dataclass
class Experiment:
    name: str
    data: dict[str, Any]
    models: list[ModelSpec]
    seeds: list[int] = field(default_factory=lambda: [2026])
    split: dict[str, Any] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=lambda: ["recall@10", "recall@20", "ndcg@10", "ndcg@20"])
    curve_ks: list[int] = field(default_factory=lambda: [1, 5, 10, 20, 50])
    masking: str = "train+valid"
    cold: dict[str, Any] | None = None
    explain: bool = True
    select: str = "recall@20"  # the valid metric a model's grid is searched by
    source: Path | None = None


def load_experiment(path: str | Path) -> Experiment:
    """Parse and check an experiment file; unknown keys are errors that list the valid ones."""
    import yaml

    from fusionrec.commands.tune import grid_points
    from fusionrec.evaluation.evaluator import MASKING
    from fusionrec.evaluation.metrics import parse_metric
    from fusionrec.models.registry import get_model_class

    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read the experiment file {path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: an experiment file is a mapping with keys {sorted(TOP_KEYS)}")
    _check_keys(spec, TOP_KEYS, path.name)
    data = spec.get("data")
    if isinstance(data, str):
        data = {"path": data}
    if not isinstance(data, dict) or "path" not in data:
        raise ConfigError(f"{path.name}: give data: {{path: ...}} (a data directory, file or 'demo')")
    _check_keys(data, DATA_KEYS, f"{path.name}: data")
    data = dict(data)
    base = path.resolve().parent
    if data["path"] != "demo":
        data["path"] = str((base / str(data["path"])).resolve())
    feats = data.get("features") or []
    data["features"] = [
        str((base / str(f)).resolve()) for f in ([feats] if isinstance(feats, str) else feats)
    ]
    split = dict(spec.get("split") or {})
    _check_keys(split, SPLIT_KEYS, f"{path.name}: split")
    seeds = spec.get("seeds", [2026])
    seeds = [seeds] if isinstance(seeds, int) else seeds
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"{path.name}: seeds must be a list of integers; got {seeds!r}")
    models = []
    raw_models = spec.get("models")
    if not isinstance(raw_models, list) or not raw_models:
        raise ConfigError(f"{path.name}: list at least one model under models: (e.g. - {{name: als}})")
    labels: set[str] = set()
    for m in raw_models:
        m = {"name": m} if isinstance(m, str) else m
        if not isinstance(m, dict) or "name" not in m:
            raise ConfigError(f"{path.name}: each model needs a name; got {m!r}")
        _check_keys(m, MODEL_KEYS, f"{path.name}: model {m.get('name')}")
        params = m.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{path.name}: params of model {m['name']} must be a mapping")
        grid = m.get("grid") or {}
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            raise ConfigError(f"{path.name}: grid of model {m['name']} maps parameters to lists of values")
        if set(grid) & set(params):
            raise ConfigError(
                f"{path.name}: model {m['name']}: {sorted(set(grid) & set(params))} in params and grid"
            )
        for point in grid_points(grid):  # unknown models / parameters fail before any run
            get_model_class(m["name"]).from_params({**params, **point})
        label = str(m.get("label") or m["name"])
        if label in labels:
            raise ConfigError(f"{path.name}: two models are labelled {label!r}; give one a label:")
        labels.add(label)
        models.append(ModelSpec(name=m["name"], label=label, params=params, grid=grid))
    metrics = spec.get("metrics") or Experiment.__dataclass_fields__["metrics"].default_factory()  # type: ignore[misc]
    ks = spec.get("curve_ks") or Experiment.__dataclass_fields__["curve_ks"].default_factory()  # type: ignore[misc]
    for metric in metrics:
        try:
            parse_metric(metric)
        except ValueError as e:
            raise ConfigError(f"{path.name}: {e}") from None
    if not all(isinstance(k, int) and k > 0 for k in ks):
        raise ConfigError(f"{path.name}: curve_ks must be positive integers; got {ks!r}")
    masking = spec.get("masking", "train+valid")
    if masking not in MASKING:
        raise ConfigError(f"{path.name}: masking must be one of {list(MASKING)}; got {masking!r}")
    select = str(spec.get("select", "recall@20"))
    try:
        parse_metric(select)
    except ValueError as e:
        raise ConfigError(f"{path.name}: select: {e}") from None
    cold = spec.get("cold")
    if cold is not None:
        if not isinstance(cold, dict):
            raise ConfigError(f"{path.name}: cold: takes a mapping like {{models: [als]}}")
        _check_keys(cold, COLD_KEYS, f"{path.name}: cold")
        unknown = set(cold.get("models") or []) - labels
        if unknown:
            raise ConfigError(f"{path.name}: cold: models {sorted(unknown)} are not among {sorted(labels)}")
    return Experiment(
        name=str(spec.get("name") or path.stem),
        data=data,
        models=models,
        seeds=list(seeds),
        split=split,
        metrics=list(metrics),
        curve_ks=sorted(set(ks)),
        masking=masking,
        cold=cold,
        explain=bool(spec.get("explain", True)),
        select=select,
        source=path,
    )


def run_experiment(
    exp: Experiment,
    out: str | Path,
    *,
    show_progress: bool = True,
    command: list[str] | None = None,
    tracker=None,
) -> list[dict[str, Any]]:
    """Run every (model, seed) of ``exp`` into ``out/runs/``; returns the result records."""
    from fusionrec.artifacts import save_artifact
    from fusionrec.commands._common import load_data, make_split
    from fusionrec.data.splits import split_summary
    from fusionrec.evaluation import evaluate

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_data(_data_namespace(exp.data))
    data_info = {"name": ds.name, "fingerprint": ds.fingerprint(), "summary": ds.summary(), **exp.data}
    eval_metrics = list(
        dict.fromkeys([*exp.metrics, *(f"{m}@{k}" for m in ("recall", "ndcg") for k in exp.curve_ks)])
    )
    cmd = shlex.join(command) if command else None
    records = []
    total = len(exp.models) * len(exp.seeds)
    for s_i, seed in enumerate(exp.seeds):
        split_args = SimpleNamespace(
            split=exp.split.get("method"), seed=seed, cold_fraction=exp.split.get("cold_fraction", 0.2)
        )
        split = make_split(ds, split_args)
        for m_i, spec in enumerate(exp.models):
            n = s_i * len(exp.models) + m_i + 1
            log.info("[%d/%d] %s, seed %d", n, total, spec.label, seed)
            model, art, seconds, tuning = _fit_spec(ds, split, spec, seed, exp.select, show_progress)
            res = evaluate(model, split, metrics=eval_metrics, masking=exp.masking, by_activity=True)
            record: dict[str, Any] = {
                "experiment": exp.name,
                "label": spec.label,
                "order": m_i,  # the model's place in the experiment file (tables keep that order)
                "model": spec.name,
                "params": model.get_params(),
                "seed": seed,
                "split": {"method": split.name, **split_summary(split)},
                "masking": exp.masking,
                "table_metrics": exp.metrics,
                "metrics": {k: round(float(v), 6) for k, v in res.metrics.items()},
                "extra": {k: round(float(v), 6) for k, v in res.extra.items()},
                "by_activity": res.by_activity,
                "fit_seconds": round(seconds, 3),
                "tuning": tuning,
                "history": getattr(model, "history_", None),
                "modality_weights": _modality_weights(model, split, ds, seed) if exp.explain else None,
                "cold": None,
                "command": cmd,
                "experiment_file": str(exp.source) if exp.source else None,
                "versions": versions(),
                "data": data_info,
            }
            if exp.cold and spec.label in (exp.cold.get("models") or []):
                chosen = {**spec.params, **(tuning["chosen"] if tuning else {})}
                record["cold"] = _cold(ds, spec.name, chosen, seed, exp.cold, show_progress)
            run_dir = out / "runs" / _slug(spec.label) / f"seed-{seed}"
            art.info["test_metrics"] = record["metrics"]
            if cmd:
                art.info["command"] = cmd
            save_artifact(art, run_dir / "artifact")
            write_json(run_dir / RESULT_FILE, record)
            record["run_dir"] = str(run_dir)
            if tracker is not None:
                tracker.log_run(record, run_dir)
            records.append(record)
            log.info(
                "%s seed %d: %s (%.1fs)",
                spec.label,
                seed,
                "  ".join(f"{k}={record['metrics'][k]:.4f}" for k in exp.metrics),
                seconds,
            )
    return records


def _fit_spec(ds, split, spec: ModelSpec, seed: int, select: str, show_progress: bool):
    """Fit the model; with a search space, every point, keeping the best on the validation split."""
    from fusionrec.commands.tune import grid_points
    from fusionrec.evaluation import evaluate
    from fusionrec.pipeline import build_model, fit_artifact

    points = grid_points(spec.grid)
    if len(points) > 1 and split.valid.nnz == 0:
        raise DataError(
            f"model {spec.label}: a grid is searched on the validation split, which is empty here"
        )
    best, rows = None, []
    for point in points:
        model = build_model(spec.name, {**spec.params, **point}, seed=seed, show_progress=show_progress)
        art, seconds = fit_artifact(ds, split, model, seed=seed)
        if len(points) == 1:
            return model, art, seconds, None
        value = float(evaluate(model, split, on="valid", metrics=[select]).metrics[select])
        rows.append({**point, f"valid {select}": round(value, 6), "fit_seconds": round(seconds, 3)})
        log.info("%s %s: valid %s=%.4f", spec.label, point, select, value)
        if best is None or value > best[0]:
            best = (value, point, model, art, seconds)
    assert best is not None
    _, point, model, art, seconds = best
    tuning = {"metric": select, "grid": spec.grid, "valid": rows, "chosen": point}
    art.info["tuning"] = tuning
    return model, art, seconds, tuning


def versions() -> dict[str, str]:
    """Versions of Python, fusionrec and the numerical libraries a result depends on."""
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for pkg in ("fusionrec", "numpy", "scipy", "torch", "implicit", "scikit-learn", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    if "fusionrec" not in out:
        from fusionrec import __version__

        out["fusionrec"] = __version__
    return out


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=json_default))
    os.replace(tmp, path)


def _modality_weights(model, split, ds, seed: int) -> dict[str, Any] | None:
    """Per-part shares of the explanation over a sample of test users' top items, when the model explains."""
    from fusionrec.models.explain import explain_recommendations

    users = np.flatnonzero(np.diff(split.test.indptr) > 0)
    if not len(users):
        return None
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(users, size=min(EXPLAIN_USERS, len(users)), replace=False))
    items = model.recommend(users, EXPLAIN_K, exclude=split.train)[0]
    try:
        exp = explain_recommendations(model, users, items, features=ds.features if len(ds.features) else None)
    except (NotImplementedError, ConfigError):
        return None
    shares = exp.shares()
    keep = items >= 0
    return {
        "kind": exp.kind,
        "parts": list(exp.parts),
        "shares": {p: np.round(shares[..., j][keep], 4).tolist() for j, p in enumerate(exp.parts)},
    }


def _cold(
    ds, name: str, params: dict[str, Any], seed: int, cold: dict[str, Any], show_progress: bool
) -> dict[str, Any]:
    from fusionrec.evaluation.cold_start import COLD_METRICS, evaluate_cold_items
    from fusionrec.pipeline import build_model

    t0 = time.perf_counter()
    model = build_model(name, params, seed=seed, show_progress=show_progress)
    res = evaluate_cold_items(
        ds,
        model,
        seed=seed,
        cold_fraction=float(cold.get("fraction", 0.2)),
        metrics=cold.get("metrics") or COLD_METRICS,
    )
    out = res.to_dict()
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _data_namespace(data: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(
        data=data["path"],
        data_format=data.get("format"),
        min_rating=data.get("min_rating"),
        kcore=int(data.get("kcore") or 0),
        user_col=data.get("user_col", "user_id"),
        item_col=data.get("item_col", "item_id"),
        rating_col=data.get("rating_col", "rating"),
        time_col=data.get("time_col", "timestamp"),
        items=data.get("items"),
        image_dir=data.get("image_dir"),
        sep=data.get("sep"),
        features=data.get("features") or [],
    )


def _check_keys(d: dict, allowed: set[str], where: str) -> None:
    unknown = set(d) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(allowed)}")


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "model"


def load_results(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Result records under each path: ``result.json`` files found recursively, or plain artifacts."""
    records: list[dict[str, Any]] = []
    for p in map(Path, paths):
        if not p.exists():
            raise DataError(f"{p}: no such run directory; pass directories written by `fusionrec run` or fit")
        found = sorted(p.rglob(RESULT_FILE)) if p.is_dir() else [p] if p.name == RESULT_FILE else []
        batch = []
        for f in found:
            rec = json.loads(f.read_text())
            rec["run_dir"] = str(f.parent)
            batch.append(rec)
        records += sorted(batch, key=lambda r: (r.get("order", 0), r.get("seed") or 0))
        if not found and (p / "model.json").exists():
            records.append(_record_from_artifact(p))
        elif not found:
            raise DataError(f"{p}: holds neither {RESULT_FILE} files nor an artifact (model.json)")
    if not records:
        raise DataError("no runs found; pass directories written by `fusionrec run` or `fusionrec fit`")
    return records


def _record_from_artifact(path: Path) -> dict[str, Any]:
    meta = json.loads((path / "model.json").read_text())
    return {
        "label": meta.get("model"),
        "model": meta.get("model"),
        "params": meta.get("params", {}),
        "seed": meta.get("seed"),
        "metrics": meta.get("test_metrics") or {},
        "by_activity": {},
        "fit_seconds": meta.get("fit_seconds"),
        "history": (meta.get("state") or {}).get("history_"),
        "command": meta.get("command"),
        "versions": {"fusionrec": meta.get("package_version")},
        "data": {"name": meta.get("data_name"), "fingerprint": meta.get("data_fingerprint")},
        "run_dir": str(path),
    }


def summarise(records: list[dict[str, Any]], metrics: list[str]) -> list[dict[str, Any]]:
    """One row per model label: ``"mean ± std"`` of each metric over seeds, and mean fit seconds."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r["label"], []).append(r)
    rows = []
    for label, runs in groups.items():
        row: dict[str, Any] = {"label": label, "seeds": len(runs)}
        for m in metrics:
            vals = np.asarray([r["metrics"][m] for r in runs if m in r["metrics"]], np.float64)
            row[m] = f"{vals.mean():.4f} ± {vals.std():.4f}" if len(vals) else "—"
        row["fit_s"] = round(float(np.mean([r["fit_seconds"] for r in runs])), 2)
        rows.append(row)
    return rows
