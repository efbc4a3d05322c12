"""Hyper-parameter search without a hand-written grid, and automatic choice of the model family.

Every model declares ``search_space`` (see :class:`~fusionrec.models.base.Recommender`). :func:`tune_model`
searches it with Optuna's TPE sampler: each trial fits on train and is scored on the validation split only;
torch models report their per-epoch validation metric so that a trial worse than the median of earlier
ones at the same epoch is pruned. A study can live in a local SQLite file, so a second run resumes it and
adds trials. The model's defaults are always the first trial of a new study, so tuning never ends below
them on valid. :func:`auto_select` splits one time budget across model families (and a late fusion of the
best of them) and keeps the valid-best.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.data.dataset import Features, Split
from fusionrec.errors import ConfigError
from fusionrec.evaluation import VALIDATOR, evaluate
from fusionrec.models.base import Recommender
from fusionrec.models.registry import get_model_class
from fusionrec.pipeline import build_model

log = logging.getLogger("fusionrec")

SPEC_KINDS = ("int", "float", "categorical")

#: Families ``auto_select`` tries, cheapest first; content models only when the data has features.
AUTO_CF_FAMILIES = ("most-popular", "itemknn", "ease", "als", "lightgcn")
AUTO_CONTENT_FAMILIES = ("content-als", "content-ease", "freedom", "neural")


# ---------------------------------------------------------------------------------------------- spaces


def check_search_space(cls: type[Recommender]) -> None:
    """Raise :class:`ConfigError` unless ``cls.search_space`` names real parameters with well-formed ranges."""
    params = cls.param_defaults()
    for key, spec in cls.search_space.items():
        where = f"model {cls.name!r} search_space[{key!r}]"
        if key not in params:
            raise ConfigError(f"{where}: {cls.name!r} has no parameter {key!r}; valid: {', '.join(params)}")
        if not isinstance(spec, tuple) or not spec or spec[0] not in SPEC_KINDS:
            raise ConfigError(f"{where}: write (kind, ...) with kind one of {SPEC_KINDS}; got {spec!r}")
        if spec[0] == "categorical":
            if len(spec) != 2 or not isinstance(spec[1], list | tuple) or not spec[1]:
                raise ConfigError(f"{where}: write ('categorical', [choice, ...]); got {spec!r}")
            continue
        if len(spec) not in (3, 4) or (len(spec) == 4 and spec[3] != "log"):
            raise ConfigError(f"{where}: write ({spec[0]!r}, low, high) or ({spec[0]!r}, low, high, 'log')")
        low, high = spec[1], spec[2]
        if not (isinstance(low, int | float) and isinstance(high, int | float)) or not low < high:
            raise ConfigError(f"{where}: low < high numbers needed; got {low!r}, {high!r}")
        if spec[0] == "int" and not (isinstance(low, int) and isinstance(high, int)):
            raise ConfigError(f"{where}: an int range needs int bounds; got {low!r}, {high!r}")
        if len(spec) == 4 and low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0; got {low!r}")


def space_for(name: str, fixed: dict[str, Any] | None = None) -> dict[str, tuple]:
    """The declared search space of model ``name``, checked, less the parameters fixed by the caller."""
    cls = get_model_class(name)
    check_search_space(cls)
    return {k: v for k, v in cls.search_space.items() if k not in (fixed or {})}


def _suggest(trial, space: dict[str, tuple]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, spec in space.items():
        if spec[0] == "categorical":
            out[key] = trial.suggest_categorical(key, list(spec[1]))
        elif spec[0] == "int":
            out[key] = trial.suggest_int(key, spec[1], spec[2], log=len(spec) == 4)
        else:
            out[key] = trial.suggest_float(key, float(spec[1]), float(spec[2]), log=len(spec) == 4)
    return out


def _contains(spec: tuple, value: Any) -> bool:
    if spec[0] == "categorical":
        return value in spec[1]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if spec[0] == "int" and not float(value).is_integer():
        return False
    return spec[1] <= value <= spec[2]


def parse_budget(text: str | float | None) -> float | None:
    """``"20m"``, ``"90s"``, ``"1h30m"`` or a number of seconds → seconds (None stays None)."""
    if text is None:
        return None
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        s = str(text).strip().lower()
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", s)
        if not s or parts is None or not any(parts.groups()):
            raise ConfigError(f"bad budget {text!r}; write e.g. 20m, 90s, 1h30m or a number of seconds")
        h, m, sec = (float(g) if g else 0.0 for g in parts.groups())
        seconds = 3600 * h + 60 * m + sec
    if not seconds > 0:
        raise ConfigError(f"the budget must be positive; got {text!r}")
    return seconds


# ---------------------------------------------------------------------------------------------- one model


@dataclass
class TuneResult:
    """The valid-best configuration of one model family and its fitted model."""

    model_name: str
    metric: str
    params: dict[str, Any]  # fixed + searched: what `build_model` needs to rebuild the winner
    value: float  # valid metric of the winner
    model: Recommender  # fitted on train (valid used for early stopping only)
    trials: list[dict[str, Any]] = field(default_factory=list)  # every trial of the study, in order
    new_trials: int = 0  # trials run by this call (a resumed study holds earlier ones too)
    study_name: str | None = None
    storage: str | None = None
    seconds: float = 0.0
    refit: bool = False  # the winner came from an earlier run and was fitted again

    def summary(self) -> dict[str, Any]:
        states = [t["state"] for t in self.trials]
        return {
            "model": self.model_name,
            "metric": self.metric,
            "valid": self.value,
            "params": self.params,
            "trials": len(self.trials),
            "new_trials": self.new_trials,
            "complete": states.count("COMPLETE"),
            "pruned": states.count("PRUNED"),
            "failed": states.count("FAIL"),
            "seconds": round(self.seconds, 2),
            "study": self.study_name,
            "storage": self.storage,
        }


def default_study_name(name: str, data_key: str, metric: str, seed: int, fixed: dict[str, Any]) -> str:
    """One study per model, data, metric, seed and fixed parameters (so a resumed study compares like with like)."""
    fixed_key = hashlib.sha256(json.dumps(fixed, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{name}-{data_key}-{metric}-seed{seed}-{fixed_key}"


def _storage_url(storage: str | Path | None) -> str | None:
    if storage is None:
        return None
    path = Path(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def stop_before_overrunning(deadline: float):
    """An Optuna callback for fits that cannot stop early: no trial is started once the slowest trial so far
    (its ``seconds`` attribute) would not fit in the time left before ``deadline`` (``time.monotonic()``)."""
    longest = {"seconds": 0.0}

    def callback(study, trial) -> None:
        longest["seconds"] = max(longest["seconds"], float(trial.user_attrs.get("seconds", 0.0)))
        if deadline - time.monotonic() < longest["seconds"]:
            study.stop()

    return callback


def tune_model(
    name: str,
    split: Split,
    features: Features | None = None,
    *,
    metric: str = "recall@20",
    fixed: dict[str, Any] | None = None,
    trials: int | None = None,
    budget: float | None = None,
    storage: str | Path | None = None,
    study_name: str | None = None,
    data_key: str = "data",
    seed: int = 0,
    show_progress: bool = False,
) -> TuneResult:
    """Search ``name``'s declared space on ``split`` (select on valid); returns the winner fitted on train.

    Stops after ``trials`` new trials or ``budget`` seconds, whichever comes first (one is needed). A torch
    trial still training when the budget runs out stops at once and keeps its best epoch so far.
    """
    optuna = _require_optuna()
    if trials is None and budget is None:
        raise ConfigError("give a number of trials or a time budget to tune")
    if trials is not None and trials < 1:
        raise ConfigError(f"trials must be ≥ 1; got {trials}")
    if split.valid.nnz == 0:
        raise ConfigError("tuning selects on the validation split, and it is empty; use --split ratio")
    fixed = dict(fixed or {})
    space = space_for(name, fixed)
    build_model(name, fixed, seed=seed)  # a typo'd fixed parameter fails before any trial
    t_start = time.monotonic()
    deadline = t_start + budget if budget is not None else math.inf
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = _storage_url(storage)
    study_name = study_name or default_study_name(name, data_key, metric, seed, fixed)
    # a fixed seed would replay the same start-up samples in a resumed study: offset it by the trials held
    existing = _existing_trials(study_name, url)
    study = optuna.create_study(
        study_name=study_name,
        storage=url,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed + existing, n_startup_trials=8),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=5),
    )
    n_before = len(study.trials)
    if existing == 0 and space:
        defaults = get_model_class(name).param_defaults()
        start = {k: defaults[k] for k, spec in space.items() if _contains(spec, defaults[k])}
        if start:
            study.enqueue_trial(start)
    kept: dict[str, Any] = {}  # the best model fitted in this call: {"value", "number", "model"}
    is_torch = get_model_class(name).is_torch
    with_stop_metric = "valid_metric" in get_model_class(name).param_defaults()

    def objective(trial) -> float:
        params = {**fixed, **_suggest(trial, space)}
        if with_stop_metric and "valid_metric" not in fixed:
            params["valid_metric"] = metric  # prune and stop on the metric being tuned
        model = build_model(name, params, seed=seed, show_progress=show_progress)
        stopped = {"budget": False}
        if is_torch:

            def on_valid(epoch: int, value: float) -> bool:
                trial.report(value, epoch)
                if time.monotonic() > deadline:
                    stopped["budget"] = True
                    return True
                if trial.should_prune():
                    raise optuna.TrialPruned(f"epoch {epoch}: valid {metric}={value:.4f} below the median")
                return False

            model.on_valid = on_valid
        t0 = time.perf_counter()
        try:
            model.fit(split.train, features, valid=split.valid, validate=VALIDATOR)
        except ConfigError as e:  # e.g. a diverging learning rate: this trial fails, the study goes on
            trial.set_user_attr("error", str(e))
            raise
        finally:
            if is_torch:
                model.on_valid = None
        seconds = time.perf_counter() - t0
        value = float(evaluate(model, split, on="valid", metrics=[metric]).metrics[metric])
        trial.set_user_attr("seconds", round(seconds, 3))
        trial.set_user_attr("stopped_by_budget", stopped["budget"])
        if getattr(model, "best_epoch_", None) is not None:
            trial.set_user_attr("best_epoch", int(model.best_epoch_))
        log.info(
            "%s trial %d: valid %s=%.4f in %.1fs %s%s",
            name,
            trial.number,
            metric,
            value,
            seconds,
            params,
            " (stopped by the budget)" if stopped["budget"] else "",
        )
        if not kept or value > kept["value"]:
            kept.update(value=value, number=trial.number, model=model)
        return value

    if not space:  # nothing to search: the defaults are the only candidate
        trials = 1
    remaining = None if budget is None else max(1.0, deadline - time.monotonic())
    study.optimize(
        objective,
        n_trials=trials,
        timeout=remaining,
        catch=(ConfigError,),
        gc_after_trial=False,
        callbacks=[] if is_torch else [stop_before_overrunning(deadline)],
    )
    new_trials = len(study.trials) - n_before
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        errors = [t.user_attrs.get("error") for t in study.trials if t.user_attrs.get("error")]
        raise ConfigError(
            f"tuning {name!r} finished no trial"
            + (f"; the first error: {errors[0]}" if errors else "; raise the budget or the number of trials")
        )
    best = max(complete, key=lambda t: t.value)
    params = {**fixed, **best.params}
    if with_stop_metric and "valid_metric" not in fixed:
        params["valid_metric"] = metric
    refit = False
    if kept and kept["number"] == best.number:
        model = kept["model"]
    else:  # the winner is an earlier run's trial: fit it again (same seed, same result)
        log.info("%s: refitting trial %d of an earlier run", name, best.number)
        model = build_model(name, params, seed=seed, show_progress=show_progress)
        model.fit(split.train, features, valid=split.valid, validate=VALIDATOR)
        refit = True
    return TuneResult(
        model_name=name,
        metric=metric,
        params=params,
        value=float(best.value),
        model=model,
        trials=[_trial_row(t) for t in study.trials],
        new_trials=new_trials,
        study_name=study_name,
        storage=None if storage is None else str(storage),
        seconds=time.monotonic() - t_start,
        refit=refit,
    )


def _require_optuna():
    try:
        import optuna
    except ImportError as e:
        raise ConfigError("tuning needs optuna; install it with `pip install 'fusionrec[tune]'`") from e
    return optuna


def _existing_trials(study_name: str, url: str | None) -> int:
    import optuna

    if url is None:
        return 0
    try:
        return len(optuna.load_study(study_name=study_name, storage=url).trials)
    except KeyError:  # no such study yet
        return 0


def _trial_row(t) -> dict[str, Any]:
    return {
        "number": t.number,
        "state": t.state.name,
        # a pruned trial's stored value is its last epoch's: not a result to select on
        "value": float(t.value) if t.state.name == "COMPLETE" and t.value is not None else None,
        "params": dict(t.params),
        **{
            k: v
            for k, v in t.user_attrs.items()
            if k in ("seconds", "best_epoch", "stopped_by_budget", "error")
        },
    }


# ---------------------------------------------------------------------------------------------- auto


@dataclass
class AutoResult:
    """Every family's valid-best, and the overall winner (by valid only)."""

    metric: str
    results: list[TuneResult]
    winner: TuneResult
    budget: float
    seconds: float
    skipped: list[dict[str, str]] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "family": r.model_name,
                f"valid {self.metric}": r.value,
                "trials": len(r.trials),
                "seconds": round(r.seconds, 1),
                "params": _short_params(r),
            }
            for r in self.results
        ]


def _short_params(r: TuneResult) -> str:
    if r.model_name == "late-fusion" and isinstance(r.params.get("models"), list):
        return "models=" + "+".join(r.params["models"]) + " (each at its tuned setting)"
    searched = {k: v for k, v in r.params.items() if k != "valid_metric"}
    return ", ".join(f"{k}={_fmt(v)}" for k, v in searched.items()) or "(defaults)"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) + "}"
    return str(v)


def auto_families(features: Features | None, n_items: int) -> list[str]:
    """The families worth trying on this data: collaborative ones, plus content models when there are features."""
    fams = list(AUTO_CF_FAMILIES)
    if features is not None and len(features):
        fams += list(AUTO_CONTENT_FAMILIES)
    # the EASE family solves a dense items × items system: past its cap it cannot run at all
    return [f for f in fams if n_items <= getattr(get_model_class(f), "max_items", n_items)]


def auto_select(
    split: Split,
    features: Features | None = None,
    *,
    budget: float,
    metric: str = "recall@20",
    families: Sequence[str] | None = None,
    fuse: bool = True,
    storage: str | Path | None = None,
    data_key: str = "data",
    seed: int = 0,
    show_progress: bool = False,
) -> AutoResult:
    """Tune each family within an equal share of ``budget`` seconds, then fuse the best ones; keep the valid-best.

    A share left unused (a family with nothing to search) passes to the families after it. With ``fuse``,
    the last two shares go to a late fusion of the two best collaborative families and the best content
    family at their tuned settings (weights fitted on valid), when its estimated fit time fits in what is
    left. A family whose one fit cannot stop early and would overrun its share is skipped.
    """
    t_start = time.monotonic()
    deadline = t_start + budget
    n_items = split.train.shape[1]
    fams = list(families) if families else auto_families(features, n_items)
    for f in fams:
        get_model_class(f)  # unknown names fail before any fit
    have_features = features is not None and len(features) > 0
    results: list[TuneResult] = []
    skipped: list[dict[str, str]] = []
    searchable = [f for f in fams if get_model_class(f).search_space]
    # the fusion refits its members one after another: it gets two shares
    shares_left = len(searchable) + (2 if fuse else 0)
    for fam in fams:
        cls = get_model_class(fam)
        if (cls.requires_features or cls.uses_features) and not have_features and fam != "late-fusion":
            skipped.append({"family": fam, "why": "needs item features"})
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            skipped.append({"family": fam, "why": "budget spent"})
            continue
        share = left / max(1, shares_left) if cls.search_space else left
        if cls.search_space:
            shares_left -= 1
        estimate = _estimated_fit_seconds(fam, n_items)
        if estimate > share:
            skipped.append(
                {"family": fam, "why": f"one fit takes about {estimate:.0f}s, more than its share"}
            )
            continue
        if cls.search_space:
            log.info("auto: %s with %.0fs", fam, share)
        try:
            res = tune_model(
                fam,
                split,
                features,
                metric=metric,
                budget=share,
                storage=storage,
                data_key=data_key,
                seed=seed,
                show_progress=show_progress,
            )
        except ConfigError as e:
            skipped.append({"family": fam, "why": str(e)})
            continue
        results.append(res)
    if fuse:
        fused = _fuse_best(results, split, features, metric, deadline, seed)
        if isinstance(fused, TuneResult):
            results.append(fused)
        elif fused:
            skipped.append({"family": "late-fusion", "why": fused})
    if not results:
        raise ConfigError("auto: no model family finished within the budget; raise --budget")
    winner = max(results, key=lambda r: r.value)
    return AutoResult(
        metric=metric,
        results=results,
        winner=winner,
        budget=budget,
        seconds=time.monotonic() - t_start,
        skipped=skipped,
    )


def _estimated_fit_seconds(family: str, n_items: int) -> float:
    """A lower bound on one fit of a family whose fit cannot stop early (0 where it can or is cheap).

    EASE inverts a dense items × items matrix, cubic in the catalogue: 3.9 s at 3,650 items on 2 cores,
    and over 6 minutes at 9,742 items on a loaded 2-core machine. content-ease solves it once per weight it
    tries on validation: 1 + 4 per modality; two modalities are assumed.
    """
    one_solve = 3.9 * (n_items / 3650) ** 3
    if family == "ease":
        return one_solve
    if family == "content-ease":
        return 9 * one_solve
    return 0.0


def _fuse_best(
    results: list[TuneResult],
    split: Split,
    features: Features | None,
    metric: str,
    deadline: float,
    seed: int,
) -> TuneResult | str | None:
    """Late fusion of the best two collaborative families and the best content family (tuned settings)."""
    ranked = sorted((r for r in results if r.model_name != "most-popular"), key=lambda r: -r.value)
    content = [r for r in ranked if get_model_class(r.model_name).uses_features]
    cf = [r for r in ranked if not get_model_class(r.model_name).uses_features]
    members = cf[:2] + content[:1]
    if len(members) < 2:
        return None
    # its fit refits every member: estimate by their winners' trial times
    estimate = sum(_winner_seconds(r) for r in members)
    left = deadline - time.monotonic()
    if estimate > left:
        return f"needs about {estimate:.0f}s to fit its members, {max(left, 0):.0f}s left"
    names = [r.model_name for r in members]
    sub_params = {r.model_name: _plain(r.params) for r in members}
    for r in members:
        if "random_state" in r.model.param_defaults():
            sub_params[r.model_name]["random_state"] = seed  # as in its trials (fusion would offset it)
        if getattr(r.model, "best_epoch_", None):
            # the winner's best epoch: the same state again, without the patience epochs after it
            sub_params[r.model_name]["epochs"] = int(r.model.best_epoch_)
    params = {"models": names, "params": sub_params, "valid_metric": metric}
    t0 = time.monotonic()
    model = build_model("late-fusion", params, seed=seed, show_progress=False)
    model.fit(split.train, features, valid=split.valid, validate=VALIDATOR)
    value = float(evaluate(model, split, on="valid", metrics=[metric]).metrics[metric])
    log.info("auto: late-fusion(%s) valid %s=%.4f", ", ".join(names), metric, value)
    return TuneResult(
        model_name="late-fusion",
        metric=metric,
        params=params,
        value=value,
        model=model,
        trials=[{"number": 0, "state": "COMPLETE", "value": value, "params": {"models": ",".join(names)}}],
        new_trials=1,
        seconds=time.monotonic() - t0,
    )


def _winner_seconds(r: TuneResult) -> float:
    done = [t.get("seconds", 0.0) for t in r.trials if t["state"] == "COMPLETE" and t["value"] == r.value]
    return float(done[0]) if done else float(np.mean([t.get("seconds", 0.0) for t in r.trials] or [0.0]))


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}
