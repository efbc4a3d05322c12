"""Optional MLflow tracking of experiment runs: parameters, per-epoch curves, final metrics, the artifact.

Uses ``mlflow``'s own client (``mlflow-skinny`` is enough) against any tracking URI; a plain path means a
local file store (``./mlruns`` by default). MLflow 3 keeps its file store in maintenance mode and refuses it
unless ``MLFLOW_ALLOW_FILE_STORE=true``; a local path here sets that for this process.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from fusionrec.errors import ConfigError

DEFAULT_URI = "./mlruns"
_BAD = re.compile(r"[^A-Za-z0-9_\-./ ]")


def metric_key(name: str) -> str:
    """An MLflow-safe metric name: ``recall@20`` → ``recall_at_20``."""
    return _BAD.sub("_", name.replace("@", "_at_"))


def tracking_uri(uri: str | None) -> str:
    """A tracking URI: schemes pass through; a path becomes a ``file://`` URI of a local store."""
    uri = uri or DEFAULT_URI
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", uri) or uri.startswith(("sqlite:", "databricks")):
        return uri
    return Path(uri).resolve().as_uri()


class MlflowTracker:
    """Logs each run of an experiment as one MLflow run in the experiment ``experiment_name``."""

    def __init__(self, uri: str | None, experiment_name: str) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ConfigError(
                "--mlflow needs mlflow (pip install mlflow-skinny); or run without --mlflow"
            ) from None
        self.uri = tracking_uri(uri)
        if self.uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(experiment_name)
        self.experiment_id = (
            found.experiment_id if found is not None else self.client.create_experiment(experiment_name)
        )
        self.run_ids: list[str] = []

    def log_run(self, record: dict[str, Any], run_dir: Path) -> str:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        tags = {
            "mlflow.runName": f"{record['label']} seed {record['seed']}",
            "fusionrec.data_fingerprint": str((record.get("data") or {}).get("fingerprint")),
            "fusionrec.command": str(record.get("command") or ""),
            "fusionrec.run_dir": str(run_dir),
        }
        run = self.client.create_run(self.experiment_id, run_name=tags["mlflow.runName"])
        run_id = run.info.run_id
        params = {"model": record["model"], "label": record["label"], "seed": record["seed"]}
        params["split"] = (record.get("split") or {}).get("method")
        params["masking"] = record.get("masking")
        for k, v in (record.get("params") or {}).items():
            params[f"param.{k}"] = (
                v if isinstance(v, str | int | float | bool) else json.dumps(v, default=str)
            )
        metrics = [Metric(metric_key(k), float(v), now, 0) for k, v in (record.get("metrics") or {}).items()]
        if record.get("fit_seconds") is not None:
            metrics.append(Metric("fit_seconds", float(record["fit_seconds"]), now, 0))
        hist = record.get("history") or {}
        valid_key = "valid_" + metric_key(str(hist.get("metric", "metric")))
        for epoch, loss, valid in zip(
            hist.get("epoch", []), hist.get("loss", []), hist.get("valid", []), strict=False
        ):
            metrics.append(Metric("train_loss", float(loss), now, int(epoch)))
            if valid is not None:
                metrics.append(Metric(valid_key, float(valid), now, int(epoch)))
        param_list = [Param(k, str(v)[:6000]) for k, v in params.items()]
        tag_list = [RunTag(k, v) for k, v in tags.items()]
        for start in range(0, len(metrics), 900):  # MLflow's batch limit is 1,000 metrics
            self.client.log_batch(
                run_id,
                metrics=metrics[start : start + 900],
                params=param_list if start == 0 else [],
                tags=tag_list if start == 0 else [],
            )
        if (run_dir / "artifact").is_dir():
            self.client.log_artifacts(run_id, str(run_dir / "artifact"), "artifact")
        if (run_dir / "result.json").exists():
            self.client.log_artifact(run_id, str(run_dir / "result.json"))
        self.client.set_terminated(run_id)
        self.run_ids.append(run_id)
        return run_id
